"""The update's bookkeeping (sdpo_ttt/sdpo/stats.py): the gap–score rank correlation against a brute-force
reference, and that what is logged does not depend on how the batch is split into micro-batches."""

from __future__ import annotations

import math
import random

import pytest
import torch

from sdpo_ttt.sdpo.loss import LossOutput
from sdpo_ttt.sdpo.microbatch import UpdateBatch, micro_batches
from sdpo_ttt.sdpo.stats import GAP_SCORE_CORR, UpdateStats, gap_score_correlation, mid_ranks


# ------------------------------------------------------------------------------- brute-force references
def bf_rank(values: list[float], i: int) -> float:
    """1 + how many are smaller + half of the others equal to it: the mean of the ranks a tie spans."""
    smaller = sum(v < values[i] for v in values)
    equal = sum(v == values[i] for v in values)
    return 1 + smaller + (equal - 1) / 2


def bf_spearman(x: list[float], y: list[float]) -> float:
    """Pearson's r of the mid-ranks, from the textbook formula (numpy-free)."""
    rx = [bf_rank(x, i) for i in range(len(x))]
    ry = [bf_rank(y, i) for i in range(len(y))]
    n = len(x)
    mx, my = sum(rx) / n, sum(ry) / n
    cov = sum((a - mx) * (b - my) for a, b in zip(rx, ry, strict=True)) / n
    sx = math.sqrt(sum((a - mx) ** 2 for a in rx) / n)
    sy = math.sqrt(sum((b - my) ** 2 for b in ry) / n)
    return cov / (sx * sy)


# ------------------------------------------------------------------------------------------- pure math
def test_mid_ranks_match_bruteforce() -> None:
    rng = random.Random(0)
    for n in range(1, 10):
        for _ in range(20):
            v = [float(rng.randint(0, 3)) for _ in range(n)]  # many ties
            assert mid_ranks(v) == [bf_rank(v, i) for i in range(n)]
    assert mid_ranks([0.3, -1.0, 0.3, 2.0]) == [2.5, 1.0, 2.5, 4.0]


def test_correlation_matches_bruteforce() -> None:
    rng = random.Random(1)
    for n in range(2, 10):
        for _ in range(30):
            gaps = [rng.choice([rng.gauss(0, 0.05), 0.0]) for _ in range(n)]
            scores = [rng.choice([0.0, 0.25, 0.5, 0.75]) for _ in range(n)]
            got = gap_score_correlation(gaps, scores)
            if len(set(scores)) < 2:
                assert got is None
            elif len(set(gaps)) < 2:
                assert got == 0.0
            else:
                assert got == pytest.approx(bf_spearman(gaps, scores), abs=1e-12)


def test_correlation_is_about_order_not_sign_or_scale() -> None:
    """All gaps negative (the −KL offset of the student's own samples) but rising with the score: +1."""
    scores = [0.0, 0.2, 0.4, 0.8]
    assert gap_score_correlation([-0.30, -0.10, -0.05, -0.01], scores) == pytest.approx(1.0)
    assert gap_score_correlation([-0.01, -0.05, -0.10, -0.30], scores) == pytest.approx(-1.0)
    # one outlier gap weighs one rank, not its size
    assert gap_score_correlation([-0.01, -0.02, -0.03, 50.0], scores) == pytest.approx(bf_spearman([-0.01, -0.02, -0.03, 50.0], scores))
    assert gap_score_correlation([0.1, 0.2], [0.5, 0.5]) is None  # nothing to rank
    assert gap_score_correlation([0.0, 0.0, 0.0], [0.0, 0.5, 1.0]) == 0.0  # the teacher prefers none
    with pytest.raises(ValueError, match="1 gaps for 2 scores"):
        gap_score_correlation([0.1], [0.1, 0.2])


# --------------------------------------------------------------------------- UpdateStats over micro-batches
def _batch(scores: list[float], lengths: list[int]) -> UpdateBatch:
    n = len(scores)
    return UpdateBatch(
        student_prompts=[[1]] * n, teacher_prompts=[[2]] * n, completions=[[7] * k for k in lengths],
        rewards=scores, has_feedback=[True] * n, has_demo=[False] * n,
    )


def _logged(batch: UpdateBatch, gaps_per_step: list[list[float]], size: int) -> dict[str, float]:
    """What UpdateStats logs when each optimiser step's loss returns these per-attempt gaps (row order)."""
    stats = UpdateStats(batch)
    for gaps in gaps_per_step:
        for mb in micro_batches(batch, size):
            per_attempt = torch.tensor([gaps[r] for r in mb.rows], dtype=torch.float32)
            stats.add(LossOutput(loss=torch.tensor(0.5), stats={"sdpo/loss": 0.5}, per_attempt_gap=per_attempt), mb)
        stats.end_step(0.0)
    return stats.metrics(lr=1e-4)


def test_correlation_is_over_the_whole_batch_whatever_the_micro_batch_size() -> None:
    """Nine attempts, two without tokens (no gap; their scores are not ranked), two optimiser steps: the metric is
    the mean of each step's rank correlation over the seven attempts with tokens, for micro-batches of 1, 3, 8."""
    scores = [0.0, 0.5, 0.9, 0.25, 0.0, 0.75, 0.5, 0.1, 1.0]
    lengths = [5, 3, 0, 8, 2, 6, 4, 0, 1]
    rng = random.Random(2)
    steps = [[rng.gauss(-0.02, 0.03) for _ in scores] for _ in range(2)]
    rows = [i for i, k in enumerate(lengths) if k]
    # float32 the way the loss hands them over, then ranked
    f32 = [[float(torch.tensor(g, dtype=torch.float32)) for g in step] for step in steps]
    want = sum(bf_spearman([s[r] for r in rows], [scores[r] for r in rows]) for s in f32) / 2
    got = [_logged(_batch(scores, lengths), steps, size)[GAP_SCORE_CORR] for size in (1, 3, 8)]
    assert got == pytest.approx([want] * 3, abs=1e-12)
    assert abs(want) > 0.05  # the reference is not trivially 0


def test_correlation_left_out_when_the_scored_attempts_tie() -> None:
    """Scores differ only on an attempt without tokens: nothing to rank, so no metric (not a 0)."""
    metrics = _logged(_batch([0.0, 0.0, 0.7, 0.0], [4, 2, 0, 3]), [[0.1, -0.2, 0.0, 0.3]], 2)
    assert GAP_SCORE_CORR not in metrics and metrics["sdpo/sequences"] == 3.0


def test_each_step_is_correlated_then_the_steps_averaged() -> None:
    """steps_per_batch > 1: the gaps move with the student, so each step is ranked on its own and the
    correlations averaged. Every split of a 4-attempt batch (1+1+1+1, 2+2, 3+1, 4) agrees."""
    batch = _batch([0.0, 0.5, 1.0, 0.25], [2, 2, 2, 2])
    steps = [[0.1, 0.2, 0.3, 0.15], [0.3, 0.2, 0.1, 0.25]]  # +1 then −1
    for size in range(1, 5):
        assert _logged(batch, steps, size)[GAP_SCORE_CORR] == pytest.approx(0.0, abs=1e-12)
        assert _logged(batch, steps[:1], size)[GAP_SCORE_CORR] == pytest.approx(1.0)
