"""Report on fabricated run directories (the loop is tested elsewhere): files, self-contained HTML, 'not reached', CSV/JSON."""

from __future__ import annotations

import csv
import json
import re
from dataclasses import asdict
from pathlib import Path

import pytest

from sdpo_ttt.config.tree import SolveConfig
from sdpo_ttt.errors import UserError
from sdpo_ttt.run.loop import Summary
from sdpo_ttt.problem.schema import load_problem
from sdpo_ttt.report.analysis import analyze
from sdpo_ttt.report.runs import collect_runs
from sdpo_ttt.report.text import table
from sdpo_ttt.report.write import build_report
from sdpo_ttt.run.rundir import RunDir

BUDGET = 16
SHIPPED = load_problem(Path(__file__).resolve().parent.parent / "problems" / "sum-two-ints" / "problem.json")


def fabricate(root: Path, problem: str, strategy: str, seed: int, *, passes: list[int] = (), budget: int = BUDGET,
              stop: bool = True, finished: bool = True, used: int | None = None, title: str | None = None) -> Path:
    """A run directory as the loop leaves it, written through RunDir (so a format change breaks this test):
    attempts with the given 0-based indices passing."""
    d = root / problem / strategy / f"seed{seed}"
    cfg = SolveConfig(strategy=strategy, seed=seed, budget=budget, model="tiny-model", batch_size=4, max_new_tokens=32,
                      stop_on_success=stop)
    prob = SHIPPED.model_copy(update={"id": problem, "title": title or f"The {problem} problem"})
    run = RunDir.create(d, cfg.flat(), prob.to_json())
    first = min(passes) if passes else None
    n = used if used is not None else (first + 1 if (stop and first is not None) else budget)
    for i in range(n):
        run.append_attempt({"step": i // 4, "index": i, "passed": i in passes, "score": 1.0 if i in passes else 0.2})
    if finished:
        solved = stop and first is not None
        run.write_summary(asdict(Summary(
            status="solved" if solved else "budget_exhausted", solved=solved, problem_id=problem, strategy=strategy,
            seed=seed, budget=budget, attempts_used=n, discovery_attempt=first + 1 if solved else None,
            steps=(n + 3) // 4, best_score=1.0, wall_time_s=2.0 * n, attempts_passed=len([p for p in passes if p < n]))))
    return d


def fabricate_problem_a(root: Path) -> Path:
    """Problem a, 3 seeds each: sdpo solves at attempts 3, 5 and never; multi-turn never; best-of-k fixed-n with
    2 passes in its 3 x 16 samples."""
    fabricate(root, "a", "sdpo", 0, passes=[2])
    fabricate(root, "a", "sdpo", 1, passes=[4])
    fabricate(root, "a", "sdpo", 2)
    for s in range(3):
        fabricate(root, "a", "multi-turn", s)
    fabricate(root, "a", "best-of-k", 0, passes=[7], stop=False)
    fabricate(root, "a", "best-of-k", 1, passes=[3], stop=False)
    fabricate(root, "a", "best-of-k", 2, stop=False)
    return root


@pytest.fixture()
def grid(tmp_path: Path) -> Path:
    root = fabricate_problem_a(tmp_path / "cmp")
    # problem b: nobody solves it
    for strat in ("sdpo", "multi-turn"):
        for s in range(3):
            fabricate(root, "b", strat, s, title="Bee <script>")
    for s in range(3):
        fabricate(root, "b", "best-of-k", s, stop=False, title="Bee <script>")
    (root / "report").mkdir()  # an old report folder is not a run
    return root


def test_collect_reads_every_run(grid: Path) -> None:
    runs = collect_runs(grid)
    assert len(runs) == 18
    a_sdpo = sorted((r for r in runs if r.problem_id == "a" and r.strategy == "sdpo"), key=lambda r: r.seed)
    assert [r.discovery for r in a_sdpo] == [3, 5, None]
    assert [r.attempts_used for r in a_sdpo] == [3, 5, BUDGET]
    bok = [r for r in runs if r.problem_id == "a" and r.strategy == "best-of-k"]
    assert sum(r.passes for r in bok) == 2 and all(r.attempts_used == BUDGET for r in bok)


def test_numbers_agree_with_the_run_directories(grid: Path) -> None:
    an = analyze(collect_runs(grid), n_boot=200)
    sdpo = an.group("a", "sdpo")
    assert sdpo.estimator.startswith("censored CDF") and sdpo.solved_runs == 2
    assert sdpo.band.estimate[2] == pytest.approx(1 / 3) and sdpo.band.estimate[4] == pytest.approx(2 / 3)
    assert sdpo.at_p[0.25].value == 3 and sdpo.at_p[0.5].value == 5
    bok = an.group("a", "best-of-k")
    # drawn without stopping: each seed's first pass (attempts 8, 4, none), the same estimator as sdpo's
    assert bok.estimator == "censored CDF (3 seeds, first passes)" and bok.horizon == 16 and bok.solved_runs == 2
    assert bok.band.estimate[3] == pytest.approx(1 / 3) and bok.band.estimate[7] == pytest.approx(2 / 3)
    assert bok.at_p[0.25].value == 4 and sdpo.ratio[0.25].value == pytest.approx(3 / 4)
    # the 48 pooled i.i.d. samples as an extra curve, cut at the budget sdpo and multi-turn had: pass@k with n=48,
    # c=2 reaches 25% at k = 7 (1 - C(46,k)/C(48,k)); it is in no ratio
    assert bok.pooled_label == "pooled pass@k (48 i.i.d. samples, cut at k = 16)" and len(bok.pooled.estimate) == 16
    assert bok.pooled.estimate[0] == pytest.approx(2 / 48) and bok.pooled.estimate[6] >= 0.25 > bok.pooled.estimate[5]
    mt = an.group("a", "multi-turn")
    assert mt.at_p[0.25].value is None and mt.ratio[0.25].value is None
    assert mt.mean_attempts == pytest.approx(BUDGET) and mt.unsolved_mass == pytest.approx(1.0)
    assert an.group("all", "sdpo") is not None  # several problems: a mean-over-problems row


def test_report_files_html_and_not_reached(grid: Path) -> None:
    an, paths = build_report(grid, n_boot=200)
    out = grid / "report"
    for name in ("curves.png", "problems.png", "summary.md", "summary.csv", "summary.json", "report.html"):
        assert (out / name).exists() and (out / name).stat().st_size > 0, name
        assert out / name in paths
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = (out / "report.html").read_text()
    # self-contained: images inline, no external fetches of any kind
    assert page.count('src="data:image/png;base64,') == 2
    assert not re.search(r'(src|href)="(?!data:)', page) and "http" not in page.replace("http-equiv", "")
    assert "The a problem" in page and "Bee &lt;script&gt;" in page and "<script>" not in page
    assert "not reached within 16" in page and "tiny-model" in page
    md = (out / "summary.md").read_text()
    assert "not reached within 16" in md and "The a problem" in md
    headers, rows = table(an)
    b_sdpo = next(r for r in rows if r[0] == "b" and r[1] == "sdpo")
    assert "not reached within 16" in b_sdpo[headers.index("attempts to 25% [90% CI]")]


def test_csv_and_json_content(grid: Path) -> None:
    build_report(grid, n_boot=200)
    out = grid / "report"
    rows = list(csv.DictReader((out / "summary.csv").open()))
    by = {(r["problem_id"], r["strategy"]): r for r in rows}
    assert set(by) >= {("a", "sdpo"), ("a", "best-of-k"), ("b", "multi-turn"), ("all", "sdpo")}
    assert by[("a", "sdpo")]["attempts_to_p25"] == "3" and by[("a", "sdpo")]["attempts_to_p50"] == "5"
    assert by[("a", "sdpo")]["solved_runs"] == "2" and by[("a", "sdpo")]["title"] == "The a problem"
    # not reached: an empty cell plus the words, never a number
    assert by[("b", "sdpo")]["attempts_to_p25"] == "" and by[("b", "sdpo")]["attempts_to_p25_text"] == "not reached within 16"
    assert by[("a", "best-of-k")]["ratio_to_best_of_k_p25"] == ""
    data = json.loads((out / "summary.json").read_text())
    groups = {(g["problem_id"], g["strategy"]): g for g in data["groups"]}
    assert groups[("b", "sdpo")]["attempts_to_p"]["0.25"] == {"value": None, "low": None, "high": None, "reached": False,
                                                             "bound": None, "horizon": 16}
    assert groups[("a", "sdpo")]["attempts_to_p"]["0.5"]["value"] == 5
    assert groups[("a", "sdpo")]["ratio_to_best_of_k"]["0.25"]["value"] == pytest.approx(3 / 4)
    assert groups[("a", "sdpo")]["pooled_pass_at_k"] is None
    assert groups[("a", "best-of-k")]["pooled_pass_at_k"]["estimate"][0] == pytest.approx(2 / 48, abs=1e-6)
    assert groups[("a", "sdpo")]["wall_time_s"] == pytest.approx(2.0 * (3 + 5 + 16))
    assert len(groups[("a", "sdpo")]["curve"]["estimate"]) == 16
    assert {r["path"] for r in data["runs"]} == {str(p.path) for p in collect_runs(grid)}
    assert data["meta"]["models"] == ["tiny-model"] and data["meta"]["budgets"] == [16]


def test_report_is_reproducible(grid: Path, tmp_path: Path) -> None:
    build_report(grid, tmp_path / "r1", n_boot=100)
    build_report(grid, tmp_path / "r2", n_boot=100)
    assert (tmp_path / "r1" / "summary.json").read_text() == (tmp_path / "r2" / "summary.json").read_text()


def test_single_problem_and_unfinished_runs(tmp_path: Path) -> None:
    root = tmp_path / "one"
    fabricate(root, "solo", "sdpo", 0, passes=[1])
    fabricate(root, "solo", "sdpo", 1, finished=False, used=6)  # killed after 6 attempts: censored at 6
    fabricate(root, "solo", "best-of-k", 0, passes=[0])  # stopped on success: censored-CDF estimator, not pass@k
    an, _ = build_report(root, n_boot=100)
    assert not (root / "report" / "problems.png").exists()
    assert an.group("solo", "best-of-k").estimator.startswith("censored CDF")
    assert an.meta["unfinished_runs"] == 1
    assert an.group("solo", "sdpo").band.estimate[1] == pytest.approx(0.5)
    assert "not finished" in (root / "report" / "summary.md").read_text()


def test_no_runs_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="holds no run directories"):
        collect_runs(tmp_path)
    with pytest.raises(UserError, match="missing: no such folder"):
        collect_runs(tmp_path / "missing")


def test_strategies_outside_the_registry_get_distinct_colours_in_plots_and_legend() -> None:
    from sdpo_ttt.report.plots import strategy_color, style_of

    names = ["multi-turn", "best-of-k", "sdpo-lr1e-4", "sdpo-lr1e-5"]
    colours = [strategy_color(names, s) for s in names]
    assert colours[:2] == [style_of("multi-turn")[0], style_of("best-of-k")[0]]
    assert len(set(colours)) == 4  # relabelled folders never share a colour (they did: matplotlib's cycle vs a blue legend)
    assert strategy_color(names, "sdpo-lr1e-5") == strategy_color(list(reversed(names)), "sdpo-lr1e-4")  # by order
