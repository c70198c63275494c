"""The no-learning-signal warning (sdpo_ttt/signal_check.py): a pure decision over the first update steps."""

from __future__ import annotations

from sdpo_ttt.signal_check import no_signal_warning


def step(gap: float = 0.2, div: float = 0.05, with_feedback: float = 1.0, truncated: float = 0.0) -> dict[str, float]:
    return {"sdpo/teacher_student_logprob_gap": gap, "sdpo/divergence_mean": div,
            "health/frac_with_feedback": with_feedback, "health/truncated_frac": truncated}


def warn(steps, visibility="public", max_new_tokens=256):
    return no_signal_warning(steps, max_new_tokens=max_new_tokens, visibility=visibility, window=3)


def test_no_decision_before_the_window() -> None:
    assert warn([step(gap=-1.0), step(gap=-1.0)]) is None


def test_a_teacher_that_gains_from_feedback_gives_no_warning() -> None:
    assert warn([step(gap=0.1), step(gap=0.3), step(gap=0.05)]) is None


def test_gap_not_positive_on_average_warns_with_advice() -> None:
    w = warn([step(gap=0.1), step(gap=-0.2), step(gap=0.0)])
    assert w is not None and w.reasons == ("teacher_not_better",)
    assert "-0.033" in w.message and "--feedback-visibility all (now public" in w.message and "bigger model" in w.message
    assert "--max-new-tokens" not in w.message  # nothing was cut off
    assert warn([step(gap=0.0)] * 3, visibility="all").message.count("--feedback-visibility") == 0


def test_only_the_first_steps_count() -> None:
    """Decided on the first `window` steps: later steps (the student has learned) change nothing."""
    assert warn([step()] * 3 + [step(gap=-5.0)] * 5) is None
    assert warn([step(gap=-1.0)] * 3 + [step(gap=5.0)] * 5) is not None


def test_teacher_equal_to_student() -> None:
    w = warn([step(gap=0.0, div=0.0)] * 3)
    assert w is not None and w.reasons == ("teacher_equals_student",) and "does not change" in w.message


def test_mostly_truncated_or_empty_feedback() -> None:
    w = warn([step(truncated=0.75)] * 3, max_new_tokens=128)
    assert w is not None and w.reasons == ("feedback_thin",)
    assert "a longer --max-new-tokens (now 128; 75% of the answers were cut off)" in w.message
    w = warn([step(with_feedback=0.25)] * 3, visibility="binary")
    assert w is not None and w.reasons == ("feedback_thin",) and "only pass/fail" in w.message
    assert warn([step(truncated=0.25, with_feedback=0.75)] * 3) is None  # half thin: not "most"


def test_both_reasons() -> None:
    w = warn([step(gap=-0.1, truncated=1.0)] * 3)
    assert w is not None and w.reasons == ("teacher_not_better", "feedback_thin")


def test_steps_without_sdpo_metrics_are_skipped() -> None:
    """Metrics lines of other strategies (no gap) are not SDPO steps."""
    other = {"multi_turn/mean_feedback_turns": 1.0}
    assert warn([other, step(gap=-1), other, step(gap=-1)]) is None
    assert warn([other, step(gap=-1), step(gap=-1), step(gap=-1)]) is not None
