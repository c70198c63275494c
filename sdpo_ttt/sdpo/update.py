"""One SDPO update on a batch of judged attempts, top to bottom (arXiv 2601.20802, §3).

  x = the question prompt, y = an attempt's own tokens (exactly as sampled), f = its feedback,
  d = a passing sibling from the same batch (a demonstration), if any
  1. contexts  student x;  teacher (x, [d], f)                                    reprompt.Contexts
  2. teacher   π_θ'(· | x, [d], f, y<t), no grad, the same tokens y re-scored     sdpo/teacher.py (every mode)
  3. student   π_θ(· | x, y<t), with grad (LoRA adapter "student")
  4. loss      L = (1−λ)·L_sdpo + λ·L_grpo + β·L_kl                               sdpo/loss.py, in chunks: sdpo/chunked.py
               L_sdpo = mean_{i,t} ρ_t·D_α(π_θ(·|x,y<t) ‖ π_θ'(·|x,[d],f,y<t))  (mean over the batch's tokens)
               L_grpo = mean_{i,t} −ρ_t·A_i·log π_θ(y_t|x,y<t),  A = GRPO advantage of the verifier score
               L_kl   = mean_{i,t} KL(π_θ(·|x,y<t) ‖ π_base(·|x,y<t))
               ρ_t = min(π_θ(y_t)/π_old(y_t), c): 1 on the first step; π_old = this batch's first-step student
  5. step      θ ← AdamW(θ, ∇L clipped to `grad_clip`, weight decay), `steps_per_batch` times
  6. teacher   θ' ← (1−ρ)·θ' + ρ·θ (ema mode; the other modes keep no state)
Gradient accumulation: each micro-batch's loss is weighted by its share of the tokens, so a step equals one
pass over the whole batch; statistics are summed and divided once (sdpo/stats.py). Neither the update nor
what it logs depends on `micro_batch_size`. The prompt prefix the batch's rows share (the question) runs once per
step and context, its gradient summed over the micro-batches (sdpo/shared.py); the rest of each row runs against it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from sdpo_ttt.config.sdpo import LossConfig
from sdpo_ttt.config.tree import OptimConfig
from sdpo_ttt.policy.model import STUDENT
from sdpo_ttt.sdpo.reprompt import Contexts
from sdpo_ttt.sdpo.chunked import sdpo_loss
from sdpo_ttt.sdpo.loss import group_advantages
from sdpo_ttt.sdpo.microbatch import MicroBatch, UpdateBatch, micro_batches
from sdpo_ttt.sdpo.shared import SharedPrompts
from sdpo_ttt.sdpo.stats import UpdateStats
from sdpo_ttt.sdpo.teacher import BASE_MODEL, Teacher

if TYPE_CHECKING:
    from sdpo_ttt.policy.model import Policy
    from sdpo_ttt.sandbox.attempt import Attempt

__all__ = ["SDPOUpdater", "UpdateBatch", "build_contexts"]


def build_contexts(attempts: list["Attempt"], contexts: Contexts | list[Contexts],
                   through_code: Callable[[list[int]], int | None] | None = None) -> UpdateBatch:
    """1. The student context x of each attempt (as sampled) and its teacher context (x, [d], f). `contexts`: one for
    the batch (sdpo: x is the question), or one per attempt (sdpo-evolve: x is the prompt that refined its parent).
    through_code(y): how many of y's tokens run through its closing code fence (policy/stop.py); tokens after it are
    not trained on."""
    per_attempt = contexts if isinstance(contexts, list) else [contexts] * len(attempts)
    passing = [a for a in attempts if a.verdict.passed and a.code]
    demos = [next((p.code for p in passing if p.index != a.index), None) for a in attempts]  # never the attempt itself
    return UpdateBatch(
        student_prompts=[a.completion.prompt_ids for a in attempts],
        teacher_prompts=[c.teacher(a.feedback, d) for a, c, d in zip(attempts, per_attempt, demos, strict=True)],
        completions=[_through_code(a.completion.completion_ids, through_code) for a in attempts],
        rewards=[a.verdict.score for a in attempts],
        has_feedback=[bool(a.feedback) for a in attempts],
        has_demo=[d is not None for d in demos],
    )


def _through_code(ids: list[int], through_code: Callable[[list[int]], int | None] | None) -> list[int]:
    """y up to its closing code fence: the samplers stop there; this keeps other paths (stand-in samplers,
    completions made before the stop existed) from training on the prose after the code."""
    n = through_code(ids) if through_code is not None else None
    return list(ids) if n is None else list(ids[:n])


Phase = Callable[[str, int, int], None]  # ("teacher" | "student", micro-batch i, of n): whoever displays progress


def _no_phase(name: str, i: int, n: int) -> None:
    pass


class SDPOUpdater:
    """Holds the optimiser and the teacher; `step(attempts)` learns from one judged batch and returns its metrics.

    loss: the loss section (its temperature is the sampling temperature, derived by SolveConfig); optim: the
    optimiser section; on_phase: told when each micro-batch's teacher pass and student update begin."""

    def __init__(self, policy: "Policy", loss: LossConfig, optim: OptimConfig, contexts: Contexts, on_phase: Phase | None = None) -> None:
        self.policy = policy
        self.contexts = contexts
        self.loss_cfg = loss
        self.optim = optim
        self.on_phase = on_phase or _no_phase
        self.teacher = Teacher(policy, loss.teacher, loss.teacher_rate)
        self.params = list(policy.trainable_parameters())
        self.optimizer = torch.optim.AdamW(self.params, lr=self.optim.lr, weight_decay=self.optim.weight_decay)

    def step(self, attempts: list["Attempt"], contexts: list[Contexts] | None = None) -> dict[str, float]:
        """Learn from a judged batch; `contexts`: each attempt's own (sdpo-evolve), else the problem's for all."""
        stop = getattr(self.policy, "code_stop", None)  # (stand-in policies in tests have none)
        return self.update(build_contexts(attempts, self.contexts if contexts is None else contexts,
                                          stop.through_code if stop is not None else None))

    def update(self, batch: UpdateBatch) -> dict[str, float]:
        """Steps 2-6 on a batch whose contexts are built."""
        advantages = self.advantages(batch)
        stats = UpdateStats(batch, advantages)
        old_logp: dict[int, Tensor] = {}  # micro-batch -> ls(y_t) at the first step: π_old of the importance ratio
        for _ in range(self.optim.steps_per_batch):
            self.optimizer.zero_grad(set_to_none=True)
            shared = SharedPrompts(self.policy, batch)  # the prompts' common prefix, run once per step: sdpo/shared.py
            mbs = list(micro_batches(batch, self.optim.micro_batch_size, self.loss_cfg.aggregation))
            for i, mb in enumerate(mbs):
                self.on_phase("teacher", i, len(mbs))
                with stats.time("teacher"):
                    teacher = self.teacher.score(mb.teacher_prompts, mb.completions, shared.scorer("teacher"))  # 2.
                    reference = self.base_on_student_prompt(mb, shared)  # π_base(·|x,y<t), for β·L_kl only
                self.on_phase("student", i, len(mbs))
                with stats.time("student"):
                    student, mask = shared.hidden_states("student", mb.student_prompts, mb.completions, adapter=STUDENT)  # 3.
                    out = sdpo_loss(  # 4. L and its terms, logits formed chunk by chunk from the hidden states
                        student,
                        teacher.hidden,
                        self.policy.lm_head_weight,
                        mb.target_ids(mask),
                        mask,
                        self.loss_cfg,
                        ref_hidden=reference,
                        teacher_ref_hidden=teacher.base_hidden,
                        advantages=None if advantages is None else advantages[mb.rows],
                        old_logp=old_logp.get(i),
                    )
                    (out.loss * mb.share).backward()  # Σ_mb share·L_mb = L over the batch
                old_logp.setdefault(i, out.student_logp)
                stats.add(out, mb)  # its stats, and each attempt's gap for sdpo/gap_score_corr
            with stats.time("student"):
                shared.backward()  # the shared prompt's gradient, summed over the micro-batches
            grad_norm = torch.nn.utils.clip_grad_norm_(self.params, self.optim.grad_clip)  # 5.
            self.optimizer.step()
            stats.end_step(grad_norm)
        stats.record(self.teacher.after_update())  # 6.
        return stats.metrics(lr=self.optim.lr)

    def advantages(self, batch: UpdateBatch) -> Tensor | None:
        """GRPO advantages of the verifier scores over the WHOLE batch (micro-batches index into them)."""
        if self.loss_cfg.grpo_weight <= 0:
            return None
        rewards = torch.tensor(batch.rewards, dtype=torch.float32, device=self.policy.device)
        return group_advantages(rewards, self.loss_cfg.grpo_eps, self.loss_cfg.grpo_scale_std)

    @torch.no_grad()
    def base_on_student_prompt(self, mb: MicroBatch, shared: SharedPrompts) -> Tensor | None:
        if self.loss_cfg.kl_weight <= 0:
            return None
        hidden, _ = shared.hidden_states("student", mb.student_prompts, mb.completions, adapter=BASE_MODEL)
        return hidden

    def state_dict(self) -> dict:
        return self.optimizer.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.optimizer.load_state_dict(state)
