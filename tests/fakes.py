"""Test doubles and helpers of the fast tests: no process, container or real model weights needed.

FakePolicy answers every sample call with the next texts of a script; FakeSandbox passes a program by a
marker in its code (PASS_MARK, as `program` writes it) or by the order in which attempts reach it (`pass_at`),
and can raise KeyboardInterrupt on a chosen call. Nothing here decides a test's outcome except through the
real loop (sdpo_ttt/run/loop.py) and the real run directory (sdpo_ttt/run/rundir.py). The tiny random model is loaded
as a Policy with `tiny_config` + `load_policy`; `attempt` builds a judged attempt without sampling.
"""

from __future__ import annotations

import contextlib
import importlib.util

import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from sdpo_ttt.config.tree import SolveConfig
from sdpo_ttt.policy.model import Completion
from sdpo_ttt.problem.schema import Problem
from sdpo_ttt.sandbox.verdict import Outcome, TestResult, Verdict

PASS_MARK = "# passes"

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


def program(name: str, passes: bool = False, score: float = 0.0) -> str:
    """A model answer holding one fenced program; the fake sandbox reads its marker comments."""
    body = f"print({name!r})\n" + (f"{PASS_MARK}\n" if passes else f"# score={score}\n")
    return f"Here it is:\n```python\n{body}```\n"


class FakePolicy:
    """Policy double: `script` is the list of texts returned by successive samples (one per attempt, in order).

    `drawn`: script entries already used (a resumed run goes on from there). `interrupt_after`: a sample call made
    once that many attempts were drawn raises KeyboardInterrupt("killed"), like a kill mid-run.
    """

    def __init__(self, script: list[str], *, length_cut: set[int] | None = None, tokens_per_attempt: int = 5,
                 drawn: int = 0, interrupt_after: int | None = None, cut_after_code: bool = False) -> None:
        self.script = list(script)
        self.length_cut = length_cut or set()  # attempt numbers (0-based, over the whole run) cut off at max_new_tokens
        self.cut_after_code = cut_after_code  # the cut attempts closed their code, the limit cut the prose after it
        self.tokens = tokens_per_attempt
        self.device = torch.device("cpu")
        self.calls: list[dict[str, Any]] = []
        self.drawn = drawn
        self.interrupt_after = interrupt_after

    def problem_messages(self, problem: Problem) -> list[dict[str, str]]:
        return [{"role": "user", "content": problem.statement}]

    def chat_ids(self, messages: list[dict[str, str]]) -> list[int]:
        return [1, 2, 3]

    def sample(self, prompts: list[list[int]], *, temperature: float, top_p: float, max_new_tokens: int, seed: int,
               adapter: str | None, progress: Callable[[int], None] | None = None, **_: Any) -> list[Completion]:
        if self.interrupt_after is not None and self.drawn >= self.interrupt_after:
            raise KeyboardInterrupt("killed")
        self.calls.append({"n": len(prompts), "seed": seed, "adapter": adapter})
        out = []
        for p in prompts:
            text = self.script[self.drawn]
            cut = self.drawn in self.length_cut
            if cut and self.cut_after_code:  # a sampler that did not stop at the fence (old runs, other paths)
                text += "\nThis program reads the input and"
            elif cut:  # the limit cut the program: its block never closed (a closed one would have ended the answer)
                text = text.removesuffix("```\n")
            n_tok = max_new_tokens if cut else self.tokens
            if progress is not None:
                progress(n_tok)
            out.append(Completion(prompt_ids=list(p), completion_ids=list(range(10, 10 + n_tok)), text=text,
                                  finish_reason="length" if cut else "eos"))
            self.drawn += 1
        return out


class FakeSandbox:
    """Sandbox double. The k-th attempt it sees (0-based, over its whole life) passes iff its code holds PASS_MARK
    or k is in `pass_at`; a failing one scores its `# score=` comment (0 without one): the first
    round(score * n_tests) of its n_tests tests pass, the others are answered wrongly.

    `interrupt_on_call`: raise KeyboardInterrupt on that judge_many call (0-based), like a Ctrl-C mid-run.
    `judged`: every code judged, in arrival order.
    """

    name = "fake"

    def __init__(self, n_tests: int = 4, *, pass_at: set[int] = frozenset(), interrupt_on_call: int | None = None) -> None:
        self.n_tests = n_tests
        self.pass_at = set(pass_at)
        self.interrupt_on_call = interrupt_on_call
        self.calls = 0
        self.judged: list[str] = []

    def judge(self, problem: Problem, code: str) -> Verdict:
        return self.judge_many(problem, [code])[0]

    def judge_many(self, problem: Problem, codes: list[str]) -> list[Verdict]:
        if self.calls == self.interrupt_on_call:
            raise KeyboardInterrupt("scripted interrupt")
        self.calls += 1
        seen = len(self.judged)
        self.judged.extend(codes)
        return [self._verdict(code, seen + i in self.pass_at) for i, code in enumerate(codes)]

    def _verdict(self, code: str, passes: bool) -> Verdict:
        if passes or PASS_MARK in code:
            tests = [TestResult(index=i, outcome=Outcome.passed) for i in range(self.n_tests)]
            return Verdict(passed=True, score=1.0, outcome=Outcome.passed, tests=tests)
        m = re.search(r"# score=([0-9.]+)", code)
        n_ok = round((float(m.group(1)) if m else 0.0) * self.n_tests)
        tests = [TestResult(index=i, outcome=Outcome.passed if i < n_ok else Outcome.wrong_answer, expected="1", got="2")
                 for i in range(self.n_tests)]
        return Verdict(passed=False, score=n_ok / self.n_tests, outcome=Outcome.wrong_answer, tests=tests)

    def close(self) -> None:
        pass

    def __enter__(self) -> "FakeSandbox":
        return self

    def __exit__(self, *exc: object) -> None:
        pass


def attempt(index: int, *, step: int = 0, chain: int | None = None, feedback: str = "", passed: bool = False,
            code: str | None = "print(0)\n", prompt_ids: list[int] | None = None, completion_ids: list[int] | None = None):
    """A judged attempt as the loop hands it to a strategy (no model needed)."""
    from sdpo_ttt.sandbox.attempt import Attempt

    comp = Completion(prompt_ids=prompt_ids or [1, 2, 3], completion_ids=completion_ids or [4, 5], text=code or "", finish_reason="eos")
    v = Verdict(passed=passed, score=1.0 if passed else 0.0, outcome=Outcome.passed if passed else Outcome.wrong_answer)
    return Attempt(step=step, index=index, chain=index if chain is None else chain, completion=comp, code=code, verdict=v,
                   feedback="" if passed else feedback)


def char_ids(messages: list[dict[str, str]]) -> list[int]:
    """A stand-in chat template: one token per character of every turn."""
    return [ord(ch) for m in messages for ch in m["content"]]


@contextlib.contextmanager
def restored_adapters(policy, where: Path):
    """Yields restore(): puts the student and teacher adapters back as they were on entry; also done on exit."""
    policy.save_adapter("student", where / "s")
    policy.save_adapter("teacher", where / "t")

    def restore() -> None:
        policy.load_adapter("student", where / "s")
        policy.load_adapter("teacher", where / "t")

    try:
        yield restore
    finally:
        restore()


def load_benchmark(name: str) -> Any:
    """benchmarks/<name>.py as a module (benchmarks/ is no package: the scripts are loaded by path)."""
    spec = importlib.util.spec_from_file_location(name, Path(__file__).resolve().parent.parent / "benchmarks" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def assert_same_update(metrics: dict, grads: dict, student: dict, m_ref: dict, g_ref: dict, s_ref: dict) -> None:
    """Two SDPO updates agree within float32 noise: logged metrics (timings aside), LoRA gradients, student weights."""
    import pytest

    for key, ref in m_ref.items():
        if not key.startswith("time/"):
            assert metrics[key] == pytest.approx(ref, rel=1e-4, abs=1e-6), key
    assert grads.keys() == g_ref.keys() and grads
    for name, ref in g_ref.items():
        torch.testing.assert_close(grads[name], ref, rtol=1e-3, atol=1e-6, msg=name)
    for name, ref in s_ref.items():
        torch.testing.assert_close(student[name], ref, rtol=1e-4, atol=1e-5, msg=name)
