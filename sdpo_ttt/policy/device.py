"""Device and dtype choice: auto = bf16 on a GPU, fp32 on CPU (bf16 matmuls are slower than fp32 on CPU)."""

from __future__ import annotations

import torch

from sdpo_ttt.errors import ModelUnavailable

_DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
}


def resolve_device(spec: str = "auto") -> torch.device:
    """auto -> cuda if available, else cpu. Asking for cuda on a machine without one is a clear error."""
    spec = (spec or "auto").lower()
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(spec)
    except RuntimeError:
        raise ModelUnavailable(f"unknown device {spec!r}", "use auto, cpu, cuda or cuda:N") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ModelUnavailable(
                f"device {spec!r} was asked for but no CUDA GPU is available (torch {torch.__version__})",
                "run with --device cpu (or auto), or install a CUDA build of torch on a GPU machine",
            )
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ModelUnavailable(f"device {spec!r}: only {torch.cuda.device_count()} GPU(s) visible", "pick a lower index")
    elif dev.type != "cpu":
        raise ModelUnavailable(f"device type {dev.type!r} is not supported", "use auto, cpu or cuda")
    return dev


def resolve_dtype(spec: str, device: torch.device) -> torch.dtype:
    spec = (spec or "auto").lower()
    if spec == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    try:
        return _DTYPES[spec]
    except KeyError:
        raise ModelUnavailable(f"unknown dtype {spec!r}", "use auto, float32, bfloat16 or float16") from None


def rng_devices(device: torch.device) -> list[int]:
    """CUDA device indices whose RNG state fork_rng must save and restore."""
    if device.type != "cuda":
        return []
    return [device.index if device.index is not None else torch.cuda.current_device()]
