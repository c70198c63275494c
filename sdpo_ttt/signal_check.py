"""Does the feedback give the SDPO teacher anything to teach? One pure decision over the first update steps.

`solve` stops at the first success, so every update it takes learns from feedback alone (no passing sibling to
imitate): the teacher π(·|x, f, y<t) differs from the student π(·|x, y<t) only through the feedback f. When f
is empty, cut off, or unreadable for the model, SDPO is sampling with extra cost. The loop asks this module once,
after the first `window` update steps, and shows the warning (if any) once and logs it in metrics.jsonl.

Signals, from each step's metrics (sdpo/update.py, loop.py):
  sdpo/teacher_student_logprob_gap  mean over the attempts' tokens of log π_teacher(y_t) − log π_student(y_t).
                                    ≤ 0 on average: with the feedback in context the model is no more sure of
                                    the attempt than without it — it does not use the feedback (issue #16's test)
  sdpo/divergence_mean              per-token divergence student↔teacher; ~0: the feedback changes nothing
  health/frac_with_feedback         attempts whose feedback is non-empty
  health/truncated_frac             attempts cut at --max-new-tokens (their feedback is mostly "you were cut off")
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

GAP = "sdpo/teacher_student_logprob_gap"
DIVERGENCE = "sdpo/divergence_mean"
WITH_FEEDBACK = "health/frac_with_feedback"
TRUNCATED = "health/truncated_frac"

WINDOW = 3  # update steps looked at
MIN_DIVERGENCE = 1e-4  # nats per token: below this the teacher equals the student for practical purposes
MAX_THIN = 0.5  # more than this share of attempts with empty or cut-off feedback: "most feedback is thin"


@dataclass(frozen=True)
class SignalWarning:
    """Why the feedback carries no learning signal, and what to change."""

    reasons: tuple[str, ...]  # short codes: teacher_not_better, teacher_equals_student, feedback_thin
    message: str
    gap: float
    divergence: float
    thin_feedback_frac: float


def _mean(steps: Sequence[Mapping[str, float]], key: str, default: float) -> float:
    vals = [float(s[key]) for s in steps if key in s]
    return sum(vals) / len(vals) if vals else default


def no_signal_warning(
    steps: Sequence[Mapping[str, float]],
    *,
    max_new_tokens: int,
    visibility: str,
    window: int = WINDOW,
) -> SignalWarning | None:
    """The warning for the first `window` update steps' metrics, or None (also None before `window` steps).

    Warns when, averaged over those steps, the teacher–student log-prob gap is ≤ 0, or the divergence is below
    MIN_DIVERGENCE, or more than MAX_THIN of the attempts had empty or truncated feedback.
    """
    first = [s for s in steps if GAP in s][:window]
    if len(first) < window:
        return None
    gap = _mean(first, GAP, 0.0)
    div = _mean(first, DIVERGENCE, 0.0)
    truncated = _mean(first, TRUNCATED, 0.0)
    empty = 1.0 - _mean(first, WITH_FEEDBACK, 1.0)
    thin = min(1.0, truncated + empty)  # disjoint: a truncated attempt's feedback is not empty (it says so)

    reasons: list[str] = []
    why: list[str] = []
    if div < MIN_DIVERGENCE:
        reasons.append("teacher_equals_student")
        why.append(f"the feedback does not change the model's predictions (divergence {div:.1e} nats/token)")
    elif gap <= 0:
        reasons.append("teacher_not_better")
        why.append(f"with the feedback in context the model is no more confident of its attempts than without it "
                   f"(teacher-student log-prob gap {gap:+.3f} nats/token)")
    if thin > MAX_THIN:
        reasons.append("feedback_thin")
        why.append(f"{thin:.0%} of the attempts got empty or cut-off feedback ({truncated:.0%} were cut at "
                   f"{max_new_tokens} tokens)")
    if not reasons:
        return None

    advice: list[str] = []
    if truncated > 0.25:
        advice.append(f"a longer --max-new-tokens (now {max_new_tokens}; {truncated:.0%} of the answers were cut off)")
    if visibility != "all":
        advice.append(f"--feedback-visibility all (now {visibility}: the teacher sees "
                      + ("only pass/fail and the score)" if visibility == "binary" else "details of public tests only)"))
    advice.append("a bigger model (--model; a 0.5B model often cannot read its feedback)")
    message = (f"warning: over the first {window} SDPO steps the feedback gave the teacher little to teach: "
               + "; ".join(why) + ". SDPO is then best-of-k at a higher cost. Try " + ", ".join(advice) + ".")
    return SignalWarning(tuple(reasons), message, gap, div, thin)
