"""The no-learning-signal warning (sdpo_ttt/run/monitors.py): a pure decision over the first update steps."""

from __future__ import annotations

from sdpo_ttt.run.monitors import no_signal_warning

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
