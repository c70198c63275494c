"""The report compares like with like (issue 25 part 4), on fabricated runs of a registered-style re-test (2 problems,
4 seeds, budget 16): a leader is named only at a horizon every strategy was given (best-of-k's pooled pass@k is cut at
the sequential runs' budget), and each axis's statement agrees with that axis's curve."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from sdpo_ttt.report.analysis import ALL, analyze, ratios_by_axis
from sdpo_ttt.report.conclusions import conclusions, cost_lines
from sdpo_ttt.report.estimators import pass_at_k
from sdpo_ttt.report.runs import collect_runs
from tests.test_report import fabricate

BUDGET = 16


@pytest.fixture()
def retest(tmp_path: Path) -> Path:
    """sdpo solves 1 run of 4 on each problem; best-of-k, drawn without stopping, passes twice in its 4 x 16 samples:
    pass@16 = 0.44 (below 50% within the budget), but its 64 pooled samples reach 50% at k = 19."""
    root = tmp_path / "retest"
    for pid in ("a", "b"):
        for s in range(4):
            fabricate(root, pid, "sdpo", s, passes=[4] if s == 0 else [])
            fabricate(root, pid, "best-of-k", s, passes=[7] if s < 2 else [], stop=False)
    return root


def test_best_of_k_is_cut_at_the_budget_the_sequential_runs_had(retest: Path) -> None:
    an = analyze(collect_runs(retest), n_boot=200)
    assert pass_at_k(64, 2, 16) < 0.5 <= pass_at_k(64, 2, 19)  # the fixture's premise
    for pid in ("a", "b", ALL):
        g = an.group(pid, "best-of-k")
        assert g.horizon == BUDGET and g.at_p[0.5].value is None
        assert g.band.estimate[-1] == pytest.approx(pass_at_k(64, 2, 16))
    assert "cut at k = 16" in an.group("a", "best-of-k").estimator


def test_no_leader_past_the_horizon_every_strategy_was_given(retest: Path) -> None:
    an = analyze(collect_runs(retest), n_boot=200)
    for line in conclusions(an):
        for n in re.findall(r"discovery in (\d+) attempts", line):
            assert int(n) <= BUDGET, line
    mean = next(c for c in conclusions(an) if c.startswith("mean over problems"))
    assert "sdpo leads, reaching 25% discovery in 5 attempts" in mean and "50%" not in mean  # best-of-k: 50% at 19 > 16


def test_a_leader_is_named_at_the_shortest_horizon(tmp_path: Path) -> None:
    """multi-turn had 32 attempts and reached 50% at 20; sdpo had 16 and reached 25% only: no leader at 50%."""
    root = tmp_path / "budgets"
    for s in range(4):
        fabricate(root, "p", "sdpo", s, passes=[3] if s == 0 else [])
        fabricate(root, "p", "multi-turn", s, passes=[19] if s < 2 else [], budget=32)
    [line] = conclusions(analyze(collect_runs(root), n_boot=100))
    assert "multi-turn leads" not in line.split(".")[0] or "reaching 50%" not in line, line
    assert "sdpo leads, reaching 25% discovery in 4 attempts" in line
    assert "multi-turn reaches 25% only at 20 attempts, beyond the 16 attempts every strategy was given" in line


def costed_run(root: Path, pid: str, strategy: str, seed: int, passes: list[int], seconds_per_batch: float, stop: bool) -> None:
    """A run whose batches of 4 each took `seconds_per_batch` and generated 100 tokens per attempt."""
    d = fabricate(root, pid, strategy, seed, passes=passes, stop=stop)
    rows = [json.loads(line) for line in (d / "attempts.jsonl").read_text().splitlines()]
    for a in rows:
        batch = a["index"] // 4 + 1
        a.update(run_tokens=min(4 * batch, len(rows)) * 100, run_wall_s=batch * seconds_per_batch)
    (d / "attempts.jsonl").write_text("".join(json.dumps(a) + "\n" for a in rows))
    s = json.loads((d / "summary.json").read_text())
    s.update(generated_tokens=rows[-1]["run_tokens"], wall_time_s=rows[-1]["run_wall_s"])
    (d / "summary.json").write_text(json.dumps(s))


@pytest.fixture()
def uneven(tmp_path: Path) -> Path:
    """sdpo solves 1 run of 4 (attempt 10, at 60 s); two unsolved runs were fast (50 s in all), one slow (200 s).
    Taking budget-exhausted runs as censored at what they spent, the seconds curve would count the fast ones out
    early and put sdpo at 50% by 60 s, while its attempts curve says 1 of 4 within 16."""
    root = tmp_path / "uneven"
    for s, (passes, per_batch) in enumerate([([9], 20.0), ([], 12.5), ([], 12.5), ([], 50.0)]):
        costed_run(root, "p", "sdpo", s, passes, per_batch, stop=True)
        costed_run(root, "p", "best-of-k", s, [3], 5.0, stop=False)
    return root


def test_every_axis_says_what_its_curve_says(uneven: Path) -> None:
    records = collect_runs(uneven)
    by_attempts = analyze(records, n_boot=200)
    for x in ("tokens", "seconds"):
        g = analyze(records, n_boot=200, x=x).group("p", "sdpo")
        assert g.band.estimate[-1] == pytest.approx(0.25)  # 1 run of 4 solved, on every axis
    assert by_attempts.group("p", "sdpo").at_p[0.5].value is None
    by_attempts.meta["ratios_by_x"] = ratios_by_axis(records, by_attempts)
    [row] = by_attempts.meta["ratios_by_x"]
    assert row["p"] == 0.5 and row["attempts"]["reached"] is False
    assert row["seconds"]["reached"] is False and row["tokens"]["reached"] is False
    [line] = cost_lines(by_attempts)
    assert not re.search(r"seconds [<\d]", line) and "seconds n/a: not reached" in line, line


def test_an_interrupted_run_is_still_censored_where_it_stopped(tmp_path: Path) -> None:
    root = tmp_path / "cut"
    costed_run(root, "p", "sdpo", 0, [9], 20.0, stop=True)
    fabricate(root, "p", "sdpo", 1, finished=False, used=4)  # stopped after 4 attempts, no summary
    d = root / "p" / "sdpo" / "seed1"
    rows = [json.loads(line) for line in (d / "attempts.jsonl").read_text().splitlines()]
    (d / "attempts.jsonl").write_text("".join(json.dumps({**a, "run_tokens": 400, "run_wall_s": 10.0}) + "\n" for a in rows))
    g = analyze(collect_runs(root), n_boot=50, x="seconds").group("p", "sdpo")
    assert g.band.estimate[-1] == pytest.approx(1.0)  # Kaplan–Meier: the interrupted run left the risk set at 10 s


def test_the_mean_over_problems_agrees_across_axes(tmp_path: Path) -> None:
    """On q sdpo's runs all end by 50 s; on p one solves at 150 s: cut at the shortest curve, the seconds mean would
    drop that discovery, which the attempts mean counts."""
    root = tmp_path / "two"
    for s in range(2):
        costed_run(root, "p", "sdpo", s, [9] if s == 0 else [], 50.0, stop=True)
        costed_run(root, "q", "sdpo", s, [], 12.5, stop=True)
        for pid in ("p", "q"):
            costed_run(root, pid, "best-of-k", s, [], 5.0, stop=False)
    records = collect_runs(root)
    finals = {x: analyze(records, n_boot=50, x=x).group(ALL, "sdpo").band.estimate[-1] for x in ("attempts", "tokens", "seconds")}
    assert finals == pytest.approx({"attempts": 0.25, "tokens": 0.25, "seconds": 0.25})
