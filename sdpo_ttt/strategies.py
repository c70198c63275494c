"""How the next batch is drawn and what is learned from it: sdpo, best-of-k, multi-turn.

Everything else (sampling, judging, logging, stopping, budget) is shared in loop.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import torch

from sdpo_ttt.config import SolveConfig
from sdpo_ttt.reprompt import multi_turn_user_turn, teacher_user_turn
from sdpo_ttt.verdict import Verdict

if TYPE_CHECKING:
    from sdpo_ttt.policy.model import Completion, Policy


@dataclass
class Attempt:
    """One judged attempt, as the loop and the strategies see it."""

    step: int
    index: int  # 0-based position in the whole run (discovery time = index + 1)
    chain: int  # position in its batch (multi-turn: the chain it belongs to)
    completion: "Completion"
    code: str | None
    verdict: Verdict
    feedback: str  # "" when passed


class Strategy(Protocol):
    name: str
    sample_adapter: str | None  # adapter to sample with ("student") or None for the base model

    def prompts(self, n: int) -> list[list[int]]: ...
    def observe(self, attempts: list[Attempt]) -> dict[str, float]: ...
    def save(self, directory: Path) -> None: ...
    def load(self, directory: Path, history: list[dict]) -> None: ...


def _user_turn(messages: list[dict[str, str]]) -> str:
    return next(m["content"] for m in reversed(messages) if m["role"] == "user")


def _with_user_turn(messages: list[dict[str, str]], text: str) -> list[dict[str, str]]:
    out = [dict(m) for m in messages]
    for m in reversed(out):
        if m["role"] == "user":
            m["content"] = text
            break
    return out


def _fit_feedback(policy: "Policy", messages: list[dict[str, str]], build, feedback: str, limit: int) -> list[int]:
    """Prompt ids of build(feedback), halving the feedback (middle-out) until the prompt fits in `limit` tokens."""
    while True:
        ids = policy.chat_ids(_with_user_turn(messages, build(feedback)))
        if len(ids) <= limit or len(feedback) < 64:
            return ids
        keep = len(feedback) // 4
        feedback = feedback[:keep] + "\n...\n" + feedback[-keep:]


class BestOfK:
    """i.i.d. samples from the base model; nothing is learned."""

    name = "best-of-k"
    sample_adapter = None

    def __init__(self, policy: "Policy", messages: list[dict[str, str]]) -> None:
        self.prompt = policy.chat_ids(messages)

    def prompts(self, n: int) -> list[list[int]]:
        return [list(self.prompt) for _ in range(n)]

    def observe(self, attempts: list[Attempt]) -> dict[str, float]:
        return {}

    def save(self, directory: Path) -> None:
        pass

    def load(self, directory: Path, history: list[dict]) -> None:
        pass


class MultiTurn:
    """B parallel chains; chain c is re-prompted with the question plus the feedback of its earlier attempts."""

    name = "multi-turn"
    sample_adapter = None

    def __init__(self, policy: "Policy", messages: list[dict[str, str]], cfg: SolveConfig) -> None:
        self.policy = policy
        self.messages = messages
        self.question = _user_turn(messages)
        self.limit = cfg.max_prompt_tokens
        self.feedbacks: dict[int, list[str]] = {}

    def _prompt(self, chain: int) -> list[int]:
        fbs = list(self.feedbacks.get(chain, []))
        while True:  # drop the oldest feedback first until the prompt fits
            ids = self.policy.chat_ids(_with_user_turn(self.messages, multi_turn_user_turn(self.question, fbs)))
            if len(ids) <= self.limit or not fbs:
                return ids
            fbs.pop(0)

    def prompts(self, n: int) -> list[list[int]]:
        return [self._prompt(c) for c in range(n)]

    def observe(self, attempts: list[Attempt]) -> dict[str, float]:
        for a in attempts:
            if a.feedback:
                self.feedbacks.setdefault(a.chain, []).append(a.feedback)
        return {"multi_turn/mean_feedback_turns": sum(len(v) for v in self.feedbacks.values()) / max(len(self.feedbacks), 1)}

    def save(self, directory: Path) -> None:
        pass  # the chains' feedback is rebuilt from attempts.jsonl on resume

    def load(self, directory: Path, history: list[dict]) -> None:
        for rec in history:
            if rec.get("feedback"):
                self.feedbacks.setdefault(int(rec["chain"]), []).append(rec["feedback"])


class SDPO:
    """Sample from base + LoRA on the plain prompt; learn by self-distillation from the feedback-conditioned teacher."""

    name = "sdpo"
    sample_adapter = "student"

    def __init__(self, policy: "Policy", messages: list[dict[str, str]], cfg: SolveConfig) -> None:
        from sdpo_ttt.sdpo.update import SDPOUpdater

        self.policy = policy
        self.cfg = cfg
        self.messages = messages
        self.question = _user_turn(messages)
        self.prompt = policy.chat_ids(messages)
        self.updater = SDPOUpdater(policy, cfg)

    def prompts(self, n: int) -> list[list[int]]:
        return [list(self.prompt) for _ in range(n)]

    def teacher_prompt(self, feedback: str, demo: str | None) -> list[int]:
        return _fit_feedback(
            self.policy, self.messages, lambda fb: teacher_user_turn(self.question, fb or None, demo), feedback, self.cfg.max_prompt_tokens
        )

    def observe(self, attempts: list[Attempt]) -> dict[str, float]:
        from sdpo_ttt.sdpo.update import UpdateBatch

        passing = [a for a in attempts if a.verdict.passed and a.code]
        teacher_prompts, has_demo = [], []
        for a in attempts:
            # demonstration: a passing sibling from the same batch (never the attempt itself)
            demo = next((p.code for p in passing if p.index != a.index), None)
            teacher_prompts.append(self.teacher_prompt(a.feedback, demo))
            has_demo.append(demo is not None)
        batch = UpdateBatch(
            student_prompts=[a.completion.prompt_ids for a in attempts],
            teacher_prompts=teacher_prompts,
            completions=[a.completion.completion_ids for a in attempts],
            rewards=[a.verdict.score for a in attempts],
            has_feedback=[bool(a.feedback) for a in attempts],
            has_demo=has_demo,
        )
        return self.updater.step(batch)

    def save(self, directory: Path) -> None:
        self.policy.save_adapter("student", directory / "student")
        self.policy.save_adapter("teacher", directory / "teacher")
        torch.save(self.updater.state_dict(), directory / "optimizer.pt")

    def load(self, directory: Path, history: list[dict]) -> None:
        self.policy.load_adapter("student", directory / "student")
        self.policy.load_adapter("teacher", directory / "teacher")
        self.updater.load_state_dict(torch.load(directory / "optimizer.pt", weights_only=True))


def make_strategy(cfg: SolveConfig, policy: "Policy", messages: list[dict[str, str]]) -> Strategy:
    if cfg.strategy == "sdpo":
        return SDPO(policy, messages, cfg)
    if cfg.strategy == "best-of-k":
        return BestOfK(policy, messages)
    return MultiTurn(policy, messages, cfg)
