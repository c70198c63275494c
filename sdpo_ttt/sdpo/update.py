"""One SDPO update on a batch of judged attempts: teacher pass, student pass, loss, optimiser step, EMA.

Read top to bottom against the paper (arXiv 2601.20802, §3):
  x   = the question prompt, y = an attempt's own tokens (exactly as sampled), f = its feedback
  student  π_θ(· | x, y<t)                        -> hidden states with grad (adapter "student")
  teacher  π_θ'(· | x, [demo], f, y<t), no_grad   -> the same tokens y re-scored, never regenerated
  loss     Σ_t D_α(π_θ(·|x,y<t) ‖ π_θ'(·|x,f,y<t)), per-sequence mean, batch mean  (sdpo/chunked.py)
  θ  ← AdamW(θ, ∇loss), clipped to `grad_clip`
  θ' ← (1 − rate)·θ' + rate·θ     on the effective LoRA update (teacher="ema")
Micro-batching: gradients accumulate over micro-batches of `micro_batch_size` attempts, each scaled by
its share of non-empty attempts, so the step equals one pass over the whole batch.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from sdpo_ttt.config import SolveConfig
from sdpo_ttt.sdpo.chunked import sdpo_loss
from sdpo_ttt.sdpo.config import LossConfig
from sdpo_ttt.sdpo.loss import group_advantages

if TYPE_CHECKING:
    from sdpo_ttt.policy.model import Policy


@dataclass
class UpdateBatch:
    """What one update learns from: per attempt, the two contexts, the attempt's tokens and its reward."""

    student_prompts: list[list[int]]
    teacher_prompts: list[list[int]]
    completions: list[list[int]]
    rewards: list[float]  # verifier score (fraction of tests passed), for the optional GRPO hybrid
    has_feedback: list[bool]
    has_demo: list[bool]


def loss_config(cfg: SolveConfig) -> LossConfig:
    return LossConfig(
        mode=cfg.loss,
        alpha=cfg.alpha,
        topk=cfg.topk,
        temperature=1.0,
        grpo_weight=cfg.grpo_weight,
        kl_weight=cfg.kl_weight,
        adv_clip=cfg.adv_clip,
        trust_region_rate=cfg.teacher_rate,
        chunk_tokens=cfg.chunk_tokens,
    )


class SDPOUpdater:
    """Holds the optimiser; `step(batch)` runs `steps_per_batch` SDPO updates and returns metrics."""

    def __init__(self, policy: "Policy", cfg: SolveConfig) -> None:
        self.policy = policy
        self.cfg = cfg
        self.loss_cfg = loss_config(cfg)
        self.params = list(policy.trainable_parameters())
        self.optimizer = torch.optim.AdamW(self.params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        if cfg.teacher == "ema":
            policy.sync_teacher()  # θ' starts at θ

    # --- the three forward passes of one micro-batch
    def _teacher_hidden(self, b: UpdateBatch, idx: list[int]) -> tuple[torch.Tensor, torch.Tensor | None]:
        prompts = [b.teacher_prompts[i] for i in idx]
        comps = [b.completions[i] for i in idx]
        adapter = {"ema": "teacher", "live": "student", "trust-region": "student", "frozen": None}[self.cfg.teacher]
        with torch.no_grad():
            hidden, _ = self.policy.hidden_states(prompts, comps, adapter=adapter)
            ref = None
            if self.cfg.teacher == "trust-region":  # (1−a)·log q_ref + a·log q_θ, mixed in the loss
                ref, _ = self.policy.hidden_states(prompts, comps, adapter=None)
        return hidden, ref

    def _ref_hidden(self, b: UpdateBatch, idx: list[int]) -> torch.Tensor | None:
        if self.cfg.kl_weight <= 0:
            return None
        with torch.no_grad():
            hidden, _ = self.policy.hidden_states([b.student_prompts[i] for i in idx], [b.completions[i] for i in idx], adapter=None)
        return hidden

    def step(self, b: UpdateBatch) -> dict[str, float]:
        n = len(b.completions)
        nonempty = [i for i in range(n) if len(b.completions[i]) > 0]
        advantages = group_advantages(torch.tensor(b.rewards, dtype=torch.float32))  # GRPO: (r − mean)/(std + eps)
        metrics: dict[str, float] = {
            "health/frac_with_feedback": sum(b.has_feedback) / max(n, 1),
            "health/frac_with_demo": sum(b.has_demo) / max(n, 1),
            "health/empty_targets": float(n - len(nonempty)),
        }
        t_teacher = t_student = 0.0
        losses: list[float] = []
        stat_sums: dict[str, float] = {}
        grad_norm = 0.0
        for _ in range(self.cfg.steps_per_batch):
            self.optimizer.zero_grad(set_to_none=True)
            total = 0.0
            mbs = self.cfg.micro_batch_size
            for start in range(0, len(nonempty), mbs):
                idx = nonempty[start : start + mbs]
                share = len(idx) / len(nonempty)
                t0 = time.perf_counter()
                teacher_hidden, teacher_ref = self._teacher_hidden(b, idx)
                ref_hidden = self._ref_hidden(b, idx)
                t1 = time.perf_counter()
                student_hidden, mask = self.policy.hidden_states(
                    [b.student_prompts[i] for i in idx], [b.completions[i] for i in idx], adapter="student"
                )
                targets = torch.zeros(mask.shape, dtype=torch.long, device=mask.device)
                for row, i in enumerate(idx):
                    targets[row, : len(b.completions[i])] = torch.tensor(b.completions[i], device=mask.device)
                out = sdpo_loss(
                    student_hidden,
                    teacher_hidden,
                    self.policy.lm_head_weight,
                    targets,
                    mask,
                    self.loss_cfg,
                    ref_hidden=ref_hidden,
                    teacher_ref_hidden=teacher_ref,
                    advantages=advantages[idx].to(student_hidden.device) if self.cfg.grpo_weight > 0 else None,
                )
                (out.loss * share).backward()
                t2 = time.perf_counter()
                t_teacher += t1 - t0
                t_student += t2 - t1
                total += float(out.loss.detach()) * share
                for k, v in out.stats.items():
                    stat_sums[k] = stat_sums.get(k, 0.0) + float(v) * share
            grad_norm = float(torch.nn.utils.clip_grad_norm_(self.params, self.cfg.grad_clip))
            self.optimizer.step()
            losses.append(total)
        if self.cfg.teacher == "ema":  # θ' ← (1 − rate)·θ' + rate·θ on the effective update
            metrics["teacher/ema_truncation_error"] = float(self.policy.ema_update_teacher(self.cfg.teacher_rate))
        steps = self.cfg.steps_per_batch
        metrics.update({k: v / steps for k, v in stat_sums.items()})
        metrics.update(
            {
                "loss": losses[-1] if losses else 0.0,
                "loss_first": losses[0] if losses else 0.0,
                "grad_norm": grad_norm,
                "lr": self.cfg.lr,
                "time/teacher_s": t_teacher,
                "time/student_fwd_bwd_s": t_student,
            }
        )
        return metrics

    def state_dict(self) -> dict:
        return self.optimizer.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.optimizer.load_state_dict(state)
