"""Hyper-parameters of SDPO (arXiv 2601.20802, "Reinforcement Learning via Self-Distillation"): the loss and its
teacher. This is the `sdpo` section of the run config (sdpo_ttt/config/tree.py); the loss functions take it as is.

Every field carries its help text and, where there is one, the paper's symbol or the public reference
implementation's name for it (lasgroup/SDPO `self_distillation` config; TRL experimental SDPO). The formulas
themselves live in `sdpo_ttt/sdpo/loss.py`.
"""

from __future__ import annotations

from typing import Literal, get_args

from sdpo_ttt.config.fields import Section, option

LossMode = Literal["logit", "full", "token", "sequence"]
LOSS_MODES: tuple[str, ...] = get_args(LossMode)
Aggregation = Literal["token-mean", "attempt-mean"]
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
        5.0,
        "Clip the SDPO advantage, the teacher-student log-ratio, at ±c (0 = off): in the gradient of the logit/full "
        "losses the per-entry log π_s − log π_t (α=1) or log π_s − log M (JSD); the per-token log-ratio of the token "
        "loss; the per-attempt mean log-ratio of the sequence loss. The loss VALUE is not clipped. Forward KL (α=0) has "
        "a bounded gradient π_s − π_t and is not clipped. 5.0 as in the paper's test-time setting.",
        paper="App. E advantage clip", ge=0,
    )
    aggregation: Aggregation = option(
        "token-mean",
        "How per-token losses become the batch loss. token-mean: every attempt token of the batch weighs the same, "
        "Σ_i Σ_t ℓ_it / Σ_i T_i (the reference's loss_agg_mode; a long attempt weighs more); attempt-mean: mean over "
        "each attempt's tokens, then over attempts (every attempt weighs the same). Exact whatever --micro-batch-size is.",
        paper="reference loss_agg_mode",
    )
    ratio_clip: float | None = option(
        2.0,
        "Cap c of the importance ratio ρ_t = min(π_θ(y_t)/π_old(y_t), c) (detached) that weighs each token's loss on "
        "the 2nd..Nth optimiser step of a batch (--steps-per-batch > 1), π_old = the student that sampled the batch; "
        "ρ = 1 on the first step. 0 = no ratio (steps after the first are then off-policy, uncorrected).",
        paper="reference is_clip", ge=0,
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
