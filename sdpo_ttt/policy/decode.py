"""A lean CPU decode loop for Llama/Qwen2-style decoders: `Policy.sample` at the pace of the memory bus.

Hugging Face `generate` spends most of a CPU decode step outside the matrix products (cache objects, mask
building, logits processors, peft's per-layer adapter dispatch), and PyTorch's default fp32 matmul (MKL)
runs small-batch products at a third of what this CPU's oneDNN kernels do. This loop reads the model's
own weights and the live peft LoRA factors and runs, per step and layer, only: RMSNorm, the projections
(oneDNN, weights optionally pre-packed once), `y + s·B(A x)` for each LoRA-targeted projection (the
adapter is never merged, so an update is visible at the next call without any copy), RoPE from the
model's own rotary module, and SDPA over a preallocated KV cache.

What it keeps from `generate` (tests/test_decode.py holds it to that):
- the distribution: temperature, then top-p (generate's order and tie rules), then a draw from the softmax;
  greedy (temperature 0) is generate's argmax, so greedy token ids are generate's up to float rounding;
- the layout [left pad | prompt | completion], positions counted from the first real token;
- the stop rule: a row stops at its first EOS (kept), the loop when every row stopped or at max_new_tokens.

What it changes: the draw is by inverse CDF from one uniform per row and step (`inverse_cdf`), not
`torch.multinomial`, whose B x V exponentials cost 20-40 ms a step on this CPU whatever the thread count.
Same distribution, same seed -> same tokens, but not the token ids `generate` drew for that seed.

What it does not waste: identical prompts (the same prompt repeated B times, as every strategy samples)
are prefilled once and their KV rows copied; a finished row leaves the batch (its KV rows are dropped).

Supported: model_type llama, qwen2, mistral with SiLU MLPs and full attention, LoRA only on the
attention/MLP projections. `Decoder.supports` says why not otherwise; the caller then uses `generate`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

SUPPORTED_TYPES = ("llama", "qwen2", "mistral")
PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def onednn_linear_available() -> bool:
    return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")


@dataclass
class Linear:
    """y = x Wᵀ + b through oneDNN (plain or pre-packed weight), or F.linear where oneDNN is missing."""

    weight: Tensor  # [out, in], the model's own tensor
    bias: Tensor | None
    packed: Any = None  # oneDNN-packed copy of weight (an mkldnn tensor), or None
    onednn: bool = False

    def __call__(self, x: Tensor) -> Tensor:
        if not self.onednn:
            return F.linear(x, self.weight, self.bias)
        shape = x.shape
        w = self.packed if self.packed is not None else self.weight
        y = torch.ops.mkldnn._linear_pointwise(x.reshape(-1, shape[-1]), w, self.bias, "none", [], "")
        return y.view(*shape[:-1], y.shape[-1])


@dataclass
class Layer:
    ln_in: Tensor
    ln_post: Tensor
    proj: dict[str, Linear]  # q_proj ... down_proj
    lora: dict[str, Any]  # projection name -> the peft LoRA module (holding lora_A/lora_B/scaling per adapter)


def _rms_norm(x: Tensor, w: Tensor, eps: float) -> Tensor:
    # as HF's LlamaRMSNorm/Qwen2RMSNorm, in fp32 (the only dtype this loop runs)
    return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))


def _rotate(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    half = x.shape[-1] // 2
    return x * cos + torch.cat((-x[..., half:], x[..., :half]), dim=-1) * sin


class Decoder:
    """Sampling over a (peft-wrapped) causal LM's weights. Build once per Policy; weights are read, never copied
    unless pack=True (then a oneDNN-packed copy of every projection and the LM head: ~ the model's size again)."""

    def __init__(self, model: torch.nn.Module, *, pack: bool = False) -> None:
        why = self.supports(model)
        if why:
            raise ValueError(why)
        base = _base(model)
        cfg = base.config.get_text_config()
        self.n_heads = cfg.num_attention_heads
        self.n_kv = cfg.num_key_value_heads
        self.head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
        self.eps = float(cfg.rms_norm_eps)
        inner = base.get_decoder()
        self.embed = inner.embed_tokens.weight
        self.rotary = inner.rotary_emb
        self.norm = inner.norm.weight
        self.onednn = onednn_linear_available() and self.embed.device.type == "cpu"
        self.pack = pack and self.onednn
        self.layers: list[Layer] = []
        for blk in inner.layers:
            proj: dict[str, Linear] = {}
            lora: dict[str, Any] = {}
            for name in PROJECTIONS:
                mod = getattr(blk.self_attn if name in PROJECTIONS[:4] else blk.mlp, name)
                if hasattr(mod, "lora_A"):
                    lora[name] = mod
                    mod = mod.base_layer
                proj[name] = self._linear(mod.weight, mod.bias)
            self.layers.append(Layer(blk.input_layernorm.weight, blk.post_attention_layernorm.weight, proj, lora))
        self.lm_head = self._linear(base.get_output_embeddings().weight, None)

    def _linear(self, w: Tensor, b: Tensor | None) -> Linear:
        w = w.detach()
        b = b.detach() if b is not None else None
        packed = torch.ops.mkldnn._reorder_linear_weight(w, 8) if self.pack else None
        return Linear(w, b, packed, self.onednn)

    @staticmethod
    def supports(model: torch.nn.Module) -> str | None:
        """None if this loop reproduces the model's forward pass, else why not."""
        base = _base(model)
        cfg = base.config.get_text_config()
        kind = getattr(cfg, "model_type", "?")
        if kind not in SUPPORTED_TYPES:
            return f"model type {kind!r} (the fast decoder knows {', '.join(SUPPORTED_TYPES)})"
        if getattr(cfg, "hidden_act", "silu") != "silu":
            return f"activation {cfg.hidden_act!r}"
        if getattr(cfg, "use_sliding_window", False) or any(t != "full_attention" for t in getattr(cfg, "layer_types", None) or []):
            return "sliding-window attention"
        if getattr(cfg, "pretraining_tp", 1) != 1:
            return "pretraining_tp > 1"
        p = next(base.parameters())
        if p.dtype != torch.float32:
            return f"weights in {p.dtype} (the fast decoder runs float32)"
        for name, mod in base.named_modules():
            if hasattr(mod, "lora_A") and name.rsplit(".", 1)[-1] not in PROJECTIONS:
                return f"LoRA on {name} (the fast decoder applies LoRA to {', '.join(PROJECTIONS)} only)"
            if hasattr(mod, "lora_A") and any(getattr(mod, "use_dora", {}).values()):
                return "DoRA adapters"
        return None

    # ------------------------------------------------------------------ forward
    def _proj(self, layer: Layer, name: str, x: Tensor, adapter: str | None) -> Tensor:
        y = layer.proj[name](x)
        mod = layer.lora.get(name)
        if adapter is not None and mod is not None and adapter in mod.lora_A:
            # peft's lora.Linear in eval mode: result + lora_B(lora_A(dropout(x))) * scaling, dropout = identity
            a, b = mod.lora_A[adapter].weight, mod.lora_B[adapter].weight
            y = y + F.linear(F.linear(x, a), b) * mod.scaling[adapter]
        return y

    def _forward(self, x: Tensor, pos: Tensor, cache: list[tuple[Tensor, Tensor]], start: int, attn_mask: Tensor,
                 adapter: str | None) -> Tensor:
        """x [N, S, H] embeddings at positions pos [N, S], written to cache[:, :, start:start+S]; attention over
        cache[:, :, :start+S] under attn_mask (bool, [N, 1, S, start+S]). Returns the final-norm hidden states."""
        n, s, _ = x.shape
        cos, sin = self.rotary(x, pos)
        cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)  # [N, 1, S, hd]
        end = start + s
        for layer, (kc, vc) in zip(self.layers, cache):
            h = _rms_norm(x, layer.ln_in, self.eps)
            q = self._proj(layer, "q_proj", h, adapter).view(n, s, self.n_heads, self.head_dim).transpose(1, 2)
            k = self._proj(layer, "k_proj", h, adapter).view(n, s, self.n_kv, self.head_dim).transpose(1, 2)
            v = self._proj(layer, "v_proj", h, adapter).view(n, s, self.n_kv, self.head_dim).transpose(1, 2)
            kc[:, :, start:end] = _rotate(k, cos, sin)
            vc[:, :, start:end] = v
            o = F.scaled_dot_product_attention(_rotate(q, cos, sin), kc[:, :, :end], vc[:, :, :end], attn_mask=attn_mask,
                                               enable_gqa=self.n_kv != self.n_heads)
            x = x + self._proj(layer, "o_proj", o.transpose(1, 2).reshape(n, s, -1), adapter)
            h = _rms_norm(x, layer.ln_post, self.eps)
            g = F.silu(self._proj(layer, "gate_proj", h, adapter)) * self._proj(layer, "up_proj", h, adapter)
            x = x + self._proj(layer, "down_proj", g, adapter)
        return _rms_norm(x, self.norm, self.eps)

    # ------------------------------------------------------------------ sampling
    @torch.no_grad()
    def generate(self, prompts: list[list[int]], *, max_new_tokens: int, temperature: float, top_p: float,
                 eos_ids: list[int], pad_id: int, adapter: str | None, return_logprobs: bool = False,
                 progress: Callable[[int], None] | None = None) -> tuple[list[list[int]], list[list[float]] | None]:
        """New token ids per prompt (through the first EOS, or max_new_tokens of them) and, if asked, the log
        probability of each under the sampling distribution (temperature and top-p applied; greedy: the
        model's). temperature <= 0 is greedy. Randomness: the global torch generator (seed it before). progress,
        if given, is called after each step with the number of tokens that step added (rows not yet stopped)."""
        B = len(prompts)
        if B == 0 or max_new_tokens <= 0:
            return [[] for _ in prompts], ([[] for _ in prompts] if return_logprobs else None)
        if any(not p for p in prompts):
            raise ValueError("empty prompt")
        dev = self.embed.device
        uniq: dict[tuple[int, ...], int] = {}
        row_of = torch.tensor([uniq.setdefault(tuple(p), len(uniq)) for p in prompts], device=dev)
        P = max(len(p) for p in prompts)
        L = P + max_new_tokens
        # [left pad | prompt] for the distinct prompts
        U = len(uniq)
        ids = torch.full((U, P), pad_id, dtype=torch.long)
        valid = torch.zeros((U, P), dtype=torch.bool)
        for p, u in uniq.items():
            ids[u, P - len(p):] = torch.tensor(p, dtype=torch.long)
            valid[u, P - len(p):] = True
        ids, valid = ids.to(dev), valid.to(dev)
        pos = (valid.long().cumsum(-1) - 1).clamp(min=0)
        causal = torch.ones((P, P), dtype=torch.bool, device=dev).tril()
        # a pad query sees itself only (a fully masked row would give NaN, and NaN·0 leaks into real rows)
        mask = (causal & valid[:, None, :]) | torch.eye(P, dtype=torch.bool, device=dev)
        cache_u = [(torch.zeros(U, self.n_kv, P, self.head_dim, device=dev), torch.zeros(U, self.n_kv, P, self.head_dim, device=dev))
                   for _ in self.layers]
        h = self._forward(F.embedding(ids, self.embed), pos, cache_u, 0, mask[:, None], adapter)
        logits = self.lm_head(h[:, -1])[row_of].float()  # [B, V]
        cache = []
        for kc_u, vc_u in cache_u:
            kc = torch.empty(B, self.n_kv, L, self.head_dim, device=dev)
            vc = torch.empty(B, self.n_kv, L, self.head_dim, device=dev)
            kc[:, :, :P] = kc_u[row_of]
            vc[:, :, :P] = vc_u[row_of]
            cache.append((kc, vc))
        del cache_u, h
        key_ok = torch.zeros((B, L), dtype=torch.bool, device=dev)
        key_ok[:, :P] = valid[row_of]
        next_pos = pos[row_of, -1] + 1  # [B]

        eos = torch.tensor(eos_ids, device=dev)
        active = torch.arange(B, device=dev)  # rows still running, in cache order
        out = torch.full((B, max_new_tokens), pad_id, dtype=torch.long, device=dev)
        lps = torch.zeros((B, max_new_tokens), device=dev) if return_logprobs else None
        greedy = temperature <= 0
        for t in range(max_new_tokens):
            scores = logits if greedy else _warp(logits, temperature, top_p)
            if greedy:
                tok = scores.argmax(-1)
            else:
                u = torch.rand(B, dtype=torch.float64, device=dev)  # one per row of the batch, finished or not
                tok = inverse_cdf(scores.softmax(-1), u[active])
            out[active, t] = tok
            if lps is not None:
                lps[active, t] = scores.log_softmax(-1).gather(1, tok[:, None]).squeeze(1)
            if progress is not None:
                progress(len(active))
            done = torch.isin(tok, eos)
            if t == max_new_tokens - 1 or bool(done.all()):
                break
            if bool(done.any()):
                keep = (~done).nonzero().squeeze(1)
                active, tok = active[keep], tok[keep]
                cache = [(kc[keep], vc[keep]) for kc, vc in cache]
                key_ok, next_pos = key_ok[keep], next_pos[keep]
            key_ok[:, P + t] = True
            h = self._forward(F.embedding(tok[:, None], self.embed), next_pos[:, None], cache, P + t,
                              key_ok[:, None, None, : P + t + 1], adapter)
            logits = self.lm_head(h[:, 0]).float()
            next_pos = next_pos + 1
        new: list[list[int]] = []
        lp_rows: list[list[float]] | None = [] if lps is not None else None
        for b, row in enumerate(out.tolist()):
            cut = next((i for i, x in enumerate(row) if x in eos_ids), None)
            n = cut + 1 if cut is not None else max_new_tokens  # rows only stop early at an EOS
            new.append(row[:n])
            if lp_rows is not None and lps is not None:
                lp_rows.append(lps[b, :n].tolist())
        return new, lp_rows


def _warp(logits: Tensor, temperature: float, top_p: float) -> Tensor:
    """generate's sampling processors, same order and semantics: temperature, then top-p (keeping >= 1 token)."""
    scores = logits / temperature if temperature != 1.0 else logits
    if top_p < 1.0:
        srt, idx = torch.sort(scores, descending=False)
        cum = srt.softmax(-1).cumsum(-1)
        drop = cum <= 1 - top_p
        drop[..., -1:] = False
        scores = scores.masked_fill(drop.scatter(1, idx, drop), float("-inf"))
    return scores


def pack_weights(model: torch.nn.Module, available: int | None = None) -> bool:
    """Whether to keep a oneDNN-packed copy of the weights for sampling (~1.3x faster decode steps at batch 8 on
    this project's CPU): only with oneDNN and while at least 3x the copy's size stays free (MemAvailable)."""
    if not onednn_linear_available():
        return False
    need = sum(p.numel() * p.element_size() for n, p in model.named_parameters() if "lora_" not in n)
    available = _mem_available() if available is None else available
    return available is not None and available >= 3 * need


def _mem_available() -> int | None:
    try:
        for line in open("/proc/meminfo", encoding="ascii"):
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def inverse_cdf(probs: Tensor, u: Tensor, block: int = 1024) -> Tensor:
    """Token i of each row with cdf(i-1) <= u·total < cdf(i): a draw from `probs` [N, V] (rows need not sum to 1)
    for u [N] uniform in [0, 1). Two levels (block sums, then one block) so no full-length serial cumsum is
    needed; sums in float64. A token of probability 0 is never returned."""
    n, v = probs.shape
    nb = -(-v // block)
    p = F.pad(probs, (0, nb * block - v)) if nb * block != v else probs
    p = p.view(n, nb, block)
    mass = p.sum(-1, dtype=torch.float64)  # [N, nb]
    cdf = mass.cumsum(-1)
    target = (u.to(torch.float64) * cdf[:, -1]).clamp(max=cdf[:, -1] * (1 - 2**-52))[:, None]
    j = torch.searchsorted(cdf, target, right=True).clamp(max=nb - 1)  # the block holding the target
    start = torch.where(j > 0, cdf.gather(1, (j - 1).clamp(min=0)), torch.zeros_like(target))
    inside = p.gather(1, j[:, :, None].expand(n, 1, block)).squeeze(1).to(torch.float64).cumsum(-1)  # [N, block]
    # the target's place inside the block, as a fraction of the block's own cumsum (ends at exactly 1)
    frac = ((target - start) / mass.gather(1, j)).clamp(0, 1 - 2**-52)
    k = torch.searchsorted(inside / inside[:, -1:], frac, right=True).clamp(max=block - 1)
    return (j * block + k).squeeze(1)


def _base(model: torch.nn.Module) -> torch.nn.Module:
    return model.get_base_model() if hasattr(model, "get_base_model") else model
