"""The samplers: one module each, chosen once when the policy is built (`choose_sampler`), never per call.

- `decode_loop`: the lean CPU decode loop (policy/decode.py) for the architectures it supports;
- `generate`: Hugging Face `generate` (GPU, and models the decode loop does not support);
- `vllm`: a colocated vLLM engine (`--backend vllm`, GPU only; policy/vllm_backend.py).

Each returns, per prompt, the new token ids exactly as drawn (and their log-probs where asked); `Policy.sample`
turns them into Completions (cut at the closing fence, policy/stop.py). Same seed, same stream on every sampler:
sampling in step s is seeded by (seed, s), and chunk i of a batch by seed + i.
"""

from __future__ import annotations

from typing import Any

from sdpo_ttt.policy.sampling.base import Sampler


def choose_sampler(policy: Any) -> Sampler:
    """For a Policy (policy/model.py): vLLM when asked for; else the CPU decode loop where it supports the model; else `generate`."""
    if policy.cfg.backend == "vllm":
        from sdpo_ttt.policy.sampling.vllm import VLLMSampling

        return VLLMSampling(policy)
    if policy.device.type == "cpu":
        from sdpo_ttt.policy.decode import Decoder

        if Decoder.supports(policy.model) is None:
            from sdpo_ttt.policy.sampling.decode_loop import DecodeLoopSampling

            return DecodeLoopSampling(policy)
    from sdpo_ttt.policy.sampling.generate import GenerateSampling

    return GenerateSampling(policy)
