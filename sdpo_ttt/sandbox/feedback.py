"""Feedback text for the model: a deterministic function of the problem, the verdict and the run's feedback rules.

style (`--feedback-style`):
- "reference" (default): the SDPO authors' rules: failing tests only, the first error, else the first time-out,
  else at most 2 wrong answers (shortest first), fields of <= 8 lines x 250 characters, no counts, no score
  (sdpo_ttt/sandbox/feedback_reference.py).
- "detailed": pass counts, score, verdict counts, up to 3 failing tests in full (sandbox/feedback_detailed.py).
visibility (`--feedback-visibility`): which tests may be quoted (input / expected / got, traceback):
- "public" (default): public tests only; a failing hidden test is named by its verdict kind (detailed: counts).
- "all-but-held-back": any test except the run's held-back set (sandbox/held_back.py), which is judged but never
  quoted: a program that reproduces every quoted test cannot pass without solving the held-back ones.
- "all": any test (a lookup table of the quoted tests can pass: for analysis, not for discovery).
- "binary": passed or failed, and the score; nothing else (either style).
The text is capped at `max_chars`. Timings never appear (they vary run to run), only the limits from the problem.
An attempt cut at the token limit (`truncated_at` = that limit; the sampler's finish reason "length") is told
so, as the reference's feedback does: with no program found, the truncation IS the feedback ("cut at N
tokens", not "no program found"); with a program, a first line says it may be incomplete. "binary" stays
passed/failed and the score only. docs/feedback.md explains the choices.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import get_args

from sdpo_ttt.config.tree import FeedbackStyle, FeedbackVisibility, JudgeConfig
from sdpo_ttt.problem.schema import Kind, Problem
from sdpo_ttt.sandbox.feedback_detailed import cut, render_detailed
from sdpo_ttt.sandbox.feedback_reference import render_reference
from sdpo_ttt.sandbox.held_back import HELD_BACK_VISIBILITY, held_back_tests
from sdpo_ttt.sandbox.verdict import Outcome, TestResult, Verdict

Style = FeedbackStyle
STYLES: tuple[str, ...] = get_args(Style)
Visibility = FeedbackVisibility
VISIBILITIES: tuple[str, ...] = get_args(Visibility)
assert HELD_BACK_VISIBILITY in VISIBILITIES

__all__ = ["FeedbackRules", "STYLES", "VISIBILITIES", "Style", "Visibility", "cut", "render_feedback"]


@dataclass(frozen=True)
class FeedbackRules:
    """What a run's feedback shows: its style, which tests it may quote, and the held-back tests it never quotes."""

    style: Style = "reference"
    visibility: Visibility = "public"
    held_back: frozenset[int] = frozenset()
    max_chars: int = 2000

    @classmethod
    def for_run(cls, problem: Problem, judge: JudgeConfig, seed: int) -> "FeedbackRules":
        """The rules of a run: its judge options, and its held-back tests (drawn from the seed) when it holds any."""
        held = (held_back_tests(problem, seed, judge.held_back_fraction)
                if judge.feedback_visibility == HELD_BACK_VISIBILITY else frozenset())
        return cls(style=judge.feedback_style, visibility=judge.feedback_visibility, held_back=held)

    def render(self, problem: Problem, verdict: Verdict, truncated_at: int | None = None) -> str:
        return render_feedback(problem, verdict, self.visibility, self.max_chars, style=self.style,
                               held_back=self.held_back, truncated_at=truncated_at)


def quotable(visibility: str, held_back: frozenset[int]) -> Callable[[TestResult], bool]:
    """Whether a test's input, expected output and the attempt's output may appear in the feedback."""
    if visibility == "all":
        return lambda t: True
    if visibility == HELD_BACK_VISIBILITY:
        return lambda t: t.index not in held_back
    return lambda t: t.public and visibility == "public"


def _expected_answer(problem: Problem) -> str:
    """What an answer must contain, for the format-error and truncation feedback."""
    if problem.kind is Kind.function and problem.function is not None:
        what = (f"the complete code defining the function `{problem.function.name}` (a top-level function or "
                f"a method of `class Solution`)")
    elif problem.kind is Kind.script and problem.script is not None:
        what = f"the complete code defining the function `{problem.script.entry_point}`"
    else:
        what = "the complete program (it reads standard input and writes standard output)"
    return f"exactly one ```python fenced code block containing {what}"


def _format_error_text(problem: Problem) -> str:
    return f"No program was found in your answer. Answer with {_expected_answer(problem)}."


def _truncated_text(problem: Problem, limit: int, found_program: bool) -> str:
    if found_program:
        return (f"Your answer was cut off at the limit of {limit} tokens, so the program that was judged may be "
                "incomplete. Write a shorter answer.")
    return (f"Your answer was cut off at the limit of {limit} tokens before it contained a complete program. Write "
            f"a shorter answer, with little or no explanation: {_expected_answer(problem)}.")


def render_feedback(problem: Problem, verdict: Verdict, visibility: Visibility = "public", max_chars: int = 2000,
                    *, style: Style = "reference", held_back: frozenset[int] = frozenset(),
                    truncated_at: int | None = None) -> str:
    """The feedback text for one attempt (see module doc). `held_back`: indices of the tests never quoted (used by
    the all-but-held-back visibility); `truncated_at`: the token limit the answer was cut at, None when it ended by
    itself."""
    if truncated_at is not None and visibility != "binary" and not verdict.passed:
        found = verdict.outcome is not Outcome.format_error
        note = _truncated_text(problem, truncated_at, found)
        if not found:
            return cut(note, max_chars)
        rest = render_feedback(problem, verdict, visibility, max(0, max_chars - len(note) - 1), style=style,
                               held_back=held_back)
        return cut(note + "\n" + rest, max_chars)
    if visibility not in VISIBILITIES:
        raise ValueError(f"visibility must be one of {VISIBILITIES}, got {visibility!r}")
    if style not in STYLES:
        raise ValueError(f"style must be one of {STYLES}, got {style!r}")
    if visibility == HELD_BACK_VISIBILITY and not held_back:
        raise ValueError("visibility all-but-held-back needs the run's held-back tests (FeedbackRules.for_run draws them)")
    if verdict.outcome is Outcome.format_error:
        return cut(_format_error_text(problem), max_chars)
    if visibility == "binary":
        n = len(verdict.tests) or len(problem.tests)
        n_pass = sum(t.outcome is Outcome.passed for t in verdict.tests)
        tests = "assertions" if problem.kind is Kind.script else "tests"
        status = "passed" if verdict.passed else "failed"
        return cut(f"Result: {status}. Score: {verdict.score:.2f} ({n_pass}/{n} {tests} passed).", max_chars)
    if verdict.outcome is Outcome.sandbox_error and not verdict.passed:
        detail = next((t.detail for t in verdict.tests if t.detail), "")
        return cut("The judge could not run this attempt (not a fault of the program)" + (f": {detail}" if detail else "."),
                   max_chars)
    render = render_reference if style == "reference" else render_detailed
    unquoted = "held-back" if visibility == HELD_BACK_VISIBILITY else "hidden"
    return render(problem, verdict, quotable(visibility, held_back), unquoted, max_chars)
