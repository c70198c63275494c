"""Discovery metrics: pure functions over discovery times and pass counts (no I/O, no model).

discovery@k = P(first success within k attempts). Two estimators:
- the empirical CDF of the discovery time T over R independent seeds, each run censored where it stopped without
  success (its budget). With one common censoring time this is the plain empirical CDF; with unequal ones
  (interrupted runs) it is the Kaplan–Meier estimate, which reduces to it. Every strategy's headline curve, best-of-k
  drawn without stopping included (T = its first passing attempt; report/analysis.py);
- i.i.d. sampling: the unbiased pass@k estimator 1 − C(n−c, k)/C(n, k) from n samples with c successes (Chen et
  al. 2021), in product form: best-of-k's pooled samples, an extra curve of lower variance that enters no ratio.
Both get a seeded percentile-bootstrap band (90% by default). From a curve: the attempts needed to
reach a discovery probability p, which is None — "not reached within the horizon" — never a number.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

Curve = np.ndarray  # float64 [horizon]: entry k-1 is discovery@k, for k = 1..horizon


# ------------------------------------------------------------------ point estimators
def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n i.i.d. samples with c successes: 1 − C(n−c,k)/C(n,k) = 1 − Π_{i=n−c+1}^{n} (1 − k/i)."""
    if not (0 <= c <= n and 1 <= k <= n):
        raise ValueError(f"need 0 <= c <= n and 1 <= k <= n (n={n}, c={c}, k={k})")
    if n - c < k:
        return 1.0
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1, dtype=np.float64)))


def pass_at_k_curve(n: int, c: int, horizon: int | None = None) -> Curve:
    """pass@k for k = 1..horizon (default n), vectorised over k."""
    horizon = n if horizon is None else horizon
    if not (0 <= c <= n and 1 <= horizon <= n):
        raise ValueError(f"need 0 <= c <= n and 1 <= horizon <= n (n={n}, c={c}, horizon={horizon})")
    k = np.arange(1, horizon + 1, dtype=np.float64)
    if c == 0:
        return np.zeros(horizon)
    i = np.arange(n - c + 1, n + 1, dtype=np.float64)
    fail = np.prod(np.clip(1.0 - k[:, None] / i[None, :], 0.0, None), axis=1)  # factor 0 once k > n−c
    return 1.0 - fail


def _km(t: np.ndarray, follow: np.ndarray, weights: np.ndarray, horizon: int) -> np.ndarray:
    """Kaplan–Meier CDF for weighted runs; weights [..., R] (bootstrap multiplicities), result [..., horizon]."""
    ks = np.arange(1, horizon + 1, dtype=np.float64)
    events = weights @ (t[:, None] == ks[None, :]).astype(np.float64)
    at_risk = weights @ (follow[:, None] >= ks[None, :]).astype(np.float64)
    hazard = np.divide(events, at_risk, out=np.zeros_like(events), where=at_risk > 0)
    return 1.0 - np.cumprod(1.0 - hazard, axis=-1)


def _runs(times: Sequence[int | None], censor: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    if len(times) != len(censor) or not times:
        raise ValueError("need one censoring time per run, and at least one run")
    t = np.array([np.inf if x is None else x for x in times], dtype=np.float64)
    follow = np.where(np.isfinite(t), t, np.array(censor, dtype=np.float64))  # each run is observed up to here
    return t, follow


def discovery_cdf(times: Sequence[int | None], censor: Sequence[int], horizon: int) -> Curve:
    """Empirical CDF of the discovery time, right-censored (Kaplan–Meier), at k = 1..horizon.

    times[r]: 1-based attempt of run r's first success, or None if it never succeeded;
    censor[r]: attempts run r made without success (its budget, or fewer if it was interrupted).
    With one common censoring time this is the plain fraction of runs solved within k.
    Past the last run still at risk the estimate stays at its last value.
    """
    t, follow = _runs(times, censor)
    return _km(t, follow, np.ones(len(t)), horizon)


def attempts_to_reach(curve: Curve, p: float) -> int | None:
    """The smallest k with discovery@k ≥ p, or None if the curve never reaches p (not reached within its horizon)."""
    hit = np.nonzero(np.asarray(curve) >= p - 1e-12)[0]
    return int(hit[0]) + 1 if hit.size else None


def restricted_mean(curve: Curve) -> float:
    """E[min(T, horizon)] = Σ_{k=0}^{horizon−1} P(T > k): mean attempts to first success with unsolved runs counted
    as using the whole horizon. A lower bound on the true mean whenever some run was censored."""
    survival = 1.0 - np.concatenate([[0.0], np.asarray(curve)[:-1]])
    return float(survival.sum())


# ------------------------------------------------------------------ bootstrap
@dataclass(frozen=True)
class Band:
    """A point-estimate curve with a pointwise percentile-bootstrap band, plus the replicate curves."""

    estimate: Curve
    low: Curve
    high: Curve
    replicates: np.ndarray  # [n_boot, horizon]


def _band(estimate: Curve, reps: np.ndarray, level: float) -> Band:
    a = (1.0 - level) / 2.0
    return Band(estimate, np.quantile(reps, a, axis=0), np.quantile(reps, 1.0 - a, axis=0), reps)


def bootstrap_discovery_cdf(
    times: Sequence[int | None], censor: Sequence[int], horizon: int, *, n_boot: int = 2000, level: float = 0.9, seed: int = 0
) -> Band:
    """Censored discovery CDF with a band from resampling runs (seeds) with replacement; reproducible for a seed."""
    t, follow = _runs(times, censor)
    rng = np.random.default_rng(seed)
    r = len(t)
    weights = np.zeros((n_boot, r))
    np.add.at(weights, (np.repeat(np.arange(n_boot), r), rng.integers(0, r, size=n_boot * r)), 1.0)
    reps = _km(t, follow, weights, horizon)
    return _band(_km(t, follow, np.ones(r), horizon), reps, level)


def bootstrap_pass_at_k(n: int, c: int, horizon: int | None = None, *, n_boot: int = 2000, level: float = 0.9, seed: int = 0) -> Band:
    """pass@k curve with a band from resampling the n i.i.d. attempts (so c* ~ Binomial(n, c/n)); reproducible for a seed.

    With c = 0 (or c = n) every replicate equals the estimate and the band collapses: a bootstrap cannot see
    beyond the data, which the report says where it happens.
    """
    horizon = n if horizon is None else horizon
    rng = np.random.default_rng(seed)
    cs = rng.binomial(n, c / n, size=n_boot)
    cache: dict[int, Curve] = {}
    reps = np.stack([cache.setdefault(int(x), pass_at_k_curve(n, int(x), horizon)) for x in cs])
    return _band(pass_at_k_curve(n, c, horizon), reps, level)


# ------------------------------------------------------------------ headline: attempts to reach p, and ratios
@dataclass(frozen=True)
class Interval:
    """A point value with a confidence interval. None means "not reached within the horizon" (`horizon`, for
    rendering). bound="<": the value is an upper bound only (a ratio whose denominator was not reached)."""

    value: float | None
    low: float | None
    high: float | None
    horizon: int | None = None
    bound: str = ""


def _quantile_with_none(values: list[float | None], q: float) -> float | None:
    """Lower empirical q-quantile of values where None ranks above every number (not reached = later than anything)."""
    xs = sorted(values, key=lambda v: (v is None, v if v is not None else 0.0))
    pos = min(len(xs) - 1, max(0, int(math.ceil(q * len(xs))) - 1))
    return xs[pos]


def attempts_to_reach_ci(band: Band, p: float, level: float = 0.9) -> Interval:
    """Attempts needed to reach discovery probability p, with a percentile-bootstrap interval."""
    a = (1.0 - level) / 2.0
    reps: list[float | None] = [_f(attempts_to_reach(r, p)) for r in band.replicates]
    return Interval(
        _f(attempts_to_reach(band.estimate, p)), _quantile_with_none(reps, a), _quantile_with_none(reps, 1.0 - a),
        horizon=len(band.estimate),
    )


def _ratio(x: int | None, y: int | None, y_horizon: int) -> tuple[float | None, str]:
    if x is None:
        return None, ""  # the numerator never reached p: the ratio is unbounded above (ranks above every number)
    if y is None:
        return x / (y_horizon + 1), "<"  # the denominator needs more than its horizon: the ratio is below x/(h+1)
    return x / y, ""


def ratio_ci(num: Band, den: Band, p: float, level: float = 0.9) -> Interval:
    """(attempts for `num` to reach p) / (attempts for `den` to reach p), e.g. sdpo / best-of-k: < 1 means fewer.

    Replicates are paired by index. Two censored CDFs bootstrapped with the same seed over the same number of runs
    (in seed order) resample the same runs, so on the same seeds this is a paired bootstrap over seeds (identical
    runs give exactly 1); for independent runs any pairing of replicates is a valid draw too.
    Where `num` does not reach p the ratio is None ("not reached", ranked above every number); where only `den`
    does not, its upper bound x/(horizon+1) stands in (marked bound="<" on the point value).
    """
    a = (1.0 - level) / 2.0
    hd = len(den.estimate)
    v, bound = _ratio(attempts_to_reach(num.estimate, p), attempts_to_reach(den.estimate, p), hd)
    reps = [_ratio(attempts_to_reach(x, p), attempts_to_reach(y, p), hd)[0] for x, y in zip(num.replicates, den.replicates, strict=True)]
    return Interval(v, _quantile_with_none(reps, a), _quantile_with_none(reps, 1.0 - a), horizon=len(num.estimate), bound=bound)


def _f(v: float | None) -> float | None:
    return None if v is None else float(v)


def mean_curves(bands: Sequence[Band], level: float = 0.9) -> Band:
    """Average discovery@k over problems (each band cut to the shortest horizon); replicates averaged index-wise
    (problems are independent), so the band is the bootstrap band of the mean."""
    h = min(len(b.estimate) for b in bands)
    n = min(len(b.replicates) for b in bands)
    est = np.mean([b.estimate[:h] for b in bands], axis=0)
    reps = np.mean([b.replicates[:n, :h] for b in bands], axis=0)
    return _band(est, reps, level)


def format_attempts(iv: Interval, digits: int = 0) -> str:
    """'12 [8, 20]', '40 [17, not reached]', 'not reached within 64'."""

    def one(x: float | None) -> str:
        return "not reached" if x is None else f"{x:.{digits}f}"

    if iv.value is None:
        return f"not reached within {iv.horizon}" if iv.horizon else "not reached"
    return f"{one(iv.value)} [{one(iv.low)}, {one(iv.high)}]"


def format_ratio(iv: Interval) -> str:
    """'0.33x [0.20x, 0.60x]'; '<0.31x [...]' (denominator not reached: upper bound); 'n/a: not reached within 64'."""

    def one(x: float | None) -> str:
        return "not reached" if x is None else f"{x:.2f}x"

    if iv.value is None:
        return f"n/a: not reached within {iv.horizon}" if iv.horizon else "n/a: not reached"
    return f"{iv.bound}{one(iv.value)} [{one(iv.low)}, {one(iv.high)}]"


# ------------------------------------------------------------------ cost axes: discovery against tokens or seconds
# The same curves with a cost on the x axis instead of the attempt count: P(solved having spent at most x). Costs
# are put on a grid of equal bins (`unit` tokens or seconds each), shared by every curve that is compared, so the
# ratio of two curves' bins is the ratio of their costs (to within one bin).
COST_BINS = 400


def cost_unit(max_cost: float, bins: int = COST_BINS) -> float:
    """The bin width that puts the largest cost at the last bin."""
    if max_cost <= 0:
        raise ValueError("no cost recorded (all runs spent 0)")
    return max_cost / bins


def _bin_up(cost: float, unit: float) -> int:
    """The first bin whose upper edge covers `cost` (bins are 1-based: bin j covers ((j-1)·unit, j·unit])."""
    return max(1, math.ceil(cost / unit - 1e-9))


def _bin_down(cost: float, unit: float) -> int:
    """The last bin wholly observed when `cost` was spent."""
    return int(math.floor(cost / unit + 1e-9))


def bootstrap_discovery_cdf_cost(
    discovery_costs: Sequence[float | None], spent: Sequence[float], unit: float, *, ended: Sequence[bool] | None = None,
    n_boot: int = 2000, level: float = 0.9, seed: int = 0,
) -> Band:
    """Censored CDF of the cost of the first success, on the cost grid: entry j-1 is P(solved within the run's budget
    having spent ≤ j·unit).

    discovery_costs[r]: what run r had spent when its first success was judged (None: never solved);
    spent[r]: what run r spent in all; ended[r] (default all False): run r ended on its own (its budget of
    attempts, time or tokens spent), so unsolved it never solves within its budget and is counted as unsolved to
    the curve's end — not censored at what it spent, which would treat a run that was cheap because it gave up
    early as if it might still solve, and put the curve above the attempts axis's. An interrupted run is censored
    at what it spent. The curve ends at the last bin any run was observed to (nothing is known past it), where it
    equals the fraction of runs solved when every run ended."""
    ended = [False] * len(spent) if ended is None else list(ended)
    times = [None if c is None else _bin_up(c, unit) for c in discovery_costs]
    follow = [_bin_up(c, unit) if c is not None else _bin_down(s, unit) for c, s in zip(discovery_costs, spent, strict=True)]
    horizon = max(1, max(follow))
    follow = [horizon if e and t is None else f for f, t, e in zip(follow, times, ended, strict=True)]
    return bootstrap_discovery_cdf(times, follow, horizon, n_boot=n_boot, level=level, seed=seed)


def extend_flat(band: Band, horizon: int) -> Band:
    """A band carried on at its last value to `horizon` (a curve of runs that all ended: nothing changes after)."""
    pad = horizon - len(band.estimate)
    if pad <= 0:
        return band
    ext = lambda c: np.concatenate([c, np.repeat(c[..., -1:], pad, axis=-1)], axis=-1)  # noqa: E731
    return Band(ext(band.estimate), ext(band.low), ext(band.high), ext(band.replicates))


def band_on_cost_grid(band: Band, cost_per_attempt: float, unit: float, max_bins: int = 4 * COST_BINS) -> Band:
    """A band over k = 1..n i.i.d. attempts (pass@k) moved onto the cost grid, each attempt costing `cost_per_attempt`:
    entry j-1 is the band at k = floor(j·unit / cost_per_attempt) (0 before the first attempt is paid for).
    The curve ends where n attempts' cost does, or at `max_bins` (pooled samples can cost many runs' worth)."""
    if cost_per_attempt <= 0:
        raise ValueError("cost per attempt must be > 0")
    n = len(band.estimate)
    bins = min(max_bins, max(1, _bin_down(n * cost_per_attempt, unit)))
    k = np.minimum(np.floor(np.arange(1, bins + 1) * unit / cost_per_attempt + 1e-9).astype(int), n)

    def move(curve: np.ndarray) -> np.ndarray:
        padded = np.concatenate([np.zeros(curve.shape[:-1] + (1,)), curve], axis=-1)
        return padded[..., k]

    return Band(move(band.estimate), move(band.low), move(band.high), move(band.replicates))
