"""PolicyConfig: which model, where it runs, and the LoRA adapters trained on it (the `policy` section of the
run config, sdpo_ttt/config/tree.py). `Policy.load` takes this section; its defaults are the run's defaults."""

from __future__ import annotations

from typing import Literal

from pydantic import model_validator

from sdpo_ttt.config.fields import Section, option

DEFAULT_MODEL = "qwen2.5-coder-0.5b"
DEFAULT_LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


class PolicyConfig(Section):
    model: str = option(DEFAULT_MODEL, "Built-in name (see `sdpo-ttt models`), Hugging Face id, local model folder or .gguf file.")
    device: str = option("auto", "auto (cuda if available, else cpu), cpu, cuda or cuda:N.", pattern=r"^(auto|cpu|cuda(:[0-9]+)?)$")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = option("auto", "Weights' dtype; auto = bfloat16 on GPU, float32 on CPU.")
    backend: Literal["hf", "vllm"] = option("hf", "Sampling backend: hf (CPU and GPU) or vllm (GPU only; pip install sdpo-ttt[vllm]).")
    sampler_dtype: Literal["auto", "float32", "bfloat16"] = option(
        "auto", "CPU sampler's copy of the weights: bfloat16 reads half the bytes per decode step (1.7x the tokens/s, "
        "the same pass rate within noise: docs/performance.md) where the CPU has avx512_bf16, else float32; auto = "
        "bfloat16 where it is native, float32 elsewhere; float32 = the exact float32 sampler everywhere. Training and "
        "the scoring passes stay float32.")
    vllm_gpu_memory: float = option(0.4, "Share of GPU memory the colocated vLLM engine may take (the rest trains).", ge=0.05, le=0.95)
    gradient_checkpointing: bool | None = option(
        None, "Recompute activations in the student's backward pass (saves memory on long attempts).",
        default_help="on for GPU, off on CPU")
    system_prompt: str | None = option(None, "Override the system turn.", default_help="prompting.DEFAULT_SYSTEM_PROMPT")
    thinking: bool = option(
        False, "Let thinking models (Qwen3) think before answering: passes enable_thinking to the chat template of "
        "the student and every teacher context. Off as in the paper's runs, which have thinking off; templates "
        "without thinking ignore it.", paper="arXiv 2601.20802: runs with thinking off")
    user_template: str | None = option(
        None, "Override the user turn template ({statement} and {instructions} are filled in).",
        default_help="prompting.DEFAULT_USER_TEMPLATE")
    lora_rank: int = option(16, "LoRA rank r of the student adapter.", ge=1)
    lora_alpha: int = option(32, "LoRA alpha: the update is (alpha / r)·B·A.", ge=1)
    lora_dropout: float = option(0.0, "LoRA dropout (0 keeps student scoring, and so runs, deterministic).", ge=0, lt=1)
    lora_targets: list[str] = option(
        help="Module names that get LoRA adapters.",
        default_factory=lambda: list(DEFAULT_LORA_TARGETS), min_length=1,
        default_help="attention and MLP projections: " + ",".join(DEFAULT_LORA_TARGETS))
    teacher_rank: int | None = option(
        None, "Rank of the EMA teacher adapter: an EMA of low-rank updates is re-factored exactly while it fits, "
        "else truncated to its best rank-k approximation.", ge=1, default_help="2 x --lora-rank")

    @model_validator(mode="after")
    def _teacher_fits(self) -> "PolicyConfig":
        if self.teacher_rank is not None and self.teacher_rank < self.lora_rank:
            raise ValueError(f"--teacher-rank ({self.teacher_rank}) must be >= --lora-rank ({self.lora_rank})")
        return self

    @model_validator(mode="after")
    def _vllm_dtype(self) -> "PolicyConfig":
        # vLLM's LoRA kernels (punica) take float16/bfloat16 only: the engine would fail at start, after loading.
        if self.backend == "vllm" and self.dtype == "float32":
            raise ValueError("--backend vllm cannot sample in float32 (vLLM's LoRA kernels take float16/bfloat16 only): "
                             "pass --dtype bfloat16 (or auto), or --backend hf for float32")
        return self

    @property
    def effective_teacher_rank(self) -> int:
        return self.teacher_rank if self.teacher_rank is not None else 2 * self.lora_rank

    def checkpointing_on(self, on_gpu: bool) -> bool:
        """Gradient checkpointing as asked, or by default on for GPU (long attempts) and off on CPU (speed)."""
        return on_gpu if self.gradient_checkpointing is None else self.gradient_checkpointing
