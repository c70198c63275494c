"""The CPU sampler: the lean decode loop of policy/decode.py (same distribution, stop rule and log-probs as `generate`)."""

from __future__ import annotations

from typing import Any

import torch

from sdpo_ttt.policy import threads
from sdpo_ttt.policy.sampling.base import Draw, Drawn, in_chunks


class DecodeLoopSampling:
    name = "decode-loop"

    def __init__(self, policy: Any) -> None:  # the Policy (policy/model.py) it samples for
        self.policy = policy

    def sample(self, prompts: list[list[int]], draw: Draw, batch_size: int | None) -> Drawn:
        return in_chunks(self._chunk, prompts, draw, batch_size)

    def _chunk(self, prompts: list[list[int]], draw: Draw) -> Drawn:
        p = self.policy
        decoder = p.decoder()  # built on first use (its packed weights), shared with the no-grad scoring passes
        threads.adapt()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(draw.seed)
            rows, lps = decoder.generate(prompts, max_new_tokens=int(draw.max_new_tokens), temperature=draw.temperature,
                                         top_p=draw.top_p, eos_ids=p.eos_ids, pad_id=p.pad_id, adapter=draw.adapter,
                                         return_logprobs=draw.return_logprobs, progress=draw.progress, stop=draw.stop)
        return Drawn([list(x) for x in prompts], rows, lps)

    def close(self) -> None:
        pass
