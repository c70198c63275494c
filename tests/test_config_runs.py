"""Re-prompt text and the run directory writer (the config itself: tests/test_config.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sdpo_ttt.errors import UserError
from sdpo_ttt.sdpo.reprompt import multi_turn_user_turn, teacher_user_turn
from sdpo_ttt.run.rundir import RunDir


def test_teacher_reprompt_layout() -> None:
    q = "Add two numbers."
    assert teacher_user_turn(q, None, None) == q  # nothing to add: same context as the student
    t = teacher_user_turn(q, "test 1 failed: expected 3, got 4", "print(1)")
    assert t.startswith(q)
    assert t.index("Correct solution:") < t.index("feedback from your unsuccessful earlier attempt") < t.index("Correctly solve the original question.")
    assert "expected 3, got 4" in t and "print(1)" in t


def test_multi_turn_keeps_feedback_order() -> None:
    t = multi_turn_user_turn("Q", ["first", "second"])
    assert t.index("first") < t.index("second") and t.endswith("Correctly solve the original question.")
    assert multi_turn_user_turn("Q", []) == "Q"


def test_run_dir_create_refuses_existing(tmp_path: Path) -> None:
    RunDir.create(tmp_path / "r", {"a": 1}, "{}")
    with pytest.raises(UserError, match="already holds files"):
        RunDir.create(tmp_path / "r", {"a": 1}, "{}")


def test_run_dir_logs_truncate_and_checkpoint(tmp_path: Path) -> None:
    run = RunDir.create(tmp_path / "r", {"a": 1}, "{}")
    for step in range(3):
        for i in range(2):
            run.append_attempt({"step": step, "index": 2 * step + i})
        run.append_metrics({"step": step, "loss": 0.1})
    with run.attempts_path.open("a") as f:  # a torn line from a kill
        f.write('{"step": 3, "ind')
    assert len(run.read_attempts()) == 6
    run.truncate_after_step(1)
    assert [r["index"] for r in run.read_attempts()] == [0, 1, 2, 3]
    assert [r["step"] for r in run.read_metrics()] == [0, 1]

    def write(d: Path) -> None:
        (d / "weights.bin").write_bytes(b"x")

    assert run.read_checkpoint_state() is None
    run.save_checkpoint({"step": 1}, write)
    run.save_checkpoint({"step": 2}, write)
    assert run.read_checkpoint_state() == {"step": 2}
    assert (run.checkpoint_path / "weights.bin").exists()
    assert not any(p.name.startswith(".checkpoint") for p in run.path.iterdir())


def test_run_dir_finished_only_with_final_status(tmp_path: Path) -> None:
    run = RunDir.create(tmp_path / "r", {}, "{}")
    assert not run.is_finished()
    run.write_summary({"status": "interrupted"})
    assert not run.is_finished()
    run.write_summary({"status": "solved"})
    assert run.is_finished()
    assert json.loads(run.summary_path.read_text())["status"] == "solved"
