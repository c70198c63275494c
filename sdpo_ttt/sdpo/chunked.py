"""The SDPO loss from hidden states, in chunks, so [B, T, V] float32 logits never exist for student and teacher.

    student_hidden [B, T, H] (grad) ──┐
    teacher_hidden [B, T, H] (no grad)├─ keep the attempt tokens (mask) ─► N rows ─► chunks of `chunk_tokens`
    ref / teacher_ref hidden (no grad)┘                                                │
        per chunk, under activation checkpointing:  logits = h @ Wᵀ  [n, V]  ─►  per_token_terms  ─►  [n] each
    ─► scatter back to [B, T] ─► combine_terms (the same aggregation as the naive path) ─► LossOutput

Logits are float32 whatever the model dtype: on GPU the hidden states and the lm_head are bf16, and each
chunk's h @ Wᵀ is computed from them upcast (a slice of W at a time; `_Float32Logits`).

Hidden state [b, t] predicts target_ids[b, t] (the caller shifts). With a frozen lm_head (always, in training)
each chunk runs as `_ChunkTerms`: every per-token term is a function of its own row's logits, so the forward forms
each differentiated term's gradient with respect to the row's hidden state, J = ∂term/∂h [n, H], and keeps only
those; the backward is Σ_k (∂L/∂term_k)·J_k. Three [n, V] x [V, H] products a chunk (student and teacher logits,
π_s @ W), against five when the chunk ran under `torch.utils.checkpoint` (its backward recomputed both logits and
then formed ∂L/∂logits @ W), and no log-softmax over V recomputed (issue 23). A trained lm_head (tests only) still
takes the checkpointed path. Either way the backward keeps nothing with a vocabulary axis: peak extra memory is a
few [chunk_tokens, V] float32 tensors (benchmarks/loss_memory.py measures it) instead of several [B·T, V].

`naive_sdpo_loss` is the same loss with everything materialized: the tests' oracle and the benchmark's baseline.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.utils.checkpoint import checkpoint

from sdpo_ttt.config.sdpo import LossConfig
from sdpo_ttt.sdpo.loss import LossOutput, combine_terms, log_prob_terms, log_probs, per_token_terms, sdpo_loss_from_logits


MIN_VOCAB_SLICE = 4096  # rows of the lm_head upcast at once by `_Float32Logits` (at least)
SPARSE_ROWS = 256  # a gradient with at most this many nonzero entries a row is multiplied into W by gathering W's rows


class _Float32Logits(torch.autograd.Function):
    """logits = h @ Wᵀ as float32 from low-precision (bf16 / fp16) h [n, H] and W [V, H].

    A bf16 matmul rounds every logit to ~3 significant digits (an error of ~0.1 on a logit of 20), more than
    the teacher-student differences the loss measures. Here W is upcast one vocabulary slice at a time (at
    most `rows` rows), in the forward and in the backward, so the extra memory is a slice of W, not a float32
    copy of the whole lm_head; autograd keeps only h and W themselves (no copies).
    """

    @staticmethod
    def forward(ctx, h: Tensor, w: Tensor, rows: int) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(h, w)
        ctx.rows = rows
        hf = h.float()
        out = torch.empty(h.shape[0], w.shape[0], dtype=torch.float32, device=h.device)
        for s in range(0, w.shape[0], rows):
            out[:, s : s + rows] = hf @ w[s : s + rows].float().T
        return out

    @staticmethod
    def backward(ctx, g: Tensor) -> tuple[Tensor | None, Tensor | None, None]:  # type: ignore[override]
        h, w = ctx.saved_tensors
        rows = ctx.rows
        gh = gw = None
        if ctx.needs_input_grad[0]:
            acc = torch.zeros(h.shape, dtype=torch.float32, device=h.device)
            for s in range(0, w.shape[0], rows):
                acc += g[:, s : s + rows] @ w[s : s + rows].float()
            gh = acc.to(h.dtype)
        if ctx.needs_input_grad[1]:
            hf = h.float()
            gw = torch.empty_like(w)
            for s in range(0, w.shape[0], rows):
                gw[s : s + rows] = (g[:, s : s + rows].T @ hf).to(w.dtype)
        return gh, gw, None


def _logits(h: Tensor | None, w: Tensor) -> Tensor | None:
    """[n, V] logits of hidden states h [n, H]: float32 at least (float64 stays float64, for the tests)."""
    if h is None:
        return None
    if w.dtype in (torch.float32, torch.float64) and h.dtype == w.dtype:
        return h @ w.T
    if w.dtype == torch.float64 or h.dtype == torch.float64:
        return h.double() @ w.double().T
    v, d = w.shape
    rows = min(v, max(MIN_VOCAB_SLICE, h.shape[0] * v // max(d, 1)))  # a slice of W no bigger than the logits
    return _Float32Logits.apply(h, w, rows)


def _chunk_terms(
    cfg: LossConfig,
    w: Tensor,
    s_h: Tensor,
    t_h: Tensor,
    y: Tensor,
    r_h: Tensor | None,
    tr_h: Tensor | None,
) -> dict[str, Tensor]:
    """Per-token terms of n rows: the only place where [n, V] logits exist."""
    s_logits = _logits(s_h, w)
    with torch.no_grad():  # teacher / reference logits: no graph, recomputed in the backward with the chunk
        t_logits, r_logits, tr_logits = _logits(t_h, w), _logits(r_h, w), _logits(tr_h, w)
    return per_token_terms(s_logits, t_logits, y, cfg, ref_logits=r_logits, teacher_ref_logits=tr_logits)


def differentiated_terms(cfg: LossConfig) -> tuple[str, ...]:
    """The per-token terms whose gradient the loss uses (`combine_terms`); the others are read as values only."""
    keys = ["divergence"] if cfg.mode in ("logit", "full") else ["student_logp"]
    if cfg.grpo_weight > 0 and "student_logp" not in keys:
        keys.append("student_logp")
    if cfg.kl_weight > 0:
        keys.append("kl_ref")
    return tuple(keys)


def _times_w(g: Tensor, w: Tensor) -> Tensor:
    """g [n, V] @ w [V, H] in g's dtype (float32 or float64), w upcast a slice at a time; where every row of g has at
    most SPARSE_ROWS nonzero entries (a one-hot, the student's top-K), by gathering those rows of w instead."""
    rows, cols = g.nonzero(as_tuple=True)
    if rows.numel() <= SPARSE_ROWS * g.shape[0]:
        parts = g[rows, cols, None] * w.index_select(0, cols).to(g.dtype)
        return torch.zeros(g.shape[0], w.shape[1], dtype=g.dtype, device=g.device).index_add_(0, rows, parts)
    if w.dtype == g.dtype:
        return g @ w
    v, d = w.shape
    step = min(v, max(MIN_VOCAB_SLICE, g.shape[0] * v // max(d, 1)))
    out = torch.zeros(g.shape[0], d, dtype=g.dtype, device=g.device)
    for s in range(0, v, step):
        out += g[:, s : s + step] @ w[s : s + step].to(g.dtype)
    return out


class _ChunkTerms(torch.autograd.Function):
    """A chunk's per-token terms (`per_token_terms`), differentiable with respect to the student's hidden states
    s_h [n, H] only (the lm_head W is frozen; teacher and reference are constants).

    term_k[i] depends on row i's logits z_i = s_h[i] Wᵀ alone, through ls = log_softmax(z/τ). So with
    G_k = ∂term_k/∂ls [n, V] (autograd through the terms, on ls alone) and p = exp(ls):
        ∂term_k/∂z = (G_k − (Σ_v G_k)·p) / τ,      J_k = ∂term_k/∂s_h = (G_k W − (Σ_v G_k)·(p W)) / τ   [n, H]
    and the backward is ∂L/∂s_h = Σ_k (∂L/∂term_k)[:, None]·J_k, the chain rule exactly (float rounding aside).
    p W is one [n, V] x [V, H] product; G_k W gathers rows of W where G_k is sparse (ls(y_t): one entry a row; the
    'logit' divergence: the top-K ids). Only the terms the loss differentiates (`differentiated_terms`) get a J; a
    gradient reaching another term is an error, not silently dropped."""

    @staticmethod
    def forward(ctx, s_h: Tensor, w: Tensor, t_h: Tensor, y: Tensor, r_h: Tensor | None, tr_h: Tensor | None,  # type: ignore[override]
                cfg: LossConfig, keys: list[str]) -> tuple[Tensor, ...]:
        with torch.no_grad():
            ls = log_probs(_logits(s_h, w), cfg.temperature)
            t_logits, r_logits, tr_logits = _logits(t_h, w), _logits(r_h, w), _logits(tr_h, w)
        leaf = ls.requires_grad_()
        # a graph local to this forward, gone when it returns: not saved for the backward (any hooks stay out of it).
        # The pack hook returns a detached alias, not the tensor itself: a node that saves its own output would
        # otherwise hold that output, whose grad_fn is the node, a cycle gc cannot see (every step leaked [n, V]).
        with torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(lambda x: x.detach(), lambda x: x):
            terms = log_prob_terms(leaf, t_logits, y, cfg, ref_logits=r_logits, teacher_ref_logits=tr_logits)
            wanted = [k for k in differentiated_terms(cfg) if k in terms]
            grads = [torch.autograd.grad(terms[k], leaf, torch.ones_like(terms[k]), retain_graph=True)[0] for k in wanted]
        keys.extend(terms)
        values = tuple(t.detach() for t in terms.values())
        ctx.wanted = [keys.index(k) for k in wanted]
        del terms, t_logits, r_logits, tr_logits
        jac = []
        if wanted:
            with torch.no_grad():
                pw = _times_w(ls.detach().exp(), w)
                del ls, leaf
                for g in grads:
                    jac.append((_times_w(g, w) - g.sum(-1, keepdim=True) * pw) / cfg.temperature)
        ctx.h_dtype = s_h.dtype
        ctx.save_for_backward(*jac)
        ctx.set_materialize_grads(False)
        return values

    @staticmethod
    def backward(ctx, *grads: Tensor | None) -> tuple[Tensor | None, ...]:  # type: ignore[override]
        jac = dict(zip(ctx.wanted, ctx.saved_tensors, strict=True))
        gh = None
        for i, g in enumerate(grads):
            if g is None:
                continue
            if i not in jac:
                if torch.count_nonzero(g):
                    raise RuntimeError("the loss differentiates a per-token term that `differentiated_terms` leaves out")
                continue
            part = g.to(jac[i].dtype)[:, None] * jac[i]
            gh = part if gh is None else gh + part
        return (None if gh is None else gh.to(ctx.h_dtype)), None, None, None, None, None, None, None


def _chunk_terms_from_jacobians(cfg: LossConfig, w: Tensor, s_h: Tensor, t_h: Tensor, y: Tensor, r_h: Tensor | None,
                                tr_h: Tensor | None) -> dict[str, Tensor]:
    keys: list[str] = []
    values = _ChunkTerms.apply(s_h, w, t_h, y, r_h, tr_h, cfg, keys)
    return dict(zip(keys, values, strict=True))


def sdpo_loss(
    student_hidden: Tensor,
    teacher_hidden: Tensor,
    lm_head_weight: Tensor,
    target_ids: Tensor,
    mask: Tensor,
    cfg: LossConfig,
    *,
    ref_hidden: Tensor | None = None,
    teacher_ref_hidden: Tensor | None = None,
    rewards: Tensor | None = None,
    advantages: Tensor | None = None,
    old_logp: Tensor | None = None,
) -> LossOutput:
    """The SDPO loss (see loss.py for every formula), memory-bounded.

    student_hidden      [B, T, H]  final hidden states of the student (plain prompt), with grad
    teacher_hidden      [B, T, H]  the teacher (re-prompt) at the SAME attempt tokens, aligned on the same [B, T]
    lm_head_weight      [V, H]     the shared output projection (logits = h @ Wᵀ)
    target_ids          [B, T]     the attempt's tokens y_t (long); values under mask=False are ignored
    mask                [B, T]     True on attempt tokens
    ref_hidden          [B, T, H]  base model (adapter off) on the STUDENT prompt: β·KL(π_s‖π_ref)
    teacher_ref_hidden  [B, T, H]  base model on the TEACHER prompt: the 'trust-region' teacher mix
    rewards / advantages [B]       GRPO hybrid: raw verifier rewards (normalized over this batch), or
                                   advantages already normalized over the whole group (for micro-batches)
    old_logp            [B, T]     ls(y_t) of the student that sampled the attempts (`LossOutput.student_logp` of
                                   the first optimiser step): the importance ratio of the later steps
    """
    b, t, h = student_hidden.shape
    mask = mask.bool()
    idx = mask.reshape(-1).nonzero().squeeze(-1)  # flat positions of the N attempt tokens
    rows = lambda x: None if x is None else x.reshape(b * t, h).index_select(0, idx)  # noqa: E731
    s_rows, t_rows, r_rows, tr_rows = rows(student_hidden), rows(teacher_hidden.detach()), rows(ref_hidden), rows(teacher_ref_hidden)
    y_rows = target_ids.reshape(-1).index_select(0, idx)
    if r_rows is not None:
        r_rows = r_rows.detach()
    if tr_rows is not None:
        tr_rows = tr_rows.detach()

    n = idx.numel()
    grad = torch.is_grad_enabled()
    use_ckpt = grad and lm_head_weight.requires_grad  # a trained lm_head: recompute the chunk in the backward
    use_jac = grad and not use_ckpt and s_rows.requires_grad  # the training case: `_ChunkTerms`
    chunks: list[dict[str, Tensor]] = []
    for start in range(0, max(n, 1), cfg.chunk_tokens):  # at least one (maybe empty) chunk keeps the graph
        sl = slice(start, start + cfg.chunk_tokens)
        r_sl, tr_sl = (None if x is None else x[sl] for x in (r_rows, tr_rows))
        args = (cfg, lm_head_weight, s_rows[sl], t_rows[sl], y_rows[sl], r_sl, tr_sl)
        if use_ckpt:
            chunks.append(checkpoint(_chunk_terms, *args, use_reentrant=False))
        else:
            chunks.append(_chunk_terms_from_jacobians(*args) if use_jac else _chunk_terms(*args))

    terms: dict[str, Tensor] = {}
    for key in chunks[0]:
        flat = torch.cat([c[key] for c in chunks])
        full = torch.zeros(b * t, dtype=flat.dtype, device=flat.device).index_copy(0, idx, flat)
        terms[key] = full.reshape(b, t)
    return combine_terms(terms, mask, cfg, advantages=advantages, rewards=rewards, old_logp=old_logp)


def naive_sdpo_loss(
    student_hidden: Tensor,
    teacher_hidden: Tensor,
    lm_head_weight: Tensor,
    target_ids: Tensor,
    mask: Tensor,
    cfg: LossConfig,
    *,
    ref_hidden: Tensor | None = None,
    teacher_ref_hidden: Tensor | None = None,
    rewards: Tensor | None = None,
    advantages: Tensor | None = None,
    old_logp: Tensor | None = None,
) -> LossOutput:
    """The same loss with [B, T, V] logits materialized for every model at once (oracle / baseline)."""
    w = lm_head_weight
    with torch.no_grad():
        t_logits, r_logits, tr_logits = _logits(teacher_hidden, w), _logits(ref_hidden, w), _logits(teacher_ref_hidden, w)
    return sdpo_loss_from_logits(
        _logits(student_hidden, w),
        t_logits,
        target_ids,
        mask,
        cfg,
        ref_logits=r_logits,
        teacher_ref_logits=tr_logits,
        advantages=advantages,
        rewards=rewards,
        old_logp=old_logp,
    )
