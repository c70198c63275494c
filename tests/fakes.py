"""Scripted stand-ins for the policy and the sandbox, so the loop's bookkeeping can be tested in milliseconds.

FakePolicy answers every sample call with the next texts of a script; FakeSandbox passes a program iff it
contains the marker PASS_MARK and scores others by a `# score=` comment. Nothing here decides a test's outcome
except through the real loop (sdpo_ttt/loop.py) and the real run directory (sdpo_ttt/runs.py).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import torch

from sdpo_ttt.policy.model import Completion
from sdpo_ttt.problem import Problem
from sdpo_ttt.verdict import Outcome, TestResult, Verdict

PASS_MARK = "# passes"


def program(name: str, passes: bool = False, score: float = 0.0) -> str:
    """A model answer holding one fenced program; the fake sandbox reads its marker comments."""
    body = f"print({name!r})\n" + (f"{PASS_MARK}\n" if passes else f"# score={score}\n")
    return f"Here it is:\n```python\n{body}```\n"


class FakePolicy:
    """Policy double: `script` is the list of texts returned by successive samples (one per attempt, in order)."""

    def __init__(self, script: list[str], *, length_cut: set[int] | None = None, tokens_per_attempt: int = 5) -> None:
        self.script = list(script)
        self.length_cut = length_cut or set()  # attempt numbers (0-based, over the whole run) cut off at max_new_tokens
        self.tokens = tokens_per_attempt
        self.device = torch.device("cpu")
        self.calls: list[dict[str, Any]] = []
        self.drawn = 0

    def problem_messages(self, problem: Problem) -> list[dict[str, str]]:
        return [{"role": "user", "content": problem.statement}]

    def chat_ids(self, messages: list[dict[str, str]]) -> list[int]:
        return [1, 2, 3]

    def sample(self, prompts: list[list[int]], *, temperature: float, top_p: float, max_new_tokens: int, seed: int,
               adapter: str | None, progress: Callable[[int], None] | None = None, **_: Any) -> list[Completion]:
        self.calls.append({"n": len(prompts), "seed": seed, "adapter": adapter})
        out = []
        for p in prompts:
            text = self.script[self.drawn]
            cut = self.drawn in self.length_cut
            n_tok = max_new_tokens if cut else self.tokens
            if progress is not None:
                progress(n_tok)
            out.append(Completion(prompt_ids=list(p), completion_ids=list(range(10, 10 + n_tok)), text=text,
                                  finish_reason="length" if cut else "eos"))
            self.drawn += 1
        return out


class FakeSandbox:
    """Sandbox double: judges by the marker comments that `program` writes."""

    def __init__(self, n_tests: int = 4) -> None:
        self.n_tests = n_tests
        self.judged: list[str] = []

    def judge_many(self, problem: Problem, codes: list[str]) -> list[Verdict]:
        self.judged.extend(codes)
        out = []
        for code in codes:
            if PASS_MARK in code:
                tests = [TestResult(index=i, outcome=Outcome.passed) for i in range(self.n_tests)]
                out.append(Verdict(passed=True, score=1.0, outcome=Outcome.passed, tests=tests))
                continue
            m = re.search(r"# score=([0-9.]+)", code)
            score = float(m.group(1)) if m else 0.0
            n_ok = round(score * self.n_tests)
            tests = [TestResult(index=i, outcome=Outcome.passed if i < n_ok else Outcome.wrong_answer, expected="1", got="2")
                     for i in range(self.n_tests)]
            out.append(Verdict(passed=False, score=n_ok / self.n_tests, outcome=Outcome.wrong_answer, tests=tests))
        return out
