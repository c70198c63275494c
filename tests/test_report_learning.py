"""sdpo_ttt/report/learning.py: the arms of the learning experiment, its bootstrap, and the token change of same-seed
pairs against brute-force references (issues 16, 25)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from sdpo_ttt.errors import UserError
from sdpo_ttt.report.learning import arm_name, arm_weight, bootstrap_mean, common_prefix, paired, parse_arms, token_change


def test_arms_name_their_grpo_weight() -> None:
    assert [arm_weight(a) for a in ("sdpo", "hybrid:0.5", "hybrid:0.9", "grpo")] == [0.0, 0.5, 0.9, 1.0]
    assert [arm_name(w) for w in (0.0, 0.5, 0.9, 1.0)] == ["sdpo", "hybrid:0.5", "hybrid:0.9", "grpo"]
    assert parse_arms(" sdpo, hybrid:0.5 ,hybrid:0.9,grpo,hybrid:1,hybrid:0") == ["sdpo", "hybrid:0.5", "hybrid:0.9", "grpo"]
    for bad in ("hybrid:1.5", "hybrid:-0.1", "hybrid:x", "hybrid:nan", "ppo", "hybrid"):
        with pytest.raises(UserError, match="unknown arm"):
            arm_weight(bad)
    with pytest.raises(UserError, match="--arms is empty"):
        parse_arms(" , ")


def test_bootstrap_of_constant_differences_has_zero_width() -> None:
    assert bootstrap_mean([[0.5, 0.5], [0.5] * 4]) == (0.5, 0.5, 0.5)
    est, lo, hi = bootstrap_mean([])
    assert np.isnan(est) and np.isnan(lo) and np.isnan(hi)


def test_bootstrap_estimate_is_the_mean_of_problem_means() -> None:
    """Each problem weighs the same whatever its number of samples (2 samples or 6)."""
    est, lo, hi = bootstrap_mean([[1.0, 1.0], [0.0] * 6], n_boot=500)
    assert est == 0.5 and lo == 0.0 and hi == 1.0  # resampling two problems: 0, 0.5 or 1


def test_bootstrap_interval_against_brute_force() -> None:
    """One group: the interval is the percentile interval of resampled means; compare with a direct simulation."""
    values = [0.0, 0.0, 1.0, 0.25, 1.0, 0.5, 0.0, 1.0]
    est, lo, hi = bootstrap_mean([values], n_boot=4000, seed=1)
    rng = np.random.default_rng(7)
    sims = rng.choice(values, size=(20000, len(values))).mean(axis=1)
    assert est == pytest.approx(np.mean(values))
    assert lo == pytest.approx(np.quantile(sims, 0.05), abs=0.04) and hi == pytest.approx(np.quantile(sims, 0.95), abs=0.04)
    assert lo < est < hi
    assert bootstrap_mean([values], n_boot=300, seed=3) == bootstrap_mean([values], n_boot=300, seed=3)


def test_paired_differences() -> None:
    before = [{"passed": False, "score": 0.25}, {"passed": True, "score": 1.0}]
    after = [{"passed": True, "score": 1.0}, {"passed": True, "score": 1.0}]
    assert paired(after, before, "passed") == [1.0, 0.0] and paired(after, before, "score") == [0.75, 0.0]


def _brute_change(base: list[int], after: list[int]) -> tuple[bool, float]:
    """Walk both sequences position by position; a position past either one's end counts as a difference; the share
    counts the base tokens at or after the first difference."""
    i = 0
    while i < len(base) or i < len(after):
        if i >= len(base) or i >= len(after) or base[i] != after[i]:
            return True, (sum(1 for j in range(len(base)) if j >= i) / len(base)) if base else 1.0
        i += 1
    return False, 0.0


HAND_MADE = [  # (base, after, changed, share)
    ([1, 2, 3, 4], [1, 2, 3, 4], False, 0.0),  # the update flipped nothing
    ([1, 2, 3, 4], [9, 2, 3, 4], True, 1.0),  # the first token flipped: every base token is downstream of it
    ([1, 2, 3, 4], [1, 2, 9, 9, 9], True, 0.5),  # flipped at the third token
    ([1, 2, 3, 4], [1, 2, 3], True, 0.25),  # stopped one token earlier
    ([1, 2, 3], [1, 2, 3, 4], True, 0.0),  # ran on past the base sample's end: changed, but no base token differs
    ([], [], False, 0.0),
    ([], [5], True, 1.0),
    ([7], [], True, 1.0),
]


@pytest.mark.parametrize(("base", "after", "changed", "share"), HAND_MADE)
def test_token_change_of_hand_made_pairs(base: list[int], after: list[int], changed: bool, share: float) -> None:
    got = token_change(common_prefix(base, after), len(base), len(after))
    assert got == (changed, pytest.approx(share)) == _brute_change(base, after)


def test_token_change_against_brute_force_on_every_short_pair() -> None:
    """Every pair of sequences of length 0..3 over a 2-token vocabulary."""
    seqs = [list(s) for n in range(4) for s in itertools.product((0, 1), repeat=n)]
    for base, after in itertools.product(seqs, seqs):
        common = common_prefix(base, after)
        assert common == next((i for i in range(min(len(base), len(after))) if base[i] != after[i]), min(len(base), len(after)))
        changed, share = token_change(common, len(base), len(after))
        want = _brute_change(base, after)
        assert changed == want[0] and share == pytest.approx(want[1]), (base, after)
    with pytest.raises(ValueError, match="outside"):
        token_change(4, 3, 5)  # a common prefix longer than the base sample
