"""A quick end-to-end check of a sandbox: used by `sdpo-ttt sandbox check`."""

from __future__ import annotations

from sdpo_ttt.problem.schema import parse_problem
from sdpo_ttt.sandbox import Sandbox

_PROBLEM = {
    "schema": 1, "id": "smoke-add", "title": "Add", "statement": "Print a + b.", "kind": "stdio",
    "tests": [{"input": "1 2\n", "output": "3\n"}, {"input": "-5 9\n", "output": "4\n"}],
    "limits": {"time_s": 0.5, "memory_mb": 128},
}
_FUNC = {
    "schema": 1, "id": "smoke-add-fn", "title": "Add", "statement": "Return a + b.", "kind": "function",
    "function": {"name": "add"}, "tests": [{"input": "[1, 2]", "output": "3"}],
    "limits": {"time_s": 0.5, "memory_mb": 128},
}


def smoke_test(sb: Sandbox) -> list[tuple[str, str, str]]:
    """(case, expected outcome, actual outcome) for a few programs judged concurrently."""
    stdio = parse_problem(_PROBLEM, "smoke")
    cases = [
        ("correct program", "passed", "a, b = map(int, input().split())\nprint(a + b)\n"),
        ("wrong program", "wrong_answer", "print(0)\n"),
        ("infinite loop", "time_limit", "while True:\n    pass\n"),
        ("syntax error", "compile_error", "print(\n"),
    ]
    verdicts = sb.judge_many(stdio, [c for _, _, c in cases])
    out = [(name, want, v.outcome.value) for (name, want, _), v in zip(cases, verdicts, strict=True)]
    fn = sb.judge(parse_problem(_FUNC, "smoke"), "class Solution:\n    def add(self, a, b):\n        return a + b\n")
    out.append(("function problem (class Solution)", "passed", fn.outcome.value))
    return out
