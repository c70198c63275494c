"""Predicted GPU memory of one SDPO run on one GPU, from a model's config alone (the table in docs/gpu.md).

Arithmetic, not measurement: benchmarks/gpu_acceptance.py prints these predictions beside the measured peaks.
Assumptions (the defaults of `sdpo-ttt solve` on a GPU):
- bf16 weights; LoRA adapters in fp32 (peft up-casts them); student: param + grad + two AdamW moments
  (16 B/param); teacher (EMA, rank 2r): params only (4 B/param);
- micro-batch 1 with gradient checkpointing: one [T, H] bf16 input kept per decoder layer, and one layer
  recomputed at a time in backward, its activations and their gradients alive together;
- in that recomputed layer, float32 copies saved for backward: peft casts each LoRA layer's input to the adapter's
  float32 (one [T, in] copy per targeted projection, q/k/v each their own), and every RMSNorm up-casts its input
  (two [T, H] per layer, plus q/k norms of [T, heads·head_dim] and [T, kv_heads·head_dim] on Qwen3), and the final
  norm's [T, H] float32 input outside the checkpointed layers;
- the loss's logits in chunks of `chunk_tokens` rows of [V] float32, about six such tensors alive (student
  and teacher logits, their log-softmaxes, the gradient);
- hf sampling: the KV cache of B sequences of T tokens (2 · kv_heads · head_dim bf16 values per token per
  layer) plus one step's [B, V] float32 logits and scores.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

GB = 1e9
LOGIT_TENSORS = 6  # chunked loss: student + teacher logits, both log-softmaxes, grad, one temporary
DEFAULT_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True)
class Shape:
    layers: int
    hidden: int
    intermediate: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int
    tied: bool
    qkv_bias: bool
    qk_norm: bool

    @classmethod
    def from_config(cls, cfg: dict[str, Any]) -> "Shape":
        heads = int(cfg["num_attention_heads"])
        hidden = int(cfg["hidden_size"])
        qwen3 = cfg.get("model_type") == "qwen3"
        return cls(
            layers=int(cfg["num_hidden_layers"]), hidden=hidden, intermediate=int(cfg["intermediate_size"]), heads=heads,
            kv_heads=int(cfg.get("num_key_value_heads", heads)), head_dim=int(cfg.get("head_dim") or hidden // heads),
            vocab=int(cfg["vocab_size"]), tied=bool(cfg.get("tie_word_embeddings", False)),
            qkv_bias=cfg.get("model_type") == "qwen2" or bool(cfg.get("attention_bias", False)), qk_norm=qwen3,
        )

    def projections(self) -> dict[str, tuple[int, int]]:
        """(in, out) features of each linear layer of one decoder layer."""
        q, kv, h, i = self.heads * self.head_dim, self.kv_heads * self.head_dim, self.hidden, self.intermediate
        return {"q_proj": (h, q), "k_proj": (h, kv), "v_proj": (h, kv), "o_proj": (q, h),
                "gate_proj": (h, i), "up_proj": (h, i), "down_proj": (i, h)}


def n_params(s: Shape) -> int:
    """Parameters of the model (embeddings, decoder layers with norms and biases, final norm, untied head)."""
    proj = s.projections()
    per_layer = sum(i * o for i, o in proj.values()) + 2 * s.hidden
    if s.qkv_bias:
        per_layer += proj["q_proj"][1] + proj["k_proj"][1] + proj["v_proj"][1]
    if s.qk_norm:
        per_layer += 2 * s.head_dim
    return s.vocab * s.hidden * (1 if s.tied else 2) + s.layers * per_layer + s.hidden


def lora_params(s: Shape, rank: int, targets: tuple[str, ...] = DEFAULT_TARGETS) -> int:
    """A (r x in) and B (out x r) of every targeted projection of every layer."""
    proj = s.projections()
    return s.layers * sum(rank * (proj[t][0] + proj[t][1]) for t in targets)


def training_memory(s: Shape, *, tokens: int, lora_rank: int = 16, teacher_rank: int | None = None,
                    targets: tuple[str, ...] = DEFAULT_TARGETS, chunk_tokens: int = 256) -> dict[str, float]:
    """Bytes of each item at the peak of one SDPO update (micro-batch 1, checkpointing), and their total.

    `tokens` = one attempt's prompt + completion (the student pass; the teacher pass runs without grad).
    """
    teacher_rank = teacher_rank if teacher_rank is not None else 2 * lora_rank
    q, kv = s.heads * s.head_dim, s.kv_heads * s.head_dim
    items = {
        "weights (bf16)": 2.0 * n_params(s),
        "student LoRA + grad + AdamW (fp32)": 16.0 * lora_params(s, lora_rank, targets),
        "teacher LoRA (fp32)": 4.0 * lora_params(s, teacher_rank, targets),
        "checkpointed layer inputs (bf16)": 2.0 * s.layers * tokens * s.hidden,
        "one layer recomputed + its grads (bf16)": 2.0 * 2 * tokens * (3 * s.intermediate + 2 * q + 2 * kv + 2 * s.hidden),
        "LoRA inputs cast by peft (fp32)": 4.0 * tokens * sum(s.projections()[t][0] for t in targets),
        "RMSNorm inputs up-cast (fp32)": 4.0 * tokens * (3 * s.hidden + (q + kv if s.qk_norm else 0)),
        "logits in chunks (fp32)": 4.0 * LOGIT_TENSORS * min(chunk_tokens, tokens) * s.vocab,
    }
    items["total"] = sum(items.values())
    return items


def sampling_memory(s: Shape, *, batch: int, tokens: int) -> dict[str, float]:
    """Bytes at the peak of hf sampling: weights, the KV cache of `batch` sequences of `tokens`, one step's logits."""
    items = {
        "weights (bf16)": 2.0 * n_params(s),
        "KV cache (bf16)": 2.0 * 2 * s.layers * s.kv_heads * s.head_dim * batch * tokens,
        "logits + scores of one step (fp32)": 4.0 * 2 * batch * s.vocab,
    }
    items["total"] = sum(items.values())
    return items


def kv_bytes_per_token(s: Shape) -> float:
    return 2.0 * 2 * s.layers * s.kv_heads * s.head_dim
