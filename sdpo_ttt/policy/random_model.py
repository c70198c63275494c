"""Randomly initialised models built from a config: true model shapes without downloading any weights.

The fast tests build a tiny Qwen2 in seconds; benchmarks/gpu_acceptance.sh builds 1.5B-8B shapes on a machine
that cannot receive a checkpoint. The result is an ordinary Hugging Face folder (config, weights, tokenizer),
so everything downstream (`--model FOLDER`, Policy.load, LoRA, sampling, the loss) runs unchanged.
Shapes ship as small JSON files in `shapes/` (`tiny-qwen2`, ...); any config.json path works too.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

SHAPES_DIR = Path(__file__).with_name("shapes")


def shape_names() -> list[str]:
    return sorted(p.stem for p in SHAPES_DIR.glob("*.json"))


def shape_config(name_or_path: str | Path) -> dict[str, Any]:
    """A shipped shape by name (see `shape_names()`) or a config.json path, as a dict without `_comment` keys."""
    path = Path(name_or_path)
    if not path.suffix:
        path = SHAPES_DIR / f"{name_or_path}.json"
    if not path.is_file():
        raise FileNotFoundError(f"{name_or_path}: no such model shape (shipped: {', '.join(shape_names())}; or a config.json path)")
    return {k: v for k, v in json.loads(path.read_text(encoding="utf-8")).items() if not k.startswith("_")}


def write_random_model(config: dict[str, Any], tokenizer_dir: str | Path, out_dir: str | Path, *, seed: int = 0) -> Path:
    """Write a random-initialised float32 model of `config` with the tokenizer of `tokenizer_dir` to `out_dir`.

    The vocabulary is widened to the tokenizer's size when the config's is smaller. Written to a temporary
    sibling folder and renamed, so a killed build never leaves a half-written model behind.
    """
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    out = Path(out_dir)
    tok = AutoTokenizer.from_pretrained(str(tokenizer_dir), local_files_only=True)
    values = dict(config)
    model_type = values.pop("model_type")
    values["vocab_size"] = max(int(values.get("vocab_size", 0)), len(tok))
    cfg = AutoConfig.for_model(model_type, **values)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32)
    tmp = out.with_name(out.name + f".tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    if out.exists():
        shutil.rmtree(out)
    os.replace(tmp, out)
    return out
