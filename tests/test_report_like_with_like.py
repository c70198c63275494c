"""The report compares like with like (issue 25 part 4), on fabricated runs of a registered-style re-test (4 seeds,
budget 16): every strategy's headline curve, best-of-k drawn without stopping included, is the censored CDF of the
discovery time over seeds (best-of-k's = the first pass in each seed's stream, what the same-seed stopping run would
have found), so runs identical to best-of-k's get 1.00x [1.00x, 1.00x]; its pooled pass@k is an extra curve in no
ratio; a leader is named only at a horizon every strategy was given; each axis's statement agrees with that axis's
curve."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import numpy as np
import pytest

from sdpo_ttt.report.analysis import ALL, analyze, ratios_by_axis
from sdpo_ttt.report.conclusions import conclusion, conclusions, cost_lines
from sdpo_ttt.report.runs import RunRecord, collect_runs, stopped_at_first_pass
from sdpo_ttt.report.write import build_report
from tests.test_report import fabricate

BUDGET = 16


# ------------------------------------------------------------------ best-of-k drawn without stopping, as a stopping run
def fixed_n_record(passed: list[bool], budget: int, *, status: str = "budget_exhausted", batch: int = 4) -> RunRecord:
    """A best-of-k run drawn without stopping, its attempts in stream order, costing 100 tokens and 3 s a batch."""
    n = len(passed)
    tokens = tuple(100.0 * batch * (i // batch + 1) for i in range(n))
    seconds = tuple(3.0 * (i // batch + 1) for i in range(n))
    first = next((i + 1 for i, p in enumerate(passed) if p), None)
    return RunRecord(path=Path("/r"), problem_id="p", title="p", strategy="best-of-k", seed=0, budget=budget, model="m",
                     batch_size=batch, max_new_tokens=8, stop_on_success=False, status=status, attempts_used=n,
                     discovery=first, passes=sum(passed), wall_time_s=seconds[-1] if n else 0.0,
                     costs={"tokens": tokens, "seconds": seconds}, spent={"tokens": tokens[-1] if n else 0.0,
                     "seconds": seconds[-1] if n else 0.0}, passed=tuple(passed))


def brute_stopping_run(passed: list[bool], budget: int, horizon: int, batch: int = 4) -> tuple[int | None, int]:
    """Replay the stream batch by batch as a run that stops at its first pass, with the budget min(budget, horizon):
    (its first pass, the attempts up to which it is known)."""
    h = min(budget, horizon)
    for start in range(0, h, batch):
        rows = passed[start:min(start + batch, h)]
        if len(rows) < min(batch, h - start):  # the stream ended here (interrupted): censored where it stopped
            hit = next((start + i + 1 for i, p in enumerate(rows) if p), None)
            return hit, h if hit else start + len(rows)
        hit = next((start + i + 1 for i, p in enumerate(rows) if p), None)
        if hit:
            return hit, h
    return None, h


def test_a_fixed_n_run_is_the_stopping_run_of_its_seed_brute_force() -> None:
    rng = random.Random(7)
    for _ in range(2000):
        budget = rng.choice([4, 8, 12, 16, 32])
        horizon = rng.choice([4, 8, 12, 16, 32, 64])
        drawn = rng.choice([budget, budget, rng.randint(0, budget)])  # an interrupted run drew fewer
        passed = [rng.random() < rng.choice([0.02, 0.1, 0.4]) for _ in range(drawn)]
        finished = drawn == budget
        r = stopped_at_first_pass(fixed_n_record(passed, budget, status="budget_exhausted" if finished else "interrupted"), horizon)
        first, known = brute_stopping_run(passed, budget, horizon)
        assert (r.discovery, r.observed) == (first, known), (passed, budget, horizon)
        assert r.stop_on_success and r.budget == min(budget, horizon) and r.passes == (first is not None)
        if first is not None:  # what it had spent when its first pass was judged: the end of that batch
            assert r.costs["tokens"][r.discovery - 1] == 400.0 * ((first - 1) // 4 + 1)
        elif r.finished:
            assert r.spent["tokens"] == 400.0 * ((min(budget, horizon, drawn) - 1) // 4 + 1)


def test_the_curve_of_first_passes_is_the_fraction_of_seeds_solved_by_k() -> None:
    from sdpo_ttt.report.estimators import discovery_cdf

    rng = np.random.default_rng(3)
    for _ in range(200):
        streams = [list(rng.random(16) < rng.choice([0.03, 0.2])) for _ in range(rng.integers(1, 9))]
        runs = [stopped_at_first_pass(fixed_n_record(s, 16)) for s in streams]
        curve = discovery_cdf([r.discovery for r in runs], [r.observed for r in runs], 16)
        firsts = [next((i + 1 for i, p in enumerate(s) if p), None) for s in streams]
        brute = [np.mean([f is not None and f <= k for f in firsts]) for k in range(1, 17)]
        assert curve == pytest.approx(brute)


# ------------------------------------------------------------------ the identical-streams case (evolve-cpu-2026-12-07)
STRATEGIES = ("sdpo", "sdpo-evolve", "multi-turn", "evolve")
# first passes per seed and best-of-k's passes in 12 attempts, from that grid's summary.json: every strategy drew
# best-of-k's first batch (same seed, same stream) and all but one run passed exactly where best-of-k's stream did
EVOLVE_CPU = {"max-product-subarray": ([2, 2, 4, 8], [4, 3, 2, 3]), "merge-intervals": ([1, 3, 5, 2], [5, 4, 2, 2])}


def identical_grid(root: Path) -> Path:
    """Every strategy's run stops at best-of-k's first pass, having drawn (and paid for) that whole batch of 4."""
    for pid, (firsts, npasses) in EVOLVE_CPU.items():
        for seed, (first, n) in enumerate(zip(firsts, npasses, strict=True)):
            end = -(-first // 4) * 4
            for s in STRATEGIES:
                costed(fabricate(root, pid, s, seed, passes=[first - 1], budget=12, used=end))
            later = [i for i in range(end, 12)][: n - 1]  # its other passes: later in the stream
            costed(fabricate(root, pid, "best-of-k", seed, passes=[first - 1, *later], budget=12, stop=False))
    return root


def costed(d: Path) -> None:
    """Costs as the loop records them: 400 tokens and 5 s a batch of 4, the same for every strategy."""
    rows = [json.loads(line) for line in (d / "attempts.jsonl").read_text().splitlines()]
    for a in rows:
        a.update(run_tokens=400 * (a["index"] // 4 + 1), run_wall_s=5.0 * (a["index"] // 4 + 1))
    (d / "attempts.jsonl").write_text("".join(json.dumps(a) + "\n" for a in rows))
    s = json.loads((d / "summary.json").read_text())
    s.update(generated_tokens=rows[-1]["run_tokens"], wall_time_s=rows[-1]["run_wall_s"])
    (d / "summary.json").write_text(json.dumps(s))


def test_runs_identical_to_best_of_ks_get_ratio_1_on_every_axis(tmp_path: Path) -> None:
    """The 2026-12-07 report printed 2.00x at 25% and 0.67x at 50% for these (best-of-k by pooled pass@k)."""
    an, _ = build_report(identical_grid(tmp_path / "same"), n_boot=300)
    for pid in (*EVOLVE_CPU, ALL):
        for s in STRATEGIES:
            for p in an.ps:
                iv = an.group(pid, s).ratio[p]
                assert (iv.value, iv.low, iv.high, iv.bound) == (1.0, 1.0, 1.0, ""), (pid, s, p, iv)
    for row in an.meta["ratios_by_x"]:
        for x in ("attempts", "tokens", "seconds"):
            assert (row[x]["value"], row[x]["low"], row[x]["high"]) == (1.0, 1.0, 1.0), (row, x)
    for line in conclusions(an)[:3]:
        assert "sdpo, sdpo-evolve, multi-turn, evolve and best-of-k lead, tied" in line, line
        assert "1.00x [1.00x, 1.00x] (paired by seed: 0 gained, 0 lost, 4 tied)" in line or line.startswith("mean"), line
    bok = an.group("merge-intervals", "best-of-k")
    assert bok.pooled_label == "pooled pass@k (48 i.i.d. samples, cut at k = 12)"  # kept, drawn dotted, in no ratio
    assert "first passes" in bok.estimator


# ------------------------------------------------------------------ horizons
@pytest.fixture()
def retest(tmp_path: Path) -> Path:
    """sdpo solves 1 run of 4 on each problem at attempt 4; best-of-k, drawn without stopping with twice the budget,
    first passes at attempt 6 in one seed and at 20 in two: 50% only at 20, past the 16 attempts sdpo had."""
    root = tmp_path / "retest"
    for pid in ("a", "b"):
        for s in range(4):
            fabricate(root, pid, "sdpo", s, passes=[3] if s == 0 else [])
            fabricate(root, pid, "best-of-k", s, passes=[5] if s == 0 else [19, 25] if s < 3 else [], stop=False, budget=32)
    return root


def test_best_of_k_is_cut_at_the_budget_the_sequential_runs_had(retest: Path) -> None:
    an = analyze(collect_runs(retest), n_boot=200)
    for pid in ("a", "b", ALL):
        g = an.group(pid, "best-of-k")
        assert g.horizon == BUDGET and g.at_p[0.5].value is None and g.at_p[0.25].value == 6
        assert g.band.estimate[-1] == pytest.approx(0.25)  # the first passes at 20 are censored at 16
        assert len(g.pooled.estimate) == BUDGET  # the pooled pass@k too
    assert an.group("a", "best-of-k").estimator == "censored CDF (4 seeds, first passes, cut at 16 attempts)"
    assert an.group("a", "sdpo").ratio[0.25].value == pytest.approx(4 / 6)


def test_no_leader_past_the_horizon_every_strategy_was_given(retest: Path) -> None:
    an = analyze(collect_runs(retest), n_boot=200)
    for line in conclusions(an):
        for n in re.findall(r"discovery in (\d+) attempts", line):
            assert int(n) <= BUDGET, line
    mean = conclusion(an, ALL)
    assert "sdpo leads, reaching 25% discovery in 4 attempts" in mean and "50%" not in mean  # best-of-k: 50% at 20 > 16


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
