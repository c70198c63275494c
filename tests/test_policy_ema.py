"""EMA of LoRA adapters on the effective update ΔW = s·B·A, against dense float64 references (no model needed)."""

from __future__ import annotations

import torch

from sdpo_ttt.policy.adapters import LoraFactors, copy_into, dense_update, ema_refactor


def _factors(out: int, inp: int, r: int, scaling: float, seed: int, dtype=torch.float64) -> LoraFactors:
    g = torch.Generator().manual_seed(seed)
    return LoraFactors(torch.randn(r, inp, generator=g, dtype=dtype), torch.randn(out, r, generator=g, dtype=dtype), scaling)


def _best_rank_k(m: torch.Tensor, k: int) -> torch.Tensor:
    u, s, vh = torch.linalg.svd(m, full_matrices=False)
    return (u[:, :k] * s[:k]) @ vh[:k]


def test_ema_is_exact_when_the_rank_fits() -> None:
    # teacher rank 2r holding a rank-r update (right after a sync): one EMA step is exact
    r, rt = 4, 8
    s = _factors(48, 40, r, 2.0, 0)
    t = LoraFactors(torch.zeros(rt, 40, dtype=torch.float64), torch.zeros(48, rt, dtype=torch.float64), 2.0)
    copy_into(t, _factors(48, 40, r, 2.0, 1))
    ref = 0.99 * dense_update(t) + 0.01 * dense_update(s)
    a, b, disc = ema_refactor(t, s, 0.01, rt)
    got = dense_update(LoraFactors(a, b, t.scaling))
    assert a.shape == (rt, 40) and b.shape == (48, rt)
    assert disc < 1e-12
    torch.testing.assert_close(got, ref, rtol=1e-10, atol=1e-12)


def test_ema_is_not_averaging_factors_separately() -> None:
    r = 4
    t, s = _factors(20, 16, r, 1.0, 2), _factors(20, 16, r, 1.0, 3)
    naive = dense_update(LoraFactors(0.5 * t.A + 0.5 * s.A, 0.5 * t.B + 0.5 * s.B, 1.0))
    ref = 0.5 * dense_update(t) + 0.5 * dense_update(s)
    a, b, _ = ema_refactor(t, s, 0.5, 2 * r)
    torch.testing.assert_close(dense_update(LoraFactors(a, b, 1.0)), ref, rtol=1e-10, atol=1e-12)
    assert (naive - ref).abs().max() > 1e-2  # the naive factor average is a different matrix


def test_ema_truncates_to_the_best_rank_k_approximation() -> None:
    rt, r = 6, 4
    t, s = _factors(30, 25, rt, 0.5, 4), _factors(30, 25, r, 2.0, 5)  # rank 10 > 6: must truncate
    ref = 0.7 * dense_update(t) + 0.3 * dense_update(s)
    a, b, disc = ema_refactor(t, s, 0.3, rt)
    got = dense_update(LoraFactors(a, b, t.scaling))
    torch.testing.assert_close(got, _best_rank_k(ref, rt), rtol=1e-9, atol=1e-10)
    sv = torch.linalg.svdvals(ref)
    assert abs(disc - float(sv[rt:].norm() / sv.norm())) < 1e-9


def test_repeated_ema_tracks_the_dense_reference() -> None:
    # student moves in a 4-dim subspace of updates; the rank-2r teacher follows the dense EMA closely
    r, rt, rate = 4, 8, 0.1
    base = _factors(64, 48, r, 2.0, 6)
    t = LoraFactors(torch.zeros(rt, 48, dtype=torch.float64), torch.zeros(64, rt, dtype=torch.float64), 2.0)
    copy_into(t, base)
    dense = dense_update(base)
    g = torch.Generator().manual_seed(7)
    for _ in range(20):
        s = LoraFactors(base.A + 0.05 * torch.randn(r, 48, generator=g, dtype=torch.float64),
                        base.B + 0.05 * torch.randn(64, r, generator=g, dtype=torch.float64), 2.0)
        a, b, _ = ema_refactor(t, s, rate, rt)
        t = LoraFactors(a, b, 2.0)
        dense = (1 - rate) * dense + rate * dense_update(s)
    err = (dense_update(t) - dense).norm() / dense.norm()
    assert err < 1e-2, err


def test_ema_in_float32_matches_float64() -> None:
    t, s = _factors(40, 32, 8, 2.0, 8), _factors(40, 32, 4, 2.0, 9)
    a64, b64, _ = ema_refactor(t, s, 0.01, 8)
    t32 = LoraFactors(t.A.float(), t.B.float(), t.scaling)
    s32 = LoraFactors(s.A.float(), s.B.float(), s.scaling)
    a32, b32, _ = ema_refactor(t32, s32, 0.01, 8)
    ref = dense_update(LoraFactors(a64, b64, 2.0))
    got = dense_update(LoraFactors(a32, b32, 2.0))
    assert ((got - ref).norm() / ref.norm()) < 1e-5


def test_rate_zero_and_one() -> None:
    t, s = _factors(20, 16, 8, 1.0, 10), _factors(20, 16, 4, 1.0, 11)
    a, b, _ = ema_refactor(t, s, 0.0, 8)
    torch.testing.assert_close(dense_update(LoraFactors(a, b, 1.0)), dense_update(t), rtol=1e-10, atol=1e-12)
    a, b, _ = ema_refactor(t, s, 1.0, 8)
    torch.testing.assert_close(dense_update(LoraFactors(a, b, 1.0)), dense_update(s), rtol=1e-10, atol=1e-12)


def test_copy_into_pads_and_rescales() -> None:
    s = _factors(12, 10, 3, 4.0, 12)
    t = LoraFactors(torch.ones(6, 10, dtype=torch.float64), torch.ones(12, 6, dtype=torch.float64), 2.0)
    copy_into(t, s)
    torch.testing.assert_close(dense_update(t), dense_update(s))
    assert t.A[3:].abs().sum() == 0 and t.B[:, 3:].abs().sum() == 0
