"""Hyper-parameters of SDPO (arXiv 2601.20802, "Reinforcement Learning via Self-Distillation"): the loss and its
teacher. This is the `sdpo` section of the run config (sdpo_ttt/config/tree.py); the loss functions take it as is.

Every field carries its help text and, where there is one, the paper's symbol or the public reference
implementation's name for it (lasgroup/SDPO `self_distillation` config; TRL experimental SDPO). The formulas
themselves live in `sdpo_ttt/sdpo/loss.py`.
"""

from __future__ import annotations

from typing import Literal, get_args

from pydantic import model_validator

from sdpo_ttt.config.fields import Section, option

LossMode = Literal["logit", "full", "token", "sequence"]
LOSS_MODES: tuple[str, ...] = get_args(LossMode)
TeacherMode = Literal["ema", "trust-region", "frozen", "live"]


class LossConfig(Section):
    mode: LossMode = option(
        "logit",
        "Per-token distillation signal. logit: divergence over the student's top-K tokens plus one tail bucket "
        "(paper's test-time default; reference `distillation_topk`). full: exact divergence over the whole "
        "vocabulary (the 'SDPG' variant). token: sampled-token surrogate sg(log π_s(y_t) − log π_t(y_t))·log π_s(y_t). "
        "sequence: one REINFORCE weight per attempt, A = mean_t (log π_t(y_t) − log π_s(y_t)).",
        flag="loss", paper="§3, Eq. 1",
    )
    alpha: float = option(
        1.0,
        "Divergence interpolation α (reference `alpha`): 1 = reverse KL(π_s‖π_t) (paper Eq. 1, test-time default), "
        "0 = forward KL(π_t‖π_s), 0<α<1 = generalized JSD (1−α)·KL(π_s‖M) + α·KL(π_t‖M), M = (1−α)·π_s + α·π_t. "
        "Only the logit and full losses use it; token/sequence are reverse-KL estimators.",
        paper="α, Eq. 1", ge=0, le=1,
    )
    topk: int = option(
        20,
        "K of the logit loss: the student's K most likely tokens (paper: 20 at test time, 100 in training). "
        "K >= vocabulary size means the full vocabulary (no tail bucket).",
        paper="K", ge=1,
    )
    temperature: float = option(
        1.0,
        "τ: logits of student, teacher and reference are divided by this before any softmax. In a run it is the "
        "sampling temperature (set by the run config), so the student distribution is the one attempts came from.",
        derived=True, gt=0,
    )
    chunk_tokens: int = option(
        256,
        "Attempt tokens per chunk of the memory-bounded loss (`chunked.sdpo_loss`): peak extra memory is a few "
        "[chunk_tokens, V] float32 tensors instead of [B·T, V] for student and teacher.",
        ge=1,
    )
    grpo_weight: float = option(
        0.0,
        "λ of the hybrid loss λ·L_grpo + (1−λ)·L_sdpo, L_grpo = −A_i·mean_t log π_s(y_t) with A_i the group advantage "
        "of the verifier reward r (fraction of tests passed): r_i − mean r (see --grpo-scale-std). 0 = pure SDPO.",
        paper="λ", ge=0, le=1,
    )
    grpo_scale_std: bool = option(
        False,
        "Divide the GRPO advantage by the group's std: (r_i − mean r)/(std r + eps). Off, as in the reference's SDPO "
        "recipe (lasgroup/SDPO `norm_adv_by_std_in_grpo: False`): scores 0.50 vs 0.52 would otherwise get advantages "
        "of ±1, as large as a pass against a fail.",
        paper="reference norm_adv_by_std_in_grpo",
    )
    grpo_eps: float = option(1e-4, "eps of the std-scaled GRPO advantage (r − mean)/(std + eps) (TRL's value).", gt=0)
    kl_weight: float = option(
        0.0,
        "β of the β·KL(π_s‖π_ref) penalty to the base model (adapter disabled) on the student prompt, exact over the "
        "full vocabulary, per token. 0 = off (paper's default).",
        paper="β", ge=0,
    )
    adv_clip: float | None = option(
        None,
        "Clip the advantage at ±c: the per-token log-ratio of the token loss and the per-attempt mean log-ratio of the "
        "sequence loss (a REINFORCE weight). Not defined for logit/full (their gradient is exact).",
        gt=0, default_help="no clipping",
    )
    teacher: TeacherMode = option(
        "ema",
        "The teacher π_t (the model re-scoring the attempt given its feedback): ema = EMA of the student's LoRA "
        "update (paper's regularised teacher); trust-region = log-softmax of (1−a)·log q_base + a·log q_student; "
        "frozen = the base model; live = the current student.",
        paper="§3 teacher regularisation",
    )
    teacher_rate: float = option(
        0.01,
        "a: the EMA rate θ' ← (1−a)·θ' + a·θ (teacher ema), or the student's weight in the logit mix (teacher trust-region).",
        paper="EMA rate", gt=0, le=1,
    )

    @model_validator(mode="after")
    def _clip_needs_an_estimator(self) -> "LossConfig":
        if self.adv_clip is not None and self.mode not in ("token", "sequence"):
            raise ValueError(f"--adv-clip applies to --loss token or sequence only (--loss is {self.mode}, whose gradient is exact)")
        return self
