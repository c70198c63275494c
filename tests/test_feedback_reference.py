"""The reference feedback style (the default, `--feedback-style reference`): one test per rule of
sdpo_ttt/sandbox/feedback_reference.py. Verdicts built by hand; one check on a traceback the local sandbox wrote."""

from __future__ import annotations

import re

import pytest

from sandbox_fixtures import function_problem, stdio_problem
from sdpo_ttt.sandbox.feedback import render_feedback
from sdpo_ttt.sandbox.feedback_reference import compact_traceback, split_stderr
from sdpo_ttt.sandbox.verdict import Outcome, TestResult, Verdict

TB = ('Traceback (most recent call last):\n'
      '  File "solution.py", line 9, in <module>\n    main()\n'
      '  File "solution.py", line 7, in main\n    print(helper(int(data[0])))\n          ^^^^^^^^^^^^^^^^^^^^\n'
      '  File "solution.py", line 4, in helper\n    return inner(x)\n           ^^^^^^^^\n'
      '  File "solution.py", line 2, in inner\n    return 1 // (x - x)\n           ~~^^~~~~~~~~\n'
      'ZeroDivisionError: integer division or modulo by zero\n')


def _verdict(*tests: TestResult, compile_error: str = "") -> Verdict:
    n_pass = sum(t.outcome is Outcome.passed for t in tests)
    first = next((t.outcome for t in tests if t.outcome is not Outcome.passed), Outcome.passed)
    return Verdict(passed=n_pass == len(tests), score=n_pass / len(tests), outcome=first, tests=list(tests),
                   compile_error=compile_error)


def _t(i: int, outcome: Outcome, inp: str = "", **kw) -> TestResult:
    return TestResult(index=i, outcome=outcome, input=inp or f"input {i}\n", expected=kw.pop("expected", f"{i}\n"), **kw)


def script_problem():
    from sdpo_ttt.problem.schema import parse_problem, script_tests

    code = "def check(candidate):\n    assert candidate([1, 2, 3]) == 6\n    assert candidate([]) == 0\n"
    return parse_problem({"schema": 1, "id": "t-script", "title": "t", "statement": "Sum.", "kind": "script",
                          "script": {"entry_point": "total", "test_code": code, "check_function": "check"},
                          "tests": script_tests(code, 1)})


def _problem(n: int = 6):
    return stdio_problem([(f"input {i}\n", f"{i}\n") for i in range(n)])


def test_failing_tests_only_without_counts_or_score() -> None:
    v = _verdict(_t(0, Outcome.passed, got="0\n"), _t(1, Outcome.wrong_answer, got="7\n"), _t(2, Outcome.passed, got="2\n"))
    text = render_feedback(_problem(3), v)
    assert text.startswith("Test Case 2: Wrong Answer") and "input 1" in text
    assert "input 0" not in text and "input 2" not in text  # the passing tests
    assert not re.search(r"score|passed|\d+ of \d+|\d+/\d+|0\.33", text, re.I)


def test_the_first_runtime_error_wins_over_time_outs_and_wrong_answers() -> None:
    v = _verdict(_t(0, Outcome.wrong_answer, got="9\n"), _t(1, Outcome.time_limit), _t(2, Outcome.runtime_error, stderr_tail=TB),
                 _t(3, Outcome.runtime_error, detail="ValueError: second"))
    text = render_feedback(_problem(4), v)
    assert text.startswith("Runtime Error\nZeroDivisionError") and "Last Executed Input\ninput 2" in text
    assert "input 0" not in text and "input 1" not in text and "input 3" not in text and "second" not in text
    assert "Expected" not in text  # an error shows the input it ran on, not the expected output


def test_a_memory_or_output_limit_or_compile_error_counts_as_an_error() -> None:
    for outcome, head in ((Outcome.memory_limit, "Memory Limit Exceeded (limit 128 MB)"),
                          (Outcome.output_limit, "Output Limit Exceeded\nprinted more than")):
        v = _verdict(_t(0, Outcome.time_limit), _t(1, outcome, detail="printed more than 1000 bytes"))
        assert render_feedback(_problem(2), v).startswith(head)
    err = '  File "solution.py", line 1\n    def f(:\n          ^\nSyntaxError: invalid syntax\n'
    v = _verdict(*[_t(i, Outcome.compile_error, detail="the program does not compile", stderr_tail=err) for i in range(2)],
                 compile_error=err)
    text = render_feedback(_problem(2), v)
    assert text == "Compile Error\nSyntaxError: invalid syntax\nLine 1: def f(:"  # no input: it fails whatever the input


def test_else_the_first_time_out_with_its_input_and_the_limit_but_no_timings() -> None:
    v = _verdict(_t(0, Outcome.wrong_answer, got="9\n"), _t(1, Outcome.time_limit, time_s=2.345, detail="cpu 1.99s, wall 2.12s"),
                 _t(2, Outcome.time_limit))
    text = render_feedback(_problem(3), v)
    assert text == "Time Limit Exceeded (limit 1 s per test)\n\nLast Executed Input\ninput 1"


def test_a_format_error_tells_how_to_answer() -> None:
    text = render_feedback(function_problem(name="merge"), Verdict.format_error(2))
    assert text.startswith("No program was found") and "```python" in text and "`merge`" in text


def test_otherwise_at_most_two_wrong_answers_shortest_first() -> None:
    v = _verdict(_t(0, Outcome.wrong_answer, "a much longer input line\n", got="1\n"),
                 _t(1, Outcome.wrong_answer, "mid input\n", got="22222222\n"),
                 _t(2, Outcome.wrong_answer, "tiny\n", got="3\n"),
                 _t(3, Outcome.wrong_answer, "short in\n", got="4\n"))
    text = render_feedback(_problem(4), v)
    assert re.findall(r"Test Case (\d+): Wrong Answer", text) == ["3", "4"]  # by len(input) + len(output)
    assert "Input\ntiny\n\nOutput\n3\n\nExpected\n2" in text


def test_each_field_is_capped_at_8_lines_of_250_characters() -> None:
    long_in = "\n".join(["x" * 400] + [f"line {k}" for k in range(1, 20)])
    v = _verdict(_t(0, Outcome.wrong_answer, long_in, got="y" * 300 + "\n", expected="z\n" * 12))
    text = render_feedback(_problem(1), v)
    field = text.split("Input\n", 1)[1].split("\n\nOutput")[0].split("\n")
    assert field[0] == "x" * 250 + "..." and field[1:8] == [f"line {k}" for k in range(1, 8)]
    assert field[8] == "... (12 more lines)" and len(field) == 9
    assert "y" * 250 + "...\n" in text and "y" * 251 not in text
    assert text.endswith("z\n" * 7 + "z\n... (4 more lines)")


def test_a_traceback_is_compacted_to_the_attempts_last_frames() -> None:
    v = _verdict(_t(0, Outcome.runtime_error, stderr_tail=TB))
    text = render_feedback(_problem(1), v)
    assert text.split("\n\n")[0] == ("Runtime Error\nZeroDivisionError: integer division or modulo by zero\n"
                                     "Line 7 in main: print(helper(int(data[0])))\nLine 4 in helper: return inner(x)\n"
                                     "Line 2 in inner: return 1 // (x - x)")
    # frames outside the attempt's file (the standard library, the judge) are dropped
    lib = TB.replace("ZeroDivisionError", '  File "/usr/lib/python3.11/json/decoder.py", line 355, in raw_decode\n'
                     "    raise JSONDecodeError\nZeroDivisionError")
    assert "decoder.py" not in compact_traceback(split_stderr(lib)[1]) and "raw_decode" not in compact_traceback(lib)


def test_stderr_is_shown_as_debug_output() -> None:
    v = _verdict(_t(0, Outcome.runtime_error, stderr_tail="checking x=3\n" + TB))
    text = render_feedback(_problem(1), v)
    assert text.endswith("Debug Output\nchecking x=3") and text.count("checking") == 1
    v = _verdict(_t(0, Outcome.wrong_answer, got="5\n", stderr_tail="partial sums [1, 3]\n"))
    assert render_feedback(_problem(1), v).endswith("Debug Output\npartial sums [1, 3]")
    v = _verdict(_t(0, Outcome.runtime_error, detail="killed by SIGSEGV", stderr_tail="recursing\n"))
    text = render_feedback(_problem(1), v)  # no traceback: the judge's detail is the error, stderr the debug output
    assert text.startswith("Runtime Error\nkilled by SIGSEGV") and text.endswith("Debug Output\nrecursing")


def test_the_whole_text_is_at_most_2000_characters() -> None:
    wide = "\n".join("w" * 240 for _ in range(8))
    v = _verdict(*[_t(i, Outcome.wrong_answer, wide + str(i), got=wide, expected=wide, stderr_tail=wide) for i in range(2)])
    full = render_feedback(_problem(2), v, max_chars=100_000)
    assert len(full) > 2000  # the fields alone would exceed it
    text = render_feedback(_problem(2), v)
    assert len(text) == 2000 and full.startswith(text)
    assert len(render_feedback(_problem(2), v, max_chars=300)) == 300


def test_an_unquotable_failure_is_named_by_kind_only() -> None:
    p = stdio_problem([("1 2\n", "3\n"), ("SECRET 5\n", "SECRET_OUT\n")], hidden=1)
    v = _verdict(TestResult(index=0, outcome=Outcome.passed),
                 TestResult(index=1, outcome=Outcome.time_limit, public=False, input="SECRET 5\n", expected="SECRET_OUT\n"))
    assert render_feedback(p, v) == "A hidden test failed: Time Limit Exceeded (its input and expected output are not shown)."
    # a quotable wrong answer is shown; a worse hidden failure is named after it
    v = _verdict(TestResult(index=0, outcome=Outcome.wrong_answer, input="1 2\n", expected="3\n", got="4\n"),
                 TestResult(index=1, outcome=Outcome.runtime_error, public=False, input="SECRET 5\n", stderr_tail=TB))
    text = render_feedback(p, v)
    assert text.startswith("Test Case 1: Wrong Answer") and text.endswith("A hidden test failed: Runtime Error "
                                                                         "(its input and expected output are not shown).")
    assert "SECRET" not in text and "ZeroDivision" not in text


def test_passed_and_deterministic() -> None:
    v = _verdict(_t(0, Outcome.passed))
    assert render_feedback(_problem(1), v) == "All tests passed."
    a = render_feedback(_problem(2), _verdict(_t(0, Outcome.passed, time_s=0.1), _t(1, Outcome.time_limit, time_s=1.5)))
    b = render_feedback(_problem(2), _verdict(_t(0, Outcome.passed, time_s=0.9), _t(1, Outcome.time_limit, time_s=3.5)))
    assert a == b


def test_bad_style_is_refused() -> None:
    with pytest.raises(ValueError, match="style must be one of"):
        render_feedback(_problem(1), _verdict(_t(0, Outcome.wrong_answer)), style="verbose")  # type: ignore[arg-type]


def test_a_script_problem_quotes_the_assertion() -> None:
    p = script_problem()
    v = _verdict(TestResult(index=0, outcome=Outcome.wrong_answer, input="assert candidate([1, 2, 3]) == 6", expected="6",
                            got="7", detail="total([1, 2, 3]) returned 7"),
                 TestResult(index=1, outcome=Outcome.passed, input="assert candidate([]) == 0"))
    assert render_feedback(p, v) == ("Test Case 1: Wrong Answer\n\nAssertion\nassert candidate([1, 2, 3]) == 6\n\n"
                                     "Output\n7\n\nExpected\n6")
    v = _verdict(TestResult(index=0, outcome=Outcome.runtime_error, input="assert candidate([1, 2, 3]) == 6", stderr_tail=TB),
                 TestResult(index=1, outcome=Outcome.passed, input="assert candidate([]) == 0"))
    assert "\n\nLast Executed Assertion\nassert candidate([1, 2, 3]) == 6" in render_feedback(p, v)


@pytest.mark.sandbox
def test_a_real_traceback_from_the_local_sandbox() -> None:
    from sdpo_ttt.sandbox import open_sandbox

    code = ("import sys\ndef helper(x):\n    return 1 // (x - x)\ndef main():\n    print('seen', file=sys.stderr)\n"
            "    print(helper(int(sys.stdin.read().split()[0])))\nmain()\n")
    with open_sandbox("local", workers=1) as sb:
        v = sb.judge(stdio_problem(), code)
    text = render_feedback(stdio_problem(), v)
    assert text == ("Runtime Error\nZeroDivisionError: integer division or modulo by zero\nLine 7 in <module>: main()\n"
                    "Line 6 in main: print(helper(int(sys.stdin.read().split()[0])))\nLine 3 in helper: return 1 // (x - x)"
                    "\n\nLast Executed Input\n1 2\n\nDebug Output\nseen")
