"""Report: run directories → discovery curves per (problem, strategy) → table, plots, summary.md/.csv/.json, report.html.

Reads only what runs leave behind (config.json, problem.json, attempts.jsonl, summary.json), so a report can be
rebuilt at any time from a folder of runs without running anything. The statistics are in metrics.py.

Estimator per group of runs (one problem, one strategy):
- best-of-k runs drawn without stopping (stop_on_success = false): every attempt is an i.i.d. sample, so the
  pooled attempts of all seeds give the unbiased pass@k, for k up to the number of samples (which may exceed
  the per-run budget: more samples, a longer curve);
- anything else: the censored empirical CDF of the discovery time over the runs (seeds).
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sdpo_ttt.errors import UserError
from sdpo_ttt.run.rundir import RunDir
from sdpo_ttt.run.strategies import BASELINE, STRATEGIES
from sdpo_ttt.report.estimators import (
    Band,
    Interval,
    attempts_to_reach_ci,
    band_on_cost_grid,
    bootstrap_discovery_cdf,
    bootstrap_discovery_cdf_cost,
    cost_unit,
    bootstrap_pass_at_k,
    format_attempts,
    format_ratio,
    mean_curves,
    ratio_ci,
    restricted_mean,
)

# names, order, colours and dashes: the one registry of strategies (strategies.STRATEGIES)
STRATEGY_ORDER = tuple(STRATEGIES)
COLORS = {s.name: s.color for s in STRATEGIES.values()}
LINESTYLES = {s.name: s.linestyle for s in STRATEGIES.values()}
OTHER_COLORS = ("#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")  # names outside the registry
ALL = "all"  # problem id of the mean over problems


# ------------------------------------------------------------------ reading runs
@dataclass(frozen=True)
class RunRecord:
    """What the report needs from one run directory."""

    path: Path
    problem_id: str
    title: str
    strategy: str
    seed: int
    budget: int
    model: str
    batch_size: int | None
    max_new_tokens: int | None
    stop_on_success: bool
    status: str  # solved | budget_exhausted | interrupted | unfinished (no summary yet)
    attempts_used: int
    discovery: int | None  # 1-based attempt of the first pass
    passes: int  # attempts that passed (all of them for fixed-n best-of-k)
    wall_time_s: float | None
    costs: dict[str, tuple[float, ...]] = field(default_factory=dict)  # x axis -> what was spent when each attempt was judged
    spent: dict[str, float] = field(default_factory=dict)  # x axis -> what the run spent in all


def load_run(path: Path) -> RunRecord:
    """Read one run directory (finished or not), through RunDir."""
    run = RunDir.open_existing(path)
    path = run.path
    cfg, problem, summary, attempts = run.read_config(), run.read_problem(), run.read_summary(), run.read_attempts()
    passed = [bool(a.get("passed")) for a in sorted(attempts, key=lambda a: a.get("index", 0))]
    first = next((i + 1 for i, p in enumerate(passed) if p), None)
    if summary and summary.get("discovery_attempt") is not None:
        first = int(summary["discovery_attempt"])
    used = int(summary["attempts_used"]) if summary else len(passed)
    return RunRecord(
        path=path, problem_id=str(problem["id"]), title=str(problem.get("title") or problem["id"]),
        strategy=str(cfg.get("strategy", "sdpo")), seed=int(cfg.get("seed", 0)), budget=int(cfg["budget"]),
        model=str(cfg.get("model", "?")), batch_size=cfg.get("batch_size"), max_new_tokens=cfg.get("max_new_tokens"),
        stop_on_success=bool(cfg.get("stop_on_success", True)),
        status=str(summary["status"]) if summary else "unfinished", attempts_used=used, discovery=first,
        passes=sum(passed), wall_time_s=float(summary["wall_time_s"]) if summary else None,
        **attempt_costs(attempts, summary),
    )


X_AXES = ("attempts", "tokens", "seconds")  # what discovery can be drawn against (--x)
X_LABELS = {"attempts": "attempts k", "tokens": "generated tokens", "seconds": "wall-clock seconds"}


def attempt_costs(attempts: list[dict[str, Any]], summary: dict[str, Any] | None) -> dict[str, Any]:
    """For RunRecord: the cumulative cost at each attempt (by index) on the tokens and seconds axes, and the run's
    total. Tokens: `run_tokens`, or for older runs the completion tokens summed to the end of each attempt's batch;
    seconds: `run_wall_s` (recorded since 2026-12-01; older runs have no seconds axis)."""
    rows = sorted(attempts, key=lambda a: a.get("index", 0))
    costs: dict[str, tuple[float, ...]] = {}
    spent: dict[str, float] = {}
    if rows and all("run_tokens" in a for a in rows):
        costs["tokens"] = tuple(float(a["run_tokens"]) for a in rows)
    elif rows and all("completion_tokens" in a and "step" in a for a in rows):
        per_step: dict[int, int] = {}
        for a in rows:
            per_step[int(a["step"])] = per_step.get(int(a["step"]), 0) + int(a["completion_tokens"])
        upto = {s: sum(v for t, v in per_step.items() if t <= s) for s in per_step}
        costs["tokens"] = tuple(float(upto[int(a["step"])]) for a in rows)
    if rows and all("run_wall_s" in a for a in rows):
        costs["seconds"] = tuple(float(a["run_wall_s"]) for a in rows)
    totals = {"tokens": "generated_tokens", "seconds": "wall_time_s"}
    for axis, c in costs.items():
        spent[axis] = max(c[-1], float((summary or {}).get(totals[axis]) or 0.0))
    return {"costs": costs, "spent": spent}


def collect_runs(root: Path) -> list[RunRecord]:
    runs = RunDir.find_all(root)
    if not runs:
        raise UserError(f"{root} holds no run directories", "pass the --out folder of a `compare` (or a folder of `solve` runs)")
    return [load_run(r.path) for r in runs]


# ------------------------------------------------------------------ analysis
@dataclass
class GroupResult:
    """One row of the summary: a strategy on one problem, or its mean over problems (problem_id == "all")."""

    problem_id: str
    strategy: str
    estimator: str  # "pass@k (n i.i.d. samples)" | "censored CDF over seeds" | "mean over problems"
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

    def group(self, problem_id: str, strategy: str) -> GroupResult | None:
        return next((g for g in self.groups if g.problem_id == problem_id and g.strategy == strategy), None)


def _sort_strategies(names: Sequence[str]) -> list[str]:
    return sorted(set(names), key=lambda s: (STRATEGY_ORDER.index(s) if s in STRATEGY_ORDER else len(STRATEGY_ORDER), s))


def _band_for(runs: list[RunRecord], n_boot: int, level: float, seed: int, x: str = "attempts", unit: float = 1.0) -> tuple[Band, str]:
    budget = max(r.budget for r in runs)
    if all(r.strategy == BASELINE and not r.stop_on_success for r in runs):
        n, c = sum(r.attempts_used for r in runs), sum(r.passes for r in runs)
        if n > 0:
            band = bootstrap_pass_at_k(n, c, n, n_boot=n_boot, level=level, seed=seed)
            if x != "attempts":  # n i.i.d. attempts at their mean cost each
                band = band_on_cost_grid(band, sum(r.spent[x] for r in runs) / n, unit)
            return band, f"pass@k ({n} i.i.d. samples)"
    if x != "attempts":
        disc = [r.costs[x][r.discovery - 1] if r.discovery is not None else None for r in runs]
        band = bootstrap_discovery_cdf_cost(disc, [r.spent[x] for r in runs], unit, n_boot=n_boot, level=level, seed=seed)
        return band, f"censored CDF ({plural(len(runs), 'seed')})"
    times = [r.discovery for r in runs]
    censor = [r.attempts_used if r.discovery is None else r.budget for r in runs]
    return bootstrap_discovery_cdf(times, censor, budget, n_boot=n_boot, level=level, seed=seed), f"censored CDF ({len(runs)} seeds)"


def _scaled(iv: Interval, unit: float) -> Interval:
    """An interval in bins of the cost grid, in cost units (tokens or seconds)."""
    if unit == 1.0:
        return iv
    mul = lambda v: None if v is None else v * unit  # noqa: E731
    return Interval(mul(iv.value), mul(iv.low), mul(iv.high), horizon=None if iv.horizon is None else round(iv.horizon * unit), bound=iv.bound)


def _summarize(problem_id: str, strategy: str, estimator: str, runs: list[RunRecord], band: Band, budget: int,
               ps: Sequence[float], level: float, x: str = "attempts", unit: float = 1.0) -> GroupResult:
    if x != "attempts":
        budget = len(band.estimate)  # a cost curve ends where its runs were last observed
    k = min(budget, len(band.estimate)) - 1
    at_budget = band.estimate[: k + 1]
    walls = [r.wall_time_s for r in runs if r.wall_time_s is not None]
    used = sum(r.attempts_used for r in runs if r.wall_time_s is not None)
    return GroupResult(
        problem_id=problem_id, strategy=strategy, estimator=estimator, runs=len(runs),
        solved_runs=sum(r.discovery is not None for r in runs), budget=budget, band=band,
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
    spent, on one cost grid shared by every curve (metrics.COST_BINS bins), so ratios compare costs.
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
    for pid in problems:
        for s in strategies:
            runs = sorted((r for r in records if r.problem_id == pid and r.strategy == s), key=lambda r: r.seed)
            if not runs:
                continue
            gseed = seed + zlib.crc32(f"{pid}/{s}".encode())
            band, estimator = _band_for(runs, n_boot, level, gseed, x, unit)
            groups.append(_summarize(pid, s, estimator, runs, band, max(r.budget for r in runs), ps, level, x, unit))
    if len(problems) > 1:
        for s in strategies:
            per = [g for g in groups if g.strategy == s]
            if len(per) < 2:
                continue
            runs = [r for r in records if r.strategy == s]
            band = mean_curves([g.band for g in per], level)
            groups.append(_summarize(ALL, s, f"mean over {len(per)} problems", runs, band, max(g.budget for g in per), ps, level, x, unit))
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
    return Analysis(problems, strategies, groups, list(records), tuple(ps), level, n_boot, meta)


# ------------------------------------------------------------------ table (one renderer for terminal, md, html)
def _pct(p: float) -> str:
    return f"{100 * p:g}%"


def table(analysis: Analysis, *, compact: bool = False) -> tuple[list[str], list[list[str]]]:
    """Headers and rows of text cells, shared by summary.md, report.html and (compact) the terminal.

    Each time column has one unit, named in its header (chosen from the column's largest value)."""
    lv = _pct(analysis.level)
    per_unit, per_div = time_unit([g.wall_per_attempt_s for g in analysis.groups])
    tot_unit, tot_div = time_unit([g.wall_time_s for g in analysis.groups])
    x = x_axis(analysis)
    at = "budget" if x == "attempts" else "end"
    if compact:
        k = "k" if x == "attempts" else x
        headers = ["problem", "strategy", "solved", f"disc@{at} [{lv}]"]
        for p in analysis.ps:
            headers += [f"{k} for {_pct(p)} [{lv}]", f"x best-of-k ({_pct(p)})"]
        headers += [f"mean {k}", f"{per_unit}/attempt"]
    else:
        headers = ["problem", "strategy", "estimator", "runs solved", f"discovery@{at} [{lv} CI]"]
        for p in analysis.ps:
            headers += [f"{x} to {_pct(p)} [{lv} CI]", f"x {BASELINE} at {_pct(p)}"]
        headers += [f"mean {x} to success", f"time / attempt ({per_unit})", f"total time ({tot_unit})"]
    rows = []
    for g in analysis.groups:
        est, lo, hi = g.discovery_at_budget
        row = [g.problem_id, g.strategy]
        if not compact:
            row.append(g.estimator)
        row += [f"{g.solved_runs}/{g.runs}", f"{est:.2f} [{lo:.2f}, {hi:.2f}]" + ("" if compact or x != "attempts" else f" @{g.budget}")]
        for p in analysis.ps:
            row.append(format_attempts(g.at_p[p]))
            r = g.ratio.get(p)
            row.append("—" if r is None else format_ratio(r))
        mean = f"{g.mean_attempts:.1f}" if x == "attempts" else f"{g.mean_attempts:.0f}"
        if g.unsolved_mass > 1e-12:
            mean = f">={mean}" if compact else f">= {mean} (P(unsolved@{at}) = {g.unsolved_mass:.2f}, censored)"
        row += [mean, _in_unit(g.wall_per_attempt_s, per_div)]
        if not compact:
            row.append(_in_unit(g.wall_time_s, tot_div))
        rows.append(row)
    return headers, rows


def x_axis(analysis: Analysis) -> str:
    """What the analysis drew discovery against: attempts, tokens or seconds."""
    return str(analysis.meta.get("x", "attempts"))


def _amount(value: float, x: str) -> str:
    return plural(int(value), "attempt") if x == "attempts" else f"{value:.0f} {x}"


def time_unit(values: Sequence[float | None]) -> tuple[str, float]:
    """One unit for a whole column of seconds, from its largest value: (name, seconds per unit)."""
    top = max((v for v in values if v is not None), default=0.0)
    if top >= 3600:
        return "h", 3600.0
    if top >= 120:
        return "min", 60.0
    return "s", 1.0


def _in_unit(v: float | None, div: float) -> str:
    """A number in the column's unit, with three significant figures at least (no unit: it is in the header)."""
    if v is None:
        return "—"
    x = v / div
    return f"{x:.0f}" if x >= 100 else f"{x:.1f}" if x >= 10 else f"{x:.2f}"


def plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


# ------------------------------------------------------------------ the conclusion, in words
def _headline_p(analysis: Analysis, problem_id: str) -> float:
    """The largest probability of `ps` some strategy reaches on this problem (else the smallest)."""
    groups = [g for g in analysis.groups if g.problem_id == problem_id]
    reached = [p for p in analysis.ps if any(g.at_p[p].value is not None for g in groups)]
    return max(reached) if reached else min(analysis.ps)


def ratio_verdict(iv: Interval | None) -> str:
    """'fewer' if the whole interval is below 1, 'more' if above 1, else 'inconclusive' (None bounds = not reached = +inf)."""
    if iv is None:
        return "inconclusive"
    if iv.high is not None and iv.high < 1.0:
        return "fewer"
    if iv.low is None or iv.low > 1.0:
        return "more"
    return "inconclusive"


def conclusion(analysis: Analysis, problem_id: str) -> str:
    """One or two sentences: which strategy leads on a problem, and whether its ratio to best-of-k excludes 1."""
    groups = [g for g in analysis.groups if g.problem_id == problem_id]
    name = "mean over problems" if problem_id == ALL else problem_id
    lv = _pct(analysis.level)
    if not groups or all(g.solved_runs == 0 for g in groups):
        return f"{name}: no strategy solved it within the budget — inconclusive."
    p = _headline_p(analysis, problem_id)
    inf = float("inf")
    lead = min(groups, key=lambda g: (g.at_p[p].value if g.at_p[p].value is not None else inf, -g.discovery_at_budget[0]))
    x = x_axis(analysis)
    if lead.at_p[p].value is not None:
        out = f"{name}: {lead.strategy} leads, reaching {_pct(p)} discovery in {_amount(lead.at_p[p].value, x)} (point estimate)."
    else:
        out = f"{name}: {lead.strategy} leads with discovery@budget {lead.discovery_at_budget[0]:.2f}; no strategy reached {_pct(p)}."
    base = next((g for g in groups if g.strategy == BASELINE), None)
    if base is None:
        return out + f" No {BASELINE} runs to compare with — inconclusive."
    for g in groups:
        if g.strategy == BASELINE:
            continue
        if g.solved_runs == 0:
            within = f"within {g.budget} attempts" if x == "attempts" else f"within the {x} its runs spent"
            out += (f" {g.strategy} solved no run: it did not reach {_pct(p)} {within}, and with no success to"
                    " resample there is no interval — inconclusive.")
            continue
        iv = g.ratio.get(p)
        verdict = ratio_verdict(iv)
        shown = format_ratio(iv) if iv is not None else "n/a"
        if verdict == "fewer":
            out += f" {g.strategy} needs fewer {x} than {BASELINE} to reach {_pct(p)}: {shown}, the {lv} interval excludes 1."
        elif verdict == "more":
            out += f" {g.strategy} needs more {x} than {BASELINE} to reach {_pct(p)}: {shown}, the {lv} interval excludes 1."
        else:
            out += f" {g.strategy} vs {BASELINE} at {_pct(p)}: {shown}, the {lv} interval includes 1 — inconclusive."
    return out


def conclusions(analysis: Analysis) -> list[str]:
    """The conclusion for every problem, and for the mean over problems when there is one; then the headline
    ratio on every axis the runs recorded (attempts, tokens, seconds), when that was computed."""
    ids = list(analysis.problems) + ([ALL] if any(g.problem_id == ALL for g in analysis.groups) else [])
    return [conclusion(analysis, pid) for pid in ids] + cost_lines(analysis)


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
        p = _headline_p(by_axis["attempts"] if "attempts" in by_axis else analysis, g.problem_id)
        row: dict[str, Any] = {"problem_id": g.problem_id, "strategy": g.strategy, "p": p}
        for x in axes:
            other = by_axis[x].group(g.problem_id, g.strategy)
            row[x] = _interval_json(other.ratio.get(p) if other else None)
        rows.append(row)
    return rows


def cost_lines(analysis: Analysis) -> list[str]:
    """'Per attempt, token and second: sdpo / best-of-k to reach 50% on a: attempts 0.36x [...] · tokens ...'."""
    out = []
    for row in analysis.meta.get("ratios_by_x", []):
        parts = []
        for x in X_AXES:
            if x in row:
                iv = row[x]
                shown = "n/a" if iv is None else format_ratio(Interval(iv["value"], iv["low"], iv["high"], iv["horizon"], iv["bound"] or ""))
                parts.append(f"{x} {shown}")
        name = "mean over problems" if row["problem_id"] == ALL else row["problem_id"]
        out.append(f"{name}: {row['strategy']} / {BASELINE} to reach {_pct(row['p'])}, per unit spent: " + " · ".join(parts))
    return out


# ------------------------------------------------------------------ terminal
def print_terminal(console: Any, analysis: Analysis) -> None:
    """The compact table when it fits the terminal, else one block per row (never a word broken), then the conclusions."""
    from rich.table import Table

    headers, rows = table(analysis, compact=True)
    t = Table(title="discovery: " + ", ".join(analysis.problems.values()), header_style="bold", title_justify="left")
    for hdr in headers:
        t.add_column(hdr, no_wrap=True)
    for r in rows:
        t.add_row(*[f"[italic red]{c}[/]" if "not reached" in c else c for c in r])
    if table_width(headers, rows) <= console.width:
        console.print(t)
    else:
        for line in blocks(headers, rows):
            console.print(line, highlight=False, soft_wrap=True)
    for line in conclusions(analysis):
        console.print(line, highlight=False, soft_wrap=False)
    m = analysis.meta
    console.print(
        f"model {', '.join(m['models'])} · budget {', '.join(map(str, m['budgets']))} · {plural(len(m['seeds']), 'seed')} · "
        f"{_pct(analysis.level)} bootstrap intervals · k = {x_axis(analysis)} to reach that discovery probability · "
        f"x best-of-k < 1: fewer {x_axis(analysis)} than best-of-k · >= : censored runs make the mean a lower bound",
        style="dim", highlight=False,
    )


def table_width(headers: list[str], rows: list[list[str]]) -> int:
    """Columns a rich box table needs to show every cell on one line: widest cell + 2 padding + 1 rule per column, + 1."""
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
    return sum(w + 3 for w in widths) + 1


def blocks(headers: list[str], rows: list[list[str]]) -> list[str]:
    """The compact table as one block per row: 'problem · strategy' then 'header  value' lines (for narrow terminals)."""
    width = max(len(h) for h in headers[2:])
    out: list[str] = []
    for r in rows:
        out.append(f"{r[0]} · {r[1]}")
        out += [f"  {h.ljust(width)}  {c}" for h, c in zip(headers[2:], r[2:], strict=True)]
    return out


def _interval_json(iv: Interval | None) -> dict[str, Any] | None:
    if iv is None:
        return None
    return {"value": iv.value, "low": iv.low, "high": iv.high, "reached": iv.value is not None, "bound": iv.bound or None,
            "horizon": iv.horizon}


def to_json(analysis: Analysis) -> dict[str, Any]:
    """Everything in the report as plain JSON: null = not reached within the horizon (never a number)."""
    return {
        "problems": [{"id": k, "title": v} for k, v in analysis.problems.items()],
        "strategies": analysis.strategies, "level": analysis.level, "ps": list(analysis.ps), "n_boot": analysis.n_boot,
        "meta": analysis.meta,
        "conclusions": conclusions(analysis),
        "groups": [
            {
                "problem_id": g.problem_id, "strategy": g.strategy, "estimator": g.estimator, "runs": g.runs,
                "solved_runs": g.solved_runs, "budget": g.budget, "horizon": g.horizon, "samples": g.samples,
                "passes": g.passes,
                "discovery_at_budget": dict(zip(("value", "low", "high"), g.discovery_at_budget, strict=True)),
                "attempts_to_p": {str(p): _interval_json(g.at_p[p]) for p in analysis.ps},
                "ratio_to_best_of_k": {str(p): _interval_json(g.ratio.get(p)) for p in analysis.ps},
                "mean_attempts_restricted": g.mean_attempts, "p_unsolved_at_budget": g.unsolved_mass,
                "mean_is_lower_bound": g.unsolved_mass > 1e-12,
                "wall_time_s": g.wall_time_s, "wall_time_per_attempt_s": g.wall_per_attempt_s,
                "curve": {"k": list(range(1, g.horizon + 1)), "estimate": g.band.estimate.round(6).tolist(),
                          "low": g.band.low.round(6).tolist(), "high": g.band.high.round(6).tolist()},
            }
            for g in analysis.groups
        ],
        "runs": [
            {"path": str(r.path), "problem_id": r.problem_id, "strategy": r.strategy, "seed": r.seed, "status": r.status,
             "budget": r.budget, "attempts_used": r.attempts_used, "discovery_attempt": r.discovery, "passes": r.passes,
             "wall_time_s": r.wall_time_s}
            for r in analysis.runs
        ],
    }


def _csv_rows(analysis: Analysis) -> tuple[list[str], list[list[Any]]]:
    headers = ["problem_id", "title", "strategy", "estimator", "runs", "solved_runs", "budget", "samples", "passes",
               "discovery_at_budget", "discovery_at_budget_low", "discovery_at_budget_high"]
    for p in analysis.ps:
        t = f"p{round(100 * p)}"
        headers += [f"attempts_to_{t}", f"attempts_to_{t}_low", f"attempts_to_{t}_high", f"attempts_to_{t}_text",
                    f"ratio_to_best_of_k_{t}", f"ratio_to_best_of_k_{t}_low", f"ratio_to_best_of_k_{t}_high", f"ratio_to_best_of_k_{t}_text"]
    headers += ["mean_attempts_restricted", "p_unsolved_at_budget", "wall_time_per_attempt_s", "wall_time_s"]

    def num(x: float | None) -> Any:
        return "" if x is None else (int(x) if float(x).is_integer() else round(x, 6))

    rows = []
    for g in analysis.groups:
        title = analysis.problems.get(g.problem_id, "mean over problems")
        row: list[Any] = [g.problem_id, title, g.strategy, g.estimator, g.runs, g.solved_runs, g.budget, g.samples, g.passes,
                          *(round(x, 6) for x in g.discovery_at_budget)]
        for p in analysis.ps:
            a, r = g.at_p[p], g.ratio.get(p)
            row += [num(a.value), num(a.low), num(a.high), format_attempts(a)]
            row += ["", "", "", ""] if r is None else [num(r.value), num(r.low), num(r.high), format_ratio(r)]
        row += [round(g.mean_attempts, 4), round(g.unsolved_mass, 6), num(g.wall_per_attempt_s), num(g.wall_time_s)]
        rows.append(row)
    return headers, rows


# ------------------------------------------------------------------ plots
def _subtitle(analysis: Analysis) -> str:
    m = analysis.meta
    parts = [f"model {', '.join(m['models'])}", f"budget {', '.join(map(str, m['budgets']))}", plural(len(m['seeds']), "seed")]
    if m["batch_sizes"]:
        parts.append(f"batch {', '.join(map(str, m['batch_sizes']))}")
    parts.append(f"{_pct(analysis.level)} bootstrap bands")
    return " · ".join(parts)


def strategy_color(strategies: Sequence[str], name: str) -> str:
    """The registry's colour of a strategy; a name outside it (run folders relabelled by hand, e.g. 'sdpo-lr1e-5')
    gets the next of OTHER_COLORS in the order of `strategies`, the same in every plot and legend of one report."""
    if name in COLORS:
        return COLORS[name]
    others = [s for s in strategies if s not in COLORS]
    return OTHER_COLORS[others.index(name) % len(OTHER_COLORS)] if name in others else OTHER_COLORS[0]


def _draw(ax, analysis: Analysis, problem_id: str, *, legend: bool, small: bool = False) -> None:
    import matplotlib.ticker as mticker

    budget = max(g.budget for g in analysis.groups if g.problem_id == problem_id)
    x = x_axis(analysis)
    for s in analysis.strategies:
        g = analysis.group(problem_id, s)
        if g is None:
            continue
        k = np.arange(1, g.horizon + 1) * g.unit
        color = strategy_color(analysis.strategies, s)
        ax.fill_between(k, g.band.low, g.band.high, step="post", alpha=0.18, color=color, linewidth=0)
        label = s if problem_id == ALL else f"{s}: {g.estimator}"
        ax.step(k, g.band.estimate, where="post", color=color, linewidth=1.4 if small else 2.0, label=label,
                linestyle=LINESTYLES.get(s, "-"))
    for p in analysis.ps:
        ax.axhline(p, color="0.6", linestyle=":", linewidth=0.8)
    if x == "attempts":
        ax.axvline(budget, color="0.4", linestyle="--", linewidth=0.8)
        ax.text(budget, 0.03, f" budget {budget}", color="0.3", fontsize=7 if small else 8, ha="left", va="bottom",
                transform=ax.get_xaxis_transform())
    if all(g.solved_runs == 0 for g in analysis.groups if g.problem_id == problem_id):
        ax.text(0.5, 0.55, "no success in any run", transform=ax.transAxes, ha="center", color="0.35", fontsize=9)
    horizon = max(g.horizon for g in analysis.groups if g.problem_id == problem_id)
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(mticker.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_locator(mticker.NullLocator())
    ax.set_ylim(-0.02, 1.02)
    if x == "attempts":  # labelled integer ticks 1, 2, 5, 10, ..., the budget and the end of the longest curve included
        ax.xaxis.set_major_locator(mticker.FixedLocator(x_ticks(budget, horizon)))
        ax.set_xlim(1, max(horizon, budget) * 1.08)
    else:
        unit = next(g.unit for g in analysis.groups if g.problem_id == problem_id)
        ax.xaxis.set_major_locator(mticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.set_xlim(unit, horizon * unit * 1.08)
    ax.grid(True, which="major", alpha=0.3)
    if legend:  # outside the axes, so it can never cover a band
        ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, fontsize=8 if small else 9, frameon=False)


def x_ticks(budget: int, horizon: int) -> list[int]:
    """1, 2, 5, 10, 20, 50, ... up to the axis end, plus the budget and the horizon (a tick too close to them is dropped)."""
    end = max(budget, horizon)
    ticks = [m * 10**e for e in range(0, len(str(end)) + 1) for m in (1, 2, 5) if m * 10**e <= end]
    marks = sorted({budget, horizon})
    kept = [t for t in ticks if all(max(t, m) / min(t, m) >= 1.3 for m in marks)]
    return sorted(set(kept + marks))


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120, bbox_inches="tight")
    return buf.getvalue()


def curves_figure(analysis: Analysis):
    """The figure of curves.png: discovery@k vs attempts (log-x), one line per strategy with its band, for the single
    problem or the mean over problems. The caller closes it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pid = next(iter(analysis.problems)) if len(analysis.problems) == 1 else ALL
    which = analysis.problems[pid] if pid != ALL else f"mean over {len(analysis.problems)} problems"
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    _draw(ax, analysis, pid, legend=True)
    x = x_axis(analysis)
    ax.set_xlabel(X_LABELS[x] + " (log scale)")
    ax.set_ylabel("discovery@k = P(solved within k attempts)" if x == "attempts" else f"P(solved within {x} spent)")
    ax.set_title(f"Discovery@k — {which}\n{_subtitle(analysis)}", fontsize=10)
    return fig


def plot_curves(analysis: Analysis) -> bytes:
    import matplotlib.pyplot as plt

    fig = curves_figure(analysis)
    data = _png(fig)
    plt.close(fig)
    return data


def plot_problems(analysis: Analysis) -> bytes:
    """Small multiples: one panel per problem, same axes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ids = list(analysis.problems)
    cols = min(3, len(ids))
    rows = (len(ids) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), sharey=True, squeeze=False)
    for i, ax in enumerate(axes.flat):
        if i >= len(ids):
            ax.axis("off")
            continue
        _draw(ax, analysis, ids[i], legend=False, small=True)
        ax.set_title(analysis.problems[ids[i]], fontsize=9)
        if i % cols == 0:
            ax.set_ylabel("discovery@k")
        if i // cols == rows - 1 or i + cols >= len(ids):
            ax.set_xlabel(X_LABELS[x_axis(analysis)] + " (log)")
    handles = [plt.Line2D([], [], color=strategy_color(analysis.strategies, s), linewidth=2, linestyle=LINESTYLES.get(s, "-"), label=s)
               for s in analysis.strategies]
    fig.tight_layout(rect=(0, 0, 1, 0.9))
    fig.legend(handles=handles, loc="upper center", ncol=len(handles), bbox_to_anchor=(0.5, 0.95), frameon=False)
    fig.suptitle(f"Discovery@k per problem — {_subtitle(analysis)}", fontsize=10, y=0.99)
    data = _png(fig)
    plt.close(fig)
    return data


# ------------------------------------------------------------------ files
NOTES = [
    "discovery@k = P(first success within k attempts). best-of-k drawn without stopping: the unbiased pass@k "
    "1 − C(n−c,k)/C(n,k) over all n pooled i.i.d. samples (its curve may run past the per-run budget). "
    "Other strategies: the empirical CDF of the discovery time over seeds, censored at the budget (Kaplan–Meier).",
    "Bands and intervals: {level} percentile bootstrap ({n_boot} replicates, seed {seed}; runs resampled for "
    "sequential strategies, samples for pass@k). With no success at all a bootstrap band collapses to 0: it cannot "
    "see beyond the data — read such a row as 'no evidence of success', not 'probability zero'.",
    "'not reached within N': the estimate never reaches that probability within the N attempts observed; it is "
    "never replaced by a number. A ratio '<r' means best-of-k did not reach it either, so r is an upper bound.",
    "x best-of-k: attempts this strategy needs divided by the attempts best-of-k needs (below 1 = fewer attempts).",
    "mean attempts to success = E[min(T, budget)]; '>=' marks a lower bound because some runs were censored "
    "(unsolved within the budget).",
]


def _notes(analysis: Analysis) -> list[str]:
    return [n.format(level=_pct(analysis.level), n_boot=analysis.n_boot, seed=analysis.meta["bootstrap_seed"]) for n in NOTES]


def _markdown(analysis: Analysis) -> str:
    headers, rows = table(analysis)
    esc = lambda s: str(s).replace("|", "\\|")  # noqa: E731
    lines = ["# sdpo-ttt compare report", "", _subtitle(analysis), "", "## Problems", ""]
    lines += [f"- `{pid}`: {title}" for pid, title in analysis.problems.items()]
    lines += ["", "## Summary", "", "| " + " | ".join(map(esc, headers)) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(map(esc, r)) + " |" for r in rows]
    lines += ["", "## Conclusion", ""] + [f"- {c}" for c in conclusions(analysis)]
    lines += ["", "![discovery curves](curves.png)", ""]
    if len(analysis.problems) > 1:
        lines += ["![per problem](problems.png)", ""]
    lines += ["## Notes", ""] + [f"- {n}" for n in _notes(analysis)]
    if analysis.meta["unfinished_runs"]:
        lines += [f"- {analysis.meta['unfinished_runs']} run(s) not finished: counted as censored where they stopped."]
    return "\n".join(lines) + "\n"


def _html(analysis: Analysis, images: dict[str, bytes]) -> str:
    e = html.escape
    headers, rows = table(analysis)
    img = lambda name, alt: (  # noqa: E731
        f'<img alt="{e(alt)}" src="data:image/png;base64,{base64.b64encode(images[name]).decode()}">' if name in images else ""
    )
    head = "".join(f"<th>{e(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f'<td class="{"nr" if "not reached" in c else ""}">{e(c)}</td>' for c in r) + "</tr>" for r in rows
    )
    problems = "".join(f"<li><code>{e(pid)}</code> — {e(title)}</li>" for pid, title in analysis.problems.items())
    notes = "".join(f"<li>{e(n)}</li>" for n in _notes(analysis))
    concl = "".join(f"<li>{e(c)}</li>" for c in conclusions(analysis))
    per_problem = f"<h2>Per problem</h2>{img('problems.png', 'discovery curves per problem')}" if len(analysis.problems) > 1 else ""
    titles = ", ".join(analysis.problems.values())
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>sdpo-ttt compare: {e(titles)}</title>
<style>
body {{ font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto; max-width: 1200px; color: #222; padding: 0 1em; }}
h1 {{ font-size: 1.5em; margin-bottom: 0.2em; }} .sub {{ color: #555; margin-top: 0; }}
table {{ border-collapse: collapse; font-size: 0.85em; margin: 1em 0; }}
th, td {{ border: 1px solid #ccc; padding: 4px 8px; text-align: left; vertical-align: top; }}
th {{ background: #f3f3f3; }} tr:nth-child(even) td {{ background: #fafafa; }}
td.nr {{ color: #a33; font-style: italic; }}
img {{ max-width: 100%; height: auto; border: 1px solid #eee; }}
.notes li {{ margin: 0.3em 0; color: #444; font-size: 0.9em; }}
</style></head><body>
<h1>sdpo-ttt compare — {e(titles)}</h1>
<p class="sub">{e(_subtitle(analysis))} · {analysis.meta['runs']} runs</p>
<h2>Problems</h2><ul>{problems}</ul>
<h2>Discovery@k</h2>{img('curves.png', 'discovery curves')}
{per_problem}
<h2>Summary</h2><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>
<h2>Conclusion</h2><ul>{concl}</ul>
<h2>How to read this</h2><ul class="notes">{notes}</ul>
</body></html>
"""


def write_report(analysis: Analysis, out_dir: Path) -> list[Path]:
    """Write curves.png, problems.png (several problems), summary.md/.csv/.json and a self-contained report.html."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    images = {"curves.png": plot_curves(analysis)}
    if len(analysis.problems) > 1:
        images["problems.png"] = plot_problems(analysis)
    written = []
    for name, data in images.items():
        (out_dir / name).write_bytes(data)
        written.append(out_dir / name)
    (out_dir / "summary.md").write_text(_markdown(analysis), encoding="utf-8")
    headers, rows = _csv_rows(analysis)
    with (out_dir / "summary.csv").open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(headers)
        w.writerows(rows)
    (out_dir / "summary.json").write_text(json.dumps(to_json(analysis), indent=2) + "\n", encoding="utf-8")
    (out_dir / "report.html").write_text(_html(analysis, images), encoding="utf-8")
    return written + [out_dir / n for n in ("summary.md", "summary.csv", "summary.json", "report.html")]


def build_report(runs_dir: Path, out_dir: Path | None = None, *, ps: Sequence[float] = (0.25, 0.5), level: float = 0.9,
                 n_boot: int = 2000, seed: int = 0, x: str = "attempts") -> tuple[Analysis, list[Path]]:
    """Collect the run directories under runs_dir, analyse them against `x` (attempts | tokens | seconds), add the
    headline ratio on every recorded axis, and write the report (default: runs_dir/report)."""
    runs_dir = Path(runs_dir)
    records = collect_runs(runs_dir)
    analysis = analyze(records, ps=ps, level=level, n_boot=n_boot, seed=seed, x=x)
    analysis.meta["ratios_by_x"] = ratios_by_axis(records, analysis)
    return analysis, write_report(analysis, out_dir or runs_dir / "report")
