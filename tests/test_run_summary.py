"""The summary of a run agrees with its attempts, whatever stop_on_success says (issue #15, item 1)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sdpo_ttt.config.tree import SolveConfig
from sdpo_ttt.run.loop import run_discovery
from sdpo_ttt.problem.schema import load_problem
from sdpo_ttt.run.rundir import RunDir
from tests.fakes import FakePolicy, FakeSandbox, program

PROBLEM = Path(__file__).resolve().parent.parent / "problems" / "sum-two-ints" / "problem.json"


def _run(tmp_path: Path, script: list[str], **cfg_values):
    problem = load_problem(PROBLEM)
    cfg = SolveConfig.model_validate({"strategy": "best-of-k", "budget": len(script), "batch_size": 2, **cfg_values})
    run = RunDir.create(tmp_path / "run", cfg.model_dump(mode="json"), problem.to_json())
    summary = run_discovery(problem, cfg, run, FakePolicy(script), FakeSandbox())
    return summary, run


def test_passes_without_stopping_are_recorded(tmp_path: Path) -> None:
    # the case of the issue: budget 4, attempts 2 and 4 pass, stop_on_success off
    script = [program("a", score=0.5), program("b", passes=True), program("c"), program("d", passes=True)]
    summary, run = _run(tmp_path, script, stop_on_success=False)
    on_disk = json.loads(run.summary_path.read_text())
    assert on_disk["solved"] is True and summary.solved
    assert on_disk["discovery_attempt"] == 2
    assert on_disk["attempts_passed"] == 2
    assert on_disk["attempts_used"] == 4
    assert on_disk["status"] == "budget_exhausted" and on_disk["stop_reason"] == "attempts"
    assert run.solution_path.read_text() == "print('b')\n# passes\n"  # the FIRST passing program
    attempts = run.read_attempts()
    assert sum(a["passed"] for a in attempts) == on_disk["attempts_passed"]


def test_no_pass_without_stopping(tmp_path: Path) -> None:
    summary, run = _run(tmp_path, [program(x, score=0.25) for x in "abcd"], stop_on_success=False)
    on_disk = json.loads(run.summary_path.read_text())
    assert on_disk["solved"] is False and on_disk["discovery_attempt"] is None and on_disk["attempts_passed"] == 0
    assert on_disk["best_score"] == 0.25
    assert not run.solution_path.exists()


def test_stop_at_success_counts_the_batch(tmp_path: Path) -> None:
    # a batch of 2 where both pass: the run stops after it, and says both passed, the first being attempt 3
    script = [program("a"), program("b"), program("c", passes=True), program("d", passes=True), program("e"), program("f")]
    summary, run = _run(tmp_path, script)
    assert summary.status == "solved" and summary.stop_reason == "success"
    assert summary.discovery_attempt == 3 and summary.attempts_passed == 2 and summary.attempts_used == 4
    assert run.solution_path.read_text() == "print('c')\n# passes\n"


@pytest.mark.parametrize("stop", [True, False])
def test_resume_keeps_the_pass_count(tmp_path: Path, stop: bool) -> None:
    """A pass in a step before the kill still counts after resuming (stop off: the run goes on after it)."""
    problem = load_problem(PROBLEM)
    script = [program("a", passes=not stop), program("b"), program("c"), program("d", passes=True)]
    cfg = SolveConfig.model_validate({"strategy": "best-of-k", "budget": 4, "batch_size": 2, "stop_on_success": stop})
    run = RunDir.create(tmp_path / "run", cfg.model_dump(mode="json"), problem.to_json())
    with pytest.raises(KeyboardInterrupt, match="killed"):
        run_discovery(problem, cfg, run, FakePolicy(script, interrupt_after=2), FakeSandbox())
    interrupted = json.loads(run.summary_path.read_text())
    assert interrupted["status"] == "interrupted" and interrupted["attempts_passed"] == (0 if stop else 1)
    resumed_policy = FakePolicy(script, drawn=2)
    summary = run_discovery(problem, cfg, run, resumed_policy, FakeSandbox(), resume=True)
    assert summary.attempts_passed == (1 if stop else 2)
    assert summary.discovery_attempt == (4 if stop else 1)
    first = "print('d')" if stop else "print('a')"
    assert run.solution_path.read_text().startswith(first)
