"""PolicyConfig: which model, where it runs, and the LoRA that is trained on it."""

from __future__ import annotations

from dataclasses import dataclass, field

DEFAULT_LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


@dataclass
class PolicyConfig:
    model: str = field(
        default="qwen2.5-coder-0.5b",
        metadata={"help": "built-in name (qwen2.5-coder-0.5b, smollm2-135m), HF model id, local HF folder or .gguf file"},
    )
    device: str = field(default="auto", metadata={"help": "auto (cuda if available, else cpu), cpu, cuda, cuda:N"})
    dtype: str = field(default="auto", metadata={"help": "auto (bf16 on GPU, fp32 on CPU), float32, bfloat16, float16"})
    lora_rank: int = field(default=16, metadata={"help": "LoRA rank r of the student adapter"})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA alpha; the update is (alpha / r) * B @ A"})
    lora_dropout: float = field(default=0.0, metadata={"help": "LoRA dropout (0 keeps student scoring deterministic)"})
    lora_targets: list[str] = field(
        default_factory=lambda: list(DEFAULT_LORA_TARGETS),
        metadata={"help": "module names that get LoRA (attention and MLP projections by default)"},
    )
    teacher_rank: int | None = field(
        default=None,
        metadata={"help": "rank of the EMA teacher adapter (default 2 * lora_rank): EMA of low-rank updates is "
                  "re-factored exactly when it fits, else truncated to the best rank-k approximation"},
    )
    backend: str = field(default="hf", metadata={"help": "sampling backend: hf (CPU/GPU) or vllm (GPU, optional extra sdpo-ttt[vllm])"})
    vllm_gpu_memory: float = field(default=0.4, metadata={"help": "fraction of GPU memory the colocated vLLM engine may take"})
    gradient_checkpointing: bool = field(default=False, metadata={"help": "recompute activations in backward (GPU, long sequences)"})
    system_prompt: str | None = field(default=None, metadata={"help": "system turn; None = prompting.DEFAULT_SYSTEM_PROMPT"})
    user_template: str | None = field(
        default=None,
        metadata={"help": "user turn template with {statement} and {instructions}; None = prompting.DEFAULT_USER_TEMPLATE"},
    )

    def __post_init__(self) -> None:
        from sdpo_ttt.errors import ConfigError

        if self.lora_rank < 1:
            raise ConfigError(f"lora_rank must be >= 1, got {self.lora_rank}", "pass --lora-rank 16 or similar")
        if self.teacher_rank is not None and self.teacher_rank < self.lora_rank:
            raise ConfigError(f"teacher_rank ({self.teacher_rank}) must be >= lora_rank ({self.lora_rank})")
        if not self.lora_targets:
            raise ConfigError("lora_targets is empty", "name at least one module, e.g. q_proj,v_proj")
        if self.backend not in ("hf", "vllm"):
            raise ConfigError(f"unknown sampling backend {self.backend!r}", "use hf or vllm")
        if not 0.05 <= self.vllm_gpu_memory <= 0.95:
            raise ConfigError(f"vllm_gpu_memory must be in [0.05, 0.95], got {self.vllm_gpu_memory}")
        self.lora_targets = list(self.lora_targets)

    @property
    def effective_teacher_rank(self) -> int:
        return self.teacher_rank if self.teacher_rank is not None else 2 * self.lora_rank
