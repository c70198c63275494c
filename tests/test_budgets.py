"""Time and token budgets (issue #15, item 2) and what every run records it spent (item 3)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sdpo_ttt.config.durations import format_duration, parse_duration
from sdpo_ttt.run.budgets import RunCosts, stop_reason
from sdpo_ttt.config.tree import SolveConfig
from sdpo_ttt.errors import ConfigError, UserError
from sdpo_ttt.run.loop import run_discovery
from sdpo_ttt.problem.schema import load_problem
from sdpo_ttt.run.rundir import RunDir
from tests.fakes import FakePolicy, FakeSandbox, program

PROBLEM = Path(__file__).resolve().parent.parent / "problems" / "sum-two-ints" / "problem.json"


@pytest.mark.parametrize("text, seconds", [
    ("90s", 90), ("30m", 1800), ("2h", 7200), ("1h30m", 5400), ("1.5h", 5400), ("2d", 172800), (" 45 ", 45), (600, 600),
    ("1m30s", 90), ("2H", 7200),
])
def test_parse_duration(text, seconds) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["", "2 hours", "h", "1x", "-5", 0, "0s", "1h-30m"])
def test_parse_duration_refuses(bad) -> None:
    with pytest.raises(ValueError, match="duration|more than 0"):
        parse_duration(bad)


def test_format_duration() -> None:
    assert [format_duration(x) for x in (0, 45, 720, 5400, 7200, 3725)] == ["0s", "45s", "12m", "1h30m", "2h", "1h2m5s"]


def test_stop_reason_whichever_first() -> None:
    c = RunCosts(attempts=3, generated_tokens=100, wall_s=50.0)
    assert stop_reason(c, 8, None, None) is None
    assert stop_reason(c, 3, 10.0, 10) == "attempts"  # several hit at once: the attempt budget is named
    assert stop_reason(c, 8, 50.0, None) == "max_time"
    assert stop_reason(c, 8, 60.0, 100) == "max_tokens"
    assert stop_reason(c, 8, 60.0, 101) is None


def test_costs_json_round_trip() -> None:
    c = RunCosts(attempts=4, generated_tokens=77, wall_s=1.5, device_s=1.0, cpu_s=2.5)
    assert RunCosts.from_json(json.loads(json.dumps(c.to_json()))) == c
    assert RunCosts.from_json({"attempts": 2}) == RunCosts(attempts=2)


def test_config_options() -> None:
    cfg = SolveConfig(max_time="1h30m", max_tokens=5000)
    assert cfg.flat()["max_time"] == "1h30m" and cfg.flat()["max_tokens"] == 5000
    assert SolveConfig(max_time=7200).max_time == "7200"  # seconds as a number, from a config file
    with pytest.raises(ConfigError, match="--max-time '2 hours'"):
        SolveConfig(max_time="2 hours")
    with pytest.raises(ConfigError, match="--max-tokens"):
        SolveConfig(max_tokens=0)


class Clock:
    """Stands in for the `time` module of the loop and its accounts (checkpoint.py): the fake policy advances it."""

    def __init__(self) -> None:
        self.now = 0.0

    def perf_counter(self) -> float:
        return self.now

    def process_time(self) -> float:
        return self.now / 2


def _run(tmp_path: Path, policy: FakePolicy, resume: bool = False, **cfg_values):
    problem = load_problem(PROBLEM)
    cfg = SolveConfig.model_validate({"strategy": "multi-turn", "budget": 16, "batch_size": 2, **cfg_values})
    path = tmp_path / "run"
    run = RunDir.open_existing(path) if resume else RunDir.create(path, cfg.flat(), problem.to_json())
    return run_discovery(problem, cfg, run, policy, FakeSandbox(), resume=resume), run


def test_token_budget_ends_the_run(tmp_path: Path) -> None:
    summary, run = _run(tmp_path, FakePolicy([program(str(i)) for i in range(16)]), max_tokens=25)  # 5 tokens per attempt
    assert summary.status == "budget_exhausted" and summary.stop_reason == "max_tokens"
    assert summary.attempts_used == 6 and summary.generated_tokens == 30  # the batch that crossed 25 finishes
    assert [a["run_tokens"] for a in run.read_attempts()] == [10, 10, 20, 20, 30, 30]
    assert [m["step"] for m in run.read_metrics()] == [0, 1]  # no update after the last batch
    assert json.loads(run.summary_path.read_text())["stop_reason"] == "max_tokens"


def test_time_budget_ends_the_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sdpo_ttt.run.checkpoint
    import sdpo_ttt.run.loop

    clock = Clock()
    monkeypatch.setattr(sdpo_ttt.run.loop, "time", clock)  # the batch and update timings
    monkeypatch.setattr(sdpo_ttt.run.checkpoint, "time", clock)  # the run's wall-clock and CPU accounts

    class Slow(FakePolicy):
        def sample(self, prompts, **kw):
            clock.now += 10.0  # every batch takes 10 s to sample
            return super().sample(prompts, **kw)

    summary, run = _run(tmp_path, Slow([program(str(i)) for i in range(16)]), max_time="25s")
    assert summary.stop_reason == "max_time" and summary.attempts_used == 6
    assert summary.wall_time_s == 30.0 and summary.device_time_s == 30.0 and summary.cpu_time_s == 15.0
    assert [a["run_wall_s"] for a in run.read_attempts()][::2] == [10.0, 20.0, 30.0]


def test_resume_counts_what_was_spent(tmp_path: Path) -> None:
    script = [program(str(i)) for i in range(16)]
    with pytest.raises(KeyboardInterrupt, match="killed"):
        _run(tmp_path, FakePolicy(script, interrupt_after=4), max_tokens=25)
    rest = FakePolicy(script, drawn=4)
    summary, run = _run(tmp_path, rest, resume=True, max_tokens=25)
    assert summary.stop_reason == "max_tokens" and summary.generated_tokens == 30 and summary.attempts_used == 6
    assert rest.drawn == 6  # one more batch only: the 20 tokens spent before the kill counted


def test_resume_refuses_a_checkpoint_without_costs(tmp_path: Path) -> None:
    """A checkpoint from before cost tracking (2026-12-01) is refused with the fix, not resumed with its costs at 0."""
    script = [program(str(i)) for i in range(16)]
    with pytest.raises(KeyboardInterrupt, match="killed"):
        _run(tmp_path, FakePolicy(script, interrupt_after=4), max_tokens=25)
    state = tmp_path / "run" / "checkpoint" / "state.json"
    state.write_text(json.dumps({k: v for k, v in json.loads(state.read_text()).items() if k != "costs"}))
    with pytest.raises(UserError, match="checkpointed before 2026-12-01"):
        _run(tmp_path, FakePolicy(script, drawn=4), resume=True, max_tokens=25)


def test_attempt_budget_still_named(tmp_path: Path) -> None:
    summary, _ = _run(tmp_path, FakePolicy([program(str(i)) for i in range(4)]), budget=4, max_tokens=10_000, max_time="1h")
    assert summary.stop_reason == "attempts" and summary.generated_tokens == 20 and summary.attempts_used == 4
