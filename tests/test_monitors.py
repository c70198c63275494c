"""The run's monitors (sdpo_ttt/run/monitors.py): the guard rails (an extreme --lr, a jump in format errors after an
update, an unknown model at once) and the no-learning-signal warning, a pure decision over the first update steps."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from sdpo_ttt.run.monitors import format_error_jump, format_error_rate, lr_warning, no_signal_warning

# ---------------------------------------------------------------- guard rails (issue #15, item 7)


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


# ---------------------------------------------------------------- the no-learning-signal warning


_NO_CORR = object()


def step(gap: float = -0.01, corr: object = 0.4, div: float = 0.05, with_feedback: float = 1.0,
         truncated: float = 0.0) -> dict[str, float]:
    """One SDPO step's metrics; corr=_NO_CORR: the step's scores were all equal (no correlation logged)."""
    s = {"sdpo/teacher_student_logprob_gap": gap, "sdpo/divergence_mean": div,
         "health/frac_with_feedback": with_feedback, "health/truncated_frac": truncated}
    if corr is not _NO_CORR:
        s["sdpo/gap_score_corr"] = corr
    return s


def warn(steps, visibility="public", max_new_tokens=256):
    return no_signal_warning(steps, max_new_tokens=max_new_tokens, visibility=visibility, window=3)


def test_no_decision_before_the_window() -> None:
    assert warn([step(corr=-1.0), step(corr=-1.0)]) is None


def test_a_negative_gap_is_no_warning_when_the_teacher_prefers_better_attempts() -> None:
    """On attempts sampled from the student the mean gap is −KL(π_s‖π_t) ≤ 0 for any teacher: its sign decides
    nothing. A teacher that ranks the better-scored attempts higher is using the feedback."""
    assert warn([step(gap=-0.05, corr=0.3), step(gap=-0.2, corr=0.1), step(gap=-0.01, corr=0.5)]) is None


def test_correlation_not_positive_on_average_warns_with_advice() -> None:
    w = warn([step(corr=0.2), step(corr=-0.5), step(corr=0.0)])
    assert w is not None and w.reasons == ("teacher_not_better",)
    assert w.gap_score_corr is not None and abs(w.gap_score_corr - (-0.1)) < 1e-12 and w.corr_steps == 3
    assert "does not prefer your better-scored attempts" in w.message and "-0.10, mean of 3 steps" in w.message
    assert "--feedback-visibility all-but-held-back (now public" in w.message and "bigger model" in w.message
    assert "--max-new-tokens" not in w.message  # nothing was cut off
    assert warn([step(corr=0.0)] * 3, visibility="all").message.count("--feedback-visibility") == 0
    assert warn([step(corr=0.0)] * 3, visibility="all-but-held-back").message.count("--feedback-visibility") == 0
    # a positive gap does not save a teacher that does not rank the attempts by their score
    assert warn([step(gap=0.3, corr=-0.2)] * 3).reasons == ("teacher_not_better",)


def test_missing_correlation_is_silent() -> None:
    """Steps whose scores were all equal have no correlation; fewer than 2 such steps decide nothing."""
    assert warn([step(corr=_NO_CORR)] * 3) is None
    assert warn([step(corr=-0.9), step(corr=_NO_CORR), step(corr=_NO_CORR)]) is None  # one step is not enough
    w = warn([step(corr=-0.9), step(corr=_NO_CORR), step(corr=0.1)])  # the two that have it
    assert w is not None and w.reasons == ("teacher_not_better",) and w.corr_steps == 2
    assert abs(w.gap_score_corr - (-0.4)) < 1e-12
    assert warn([step(gap=-1.0, corr=_NO_CORR)] * 3) is None  # the gap alone never warns


def test_only_the_first_steps_count() -> None:
    """Decided on the first `window` steps: later steps (the student has learned) change nothing."""
    assert warn([step()] * 3 + [step(corr=-1.0)] * 5) is None
    assert warn([step(corr=-1.0)] * 3 + [step(corr=1.0)] * 5) is not None


def test_teacher_equal_to_student() -> None:
    w = warn([step(gap=0.0, corr=0.0, div=0.0)] * 3)
    assert w is not None and w.reasons == ("teacher_equals_student",) and "does not change" in w.message


def test_mostly_truncated_or_empty_feedback() -> None:
    w = warn([step(truncated=0.75)] * 3, max_new_tokens=128)
    assert w is not None and w.reasons == ("feedback_thin",)
    assert "a longer --max-new-tokens (now 128; 75% of the answers were cut off)" in w.message
    w = warn([step(with_feedback=0.25)] * 3, visibility="binary")
    assert w is not None and w.reasons == ("feedback_thin",) and "only pass/fail" in w.message
    assert warn([step(truncated=0.25, with_feedback=0.75)] * 3) is None  # half thin: not "most"


def test_both_reasons() -> None:
    w = warn([step(corr=-0.1, truncated=1.0)] * 3)
    assert w is not None and w.reasons == ("teacher_not_better", "feedback_thin")


def test_steps_without_sdpo_metrics_are_skipped() -> None:
    """Metrics lines of other strategies (no gap) are not SDPO steps."""
    other = {"multi_turn/mean_feedback_turns": 1.0}
    assert warn([other, step(corr=-1), other, step(corr=-1)]) is None
    assert warn([other, step(corr=-1), step(corr=-1), step(corr=-1)]) is not None
