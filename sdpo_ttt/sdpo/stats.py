"""Bookkeeping of one SDPO update: wall time per phase and the statistics it logs, kept out of the update loop.

Rule (nanoGPT's gradient accumulation, applied to the logs): accumulate sums, divide once.
- Every statistic the loss returns (`LossOutput.stats`) is a mean over the attempts of its micro-batch; it is
  summed weighted by that micro-batch's number of attempts and divided once by the total, so the logged value
  is the mean over the whole batch (and over `steps_per_batch` optimiser steps) whatever `micro_batch_size` is.
- Counts (`sdpo/tokens`, `sdpo/sequences`, `sdpo/empty_targets`) and statistics that are not means over
  attempts (`grpo/advantage_std`) are computed from the whole batch, never from micro-batches.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from torch import Tensor

from sdpo_ttt.sdpo.microbatch import MicroBatch, UpdateBatch

PHASES = {"teacher": "time/teacher_s", "student": "time/student_fwd_bwd_s"}


def batch_stats(batch: UpdateBatch, advantages: Tensor | None) -> dict[str, float]:
    """What is known before any forward pass: counts, what the teacher was shown, the GRPO advantages."""
    n = len(batch)
    rows = batch.nonempty_rows()
    out = {
        "health/frac_with_feedback": sum(batch.has_feedback) / max(n, 1),
        "health/frac_with_demo": sum(batch.has_demo) / max(n, 1),
        "sdpo/tokens": float(sum(len(c) for c in batch.completions)),
        "sdpo/sequences": float(len(rows)),
        "sdpo/empty_targets": float(n - len(rows)),
    }
    if advantages is not None and rows:
        adv = advantages[rows].double()
        out["grpo/advantage_mean"] = float(adv.mean())
        out["grpo/advantage_std"] = float(adv.std(correction=0))
    return out


class UpdateStats:
    """Sums of one update's statistics; `metrics()` divides once."""

    def __init__(self, batch: UpdateBatch, advantages: Tensor | None = None) -> None:
        self.fixed = batch_stats(batch, advantages)
        self.sums: dict[str, float] = {}
        self.weight = 0  # attempts summed into self.sums (non-empty attempts x optimiser steps)
        self.seconds = dict.fromkeys(PHASES, 0.0)
        self.step_losses: list[float] = []
        self._step_loss = 0.0
        self.grad_norm = 0.0
        self.extra: dict[str, float] = {}

    @contextmanager
    def time(self, phase: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[phase] += time.perf_counter() - t0

    def add(self, stats: dict[str, float], mb: MicroBatch, loss: Tensor) -> None:
        """One micro-batch's loss statistics (means over its attempts) and its loss."""
        n = len(mb.rows)
        for key, value in stats.items():
            self.sums[key] = self.sums.get(key, 0.0) + float(value) * n
        self.weight += n
        self._step_loss += float(loss.detach()) * mb.share

    def end_step(self, grad_norm: Tensor | float) -> None:
        """After an optimiser step: its loss over the whole batch and its (pre-clip) gradient norm."""
        self.step_losses.append(self._step_loss)
        self._step_loss = 0.0
        self.grad_norm = float(grad_norm)

    def record(self, values: dict[str, float]) -> None:
        self.extra.update(values)

    def metrics(self, lr: float) -> dict[str, float]:
        out = {k: v / self.weight for k, v in self.sums.items()} if self.weight else {}
        out.update(self.fixed)
        out.update(self.extra)
        out.update(
            {
                "loss": self.step_losses[-1] if self.step_losses else 0.0,
                "loss_first": self.step_losses[0] if self.step_losses else 0.0,
                "grad_norm": self.grad_norm,
                "lr": lr,
            }
        )
        out.update({name: self.seconds[phase] for phase, name in PHASES.items()})
        return out
