"""Optional vLLM sampling backend (GPU only; `pip install sdpo-ttt[vllm]`), colocated with the training model.

vLLM runs in the same process with LoRA enabled and a capped GPU memory share. The trained adapter
reaches it by hot-swap, never by merging weights or restarting: after each update the adapter is saved
(safetensors, peft format) into a fresh versioned folder and served under a NEW LoRA request id, so
vLLM cannot reuse the stale cached weights of an older id. Whether the adapter changed is decided by
a cheap fingerprint of its parameters, so sampling twice without an update does not reload it.

Only `VLLMSampler.__init__/sample` touch vLLM; the bookkeeping (versions, fingerprints, turning vLLM
outputs into our Completions) is plain code tested without it. benchmarks/gpu_smoke.sh checks the rest
on a GPU machine.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from sdpo_ttt.errors import ModelUnavailable

if TYPE_CHECKING:
    from sdpo_ttt.policy.model import Completion, Policy


@dataclass(frozen=True)
class LoraRef:
    """One published adapter version: what a vLLM LoRARequest needs."""

    name: str
    id: int  # >= 1, unique per published version
    path: Path


def fingerprint(params: list[torch.Tensor]) -> tuple[float, ...]:
    """Cheap identity of an adapter's current values (sum and norm of every tensor, float64)."""
    with torch.no_grad():
        return tuple(float(x) for p in params for x in (p.double().sum(), p.double().norm()))


@dataclass
class AdapterPublisher:
    """Saves an adapter into root/<adapter>-v<N>/ whenever it changed and hands out a new request id."""

    root: Path
    keep: int = 2  # versions kept on disk (the one being served and the previous one)
    _next_id: int = 1
    _last: dict[str, tuple[tuple[float, ...], LoraRef]] = field(default_factory=dict)
    _published: list[LoraRef] = field(default_factory=list)

    def publish(self, policy: "Policy", adapter: str) -> LoraRef:
        params = [p for n, p in policy.model.named_parameters() if ".lora_" in n and f".{adapter}." in n]
        fp = fingerprint(params)
        last = self._last.get(adapter)
        if last is not None and last[0] == fp:
            return last[1]
        ref = LoraRef(name=f"{adapter}-v{self._next_id}", id=self._next_id, path=Path(self.root) / f"{adapter}-v{self._next_id:05d}")
        self._next_id += 1
        policy.save_adapter(adapter, ref.path)
        self._last[adapter] = (fp, ref)
        self._published.append(ref)
        self._prune()
        return ref

    def _prune(self) -> None:
        live = {ref.id for _, ref in self._last.values()}
        while len(self._published) > self.keep + len(live):
            old = self._published.pop(0)
            if old.id not in live:
                shutil.rmtree(old.path, ignore_errors=True)
            else:
                self._published.append(old)
                break


def to_completion(prompt: list[int], token_ids: list[int], finish_reason: str | None, stop_reason: Any,
                  eos_ids: list[int], text: str) -> "Completion":
    """A vLLM CompletionOutput as our Completion: ids exactly as sampled, EOS kept when it ended the attempt."""
    from sdpo_ttt.policy.model import Completion

    ids = list(token_ids)
    if finish_reason == "stop":
        if not ids or ids[-1] not in eos_ids:
            ids.append(stop_reason if isinstance(stop_reason, int) else eos_ids[0])
        return Completion(list(prompt), ids, text, "eos")
    return Completion(list(prompt), ids, text, "length")


class VLLMSampler:
    """A vLLM engine over the policy's base weights, sampling with the policy's current LoRA adapters."""

    def __init__(self, policy: "Policy", work_dir: Path, *, gpu_memory: float = 0.4, max_model_len: int | None = None) -> None:
        if policy.device.type != "cuda":
            raise ModelUnavailable("the vLLM backend needs a CUDA GPU", "use --backend hf on this machine")
        try:
            from vllm import LLM
        except ImportError:
            raise ModelUnavailable("vLLM is not installed", "pip install 'sdpo-ttt[vllm]' (GPU machines only)") from None
        self.policy = policy
        self.publisher = AdapterPublisher(Path(work_dir))
        rank = max(policy.cfg.lora_rank, policy.cfg.effective_teacher_rank)
        self.llm = LLM(
            model=policy.info.path, tokenizer=policy.info.path, dtype="bfloat16" if policy.dtype == torch.bfloat16 else "auto",
            enable_lora=True, max_lora_rank=rank, max_loras=2, gpu_memory_utilization=gpu_memory,
            max_model_len=max_model_len, enable_prefix_caching=True, seed=0,
        )

    def sample(self, prompts: list[list[int]], *, temperature: float, top_p: float, max_new_tokens: int, seed: int,
               adapter: str | None) -> list["Completion"]:
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt
        from vllm.lora.request import LoRARequest

        lora = None
        if adapter is not None:
            ref = self.publisher.publish(self.policy, adapter)
            lora = LoRARequest(ref.name, ref.id, str(ref.path))
        params = [SamplingParams(temperature=temperature, top_p=top_p, max_tokens=max_new_tokens, seed=seed * 100_003 + i,
                                 stop_token_ids=list(self.policy.eos_ids), skip_special_tokens=True) for i in range(len(prompts))]
        outs = self.llm.generate([TokensPrompt(prompt_token_ids=p) for p in prompts], params, lora_request=lora, use_tqdm=False)
        return [to_completion(p, o.outputs[0].token_ids, o.outputs[0].finish_reason, o.outputs[0].stop_reason,
                              self.policy.eos_ids, o.outputs[0].text) for p, o in zip(prompts, outs)]
