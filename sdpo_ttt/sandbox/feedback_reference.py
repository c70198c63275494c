"""The reference's feedback style (`--feedback-style reference`, the default): the rules of the SDPO authors' code
feedback (lasgroup/SDPO, verl/utils/reward_score/feedback/code.py), restated here:

  1. failing tests only; no pass counts, no score
  2. one test if there is an error: the first runtime error (a compile error, a memory or output limit count as
     errors too), else the first time-out — shown with its input ("Last Executed Input") and no expected output
  3. otherwise at most MAX_WRONG wrong answers, shortest first (input + output length), each with input, output
     and expected output
  4. every field capped at FIELD_LINES lines of FIELD_CHARS characters
  5. a traceback compacted to the attempt's own frames, "Line N in f: source" (the last MAX_FRAMES)
  6. what the program wrote to stderr (besides the traceback) shown as "Debug Output"
  7. the whole text cut to `max_chars` (2000)
A failing test the feedback may not quote (hidden under `public`, held back under `all-but-held-back`) is named by
its verdict kind only, and only when it failed worse than anything shown (or nothing quotable failed). Timings
never appear. Dispatched to by sandbox/feedback.py, which handles the cases common to both styles.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from sdpo_ttt.problem.schema import Kind, Problem
from sdpo_ttt.sandbox.verdict import Outcome, TestResult, Verdict

MAX_WRONG = 2  # wrong answers shown
FIELD_LINES = 8  # lines per field
FIELD_CHARS = 250  # characters per line of a field
MAX_FRAMES = 3  # traceback frames of the attempt kept
SOURCE_FILE = "solution.py"  # the attempt's file name in the sandbox's tracebacks

ERRORS = (Outcome.runtime_error, Outcome.compile_error, Outcome.memory_limit, Outcome.output_limit)
_RANK = {**{o: 0 for o in ERRORS}, Outcome.time_limit: 1, Outcome.wrong_answer: 2}  # lower: shown first
_HEADER = {
    Outcome.runtime_error: "Runtime Error",
    Outcome.compile_error: "Compile Error",
    Outcome.memory_limit: "Memory Limit Exceeded",
    Outcome.output_limit: "Output Limit Exceeded",
    Outcome.time_limit: "Time Limit Exceeded",
    Outcome.wrong_answer: "Wrong Answer",
}
_TB_HEAD = "Traceback (most recent call last):"
_FRAME = re.compile(r'^\s*File "(?P<file>[^"]*)", line (?P<line>\d+)(?:, in (?P<fn>.+))?\s*$')


def cap_field(text: str) -> str:
    """A field within FIELD_LINES lines of FIELD_CHARS characters; what is cut is said."""
    lines = text.rstrip("\n").split("\n")
    out = [line if len(line) <= FIELD_CHARS else line[:FIELD_CHARS] + "..." for line in lines[:FIELD_LINES]]
    if len(lines) > FIELD_LINES:
        out.append(f"... ({len(lines) - FIELD_LINES} more lines)")
    return "\n".join(out)


def split_stderr(stderr: str) -> tuple[str, str]:
    """(debug output, traceback) of a test's stderr: what the program printed before its (first) traceback, and
    the last traceback (a chained exception's final one). No traceback header: all of it is debug output, except
    a bare SyntaxError report ('  File "solution.py", line N' ...), which is the traceback."""
    first = stderr.find(_TB_HEAD)
    if first < 0:
        if _FRAME.match(stderr.split("\n", 1)[0]):
            return "", stderr
        return stderr.strip("\n"), ""
    return stderr[:first].strip("\n"), stderr[stderr.rfind(_TB_HEAD):]


def compact_traceback(tb: str, limit: int = MAX_FRAMES) -> str:
    """The exception line, then the last `limit` frames in the attempt's file as "Line N in f: source"."""
    lines = tb.strip("\n").split("\n")
    frames: list[str] = []
    message: list[str] = []
    i = 0
    while i < len(lines):
        m = _FRAME.match(lines[i])
        if m:
            source = ""
            if i + 1 < len(lines) and lines[i + 1].startswith("    ") and not _FRAME.match(lines[i + 1]):
                i += 1
                source = lines[i].strip()
            while i + 1 < len(lines) and lines[i + 1].strip() and set(lines[i + 1].strip()) <= set("^~"):
                i += 1  # the caret / tilde markers under the source line
            if m["file"] == SOURCE_FILE:
                where = f"Line {m['line']}" + (f" in {m['fn']}" if m["fn"] else "")
                frames.append(f"{where}: {source}" if source else where)
        elif lines[i].strip() and not lines[i].startswith((" ", _TB_HEAD)):
            message.append(lines[i])
        i += 1
    return "\n".join(message + frames[-limit:])


def _input_label(problem: Problem) -> str:
    return "Assertion" if problem.kind is Kind.script else "Input"


def _error_block(problem: Problem, t: TestResult, compile_error: str) -> list[str]:
    """A runtime error (or compile error, memory or output limit) or a time-out: header, error, input, debug."""
    header = _HEADER[t.outcome]
    if t.outcome is Outcome.time_limit:
        header += f" (limit {problem.limits.time_s:g} s per test)"  # the limit, never the measured times
    elif t.outcome is Outcome.memory_limit:
        header += f" (limit {problem.limits.memory_mb} MB)"
    debug, tb = split_stderr(compile_error or t.stderr_tail)
    error = compact_traceback(tb) if tb else ""
    if t.outcome is not Outcome.time_limit:
        error = error or t.detail
    parts = [header] + ([cap_field(error)] if error else [])
    if t.outcome is not Outcome.compile_error:  # a program that does not load fails whatever the input
        parts += ["", "Last Executed " + _input_label(problem), cap_field(t.input)]
    if debug.strip():
        parts += ["", "Debug Output", cap_field(debug)]
    return parts


def _wrong_block(problem: Problem, t: TestResult) -> list[str]:
    parts = [f"Test Case {t.index + 1}: Wrong Answer", "", _input_label(problem), cap_field(t.input)]
    if t.got or problem.kind is not Kind.script:
        parts += ["", "Output", cap_field(t.got) if t.got.strip() else "(nothing)"]
    if t.expected:
        parts += ["", "Expected", cap_field(t.expected)]
    if problem.kind is Kind.script and not (t.got and t.expected) and t.detail:
        parts += ["", "Detail", cap_field(t.detail)]
    debug, _ = split_stderr(t.stderr_tail)
    if debug.strip():
        parts += ["", "Debug Output", cap_field(debug)]
    return parts


def _first(tests: list[TestResult], outcomes: tuple[Outcome, ...]) -> TestResult | None:
    return next((t for t in tests if t.outcome in outcomes), None)


def render_reference(problem: Problem, verdict: Verdict, quotable: Callable[[TestResult], bool], unquoted: str,
                     max_chars: int) -> str:
    """The reference-style feedback of a judged attempt (see module doc). `quotable`: whether a test may be quoted;
    `unquoted`: what the others are called ("hidden" or "held-back")."""
    if verdict.passed:
        return "All tests passed."
    failing = [t for t in verdict.tests if t.outcome in _RANK]
    shown = [t for t in failing if quotable(t)]
    blocks: list[list[str]] = []
    pick = _first(shown, ERRORS) or _first(shown, (Outcome.time_limit,))
    if pick is not None:
        blocks.append(_error_block(problem, pick, verdict.compile_error if pick.outcome is Outcome.compile_error else ""))
    else:
        wrong = sorted((t for t in shown if t.outcome is Outcome.wrong_answer), key=lambda t: (len(t.input) + len(t.got), t.index))
        blocks.extend(_wrong_block(problem, t) for t in wrong[:MAX_WRONG])
    worst_shown = min((_RANK[t.outcome] for t in shown), default=len(_RANK))
    worse = [t for t in failing if not quotable(t) and _RANK[t.outcome] < worst_shown]
    if worse:
        kind = _HEADER[min(worse, key=lambda t: _RANK[t.outcome]).outcome]
        blocks.append([f"A {unquoted} test failed: {kind} (its input and expected output are not shown)."])
    text = "\n\n".join("\n".join(b) for b in blocks) or "The attempt failed."
    return text[:max_chars]
