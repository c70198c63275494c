"""The conclusion, in words: which strategy leads on each problem (strategies whose curves tie are named together),
and whether its ratio to best-of-k excludes 1, with the paired count of the same seeds beside it; then the headline
ratio on every axis the runs recorded (attempts, tokens, seconds)."""

from __future__ import annotations

from sdpo_ttt.report.analysis import ALL, Analysis, common_horizon, headline_p, within, x_axis
from sdpo_ttt.report.estimators import Interval, format_ratio
from sdpo_ttt.report.paired import paired_tally
from sdpo_ttt.report.runs import X_AXES
from sdpo_ttt.report.words import amount, listing, pct, plural
from sdpo_ttt.config.strategies import BASELINE


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
    lv = pct(analysis.level)
    if not groups or all(g.solved_runs == 0 for g in groups):
        return f"{name}: no strategy solved it within the budget — inconclusive."
    p = headline_p(analysis, problem_id)
    x = x_axis(analysis)
    h = common_horizon(analysis, problem_id)  # the leader is named within what every strategy was given
    inf = float("inf")
    at_h = lambda g: float(g.band.estimate[min(g.horizon, max(1, round(h / g.unit))) - 1])  # noqa: E731
    rank = lambda g: (g.at_p[p].value if within(g.at_p[p], h) else inf, round(-at_h(g), 9))  # noqa: E731
    lead = min(groups, key=rank)
    tied = [g.strategy for g in groups if rank(g) == rank(lead)]
    who = f"{lead.strategy} leads" if len(tied) == 1 else f"{listing(tied)} lead, tied"
    given = f"the {amount(h, x)} every strategy was given"
    if within(lead.at_p[p], h):
        out = f"{name}: {who}, reaching {pct(p)} discovery in {amount(lead.at_p[p].value, x)} (point estimate)."
    else:
        out = f"{name}: {who} with discovery {at_h(lead):.2f} at {given}; no strategy reached {pct(p)} within it."
    for g in groups:
        v = g.at_p[p].value
        if v is not None and not within(g.at_p[p], h):
            out += f" {g.strategy} reaches {pct(p)} only at {amount(v, x)}, beyond {given}: not comparable there."
    base = next((g for g in groups if g.strategy == BASELINE), None)
    if base is None:
        return out + f" No {BASELINE} runs to compare with — inconclusive."
    for g in groups:
        if g.strategy == BASELINE:
            continue
        if g.solved_runs == 0:
            span = f"within {g.budget} attempts" if x == "attempts" else f"within the {x} its runs spent"
            out += (f" {g.strategy} solved no run: it did not reach {pct(p)} {span}, and with no success to"
                    " resample there is no interval — inconclusive.")
            continue
        iv = g.ratio.get(p)
        verdict = ratio_verdict(iv)
        shown = format_ratio(iv) if iv is not None else "n/a"
        tally = paired_tally(analysis.paired, g.strategy, None if problem_id == ALL else problem_id)
        shown += f" ({tally})" if tally else ""
        if verdict == "fewer":
            out += f" {g.strategy} needs fewer {x} than {BASELINE} to reach {pct(p)}: {shown}, the {lv} interval excludes 1."
        elif verdict == "more":
            out += f" {g.strategy} needs more {x} than {BASELINE} to reach {pct(p)}: {shown}, the {lv} interval excludes 1."
        else:
            out += f" {g.strategy} vs {BASELINE} at {pct(p)}: {shown}, the {lv} interval includes 1 — inconclusive."
    return out


def conclusions(analysis: Analysis) -> list[str]:
    """The conclusion for every problem, and for the mean over problems when there is one; then the headline
    ratio on every axis the runs recorded (attempts, tokens, seconds), when that was computed."""
    ids = list(analysis.problems) + ([ALL] if any(g.problem_id == ALL for g in analysis.groups) else [])
    return [conclusion(analysis, pid) for pid in ids] + cost_lines(analysis)


def lineage_lines(analysis: Analysis) -> list[str]:
    """'two-sum/evolve/seed1: attempt 23 ← 14 ← 3 (2 refinements of a plain sample)' for every solved run that
    logged parents (evolve, sdpo-evolve)."""
    out = []
    for r in sorted(analysis.runs, key=lambda r: (r.problem_id, analysis.strategies.index(r.strategy), r.seed)):
        if r.lineage:
            steps = len(r.lineage) - 1
            how = f"{plural(steps, 'refinement')} of a plain sample" if steps else "a plain sample"
            out.append(f"{r.problem_id}/{r.strategy}/seed{r.seed}: attempt {' ← '.join(map(str, r.lineage))} ({how})")
    return out


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
        out.append(f"{name}: {row['strategy']} / {BASELINE} to reach {pct(row['p'])}, per unit spent: " + " · ".join(parts))
    return out
