"""The SDPO loss as pure functions on logits (arXiv 2601.20802, "Reinforcement Learning via Self-Distillation").

(Over 450 lines on purpose: every term shares the symbol table below and the float64 oracles in tests/ check them
as one set; split, the table would be repeated or far from the formulas it names.)

Symbols (paper §3):
  x           the question prompt;  y = (y_1..y_T) the attempt's own sampled tokens
  π_s = π_θ(· | x, y<t)             the STUDENT: policy on the plain prompt (LoRA, with grad)
  π_t = π_θ'(· | x, f, y<t)         the TEACHER: same model re-prompted with feedback f, scoring the SAME y,
                                    no grad (every teacher quantity below is detached)
  ls = log π_s,  lt = log π_t       log-probabilities, normalized over the FULL vocabulary V

Per-token signal by mode (`LossConfig.mode`), each a function of one position's [V] logits:
  logit     D_α over K+1 buckets: the student's top-K tokens (K = `topk`) and one tail bucket,
            both distributions read at the SAME ids; tail log-prob log(1 − Σ_K p) = log(−expm1(logsumexp_K lp))
  full      D_α over the whole vocabulary (exact)
  token     sg(ls(y_t) − lt(y_t)) · ls(y_t)       gradient = single-sample reverse-KL estimator
  sequence  −sg(A) · ls(y_t),  A = mean_t (lt(y_t) − ls(y_t)) per attempt   (REINFORCE with weight A)
with the divergence D_α (`alpha`), as in the public reference (lasgroup/SDPO):
  α = 1     reverse KL  KL(π_s‖π_t) = Σ_v p_s (ls − lt)            (paper Eq. 1; test-time default)
  α = 0     forward KL  KL(π_t‖π_s) = Σ_v p_t (lt − ls)
  0<α<1     generalized JSD  (1−α)·KL(π_s‖M) + α·KL(π_t‖M),  M = (1−α)·π_s + α·π_t
            As α→0 it behaves like α·KL(π_t‖π_s), as α→1 like (1−α)·KL(π_s‖π_t): the DIRECTION is
            continuous in α but the scale vanishes at both ends, so α ∈ {0, 1} are the KLs themselves
            (special-cased, as in the reference) — not the limit of the JSD formula (which is 0).

Advantage clip c (`adv_clip`): the log-ratio that multiplies ∇ls in each gradient is clipped to ±c — per entry
in `divergence` (α=1: ls_v − lt_v; JSD: ls_v − lm_v), d_t in 'token', A in 'sequence'. Values are not clipped.

Importance ratio (`ratio_clip`, several optimiser steps on one batch): each token's loss ℓ_t is multiplied by
ρ_t = sg(min(π_θ(y_t) / π_old(y_t), c)), π_old the student that sampled the batch (ρ = 1 on the first step).

Aggregation (`aggregation`), masked to attempt tokens (an attempt without tokens contributes nothing; a batch
with none gives 0, zero grad):
  token-mean    Σ_i Σ_t ℓ_it / Σ_i T_i           every token of the batch weighs the same (the reference's)
  attempt-mean  mean_i (Σ_t ℓ_it / T_i)          every attempt weighs the same
Micro-batches: the caller weighs each micro-batch's loss by its share of the batch's tokens (or attempts),
`sdpo/microbatch.py`, so the sum over micro-batches is exactly the batch's loss.

Exact zeros. The pitfall "teacher equals student" must show as a loss that is EXACTLY 0 with a gradient
EXACTLY 0 (so the loop can warn on it). Autograd of Σ_v p_s(ls − lt) leaves a term p_s·(1 − Σ_v p_s) that is
0 in exact arithmetic but ~1e-8 in float32. So `divergence()` returns the value of D_α and carries its
analytic gradient with respect to ls (written out there, checked against brute-force autograd in the tests)
through a surrogate  Σ_v sg(g_v)·ls_v − sg(·), which adds exactly 0 to the value.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor

from sdpo_ttt.config.sdpo import LossConfig
from sdpo_ttt.sdpo.teacher import trust_region_log_probs


# --------------------------------------------------------------------------------------------- basics
def _clip(x: Tensor, c: float | None) -> Tensor:
    """x clipped to ±c; unchanged when c is None or 0 (off)."""
    return x.clamp(-c, c) if c else x


def _compute_dtype(x: Tensor) -> torch.dtype:
    """float32, or float64 if the input already is (so the tests can compare in float64)."""
    return torch.promote_types(x.dtype, torch.float32)


def log_probs(logits: Tensor, temperature: float = 1.0) -> Tensor:
    """log_softmax(logits / τ) over the last dim, in float32 (or float64)."""
    z = logits.to(_compute_dtype(logits))
    if temperature != 1.0:
        z = z / temperature
    return F.log_softmax(z, dim=-1)


def log_mixture(lp: Tensor, lq: Tensor, alpha: float) -> Tensor:
    """log M with M = (1−α)·p + α·q, elementwise, stable, and EXACTLY lp where lp == lq.

    With hi = max(lp, lq), lo = min, and w = the weight of the smaller one:
      log M = hi + log(1 − w + w·e^(lo−hi)) = hi + log1p(w·expm1(lo − hi)),   lo − hi <= 0, so no overflow.
    No gradient (used inside `divergence`, whose gradient is written out).
    """
    with torch.no_grad():
        p_ge = lp >= lq
        hi = torch.where(p_ge, lp, lq)
        lo = torch.where(p_ge, lq, lp)
        w_lo = torch.where(p_ge, torch.full_like(lp, alpha), torch.full_like(lp, 1.0 - alpha))
        return hi + torch.log1p(w_lo * torch.expm1(lo - hi))


def divergence(ls: Tensor, lt: Tensor, alpha: float, clip: float | None = None) -> Tensor:
    """D_α(π_s, π_t) over the last dim of two normalized log-distributions [N, C] -> [N].

    Value (see the module docstring for the definition by α) and gradient w.r.t. ls (lt is detached):
      α = 1   D = Σ p_s (ls − lt)                     ∂D/∂ls_v = p_s,v · (ls_v − lt_v)
      α = 0   D = Σ p_t (lt − ls)                     ∂D/∂ls_v = p_s,v − p_t,v
      else    D = (1−α)Σ p_s(ls − lm) + αΣ p_t(lt − lm),  lm = log M
                                                      ∂D/∂ls_v = (1−α) · p_s,v · (ls_v − lm_v)
    The α=1 and α=0 gradients drop a term c·p_s,v whose total effect is 0 because Σ_v p_s = 1 (the score
    function has mean 0): ∂/∂z of Σ_v p_s,v through ls = log_softmax(z) vanishes. The JSD gradient needs no
    such step: the terms from ∂lm/∂ls cancel exactly, leaving (1−α)p_s(ls − lm).
    These are the paper's "logit-level advantages": ∇D = Σ_v p_s,v · (advantage_v) · ∇ls_v. With `clip` the
    log-ratio in the α=1 and JSD gradients is clipped to ±clip (the value is not; α=0's gradient is bounded already).
    """
    lt = lt.detach()
    with torch.no_grad():
        p_s, p_t = ls.exp(), lt.exp()
        if alpha == 1.0:
            value = (p_s * (ls - lt)).sum(-1)
            grad = p_s * _clip(ls - lt, clip)
        elif alpha == 0.0:
            value = (p_t * (lt - ls)).sum(-1)
            grad = p_s - p_t
        else:
            lm = log_mixture(ls, lt, alpha)
            value = (1.0 - alpha) * (p_s * (ls - lm)).sum(-1) + alpha * (p_t * (lt - lm)).sum(-1)
            grad = (1.0 - alpha) * p_s * _clip(ls - lm, clip)
    surrogate = (grad * ls).sum(-1)  # d(surrogate)/d(ls) = grad; its value is cancelled exactly below
    return value + (surrogate - surrogate.detach())


def tail_log_prob(topk_lp: Tensor) -> Tensor:
    """log(1 − Σ_K p) from K log-probs [N, K] -> [N, 1], as log(−expm1(logsumexp)).

    logsumexp is clamped to <= −eps(dtype) (the resolution of exp near 0) so that Σ_K p -> 1 gives a finite
    log(eps) instead of log(0) = −inf (and no inf gradient): a tail mass below ~1e-7 (float32) reads as ~1e-7.
    """
    lse = torch.logsumexp(topk_lp, dim=-1, keepdim=True)
    lse = lse.clamp(max=-torch.finfo(lse.dtype).eps)
    return torch.log(-torch.expm1(lse))


def topk_buckets(ls_full: Tensor, lt_full: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """K+1 bucket log-probs of student and teacher [N, K+1]: the STUDENT's top-K ids, both read there, + tail.

    ls_full / lt_full are full-vocabulary log-probs [N, V]. With K >= V the buckets are the vocabulary itself
    (the tail is empty and left out), so 'logit' equals 'full'.
    """
    if k >= ls_full.shape[-1]:
        return ls_full, lt_full.detach()
    ls_k, ids = torch.topk(ls_full, k, dim=-1)  # top-K of the student's logits (same order as its log-probs)
    lt_k = lt_full.detach().gather(-1, ids)
    ls_b = torch.cat([ls_k, tail_log_prob(ls_k)], dim=-1)
    lt_b = torch.cat([lt_k, tail_log_prob(lt_k)], dim=-1)
    return ls_b, lt_b


def full_divergence(student_logits: Tensor, teacher_logits: Tensor, alpha: float = 1.0, temperature: float = 1.0) -> Tensor:
    """'full' mode per token: D_α over the whole vocabulary. [N, V] x2 -> [N]."""
    return divergence(log_probs(student_logits, temperature), log_probs(teacher_logits, temperature).detach(), alpha)


def topk_divergence(
    student_logits: Tensor, teacher_logits: Tensor, alpha: float = 1.0, k: int = 20, temperature: float = 1.0
) -> Tensor:
    """'logit' mode per token: D_α over the student's top-K tokens + the tail bucket. [N, V] x2 -> [N]."""
    ls_b, lt_b = topk_buckets(log_probs(student_logits, temperature), log_probs(teacher_logits, temperature), k)
    return divergence(ls_b, lt_b, alpha)


def token_surrogate(student_logp_y: Tensor, teacher_logp_y: Tensor, clip: float | None = None) -> Tensor:
    """'token' mode per token: sg(d_t)·ls(y_t),  d_t = ls(y_t) − lt(y_t)  (clipped to ±clip if given).

    Its gradient sg(d_t)·∇ls(y_t) is the single-sample estimator of ∇KL(π_s‖π_t) at position t
    (E_{y_t∼π_s}[(ls − lt)∇ls] = ∇KL). Its VALUE is not the KL (use d_t for that; same as the reference).
    """
    return _clip((student_logp_y - teacher_logp_y).detach(), clip) * student_logp_y


def sequence_advantage(student_logp_y: Tensor, teacher_logp_y: Tensor, mask: Tensor, clip: float | None = None) -> Tensor:
    """'sequence' mode weight per attempt [B]: A = (1/T_i)·Σ_t mask·(lt(y_t) − ls(y_t)) = log(π_t(y)/π_s(y)) / T_i,
    no grad (0 for an attempt without tokens).

    Positive A: the teacher finds the whole attempt likelier than the student does -> raise its likelihood.
    Averaged, not summed, over the attempt's T_i tokens: a sum would scale the update with the attempt's
    length (a 500-token attempt would weigh 50x a 10-token one, and `adv_clip` would mean something else at
    every length); the mean is a per-token log-ratio, on the scale of 'token' mode. Clipped to ±clip if given.
    """
    return _clip(masked_row_mean((teacher_logp_y - student_logp_y).detach(), mask), clip)


def reinforce(student_logp_y: Tensor, advantage: Tensor) -> Tensor:
    """Per-token REINFORCE term −sg(A_i)·ls(y_t): [B, T] log-probs, [B] weights -> [B, T].

    Averaged per attempt this is −A_i·mean_t ls(y_t): a per-token-normalized REINFORCE step. For
    'sequence' mode (A_i = −mean_t d_t) it is 1/T_i² times the score-function gradient of the sequence-level
    KL(π_s(y)‖π_t(y)) = E[(Σ_t d_t)(Σ_t ∇ls_t)]: per-token scale, whatever the attempt's length (see
    `sequence_advantage`). Used for GRPO too, with A_i the group advantage of the reward.
    """
    return -advantage.detach()[:, None] * student_logp_y


def group_advantages(rewards: Tensor, eps: float = 1e-4, scale_by_std: bool = False) -> Tensor:
    """GRPO advantage over one group [B] -> [B]: r_i − mean r, or (r_i − mean r)/(std r + eps) with `scale_by_std`.

    Not scaled by default, as in the reference's SDPO recipe (lasgroup/SDPO verl/trainer/config/sdpo.yaml:
    `norm_adv_by_std_in_grpo: False`): with rewards = fraction of tests passed, a group whose scores differ by
    one test in fifty would otherwise get advantages of ±1, as large as a pass against a fail.
    std is the population std (divide by B), so a group of one, or constant rewards, gives all zeros (no NaN).
    """
    r = rewards.to(_compute_dtype(rewards))
    centred = r - r.mean()
    return centred / (r.std(correction=0) + eps) if scale_by_std else centred


def importance_ratio(student_logp_y: Tensor, old_logp_y: Tensor, cap: float | None) -> Tensor:
    """ρ_t = min(π_θ(y_t) / π_old(y_t), cap), no grad: the weight of token t's loss when the batch was sampled by
    π_old and the student has moved since (several optimiser steps on one batch). The log-ratio is clamped to
    ±20 before exp (as in the reference), so ρ is finite whatever the inputs. cap None or 0: all ones."""
    if not cap:
        return torch.ones_like(student_logp_y).detach()
    log_ratio = (student_logp_y - old_logp_y).detach().clamp(-20.0, 20.0)
    return log_ratio.exp().clamp(max=cap)


def masked_token_mean(x: Tensor, mask: Tensor) -> Tensor:
    """Mean over all unmasked entries of the batch: Σ mask·x / Σ mask. [B, T] -> scalar; masked entries are ignored
    (even NaN); an all-masked batch gives 0 with zero gradient."""
    return torch.where(mask, x, torch.zeros_like(x)).sum() / mask.sum().clamp(min=1)


def masked_row_mean(x: Tensor, mask: Tensor) -> Tensor:
    """Mean over each row's unmasked entries. [B, T] -> [B]; masked entries are ignored (even NaN), an
    all-masked row gives 0 with zero gradient."""
    xm = torch.where(mask, x, torch.zeros_like(x))
    return xm.sum(-1) / mask.sum(-1).clamp(min=1)


def masked_seq_mean(x: Tensor, mask: Tensor) -> Tensor:
    """Mean over each row's unmasked entries, then mean over rows that have any. [B, T] -> scalar.

    Masked entries are ignored (even NaN); an all-masked row is left out of the batch mean; an all-masked
    batch gives 0 with zero gradient.
    """
    row_mean = masked_row_mean(x, mask)
    valid = mask.any(-1)
    return torch.where(valid, row_mean, torch.zeros_like(row_mean)).sum() / valid.sum().clamp(min=1)


# --------------------------------------------------------------------------------------- the SDPO loss
def per_token_terms(
    student_logits: Tensor,
    teacher_logits: Tensor,
    target_ids: Tensor,
    cfg: LossConfig,
    *,
    ref_logits: Tensor | None = None,
    teacher_ref_logits: Tensor | None = None,
) -> dict[str, Tensor]:
    """Every per-token quantity the loss needs, from one set of positions' logits [N, V] -> dict of [N].

    student_logits predict target_ids (the attempt's tokens y_t). Keys:
      student_logp   ls(y_t)                      (grad)
      teacher_logp   lt(y_t)                      (no grad)
      divergence     D_α per token                (grad; 'logit' and 'full' modes only)
      kl_ref         KL(π_s‖π_ref), full vocab    (grad; only with ref_logits)
      student_entropy, tail_mass_student, tail_mass_teacher ('logit' only)   (no grad, for stats)
    teacher_ref_logits (base model on the teacher prompt) turns the teacher into the trust-region mix.
    """
    return log_prob_terms(log_probs(student_logits, cfg.temperature), teacher_logits, target_ids, cfg, ref_logits=ref_logits,
                          teacher_ref_logits=teacher_ref_logits)


def log_prob_terms(
    ls: Tensor,
    teacher_logits: Tensor,
    target_ids: Tensor,
    cfg: LossConfig,
    *,
    ref_logits: Tensor | None = None,
    teacher_ref_logits: Tensor | None = None,
) -> dict[str, Tensor]:
    """`per_token_terms` from the student's log-probs ls = log_probs(student_logits, τ) [N, V]: every term's gradient
    reaches the student's logits through ls alone (sdpo/chunked.py forms it from there)."""
    tau = cfg.temperature
    if teacher_ref_logits is not None:
        lt = trust_region_log_probs(log_probs(teacher_ref_logits, tau), log_probs(teacher_logits, tau), cfg.teacher_rate)
    else:
        lt = log_probs(teacher_logits, tau).detach()
    y = target_ids.long()[:, None]
    out: dict[str, Tensor] = {
        "student_logp": ls.gather(-1, y).squeeze(-1),
        "teacher_logp": lt.gather(-1, y).squeeze(-1),
    }
    if cfg.mode == "full":
        out["divergence"] = divergence(ls, lt, cfg.alpha, cfg.adv_clip)
        if cfg.adv_clip:
            out["clipped_mass"] = _clipped_mass(ls, lt, cfg.adv_clip)
    elif cfg.mode == "logit":
        ls_b, lt_b = topk_buckets(ls, lt, cfg.topk)
        out["divergence"] = divergence(ls_b, lt_b, cfg.alpha, cfg.adv_clip)
        with torch.no_grad():
            if cfg.adv_clip:
                out["clipped_mass"] = _clipped_mass(ls_b, lt_b, cfg.adv_clip)
            if cfg.topk >= ls.shape[-1]:
                out["tail_mass_student"] = torch.zeros_like(out["teacher_logp"])
                out["tail_mass_teacher"] = torch.zeros_like(out["teacher_logp"])
            else:
                out["tail_mass_student"] = ls_b[:, -1].exp()
                out["tail_mass_teacher"] = lt_b[:, -1].exp()
    if ref_logits is not None:
        out["kl_ref"] = divergence(ls, log_probs(ref_logits, tau).detach(), 1.0)
    with torch.no_grad():
        out["student_entropy"] = -(ls.exp() * ls).sum(-1)
    return out


@torch.no_grad()
def _clipped_mass(ls: Tensor, lt: Tensor, clip: float) -> Tensor:
    """Σ_v π_s,v · [|ls_v − lt_v| > clip]: the student's mass on the entries whose advantage the clip cuts (α=1;
    an upper bound for the JSD, whose clipped log-ratio ls − lm lies between 0 and ls − lt). [N, C] -> [N]."""
    return (ls.exp() * ((ls - lt).abs() > clip).to(ls.dtype)).sum(-1)


@dataclass
class LossOutput:
    loss: Tensor  # scalar, differentiable w.r.t. the student
    stats: dict[str, float] = field(default_factory=dict)  # means over the tokens (or attempts: cfg.aggregation)
    # [B], no grad: gap_i = mean_t (lt(y_t) − ls(y_t)) over attempt i's tokens (NaN: an attempt without tokens).
    # Per attempt, not averaged, so the caller can relate it to the attempt's verifier score (sdpo/stats.py).
    per_attempt_gap: Tensor = field(default_factory=lambda: torch.empty(0))
    # [B, T], no grad: ls(y_t), the student's log-prob of each attempt token (0 off the mask). Kept from the first
    # optimiser step on a batch as π_old of the importance ratio of the later ones (`combine_terms(old_logp=)`).
    student_logp: Tensor = field(default_factory=lambda: torch.empty(0))


def combine_terms(
    terms: dict[str, Tensor],
    mask: Tensor,
    cfg: LossConfig,
    *,
    advantages: Tensor | None = None,
    rewards: Tensor | None = None,
    old_logp: Tensor | None = None,
) -> LossOutput:
    """The scalar loss and its stats from per-token terms laid out [B, T] (see `per_token_terms`).

      L_sdpo  = mean ρ_t·ℓ_t,   ℓ_t by mode (divergence / token surrogate / −sg(A_i)·ls(y_t))
      L_grpo  = mean ρ_t·(−A_i^grpo·ls(y_t)),   A^grpo = `advantages`, or group_advantages(`rewards`)
      L_kl    = mean KL(π_s‖π_ref)
      loss    = (1−λ)·L_sdpo + λ·L_grpo + β·L_kl      (λ = grpo_weight, β = kl_weight; terms with weight 0 left out)
    mean = the token mean over the batch, or the attempt mean (`cfg.aggregation`; stats use the same rule).
    ρ_t = importance_ratio(ls(y_t), `old_logp`, cfg.ratio_clip), or 1 without `old_logp` ([B, T], as sampled).
    Pass per-attempt `advantages` normalized over the WHOLE group when the group is split into micro-batches.
    """
    mask = mask.bool()
    ls_y, lt_y = terms["student_logp"], terms["teacher_logp"].detach()
    stats: dict[str, float] = {}
    agg = masked_token_mean if cfg.aggregation == "token-mean" else masked_seq_mean
    mean = lambda x: agg(x, mask)  # noqa: E731  (the one aggregation rule, for loss and stats)
    ratio = None if old_logp is None else importance_ratio(ls_y, old_logp.to(ls_y.dtype), cfg.ratio_clip)
    weigh = (lambda x: x) if ratio is None else (lambda x: ratio * x)  # noqa: E731

    if cfg.mode in ("logit", "full"):
        per_token = terms["divergence"]
        div_stat = per_token
    elif cfg.mode == "token":
        per_token = token_surrogate(ls_y, lt_y, cfg.adv_clip)
        div_stat = ls_y - lt_y
    else:  # sequence
        a_seq = sequence_advantage(ls_y, lt_y, mask, cfg.adv_clip)
        per_token = reinforce(ls_y, a_seq)
        div_stat = ls_y - lt_y
        stats["sdpo/sequence_advantage_mean"] = float(mean(a_seq[:, None].expand_as(ls_y)))
    loss_sdpo = mean(weigh(per_token))
    loss = loss_sdpo

    if cfg.adv_clip:
        with torch.no_grad():  # how often the clip binds: tokens (token), attempts' tokens (sequence), π_s mass (logit/full)
            if cfg.mode == "token":
                clipped = ((ls_y - lt_y).abs() > cfg.adv_clip).to(ls_y.dtype)
            elif cfg.mode == "sequence":
                raw = sequence_advantage(ls_y, lt_y, mask, None)
                clipped = (raw.abs() > cfg.adv_clip).to(ls_y.dtype)[:, None].expand_as(ls_y)
            else:
                clipped = terms["clipped_mass"]
            stats["sdpo/advantage_clip_frac"] = float(mean(clipped))
    # ρ: 1 on-policy (the first optimiser step on a batch); logged on every step so the mean over steps is right
    stats["sdpo/importance_ratio_mean"] = 1.0 if ratio is None else float(mean(ratio))
    capped = ratio is not None and bool(cfg.ratio_clip)
    stats["sdpo/importance_ratio_capped_frac"] = float(mean((ratio == cfg.ratio_clip).to(ls_y.dtype))) if capped else 0.0

    if advantages is not None and rewards is not None:
        raise ValueError("pass either per-attempt `advantages` or `rewards`, not both")
    if rewards is not None:
        advantages = group_advantages(rewards, cfg.grpo_eps, cfg.grpo_scale_std)
    if cfg.grpo_weight > 0 and advantages is None:
        raise ValueError("grpo_weight > 0 needs per-attempt `rewards` (or precomputed `advantages`)")
    if advantages is not None:
        adv = advantages.to(ls_y.device, ls_y.dtype)
        loss_grpo = mean(weigh(reinforce(ls_y, adv)))
        if cfg.grpo_weight > 0:
            loss = (1.0 - cfg.grpo_weight) * loss_sdpo + cfg.grpo_weight * loss_grpo
        stats["grpo/loss"] = float(loss_grpo.detach())
        stats["grpo/advantage_mean"] = float(adv.mean())
        stats["grpo/advantage_std"] = float(adv.std(correction=0))
        if rewards is not None:
            stats["grpo/reward_mean"] = float(rewards.float().mean())

    if "kl_ref" in terms:
        kl = mean(terms["kl_ref"])
        if cfg.kl_weight > 0:
            loss = loss + cfg.kl_weight * kl
        stats["kl_to_ref"] = float(kl.detach())
    elif cfg.kl_weight > 0:
        raise ValueError("kl_weight > 0 needs the reference model's logits / hidden states")

    with torch.no_grad():
        n_tok = mask.sum(-1)
        stats.update(
            {
                "loss": float(loss.detach()),
                "sdpo/loss": float(loss_sdpo.detach()),
                # logit/full: the exact per-token D_α; token/sequence: the sampled estimate ls(y_t) − lt(y_t)
                "sdpo/divergence_mean": float(mean(div_stat.detach())),
                # > 0: the teacher (with feedback) finds the attempt's own tokens likelier than the student does.
                # Its SIGN is no test of the teacher: −KL(π_s‖π_t) ≤ 0 in expectation if the teacher's context did not
                # depend on the attempt, but the feedback quotes the attempt, so copying can make it > 0
                # (sdpo_ttt/run/monitors.py); how it varies with the score is the test (per_attempt_gap).
                "sdpo/teacher_student_logprob_gap": float(mean(lt_y - ls_y.detach())),
                # fraction of tokens where teacher and student agree exactly (the "teacher = student" pitfall)
                "sdpo/teacher_equals_student_frac": float(mean((lt_y == ls_y.detach()).to(ls_y.dtype))),
                "sdpo/student_logprob_mean": float(mean(ls_y.detach())),
                "sdpo/student_entropy": float(mean(terms["student_entropy"])),
                "sdpo/tokens": float(n_tok.sum()),
                "sdpo/sequences": float((n_tok > 0).sum()),
                "sdpo/empty_targets": float((n_tok == 0).sum()),
            }
        )
        if "tail_mass_student" in terms:
            stats["sdpo/topk_tail_mass_student"] = float(mean(terms["tail_mass_student"]))
            stats["sdpo/topk_tail_mass_teacher"] = float(mean(terms["tail_mass_teacher"]))
        gap = masked_row_mean(lt_y - ls_y.detach(), mask)
        gap = torch.where(mask.any(-1), gap, torch.full_like(gap, float("nan")))
    return LossOutput(loss=loss, stats=stats, per_attempt_gap=gap, student_logp=torch.where(mask, ls_y, 0.0).detach())


def sdpo_loss_from_logits(
    student_logits: Tensor,
    teacher_logits: Tensor,
    target_ids: Tensor,
    mask: Tensor,
    cfg: LossConfig,
    *,
    ref_logits: Tensor | None = None,
    teacher_ref_logits: Tensor | None = None,
    advantages: Tensor | None = None,
    rewards: Tensor | None = None,
    old_logp: Tensor | None = None,
) -> LossOutput:
    """The whole SDPO loss from materialized logits [B, T, V] (logits[b, t] predicts target_ids[b, t]);
    `old_logp` [B, T]: the sampling student's ls(y_t), for the importance ratio (see `combine_terms`)."""
    b, t, v = student_logits.shape
    flat = lambda x: None if x is None else x.reshape(b * t, v)  # noqa: E731
    safe_targets = torch.where(mask.bool(), target_ids, torch.zeros_like(target_ids))  # padding may hold -100
    terms = per_token_terms(
        flat(student_logits),
        flat(teacher_logits),
        safe_targets.reshape(b * t),
        cfg,
        ref_logits=flat(ref_logits),
        teacher_ref_logits=flat(teacher_ref_logits),
    )
    terms = {k: x.reshape(b, t) for k, x in terms.items()}
    return combine_terms(terms, mask, cfg, advantages=advantages, rewards=rewards, old_logp=old_logp)
