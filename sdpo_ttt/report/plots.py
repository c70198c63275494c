"""The report's figures (matplotlib, Agg): discovery@k against attempts, tokens or seconds on a log axis, one
step line and bootstrap band per strategy (and best-of-k's pooled pass@k as a thin line, when it drew without stopping);
curves.png for one problem or the mean over problems, problems.png with one panel per problem. A strategy's colour
and dash come from one place, `style_of`."""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import numpy as np

from sdpo_ttt.report.analysis import ALL, Analysis, x_axis
from sdpo_ttt.report.runs import X_LABELS
from sdpo_ttt.report.text import subtitle
from sdpo_ttt.report.styles import STYLES

OTHER_COLORS = ("#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")  # names outside the registry


def style_of(strategy: str) -> tuple[str, Any] | None:
    """(colour, matplotlib dash) of a strategy (styles.py); None for a name outside it."""
    return STYLES.get(strategy)


def linestyle(strategy: str) -> Any:
    style = style_of(strategy)
    return "-" if style is None else style[1]


def strategy_color(strategies: Sequence[str], name: str) -> str:
    """The registry's colour of a strategy; a name outside it (run folders relabelled by hand, e.g. 'sdpo-lr1e-5')
    gets the next of OTHER_COLORS in the order of `strategies`, the same in every plot and legend of one report."""
    style = style_of(name)
    if style is not None:
        return style[0]
    others = [s for s in strategies if style_of(s) is None]
    return OTHER_COLORS[others.index(name) % len(OTHER_COLORS)] if name in others else OTHER_COLORS[0]


def draw_curves(ax, analysis: Analysis, problem_id: str, *, legend: bool, small: bool = False) -> None:
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
                linestyle=linestyle(s))
        if g.pooled is not None:  # best-of-k's pooled pass@k: lower variance, another estimator, in no ratio
            kp = np.arange(1, len(g.pooled.estimate) + 1) * g.unit
            ax.step(kp, g.pooled.estimate, where="post", color=color, linewidth=0.8, linestyle="-", alpha=0.55,
                    label=f"{s}: {g.pooled_label}, not in ratios" if problem_id != ALL else f"{s}: pooled pass@k (not in ratios)")
    for p in analysis.ps:
        ax.axhline(p, color="0.6", linestyle=":", linewidth=0.8)
    if x == "attempts":
        ax.axvline(budget, color="0.4", linestyle="--", linewidth=0.8)
        ax.text(budget, 0.03, f" budget {budget}", color="0.3", fontsize=7 if small else 8, ha="left", va="bottom",
                transform=ax.get_xaxis_transform())
    if all(g.solved_runs == 0 for g in analysis.groups if g.problem_id == problem_id):
        ax.text(0.5, 0.55, "no success in any run", transform=ax.transAxes, ha="center", color="0.35", fontsize=9)
    horizon = max(max(g.horizon, 0 if g.pooled is None else len(g.pooled.estimate))
                  for g in analysis.groups if g.problem_id == problem_id)
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


def png(fig) -> bytes:
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
    draw_curves(ax, analysis, pid, legend=True)
    x = x_axis(analysis)
    ax.set_xlabel(X_LABELS[x] + " (log scale)")
    ax.set_ylabel("discovery@k = P(solved within k attempts)" if x == "attempts" else f"P(solved within {x} spent)")
    ax.set_title(f"Discovery@k — {which}\n{subtitle(analysis)}", fontsize=10)
    return fig


def plot_curves(analysis: Analysis) -> bytes:
    import matplotlib.pyplot as plt

    fig = curves_figure(analysis)
    data = png(fig)
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
        draw_curves(ax, analysis, ids[i], legend=False, small=True)
        ax.set_title(analysis.problems[ids[i]], fontsize=9)
        if i % cols == 0:
            ax.set_ylabel("discovery@k")
        if i // cols == rows - 1 or i + cols >= len(ids):
            ax.set_xlabel(X_LABELS[x_axis(analysis)] + " (log)")
    handles = [plt.Line2D([], [], color=strategy_color(analysis.strategies, s), linewidth=2, linestyle=linestyle(s), label=s)
               for s in analysis.strategies]
    handles += [plt.Line2D([], [], color=strategy_color(analysis.strategies, g.strategy), linewidth=0.8, alpha=0.55,
                           label=f"{g.strategy}: pooled pass@k (not in ratios)")
                for g in analysis.groups if g.pooled is not None and g.problem_id == ids[0]]
    fig.tight_layout(rect=(0, 0, 1, 0.9))
    fig.legend(handles=handles, loc="upper center", ncol=len(handles), bbox_to_anchor=(0.5, 0.95), frameon=False)
    fig.suptitle(f"Discovery@k per problem — {subtitle(analysis)}", fontsize=10, y=0.99)
    data = png(fig)
    plt.close(fig)
    return data
