"""LoRA adapters in one peft model: the trainable student, the EMA teacher, save/load, EMA on effective updates.

Both adapters live in the same peft model (one copy of the base weights). A LoRA layer adds
ΔW = s · B @ A (s = alpha / r). The teacher must follow the EMA of the student's *effective* update,

    ΔW_T ← (1 − ρ) ΔW_T + ρ ΔW_S,

which is not what averaging A and B separately gives (B·A is bilinear). The EMA of rank-r updates
has rank up to r_T + r, so the teacher keeps rank r_T (default 2r) and after each EMA step is
re-factored from the stacked factors with two thin QRs and one small SVD:

    ΔW' = [(1−ρ) s_T B_T, ρ s_S B_S] @ [A_T; A_S] = Qb Rb (Qa Ra)^T,   Rb Ra^T = U Σ V^T
    ΔW' ≈ (Qb U_k) Σ_k (Qa V_k)^T,   k = r_T

This is exact when rank(ΔW') ≤ r_T (always true for the first EMA step after a sync) and otherwise the
best rank-r_T approximation (Eckart-Young); the discarded relative Frobenius mass is returned so the
caller can log it. Cost: O((out + in) · (r_T + r)^2) per layer, no dense out×in matrix.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

ADAPTER_WEIGHTS = "adapter_model.safetensors"
ADAPTER_CONFIG = "adapter_config.json"


@dataclass
class LoraFactors:
    """One adapter's factors in one layer: ΔW = scaling * B @ A, A: [r, in], B: [out, r]."""

    A: Tensor
    B: Tensor
    scaling: float


def lora_layers(model: torch.nn.Module) -> list[tuple[str, torch.nn.Module]]:
    """Every peft LoRA layer (modules with lora_A / lora_B ModuleDicts), in a fixed order."""
    return [(n, m) for n, m in model.named_modules() if hasattr(m, "lora_A") and isinstance(m.lora_A, torch.nn.ModuleDict)]


def get_factors(layer: torch.nn.Module, adapter: str) -> LoraFactors:
    return LoraFactors(layer.lora_A[adapter].weight, layer.lora_B[adapter].weight, float(layer.scaling[adapter]))


def dense_update(f: LoraFactors) -> Tensor:
    """ΔW = s · B @ A in float64 (reference computations and tests)."""
    return f.scaling * (f.B.detach().double() @ f.A.detach().double())


def ema_refactor(teacher: LoraFactors, student: LoraFactors, rate: float, rank: int) -> tuple[Tensor, Tensor, float]:
    """Factors (A', B') of rank `rank` (scaling teacher.scaling) with s_T B' A' = best rank-k of (1−ρ)ΔW_T + ρΔW_S.

    Returns (A', B', discarded) where discarded = ||tail singular values|| / ||all|| (0.0 when exact).
    Computed in float32 (float64 if the inputs are float64) on the factors' device.
    """
    work = torch.float64 if teacher.A.dtype == torch.float64 else torch.float32
    s_t = teacher.scaling
    left = torch.cat([(1.0 - rate) * s_t * teacher.B.to(work), rate * student.scaling * student.B.to(work)], dim=1)  # [out, rT+r]
    right = torch.cat([teacher.A.to(work), student.A.to(work)], dim=0)  # [rT+r, in]
    qb, rb = torch.linalg.qr(left)  # [out, m], [m, m]
    qa, ra = torch.linalg.qr(right.T)  # [in, m], [m, m]
    u, sig, vh = torch.linalg.svd(rb @ ra.T)
    k = min(rank, sig.numel())
    total = float(torch.linalg.vector_norm(sig))
    discarded = float(torch.linalg.vector_norm(sig[k:])) / total if total > 0 else 0.0
    root = torch.sqrt(sig[:k] / s_t)
    new_b = (qb @ u[:, :k]) * root  # [out, k]
    new_a = root[:, None] * (vh[:k] @ qa.T)  # [k, in]
    if k < rank:  # tiny layers: pad with zeros up to the adapter's rank
        new_b = torch.cat([new_b, new_b.new_zeros(new_b.shape[0], rank - k)], dim=1)
        new_a = torch.cat([new_a, new_a.new_zeros(rank - k, new_a.shape[1])], dim=0)
    return new_a, new_b, discarded


@torch.no_grad()
def copy_into(dst: LoraFactors, src: LoraFactors) -> None:
    """dst := src as an effective update: the first r rows/cols get src (rescaled), the rest zeros."""
    r = src.A.shape[0]
    if r > dst.A.shape[0]:
        raise ValueError(f"cannot copy a rank-{r} adapter into a rank-{dst.A.shape[0]} one")
    dst.A.zero_()
    dst.B.zero_()
    dst.A[:r].copy_(src.A)
    dst.B[:, :r].copy_(src.B * (src.scaling / dst.scaling) if src.scaling != dst.scaling else src.B)


@torch.no_grad()
def sync(model: torch.nn.Module, dst: str, src: str) -> None:
    for _, layer in lora_layers(model):
        copy_into(get_factors(layer, dst), get_factors(layer, src))


@torch.no_grad()
def ema_update(model: torch.nn.Module, teacher: str, student: str, rate: float) -> float:
    """teacher ← EMA of effective updates (see module doc). Returns the largest per-layer discarded fraction."""
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"EMA rate must be in [0, 1], got {rate}")
    worst = 0.0
    for _, layer in lora_layers(model):
        t, s = get_factors(layer, teacher), get_factors(layer, student)
        a, b, disc = ema_refactor(t, s, rate, t.A.shape[0])
        t.A.copy_(a.to(t.A.dtype))
        t.B.copy_(b.to(t.B.dtype))
        worst = max(worst, disc)
    return worst


def adapter_state_dict(model: torch.nn.Module, adapter: str) -> dict[str, Tensor]:
    """The adapter's tensors in peft's on-disk naming (no adapter name in keys), so peft and vLLM can read them."""
    from peft import get_peft_model_state_dict

    return {k: v.detach().contiguous().cpu() for k, v in get_peft_model_state_dict(model, adapter_name=adapter).items()}


def save_adapter(model: torch.nn.Module, adapter: str, directory: Path) -> None:
    """Write adapter_model.safetensors + adapter_config.json (peft format) atomically into directory."""
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / (ADAPTER_WEIGHTS + ".tmp")
    save_file(adapter_state_dict(model, adapter), str(tmp), metadata={"format": "pt", "adapter": adapter})
    tmp.replace(directory / ADAPTER_WEIGHTS)
    cfg = model.peft_config[adapter].to_dict()
    cfg = {k: (sorted(v) if isinstance(v, set) else v) for k, v in cfg.items()}
    tmp_cfg = directory / (ADAPTER_CONFIG + ".tmp")
    tmp_cfg.write_text(json.dumps(cfg, indent=2, default=str) + "\n")
    tmp_cfg.replace(directory / ADAPTER_CONFIG)


@torch.no_grad()
def load_adapter(model: torch.nn.Module, adapter: str, directory: Path) -> None:
    """Copy saved tensors into the existing adapter's parameters (bit-exact; shapes must match)."""
    from safetensors.torch import load_file

    path = Path(directory) / ADAPTER_WEIGHTS
    if not path.is_file():
        from sdpo_ttt.errors import ModelUnavailable

        raise ModelUnavailable(f"{path}: no saved adapter there", "pass a directory written by save_adapter")
    saved = load_file(str(path))
    current = dict(model.named_parameters())
    want = {}
    for key, tensor in saved.items():
        # peft naming: ...q_proj.lora_A.weight  ->  live naming: base_model.model....q_proj.lora_A.<adapter>.weight
        head, _, leaf = key.rpartition(".")
        live = f"{head}.{adapter}.{leaf}"
        if live not in current:
            raise ValueError(f"saved adapter tensor {key} has no counterpart {live} in the model")
        if current[live].shape != tensor.shape:
            raise ValueError(f"{key}: saved shape {tuple(tensor.shape)} != model shape {tuple(current[live].shape)}")
        want[live] = tensor
    expected = {n for n in current if f".{adapter}." in n and ".lora_" in n}
    if set(want) != expected:
        raise ValueError(f"saved adapter covers {len(want)} tensors, the model's {adapter!r} adapter has {len(expected)}")
    for live, tensor in want.items():
        current[live].copy_(tensor.to(current[live].device, current[live].dtype))
