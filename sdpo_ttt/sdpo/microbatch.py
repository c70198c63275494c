"""What one SDPO update learns from (`UpdateBatch`) and its split into micro-batches for gradient accumulation.

Attempts with no tokens teach nothing and are left out of every micro-batch; each micro-batch carries its
`share` of the remaining attempts, the weight of its loss in the batch mean (nanoGPT's
`loss / gradient_accumulation_steps`, with unequal last micro-batch handled exactly).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import Tensor


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
    share: float  # len(rows) / non-empty attempts in the batch: this micro-batch's weight in the batch mean

    def target_ids(self, mask: Tensor) -> Tensor:
        """y_t laid out like `mask` [B, T] (the hidden states' layout); 0 where mask is False."""
        targets = torch.zeros(mask.shape, dtype=torch.long, device=mask.device)
        for row, ids in enumerate(self.completions):
            targets[row, : len(ids)] = torch.tensor(ids, dtype=torch.long, device=mask.device)
        return targets


def micro_batches(batch: UpdateBatch, size: int) -> Iterator[MicroBatch]:
    """The batch's non-empty attempts in order, `size` at a time."""
    if size < 1:
        raise ValueError(f"micro-batch size must be >= 1, got {size}")
    rows = batch.nonempty_rows()
    for start in range(0, len(rows), size):
        idx = rows[start : start + size]
        yield MicroBatch(
            rows=idx,
            student_prompts=[batch.student_prompts[i] for i in idx],
            teacher_prompts=[batch.teacher_prompts[i] for i in idx],
            completions=[batch.completions[i] for i in idx],
            share=len(idx) / len(rows),
        )
