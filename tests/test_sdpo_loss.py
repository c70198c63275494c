"""The SDPO loss (sdpo_ttt/sdpo/loss.py) against brute-force float64 references written as explicit loops.

Every reference below is the textbook formula, one token and one vocabulary entry at a time, in float64,
differentiated by autograd; the implementation under test is vectorized, float32 (or float64), and carries
hand-written gradients. Values AND gradients must agree.
"""

from __future__ import annotations

import math

import pytest
import torch

from sdpo_ttt.config.sdpo import LossConfig
from sdpo_ttt.sdpo.loss import (
    combine_terms,
    divergence,
    full_divergence,
    group_advantages,
    importance_ratio,
    log_mixture,
    masked_seq_mean,
    sdpo_loss_from_logits,
    sequence_advantage,
    token_surrogate,
    topk_divergence,
)
from sdpo_ttt.sdpo.microbatch import UpdateBatch, micro_batches
from sdpo_ttt.sdpo.teacher import trust_region_log_probs

ALPHAS = [0.0, 0.3, 1.0]


# ------------------------------------------------------------------------------- brute-force references
def bf_log_softmax(z: list, tau: float = 1.0) -> list:
    z = [zi / tau for zi in z]
    m = max(float(zi.detach()) for zi in z)
    lse = m + torch.log(sum(torch.exp(zi - m) for zi in z))
    return [zi - lse for zi in z]


def bf_div(ls: list, lt: list, alpha: float):
    """D_α over buckets, textbook: reverse KL / forward KL / (1−α)KL(s‖M) + αKL(t‖M), M = (1−α)s + αt."""
    ps = [torch.exp(x) for x in ls]
    pt = [torch.exp(x) for x in lt]
    if alpha == 1.0:
        return sum(p * (a - b) for p, a, b in zip(ps, ls, lt, strict=True))
    if alpha == 0.0:
        return sum(q * (b - a) for q, a, b in zip(pt, ls, lt, strict=True))
    m = [(1 - alpha) * p + alpha * q for p, q in zip(ps, pt, strict=True)]
    kl_s = sum(p * (torch.log(p) - torch.log(mi)) for p, mi in zip(ps, m, strict=True))
    kl_t = sum(q * (torch.log(q) - torch.log(mi)) for q, mi in zip(pt, m, strict=True))
    return (1 - alpha) * kl_s + alpha * kl_t


def bf_token_div(zs: list, zt: list, mode: str, alpha: float, k: int, tau: float = 1.0):
    """One token's 'full' or 'logit' divergence from its raw logits (lists of 0-d tensors)."""
    ls, lt = bf_log_softmax(zs, tau), bf_log_softmax(zt, tau)
    lt = [x.detach() for x in lt]
    if mode == "full" or k >= len(zs):
        return bf_div(ls, lt, alpha)
    ids = sorted(range(len(zs)), key=lambda i: -float(zs[i].detach()))[:k]  # the student's top-K ids
    ls_b = [ls[i] for i in ids]
    lt_b = [lt[i] for i in ids]
    ls_b.append(torch.log(1 - sum(torch.exp(x) for x in ls_b)))  # the tail bucket, computed naively
    lt_b.append(torch.log(1 - sum(torch.exp(x) for x in lt_b)))
    return bf_div(ls_b, lt_b, alpha)


def bf_clip(x: float, c) -> float:
    return max(-c, min(c, x)) if c else x


def bf_clipped_div(ls: list, lt: list, alpha: float, c):
    """bf_div whose gradient w.r.t. ls has the advantage clipped: ∂/∂ls_v = p_s,v·clip(ls_v − lt_v) (α=1),
    (1−α)·p_s,v·clip(ls_v − lm_v) (JSD), p_s,v − p_t,v (α=0, not clipped). The value is bf_div's: the gradient of
    bf_div (by autograd) plus, on each clipped entry only, sg(p_s·(clip(r) − r))·(ls − sg(ls)), which adds 0."""
    value = bf_div(ls, lt, alpha)
    if not c or alpha == 0.0:
        return value
    ps = [float(torch.exp(x.detach())) for x in ls]
    if alpha == 1.0:
        r = [float(a.detach() - b) for a, b in zip(ls, lt, strict=True)]
        w = ps
    else:
        lm = [math.log((1 - alpha) * p + alpha * math.exp(float(b))) for p, b in zip(ps, lt, strict=True)]
        r = [float(a.detach()) - m for a, m in zip(ls, lm, strict=True)]
        w = [(1 - alpha) * p for p in ps]
    return value + sum(wi * (bf_clip(ri, c) - ri) * (a - a.detach()) for wi, ri, a in zip(w, r, ls, strict=True))


def bf_loss(S, Tt, Y, M, cfg: LossConfig, R=None, TR=None, rewards=None, OLD=None):
    """The whole loss, loop by loop. S, Tt, R, TR, OLD: [B, T, V] float64 logits (OLD: the student that sampled,
    for the importance ratio); Y targets; M bool mask."""
    B, T, V = S.shape
    tau = cfg.temperature
    clip = cfg.adv_clip

    def rows(X, b, t):
        return [X[b, t, v] for v in range(V)]

    def teacher_lp(b, t):
        if TR is None:
            return [x.detach() for x in bf_log_softmax(rows(Tt, b, t), tau)]
        lr = bf_log_softmax(rows(TR, b, t), tau)
        lc = bf_log_softmax(rows(Tt, b, t), tau)
        mixed = [(1 - cfg.teacher_rate) * a + cfg.teacher_rate * c for a, c in zip(lr, lc, strict=True)]
        return [x.detach() for x in bf_log_softmax(mixed)]

    adv = None
    if rewards is not None:
        mu = sum(rewards) / B
        sd = math.sqrt(sum((r - mu) ** 2 for r in rewards) / B)
        adv = [(r - mu) / (sd + cfg.grpo_eps) if cfg.grpo_scale_std else r - mu for r in rewards]

    sdpo_rows, grpo_rows, kl_rows = [], [], []  # per attempt with tokens: the list of its per-token terms
    for b in range(B):
        ts = [t for t in range(T) if M[b, t]]
        if not ts:
            continue
        ls_y = {t: bf_log_softmax(rows(S, b, t), tau)[int(Y[b, t])] for t in ts}
        lt_y = {t: teacher_lp(b, t)[int(Y[b, t])] for t in ts}
        rho = {t: 1.0 for t in ts}
        if OLD is not None and cfg.ratio_clip:
            for t in ts:
                old = float(bf_log_softmax(rows(OLD, b, t), tau)[int(Y[b, t])])
                rho[t] = min(math.exp(float(ls_y[t].detach()) - old), cfg.ratio_clip)
        per = []
        if cfg.mode in ("full", "logit"):
            for t in ts:
                ls = bf_log_softmax(rows(S, b, t), tau)
                lt = teacher_lp(b, t)
                if cfg.mode == "full" or cfg.topk >= V:
                    per.append(bf_clipped_div(ls, lt, cfg.alpha, clip))
                else:
                    zs = rows(S, b, t)
                    ids = sorted(range(V), key=lambda i: -float(zs[i].detach()))[: cfg.topk]
                    lsb = [ls[i] for i in ids] + [torch.log(1 - sum(torch.exp(ls[i]) for i in ids))]
                    ltb = [lt[i] for i in ids] + [torch.log(1 - sum(torch.exp(lt[i]) for i in ids))]
                    per.append(bf_clipped_div(lsb, ltb, cfg.alpha, clip))
        elif cfg.mode == "token":
            for t in ts:
                d = bf_clip(float((ls_y[t] - lt_y[t]).detach()), clip)
                per.append(d * ls_y[t])
        else:
            a = sum(float((lt_y[t] - ls_y[t]).detach()) for t in ts) / len(ts)  # per-token mean (issue #16)
            per = [-bf_clip(a, clip) * ls_y[t] for t in ts]
        sdpo_rows.append([rho[t] * x for t, x in zip(ts, per, strict=True)])
        if adv is not None:
            grpo_rows.append([rho[t] * -adv[b] * ls_y[t] for t in ts])
        if R is not None:
            kls = []
            for t in ts:
                ls = bf_log_softmax(rows(S, b, t), tau)
                lr = [x.detach() for x in bf_log_softmax(rows(R, b, t), tau)]
                kls.append(bf_div(ls, lr, 1.0))
            kl_rows.append(kls)

    def agg(rows_: list):
        if cfg.aggregation == "token-mean":
            return sum(sum(r) for r in rows_) / sum(len(r) for r in rows_)
        return sum(sum(r) / len(r) for r in rows_) / len(rows_)

    if not sdpo_rows:
        return S.sum() * 0
    loss = agg(sdpo_rows)
    if cfg.grpo_weight > 0:
        loss = (1 - cfg.grpo_weight) * loss + cfg.grpo_weight * agg(grpo_rows)
    if cfg.kl_weight > 0:
        loss = loss + cfg.kl_weight * agg(kl_rows)
    return loss


# ------------------------------------------------------------------------------------------- helpers
def rand_logits(*shape, scale=2.0, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(*shape, generator=g, dtype=torch.float64) * scale).to(dtype)


def grad_of(fn, x):
    x = x.detach().clone().requires_grad_(True)
    val = fn(x)
    (g,) = torch.autograd.grad(val, x)
    return val.detach(), g


# ------------------------------------------------------------------------------ per-token divergences
@pytest.mark.parametrize("alpha", ALPHAS)
@pytest.mark.parametrize("mode,k", [("full", None), ("logit", 4), ("logit", 1)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_divergence_matches_bruteforce(alpha, mode, k, dtype):
    N, V = 5, 17
    zs, zt = rand_logits(N, V, seed=1), rand_logits(N, V, seed=2)
    tol = dict(atol=1e-10, rtol=1e-9) if dtype == torch.float64 else dict(atol=2e-5, rtol=1e-4)
    for n in range(N):
        def ref(x, n=n):
            return bf_token_div([x[v] for v in range(V)], [zt[n, v] for v in range(V)], mode, alpha, k or V)

        rv, rg = grad_of(ref, zs[n])

        def impl(x, n=n):
            s, t = x[None].to(dtype), zt[n][None].to(dtype)
            return (full_divergence(s, t, alpha) if mode == "full" else topk_divergence(s, t, alpha, k))[0]

        iv, ig = grad_of(impl, zs[n])
        torch.testing.assert_close(iv.double(), rv, **tol)
        torch.testing.assert_close(ig.double(), rg, **tol)


@pytest.mark.parametrize("alpha", ALPHAS)
@pytest.mark.parametrize("mode", ["full", "logit"])
def test_divergence_gradcheck(alpha, mode):
    """The hand-written gradient agrees with finite differences of the value (float64)."""
    zs = rand_logits(3, 11, seed=3).requires_grad_(True)
    zt = rand_logits(3, 11, seed=4)
    if mode == "full":
        assert torch.autograd.gradcheck(lambda x: full_divergence(x, zt, alpha), (zs,))
    else:
        assert torch.autograd.gradcheck(lambda x: topk_divergence(x, zt, alpha, 5), (zs,))


def test_teacher_gets_no_gradient():
    zs = rand_logits(4, 13, seed=5).requires_grad_(True)
    zt = rand_logits(4, 13, seed=6).requires_grad_(True)
    for a in ALPHAS:
        out = topk_divergence(zs, zt, a, 3).sum() + full_divergence(zs, zt, a).sum()
        gs, gt = torch.autograd.grad(out, (zs, zt), allow_unused=True)
        assert gt is None or torch.count_nonzero(gt) == 0
        assert torch.count_nonzero(gs) > 0


@pytest.mark.parametrize("alpha", ALPHAS)
def test_topk_equal_vocab_is_full_and_finite(alpha):
    zs, zt = rand_logits(5, 11, seed=7, dtype=torch.float32), rand_logits(5, 11, seed=8, dtype=torch.float32)
    for k in (11, 50):
        v, g = grad_of(lambda x, k=k: topk_divergence(x, zt, alpha, k).sum(), zs)
        vf, gf = grad_of(lambda x: full_divergence(x, zt, alpha).sum(), zs)
        assert torch.isfinite(v) and torch.isfinite(g).all()
        torch.testing.assert_close(v, vf)
        torch.testing.assert_close(g, gf)


@pytest.mark.parametrize("alpha", ALPHAS)
def test_tail_bucket_when_topk_holds_all_mass(alpha):
    """K < V but Σ_K p rounds to 1 (one huge logit): the tail log-prob is clamped, nothing is inf/NaN."""
    zs = torch.zeros(3, 20)
    zs[:, 0] = 200.0
    zt = rand_logits(3, 20, seed=9, dtype=torch.float32)
    zt[1, 0] = 300.0
    v, g = grad_of(lambda x: topk_divergence(x, zt, alpha, 2).sum(), zs)
    assert torch.isfinite(v) and torch.isfinite(g).all()


def test_jsd_limits_point_to_the_kls():
    """D_α/α -> KL(π_t‖π_s) as α -> 0 and D_α/(1−α) -> KL(π_s‖π_t) as α -> 1 (the reference's JSD)."""
    zs, zt = rand_logits(4, 13, seed=10), rand_logits(4, 13, seed=11)
    fwd, rev = full_divergence(zs, zt, 0.0), full_divergence(zs, zt, 1.0)
    eps = 1e-6
    torch.testing.assert_close(full_divergence(zs, zt, eps) / eps, fwd, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(full_divergence(zs, zt, 1 - eps) / eps, rev, rtol=1e-4, atol=1e-6)


def test_log_mixture_is_exact_on_ties_and_stable():
    lp = torch.tensor([-1.0, -3.0, -200.0, -0.5])
    lq = torch.tensor([-1.0, -2.0, -1.0, -90.0])
    for a in (0.3, 0.5, 0.9):
        got = log_mixture(lp, lq, a)
        want = torch.log((1 - a) * lp.double().exp() + a * lq.double().exp())
        torch.testing.assert_close(got.double(), want, rtol=1e-6, atol=1e-6)
        assert got[0] == lp[0]


def test_token_surrogate_gradient_is_reverse_kl_estimator():
    ls = torch.tensor([-1.0, -2.0, -0.1], requires_grad=True)
    lt = torch.tensor([-1.5, -0.5, -0.1])
    (g,) = torch.autograd.grad(token_surrogate(ls, lt).sum(), ls)
    torch.testing.assert_close(g, (ls - lt).detach())
    (g,) = torch.autograd.grad(token_surrogate(ls, lt, clip=0.7).sum(), ls)
    torch.testing.assert_close(g, torch.tensor([0.5, -0.7, 0.0]))


# ---------------------------------------------------------------------------- whole loss vs brute force
def make_batch(B=3, T=4, V=13, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    S = (torch.randn(B, T, V, generator=g, dtype=torch.float64) * 2).to(dtype)
    Tt = (torch.randn(B, T, V, generator=g, dtype=torch.float64) * 2).to(dtype)
    Y = torch.randint(0, V, (B, T), generator=g)
    M = torch.ones(B, T, dtype=torch.bool)
    M[0, 3:] = False  # a short attempt (right-padded)
    M[1, 0] = False  # a left-padded one
    return S, Tt, Y, M


CASES = [
    dict(mode="logit", alpha=1.0, topk=4),
    dict(mode="logit", alpha=0.3, topk=4),
    dict(mode="logit", alpha=0.0, topk=4),
    dict(mode="logit", alpha=1.0, topk=13),
    dict(mode="full", alpha=1.0),
    dict(mode="full", alpha=0.3),
    dict(mode="full", alpha=0.0),
    dict(mode="token"),
    dict(mode="token", adv_clip=0.5),
    dict(mode="sequence"),
    dict(mode="sequence", adv_clip=1.0),
    dict(mode="full", alpha=1.0, temperature=0.7),
    dict(mode="logit", alpha=1.0, topk=4, adv_clip=0.5),  # the advantage clip binds on many entries
    dict(mode="full", alpha=0.3, adv_clip=0.3),
    dict(mode="full", alpha=1.0, adv_clip=0),  # off
    dict(mode="full", alpha=1.0, aggregation="attempt-mean"),
    dict(mode="token", adv_clip=0.5, aggregation="attempt-mean"),
    dict(mode="sequence", adv_clip=1.0, aggregation="attempt-mean"),
]


@pytest.mark.parametrize("kw", CASES, ids=[str(c) for c in CASES])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_loss_matches_bruteforce(kw, dtype):
    cfg = LossConfig(**kw)
    S, Tt, Y, M = make_batch()
    rv, rg = grad_of(lambda x: bf_loss(x, Tt, Y, M, cfg), S)
    iv, ig = grad_of(lambda x: sdpo_loss_from_logits(x.to(dtype), Tt.to(dtype), Y, M, cfg).loss, S)
    tol = dict(atol=1e-10, rtol=1e-9) if dtype == torch.float64 else dict(atol=3e-5, rtol=1e-4)
    torch.testing.assert_close(iv.double(), rv, **tol)
    torch.testing.assert_close(ig.double(), rg, **tol)
    assert torch.count_nonzero(ig[~M]) == 0  # padding positions get no gradient


@pytest.mark.parametrize(
    "kw",
    [
        dict(mode="full", alpha=1.0, grpo_weight=0.4, kl_weight=0.1),
        dict(mode="logit", alpha=0.3, topk=3, grpo_weight=0.5),
        dict(mode="full", alpha=1.0, grpo_weight=0.4, grpo_scale_std=True),
        dict(mode="token", kl_weight=0.2),
        dict(mode="logit", alpha=1.0, topk=5, teacher_rate=0.25),
    ],
)
def test_hybrid_kl_and_trust_region_match_bruteforce(kw):
    cfg = LossConfig(**kw)
    S, Tt, Y, M = make_batch(seed=3)
    g = torch.Generator().manual_seed(9)
    R = torch.randn(S.shape, generator=g, dtype=torch.float64)
    TR = torch.randn(S.shape, generator=g, dtype=torch.float64) if "teacher_rate" in kw else None
    rewards = [0.0, 0.5, 1.0]
    rv, rg = grad_of(lambda x: bf_loss(x, Tt, Y, M, cfg, R=R, TR=TR, rewards=rewards), S)
    out_holder = {}

    def impl(x):
        out = sdpo_loss_from_logits(
            x, Tt, Y, M, cfg, ref_logits=R, teacher_ref_logits=TR, rewards=torch.tensor(rewards, dtype=torch.float64)
        )
        out_holder["out"] = out
        return out.loss

    iv, ig = grad_of(impl, S)
    torch.testing.assert_close(iv, rv, atol=1e-10, rtol=1e-9)
    torch.testing.assert_close(ig, rg, atol=1e-10, rtol=1e-9)
    stats = out_holder["out"].stats
    assert "kl_to_ref" in stats and stats["kl_to_ref"] > 0
    assert stats["grpo/advantage_mean"] == pytest.approx(0.0, abs=1e-9)


# ------------------------------------------------------------------------------------------ edge cases
@pytest.mark.parametrize("kw", CASES + [dict(mode="logit", alpha=0.3, topk=4, kl_weight=0.1)], ids=str)
def test_identical_teacher_and_student_give_exact_zero(kw):
    cfg = LossConfig(**kw)
    S, _, Y, M = make_batch(dtype=torch.float32)
    x = S.clone().requires_grad_(True)
    out = sdpo_loss_from_logits(x, S.clone(), Y, M, cfg, ref_logits=S.clone() if cfg.kl_weight else None)
    (g,) = torch.autograd.grad(out.loss, x)
    assert out.loss.item() == 0.0
    assert torch.count_nonzero(g) == 0
    assert out.stats["sdpo/teacher_equals_student_frac"] == 1.0


@pytest.mark.parametrize("mode", ["logit", "full", "token", "sequence"])
def test_all_masked_rows_and_batches(mode):
    cfg = LossConfig(mode=mode, topk=4)
    S, Tt, Y, M = make_batch(dtype=torch.float32)
    S[2] = 1e4 * torch.randn(4, 13)  # garbage under a fully masked row must not leak
    M2 = M.clone()
    M2[2] = False
    v, g = grad_of(lambda x: sdpo_loss_from_logits(x, Tt, Y, M2, cfg).loss, S)
    keep = torch.tensor([0, 1])
    v2, g2 = grad_of(lambda x: sdpo_loss_from_logits(x, Tt[keep], Y[keep], M2[keep], cfg).loss, S[keep])
    torch.testing.assert_close(v, v2)  # the empty row is left out of the batch mean
    torch.testing.assert_close(g[keep], g2)
    assert torch.isfinite(v) and torch.count_nonzero(g[2]) == 0
    out = sdpo_loss_from_logits(S[keep].clone().requires_grad_(True), Tt[keep], Y[keep], torch.zeros(2, 4, dtype=torch.bool), cfg)
    assert out.loss.item() == 0.0 and out.stats["sdpo/empty_targets"] == 2.0 and out.stats["sdpo/tokens"] == 0.0
    v3, g3 = grad_of(lambda x: sdpo_loss_from_logits(x, Tt[keep], Y[keep], torch.zeros(2, 4, dtype=torch.bool), cfg).loss, S[keep])
    assert v3.item() == 0.0 and torch.count_nonzero(g3) == 0


@pytest.mark.parametrize("kw", CASES, ids=str)
def test_left_and_right_padding_agree(kw):
    cfg = LossConfig(**kw)
    B, T, V = 3, 6, 13
    lengths = [6, 3, 1]
    g = torch.Generator().manual_seed(4)
    S = torch.randn(B, T, V, generator=g)
    Tt = torch.randn(B, T, V, generator=g)
    Y = torch.randint(0, V, (B, T), generator=g)
    right = torch.zeros(B, T, dtype=torch.bool)
    perm = torch.zeros(B, T, dtype=torch.long)  # position in the left-padded layout of each right-padded token
    for b, n in enumerate(lengths):
        right[b, :n] = True
        perm[b] = (torch.arange(T) + (T - n)) % T
    left = torch.zeros_like(right)
    for b, n in enumerate(lengths):
        left[b, T - n :] = True
    idx = perm[..., None].expand(B, T, V)
    S_l = torch.zeros_like(S).scatter(1, idx, S)
    T_l = torch.zeros_like(Tt).scatter(1, idx, Tt)
    Y_l = torch.zeros_like(Y).scatter(1, perm, Y)
    v_r, g_r = grad_of(lambda x: sdpo_loss_from_logits(x, Tt, Y, right, cfg).loss, S)
    v_l, g_l = grad_of(lambda x: sdpo_loss_from_logits(x, T_l, Y_l, left, cfg).loss, S_l)
    torch.testing.assert_close(v_r, v_l, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(g_r, g_l.gather(1, idx), rtol=1e-6, atol=1e-7)


def test_masked_seq_mean_bruteforce():
    x = torch.tensor([[1.0, 2.0, 3.0], [4.0, float("nan"), 6.0], [7.0, 8.0, 9.0]])
    m = torch.tensor([[True, True, False], [True, False, True], [False, False, False]])
    assert masked_seq_mean(x, m).item() == pytest.approx(((1 + 2) / 2 + (4 + 6) / 2) / 2)


def test_group_advantages():
    r = torch.tensor([0.0, 0.5, 1.0, 1.0])
    mu = sum(r.tolist()) / 4
    sd = math.sqrt(sum((v - mu) ** 2 for v in r.tolist()) / 4)
    want = torch.tensor([(v - mu) / (sd + 1e-4) for v in r.tolist()])
    torch.testing.assert_close(group_advantages(r, scale_by_std=True), want)
    for const in (torch.zeros(5), torch.full((5,), 0.7), torch.tensor([1.0])):
        for scale in (False, True):
            a = group_advantages(const, scale_by_std=scale)
            assert torch.isfinite(a).all() and torch.count_nonzero(a) == 0


def test_group_advantages_are_not_std_scaled_by_default():
    """The reference's SDPO default (norm_adv_by_std_in_grpo: False): r − mean r. Scaling would turn scores
    0.50 vs 0.52 into advantages of ±1, as large as a pass against a fail."""
    r = torch.tensor([0.50, 0.52, 0.50, 0.52])
    torch.testing.assert_close(group_advantages(r), torch.tensor([-0.01, 0.01, -0.01, 0.01]))
    assert float(group_advantages(r, scale_by_std=True).abs().min()) > 0.99


def test_grpo_with_constant_rewards_is_pure_sdpo():
    S, Tt, Y, M = make_batch(dtype=torch.float32)
    base = sdpo_loss_from_logits(S, Tt, Y, M, LossConfig(mode="full"))
    hyb = sdpo_loss_from_logits(S, Tt, Y, M, LossConfig(mode="full", grpo_weight=0.5), rewards=torch.ones(3))
    torch.testing.assert_close(hyb.loss, 0.5 * base.loss)
    assert hyb.stats["grpo/loss"] == 0.0


def trust_region_teacher_logprobs(ref_logits, cur_logits, rate):
    return trust_region_log_probs(torch.log_softmax(ref_logits, -1), torch.log_softmax(cur_logits, -1), rate)


def test_trust_region_teacher_bruteforce():
    ref, cur = rand_logits(2, 7, seed=12), rand_logits(2, 7, seed=13)
    got = trust_region_teacher_logprobs(ref, cur, 0.3)
    for n in range(2):
        lr, lc = bf_log_softmax(list(ref[n])), bf_log_softmax(list(cur[n]))
        want = bf_log_softmax([0.7 * a + 0.3 * c for a, c in zip(lr, lc, strict=True)])
        torch.testing.assert_close(got[n], torch.stack(want))
    torch.testing.assert_close(trust_region_teacher_logprobs(ref, cur, 0.0), torch.log_softmax(ref, -1))
    torch.testing.assert_close(trust_region_teacher_logprobs(ref, cur, 1.0), torch.log_softmax(cur, -1))


def test_divergence_of_identical_is_exactly_zero_in_every_alpha():
    ls = torch.log_softmax(rand_logits(4, 9, seed=14, dtype=torch.float32), -1).requires_grad_(True)
    for a in (0.0, 0.1, 0.3, 0.5, 0.9, 1.0):
        d = divergence(ls, ls.detach().clone(), a)
        (g,) = torch.autograd.grad(d.sum(), ls)
        assert torch.count_nonzero(d) == 0 and torch.count_nonzero(g) == 0


def test_config_validation():
    with pytest.raises(ValueError, match="--loss 'nope'"):
        LossConfig(mode="nope")
    with pytest.raises(ValueError, match="--alpha 1.5: input should be less than or equal to 1"):
        LossConfig(alpha=1.5)
    with pytest.raises(ValueError, match="--adv-clip -1.0: input should be greater than or equal to 0"):
        LossConfig(adv_clip=-1.0)
    with pytest.raises(ValueError, match="--topk 0: input should be greater than or equal to 1"):
        LossConfig(topk=0)
    assert "alpha" in LossConfig.help()
    S, Tt, Y, M = make_batch(dtype=torch.float32)
    with pytest.raises(ValueError, match="rewards"):
        sdpo_loss_from_logits(S, Tt, Y, M, LossConfig(grpo_weight=0.5))
    with pytest.raises(ValueError, match="reference"):
        sdpo_loss_from_logits(S, Tt, Y, M, LossConfig(kl_weight=0.5))


def test_sequence_advantage_does_not_grow_with_length():
    """Two attempts with the same per-token log-ratio, one 2 and one 8 tokens long, get the same weight A:
    the mean log-ratio (a sum would weigh the long one 4x)."""
    ls = torch.full((2, 8), -2.0)
    lt = torch.full((2, 8), -1.5)
    mask = torch.zeros(2, 8, dtype=torch.bool)
    mask[0, :2] = True
    mask[1, :] = True
    a = sequence_advantage(ls, lt, mask)
    torch.testing.assert_close(a, torch.tensor([0.5, 0.5]))
    assert float(sequence_advantage(ls, lt, torch.zeros_like(mask))[0]) == 0.0
    torch.testing.assert_close(sequence_advantage(ls, lt, mask, clip=0.2), torch.tensor([0.2, 0.2]))


def test_grpo_scale_std_option_reaches_the_loss():
    """--grpo-scale-std changes the hybrid loss (rewards 0.50 / 0.52 / 0.50: std scaling blows ±0.01 up to ±1)."""
    S, Tt, Y, M = make_batch(dtype=torch.float64)
    r = torch.tensor([0.50, 0.52, 0.50], dtype=torch.float64)
    plain = sdpo_loss_from_logits(S, Tt, Y, M, LossConfig(mode="full", grpo_weight=1.0), rewards=r)
    scaled = sdpo_loss_from_logits(S, Tt, Y, M, LossConfig(mode="full", grpo_weight=1.0, grpo_scale_std=True), rewards=r)
    assert abs(plain.stats["grpo/advantage_std"]) < 0.02 < 0.9 < scaled.stats["grpo/advantage_std"]
    assert LossConfig().grpo_scale_std is False


@pytest.mark.parametrize(
    "kw", [dict(mode="full"), dict(mode="token", temperature=0.7), dict(mode="logit", topk=4, teacher_rate=0.25)], ids=str
)
def test_per_attempt_gap_matches_bruteforce(kw):
    """LossOutput.per_attempt_gap[i] = mean over attempt i's tokens of lt(y_t) − ls(y_t), loop by loop (NaN for an
    attempt without tokens); the logged mean gap follows the aggregation: the mean over the batch's tokens
    (token-mean), or of the per-attempt gaps (attempt-mean); no gradient."""
    cfg = LossConfig(**kw)
    S, Tt, Y, M = make_batch(B=4, seed=5)
    M[3] = False  # an attempt without tokens
    TR = rand_logits(*S.shape, seed=6) if "teacher_rate" in kw else None  # the trust-region teacher mix
    out = sdpo_loss_from_logits(S.clone().requires_grad_(True), Tt, Y, M, cfg, teacher_ref_logits=TR)
    B, T, V = S.shape
    want, every = [], []
    for b in range(3):
        d = []
        for t in (t for t in range(T) if M[b, t]):
            ls = bf_log_softmax(list(S[b, t]), cfg.temperature)
            lt = bf_log_softmax(list(Tt[b, t]), cfg.temperature)
            if TR is not None:
                lr = bf_log_softmax(list(TR[b, t]), cfg.temperature)
                lt = bf_log_softmax([(1 - cfg.teacher_rate) * a + cfg.teacher_rate * c for a, c in zip(lr, lt, strict=True)])
            d.append(float(lt[int(Y[b, t])] - ls[int(Y[b, t])]))
        want.append(sum(d) / len(d))
        every += d
    gap = out.per_attempt_gap
    assert gap.shape == (4,) and not gap.requires_grad and math.isnan(float(gap[3]))
    torch.testing.assert_close(gap[:3], torch.tensor(want, dtype=torch.float64), atol=1e-12, rtol=1e-10)
    assert out.stats["sdpo/teacher_student_logprob_gap"] == pytest.approx(sum(every) / len(every), abs=1e-12)
    by_attempt = sdpo_loss_from_logits(S, Tt, Y, M, cfg.model_copy(update={"aggregation": "attempt-mean"}), teacher_ref_logits=TR)
    assert by_attempt.stats["sdpo/teacher_student_logprob_gap"] == pytest.approx(sum(want) / 3, abs=1e-12)


# ------------------------------------------------------------- the reference's defaults (issue #26 part 3)
def test_token_mean_weighs_every_token_of_the_batch_the_same():
    """Attempts of 1 and 7 tokens, per-token losses 1.0 and 0.0 ('token' mode, d = 1 on the first attempt):
    token-mean gives 1/8 (the long attempt's tokens weigh 7x), attempt-mean (1 + 0)/2."""
    ls = torch.full((2, 7), -1.0)
    lt = ls.clone()
    lt[0, 0] = -2.0  # d = ls − lt = 1 on the one token of attempt 0; 0 everywhere on attempt 1
    mask = torch.zeros(2, 7, dtype=torch.bool)
    mask[0, 0] = True
    mask[1, :] = True
    terms = {"student_logp": ls, "teacher_logp": lt, "student_entropy": torch.zeros(2, 7)}
    by_token = combine_terms(terms, mask, LossConfig(mode="token"))
    by_attempt = combine_terms(terms, mask, LossConfig(mode="token", aggregation="attempt-mean"))
    assert by_token.loss.item() == pytest.approx(1.0 * -1.0 / 8)
    assert by_attempt.loss.item() == pytest.approx(1.0 * -1.0 / 2)
    assert LossConfig().aggregation == "token-mean"


@pytest.mark.parametrize("aggregation", ["token-mean", "attempt-mean"])
@pytest.mark.parametrize("kw", [dict(mode="logit", topk=4), dict(mode="sequence"), dict(mode="full", grpo_weight=0.5)], ids=str)
def test_micro_batches_weighted_by_their_share_give_the_batch_loss(kw, aggregation):
    """Split into micro-batches of 1, 3 and 8 attempts (sdpo/microbatch.py's shares), Σ_mb share·L_mb and its
    gradient equal the whole batch's loss, loop by loop in float64: the denominator is the batch's token (or
    attempt) count whatever the split. Attempt lengths 4, 1, 6, 0 (no tokens), 3, 2."""
    cfg = LossConfig(aggregation=aggregation, **kw)
    lengths = [4, 1, 6, 0, 3, 2]
    B, T, V = len(lengths), max(lengths), 11
    g = torch.Generator().manual_seed(21)
    S = torch.randn(B, T, V, generator=g, dtype=torch.float64) * 2
    Tt = torch.randn(B, T, V, generator=g, dtype=torch.float64) * 2
    Y = torch.randint(0, V, (B, T), generator=g)
    M = torch.tensor([[t < n for t in range(T)] for n in lengths])
    rewards = [0.0, 0.5, 1.0, 0.0, 0.25, 0.75]
    adv = group_advantages(torch.tensor([rewards[i] for i in range(B) if lengths[i]], dtype=torch.float64))
    full_adv = torch.zeros(B, dtype=torch.float64)
    full_adv[[i for i in range(B) if lengths[i]]] = adv
    want_v, want_g = grad_of(lambda x: _bf_with_adv(x, Tt, Y, M, cfg, full_adv) if cfg.grpo_weight else bf_loss(x, Tt, Y, M, cfg), S)
    batch = UpdateBatch([[0]] * B, [[0]] * B, [[1] * n for n in lengths], rewards, [True] * B, [False] * B)
    for size in (1, 3, 8):
        def split_loss(x, size=size):
            total = x.sum() * 0
            for mb in micro_batches(batch, size, aggregation):
                r = torch.tensor(mb.rows)
                a = full_adv[r] if cfg.grpo_weight else None
                total = total + mb.share * sdpo_loss_from_logits(x[r], Tt[r], Y[r], M[r], cfg, advantages=a).loss
            return total
        got_v, got_g = grad_of(split_loss, S)
        torch.testing.assert_close(got_v, want_v, atol=1e-12, rtol=1e-10)
        torch.testing.assert_close(got_g, want_g, atol=1e-12, rtol=1e-10)


def _bf_with_adv(S, Tt, Y, M, cfg, adv):
    """bf_loss with given per-attempt GRPO advantages (those of the non-empty attempts, as the updater passes)."""
    sdpo = bf_loss(S, Tt, Y, M, cfg.model_copy(update={"grpo_weight": 0.0}))
    B, T, _ = S.shape
    terms = [(b, t) for b in range(B) for t in range(T) if M[b, t]]
    lp = {(b, t): bf_log_softmax(list(S[b, t]))[int(Y[b, t])] for b, t in terms}
    if cfg.aggregation == "token-mean":
        grpo = sum(-float(adv[b]) * lp[b, t] for b, t in terms) / len(terms)
    else:
        rows = [b for b in range(B) if M[b].any()]
        grpo = sum(sum(-float(adv[b]) * lp[b, t] for t in range(T) if M[b, t]) / int(M[b].sum()) for b in rows) / len(rows)
    return (1 - cfg.grpo_weight) * sdpo + cfg.grpo_weight * grpo


@pytest.mark.parametrize("kw", [dict(mode="logit", topk=4), dict(mode="full", alpha=0.3), dict(mode="token")], ids=str)
def test_advantage_clip_cuts_the_gradient_not_the_value(kw):
    """The default clip 5.0 is on; a tight clip (0.2) changes the gradient of every mode it applies to, never the
    loss value, and the binding fraction is logged; 0 turns it off."""
    S, Tt, Y, M = make_batch(seed=8)
    Tt = Tt * 3  # a teacher far from the student: large log-ratios
    v_off, g_off = grad_of(lambda x: sdpo_loss_from_logits(x, Tt, Y, M, LossConfig(adv_clip=0, **kw)).loss, S)
    v_cut, g_cut = grad_of(lambda x: sdpo_loss_from_logits(x, Tt, Y, M, LossConfig(adv_clip=0.2, **kw)).loss, S)
    out = sdpo_loss_from_logits(S, Tt, Y, M, LossConfig(adv_clip=0.2, **kw))
    assert LossConfig().adv_clip == 5.0
    if kw["mode"] != "token":  # the token surrogate's value is sg(d)·ls: its value moves with d by definition
        torch.testing.assert_close(v_cut, v_off)
    assert (g_cut - g_off).abs().max() > 1e-3
    assert 0 < out.stats["sdpo/advantage_clip_frac"] <= 1
    assert "sdpo/advantage_clip_frac" not in sdpo_loss_from_logits(S, Tt, Y, M, LossConfig(adv_clip=0, **kw)).stats


def test_importance_ratio_bruteforce():
    ls = torch.tensor([-1.0, -2.0, -0.5, 30.0, -50.0], requires_grad=True)
    old = torch.tensor([-1.5, -1.0, -0.5, 0.0, 0.0])
    got = importance_ratio(ls, old, 2.0)
    want = [min(math.exp(a - b), 2.0) for a, b in zip([-1.0, -2.0, -0.5, 20.0, -20.0], old.tolist(), strict=True)]
    torch.testing.assert_close(got, torch.tensor(want))
    assert not got.requires_grad
    assert torch.equal(importance_ratio(ls, old, 0), torch.ones(5)) and torch.equal(importance_ratio(ls, old, None), torch.ones(5))


@pytest.mark.parametrize(
    "kw",
    [dict(mode="logit", topk=4), dict(mode="full", alpha=0.3), dict(mode="token"), dict(mode="sequence"),
     dict(mode="full", aggregation="attempt-mean", ratio_clip=1.2)],
    ids=str,
)
def test_importance_ratio_weighs_each_token_as_bruteforce(kw):
    """With the sampling student's log-probs (OLD), each token's loss is weighted by min(π_θ(y_t)/π_old(y_t), c),
    detached, loop by loop in float64; old == the current student gives exactly the on-policy loss."""
    cfg = LossConfig(**kw)
    S, Tt, Y, M = make_batch(seed=11)
    OLD = S + 0.7 * rand_logits(*S.shape, seed=12)
    old_y = torch.log_softmax(OLD, -1).gather(-1, Y[..., None]).squeeze(-1)
    rv, rg = grad_of(lambda x: bf_loss(x, Tt, Y, M, cfg, OLD=OLD), S)
    iv, ig = grad_of(lambda x: sdpo_loss_from_logits(x, Tt, Y, M, cfg, old_logp=old_y).loss, S)
    torch.testing.assert_close(iv, rv, atol=1e-10, rtol=1e-9)
    torch.testing.assert_close(ig, rg, atol=1e-10, rtol=1e-9)
    on_v, on_g = grad_of(lambda x: sdpo_loss_from_logits(x, Tt, Y, M, cfg).loss, S)
    assert (ig - on_g).abs().max() > 1e-6  # the ratio matters off-policy ...
    out = sdpo_loss_from_logits(S, Tt, Y, M, cfg)
    same_v, same_g = grad_of(lambda x: sdpo_loss_from_logits(x, Tt, Y, M, cfg, old_logp=out.student_logp).loss, S)
    assert torch.equal(same_v, on_v) and torch.equal(same_g, on_g)  # ... and is exactly 1 on-policy
