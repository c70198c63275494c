"""The chunked driver (sdpo_ttt/sdpo/chunked.py) equals the naive, fully materialized loss: values, stats, grads."""

from __future__ import annotations

import pytest
import torch

from sdpo_ttt.sdpo.chunked import naive_sdpo_loss, sdpo_loss
from sdpo_ttt.config.sdpo import LossConfig


def make(B=3, T=7, H=8, V=29, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    s = torch.randn(B, T, H, generator=g, dtype=dtype)
    tch = s + 0.5 * torch.randn(B, T, H, generator=g, dtype=dtype)  # a teacher near the student
    ref = s + 0.3 * torch.randn(B, T, H, generator=g, dtype=dtype)
    tref = tch + 0.3 * torch.randn(B, T, H, generator=g, dtype=dtype)
    w = torch.randn(V, H, generator=g, dtype=dtype)
    y = torch.randint(0, V, (B, T), generator=g)
    mask = torch.zeros(B, T, dtype=torch.bool)
    mask[0, :] = True
    mask[1, 2:5] = True  # padded on both sides
    mask[2, 4:] = True  # left-padded
    y[~mask] = -100  # ignore-index padding must not be read
    return s, tch, ref, tref, w, y, mask


def run(fn, cfg, s, tch, w, y, mask, **kw):
    s = s.detach().clone().requires_grad_(True)
    w = w.detach().clone().requires_grad_(True)
    out = fn(s, tch, w, y, mask, cfg, **kw)
    gs, gw = torch.autograd.grad(out.loss, (s, w))
    return out, gs, gw


CFGS = [
    dict(mode="logit", alpha=1.0, topk=5),
    dict(mode="logit", alpha=0.3, topk=5),
    dict(mode="logit", alpha=0.0, topk=5),
    dict(mode="full", alpha=1.0),
    dict(mode="full", alpha=0.3),
    dict(mode="token", adv_clip=0.5),
    dict(mode="sequence"),
    dict(mode="full", alpha=1.0, grpo_weight=0.3, kl_weight=0.1, temperature=0.8),
    dict(mode="logit", alpha=1.0, topk=4, teacher_rate=0.2),
]


@pytest.mark.parametrize("kw", CFGS, ids=str)
@pytest.mark.parametrize("chunk", [1, 3, 5, 1000])
def test_chunked_equals_naive(kw, chunk):
    cfg = LossConfig(chunk_tokens=chunk, **kw)
    s, tch, ref, tref, w, y, mask = make()
    extra = {}
    if cfg.kl_weight:
        extra["ref_hidden"] = ref
    if "teacher_rate" in kw:
        extra["teacher_ref_hidden"] = tref
    if cfg.grpo_weight:
        extra["rewards"] = torch.tensor([0.0, 0.25, 1.0], dtype=torch.float64)
    o_c, gs_c, gw_c = run(sdpo_loss, cfg, s, tch, w, y, mask, **extra)
    o_n, gs_n, gw_n = run(naive_sdpo_loss, cfg, s, tch, w, y, mask, **extra)
    tol = dict(rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(o_c.loss, o_n.loss, **tol)
    torch.testing.assert_close(gs_c, gs_n, **tol)
    torch.testing.assert_close(gw_c, gw_n, **tol)
    torch.testing.assert_close(o_c.per_attempt_gap, o_n.per_attempt_gap, **tol)
    assert o_c.stats.keys() == o_n.stats.keys()
    for k in o_c.stats:
        assert o_c.stats[k] == pytest.approx(o_n.stats[k], rel=1e-9, abs=1e-12), k
    assert torch.count_nonzero(gs_c[~mask]) == 0
    assert o_c.stats["sdpo/tokens"] == float(mask.sum())


def test_float32_and_precomputed_advantages():
    s, tch, ref, _, w, y, mask = (x.float() if x.is_floating_point() else x for x in make(seed=1))
    cfg = LossConfig(mode="logit", topk=20, chunk_tokens=4, grpo_weight=0.5)
    adv = torch.tensor([1.0, -0.5, -0.5])
    o_c, gs_c, _ = run(sdpo_loss, cfg, s, tch, w, y, mask, advantages=adv)
    o_n, gs_n, _ = run(naive_sdpo_loss, cfg, s, tch, w, y, mask, advantages=adv)
    torch.testing.assert_close(o_c.loss, o_n.loss)
    torch.testing.assert_close(gs_c, gs_n)
    assert o_c.stats["grpo/advantage_mean"] == pytest.approx(0.0, abs=1e-6)


def test_teacher_and_reference_get_no_gradient():
    s, tch, ref, _, w, y, mask = make()
    tch = tch.clone().requires_grad_(True)
    ref = ref.clone().requires_grad_(True)
    s = s.clone().requires_grad_(True)
    out = sdpo_loss(s, tch, w, y, mask, LossConfig(mode="full", kl_weight=0.5, chunk_tokens=2), ref_hidden=ref)
    out.loss.backward()
    assert tch.grad is None and ref.grad is None and s.grad is not None


@pytest.mark.parametrize("mode", ["logit", "full", "token", "sequence"])
def test_all_masked_batch_backward_gives_zero(mode):
    s, tch, _, _, w, y, _ = make()
    mask = torch.zeros(3, 7, dtype=torch.bool)
    s = s.clone().requires_grad_(True)
    out = sdpo_loss(s, tch, w, y, mask, LossConfig(mode=mode, topk=5))
    out.loss.backward()  # still connected to the graph
    assert out.loss.item() == 0.0 and torch.count_nonzero(s.grad) == 0
    assert out.stats["sdpo/empty_targets"] == 3.0


@pytest.mark.parametrize("mode", ["logit", "full", "token", "sequence"])
def test_identical_teacher_exact_zero(mode):
    s, _, _, _, w, y, mask = make(dtype=torch.float32)
    s = s.requires_grad_(True)
    out = sdpo_loss(s, s.detach().clone(), w, y, mask, LossConfig(mode=mode, topk=5, chunk_tokens=3))
    (g,) = torch.autograd.grad(out.loss, s)
    assert out.loss.item() == 0.0 and torch.count_nonzero(g) == 0


def test_no_grad_evaluation():
    s, tch, _, _, w, y, mask = make()
    with torch.no_grad():
        a = sdpo_loss(s, tch, w, y, mask, LossConfig(chunk_tokens=2)).loss
        b = naive_sdpo_loss(s, tch, w, y, mask, LossConfig()).loss
    torch.testing.assert_close(a, b)


def test_bf16_hidden_states_run():
    s, tch, _, _, w, y, mask = make(dtype=torch.float32)
    s, tch, w = s.bfloat16().requires_grad_(True), tch.bfloat16(), w.bfloat16()
    out = sdpo_loss(s, tch, w, y, mask, LossConfig(chunk_tokens=4))
    out.loss.backward()
    assert torch.isfinite(out.loss) and out.loss.dtype == torch.float32 and torch.isfinite(s.grad.float()).all()


def _largest_saved_tensor(fn, *args, **kw) -> int:
    """numel of the largest NEW tensor autograd keeps for the backward while fn runs (the lm_head weight,
    which exists anyway, is not counted)."""
    sizes = [0]
    w_ptr = args[2].data_ptr()

    def pack(x):
        if x.data_ptr() != w_ptr:
            sizes.append(x.numel())
        return x

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda x: x):
        fn(*args, **kw)
    return max(sizes)


@pytest.mark.parametrize("mode", ["logit", "full"])
def test_chunked_keeps_no_vocab_sized_tensor_for_backward(mode):
    s, tch, _, _, w, y, mask = make(B=3, T=16, H=8, V=301)
    s = s.requires_grad_(True)
    cfg = LossConfig(mode=mode, topk=5, chunk_tokens=4)
    V = w.shape[0]
    # chunked: nothing with a vocabulary axis survives to the backward, not even one chunk's [4, V] logits
    assert _largest_saved_tensor(sdpo_loss, s, tch, w, y, mask, cfg) < cfg.chunk_tokens * V
    # naive: the whole [B*T, V] logits are kept
    assert _largest_saved_tensor(naive_sdpo_loss, s, tch, w, y, mask, cfg) >= 3 * 16 * V


@pytest.mark.parametrize("mode", ["logit", "full", "token"])
def test_bf16_hidden_states_give_float32_logits(mode):
    """bf16 hidden states and lm_head (the GPU case): each chunk's logits are formed in float32, so the loss
    equals the float64 loss of the same bf16 values. bf16 logits (rounded to ~3 digits) miss it by far."""
    g = torch.Generator().manual_seed(0)
    B, T, H, V = 2, 6, 64, 700
    s = torch.randn(B, T, H, generator=g).bfloat16()
    tch = (s.float() + 0.05 * torch.randn(B, T, H, generator=g)).bfloat16()  # a teacher close to the student
    w = (2.0 * torch.randn(V, H, generator=g)).bfloat16()  # logits of size ~16, where bf16 rounding is ~0.06
    y = torch.randint(0, V, (B, T), generator=g)
    mask = torch.ones(B, T, dtype=torch.bool)
    cfg = LossConfig(mode=mode, topk=8, chunk_tokens=5)
    exact = naive_sdpo_loss(s.double(), tch.double(), w.double(), y, mask, LossConfig(mode=mode, topk=8))
    sb = s.clone().requires_grad_(True)
    out = sdpo_loss(sb, tch, w, y, mask, cfg)
    out.loss.backward()
    assert out.loss.dtype == torch.float32 and sb.grad.dtype == torch.bfloat16
    gap = "sdpo/teacher_student_logprob_gap"
    assert abs(out.loss.item() - exact.loss.item()) <= 1e-3 * abs(exact.loss.item()) + 1e-6
    assert abs(out.stats[gap] - exact.stats[gap]) <= 1e-3 * abs(exact.stats[gap]) + 1e-5
    # the float64 gradient of the same bf16 values, rounded to bf16 at the end only
    sd = s.double().requires_grad_(True)
    naive_sdpo_loss(sd, tch.double(), w.double(), y, mask, LossConfig(mode=mode, topk=8)).loss.backward()
    torch.testing.assert_close(sb.grad.double(), sd.grad, rtol=2e-2, atol=1e-4)


def test_float32_logits_grad_of_the_lm_head():
    """The upcast matmul's backward to W (when the lm_head is trained) matches float64 autograd."""
    from sdpo_ttt.sdpo.chunked import _Float32Logits

    g = torch.Generator().manual_seed(1)
    h = torch.randn(5, 16, generator=g).bfloat16().requires_grad_(True)
    w = torch.randn(40, 16, generator=g).bfloat16().requires_grad_(True)
    up = torch.randn(5, 40, generator=g)
    out = _Float32Logits.apply(h, w, 7)  # slices of 7 rows: 40 is not a multiple
    (out * up).sum().backward()
    hd, wd = h.detach().double().requires_grad_(True), w.detach().double().requires_grad_(True)
    ref = hd @ wd.T
    (ref * up.double()).sum().backward()
    torch.testing.assert_close(out.double(), ref.detach(), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(h.grad.double(), hd.grad, rtol=1e-2, atol=1e-2)
    torch.testing.assert_close(w.grad.double(), wd.grad, rtol=1e-2, atol=1e-2)


@pytest.mark.parametrize("mode", ["logit", "full"])
def test_float32_logits_of_bf16_keep_no_vocab_sized_tensor_for_backward(mode):
    """The float32 upcast of bf16 logits stays memory-bounded: nothing with a vocabulary axis (not a float32
    copy of the lm_head either) is kept for the backward."""
    s, tch, _, _, w, y, mask = make(B=3, T=16, H=8, V=301, dtype=torch.float32)
    s, tch, w = s.bfloat16().requires_grad_(True), tch.bfloat16(), w.bfloat16()
    cfg = LossConfig(mode=mode, topk=5, chunk_tokens=4)
    assert _largest_saved_tensor(sdpo_loss, s, tch, w, y, mask, cfg) < cfg.chunk_tokens * w.shape[0]


@pytest.mark.parametrize("kw", CFGS, ids=str)
@pytest.mark.parametrize("chunk", [1, 5, 1000])
def test_frozen_lm_head_equals_naive(kw, chunk):
    """The training case (lm_head frozen, `_ChunkTerms`: each term's gradient formed in the forward) against the naive
    loss's autograd, in float64."""
    cfg = LossConfig(chunk_tokens=chunk, **kw)
    s, tch, ref, tref, w, y, mask = make()
    extra = {"ref_hidden": ref} if cfg.kl_weight else {}
    if "teacher_rate" in kw:
        extra["teacher_ref_hidden"] = tref
    if cfg.grpo_weight:
        extra["rewards"] = torch.tensor([0.0, 0.25, 1.0], dtype=torch.float64)
    outs = []
    for fn in (sdpo_loss, naive_sdpo_loss):
        sg = s.detach().clone().requires_grad_(True)
        out = fn(sg, tch, w, y, mask, cfg, **extra)
        outs.append((out, torch.autograd.grad(out.loss, sg)[0]))
    (o_c, g_c), (o_n, g_n) = outs
    torch.testing.assert_close(o_c.loss, o_n.loss, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(g_c, g_n, rtol=1e-9, atol=1e-12)
    assert o_c.stats == pytest.approx(o_n.stats, rel=1e-9, abs=1e-12)


def test_frozen_lm_head_float32_matches_the_checkpointed_chunk():
    """float32 at a vocabulary where the top-K gradient is sparse (rows of W gathered): the gradient the checkpointed
    chunk (the previous path, taken with a trained lm_head) gives, up to float32 rounding."""
    g = torch.Generator().manual_seed(3)
    B, T, H, V = 2, 9, 32, 3000
    s = torch.randn(B, T, H, generator=g)
    tch = s + 0.2 * torch.randn(B, T, H, generator=g)
    w = torch.randn(V, H, generator=g) / 2
    y = torch.randint(0, V, (B, T), generator=g)
    mask = torch.ones(B, T, dtype=torch.bool)
    mask[1, 6:] = False
    for kw in (dict(mode="logit", topk=20), dict(mode="full", grpo_weight=0.2), dict(mode="token")):
        cfg = LossConfig(chunk_tokens=4, **kw)
        rewards = {"rewards": torch.tensor([0.0, 1.0])} if cfg.grpo_weight else {}
        o_old, g_old, _ = run(sdpo_loss, cfg, s, tch, w, y, mask, **rewards)  # `run` trains W: the checkpointed path
        sg = s.detach().clone().requires_grad_(True)
        o_new = sdpo_loss(sg, tch, w, y, mask, cfg, **rewards)
        (g_new,) = torch.autograd.grad(o_new.loss, sg)
        torch.testing.assert_close(o_new.loss, o_old.loss, rtol=1e-6, atol=1e-7)
        torch.testing.assert_close(g_new, g_old, rtol=1e-4, atol=1e-7)


def test_frozen_lm_head_forms_three_vocabulary_products_a_chunk():
    """Student logits, teacher logits and π_s @ W: no logits recomputed in the backward (it formed five before)."""
    from torch.utils._python_dispatch import TorchDispatchMode

    V = 301

    class CountVocabProducts(TorchDispatchMode):
        n = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            if func in (torch.ops.aten.mm.default, torch.ops.aten.addmm.default) and V in (*args[-2].shape, *args[-1].shape):
                CountVocabProducts.n += 1
            return func(*args, **(kwargs or {}))

    s, tch, _, _, w, y, mask = make(B=3, T=8, H=8, V=V, dtype=torch.float32)
    s, tch, y, mask = s[:1].clone().requires_grad_(True), tch[:1], y[:1], mask[:1]  # 8 tokens: one chunk
    with CountVocabProducts():
        sdpo_loss(s, tch, w, y, mask, LossConfig(mode="logit", topk=5, chunk_tokens=8)).loss.backward()
    assert CountVocabProducts.n == 3


def test_times_w_gathers_sparse_rows_and_multiplies_dense_ones():
    from sdpo_ttt.sdpo.chunked import SPARSE_ROWS, _times_w

    g = torch.Generator().manual_seed(4)
    w = torch.randn(2000, 16, generator=g)
    sparse = torch.zeros(3, 2000)
    sparse[0, 5], sparse[2, [7, 1999]] = 0.5, torch.tensor([-1.0, 2.0])
    dense = torch.randn(3, 2000, generator=g)
    assert SPARSE_ROWS * 3 < dense.numel()
    for x in (sparse, dense):
        torch.testing.assert_close(_times_w(x, w), x @ w, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(_times_w(x, w.bfloat16()), x @ w.bfloat16().float(), rtol=1e-5, atol=1e-5)


def test_a_gradient_into_a_term_without_its_jacobian_is_an_error():
    from sdpo_ttt.sdpo.chunked import _chunk_terms_from_jacobians, differentiated_terms

    cfg = LossConfig(mode="logit", topk=5)
    assert differentiated_terms(cfg) == ("divergence",)
    assert differentiated_terms(LossConfig(mode="token", grpo_weight=0.5, kl_weight=0.1)) == ("student_logp", "kl_ref")
    s, tch, _, _, w, y, mask = make()
    h = s[0].clone().requires_grad_(True)
    terms = _chunk_terms_from_jacobians(cfg, w, h, tch[0], y[0].clamp(min=0), None, None)
    with pytest.raises(RuntimeError, match="differentiated_terms"):
        terms["student_logp"].sum().backward()


def _live_tensors() -> int:
    import gc

    gc.collect()
    return sum(1 for o in gc.get_objects() if torch.is_tensor(o))


@pytest.mark.parametrize("kw", [dict(mode="logit", alpha=1.0, topk=5), dict(mode="full", alpha=0.3)], ids=str)
def test_frozen_lm_head_steps_leave_no_tensor_behind(kw):
    """The local graph _ChunkTerms builds in its forward is freed when the step ends. Its saved-tensor hooks once
    returned each saved tensor itself, which ties a node's saved output back to that node in a cycle Python's gc
    cannot see: every step kept its [n, V] tensors alive (2026-12-08: ~2 GB a cell of 8 updates with the 0.5B)."""
    cfg = LossConfig(chunk_tokens=3, **kw)
    s, tch, _, _, w, y, mask = make(dtype=torch.float32)

    def step() -> None:
        h = s.detach().clone().requires_grad_(True)
        sdpo_loss(h, tch, w, y, mask, cfg).loss.backward()

    step()
    before = _live_tensors()
    for _ in range(3):
        step()
    assert _live_tensors() <= before
