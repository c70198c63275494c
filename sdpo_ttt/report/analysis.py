"""Analysis: run records → discovery curves per (problem, strategy) with bootstrap bands, the attempts (or tokens,
seconds) to reach each probability, and the ratio to best-of-k. The statistics themselves are in estimators.py.

One estimator for every strategy's headline curve, so the ratio to best-of-k compares like with like: the censored
CDF (Kaplan–Meier) of the discovery time over the runs (seeds). For best-of-k drawn without stopping (compare's
default) a run's discovery time is the index of its first passing attempt, which is exactly where the run with its
seed that stops at its first pass would have stopped (runs.stopped_at_first_pass), censored at the budget the
sequential strategies were given. Its pooled pass@k over all samples (every attempt an i.i.d. sample) has less
variance but is another estimator, with its own attempt granularity; it is kept as an extra curve (GroupResult.pooled,
drawn as a thin line) and never enters a ratio or the choice of a leader.

Runs are resampled by seed, with the same draws for every strategy on a problem (the same bootstrap seed, runs in
seed order): a ratio's interval is a paired bootstrap over seeds, as the paired comparison (paired.py) is a paired test.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sdpo_ttt.errors import UserError
from sdpo_ttt.report.estimators import (
    Band,
    Interval,
    attempts_to_reach_ci,
    band_on_cost_grid,
    bootstrap_discovery_cdf,
    bootstrap_discovery_cdf_cost,
    bootstrap_pass_at_k,
    cost_unit,
    extend_flat,
    mean_curves,
    ratio_ci,
    restricted_mean,
)
from sdpo_ttt.report.paired import PairedSummary, paired_summaries
from sdpo_ttt.report.runs import X_AXES, RunRecord, fixed_n, stopped_at_first_pass
from sdpo_ttt.report.words import plural
from sdpo_ttt.config.strategies import BASELINE
from sdpo_ttt.run.strategies import STRATEGIES

STRATEGY_ORDER = tuple(STRATEGIES)  # the registry's order: rows, legends and plots list strategies in it
ALL = "all"  # problem id of the mean over problems


@dataclass
class GroupResult:
    """One row of the summary: a strategy on one problem, or its mean over problems (problem_id == "all")."""

    problem_id: str
    strategy: str
    estimator: str  # "censored CDF (n seeds)" | "censored CDF (n seeds, first passes[, cut at h attempts])" | "mean over n problems"
    runs: int
    solved_runs: int
    budget: int
    band: Band
    at_p: dict[float, Interval]
    ratio: dict[float, Interval | None]  # to best-of-k on the same problem(s); None for best-of-k itself or if absent
    discovery_at_budget: tuple[float, float, float]  # estimate, low, high
    mean_attempts: float  # E[min(T, budget)]
    unsolved_mass: float  # P(T > budget): > 0 means the mean is a lower bound
    samples: int  # attempts used, all runs
    passes: int
    wall_time_s: float | None
    wall_per_attempt_s: float | None
    x: str = "attempts"  # the x axis: attempts | tokens | seconds (curve entry j-1 is at cost j·unit)
    unit: float = 1.0
    pooled: Band | None = None  # best-of-k drawn without stopping: pass@k over all its samples (an extra curve, no ratio)
    pooled_label: str = ""

    @property
    def horizon(self) -> int:
        return len(self.band.estimate)


@dataclass
class Analysis:
    problems: dict[str, str]  # id -> title, sorted by id
    strategies: list[str]
    groups: list[GroupResult]
    runs: list[RunRecord]
    ps: tuple[float, ...]
    level: float
    n_boot: int
    meta: dict[str, Any] = field(default_factory=dict)
    paired: list[PairedSummary] = field(default_factory=list)  # each learning strategy against best-of-k, same seeds

    def group(self, problem_id: str, strategy: str) -> GroupResult | None:
        return next((g for g in self.groups if g.problem_id == problem_id and g.strategy == strategy), None)


def _sort_strategies(names: Sequence[str]) -> list[str]:
    return sorted(set(names), key=lambda s: (STRATEGY_ORDER.index(s) if s in STRATEGY_ORDER else len(STRATEGY_ORDER), s))


def pooled(runs: Sequence[RunRecord]) -> bool:
    """Best-of-k drawn without stopping: every attempt an i.i.d. sample, so its pooled pass@k is an extra curve."""
    return all(fixed_n(r) for r in runs) and sum(r.attempts_used for r in runs) > 0


def _band_for(runs: list[RunRecord], n_boot: int, level: float, seed: int, x: str = "attempts", unit: float = 1.0) -> Band:
    """The censored CDF of the discovery time over the runs (sequential, or fixed-n best-of-k cut at its first pass)."""
    if x != "attempts":
        disc = [r.costs[x][r.discovery - 1] if r.discovery is not None else None for r in runs]
        return bootstrap_discovery_cdf_cost(disc, [r.spent[x] for r in runs], unit, ended=[r.finished for r in runs],
                                            n_boot=n_boot, level=level, seed=seed)
    return bootstrap_discovery_cdf([r.discovery for r in runs], [r.observed for r in runs], max(r.budget for r in runs),
                                   n_boot=n_boot, level=level, seed=seed)


def _pooled_band(runs: list[RunRecord], n_boot: int, level: float, seed: int, x: str = "attempts", unit: float = 1.0,
                 cap: int | None = None) -> tuple[Band, str]:
    """pass@k over the n pooled samples of fixed-n best-of-k runs, cut at `cap` (the largest budget the sequential
    strategies on the problem had: nothing else was observed past it; alone, the curve runs to n)."""
    n, c = sum(r.attempts_used for r in runs), sum(r.passes for r in runs)
    h = n if cap is None else min(n, cap)
    band = bootstrap_pass_at_k(n, c, h, n_boot=n_boot, level=level, seed=seed)
    if x != "attempts":  # n i.i.d. attempts at their mean cost each
        band = band_on_cost_grid(band, sum(r.spent[x] for r in runs) / n, unit)
    return band, f"pooled pass@k ({n} i.i.d. samples" + (f", cut at k = {h})" if h < n else ")")


def _scaled(iv: Interval, unit: float) -> Interval:
    """An interval in bins of the cost grid, in cost units (tokens or seconds)."""
    if unit == 1.0:
        return iv
    mul = lambda v: None if v is None else v * unit  # noqa: E731
    return Interval(mul(iv.value), mul(iv.low), mul(iv.high), horizon=None if iv.horizon is None else round(iv.horizon * unit), bound=iv.bound)


def _summarize(problem_id: str, strategy: str, estimator: str, runs: list[RunRecord], band: Band, budget: int,
               ps: Sequence[float], level: float, x: str = "attempts", unit: float = 1.0, solved: int | None = None) -> GroupResult:
    """runs: as drawn (samples, passes and times count every attempt); solved: runs solved within the curve's horizon
    (default: every run with a pass)."""
    if x != "attempts":
        budget = len(band.estimate)  # a cost curve ends where its runs were last observed
    k = min(budget, len(band.estimate)) - 1
    at_budget = band.estimate[: k + 1]
    walls = [r.wall_time_s for r in runs if r.wall_time_s is not None]
    used = sum(r.attempts_used for r in runs if r.wall_time_s is not None)
    return GroupResult(
        problem_id=problem_id, strategy=strategy, estimator=estimator, runs=len(runs),
        solved_runs=sum(r.discovery is not None for r in runs) if solved is None else solved, budget=budget, band=band,
        at_p={p: _scaled(attempts_to_reach_ci(band, p, level), unit) for p in ps}, ratio={p: None for p in ps},
        discovery_at_budget=(float(band.estimate[k]), float(band.low[k]), float(band.high[k])),
        mean_attempts=restricted_mean(at_budget) * unit, unsolved_mass=float(1.0 - at_budget[-1]),
        samples=sum(r.attempts_used for r in runs), passes=sum(r.passes for r in runs),
        wall_time_s=sum(walls) if walls else None, wall_per_attempt_s=(sum(walls) / used) if walls and used else None,
        x=x, unit=unit,
    )


def analyze(records: Sequence[RunRecord], *, ps: Sequence[float] = (0.25, 0.5), level: float = 0.9,
            n_boot: int = 2000, seed: int = 0, x: str = "attempts") -> Analysis:
    """Group runs by (problem, strategy), estimate discovery@k with bands, the headline attempts-to-p and ratios.

    With several problems, a mean-over-problems row per strategy is added (problem_id "all"): the average
    discovery@k, over the problems every strategy has runs for. x = tokens or seconds: discovery against what was
    spent, on one cost grid shared by every curve (estimators.COST_BINS bins), so ratios compare costs.
    """
    if not records:
        raise UserError("no runs to report on", "run `sdpo-ttt compare` first")
    if x not in X_AXES:
        raise UserError(f"--x {x!r} is not an axis", f"use one of {', '.join(X_AXES)}")
    unit = 1.0
    if x != "attempts":
        missing = [r for r in records if x not in r.costs]
        if missing:
            raise UserError(f"{plural(len(missing), 'run')} recorded no {x} per attempt (e.g. {missing[0].path})",
                            "runs record them since 2026-12-01: rerun those, or use --x attempts")
        unit = cost_unit(max(r.spent[x] for r in records))
    problems = {r.problem_id: r.title for r in sorted(records, key=lambda r: r.problem_id)}
    strategies = _sort_strategies([r.strategy for r in records])
    groups: list[GroupResult] = []
    stops: dict[tuple[str, str], list[RunRecord]] = {}  # (problem, strategy) -> runs as stopping runs, in seed order
    for pid in problems:
        by_strategy = {s: sorted((r for r in records if r.problem_id == pid and r.strategy == s), key=lambda r: r.seed)
                       for s in strategies}
        sequential = [max(r.budget for r in runs) for runs in by_strategy.values() if runs and not pooled(runs)]
        cap = max(sequential) if sequential else None
        gseed = seed + zlib.crc32(pid.encode())  # one per problem: every strategy resamples the same seeds (paired)
        for s, runs in by_strategy.items():
            if not runs:
                continue
            stop = stops[pid, s] = [stopped_at_first_pass(r, cap) if fixed_n(r) else r for r in runs]
            band = _band_for(stop, n_boot, level, gseed, x, unit)
            solved = sum(r.discovery is not None for r in stop)
            estimator = f"censored CDF ({plural(len(runs), 'seed')}"
            if any(map(fixed_n, runs)):  # drawn without stopping: the first pass in each seed's stream
                cut = cap is not None and cap < max(r.budget for r in runs)
                estimator += ", first passes" + (f", cut at {cap} attempts" if cut else "")
            estimator += ")"
            g = _summarize(pid, s, estimator, runs, band, max(r.budget for r in stop), ps, level, x, unit, solved)
            if pooled(runs):
                g.pooled, g.pooled_label = _pooled_band(runs, n_boot, level, seed + zlib.crc32(f"{pid}/{s}".encode()), x, unit, cap)
            groups.append(g)
    if len(problems) > 1:
        for s in strategies:
            per = [g for g in groups if g.strategy == s]
            if len(per) < 2:
                continue
            runs = [r for r in records if r.strategy == s]
            bands = [g.band for g in per]
            if x != "attempts":  # a problem whose runs all ended stays at its last value (else the mean is cut short)
                longest = max(len(b.estimate) for b in bands)
                ended = [all(r.finished for r in stops[g.problem_id, s]) for g in per]
                bands = [extend_flat(b, longest) if e else b for b, e in zip(bands, ended, strict=True)]
            g = _summarize(ALL, s, f"mean over {len(per)} problems", runs, mean_curves(bands, level), max(g.budget for g in per),
                           ps, level, x, unit, sum(g.solved_runs for g in per))
            if all(p.pooled is not None for p in per):
                g.pooled, g.pooled_label = mean_curves([p.pooled for p in per], level), f"pooled pass@k, mean over {len(per)} problems"
            groups.append(g)
    for g in groups:
        base = next((b for b in groups if b.problem_id == g.problem_id and b.strategy == BASELINE), None)
        if base is not None and g.strategy != BASELINE:
            g.ratio = {p: ratio_ci(g.band, base.band, p, level) for p in ps}
    models = sorted({r.model for r in records})
    meta = {
        "models": models, "budgets": sorted({r.budget for r in records}), "seeds": sorted({r.seed for r in records}),
        "batch_sizes": sorted({r.batch_size for r in records if r.batch_size is not None}),
        "max_new_tokens": sorted({r.max_new_tokens for r in records if r.max_new_tokens is not None}),
        "runs": len(records), "unfinished_runs": sum(r.status not in ("solved", "budget_exhausted") for r in records),
        "bootstrap_seed": seed, "x": x, "x_unit": unit,
    }
    return Analysis(problems, strategies, groups, list(records), tuple(ps), level, n_boot, meta, paired_summaries(records))


def x_axis(analysis: Analysis) -> str:
    """What the analysis drew discovery against: attempts, tokens or seconds."""
    return str(analysis.meta.get("x", "attempts"))


def common_horizon(analysis: Analysis, problem_id: str) -> float:
    """The horizon every strategy on this problem was given, in the axis's units (attempts, tokens or seconds): the
    shortest of their curves. Past it some strategy was not observed, so nothing is compared there."""
    groups = [g for g in analysis.groups if g.problem_id == problem_id]
    return min(g.horizon * g.unit for g in groups)


def within(iv: Interval, horizon: float) -> bool:
    """The point value was reached within the horizon."""
    return iv.value is not None and iv.value <= horizon * (1 + 1e-9)


def headline_p(analysis: Analysis, problem_id: str) -> float:
    """The largest probability of `ps` some strategy reaches on this problem within the horizon every strategy was
    given (else the smallest)."""
    groups = [g for g in analysis.groups if g.problem_id == problem_id]
    h = common_horizon(analysis, problem_id)
    reached = [p for p in analysis.ps if any(within(g.at_p[p], h) for g in groups)]
    return max(reached) if reached else min(analysis.ps)


def ratios_by_axis(records: Sequence[RunRecord], analysis: Analysis) -> list[dict[str, Any]]:
    """The headline ratio to best-of-k (at each problem's headline p) on every axis all runs recorded: whether a
    strategy that wins per attempt still wins per generated token and per second. JSON-ready rows."""
    axes = [x for x in X_AXES if x == "attempts" or all(x in r.costs for r in records)]
    by_axis = {x_axis(analysis): analysis}
    for x in axes:
        if x not in by_axis:
            by_axis[x] = analyze(records, ps=analysis.ps, level=analysis.level, n_boot=analysis.n_boot,
                                 seed=analysis.meta["bootstrap_seed"], x=x)
    rows = []
    for g in analysis.groups:
        if g.strategy == BASELINE or analysis.group(g.problem_id, BASELINE) is None:
            continue
        p = headline_p(by_axis["attempts"] if "attempts" in by_axis else analysis, g.problem_id)
        row: dict[str, Any] = {"problem_id": g.problem_id, "strategy": g.strategy, "p": p}
        for x in axes:
            other = by_axis[x].group(g.problem_id, g.strategy)
            row[x] = interval_json(other.ratio.get(p) if other else None)
        rows.append(row)
    return rows


def interval_json(iv: Interval | None) -> dict[str, Any] | None:
    if iv is None:
        return None
    return {"value": iv.value, "low": iv.low, "high": iv.high, "reached": iv.value is not None, "bound": iv.bound or None,
            "horizon": iv.horizon}
