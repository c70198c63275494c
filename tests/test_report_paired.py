"""The paired comparison on common random numbers (report/paired.py), on hand-built run records: which attempts the
update changed, discoveries gained and lost against the same-seed best-of-k stream, the censored difference, the
exact sign test against a brute-force enumeration, and where it shows in the report."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from sdpo_ttt.report.paired import Pair, pair, paired_lines, paired_summaries, sign_test
from sdpo_ttt.report.runs import COUPLING_KEYS, RunRecord

BUDGET = 8
SAMPLING = {k: None for k in COUPLING_KEYS} | {"model": "tiny", "batch_size": 4, "max_new_tokens": 32, "temperature": 1.0}


def record(strategy: str, seed: int, ids: list[int], passes: set[int], *, problem: str = "p", budget: int = BUDGET,
           stop: bool = True, status: str | None = None, **coupling: object) -> RunRecord:
    """A run whose attempt i drew the one-token completion (ids[i],) and passed if i (1-based) is in passes; a
    stopping run ends at its first pass."""
    first = min(passes) if passes else None
    n = first if stop and first is not None else len(ids)
    passed = tuple(i + 1 in passes for i in range(n))
    return RunRecord(
        path=Path(f"/runs/{problem}/{strategy}/{seed}"), problem_id=problem, title=problem, strategy=strategy, seed=seed,
        budget=budget, model="tiny", batch_size=4, max_new_tokens=32, stop_on_success=stop,
        status=status or ("solved" if stop and first else "budget_exhausted"), attempts_used=n, discovery=first,
        passes=sum(passed), wall_time_s=1.0, passed=passed, token_ids=tuple((t,) for t in ids[:n]),
        coupling=SAMPLING | coupling)


def brute_sign_test(wins: int, losses: int) -> float:
    """Every assignment of n fair signs: the share at least as far from n/2 as the observed one."""
    n = wins + losses
    far = abs(wins - n / 2)
    hits = sum(abs(sum(s) - n / 2) >= far - 1e-12 for s in itertools.product((0, 1), repeat=n))
    return hits / 2**n


def test_sign_test_equals_the_enumeration_of_every_sign_assignment() -> None:
    for n in range(0, 13):
        for w in range(n + 1):
            assert sign_test(w, n - w) == pytest.approx(brute_sign_test(w, n - w), abs=1e-12), (w, n - w)
    assert sign_test(6, 0) == pytest.approx(2 / 64) and sign_test(0, 0) == 1.0
    with pytest.raises(ValueError, match=">= 0"):
        sign_test(-1, 2)


def test_the_changed_attempts_and_a_discovery_gained_from_a_changed_sample() -> None:
    # best-of-k's stream fails everywhere; the learner draws the same tokens until the update flips attempt 5,
    # then passes at attempt 6 with a changed sample
    base = record("best-of-k", 0, [1, 2, 3, 4, 5, 6, 7, 8], set(), stop=False)
    sdpo = record("sdpo", 0, [1, 2, 3, 4, 50, 60, 7, 8], {6})
    p = pair(sdpo, base)
    assert p.changed == (5, 6) and p.compared == 6 and p.horizon == BUDGET
    assert (p.learner, p.baseline, p.outcome, p.pass_changed) == (6, None, "gained", True)
    assert p.difference == (6 - 9, "<=")  # best-of-k needs more than 8: the learner is at least 3 attempts earlier


def test_an_identical_pass_is_no_gain_and_a_later_one_is_a_loss() -> None:
    base = record("best-of-k", 1, [1, 2, 3, 4, 5, 6, 7, 8], {3, 7}, stop=False)
    same = pair(record("sdpo", 1, [1, 2, 3, 4, 5, 6, 7, 8], {3}), base)  # the update flipped nothing
    assert (same.outcome, same.difference, same.changed, same.pass_changed) == ("tie", (0, ""), (), False)
    later = pair(record("sdpo", 1, [1, 2, 30, 4, 5, 6, 7, 8], {5}), base)  # the update spoilt attempt 3
    assert (later.outcome, later.difference, later.changed) == ("lost", (2, ""), (3,))
    never = pair(record("sdpo", 1, [1, 2, 30, 4, 5, 6, 70, 8], set()), base)
    assert (never.outcome, never.difference) == ("lost", (9 - 3, ">="))  # censored at the budget: at least 6 later
    neither = pair(record("sdpo", 2, [1] * 8, set()), record("best-of-k", 2, [1] * 8, set(), stop=False))
    assert (neither.outcome, neither.difference) == ("tie", (None, ""))


def test_the_horizon_is_what_both_runs_were_given() -> None:
    # best-of-k drew 16 without stopping and passed at 12; the learner had 8 and passed nowhere: a tie, not a loss
    base = record("best-of-k", 0, list(range(16)), {12}, stop=False, budget=16)
    p = pair(record("sdpo", 0, list(range(8)), set()), base)
    assert p.horizon == 8 and p.baseline is None and p.outcome == "tie"
    cut = record("sdpo", 0, list(range(3)), set(), status="interrupted")  # interrupted after 3 attempts
    assert pair(cut, record("best-of-k", 0, list(range(8)), {5}, stop=False)).horizon == 3


def test_summary_over_pairs_counts_gains_losses_and_tests_them() -> None:
    recs = []
    for seed in range(5):  # sdpo passes first on seeds 0-3 (changed samples), best-of-k first on seed 4
        recs.append(record("best-of-k", seed, [10 + seed] * 8, {8} if seed == 4 else set(), stop=False))
        recs.append(record("sdpo", seed, [10 + seed, 99] + [10 + seed] * 6, {2} if seed < 4 else set()))
    recs.append(record("multi-turn", 0, [1] * 8, {1}))  # does not learn: no paired row
    recs.append(record("sdpo", 9, [1] * 8, set()))  # no best-of-k with seed 9
    recs.append(record("sdpo", 0, [1] * 8, set(), problem="q"))
    recs.append(record("best-of-k", 0, [1] * 8, set(), problem="q", stop=False, temperature=0.7))
    [s] = paired_summaries(recs)
    assert s.strategy == "sdpo" and len(s.pairs) == 5
    assert (s.count("gained"), s.count("lost"), s.count("tie")) == (4, 1, 0)
    assert s.p_first == pytest.approx(brute_sign_test(4, 1)) and s.solved_only == (4, 1)
    assert s.changed_fraction == pytest.approx(5 / (4 * 2 + 8))  # 1 changed attempt in each pair, of 2 or 8 compared
    assert len(s.unpaired) == 2 and "no best-of-k run" in s.unpaired[0] and "temperature" in s.unpaired[1]
    [line] = paired_lines([s])
    assert "passed first in 4 (discoveries gained, 4 of 4 from samples the update changed)" in line
    assert "first in 1 (lost)" in line and f"p = {brute_sign_test(4, 1):.3g}" in line
    assert paired_summaries([r for r in recs if r.strategy != "best-of-k"]) == []


def test_the_paired_comparison_is_in_summary_md_json_and_the_terminal(tmp_path: Path) -> None:
    import io

    from rich.console import Console

    from sdpo_ttt.report.text import print_terminal
    from sdpo_ttt.report.write import build_report
    from tests.test_report import fabricate

    root = tmp_path / "runs"
    for seed in range(3):  # fabricated runs record no token ids: the changed attempts are 'not recorded'
        fabricate(root, "a", "sdpo", seed, passes=[2] if seed < 2 else [])
        fabricate(root, "a", "best-of-k", seed, passes=[9] if seed == 0 else [], stop=False)
    an, _ = build_report(root, tmp_path / "r", n_boot=50)
    md = (tmp_path / "r" / "summary.md").read_text()
    assert "## Paired with best-of-k (common random numbers)" in md
    assert "passed first in 2 (discoveries gained)" in md and "| a | 0 | sdpo | 3 | 10 | -7 | not recorded | gained |" in md
    data = json.loads((tmp_path / "r" / "summary.json").read_text())
    [row] = data["paired"]
    assert (row["gained"], row["lost"], row["ties"], row["pairs"]) == (2, 0, 1, 3)
    assert row["per_pair"][2]["difference"] is None and row["per_pair"][1]["difference_bound"] == "<="
    out = io.StringIO()
    print_terminal(Console(file=out, width=200), an)
    assert "sdpo vs best-of-k, paired by (problem, seed)" in out.getvalue()


def test_pair_is_frozen_data() -> None:
    p = Pair("p", 0, "sdpo", 8, None, 3, 0, None)
    assert p.outcome == "lost" and p.pass_changed is None
