"""The SDPO teacher π_θ'(· | x, [d], f, y<t): every teacher mode, in one place.

The teacher re-scores the attempt's own tokens y under the feedback context (x, [d], f), without gradient.
What θ' is, per `--teacher` mode (ρ = a = `--teacher-rate`):

  mode          teacher log-probs on y                                          after each update
  ema           the "teacher" LoRA adapter θ' (starts equal to the student θ)   θ' ← (1−ρ)·θ' + ρ·θ on the
                                                                                effective update ΔW = s·B·A
                                                                                (policy/adapters.py: ema_update)
  trust-region  log_softmax((1−a)·log q_base + a·log q_θ), q_base the base      nothing (no state)
                model (adapters off) and q_θ the student, both on (x, [d], f):
                `trust_region_log_probs` below, applied per token by the loss
                (sdpo/loss.py), where the logits exist chunk by chunk
  frozen        the base model (adapters off)                                    nothing
  live          the student θ itself (no regularisation; paper's ablation)       nothing

The update asks `score()` for the teacher's hidden states (the loss turns them into log-probs chunk by chunk,
so [B, T, V] logits never exist) and calls `after_update()` once per batch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, get_args

import torch
import torch.nn.functional as F
from torch import Tensor

from sdpo_ttt.policy.model import STUDENT, TEACHER
from sdpo_ttt.config.sdpo import TeacherMode

if TYPE_CHECKING:
    from sdpo_ttt.policy.model import Policy

TEACHER_MODES: tuple[str, ...] = get_args(TeacherMode)  # the `--teacher` choices
BASE_MODEL = None  # adapters off
HiddenStates = Callable[..., tuple[Tensor, Tensor]]  # (prompts, completions, *, adapter) -> (h, mask): Policy.hidden_states

# which weights score the teacher prompt, per mode
SCORING_ADAPTER: dict[str, str | None] = {
    "ema": TEACHER,
    "trust-region": STUDENT,  # q_θ of the mix
    "frozen": BASE_MODEL,
    "live": STUDENT,
}


def trust_region_log_probs(base_lp: Tensor, current_lp: Tensor, rate: float) -> Tensor:
    """The trust-region teacher's log-probs log_softmax((1−a)·log q_base + a·log q_θ) over the last dim, no grad.

    base_lp, current_lp: log-probs of the base model and of the student on the teacher prompt (same shape).
    a = 0 is the base model, a = 1 the student ("live").
    """
    with torch.no_grad():
        return F.log_softmax((1.0 - rate) * base_lp + rate * current_lp, dim=-1)


@dataclass
class TeacherScores:
    """The teacher's final hidden states at the attempt tokens, [B, T, H], no grad."""

    hidden: Tensor
    base_hidden: Tensor | None = None  # trust-region only: q_base on the same prompt, mixed in the loss at rate a


class Teacher:
    def __init__(self, policy: "Policy", mode: str, rate: float) -> None:
        if mode not in TEACHER_MODES:
            raise ValueError(f"teacher mode must be one of {TEACHER_MODES}, got {mode!r}")
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"teacher rate must be in [0, 1], got {rate}")
        self.policy = policy
        self.mode = mode
        self.rate = rate
        if mode == "ema":
            policy.sync_teacher()  # θ' starts at θ

    @torch.no_grad()
    def score(self, prompts: list[list[int]], completions: list[list[int]], states: HiddenStates | None = None) -> TeacherScores:
        """Hidden states of the teacher on (x, [d], f) at the tokens y; `states` computes them (default
        `Policy.hidden_states`; the update passes sdpo/shared.py's, which runs the prompts' common prefix once)."""
        states = states or self.policy.hidden_states
        hidden, _ = states(prompts, completions, adapter=SCORING_ADAPTER[self.mode])
        base = None
        if self.mode == "trust-region":
            base, _ = states(prompts, completions, adapter=BASE_MODEL)
        return TeacherScores(hidden, base)

    def after_update(self) -> dict[str, float]:
        """Move θ' after the student's update (ema mode); returns what to log."""
        if self.mode != "ema":
            return {}
        return {"teacher/ema_truncation_error": float(self.policy.ema_update_teacher(self.rate))}
