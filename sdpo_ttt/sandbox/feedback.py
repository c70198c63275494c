"""Feedback text for the model: a deterministic function of the problem, the verdict and what it may see.

visibility:
- "public" (default): details (input / expected / got, traceback tail) only for public tests; hidden
  tests appear as counts and verdict kinds.
- "all": details for any test.
- "binary": passed or failed, and the score; nothing else.
The text is capped at `max_chars`; long fields are cut middle-out. Timings never appear (they vary run to
run), only the limits from the problem.
An attempt cut at the token limit (`truncated_at` = that limit; the sampler's finish reason "length") is told
so, as the reference's feedback does: with no program found, the truncation IS the feedback ("cut at N
tokens", not "no program found"); with a program, a first line says it may be incomplete. "binary" stays
passed/failed and the score only.
"""

from __future__ import annotations

from typing import Literal

from sdpo_ttt.problem.schema import Kind, Problem
from sdpo_ttt.sandbox.verdict import Outcome, TestResult, Verdict

Visibility = Literal["public", "all", "binary"]
VISIBILITIES: tuple[str, ...] = ("public", "all", "binary")
MAX_TESTS_SHOWN = 3  # failing tests shown in detail (budget permitting)

_KIND_WORDS = {
    Outcome.passed: "passed",
    Outcome.wrong_answer: "wrong answer",
    Outcome.time_limit: "time limit exceeded",
    Outcome.memory_limit: "memory limit exceeded",
    Outcome.runtime_error: "runtime error",
    Outcome.output_limit: "output limit exceeded",
    Outcome.compile_error: "compile error",
    Outcome.format_error: "no program found",
    Outcome.sandbox_error: "judge error",
}


def cut(text: str, limit: int) -> str:
    """Middle-out truncation to at most `limit` characters (keeps the head and the tail)."""
    if len(text) <= limit:
        return text
    if limit < 40:
        return text[:limit]
    marker = "\n...[{} chars cut]...\n"
    keep = limit - len(marker.format(len(text)))
    head = keep // 2
    return text[:head] + marker.format(len(text) - keep) + text[len(text) - (keep - head):]


def _tail_lines(text: str, limit: int) -> str:
    """The last lines of a traceback, within `limit` characters."""
    text = text.strip("\n")
    if len(text) <= limit:
        return text
    return "..." + text[len(text) - limit + 3:]


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


def _outcome_sentence(problem: Problem, t: TestResult) -> str:
    o = t.outcome
    if o is Outcome.time_limit:
        return f"time limit exceeded (limit {problem.limits.time_s:g} s)" + (
            "; not run after earlier time-outs" if t.detail.startswith("not run") else "")
    if o is Outcome.memory_limit:
        return f"memory limit exceeded (limit {problem.limits.memory_mb} MB)"
    return _KIND_WORDS[o] + (f": {t.detail}" if t.detail else "")


def _assert_block(problem: Problem, t: TestResult, budget: int) -> str:
    """One failed assertion of a script problem: its line and source, expected vs the returned value."""
    from sdpo_ttt.problem.asserts import assert_sites

    sites = assert_sites(problem.script.test_code) if problem.script else ()
    where = f", line {sites[t.index].line}" if t.index < len(sites) else ""
    label = "public" if t.public else "hidden"
    field = max(60, budget // 4)
    lines = [f"Assertion {t.index + 1} ({label}{where}): {_outcome_sentence(problem, t)}", cut(t.input.rstrip("\n"), field)]
    if t.expected:
        lines.append("Expected:\n" + cut(t.expected, field))
    if t.got:
        lines.append("Your function returned:\n" + cut(t.got, field))
    if t.outcome in (Outcome.runtime_error, Outcome.memory_limit) and t.stderr_tail.strip():
        lines.append("Error (last lines):\n" + _tail_lines(t.stderr_tail, field))
    return "\n".join(lines)


def _test_block(problem: Problem, t: TestResult, budget: int) -> str:
    if problem.kind is Kind.script:
        return _assert_block(problem, t, budget)
    fn = problem.kind is Kind.function
    label = "public" if t.public else "hidden"
    lines = [f"Test {t.index + 1} ({label}): {_outcome_sentence(problem, t)}"]
    field = max(60, budget // 4)
    lines.append(("Arguments (JSON):\n" if fn else "Input:\n") + cut(t.input.rstrip("\n"), field))
    lines.append(("Expected return value:\n" if fn else "Expected output:\n") + cut(t.expected.rstrip("\n"), field))
    if t.outcome in (Outcome.wrong_answer, Outcome.output_limit) or t.got:
        got = t.got.rstrip("\n")
        lines.append(("Your return value:\n" if fn else "Your output:\n") + (cut(got, field) if got else "(nothing)"))
    if t.outcome in (Outcome.runtime_error, Outcome.memory_limit) and t.stderr_tail.strip():
        lines.append("Error (last lines):\n" + _tail_lines(t.stderr_tail, field))
    return "\n".join(lines)


def _counts(tests: list[TestResult]) -> str:
    counts: dict[str, int] = {}
    for t in tests:
        w = _KIND_WORDS[t.outcome]
        counts[w] = counts.get(w, 0) + 1
    return ", ".join(f"{n} {w}" for w, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def render_feedback(problem: Problem, verdict: Verdict, visibility: Visibility = "public", max_chars: int = 2000,
                    *, truncated_at: int | None = None) -> str:
    """The feedback text for one attempt (see module doc). `truncated_at`: the token limit the answer was cut at,
    None when it ended by itself."""
    if truncated_at is not None and visibility != "binary" and not verdict.passed:
        found = verdict.outcome is not Outcome.format_error
        note = _truncated_text(problem, truncated_at, found)
        if not found:
            return cut(note, max_chars)
        return cut(note + "\n" + render_feedback(problem, verdict, visibility, max(0, max_chars - len(note) - 1)), max_chars)
    if visibility not in VISIBILITIES:
        raise ValueError(f"visibility must be one of {VISIBILITIES}, got {visibility!r}")
    n = len(verdict.tests) or len(problem.tests)
    n_pass = sum(t.outcome is Outcome.passed for t in verdict.tests)
    tests = "assertions" if problem.kind is Kind.script else "tests"
    if verdict.outcome is Outcome.format_error:
        return cut(_format_error_text(problem), max_chars)
    if visibility == "binary":
        status = "passed" if verdict.passed else "failed"
        return cut(f"Result: {status}. Score: {verdict.score:.2f} ({n_pass}/{n} {tests} passed).", max_chars)
    if verdict.passed:
        return cut(f"All {n} {tests} passed.", max_chars)
    if verdict.outcome is Outcome.sandbox_error:
        detail = next((t.detail for t in verdict.tests if t.detail), "")
        return cut("The judge could not run this attempt (not a fault of the program)" + (f": {detail}" if detail else "."),
                   max_chars)
    if verdict.outcome is Outcome.compile_error and all(t.outcome is Outcome.compile_error for t in verdict.tests):
        what = verdict.tests[0].detail if verdict.tests else "the program could not be loaded"
        text = (f"Compile error: {what}. No test could run.\n"
                + _tail_lines(verdict.compile_error or (verdict.tests[0].stderr_tail if verdict.tests else ""),
                              max(200, max_chars - 120)))
        return cut(text, max_chars)

    head = f"Failed: {n_pass} of {n} {tests} passed (score {verdict.score:.2f}). First failure: {_KIND_WORDS[verdict.outcome]}."
    shown = [t for t in verdict.tests if t.outcome is not Outcome.passed and (visibility == "all" or t.public)]
    hidden = [t for t in verdict.tests if not t.public]
    parts = [head]
    if visibility == "public" and hidden:
        hidden_fail = [t for t in hidden if t.outcome is not Outcome.passed]
        if hidden_fail:
            parts.append(f"Hidden {tests}: {len(hidden) - len(hidden_fail)} of {len(hidden)} passed; failures: "
                         f"{_counts(hidden_fail)}.")
        else:
            parts.append(f"Hidden {tests}: all {len(hidden)} passed.")
    if not shown and visibility == "public":
        parts.append(f"Every public {tests[:-1]} passes; the failing {tests} are hidden.")
    budget = max_chars - sum(len(p) + 1 for p in parts)
    for i, t in enumerate(shown):
        if i > 0 and (budget < 400 or i >= MAX_TESTS_SHOWN):
            if len(shown) > i:
                parts.append(f"({len(shown) - i} more failing {tests[:-1]}(s) not shown.)")
            break
        block = _test_block(problem, t, min(budget, 1200) if i == 0 else min(budget, 800))
        block = cut(block, max(100, budget))
        parts.append(block)
        budget -= len(block) + 1
    return cut("\n".join(parts), max_chars)
