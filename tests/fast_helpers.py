"""Helpers of the fast tests: the tiny random model as a Policy, attempts without sampling, a scripted sandbox.

Nothing here starts a process or a container: the scripted sandbox decides verdicts from the order in which
attempts reach it, so the loop's orchestration is testable in seconds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from sdpo_ttt.config import SolveConfig
from sdpo_ttt.problem import Problem
from sdpo_ttt.verdict import Outcome, TestResult, Verdict

TINY = {"lora_rank": 2, "lora_alpha": 4, "lora_targets": ["q_proj", "v_proj", "down_proj"], "max_new_tokens": 8,
        "max_prompt_tokens": 512, "lr": 1e-2, "seed": 3, "device": "cpu"}


def tiny_config(model_dir: Path, **overrides: Any) -> SolveConfig:
    """A run configuration for the tiny model (flat option names, as on the command line)."""
    return SolveConfig(**{"model": str(model_dir), **TINY, **overrides})


def load_policy(cfg: SolveConfig):
    from sdpo_ttt.policy.model import Policy

    return Policy.load(cfg.policy, seed=cfg.seed)


def lora_state(policy, adapter: str) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in policy.model.named_parameters() if f".{adapter}." in n and ".lora_" in n}


def base_state(policy) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in policy.model.named_parameters() if ".lora_" not in n}


def verdict(problem: Problem, passed: bool) -> Verdict:
    """A verdict as the runner would give it: every test passed, or the first public test answered wrongly."""
    tests = [
        TestResult(index=i, outcome=Outcome.passed if passed or i > 0 else Outcome.wrong_answer, public=t.public,
                   input=t.input, expected=t.output, got=t.output if passed or i > 0 else "wrong\n")
        for i, t in enumerate(problem.tests)
    ]
    n_pass = sum(t.outcome is Outcome.passed for t in tests)
    return Verdict(passed=passed, score=n_pass / len(tests), outcome=Outcome.passed if passed else Outcome.wrong_answer, tests=tests)


class ScriptedSandbox:
    """Judges the k-th attempt it sees (0-based, over the whole run) as passed iff k is in `pass_at`.

    `interrupt_on_call`: raise KeyboardInterrupt on that judge_many call (0-based), like a Ctrl-C mid-run.
    """

    name = "scripted"

    def __init__(self, pass_at: set[int] = frozenset(), interrupt_on_call: int | None = None, seen: int = 0) -> None:
        self.pass_at = set(pass_at)
        self.interrupt_on_call = interrupt_on_call
        self.calls = 0
        self.seen = seen
        self.codes: list[str] = []

    def judge(self, problem: Problem, code: str) -> Verdict:
        return self.judge_many(problem, [code])[0]

    def judge_many(self, problem: Problem, codes: list[str]) -> list[Verdict]:
        if self.calls == self.interrupt_on_call:
            raise KeyboardInterrupt("scripted interrupt")
        self.calls += 1
        out = [verdict(problem, self.seen + i in self.pass_at) for i in range(len(codes))]
        self.seen += len(codes)
        self.codes.extend(codes)
        return out

    def close(self) -> None:
        pass

    def __enter__(self) -> "ScriptedSandbox":
        return self

    def __exit__(self, *exc: object) -> None:
        pass


def attempt(index: int, *, step: int = 0, chain: int | None = None, feedback: str = "", passed: bool = False,
            code: str | None = "print(0)\n", prompt_ids: list[int] | None = None, completion_ids: list[int] | None = None):
    """A judged attempt as the loop hands it to a strategy (no model needed)."""
    from sdpo_ttt.policy.model import Completion
    from sdpo_ttt.strategies import Attempt

    comp = Completion(prompt_ids=prompt_ids or [1, 2, 3], completion_ids=completion_ids or [4, 5], text=code or "", finish_reason="eos")
    v = Verdict(passed=passed, score=1.0 if passed else 0.0, outcome=Outcome.passed if passed else Outcome.wrong_answer)
    return Attempt(step=step, index=index, chain=index if chain is None else chain, completion=comp, code=code, verdict=v,
                   feedback="" if passed else feedback)


def char_ids(messages: list[dict[str, str]]) -> list[int]:
    """A stand-in chat template: one token per character of every turn."""
    return [ord(ch) for m in messages for ch in m["content"]]
