"""Hugging Face `generate` as the sampler: on GPU, and for models the CPU decode loop does not support.

Batched, left-padded, with the KV cache, under the given adapter; the global RNG state is forked, not consumed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from sdpo_ttt.policy.device import rng_devices
from sdpo_ttt.policy.sampling.base import Draw, Drawn, in_chunks
from sdpo_ttt.policy.stop import CodeStop


class TokenCounter:
    """A `generate` streamer that reports how many tokens each decoding step added (unfinished rows only).

    generate hands it the prompt ids first ([B, L], skipped), then one token per row per step ([B]); a row
    counts up to and including its first EOS, as the Completion's completion_ids do.
    """

    def __init__(self, progress: Callable[[int], None], rows: int, eos_ids: list[int],
                 stopped: "CodeStopCriteria | None" = None) -> None:
        self.progress = progress
        self.done = [False] * rows
        self.eos = set(eos_ids)
        self.seen_prompt = False
        self.stopped = stopped  # rows it ended at their closing fence count no further
        self.steps = 0

    def put(self, value: Tensor) -> None:
        if not self.seen_prompt:
            self.seen_prompt = True
            return
        n = 0
        self.steps += 1
        for b, t in enumerate(value.reshape(len(self.done), -1)[:, -1].tolist()):
            end = self.stopped.ends[b] if self.stopped is not None else None
            if not self.done[b] and (end is None or self.steps <= end):  # (generate may call put before or after the criteria)
                n += 1
                self.done[b] = t in self.eos
        if n:
            self.progress(n)

    def end(self) -> None: ...


class CodeStopCriteria:
    """A `generate` stopping criterion: a row is done once its code block closed (policy/stop.CodeStop).

    generate calls it after each step with the whole sequences [B, prompt + new]; rows it already ended stay
    ended. (A StoppingCriteria by duck typing: generate only calls it and reads the [B] bool result.)"""

    def __init__(self, stop: CodeStop, prompt_len: int, rows: int) -> None:
        self.stop = stop
        self.prompt_len = prompt_len
        self.ends: list[int | None] = [None] * rows  # tokens a row had when its block closed

    def __call__(self, input_ids: Tensor, scores: Any, **kwargs: Any) -> Tensor:
        for b, end in enumerate(self.ends):
            if end is None and self.stop(input_ids[b, self.prompt_len:].tolist()):
                self.ends[b] = input_ids.shape[1] - self.prompt_len
        return torch.tensor([e is not None for e in self.ends], dtype=torch.bool, device=input_ids.device)


class GenerateSampling:
    name = "generate"

    def __init__(self, policy: Any) -> None:  # the Policy (policy/model.py) it samples for
        self.policy = policy

    def sample(self, prompts: list[list[int]], draw: Draw, batch_size: int | None) -> Drawn:
        return in_chunks(self._chunk, prompts, draw, batch_size)

    def close(self) -> None:
        pass

    def _chunk(self, prompts: list[list[int]], draw: Draw) -> Drawn:
        from transformers import GenerationConfig

        p = self.policy
        ids, mask = p.left_pad(prompts)
        greedy = draw.temperature <= 0
        gen_cfg = GenerationConfig(
            do_sample=not greedy,
            temperature=None if greedy else float(draw.temperature),
            top_p=None if greedy else float(draw.top_p),
            top_k=None if greedy else 0,
            max_new_tokens=int(draw.max_new_tokens),
            eos_token_id=p.eos_ids,
            pad_token_id=p.pad_id,
            use_cache=True,
            return_dict_in_generate=True,
            output_scores=draw.return_logprobs,
        )
        was_training = p.model.training
        p.model.eval()
        try:
            with p.using_adapter(draw.adapter), torch.random.fork_rng(devices=rng_devices(p.device)):
                torch.manual_seed(draw.seed)
                crit = CodeStopCriteria(draw.stop, ids.shape[1], len(prompts)) if draw.stop is not None else None
                streamer = TokenCounter(draw.progress, len(prompts), p.eos_ids, crit) if draw.progress is not None else None
                res = p.model.generate(input_ids=ids, attention_mask=mask, generation_config=gen_cfg, streamer=streamer,
                                       stopping_criteria=[crit] if crit is not None else None)
        finally:
            p.model.train(was_training)
        new = res.sequences[:, ids.shape[1]:].tolist()
        lp_steps = None
        if draw.return_logprobs:
            # [B, T] log p(sampled token) under the processed (tempered, top-p) distribution
            lp_steps = torch.stack([torch.log_softmax(s.float(), dim=-1).gather(1, res.sequences[:, ids.shape[1] + t, None]).squeeze(1)
                                    for t, s in enumerate(res.scores)], dim=1).tolist()
        return Drawn([list(x) for x in prompts], new, lp_steps)
