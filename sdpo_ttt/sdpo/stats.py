"""Bookkeeping of one SDPO update: wall time per phase and the statistics it logs, kept out of the update loop.

Rule (nanoGPT's gradient accumulation, applied to the logs): accumulate sums, divide once.
- Every statistic the loss returns (`LossOutput.stats`) is a mean over the tokens (or the attempts, by
  `aggregation`) of its micro-batch; it is summed weighted by that micro-batch's tokens (attempts), `MicroBatch.weight`,
  and divided once by the total, so the logged value is the mean over the whole batch (and over `steps_per_batch`
  optimiser steps) whatever `micro_batch_size` is.
- Counts (`sdpo/tokens`, `sdpo/sequences`, `sdpo/empty_targets`) and statistics that are not means over
  attempts (`grpo/advantage_std`, `sdpo/gap_score_corr`) are computed from the whole batch, never from
  micro-batches: the per-attempt gaps are collected by row over a step's micro-batches, then correlated once.

`sdpo/gap_score_corr` (issue #16): does the teacher prefer the attempts the verifier scored better? Per
attempt i, gap_i = mean_t (log π_t(y_t) − log π_s(y_t)) over its tokens (`LossOutput.per_attempt_gap`) and
score_i its verifier score; the metric is their rank correlation over the batch's attempts with tokens, one
per optimiser step, averaged over the steps. Left out when those scores take fewer than 2 distinct values
(nothing to rank). Why the correlation and not the gap's sign: sdpo_ttt/run/monitors.py.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from torch import Tensor

from sdpo_ttt.sdpo.loss import LossOutput
from sdpo_ttt.sdpo.microbatch import MicroBatch, UpdateBatch

PHASES = {"teacher": "time/teacher_s", "student": "time/student_fwd_bwd_s"}
GAP_SCORE_CORR = "sdpo/gap_score_corr"


def mid_ranks(values: Sequence[float]) -> list[float]:
    """Rank of each value, 1 = smallest; tied values share the mean of the ranks they span."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    start = 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and values[order[end + 1]] == values[order[start]]:
            end += 1
        for k in range(start, end + 1):
            ranks[order[k]] = (start + end) / 2 + 1
        start = end + 1
    return ranks


def gap_score_correlation(gaps: Sequence[float], scores: Sequence[float]) -> float | None:
    """Spearman's rank correlation of the per-attempt gaps with the verifier scores, in [−1, 1].

    None when the scores take fewer than 2 distinct values (no better attempt to prefer); 0 when every gap
    is the same (the teacher prefers none). Spearman (Pearson's r of the mid-ranks) rather than Pearson's r
    of the values, because the claim is ordinal — "the better-scored attempt is the likelier one to the
    teacher" — and both variables fit ranks better than lines: scores are fractions of tests passed, mostly
    tied (many 0s in a failing batch) and not on a scale the gap should be linear in; gaps are per-token
    means whose spread grows as attempts get shorter, so one short attempt would decide Pearson's r in a
    batch of 8. Ranks bound each attempt's influence and make the metric invariant to any increasing
    transform of either variable (temperature, score as count or fraction).
    """
    if len(gaps) != len(scores):
        raise ValueError(f"{len(gaps)} gaps for {len(scores)} scores")
    if len(set(scores)) < 2:
        return None
    rg, rs = mid_ranks(gaps), mid_ranks(scores)
    mg, ms = sum(rg) / len(rg), sum(rs) / len(rs)
    cov = sum((a - mg) * (b - ms) for a, b in zip(rg, rs, strict=True))
    var_g = sum((a - mg) ** 2 for a in rg)
    var_s = sum((b - ms) ** 2 for b in rs)
    return cov / math.sqrt(var_g * var_s) if var_g > 0 else 0.0


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
        self.scores = list(batch.rewards)
        self._gaps: dict[int, float] = {}  # batch row -> its gap, this optimiser step
        self.correlations: list[float] = []  # one per optimiser step that had scores to rank
        self.sums: dict[str, float] = {}
        self.weight = 0  # tokens (or attempts) summed into self.sums, over the optimiser steps
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

    def add(self, out: LossOutput, mb: MicroBatch) -> None:
        """One micro-batch's loss, its statistics (means over its tokens or attempts) and its attempts' gaps."""
        n = mb.weight
        for key, value in out.stats.items():
            self.sums[key] = self.sums.get(key, 0.0) + float(value) * n
        self.weight += n
        self._step_loss += float(out.loss.detach()) * mb.share
        if out.per_attempt_gap.numel():
            for row, gap in zip(mb.rows, out.per_attempt_gap.tolist(), strict=True):
                if not math.isnan(gap):  # an attempt without tokens has no gap
                    self._gaps[row] = gap

    def end_step(self, grad_norm: Tensor | float) -> None:
        """After an optimiser step: its loss over the whole batch, its (pre-clip) gradient norm, and the
        correlation of its attempts' gaps with their scores (in batch order)."""
        self.step_losses.append(self._step_loss)
        self._step_loss = 0.0
        self.grad_norm = float(grad_norm)
        rows = sorted(self._gaps)
        corr = gap_score_correlation([self._gaps[r] for r in rows], [self.scores[r] for r in rows])
        if corr is not None:
            self.correlations.append(corr)
        self._gaps = {}

    def record(self, values: dict[str, float]) -> None:
        self.extra.update(values)

    def metrics(self, lr: float) -> dict[str, float]:
        out = {k: v / self.weight for k, v in self.sums.items()} if self.weight else {}
        out.update(self.fixed)
        if self.correlations:
            out[GAP_SCORE_CORR] = sum(self.correlations) / len(self.correlations)
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
