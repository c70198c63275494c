"""Randomly initialised models built from a config: true model shapes without downloading any weights.

The fast tests build a tiny Qwen2 in seconds; benchmarks/gpu_acceptance.sh builds 1.5B-8B shapes on a machine
that cannot receive a checkpoint. Two ways to get one:
- `write_random_model`: an ordinary Hugging Face folder (config, weights, tokenizer), so everything downstream
  (`--model FOLDER`, Policy.load, LoRA, sampling, the loss) runs unchanged;
- `random_policy`: the model built directly on the policy's device in its dtype and wrapped by Policy.from_base,
  with nothing written (an 8B shape is 16 GB of bf16 weights: seconds to initialise on a GPU, minutes to save
  and load back).
Shapes ship as small JSON files in `shapes/` (`shape_names()`: tiny-qwen2, qwen2.5-coder-1.5b, qwen2.5-coder-7b,
qwen3-8b, with the architecture fields of the published config.json); any config.json path works too.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from sdpo_ttt.config.policy import PolicyConfig
    from sdpo_ttt.policy.model import Policy

SHAPES_DIR = Path(__file__).with_name("shapes")


def shape_names() -> list[str]:
    return sorted(p.stem for p in SHAPES_DIR.glob("*.json"))


def shape_config(name_or_path: str | Path) -> dict[str, Any]:
    """A shipped shape by name (see `shape_names()`) or a config.json path, as a dict without `_comment` keys."""
    path = SHAPES_DIR / f"{name_or_path}.json" if str(name_or_path) in shape_names() else Path(name_or_path)
    if not path.is_file():
        raise FileNotFoundError(f"{name_or_path}: no such model shape (shipped: {', '.join(shape_names())}; or a config.json path)")
    return {k: v for k, v in json.loads(path.read_text(encoding="utf-8")).items() if not k.startswith("_")}


def build_random_model(config: dict[str, Any], tokenizer_dir: str | Path, *, device: "torch.device | str" = "cpu",
                       dtype: "torch.dtype | None" = None, seed: int = 0) -> tuple[Any, Any]:
    """(tokenizer, model): a random-initialised model of `config`, allocated directly on `device` in `dtype`.

    The vocabulary is widened to the tokenizer's size when the config's is smaller.
    """
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tokenizer_dir), local_files_only=True)
    values = dict(config)
    model_type = values.pop("model_type")
    values["vocab_size"] = max(int(values.get("vocab_size", 0)), len(tok))
    cfg = AutoConfig.for_model(model_type, **values)
    device = torch.device(device)
    cuda = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda), torch.device(device):
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(cfg, dtype=dtype or torch.float32, attn_implementation="sdpa")
    return tok, model


def write_random_model(config: dict[str, Any], tokenizer_dir: str | Path, out_dir: str | Path, *, seed: int = 0) -> Path:
    """Write a random-initialised float32 model of `config` with the tokenizer of `tokenizer_dir` to `out_dir`.

    Written to a temporary sibling folder and renamed, so a killed build never leaves a half-written model behind.
    """
    out = Path(out_dir)
    tok, model = build_random_model(config, tokenizer_dir, seed=seed)
    tmp = out.with_name(out.name + f".tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    if out.exists():
        shutil.rmtree(out)
    os.replace(tmp, out)
    return out


def random_policy(cfg: "PolicyConfig", shape: str | Path, tokenizer_dir: str | Path, *, seed: int = 0) -> "Policy":
    """A Policy (LoRA student + teacher, as Policy.load gives) over a random model of `shape`, built on cfg's device.

    `cfg.model` is not read. The hf backend only: vLLM loads weights from a folder (use write_random_model).
    """
    import time

    from sdpo_ttt.errors import ModelUnavailable
    from sdpo_ttt.policy.device import resolve_device, resolve_dtype
    from sdpo_ttt.policy.model import Policy

    if cfg.backend != "hf":
        raise ModelUnavailable("a random in-memory model has no folder for vLLM to serve", "use --backend hf, or write_random_model")
    device = resolve_device(cfg.device)
    dtype = resolve_dtype(cfg.dtype, device)
    t0 = time.perf_counter()
    tok, base = build_random_model(shape_config(shape), tokenizer_dir, device=device, dtype=dtype, seed=seed)
    label = "random " + (str(shape) if str(shape) in shape_names() else Path(shape).stem)
    return Policy.from_base(cfg, tok, base, device=device, dtype=dtype, label=label, path=f"<{label}: in memory>", seed=seed, t0=t0)


def smoke_model(target: str | Path) -> Path:
    """The benchmarks' `--smoke` model: a tiny random-initialised Qwen2 with wide weights (initializer_range 0.2, so its
    samples are not uniform noise) and the small built-in model's tokenizer, written to `target` once and reused."""
    from sdpo_ttt.errors import UserError
    from sdpo_ttt.policy.catalog import model_dir

    target = Path(target)
    if not (target / "config.json").is_file():
        tokenizer = model_dir("smollm2-135m")
        if not (tokenizer / "tokenizer.json").is_file():
            raise UserError(f"--smoke needs the small model's tokenizer at {tokenizer}", "run `bash scripts/setup.sh`")
        write_random_model({**shape_config("tiny-qwen2"), "initializer_range": 0.2}, tokenizer, target)
    return target
