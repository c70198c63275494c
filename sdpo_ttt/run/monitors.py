"""What the loop watches for while a run goes on, and the warnings it shows (once each): pure decisions, each over
what the loop already has, and `Monitors`, which asks each at its moment in the loop.

1. Guard rails: a learning rate far outside what LoRA uses, and a sudden jump in format errors after an update (the
   model stopped writing programs: the update broke it).

2. The learning signal: does the feedback give the SDPO teacher anything to teach? One pure decision over the first
   update steps (`no_signal_warning`).

`solve` stops at the first success, so every update it takes learns from feedback alone (no passing sibling to
imitate): the teacher π_t = π(·|x, f, y<t) differs from the student π_s = π(·|x, y<t) only through the
feedback f. When f is empty, cut off, or unreadable for the model, SDPO is sampling with extra cost. The loop
asks this module once, after the first `window` update steps, and shows the warning (if any) once and logs it
in metrics.jsonl.

Why not the sign of the teacher–student log-prob gap. It is no measure of the teacher's quality either way:
  - If the teacher's context did not depend on the attempt y, then, y being sampled from the student at the
    temperature the loss uses, E_{y_t ~ π_s}[log π_t(y_t) − log π_s(y_t)] = −KL(π_s ‖ π_t) ≤ 0 at every position:
    ≤ 0 for ANY teacher that differs from the student, useful or not (and a teacher that read "wrong answer on
    test 3" well SHOULD find the failed attempt less likely). The old rule "mean gap ≤ 0" fired by construction.
  - But the teacher's context does depend on y: the feedback quotes the attempt (the traceback's source lines,
    its output), so the teacher can score y's tokens above the student by copying them from its context, which
    is not understanding (and the update sees only failed attempts, a selected sample of π_s). Measured
    (2026-12-01, sum-two-ints, failed attempts only): 0.5B gap₀ +0.002 with divergence 0.13;
    Qwen2.5-Coder-1.5B gap +0.21 and +0.14 with divergence 0.21 and 0.17, while its teacher wrote no better
    programs than its base (benchmarks/feedback_learning.py, docs/results.md).

What does separate a teacher that uses the feedback: the verifier score, the only ground truth the
feedback-only regime has. A teacher that reads the feedback finds the better-scored attempts relatively
likelier: per attempt i, gap_i = mean_t (log π_t(y_t) − log π_s(y_t)) rises with score_i. An offset common to
all attempts (the −KL above) drops out of a correlation. `sdpo/gap_score_corr` (sdpo/stats.py) is Spearman's
rank correlation of gap_i with score_i over a step's attempts, logged only when their scores differ. It is a
heuristic with a known confound: copying raises gap_i most where the feedback quotes most of the attempt (a
traceback, typically a low score), which pulls the correlation down for a teacher that copies.

Signals, from each step's metrics (sdpo/update.py, loop.py):
  sdpo/gap_score_corr               rank correlation of per-attempt gap and verifier score; mean ≤ 0 over the
                                    steps that have it (at least MIN_CORR_STEPS of them): the teacher does not
                                    prefer the better attempts — it does not use the feedback (issue #16's test)
  sdpo/divergence_mean              per-token divergence student↔teacher; ~0: the feedback changes nothing
  health/frac_with_feedback         attempts whose feedback is non-empty
  health/truncated_frac             attempts cut at --max-new-tokens (their feedback is mostly "you were cut off")
  sdpo/teacher_student_logprob_gap  the mean gap: marks an SDPO step and is reported, but decides nothing
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from sdpo_ttt.config.tree import OptimConfig, SolveConfig

# ------------------------------------------------------------------ 1. guard rails

DEFAULT_LR: float = OptimConfig.model_fields["lr"].default

# LoRA fine-tuning learning rates in practice (the paper's 1e-6 is for full fine-tuning): outside LR_SANE by more
# than this factor, a warning.
LR_SANE = (1e-6, 1e-3)
LR_FACTOR = 10.0

# A format-error jump: the batch after an update has at least JUMP_MIN of its attempts (and at least JUMP_COUNT of
# them) without a program, and JUMP_RISE more than the batches before it did on average. Attempts cut off at
# --max-new-tokens are not counted: the token limit, not the update, took their program away.
JUMP_MIN = 0.5
JUMP_RISE = 0.4
JUMP_COUNT = 2


def lr_warning(lr: float, learns: bool = True) -> str | None:
    """A warning for an extreme --lr of a strategy that learns (None when it is in a usable range)."""
    if not learns:
        return None
    low, high = LR_SANE
    if lr > high * LR_FACTOR:
        return (f"warning: --lr {lr:g} is far above the rates LoRA fine-tuning uses ({low:g} to {high:g}): updates this large "
                f"usually turn every later attempt into gibberish; try the default --lr {DEFAULT_LR:g}")
    if lr < low / LR_FACTOR:
        return f"warning: --lr {lr:g} is far below the rates LoRA fine-tuning uses ({low:g} to {high:g}): the updates will change almost nothing"
    return None


def format_error_rate(verdicts: Sequence[str], truncated: Sequence[bool] | None = None) -> float:
    """Fraction of a batch's attempts with no extractable program that were not cut off at the token limit."""
    if not verdicts:
        return 0.0
    cut = truncated or [False] * len(verdicts)
    return sum(v == "format_error" and not c for v, c in zip(verdicts, cut, strict=True)) / len(verdicts)


def format_error_jump(before: Sequence[float], after: float, lr: float, batch: int = JUMP_COUNT) -> str | None:
    """A warning when the format-error rate of the batch after an update jumped above the earlier batches' mean.

    before: the format-error rates of the batches so far (at least one); after: the rate of the batch just judged
    (`batch` attempts), sampled after the last update."""
    if not before:
        return None
    base = sum(before) / len(before)
    if after >= JUMP_MIN and after - base >= JUMP_RISE and round(after * batch) >= JUMP_COUNT:
        return (f"warning: format errors jumped from {base:.0%} to {after:.0%} of attempts after the last update: "
                f"the updates may be breaking the model; check --lr (now {lr:g})")
    return None


# ------------------------------------------------------------------ 2. the learning signal

GAP = "sdpo/teacher_student_logprob_gap"
CORR = "sdpo/gap_score_corr"
DIVERGENCE = "sdpo/divergence_mean"
WITH_FEEDBACK = "health/frac_with_feedback"
TRUNCATED = "health/truncated_frac"

WINDOW = 3  # update steps looked at
MIN_CORR_STEPS = 2  # steps with differing scores needed before the correlation decides anything
MIN_DIVERGENCE = 1e-4  # nats per token: below this the teacher equals the student for practical purposes
MAX_THIN = 0.5  # more than this share of attempts with empty or cut-off feedback: "most feedback is thin"


@dataclass(frozen=True)
class SignalWarning:
    """Why the feedback carries no learning signal, and what to change."""

    reasons: tuple[str, ...]  # short codes: teacher_not_better, teacher_equals_student, feedback_thin
    message: str
    gap: float  # mean teacher − student log-prob on the attempts' tokens (reported; ≤ 0 expected, see above)
    gap_score_corr: float | None  # mean over the steps that have it; None: no step had differing scores
    corr_steps: int  # steps (of the window) whose scores differed, so that had a correlation
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

    Warns when, over those steps: the divergence is below MIN_DIVERGENCE on average (teacher_equals_student);
    or else at least MIN_CORR_STEPS steps have a gap–score correlation and its mean is ≤ 0 (teacher_not_better;
    silent when fewer steps had differing scores); or more than MAX_THIN of the attempts had empty or truncated
    feedback (feedback_thin).
    """
    first = [s for s in steps if GAP in s][:window]
    if len(first) < window:
        return None
    gap = _mean(first, GAP, 0.0)
    corrs = [float(s[CORR]) for s in first if CORR in s]
    corr = sum(corrs) / len(corrs) if corrs else None
    div = _mean(first, DIVERGENCE, 0.0)
    truncated = _mean(first, TRUNCATED, 0.0)
    empty = 1.0 - _mean(first, WITH_FEEDBACK, 1.0)
    thin = min(1.0, truncated + empty)  # disjoint: a truncated attempt's feedback is not empty (it says so)

    reasons: list[str] = []
    why: list[str] = []
    if div < MIN_DIVERGENCE:
        reasons.append("teacher_equals_student")
        why.append(f"the feedback does not change the model's predictions (divergence {div:.1e} nats/token)")
    elif corr is not None and len(corrs) >= MIN_CORR_STEPS and corr <= 0:
        reasons.append("teacher_not_better")
        why.append(f"the teacher does not prefer your better-scored attempts: with the feedback in context, the attempts "
                   f"that passed more tests gain no likelihood over the others (rank correlation of the teacher-student "
                   f"log-prob gap with the score {corr:+.2f}, mean of {len(corrs)} steps)")
    if thin > MAX_THIN:
        reasons.append("feedback_thin")
        why.append(f"{thin:.0%} of the attempts got empty or cut-off feedback ({truncated:.0%} were cut at "
                   f"{max_new_tokens} tokens)")
    if not reasons:
        return None

    advice: list[str] = []
    if truncated > 0.25:
        advice.append(f"a longer --max-new-tokens (now {max_new_tokens}; {truncated:.0%} of the answers were cut off)")
    if visibility not in ("all", "all-but-held-back"):
        advice.append(f"--feedback-visibility all-but-held-back (now {visibility}: the teacher sees "
                      + ("only pass/fail and the score)" if visibility == "binary" else "details of public tests only)"))
    advice.append("a bigger model (--model; a 0.5B model often cannot read its feedback)")
    message = (f"warning: over the first {window} SDPO steps the feedback gave the teacher little to teach: "
               + "; ".join(why) + ". SDPO is then best-of-k at a higher cost. Try " + ", ".join(advice) + ".")
    return SignalWarning(tuple(reasons), message, gap, corr, len(corrs), div, thin)


# ------------------------------------------------------------------ the loop's watch


class Monitors:
    """Every check at its moment in the loop, each warning said once through `say`. The guard-rail warnings are
    kept in `warnings` (summary.json); the no-signal warning goes into metrics.jsonl instead.

    history: the metrics of the update steps taken before a resume (the signal check reads the first ones)."""

    def __init__(self, cfg: SolveConfig, learns: bool, say: Callable[[str], None], history: Sequence[Mapping[str, float]] = ()) -> None:
        self.cfg, self.learns, self.say = cfg, learns, say
        self.warnings: list[str] = []
        self.format_error_rates: list[float] = []  # of each batch judged by this process
        self.jumped = False
        self.update_steps: list[Mapping[str, float]] = list(history)
        self.warned_zero = False

    def start(self) -> None:
        self._warn(lr_warning(self.cfg.optim.lr, self.learns))

    def batch(self, step: int, verdicts: Sequence[str], truncated: Sequence[bool]) -> None:
        """A judged batch: its outcomes, and which attempts were cut at the token limit."""
        rate = format_error_rate(verdicts, truncated)
        if self.learns and step > 0 and not self.jumped:  # this batch was sampled after an update; said once per run
            jump = format_error_jump(self.format_error_rates, rate, self.cfg.optim.lr, len(verdicts))
            self.jumped = jump is not None
            self._warn(jump)
        self.format_error_rates.append(rate)

    def update(self, metrics: Mapping[str, float]) -> SignalWarning | None:
        """An update step's metrics: the no-signal warning when this step completes the window (decided once)."""
        self.update_steps.append(metrics)
        if len(self.update_steps) != WINDOW:
            return None
        return no_signal_warning(self.update_steps, max_new_tokens=self.cfg.sampling.max_new_tokens, visibility=self.cfg.judge.feedback_visibility)

    def after_update(self, metrics: Mapping[str, float], signal: SignalWarning | None) -> None:
        """Say what `update` found, once the step is recorded; and a loss that is identically zero (once)."""
        if signal is not None:
            self.say(signal.message)
        if not self.warned_zero and metrics.get("loss", 1.0) == 0.0 and metrics.get("grad_norm", 1.0) == 0.0:
            self.warned_zero = True
            self.say("warning: the SDPO loss is identically zero (teacher equals student): check that feedback reaches the teacher")

    def _warn(self, text: str | None) -> None:
        if text and text not in self.warnings:
            self.warnings.append(text)
            self.say(text)
