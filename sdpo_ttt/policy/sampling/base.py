"""What every sampler takes and gives (policy/sampling/__init__.py says which samplers there are)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from sdpo_ttt.policy.stop import CodeStop


@dataclass(frozen=True)
class Draw:
    """What one `sample` call asks of a sampler."""

    temperature: float
    top_p: float
    max_new_tokens: int
    seed: int
    adapter: str | None
    return_logprobs: bool = False
    progress: Callable[[int], None] | None = None  # called with tokens generated since its last call
    stop: "CodeStop | None" = None  # rows end on the token that closes their code block


@dataclass
class Drawn:
    """Per prompt: its ids, the new token ids as drawn, and their log-probs (None unless asked)."""

    prompts: list[list[int]]
    rows: list[list[int]]
    logprobs: list[list[float]] | None


class Sampler(Protocol):
    name: str

    def sample(self, prompts: list[list[int]], draw: Draw, batch_size: int | None) -> Drawn: ...
    def close(self) -> None: ...


def in_chunks(sample_chunk: Callable[[list[list[int]], Draw], Drawn], prompts: list[list[int]], draw: Draw,
              batch_size: int | None) -> Drawn:
    """The prompts in chunks of batch_size (all at once without one), chunk i seeded by draw.seed + i."""
    step = batch_size or len(prompts)
    out = Drawn([], [], [] if draw.return_logprobs else None)
    for i in range(0, len(prompts), step):
        part = sample_chunk(prompts[i:i + step], Draw(**{**draw.__dict__, "seed": draw.seed + i // step}))
        out.prompts.extend(part.prompts)
        out.rows.extend(part.rows)
        if out.logprobs is not None and part.logprobs is not None:
            out.logprobs.extend(part.logprobs)
    return out
