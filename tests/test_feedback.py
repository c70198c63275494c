"""render_feedback in the detailed style (`--feedback-style detailed`) and the cases both styles share: what the model
sees, per visibility, capped and deterministic. Verdicts built by hand. The reference style: test_feedback_reference.py."""

from __future__ import annotations

import functools

import pytest

from sandbox_fixtures import function_problem, stdio_problem
from sdpo_ttt.sandbox.feedback import FeedbackRules, cut, render_feedback
from sdpo_ttt.sandbox.verdict import Outcome, TestResult, Verdict

detailed = functools.partial(render_feedback, style="detailed")

HIDDEN_INPUT = "99 SECRET_HIDDEN_INPUT"


def _verdict(*tests: TestResult, compile_error: str = "") -> Verdict:
    n_pass = sum(t.outcome is Outcome.passed for t in tests)
    first = next((t.outcome for t in tests if t.outcome is not Outcome.passed), Outcome.passed)
    return Verdict(passed=n_pass == len(tests), score=n_pass / len(tests), outcome=first, tests=list(tests),
                   compile_error=compile_error)


def _problem():
    return stdio_problem([("1 2\n", "3\n"), ("2 2\n", "4\n"), (HIDDEN_INPUT, "5\n")], hidden=1)


def _wa_public_and_hidden(time_s: float = 0.01) -> Verdict:
    return _verdict(
        TestResult(index=0, outcome=Outcome.passed, time_s=time_s, input="1 2\n", expected="3\n", got="3\n"),
        TestResult(index=1, outcome=Outcome.wrong_answer, time_s=time_s, input="2 2\n", expected="4\n", got="0\n",
                   detail="token 1: expected 4, got 0"),
        TestResult(index=2, outcome=Outcome.runtime_error, public=False, time_s=time_s, input=HIDDEN_INPUT,
                   expected="5\n", stderr_tail="Traceback...\nKeyError: 'SECRET_HIDDEN_INPUT'",
                   detail="KeyError: 'SECRET_HIDDEN_INPUT'"),
    )


def test_public_shows_public_details_and_only_counts_for_hidden() -> None:
    text = detailed(_problem(), _wa_public_and_hidden())
    assert "Test 2 (public): wrong answer: token 1: expected 4, got 0" in text
    assert "Input:\n2 2" in text and "Expected output:\n4" in text and "Your output:\n0" in text
    assert "Hidden tests: 0 of 1 passed; failures: 1 runtime error." in text
    assert "SECRET" not in text


def test_all_shows_hidden_details() -> None:
    text = detailed(_problem(), _wa_public_and_hidden(), "all")
    assert "Test 3 (hidden): runtime error" in text and "SECRET_HIDDEN_INPUT" in text


def test_binary_is_only_status_and_score() -> None:
    text = detailed(_problem(), _wa_public_and_hidden(), "binary")
    assert text == "Result: failed. Score: 0.33 (1/3 tests passed)."


def test_only_hidden_failures() -> None:
    v = _verdict(TestResult(index=0, outcome=Outcome.passed), TestResult(index=1, outcome=Outcome.passed),
                 TestResult(index=2, outcome=Outcome.time_limit, public=False, input=HIDDEN_INPUT))
    text = detailed(_problem(), v)
    assert "Every public test passes" in text and "1 time limit exceeded" in text and "SECRET" not in text


def test_deterministic_and_free_of_timings() -> None:
    a = detailed(_problem(), _wa_public_and_hidden(0.0123))
    b = detailed(_problem(), _wa_public_and_hidden(0.9876))
    assert a == b
    tle = _verdict(TestResult(index=0, outcome=Outcome.time_limit, time_s=1.2345,
                              detail="exceeded the time limit of 1s (cpu 1.99s, wall 2.12s)"))
    text = detailed(stdio_problem([("1 2\n", "3\n")]), tle)
    assert "limit 1 s" in text and "1.99" not in text and "2.12" not in text


@pytest.mark.parametrize("visibility", ["public", "all", "binary"])
def test_capped_with_middle_out_fields(visibility: str) -> None:
    big_in = "A" * 5000 + "MIDDLE" + "Z" * 5000
    v = _verdict(*[TestResult(index=i, outcome=Outcome.wrong_answer, input=big_in, expected="1" * 8000,
                              got="2" * 8000, detail="token 1: expected 1..., got 2...") for i in range(3)])
    p = stdio_problem([("x", "y")] * 3)
    text = detailed(p, v, visibility, max_chars=2000)
    assert len(text) <= 2000
    if visibility != "binary":
        assert "Test 1 (public)" in text and "chars cut]" in text and "MIDDLE" not in text
        assert "AAAA" in text and "ZZZZ" in text  # head and tail both kept
    assert len(detailed(p, v, visibility, max_chars=300)) <= 300


def test_runtime_error_shows_traceback_tail() -> None:
    tb = "Traceback (most recent call last):\n" + "  frame\n" * 500 + '  File "solution.py", line 3\nZeroDivisionError: division by zero'
    v = _verdict(TestResult(index=0, outcome=Outcome.runtime_error, input="1 2\n", expected="3\n", stderr_tail=tb,
                            detail="ZeroDivisionError: division by zero"))
    text = detailed(stdio_problem([("1 2\n", "3\n")]), v)
    assert text.rstrip().endswith("ZeroDivisionError: division by zero") and len(text) <= 2000


def test_compile_error_shows_the_syntax_error() -> None:
    err = '  File "solution.py", line 1\n    def f(:\n          ^\nSyntaxError: invalid syntax\n'
    v = _verdict(*[TestResult(index=i, outcome=Outcome.compile_error, detail="the program does not compile")
                   for i in range(2)], compile_error=err)
    text = detailed(stdio_problem(), v)
    assert text.startswith("Compile error: the program does not compile.") and "SyntaxError: invalid syntax" in text


def test_format_error_tells_how_to_answer() -> None:
    f = detailed(function_problem(name="merge"), Verdict.format_error(2))
    assert "exactly one ```python fenced code block" in f and "`merge`" in f and "class Solution" in f
    s = detailed(stdio_problem(), Verdict.format_error(2))
    assert "complete program" in s and "standard input" in s


def test_function_labels() -> None:
    v = _verdict(TestResult(index=0, outcome=Outcome.wrong_answer, input="[1, 2]", expected="3", got="4",
                            detail="at top level: expected 3, got 4"))
    text = detailed(function_problem([([1, 2], 3)]), v)
    assert "Arguments (JSON):\n[1, 2]" in text and "Expected return value:\n3" in text and "Your return value:\n4" in text


def test_passed_and_bad_visibility() -> None:
    v = _verdict(TestResult(index=0, outcome=Outcome.passed), TestResult(index=1, outcome=Outcome.passed))
    assert detailed(stdio_problem(), v) == "All 2 tests passed."
    with pytest.raises(ValueError, match="visibility must be one of"):
        detailed(stdio_problem(), v, "everything")  # type: ignore[arg-type]


def test_cut() -> None:
    assert cut("abc", 10) == "abc"
    s = cut("x" * 100 + "y" * 100, 80)
    assert len(s) <= 80 and s.startswith("x") and s.endswith("y")


# ---------------------------------------------------------------- truncated answers (issue #16)
def test_truncated_answer_without_program_says_it_was_cut_not_no_program() -> None:
    text = detailed(function_problem(name="merge"), Verdict.format_error(2), truncated_at=256)
    assert "cut off at the limit of 256 tokens" in text and "No program was found" not in text
    assert "`merge`" in text and "shorter" in text


def test_truncated_answer_with_a_program_keeps_the_test_feedback() -> None:
    text = detailed(_problem(), _wa_public_and_hidden(), truncated_at=128, max_chars=600)
    assert text.startswith("Your answer was cut off at the limit of 128 tokens")
    assert "Test 2 (public): wrong answer" in text and len(text) <= 600


def test_truncation_is_not_mentioned_for_binary_visibility_or_a_pass() -> None:
    assert detailed(_problem(), _wa_public_and_hidden(), "binary", truncated_at=64) == \
        "Result: failed. Score: 0.33 (1/3 tests passed)."
    v = _verdict(TestResult(index=0, outcome=Outcome.passed), TestResult(index=1, outcome=Outcome.passed))
    assert detailed(stdio_problem(), v, truncated_at=64) == "All 2 tests passed."


def test_judge_batch_passes_each_attempts_cut() -> None:
    from sdpo_ttt.sandbox.judging import judge_batch

    class NoSandbox:  # no code in either attempt: judge_batch must not call the sandbox
        def judge_many(self, problem, codes):  # noqa: ANN001, ANN202
            raise AssertionError("nothing to run")

    _, fbs = judge_batch(stdio_problem(), NoSandbox(), [None, None], FeedbackRules(), [512, None])  # type: ignore[arg-type]
    assert "cut off at the limit of 512 tokens" in fbs[0] and fbs[1].startswith("No program was found")
