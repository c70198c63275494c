"""Experiment tracking (issue #15, item 4): TensorBoard event files read back, wandb offline, nothing when not asked."""

from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from typer.testing import CliRunner

from sdpo_ttt.cli import app
from sdpo_ttt.config.tree import SolveConfig
from sdpo_ttt.errors import ConfigError, UserError
from sdpo_ttt.run.loop import run_discovery
from sdpo_ttt.problem.schema import load_problem
from sdpo_ttt.run.rundir import RunDir
from sdpo_ttt.run.tracking import attempt_stats, numeric, open_trackers
from tests.fakes import FakePolicy, FakeSandbox, program

PROBLEM = Path(__file__).resolve().parent.parent / "problems" / "sum-two-ints" / "problem.json"


def read_scalars(log_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """tag -> [(step, value)], as TensorBoard's own reader sees the event files in log_dir."""
    acc = EventAccumulator(str(log_dir))
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def test_attempt_stats_and_numeric() -> None:
    recs = [{"passed": False, "score": 0.5, "verdict": "wrong_answer", "completion_tokens": 10, "finish_reason": "eos"},
            {"passed": True, "score": 1.0, "verdict": "passed", "completion_tokens": 30, "finish_reason": "length"}]
    s = attempt_stats(recs, best_score=1.0, attempts_used=6, passed_so_far=1)
    assert s["attempts/pass_rate"] == 0.5 and s["attempts/mean_score"] == 0.75 and s["attempts/truncated_frac"] == 0.5
    assert s["attempts/mean_completion_tokens"] == 20 and s["attempts/verdict_frac/passed"] == 0.5 and s["run/attempts_used"] == 6
    assert numeric({"step": 3, "loss": 1, "ok": True, "warning": "x", "grad_norm": 0.5}) == {"loss": 1.0, "grad_norm": 0.5}


def _run(tmp_path: Path, **cfg_values):
    problem = load_problem(PROBLEM)
    cfg = SolveConfig.model_validate({"strategy": "multi-turn", "budget": 6, "batch_size": 2, **cfg_values})
    run = RunDir.create(tmp_path / "run", cfg.flat(), problem.to_json())
    script = [program("a", score=0.25), program("b"), program("c", score=0.5), program("d"), program("e"), program("f", score=0.75)]
    run_discovery(problem, cfg, run, FakePolicy(script), FakeSandbox())
    return run


def test_tensorboard_gets_every_metric_and_attempt_statistics(tmp_path: Path) -> None:
    run = _run(tmp_path, track=["tensorboard"])
    scalars = read_scalars(run.path / "tensorboard")
    for m in run.read_metrics():  # every metrics.jsonl scalar, at its step
        for key, value in numeric(m).items():
            assert (m["step"], pytest.approx(value, rel=1e-6)) in scalars[key], key
    assert [s for s, _ in scalars["attempts/mean_score"]] == [0, 1, 2]
    assert [v for _, v in scalars["run/best_score"]] == [0.25, 0.5, 0.75]


def test_tensorboard_event_files_are_one_per_run_and_flushed_each_step(tmp_path: Path) -> None:
    trackers = open_trackers(["tensorboard"], tmp_path, "x", {})
    trackers.scalars(0, {"loss": 0.5})
    trackers.scalars(1, {"loss": 0.25, "a/b": -3.0})
    assert read_scalars(tmp_path / "tensorboard") == {"loss": [(0, 0.5), (1, 0.25)], "a/b": [(1, -3.0)]}  # before close
    trackers.close()
    assert len(list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))) == 1


def _without(monkeypatch: pytest.MonkeyPatch, package: str) -> None:
    """Make `package` look uninstalled: find_spec finds nothing and importing it fails."""
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a, **k: None if name.split(".")[0] == package else real(name, *a, **k))
    for name in [m for m in sys.modules if package in m.split(".")]:  # torch.utils.tensorboard too
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, package, None)  # `import package` raises ImportError


def test_track_tensorboard_without_the_package_fails_at_config_time_naming_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _without(monkeypatch, "tensorboard")
    with pytest.raises(ConfigError, match="--track tensorboard: the tensorboard package is not installed") as e:
        SolveConfig(track=["tensorboard"])
    assert e.value.fix.startswith('pip install "sdpo-ttt[tracking]"')
    r = CliRunner().invoke(app, ["solve", str(PROBLEM), "--track", "tensorboard", "--run-dir", str(tmp_path / "run")])
    assert isinstance(r.exception, ConfigError) and "sdpo-ttt[tracking]" in r.exception.fix
    assert not (tmp_path / "run").exists()  # refused before the run started
    with pytest.raises(UserError, match="--track tensorboard needs the tensorboard package"):  # a config made without validation
        open_trackers(["tensorboard"], tmp_path, "x", {})


def test_nothing_when_not_asked(tmp_path: Path) -> None:
    before = set(sys.modules)
    run = _run(tmp_path)
    assert not (run.path / "tensorboard").exists() and not (run.path / "wandb").exists()
    assert "wandb" not in set(sys.modules) - before
    assert open_trackers([], tmp_path, "x", {}).trackers == []


def test_wandb_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: dict[str, object] = {"log": []}

    class FakeRun:
        def log(self, values, step):
            calls["log"].append((step, dict(values)))

        def finish(self):
            calls["finished"] = True

    def init(**kw):
        calls["init"] = kw
        return FakeRun()

    fake = types.ModuleType("wandb")
    fake.init = init
    fake.__spec__ = types.SimpleNamespace(name="wandb")  # importlib.util.find_spec finds it in sys.modules
    monkeypatch.setitem(sys.modules, "wandb", fake)
    run = _run(tmp_path, track=["wandb"])
    assert calls["init"]["mode"] == "offline" and calls["init"]["dir"] == str(run.path)
    assert calls["init"]["config"]["budget"] == 6 and calls["finished"]
    logged = {k for _, v in calls["log"] for k in v}
    assert "attempts/pass_rate" in logged and all(k in logged for m in run.read_metrics() for k in numeric(m))


def test_wandb_missing_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "wandb", None)
    if importlib.util.find_spec("wandb") is not None:  # pragma: no cover - a real install
        pytest.skip("wandb is installed")
    with pytest.raises(ConfigError, match="--track: wandb is not installed"):
        SolveConfig(track=["wandb"])
