"""vLLM as the sampler (`--backend vllm`, GPU only): a colocated engine over the policy's base weights, sampling with
its current LoRA adapters (hot-swapped after each update). The engine itself is policy/vllm_backend.py."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from sdpo_ttt.policy.sampling.base import Draw, Drawn


class VLLMSampling:
    name = "vllm"

    def __init__(self, policy: Any) -> None:  # the Policy (policy/model.py) it samples for
        self.policy = policy
        self._engine: Any = None  # VLLMSampler, started on the first sample (loading a model alone starts nothing)

    def sample(self, prompts: list[list[int]], draw: Draw, batch_size: int | None) -> Drawn:
        """The whole batch in one engine call (batch_size does not apply: vLLM schedules the batch itself)."""
        sampled = self.engine().sample(self.policy, prompts, temperature=draw.temperature, top_p=draw.top_p,
                                       max_new_tokens=draw.max_new_tokens, seed=draw.seed, adapter=draw.adapter, closed=draw.stop)
        if draw.progress is not None:  # vLLM decodes the batch in one call: one report at the end
            draw.progress(sum(len(s.completion_ids) for s in sampled))
        return Drawn([s.prompt_ids for s in sampled], [s.completion_ids for s in sampled], None)

    def engine(self) -> Any:
        if self._engine is None:
            from sdpo_ttt.policy.vllm_backend import VLLMSampler

            p = self.policy
            self._engine = VLLMSampler(
                p.info.path, device=p.device, dtype=p.dtype, lora_rank=p.cfg.lora_rank, eos_ids=p.eos_ids,
                work_dir=Path(tempfile.mkdtemp(prefix="sdpo-ttt-vllm-")), gpu_memory=p.cfg.vllm_gpu_memory,
            )
        return self._engine

    def close(self) -> None:
        """Shut the engine down, if one was started, so its GPU memory is free for the next model (idempotent)."""
        if self._engine is not None:
            engine, self._engine = self._engine, None
            engine.close()
