"""Test-time visibility `all-but-held-back` (issue #26, part 2): failing tests may be quoted, hidden ones included,
except a held-back set drawn per run from its seed, judged like the others and never quoted. One test per rule, and
the point of it all: a program that hardcodes every input/output the feedback ever quoted still fails."""

from __future__ import annotations

import contextlib
import io
import json
import math
import re
from pathlib import Path

import pytest

from sandbox_fixtures import stdio_problem
from sdpo_ttt.config.tree import JudgeConfig, SolveConfig
from sdpo_ttt.problem.schema import Problem
from sdpo_ttt.run.loop import run_discovery
from sdpo_ttt.run.rundir import RunDir
from sdpo_ttt.sandbox.box.compare import compare_text
from sdpo_ttt.sandbox.feedback import FeedbackRules, render_feedback
from sdpo_ttt.sandbox.held_back import held_back_tests
from sdpo_ttt.sandbox.judging import judge_batch
from sdpo_ttt.sandbox.verdict import Outcome, TestResult, Verdict
from tests.fakes import FakePolicy

HB = "all-but-held-back"


def sums_problem(n_public: int = 2, n_hidden: int = 10) -> Problem:
    """a+b with distinct inputs; the last n_hidden tests hidden."""
    tests = [(f"{i} {100 + 7 * i}\n", f"{100 + 8 * i}\n") for i in range(1, n_public + n_hidden + 1)]
    return stdio_problem(tests, hidden=n_hidden)


def _rules(problem: Problem, seed: int = 7, fraction: float = 0.25, style: str = "reference", visibility: str = HB):
    judge = JudgeConfig(feedback_style=style, feedback_visibility=visibility, held_back_fraction=fraction)
    return FeedbackRules.for_run(problem, judge, seed)


# ------------------------------------------------------------------------------------------ the held-back set
def test_drawn_from_the_hidden_tests_at_the_stated_fraction_at_least_one() -> None:
    p = sums_problem(2, 10)
    for fraction, k in ((0.25, 3), (0.1, 1), (0.01, 1), (0.5, 5), (1.0, 10)):
        held = held_back_tests(p, seed=0, fraction=fraction)
        assert len(held) == k == max(1, math.ceil(fraction * 10)) and held <= set(range(2, 12))
    everything_public = sums_problem(4, 0)
    assert len(held_back_tests(everything_public, 0, 0.25)) == 1  # no hidden test: drawn from all of them
    with pytest.raises(ValueError, match="fraction"):
        held_back_tests(p, 0, 0.0)


def test_fixed_per_run_by_the_seed_and_varied_across_seeds() -> None:
    p = sums_problem()
    assert held_back_tests(p, 3, 0.25) == held_back_tests(p, 3, 0.25)
    draws = {held_back_tests(p, s, 0.25) for s in range(20)}
    assert len(draws) > 5  # not one fixed set for every seed
    assert held_back_tests(p, 3, 0.5) >= held_back_tests(p, 3, 0.25)  # a larger fraction extends the same ranking


def test_only_the_held_back_visibility_holds_tests_back() -> None:
    p = sums_problem()
    assert _rules(p).held_back == held_back_tests(p, 7, 0.25)
    for visibility in ("public", "all", "binary"):
        assert _rules(p, visibility=visibility).held_back == frozenset()
    assert SolveConfig().judge.feedback_visibility == "public" and SolveConfig().judge.feedback_style == "reference"


# ------------------------------------------------------------------------------------------ what is quoted
def _verdict(problem: Problem, outcomes: dict[int, Outcome]) -> Verdict:
    tests = []
    for i, t in enumerate(problem.tests):
        o = outcomes.get(i, Outcome.passed)
        tests.append(TestResult(index=i, outcome=o, public=t.public, input=t.input, expected=t.output,
                                got="0\n" if o is Outcome.wrong_answer else t.output,
                                stderr_tail=f"Traceback (most recent call last):\nKeyError: {t.input!r}\n" if o is Outcome.runtime_error else ""))
    n_pass = sum(x.outcome is Outcome.passed for x in tests)
    first = next((x.outcome for x in tests if x.outcome is not Outcome.passed), Outcome.passed)
    return Verdict(passed=n_pass == len(tests), score=n_pass / len(tests), outcome=first, tests=tests)


@pytest.mark.parametrize("style", ["reference", "detailed"])
def test_a_held_back_test_is_never_quoted_even_as_the_first_error(style: str) -> None:
    p = sums_problem()
    rules = _rules(p, style=style)
    h = min(rules.held_back)
    other = next(i for i in range(2, 12) if i not in rules.held_back)  # a hidden test that is not held back
    v = _verdict(p, {h: Outcome.runtime_error, other: Outcome.wrong_answer})
    text = rules.render(p, v)
    assert p.tests[h].input.strip() not in text and p.tests[h].output.strip() not in text and "KeyError" not in text
    assert p.tests[other].input.strip() in text  # hidden but not held back: quoted
    assert ("A held-back test failed: Runtime Error" if style == "reference" else "Held-back tests:") in text


@pytest.mark.parametrize("style", ["reference", "detailed"])
def test_only_held_back_failures_say_so_without_input_or_output(style: str) -> None:
    p = sums_problem()
    rules = _rules(p, style=style)
    v = _verdict(p, {i: Outcome.wrong_answer for i in rules.held_back})
    text = rules.render(p, v)
    assert not any(p.tests[i].input.strip() in text or p.tests[i].output.strip() in text for i in rules.held_back)
    if style == "reference":
        assert text == "A held-back test failed: Wrong Answer (its input and expected output are not shown)."
    else:
        assert "the failing tests are held back" in text


def test_the_held_back_visibility_refuses_to_render_without_a_held_back_set() -> None:
    p = sums_problem()
    with pytest.raises(ValueError, match="needs the run's held-back tests"):
        render_feedback(p, _verdict(p, {5: Outcome.wrong_answer}), HB)


def test_public_visibility_still_quotes_public_tests_only() -> None:
    p = sums_problem()
    v = _verdict(p, {0: Outcome.wrong_answer, 5: Outcome.wrong_answer})
    text = render_feedback(p, v, "public")
    assert p.tests[0].input.strip() in text and p.tests[5].input.strip() not in text


# ------------------------------------------------------------------------------------------ a lookup table fails
def _lookup_program(table: dict[str, str]) -> str:
    """A program that answers every input it was ever shown, and 0 otherwise."""
    return f"import sys\nTABLE = {table!r}\nprint(TABLE.get(sys.stdin.read().strip(), '0'))\n"


def _quoted(feedback: str) -> dict[str, str]:
    """Every (input, expected output) pair a feedback text quotes, in either style."""
    pairs = re.findall(r"Input\n(.*?)\n\nOutput\n.*?\n\nExpected\n(.*?)(?:\n\n|$)", feedback, re.S)
    pairs += re.findall(r"Input:\n(.*?)\nExpected output:\n(.*?)\n", feedback, re.S)
    return {i.strip(): o.strip() for i, o in pairs}


class InProcessJudge:
    """Judges the stdio programs this test writes (its own, trusted) in-process: every test, as the sandbox does."""

    def judge_many(self, problem: Problem, codes: list[str]) -> list[Verdict]:
        out = []
        for code in codes:
            tests = []
            for i, t in enumerate(problem.tests):
                stdout = io.StringIO()
                with contextlib.redirect_stdout(stdout):
                    import sys

                    old, sys.stdin = sys.stdin, io.StringIO(t.input)
                    try:
                        exec(compile(code, "solution.py", "exec"), {"__name__": "__main__"})
                    finally:
                        sys.stdin = old
                ok, detail = compare_text(stdout.getvalue(), t.output, "tokens", 1e-6)
                tests.append(TestResult(index=i, outcome=Outcome.passed if ok else Outcome.wrong_answer, public=t.public,
                                        input=t.input, expected=t.output, got=stdout.getvalue(), detail=detail))
            n = sum(x.outcome is Outcome.passed for x in tests)
            first = next((x.outcome for x in tests if x.outcome is not Outcome.passed), Outcome.passed)
            out.append(Verdict(passed=n == len(tests), score=n / len(tests), outcome=first, tests=tests))
        return out


def _attack(problem: Problem, judge, rules: FeedbackRules, rounds: int = 40) -> tuple[Verdict, dict[str, str], list[str]]:
    """Submit lookup tables of everything quoted so far, until the feedback quotes nothing new."""
    table: dict[str, str] = {}
    feedbacks: list[str] = []
    for _ in range(rounds):
        (verdict,), (fb,) = judge_batch(problem, judge, [_lookup_program(table)], rules)
        feedbacks.append(fb)
        new = _quoted(fb)
        if verdict.passed or new.items() <= table.items():
            return verdict, table, feedbacks
        table.update(new)
    raise AssertionError("the attack did not settle")


@pytest.mark.parametrize("style", ["reference", "detailed"])
def test_a_lookup_table_of_every_quoted_test_is_judged_failed(style: str) -> None:
    p = sums_problem(2, 10)
    rules = _rules(p, seed=11, style=style)
    verdict, table, feedbacks = _attack(p, InProcessJudge(), rules)
    assert len(feedbacks) > 2  # many wrong attempts, each quoting a few tests
    assert not verdict.passed
    failed = {t.index for t in verdict.tests if t.outcome is not Outcome.passed}
    assert failed == set(rules.held_back)  # it learned every other test, and none of these
    assert len(table) == len(p.tests) - len(rules.held_back)
    assert not any(p.tests[i].input.strip() in fb for i in rules.held_back for fb in feedbacks)
    # without a held-back set the same attack passes: the test above can fail
    open_rules = _rules(p, style=style, visibility="all")
    assert _attack(p, InProcessJudge(), open_rules)[0].passed


@pytest.mark.sandbox
def test_a_lookup_table_fails_in_the_local_sandbox_too() -> None:
    from sdpo_ttt.sandbox import open_sandbox

    p = sums_problem(1, 5)
    rules = _rules(p, seed=2)
    with open_sandbox("local", workers=2) as sb:
        verdict, table, _ = _attack(p, sb, rules)
    assert not verdict.passed and {t.index for t in verdict.tests if t.outcome is not Outcome.passed} == set(rules.held_back)
    assert len(table) == len(p.tests) - len(rules.held_back)


# ------------------------------------------------------------------------------------------ in a run
def test_the_run_records_its_held_back_tests_and_a_lookup_table_is_no_discovery(tmp_path: Path) -> None:
    p = sums_problem(2, 10)
    cfg = SolveConfig.model_validate({"strategy": "best-of-k", "budget": 4, "batch_size": 2, "seed": 5,
                                      "feedback_visibility": HB, "held_back_fraction": 0.2})
    rules = FeedbackRules.for_run(p, cfg.judge, cfg.seed)
    _, table, _ = _attack(p, InProcessJudge(), rules)  # every test the run's feedback would ever quote
    answer = f"```python\n{_lookup_program(table)}```\n"
    run = RunDir.create(tmp_path / "run", cfg.flat(), p.to_json())
    summary = run_discovery(p, cfg, run, FakePolicy([answer] * 4), InProcessJudge())  # type: ignore[arg-type]
    doc = json.loads(run.held_back_path.read_text())
    assert doc == {"feedback_visibility": HB, "held_back_fraction": 0.2, "seed": 5,
                   "held_back": sorted(held_back_tests(p, 5, 0.2))}
    assert run.read_held_back() == doc["held_back"] and len(doc["held_back"]) == 2
    assert run.read_config()["feedback_visibility"] == HB and run.read_config()["held_back_fraction"] == 0.2
    assert summary.status == "budget_exhausted" and not summary.solved and summary.best_score == 10 / 12
    feedback = [a["feedback"] for a in run.read_attempts()]
    assert all(f.startswith("A held-back test failed: Wrong Answer") for f in feedback)
