"""The report folder: curves.png, problems.png (several problems), summary.md/.csv/.json and a self-contained
report.html, written from an analysis; `build_report` goes from a folder of runs to that folder."""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sdpo_ttt.report.analysis import Analysis, analyze, interval_json, ratios_by_axis
from sdpo_ttt.report.conclusions import conclusions, lineage_lines
from sdpo_ttt.report.estimators import format_attempts, format_ratio
from sdpo_ttt.report.paired import paired_json
from sdpo_ttt.report.plots import plot_curves, plot_problems
from sdpo_ttt.report.runs import collect_runs
from sdpo_ttt.report.text import html_page, markdown


def to_json(analysis: Analysis) -> dict[str, Any]:
    """Everything in the report as plain JSON: null = not reached within the horizon (never a number)."""
    return {
        "problems": [{"id": k, "title": v} for k, v in analysis.problems.items()],
        "strategies": analysis.strategies, "level": analysis.level, "ps": list(analysis.ps), "n_boot": analysis.n_boot,
        "meta": analysis.meta,
        "conclusions": conclusions(analysis),
        "paired": paired_json(analysis.paired),
        "lineages": lineage_lines(analysis),
        "groups": [
            {
                "problem_id": g.problem_id, "strategy": g.strategy, "estimator": g.estimator, "runs": g.runs,
                "solved_runs": g.solved_runs, "budget": g.budget, "horizon": g.horizon, "samples": g.samples,
                "passes": g.passes,
                "discovery_at_budget": dict(zip(("value", "low", "high"), g.discovery_at_budget, strict=True)),
                "attempts_to_p": {str(p): interval_json(g.at_p[p]) for p in analysis.ps},
                "ratio_to_best_of_k": {str(p): interval_json(g.ratio.get(p)) for p in analysis.ps},
                "mean_attempts_restricted": g.mean_attempts, "p_unsolved_at_budget": g.unsolved_mass,
                "mean_is_lower_bound": g.unsolved_mass > 1e-12,
                "wall_time_s": g.wall_time_s, "wall_time_per_attempt_s": g.wall_per_attempt_s,
                "curve": {"k": list(range(1, g.horizon + 1)), "estimate": g.band.estimate.round(6).tolist(),
                          "low": g.band.low.round(6).tolist(), "high": g.band.high.round(6).tolist()},
                "pooled_pass_at_k": None if g.pooled is None else {  # an extra curve: no ratio, no leader uses it
                    "estimator": g.pooled_label, "estimate": g.pooled.estimate.round(6).tolist(),
                    "low": g.pooled.low.round(6).tolist(), "high": g.pooled.high.round(6).tolist()},
            }
            for g in analysis.groups
        ],
        "runs": [
            {"path": str(r.path), "problem_id": r.problem_id, "strategy": r.strategy, "seed": r.seed, "status": r.status,
             "budget": r.budget, "attempts_used": r.attempts_used, "discovery_attempt": r.discovery, "passes": r.passes,
             "wall_time_s": r.wall_time_s, "lineage": list(r.lineage)}
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
    (out_dir / "summary.md").write_text(markdown(analysis), encoding="utf-8")
    headers, rows = _csv_rows(analysis)
    with (out_dir / "summary.csv").open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(headers)
        w.writerows(rows)
    (out_dir / "summary.json").write_text(json.dumps(to_json(analysis), indent=2) + "\n", encoding="utf-8")
    (out_dir / "report.html").write_text(html_page(analysis, images), encoding="utf-8")
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
