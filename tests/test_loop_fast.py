"""The discovery loop end to end on the tiny random model and the fake sandbox passing by arrival order (seconds,
no process started): it stops at the first pass and logs every attempt, and a resumed run equals an uninterrupted one."""

from __future__ import annotations

from pathlib import Path

import pytest
from safetensors.torch import load_file

from sdpo_ttt.run import loop
from sdpo_ttt.problem.schema import load_problem
from sdpo_ttt.run.rundir import RunDir
from tests.fakes import FakeSandbox, load_policy, tiny_config

PROBLEM = load_problem(Path(__file__).resolve().parent.parent / "problems" / "sum-two-ints" / "problem.json")


@pytest.fixture(autouse=True)
def every_answer_is_a_program(monkeypatch: pytest.MonkeyPatch) -> None:
    """The random model writes no code block; let every answer reach the sandbox as a distinct program."""
    monkeypatch.setattr(loop, "extract_code", lambda text: f"print({text!r})\n")


def _run(cfg, path: Path, sandbox: FakeSandbox, *, resume: bool = False) -> tuple[loop.Summary, RunDir]:
    run = RunDir.open_existing(path) if resume else RunDir.create(path, cfg.flat(), PROBLEM.to_json())
    return loop.run_discovery(PROBLEM, cfg, run, load_policy(cfg), sandbox, resume=resume), run


@pytest.mark.parametrize("strategy", ["sdpo", "multi-turn", "best-of-k"])
def test_stops_at_the_first_pass_and_logs_every_attempt(tiny_model_dir: Path, tmp_path: Path, strategy: str) -> None:
    cfg = tiny_config(tiny_model_dir, strategy=strategy, budget=16, batch_size=4)
    sandbox = FakeSandbox(pass_at={6, 7})  # the 7th and 8th attempts pass (step 1)
    summary, run = _run(cfg, tmp_path / "run", sandbox)

    assert summary.status == "solved" and summary.solved and summary.discovery_attempt == 7
    assert summary.attempts_used == 8 and summary.best_score == 1.0
    attempts = run.read_attempts()
    assert [a["index"] for a in attempts] == list(range(8))  # every sampled attempt, none after the winning batch
    assert [a["step"] for a in attempts] == [0] * 4 + [1] * 4
    assert [a["passed"] for a in attempts] == [i in (6, 7) for i in range(8)]
    assert all(a["feedback"] for a in attempts if not a["passed"]) and not attempts[6]["feedback"]
    assert [a["code"] for a in attempts] == sandbox.judged
    assert run.solution_path.read_text() == sandbox.judged[6]  # the first pass, not the second
    assert run.read_summary()["discovery_attempt"] == 7
    updates = [m["step"] for m in run.read_metrics()]
    assert updates == ([] if strategy == "best-of-k" else [0])  # learning after step 0 only: step 1 solved it


def test_resume_equals_uninterrupted(tiny_model_dir: Path, tmp_path: Path) -> None:
    cfg = tiny_config(tiny_model_dir, budget=16, batch_size=4)
    full_summary, full = _run(cfg, tmp_path / "full", FakeSandbox())
    assert full_summary.status == "budget_exhausted" and full_summary.attempts_used == 16

    with pytest.raises(KeyboardInterrupt, match="scripted interrupt"):  # stopped while judging step 2, after step 1's checkpoint: the resumed
        # run samples step 2 from the restored student and trains on it with the restored optimiser and teacher
        _run(cfg, tmp_path / "cut", FakeSandbox(interrupt_on_call=2))
    cut = RunDir.open_existing(tmp_path / "cut")
    assert cut.read_summary()["status"] == "interrupted" and len(cut.read_attempts()) == 8
    summary, resumed = _run(cfg, tmp_path / "cut", FakeSandbox(), resume=True)

    assert summary.status == "budget_exhausted" and summary.attempts_used == 16 and summary.steps == full_summary.steps
    key = ("step", "index", "chain", "completion_ids", "verdict", "score", "feedback", "code")
    assert [[a[k] for k in key] for a in resumed.read_attempts()] == [[a[k] for k in key] for a in full.read_attempts()]
    untimed = lambda rows: [{k: v for k, v in m.items() if not k.startswith("time/")} for m in rows]  # noqa: E731
    assert untimed(resumed.read_metrics()) == untimed(full.read_metrics())
    assert [m["step"] for m in full.read_metrics()] == [0, 1, 2]  # none after the batch that spent the budget
    for adapter in ("student", "teacher"):
        a = load_file(str(full.checkpoint_path / adapter / "adapter_model.safetensors"))
        b = load_file(str(resumed.checkpoint_path / adapter / "adapter_model.safetensors"))
        assert a.keys() == b.keys() and all(a[k].equal(b[k]) for k in a), adapter
