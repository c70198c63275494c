"""Hyper-parameters of the SDPO loss (arXiv 2601.20802, "Reinforcement Learning via Self-Distillation").

One typed dataclass; every field carries its help text and, where there is one, the paper's symbol or the
public reference implementation's name for it (lasgroup/SDPO `self_distillation` config; TRL experimental
SDPO). The formulas themselves live in `sdpo_ttt/sdpo/loss.py`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Literal

LossMode = Literal["logit", "full", "token", "sequence"]
LOSS_MODES: tuple[str, ...] = ("logit", "full", "token", "sequence")


def _help(text: str, **kw):  # a dataclass field whose help text travels in its metadata (TRL-style)
    return field(metadata={"help": text}, **kw)


@dataclass
class LossConfig:
    mode: LossMode = _help(
        "Per-token distillation signal. 'logit': divergence over the student's top-K tokens plus one tail "
        "bucket (paper's test-time default; reference `distillation_topk`). 'full': exact divergence over the "
        "whole vocabulary (the 'SDPG' variant). 'token': sampled-token surrogate "
        "sg(log π_s(y_t) − log π_t(y_t))·log π_s(y_t). 'sequence': one REINFORCE weight per attempt, "
        "A = Σ_t (log π_t(y_t) − log π_s(y_t)).",
        default="logit",
    )
    alpha: float = _help(
        "Divergence interpolation α (reference `alpha`): 1 = reverse KL(π_s‖π_t) (paper Eq. 1, test-time "
        "default), 0 = forward KL(π_t‖π_s), 0<α<1 = generalized JSD (1−α)·KL(π_s‖M) + α·KL(π_t‖M) with "
        "M = (1−α)·π_s + α·π_t. Only 'logit' and 'full' use it; 'token'/'sequence' are reverse-KL estimators.",
        default=1.0,
    )
    topk: int = _help(
        "K of the 'logit' mode: the student's K most likely tokens (paper: 20 at test time, 100 in "
        "training). K >= vocab size means the full vocabulary (no tail bucket).",
        default=20,
    )
    temperature: float = _help(
        "Logits of student, teacher and reference are divided by this before any softmax (the sampling "
        "temperature; paper's test-time recipe: 1.0).",
        default=1.0,
    )
    chunk_tokens: int = _help(
        "Rows (attempt tokens) per chunk in the memory-bounded driver (`chunked.sdpo_loss`): peak extra "
        "memory is a few [chunk_tokens, V] float32 tensors instead of [B·T, V] for student and teacher.",
        default=256,
    )
    grpo_weight: float = _help(
        "λ of the hybrid loss λ·L_grpo + (1−λ)·L_sdpo, L_grpo = −A_i·mean_t log π_s(y_t) with A_i the "
        "group-normalized verifier reward (r_i − mean r)/(std r + eps). 0 = pure SDPO.",
        default=0.0,
    )
    grpo_eps: float = _help("eps of the GRPO advantage (r − mean)/(std + eps) (TRL's value).", default=1e-4)
    kl_weight: float = _help(
        "β of the β·KL(π_s‖π_ref) penalty to the base model (adapter disabled) on the STUDENT prompt, exact "
        "over the full vocabulary, per token. 0 = off (paper's default).",
        default=0.0,
    )
    adv_clip: float | None = _help(
        "Clip the advantage at ±c: the per-token log-ratio of 'token' mode and the per-attempt sum of "
        "'sequence' mode (a REINFORCE weight). Not defined for 'logit'/'full' (their gradient is exact). "
        "None = no clipping.",
        default=None,
    )
    trust_region_rate: float = _help(
        "a of the 'trust-region' teacher: log q_teacher = log_softmax((1−a)·log q_ref + a·log q_θ), mixed in "
        "the loss when the driver gets `teacher_ref_hidden` (base model on the teacher prompt).",
        default=0.01,
    )

    def __post_init__(self) -> None:
        if self.mode not in LOSS_MODES:
            raise ValueError(f"loss mode must be one of {LOSS_MODES}, got {self.mode!r}")
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {self.alpha}")
        if self.topk < 1:
            raise ValueError(f"topk must be >= 1, got {self.topk}")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if self.chunk_tokens < 1:
            raise ValueError(f"chunk_tokens must be >= 1, got {self.chunk_tokens}")
        if not 0.0 <= self.grpo_weight <= 1.0:
            raise ValueError(f"grpo_weight (λ) must be in [0, 1], got {self.grpo_weight}")
        if self.kl_weight < 0:
            raise ValueError(f"kl_weight (β) must be >= 0, got {self.kl_weight}")
        if self.adv_clip is not None:
            if self.adv_clip <= 0:
                raise ValueError(f"adv_clip must be > 0 or None, got {self.adv_clip}")
            if self.mode not in ("token", "sequence"):
                raise ValueError(f"adv_clip applies to the 'token' and 'sequence' modes only, not {self.mode!r}")
        if not 0.0 <= self.trust_region_rate <= 1.0:
            raise ValueError(f"trust_region_rate must be in [0, 1], got {self.trust_region_rate}")

    @classmethod
    def help(cls) -> dict[str, str]:
        """Field name -> help text (for CLIs and docs)."""
        return {f.name: f.metadata["help"] for f in fields(cls)}
