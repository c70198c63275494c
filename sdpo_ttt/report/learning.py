"""Statistics of a paired before/after learning experiment (benchmarks/feedback_learning.py, issue 25): its arms
(the λ of the SDPO+GRPO hybrid), the mean of per-problem means with a two-level bootstrap interval, per-sample paired
differences, and how far an update moved the samples drawn with common random numbers.

Sampling is seeded and draws every token by inverse CDF from a shared uniform per row and step (policy/decode.py),
so a sample drawn after the updates with the same seed, prompt and row as a base sample is that base sample token
for token until the updated distribution flips one token; from there on the two differ. `token_change` measures
that: the share of the base sample's tokens from the first position where the two differ. An update that flips no
token leaves the after-samples equal to the base samples, and Δ = after − base is then 0 by construction: such a
rate learns nothing visible. Pure functions; no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from sdpo_ttt.errors import UserError

__all__ = ["arm_name", "arm_weight", "bootstrap_mean", "common_prefix", "paired", "parse_arms", "token_change"]


def arm_weight(arm: str) -> float:
    """λ (`grpo_weight`) of an arm: sdpo 0, grpo 1, hybrid:λ λ."""
    if arm == "sdpo":
        return 0.0
    if arm == "grpo":
        return 1.0
    kind, _, value = arm.partition(":")
    try:
        weight = float(value) if kind == "hybrid" else math.nan
    except ValueError:
        weight = math.nan
    if not 0.0 <= weight <= 1.0:
        raise UserError(f"unknown arm {arm!r}: use sdpo, grpo or hybrid:λ with 0 ≤ λ ≤ 1 (e.g. hybrid:0.9)")
    return weight


def arm_name(weight: float) -> str:
    """The canonical name of the arm with this λ (hybrid:0 is sdpo, hybrid:1 is grpo)."""
    return "sdpo" if weight == 0.0 else "grpo" if weight == 1.0 else f"hybrid:{weight:g}"


def parse_arms(text: str) -> list[str]:
    """`sdpo,hybrid:0.5,grpo` -> canonical arm names, in order, each once."""
    arms = [arm_name(arm_weight(x.strip())) for x in text.split(",") if x.strip()]
    if not arms:
        raise UserError("--arms is empty: name at least one of sdpo, grpo, hybrid:λ")
    return list(dict.fromkeys(arms))


def bootstrap_mean(groups: Sequence[Sequence[float]], *, n_boot: int = 2000, level: float = 0.9,
                   seed: int = 0) -> tuple[float, float, float]:
    """Mean over groups of each group's mean, with a two-level percentile bootstrap interval.

    Each replicate resamples the groups (problems) with replacement, then each drawn group's values (its
    paired per-sample differences) with replacement. One group: only its values are resampled. Returns
    (estimate, low, high); NaNs for no data.
    """
    arrays = [np.asarray(g, dtype=np.float64) for g in groups if len(g)]
    if not arrays:
        return math.nan, math.nan, math.nan
    estimate = float(np.mean([a.mean() for a in arrays]))
    rng = np.random.default_rng(seed)
    p = len(arrays)
    reps = np.empty(n_boot)
    for b in range(n_boot):
        picks = rng.integers(0, p, p) if p > 1 else np.zeros(1, dtype=np.int64)
        reps[b] = np.mean([arrays[i][rng.integers(0, arrays[i].size, arrays[i].size)].mean() for i in picks])
    tail = (1.0 - level) / 2.0
    return estimate, float(np.quantile(reps, tail)), float(np.quantile(reps, 1.0 - tail))


def paired(after: Sequence[dict[str, Any]], before: Sequence[dict[str, Any]], key: str) -> list[float]:
    """Per-sample differences after[i] − before[i] of `key` (samples paired by their sampling seed/position)."""
    return [float(a[key]) - float(b[key]) for a, b in zip(after, before, strict=True)]


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """How many leading tokens two token sequences share."""
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


def token_change(common: int, base_len: int, after_len: int) -> tuple[bool, float]:
    """(changed, share) of one same-seed pair from its common prefix and the two lengths.

    changed: the after-sample is not the base sample. share: the fraction of the base sample's tokens from the
    first position where the two differ (a position past either one's end counts as a difference), i.e.
    1 − common/base_len; 0.0 for an unchanged pair; for an empty base sample 1.0 if changed."""
    if not 0 <= common <= min(base_len, after_len):
        raise ValueError(f"common prefix {common} outside 0..min({base_len}, {after_len})")
    changed = not (common == base_len == after_len)
    if base_len == 0:
        return changed, float(changed)
    return changed, (base_len - common) / base_len
