"""The configuration of one run (`solve` and every strategy): one typed model, every field with its help.

Values come from defaults < a config file (TOML or YAML, `--config`) < options given on the command line.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from sdpo_ttt.errors import ConfigError

DEFAULT_MODEL = "qwen2.5-coder-0.5b"
DEFAULT_LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


class SolveConfig(BaseModel):
    """Everything that decides what a run does. Field descriptions double as `--help` text."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    # --- the search
    strategy: Literal["sdpo", "best-of-k", "multi-turn"] = Field("sdpo", description="sdpo: learn from feedback with LoRA; best-of-k: i.i.d. samples from the base model; multi-turn: each chain re-prompted with its own earlier feedback.")
    budget: int = Field(256, ge=1, description="Total number of attempts (every sampled attempt counts).")
    batch_size: int | None = Field(None, ge=1, description="Attempts per step, B (default: 8 on CPU, 16 on GPU).")
    seed: int = Field(0, description="Seed of sampling and initialisation; a run is deterministic for a seed on CPU.")
    stop_on_success: bool = Field(True, description="Stop at the first attempt that passes every test.")

    # --- sampling
    temperature: float = Field(1.0, gt=0, description="Sampling temperature (paper: 1.0).")
    top_p: float = Field(1.0, gt=0, le=1, description="Nucleus sampling mass.")
    max_new_tokens: int = Field(512, ge=8, description="Longest attempt, in tokens.")
    max_prompt_tokens: int = Field(4096, ge=128, description="Longest prompt (multi-turn drops the oldest feedback first to fit; teacher feedback is cut to fit).")

    # --- model
    model: str = Field(DEFAULT_MODEL, description="Built-in name (see `sdpo-ttt models`), Hugging Face id, local folder or .gguf file.")
    device: str = Field("auto", description="auto, cpu, cuda or cuda:N.")
    dtype: str = Field("auto", description="auto (bf16 on GPU, fp32 on CPU), float32, bfloat16 or float16.")
    system_prompt: str | None = Field(None, description="Override the system prompt.")
    user_template: str | None = Field(None, description="Override the user turn template ({statement} and {instructions} are filled in).")
    backend: Literal["hf", "vllm"] = Field("hf", description="Sampling backend: hf (CPU and GPU) or vllm (GPU only; pip install sdpo-ttt[vllm]).")
    vllm_gpu_memory: float = Field(0.4, gt=0, lt=1, description="Share of GPU memory vLLM may take when colocated with training.")
    gradient_checkpointing: bool | None = Field(None, description="Recompute activations in the student backward (default: on for GPU).")

    # --- LoRA and optimiser
    lora_rank: int = Field(16, ge=1, description="LoRA rank r.")
    lora_alpha: int = Field(32, ge=1, description="LoRA alpha (scale = alpha / r).")
    lora_dropout: float = Field(0.0, ge=0, lt=1, description="LoRA dropout (0 keeps runs deterministic).")
    lora_targets: list[str] = Field(default_factory=lambda: list(DEFAULT_LORA_TARGETS), description="Module names that get LoRA adapters.")
    lr: float = Field(1e-4, gt=0, description="AdamW learning rate on the LoRA weights (paper: 1e-6 for full fine-tuning; LoRA needs more).")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay.")
    grad_clip: float = Field(1.0, gt=0, description="Clip the global gradient norm (paper: 1.0).")
    steps_per_batch: int = Field(1, ge=1, description="Optimiser steps on each batch of attempts (paper: 1).")
    micro_batch_size: int = Field(1, ge=1, description="Attempts per forward/backward pass (gradients accumulate over the batch).")

    # --- SDPO loss
    loss: Literal["logit", "full", "token", "sequence"] = Field("logit", description="logit: student top-K + tail bucket; full: exact over the vocabulary; token: sampled-token surrogate; sequence: one REINFORCE weight per attempt.")
    alpha: float = Field(1.0, ge=0, le=1, description="Divergence: 1 = reverse KL (paper Eq. 1), 0 = forward KL, in between = generalized JSD.")
    topk: int = Field(20, ge=1, description="K of the logit loss (paper: 20 at test time).")
    teacher: Literal["ema", "trust-region", "frozen", "live"] = Field("ema", description="Teacher regularisation: EMA of the LoRA update, logit mix of base and current model, base model, or current model.")
    teacher_rate: float = Field(0.01, gt=0, le=1, description="EMA rate of the teacher (ema) or mix weight of the current model (trust-region).")
    grpo_weight: float = Field(0.0, ge=0, le=1, description="λ: weight of a GRPO advantage from the verifier score (fraction of tests passed); 0 = pure SDPO.")
    kl_weight: float = Field(0.0, ge=0, description="β: weight of KL(student ‖ base model).")
    adv_clip: float | None = Field(None, gt=0, description="Clip per-token advantages at ±c (token/sequence losses).")
    chunk_tokens: int = Field(256, ge=1, description="Tokens per chunk of the logit computation (bounds memory).")

    # --- feedback and sandbox
    feedback_visibility: Literal["public", "all", "binary"] = Field("public", description="What feedback the model sees: details of public tests only, of all tests, or passed/failed alone.")
    sandbox: Literal["auto", "docker", "local"] = Field("auto", description="Where attempts run: Docker when a daemon answers, else a local process sandbox (weaker isolation).")
    sandbox_workers: int = Field(2, ge=1, description="Containers (or processes) judging attempts in parallel.")

    @model_validator(mode="after")
    def _consistent(self) -> "SolveConfig":
        if self.adv_clip is not None and self.loss not in ("token", "sequence"):
            raise ValueError(f"adv_clip applies to the token and sequence losses only (loss is {self.loss!r}, whose gradient is exact)")
        return self

    def resolved_batch_size(self, on_gpu: bool) -> int:
        return self.batch_size or (16 if on_gpu else 8)


def field_help(name: str) -> str:
    """The description of a config field, for `--help`."""
    return SolveConfig.model_fields[name].description or ""


def read_config_file(path: Path) -> dict[str, Any]:
    """Read a TOML or YAML config file into a dict (keys are SolveConfig field names; '-' may replace '_')."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: no such config file", "check the path given to --config")
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix.lower() == ".toml":
            data = tomllib.loads(text)
        elif path.suffix.lower() in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text) or {}
        elif path.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            raise ConfigError(f"{path}: unknown config format", "use a .toml, .yaml/.yml or .json file")
    except ConfigError:
        raise
    except Exception as e:  # parse errors of any of the three formats
        raise ConfigError(f"{path}: cannot parse ({e})", "fix the syntax of the file") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a table/mapping of options at the top level", "write `key = value` lines (TOML) or `key: value` (YAML)")
    return {str(k).replace("-", "_"): v for k, v in data.items()}


def build_config(file_values: dict[str, Any], cli_values: dict[str, Any], source: str = "config") -> SolveConfig:
    """Defaults < file < CLI (CLI values that are None were not given and do not override)."""
    merged = dict(file_values)
    merged.update({k: v for k, v in cli_values.items() if v is not None})
    try:
        return SolveConfig.model_validate(merged)
    except ValidationError as e:
        err = e.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        if not loc:
            raise ConfigError(f"{source}: {err['msg'].removeprefix('Value error, ')}", "see `sdpo-ttt solve --help`") from None
        if err["type"] == "extra_forbidden":
            raise ConfigError(f"{source}: unknown option {loc!r}", "see `sdpo-ttt solve --help` for the option names") from None
        raise ConfigError(f"{source}: option {loc!r}: {err['msg']}", "see `sdpo-ttt solve --help`") from None
