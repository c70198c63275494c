"""Config resolution (defaults < file < CLI), re-prompt text, and the run directory writer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sdpo_ttt.config import SolveConfig, build_config, read_config_file
from sdpo_ttt.errors import ConfigError, UserError
from sdpo_ttt.reprompt import multi_turn_user_turn, teacher_user_turn
from sdpo_ttt.runs import RunDir


def test_cli_overrides_file_and_none_does_not(tmp_path: Path) -> None:
    f = tmp_path / "c.toml"
    f.write_text('budget = 32\nloss = "full"\nlora-rank = 4\n')
    cfg = build_config(read_config_file(f), {"budget": 8, "loss": None})
    assert (cfg.budget, cfg.loss, cfg.lora_rank) == (8, "full", 4)


def test_yaml_config(tmp_path: Path) -> None:
    f = tmp_path / "c.yaml"
    f.write_text("teacher: frozen\nalpha: 0.5\n")
    cfg = build_config(read_config_file(f), {})
    assert cfg.teacher == "frozen" and cfg.alpha == 0.5


@pytest.mark.parametrize(
    "values, needle",
    [({"bugdet": 3}, "unknown option 'bugdet'"), ({"alpha": 2}, "'alpha'"), ({"loss": "kl"}, "'loss'")],
)
def test_bad_config_names_the_option(values: dict, needle: str) -> None:
    with pytest.raises(ConfigError) as e:
        build_config(values, {})
    assert needle in str(e.value)


def test_bad_config_file(tmp_path: Path) -> None:
    f = tmp_path / "c.toml"
    f.write_text("budget = = 3")
    with pytest.raises(ConfigError, match="cannot parse"):
        read_config_file(f)
    with pytest.raises(ConfigError, match="no such config file"):
        read_config_file(tmp_path / "missing.toml")


def test_batch_size_default_depends_on_device() -> None:
    assert SolveConfig().resolved_batch_size(on_gpu=False) == 8
    assert SolveConfig().resolved_batch_size(on_gpu=True) == 16
    assert SolveConfig(batch_size=3).resolved_batch_size(on_gpu=True) == 3


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


def test_adv_clip_only_with_token_or_sequence_loss() -> None:
    with pytest.raises(ConfigError, match="adv_clip applies to the token and sequence losses"):
        build_config({"adv_clip": 1.0}, {})
    assert build_config({"adv_clip": 1.0, "loss": "sequence"}, {}).adv_clip == 1.0
