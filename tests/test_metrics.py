"""Discovery metrics against brute force (exact enumeration) and simulation (known geometric discovery times)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from sdpo_ttt.report.estimators import (
    Interval,
    attempts_to_reach,
    attempts_to_reach_ci,
    bootstrap_discovery_cdf,
    bootstrap_pass_at_k,
    discovery_cdf,
    format_attempts,
    format_ratio,
    mean_curves,
    pass_at_k,
    pass_at_k_curve,
    ratio_ci,
    restricted_mean,
)


def _enumerated_pass_at_k(n: int, c: int, k: int) -> float:
    """Fraction of the k-subsets of n samples (the first c correct) holding at least one correct sample."""
    subsets = list(itertools.combinations(range(n), k))
    return sum(any(i < c for i in s) for s in subsets) / len(subsets)


@pytest.mark.parametrize("n", [1, 2, 3, 5, 8])
def test_pass_at_k_matches_enumeration(n: int) -> None:
    for c in range(n + 1):
        curve = pass_at_k_curve(n, c)
        for k in range(1, n + 1):
            exact = _enumerated_pass_at_k(n, c, k)
            assert pass_at_k(n, c, k) == pytest.approx(exact, abs=1e-12)
            assert curve[k - 1] == pytest.approx(exact, abs=1e-12)
            assert exact == pytest.approx(1 - math.comb(n - c, k) / math.comb(n, k), abs=1e-12)


def test_pass_at_k_stable_for_large_n() -> None:
    # C(2000, 1000) overflows a float; the product form does not
    v = pass_at_k(2000, 3, 1000)
    assert 0 < v < 1 and math.isfinite(v)
    assert v == pytest.approx(1 - math.comb(1997, 1000) / math.comb(2000, 1000), rel=1e-9)
    assert pass_at_k_curve(2000, 3, 10)[0] == pytest.approx(3 / 2000)
    with pytest.raises(ValueError, match=r"need 0 <= c <= n and 1 <= k <= n \(n=4, c=5, k=1\)"):
        pass_at_k(4, 5, 1)
    with pytest.raises(ValueError, match=r"\(n=4, c=1, k=5\)"):
        pass_at_k(4, 1, 5)


def test_uncensored_cdf_is_the_fraction_solved_within_k() -> None:
    times = [3, 1, 7, 3, 2]
    cdf = discovery_cdf(times, [10] * 5, 10)
    for k in range(1, 11):
        assert cdf[k - 1] == pytest.approx(sum(t <= k for t in times) / 5)


def test_common_censoring_is_the_plain_ecdf() -> None:
    times = [4, None, 2, None]
    cdf = discovery_cdf(times, [8] * 4, 8)
    assert list(cdf) == pytest.approx([0, 0.25, 0.25, 0.5, 0.5, 0.5, 0.5, 0.5])


def test_kaplan_meier_by_hand() -> None:
    # run B censored at 2 leaves the risk set before run C's success at 5: S(5) = (1 - 1/4)·(1 - 1/2)
    cdf = discovery_cdf([1, None, 5, None], [6, 2, 6, 6], 6)
    assert list(cdf) == pytest.approx([0.25, 0.25, 0.25, 0.25, 1 - 0.75 * 0.5, 1 - 0.75 * 0.5])


def _geometric(rng: np.random.Generator, p: float, size: int) -> np.ndarray:
    return rng.geometric(p, size=size)  # support 1, 2, ...: the 1-based attempt of the first success


def test_censored_cdf_matches_geometric_simulation() -> None:
    rng = np.random.default_rng(1)
    p, budget, runs = 0.05, 64, 4000
    t = _geometric(rng, p, runs)
    times = [int(x) if x <= budget else None for x in t]
    cdf = discovery_cdf(times, [budget] * runs, budget)
    truth = 1 - (1 - p) ** np.arange(1, budget + 1)
    assert np.max(np.abs(cdf - truth)) < 0.03
    # unequal (random) censoring: Kaplan–Meier stays unbiased where the plain fraction would not
    cens = rng.integers(5, budget + 1, size=runs)
    times = [int(x) if x <= c else None for x, c in zip(t, cens, strict=True)]
    km = discovery_cdf(times, list(cens), budget)
    assert np.max(np.abs(km - truth)) < 0.04
    naive = np.array([sum(x is not None and x <= k for x in times) / runs for k in range(1, budget + 1)])
    assert np.max(np.abs(naive - truth)) > 0.1  # the biased estimator is visibly off: the test has teeth


def test_restricted_mean_matches_simulation() -> None:
    rng = np.random.default_rng(2)
    p, budget = 0.08, 32
    t = _geometric(rng, p, 20000)
    cdf = discovery_cdf([int(x) if x <= budget else None for x in t], [budget] * len(t), budget)
    assert restricted_mean(cdf) == pytest.approx(np.minimum(t, budget).mean(), rel=1e-9)
    exact = sum((1 - p) ** k for k in range(budget))
    assert restricted_mean(cdf) == pytest.approx(exact, rel=0.02)


def test_bootstrap_band_covers_truth_at_nominal_rate() -> None:
    """90% pointwise bands from R = 25 seeds cover the true geometric CDF about 90% of the time."""
    rng = np.random.default_rng(3)
    p, budget, runs, trials = 0.06, 32, 25, 300
    k_checks = [5, 12, 25]
    truth = {k: 1 - (1 - p) ** k for k in k_checks}
    covered = {k: 0 for k in k_checks}
    for trial in range(trials):
        t = _geometric(rng, p, runs)
        band = bootstrap_discovery_cdf([int(x) if x <= budget else None for x in t], [budget] * runs, budget, n_boot=500, seed=trial)
        for k in k_checks:
            covered[k] += band.low[k - 1] <= truth[k] <= band.high[k - 1]
    for k in k_checks:
        assert 0.80 <= covered[k] / trials <= 0.97, (k, covered[k] / trials)


def test_pass_at_k_bootstrap_covers_truth() -> None:
    rng = np.random.default_rng(4)
    p, n, trials = 0.05, 200, 300
    covered = 0
    for trial in range(trials):
        c = int(rng.binomial(n, p))
        band = bootstrap_pass_at_k(n, c, 20, n_boot=500, seed=trial)
        covered += band.low[9] <= 1 - (1 - p) ** 10 <= band.high[9]
    assert 0.80 <= covered / trials <= 0.97


def test_bootstrap_is_reproducible_for_a_seed() -> None:
    times, cens = [3, None, 9, 1, None, 14], [16] * 6
    a = bootstrap_discovery_cdf(times, cens, 16, n_boot=200, seed=7)
    b = bootstrap_discovery_cdf(times, cens, 16, n_boot=200, seed=7)
    c = bootstrap_discovery_cdf(times, cens, 16, n_boot=200, seed=8)
    assert np.array_equal(a.replicates, b.replicates) and np.array_equal(a.low, b.low)
    assert not np.array_equal(a.replicates, c.replicates)
    assert np.all(a.low <= a.estimate + 1e-12) and np.all(a.estimate <= a.high + 1e-12)
    assert np.array_equal(bootstrap_pass_at_k(40, 3, n_boot=100, seed=1).replicates, bootstrap_pass_at_k(40, 3, n_boot=100, seed=1).replicates)


def test_attempts_to_reach_is_none_when_not_reached() -> None:
    curve = np.array([0.1, 0.2, 0.3, 0.5, 0.5])
    assert attempts_to_reach(curve, 0.25) == 3
    assert attempts_to_reach(curve, 0.5) == 4
    assert attempts_to_reach(curve, 0.6) is None
    iv = attempts_to_reach_ci(bootstrap_discovery_cdf([None, None, None], [8] * 3, 8, n_boot=50), 0.25)
    assert iv == Interval(None, None, None, horizon=8)
    assert format_attempts(iv) == "not reached within 8"
    assert format_attempts(Interval(12.0, 8.0, None, horizon=64)) == "12 [8, not reached]"


def test_headline_ratio_between_geometric_strategies() -> None:
    """A strategy with 3x the per-attempt success rate needs about 1/3 of the attempts to reach p."""
    rng = np.random.default_rng(5)
    budget, runs = 64, 400
    fast = [int(x) if x <= budget else None for x in _geometric(rng, 0.06, runs)]
    slow_n = 64 * 40
    slow_c = int(rng.binomial(slow_n, 0.02))
    fast_band = bootstrap_discovery_cdf(fast, [budget] * runs, budget, n_boot=400, seed=0)
    slow_band = bootstrap_pass_at_k(slow_n, slow_c, slow_n, n_boot=400, seed=1)
    r = ratio_ci(fast_band, slow_band, 0.5)
    truth = math.log(0.5) / math.log(1 - 0.06) / (math.log(0.5) / math.log(1 - 0.02))
    assert r.low <= truth <= r.high and r.value == pytest.approx(truth, rel=0.25)
    assert format_ratio(r).endswith("x]")


def test_ratio_when_a_side_is_not_reached() -> None:
    never = bootstrap_discovery_cdf([None] * 4, [16] * 4, 16, n_boot=50)
    sure = bootstrap_discovery_cdf([2, 2, 2, 2], [16] * 4, 16, n_boot=50)
    r = ratio_ci(never, sure, 0.5)
    assert r.value is None and format_ratio(r) == "n/a: not reached within 16"
    r = ratio_ci(sure, never, 0.5)  # denominator never reaches p within 16: the ratio is below 2/17
    assert r.bound == "<" and r.value == pytest.approx(2 / 17) and format_ratio(r).startswith("<0.12x")


def test_mean_curves_averages_problems() -> None:
    a = bootstrap_discovery_cdf([1, None], [4, 4], 4, n_boot=30, seed=0)
    b = bootstrap_discovery_cdf([None, None], [6, 6], 6, n_boot=30, seed=1)
    m = mean_curves([a, b])
    assert len(m.estimate) == 4 and list(m.estimate) == pytest.approx([0.25] * 4)
