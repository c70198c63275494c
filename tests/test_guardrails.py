"""Guard rails (issue #15, item 7): extreme --lr, a jump in format errors after an update."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from sdpo_ttt.run.monitors import format_error_jump, format_error_rate, lr_warning


def test_lr_warning() -> None:
    assert "far above" in lr_warning(1e4) and "--lr 10000" in lr_warning(1e4)
    assert "far below" in lr_warning(1e-9)
    for ok in (1e-6, 1e-5, 1e-4, 1e-3, 5e-3):
        assert lr_warning(ok) is None
    assert lr_warning(1e4, learns=False) is None  # best-of-k and multi-turn never update


def test_format_error_jump() -> None:
    assert format_error_rate(["format_error", "wrong_answer", "format_error", "passed"]) == 0.5
    assert format_error_rate([]) == 0.0
    msg = format_error_jump([0.0, 0.25], 1.0, 1e-2)
    assert msg is not None and "from 12% to 100%" in msg and "--lr" in msg
    assert format_error_jump([0.5, 0.5], 0.75, 1e-4) is None  # a rise of 25 points only
    assert format_error_jump([0.0], 0.375, 1e-4) is None  # below half the batch
    assert format_error_jump([], 1.0, 1e-4) is None  # nothing to compare with
    assert format_error_jump([0.0], 0.5, 1e-4, batch=2) is None  # one attempt of two: too few to tell
    assert format_error_jump([0.0], 1.0, 1e-4, batch=2) is not None
    # an attempt cut off at --max-new-tokens lost its program to the limit, not to the update
    assert format_error_rate(["format_error", "format_error", "wrong_answer"], [True, False, False]) == pytest.approx(1 / 3)


def test_warnings_reach_the_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Wired into the loop: shown through the reporter and kept in summary.json (a learning strategy is simulated by
    marking multi-turn as learning; the loop decides from the registry)."""
    import sdpo_ttt.run.loop
    from sdpo_ttt.config.tree import SolveConfig
    from sdpo_ttt.run.loop import run_discovery
    from sdpo_ttt.run.reporter import Reporter
    from sdpo_ttt.problem.schema import load_problem
    from sdpo_ttt.run.rundir import RunDir
    from sdpo_ttt.run.strategies import STRATEGIES
    from tests.fakes import FakePolicy, FakeSandbox, program

    registry = dict(STRATEGIES)
    registry["multi-turn"] = dataclasses.replace(STRATEGIES["multi-turn"], learns=True)
    monkeypatch.setattr(sdpo_ttt.run.loop, "STRATEGIES", registry)

    class Messages(Reporter):
        def __init__(self) -> None:
            self.seen: list[str] = []

        def message(self, text: str) -> None:
            self.seen.append(text)

    problem = load_problem(Path(__file__).resolve().parent.parent / "problems" / "sum-two-ints" / "problem.json")
    cfg = SolveConfig.model_validate({"strategy": "multi-turn", "budget": 6, "batch_size": 2, "lr": 1e4})
    run = RunDir.create(tmp_path / "run", cfg.flat(), problem.to_json())
    gibberish = "no code here at all"
    script = [program("a"), program("b"), gibberish, gibberish, gibberish, gibberish]
    rep = Messages()
    summary = run_discovery(problem, cfg, run, FakePolicy(script), FakeSandbox(), reporter=rep)
    assert len(summary.warnings) == 2  # the jump is reported once, not again for the third batch
    assert "--lr 10000 is far above" in summary.warnings[0] and "format errors jumped from 0% to 100%" in summary.warnings[1]
    assert all(w in rep.seen for w in summary.warnings)


def test_unknown_model_fails_at_once_listing_builtins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from sdpo_ttt.cli import app
    from sdpo_ttt.policy.catalog import BUILTINS

    repo = Path(__file__).resolve().parent.parent
    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(app, ["solve", str(repo / "problems" / "sum-two-ints"), "--model", "qwen2.5-coder", "--sandbox", "local",
                                 "--run-dir", str(tmp_path / "run"), "--quiet"])
    from sdpo_ttt.errors import ModelUnavailable

    err = r.exception  # rendered once, at the CLI edge (sdpo_ttt.cli.main), as "error: ... / fix: ..."
    assert isinstance(err, ModelUnavailable), r.output[-2000:]
    assert "unknown model 'qwen2.5-coder'" in err.message and "did you mean 'qwen2.5-coder-0.5b'" in err.fix
    assert all(name in err.fix for name in BUILTINS)
    assert not (tmp_path / "run").exists()  # failed before anything was written
