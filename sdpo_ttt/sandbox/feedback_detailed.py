"""The detailed feedback style (`--feedback-style detailed`, the default before issue #26): a head line with the pass
count and the score, counts by verdict kind for the tests it may not quote, then up to MAX_TESTS_SHOWN failing
tests in full (input / expected / got, the traceback's last lines). Long fields are cut middle-out. Timings never
appear (they vary run to run), only the limits from the problem. Dispatched to by sandbox/feedback.py.
"""

from __future__ import annotations

from collections.abc import Callable

from sdpo_ttt.problem.schema import Kind, Problem
from sdpo_ttt.sandbox.verdict import Outcome, TestResult, Verdict

MAX_TESTS_SHOWN = 3  # failing tests shown in detail (budget permitting)

KIND_WORDS = {
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


def _outcome_sentence(problem: Problem, t: TestResult) -> str:
    o = t.outcome
    if o is Outcome.time_limit:
        return f"time limit exceeded (limit {problem.limits.time_s:g} s)" + (
            "; not run after earlier time-outs" if t.detail.startswith("not run") else "")
    if o is Outcome.memory_limit:
        return f"memory limit exceeded (limit {problem.limits.memory_mb} MB)"
    return KIND_WORDS[o] + (f": {t.detail}" if t.detail else "")


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
        w = KIND_WORDS[t.outcome]
        counts[w] = counts.get(w, 0) + 1
    return ", ".join(f"{n} {w}" for w, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def render_detailed(problem: Problem, verdict: Verdict, quotable: Callable[[TestResult], bool], unquoted: str,
                    max_chars: int) -> str:
    """The detailed feedback of a judged, failed attempt. `quotable`: whether a test's input/output may be shown;
    `unquoted`: what the others are called ("hidden" or "held-back")."""
    n = len(verdict.tests) or len(problem.tests)
    n_pass = sum(t.outcome is Outcome.passed for t in verdict.tests)
    tests = "assertions" if problem.kind is Kind.script else "tests"
    if verdict.passed:
        return cut(f"All {n} {tests} passed.", max_chars)
    if verdict.outcome is Outcome.compile_error and all(t.outcome is Outcome.compile_error for t in verdict.tests):
        what = verdict.tests[0].detail if verdict.tests else "the program could not be loaded"
        text = (f"Compile error: {what}. No test could run.\n"
                + _tail_lines(verdict.compile_error or (verdict.tests[0].stderr_tail if verdict.tests else ""),
                              max(200, max_chars - 120)))
        return cut(text, max_chars)

    head = f"Failed: {n_pass} of {n} {tests} passed (score {verdict.score:.2f}). First failure: {KIND_WORDS[verdict.outcome]}."
    shown = [t for t in verdict.tests if t.outcome is not Outcome.passed and quotable(t)]
    others = [t for t in verdict.tests if not quotable(t)]
    parts = [head]
    if others:
        others_fail = [t for t in others if t.outcome is not Outcome.passed]
        if others_fail:
            parts.append(f"{unquoted.capitalize()} {tests}: {len(others) - len(others_fail)} of {len(others)} passed; "
                         f"failures: {_counts(others_fail)}.")
        else:
            parts.append(f"{unquoted.capitalize()} {tests}: all {len(others)} passed.")
        if not shown:
            if unquoted == "hidden":
                parts.append(f"Every public {tests[:-1]} passes; the failing {tests} are hidden.")
            else:
                parts.append(f"Every other {tests[:-1]} passes; the failing {tests} are held back (never shown).")
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
