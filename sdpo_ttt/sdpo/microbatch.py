"""What one SDPO update learns from (`UpdateBatch`) and its split into micro-batches for gradient accumulation.

Attempts with no tokens teach nothing and are left out of every micro-batch. Each micro-batch carries its
`share` of the batch, the weight of its loss in the batch's loss (nanoGPT's `loss / gradient_accumulation_steps`,
with unequal micro-batches handled exactly): its tokens / the batch's tokens when the loss is a token mean over
the batch (Σ_mb (N_mb/N)·(S_mb/N_mb) = S/N), its attempts / the batch's attempts when it is a mean over attempts.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import Tensor

from sdpo_ttt.config.sdpo import Aggregation


@dataclass
class UpdateBatch:
    """Per attempt: the two contexts, the attempt's tokens y exactly as sampled, and what the verifier said."""

    student_prompts: list[list[int]]  # x
    teacher_prompts: list[list[int]]  # (x, [d], f)
    completions: list[list[int]]  # y
    rewards: list[float]  # verifier score (fraction of tests passed), for the optional GRPO hybrid
    has_feedback: list[bool]
    has_demo: list[bool]

    def __len__(self) -> int:
        return len(self.completions)

    def nonempty_rows(self) -> list[int]:
        """Attempts with at least one token: the only ones the loss sees."""
        return [i for i, c in enumerate(self.completions) if c]


@dataclass
class MicroBatch:
    rows: list[int]  # indices into the UpdateBatch
    student_prompts: list[list[int]]
    teacher_prompts: list[list[int]]
    completions: list[list[int]]
    weight: int  # what the batch mean counts in this micro-batch: its tokens (token-mean) or attempts (attempt-mean)
    share: float  # weight / the batch's total weight: this micro-batch's weight in the batch mean

    def target_ids(self, mask: Tensor) -> Tensor:
        """y_t laid out like `mask` [B, T] (the hidden states' layout); 0 where mask is False."""
        targets = torch.zeros(mask.shape, dtype=torch.long, device=mask.device)
        for row, ids in enumerate(self.completions):
            targets[row, : len(ids)] = torch.tensor(ids, dtype=torch.long, device=mask.device)
        return targets


def micro_batches(batch: UpdateBatch, size: int, aggregation: Aggregation = "token-mean") -> Iterator[MicroBatch]:
    """The batch's non-empty attempts in order, `size` at a time, each micro-batch weighted for `aggregation`."""
    if size < 1:
        raise ValueError(f"micro-batch size must be >= 1, got {size}")
    rows = batch.nonempty_rows()
    weight = (lambda i: len(batch.completions[i])) if aggregation == "token-mean" else (lambda i: 1)  # noqa: E731
    total = sum(weight(i) for i in rows)
    for start in range(0, len(rows), size):
        idx = rows[start : start + size]
        w = sum(weight(i) for i in idx)
        yield MicroBatch(
            rows=idx,
            student_prompts=[batch.student_prompts[i] for i in idx],
            teacher_prompts=[batch.teacher_prompts[i] for i in idx],
            completions=[batch.completions[i] for i in idx],
            weight=w,
            share=w / total,
        )
