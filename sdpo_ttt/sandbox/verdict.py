"""What the verifier says about one attempt: one TestResult per test, and the attempt's Verdict.

Produced by the sandbox runner (as JSON) and read everywhere else (feedback, loop, logs).
"""

from __future__ import annotations

from enum import Enum

from pydantic import BaseModel, Field


class Outcome(str, Enum):
    """Verdict kind of one test (or of a whole attempt that never ran its tests)."""

    passed = "passed"
    wrong_answer = "wrong_answer"
    time_limit = "time_limit"
    memory_limit = "memory_limit"
    runtime_error = "runtime_error"
    output_limit = "output_limit"
    compile_error = "compile_error"  # syntax error / import-time failure / missing entry point
    format_error = "format_error"  # no program could be extracted from the model's text
    sandbox_error = "sandbox_error"  # the verifier itself failed (never the attempt's fault)


class TestResult(BaseModel):
    """Outcome of running one test against one attempt."""

    __test__ = False  # not a pytest class

    index: int
    outcome: Outcome
    public: bool = True
    time_s: float = 0.0
    input: str = ""  # as shown to the model (may be truncated by the runner)
    expected: str = ""
    got: str = ""
    stderr_tail: str = ""  # traceback tail for runtime errors
    detail: str = ""  # one line, e.g. "token 3: expected 5, got 6"


class Verdict(BaseModel):
    """Outcome of one attempt over all tests. passed iff every test passed; score = fraction passed."""

    passed: bool
    score: float = Field(ge=0.0, le=1.0)
    outcome: Outcome  # first non-passed outcome, or passed
    tests: list[TestResult] = Field(default_factory=list)
    compile_error: str = ""  # syntax error text / traceback when the program could not even load
    wall_time_s: float = 0.0

    @classmethod
    def format_error(cls, n_tests: int) -> "Verdict":
        """Verdict for a model output that contains no program."""
        return cls(passed=False, score=0.0, outcome=Outcome.format_error, tests=[])

    def counts(self) -> dict[str, int]:
        """How many tests ended in each outcome."""
        out: dict[str, int] = {}
        for t in self.tests:
            out[t.outcome.value] = out.get(t.outcome.value, 0) + 1
        return out


def verdict_report(verdict: Verdict, feedback: str, **extra: object) -> dict[str, object]:
    """The JSON shape of `sdpo-ttt judge --json`: top-level passed/score/outcome, tests[*].verdict, feedback."""
    tests = []
    for t in verdict.tests:
        d = t.model_dump(mode="json")
        d["verdict"] = d.pop("outcome")
        tests.append(d)
    return {
        "passed": verdict.passed,
        "score": verdict.score,
        "outcome": verdict.outcome.value,
        "tests": tests,
        "compile_error": verdict.compile_error,
        "wall_time_s": verdict.wall_time_s,
        "feedback": feedback,
        **extra,
    }
