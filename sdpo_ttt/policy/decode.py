"""A lean CPU decode loop for Llama/Qwen2-style decoders: `Policy.sample` at the pace of the memory bus.

(Over 450 lines on purpose: one engine — packed weights, the forward, the KV cache, the draw and its no-grad scoring
passes share private state; split, each part would reach into the others.)

Hugging Face `generate` spends most of a CPU decode step outside the matrix products (cache objects, mask
building, logits processors, peft's per-layer adapter dispatch, a B x V multinomial), and PyTorch's default
fp32 matmul (MKL) runs small-batch products at a third of what oneDNN does on this project's CPU. This loop
runs, per step and layer, only: RMSNorm, 4 projections (q|k|v and gate|up concatenated) through oneDNN on a
packed copy of the weights with the sampled adapter merged in (W + s·B·A, rebuilt when the adapter's values
change, i.e. once per update), RoPE from the model's own rotary module, and SDPA over a preallocated KV cache.
Without memory for the packed copy (see `pack_weights`) it runs on the model's own weights with the LoRA
unmerged. The no-grad scoring passes (teacher, `Policy.token_logprobs`) use the same forward on the model's
own weights, LoRA unmerged (`Decoder.hidden_states`); passes with autograd stay on transformers + peft.

What it keeps from `generate` (tests/test_decode.py holds it to that):
- the distribution: temperature, then top-p (generate's order and tie rules), then a draw from the softmax;
  greedy (temperature 0) is generate's argmax, so greedy token ids are generate's up to float rounding;
- the layout [left pad | prompt | completion], positions counted from the first real token;
- the stop rule: a row stops at its first EOS (kept), the loop when every row stopped or at max_new_tokens;
  `stop` (policy/stop.CodeStop: the closing fence of the code block) ends a row after the token it accepts;
- the log-probs: the float32 model's up to rounding (the merged W + s·B·A rounds differently from peft's
  unmerged sum: ~1e-6 nats on average, benchmarks/sampling_throughput.py prints the gap).

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

from sdpo_ttt.policy import threads
from sdpo_ttt.policy.prefix import KV, Prefix, rest_layout

SUPPORTED_TYPES = ("llama", "qwen2", "mistral")
PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def onednn_linear_available() -> bool:
    return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")


def bf16_available() -> bool:
    """oneDNN's bfloat16 products run natively here (avx512_bf16): else bf16 weights would be emulated, slower."""
    check = getattr(torch.cpu, "_is_avx512_bf16_supported", None)
    return onednn_linear_available() and check is not None and bool(check())


@dataclass
class Linear:
    """y = x Wᵀ + b through oneDNN (with W as given or pre-packed), or F.linear where oneDNN is missing."""

    weight: Any  # [out, in]: the model's own tensor, or a oneDNN-packed copy (an mkldnn tensor)
    bias: Tensor | None
    onednn: bool
    compute: torch.dtype | None = None  # bfloat16: the packed copy holds bf16 weights, x goes in as bf16, y comes out float32

    def __call__(self, x: Tensor) -> Tensor:
        if not self.onednn:
            return F.linear(x, self.weight, self.bias)
        x2 = x.reshape(-1, x.shape[-1])
        y = torch.ops.mkldnn._linear_pointwise(x2 if self.compute is None else x2.to(self.compute), self.weight, self.bias, "none", [], "")
        return y.view(*x.shape[:-1], y.shape[-1]).to(x.dtype)


@dataclass
class Group:
    """Projections that read the same input (q|k|v, gate|up, o, down); called, gives each one's output.

    Plain: one product per projection over the model's own weight, plus the adapter's unmerged LoRA
    `y += (x Aᵀ)(s·B)ᵀ` (one x Aᵀ for the group, A stacked). Packed: one product over a oneDNN-packed copy of
    the concatenated W + s·B·A of the adapter being sampled (see Decoder.prepare), split into views."""

    mods: list[torch.nn.Module]  # the base nn.Linear of each projection
    lora: list[Any]  # per projection: its peft lora.Linear (lora_A/lora_B/scaling per adapter), or None
    plain: list[Linear]
    packed: Linear | None = None
    factors: Any = None  # unmerged LoRA for the plain weights: (A stacked, per projection (columns of x Aᵀ, s·B) or None)

    @property
    def widths(self) -> list[int]:
        return [m.weight.shape[0] for m in self.mods]

    def __call__(self, x: Tensor, packed: bool) -> list[Tensor]:
        if packed and self.packed is not None:
            return list(self.packed(x).split(self.widths, -1))
        ys = [p(x) for p in self.plain]
        if self.factors is not None:
            a, per = self.factors
            xa = F.linear(x.reshape(-1, x.shape[-1]), a)
            for y, f in zip(ys, per, strict=True):
                if f is not None:
                    (c0, c1), b = f
                    y.view(-1, y.shape[-1]).addmm_(xa[:, c0:c1], b.t())
        return ys

    def delta(self, adapter: str, i: int) -> Tensor | None:
        """s·B·A of projection i under the adapter, or None where it has no such adapter."""
        m = self.lora[i]
        if m is None or adapter not in m.lora_A:
            return None
        return (m.lora_B[adapter].weight.detach() @ m.lora_A[adapter].weight.detach()) * m.scaling[adapter]


@dataclass
class Layer:
    ln_in: Tensor
    ln_post: Tensor
    groups: list[Group]  # as GROUPS


GROUPS = (("q_proj", "k_proj", "v_proj"), ("o_proj",), ("gate_proj", "up_proj"), ("down_proj",))


def _rotate(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    half = x.shape[-1] // 2
    return x * cos + torch.cat((-x[..., half:], x[..., :half]), dim=-1) * sin


class Decoder:
    """Sampling over a (peft-wrapped) causal LM's weights. Build once per Policy, call `generate`.

    pack=False reads the model's own weight tensors and adds the LoRA unmerged. pack=True keeps one
    oneDNN-packed copy of the weights (about the model's size again) with q|k|v and gate|up concatenated (4
    products a layer instead of 7) and the sampled adapter merged in (W + s·B·A, rebuilt in ~1-2 s when the
    adapter's values change, i.e. once per update): no LoRA work at all in the decode steps.
    `hidden_states` (the no-grad scoring passes) always runs on the plain weights with the LoRA unmerged, so
    scoring under the teacher never forces a re-pack of the sampling copy. bf16=True (`--sampler-dtype bfloat16`;
    with pack, where the CPU has avx512_bf16, else float32): the packed copy is W + s·B·A rounded to bfloat16, half
    the bytes a decode step reads; each product takes x as bf16 and gives y back as float32; norms, RoPE, attention,
    the KV cache and the draw stay float32, and so do training and scoring (plain weights)."""

    def __init__(self, model: torch.nn.Module, *, pack: bool = False, bf16: bool = False) -> None:
        why = self.supports(model)
        if why:
            raise ValueError(why)
        base = _base(model)
        cfg = base.config.get_text_config()
        self.n_heads = cfg.num_attention_heads
        self.n_kv = cfg.num_key_value_heads
        self.head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
        self.hidden = cfg.hidden_size
        self.eps = float(cfg.rms_norm_eps)
        inner = base.get_decoder()
        self.embed = inner.embed_tokens.weight
        self.rotary = inner.rotary_emb
        self.norm = inner.norm.weight
        self.onednn = onednn_linear_available() and self.embed.device.type == "cpu"
        self.pack = pack and self.onednn
        self.low = torch.bfloat16 if self.pack and bf16 and bf16_available() else None  # the packed copy's dtype, if not float32
        self.layers: list[Layer] = []
        for blk in inner.layers:
            groups = []
            for names in GROUPS:
                mods = [getattr(blk.self_attn if name in PROJECTIONS[:4] else blk.mlp, name) for name in names]
                lora = [m if hasattr(m, "lora_A") else None for m in mods]
                lins = [m.base_layer if hasattr(m, "lora_A") else m for m in mods]
                groups.append(Group(lins, lora, [self._plain(m) for m in lins]))
            self.layers.append(Layer(blk.input_layernorm.weight.detach(), blk.post_attention_layernorm.weight.detach(), groups))
        head = base.get_output_embeddings()
        self.lm_head = self._packed(head.weight.detach(), None) if self.pack else self._plain(head)
        self._merged: Any = None  # (adapter, version key) the packed weights hold; None: not built yet
        self._factors_of: Any = None  # (adapter, version key) the plain weights' LoRA factors hold

    def _plain(self, m: torch.nn.Module) -> Linear:
        return Linear(m.weight.detach(), m.bias.detach() if m.bias is not None else None, self.onednn)

    def _packed(self, w: Tensor, b: Tensor | None) -> Linear:
        if self.low is None:
            return Linear(torch.ops.mkldnn._reorder_linear_weight(w, 8), b, True)
        return Linear(torch.ops.mkldnn._reorder_linear_weight(w.to(self.low), 8), None if b is None else b.to(self.low), True, self.low)

    def prepare(self, adapter: str | None, *, packed: bool) -> None:
        """Make the packed (or the plain) weights compute under `adapter` (None: the base model) with its current values."""
        key = (adapter, self._version(adapter))
        if not packed:
            if self._factors_of != key:
                for layer in self.layers:
                    for g in layer.groups:
                        g.factors = self._factors(g, adapter)
                self._factors_of = key
            return
        
        if self._merged == key:
            return
        self._merged = None
        with torch.no_grad():
            for layer in self.layers:
                for g in layer.groups:
                    ws = []
                    for i, m in enumerate(g.mods):
                        d = g.delta(adapter, i) if adapter is not None else None
                        ws.append(m.weight.detach() if d is None else m.weight.detach() + d)
                    biases = [m.bias for m in g.mods]
                    b = None if all(x is None for x in biases) else torch.cat(
                        [x.detach() if x is not None else torch.zeros(m.weight.shape[0]) for x, m in zip(biases, g.mods, strict=True)])
                    g.packed = None  # free the old copy before building the new one
                    g.packed = self._packed(torch.cat(ws) if len(ws) > 1 else ws[0], b)
        self._merged = key

    def _version(self, adapter: str | None) -> tuple:
        """Changes whenever a LoRA factor of the adapter is modified in place or replaced."""
        if adapter is None:
            return ()
        return tuple((p.data_ptr(), p._version) for layer in self.layers for g in layer.groups for m in g.lora
                     if m is not None and adapter in m.lora_A for p in (m.lora_A[adapter].weight, m.lora_B[adapter].weight))

    @staticmethod
    def _factors(g: Group, adapter: str | None) -> Any:
        """(A of the group's projections stacked [sum r, in], per projection ((first, last) column of x Aᵀ, s·B) or None)."""
        if adapter is None or not any(m is not None and adapter in m.lora_A for m in g.lora):
            return None
        a, per, col = [], [], 0
        for m in g.lora:
            if m is None or adapter not in m.lora_A:
                per.append(None)
                continue
            ai = m.lora_A[adapter].weight.detach()
            a.append(ai)
            per.append(((col, col + ai.shape[0]), m.lora_B[adapter].weight.detach() * m.scaling[adapter]))
            col += ai.shape[0]
        return torch.cat(a), per

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
    def _forward(self, x: Tensor, pos: Tensor, cache: list[tuple[Tensor, Tensor]], start: int, packed: bool, *,
                 attn_mask: Tensor | None = None, first: list[int] | None = None) -> Tensor:
        """x [N, S, H] embeddings at positions pos [N, S], written to cache[:, :, start:start+S]; attention over
        cache[:, :, :start+S] under attn_mask (bool, [N, 1, S, start+S]), or, for a whole sequence (start 0),
        causal over each row's tokens from first[row] on (left pads skipped). Returns the final-norm hidden states."""
        n, s, _ = x.shape
        nh, nkv, hd = self.n_heads, self.n_kv, self.head_dim
        cos, sin = self.rotary(x, pos)
        cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)  # [N, 1, S, hd]
        end = start + s
        for layer, (kc, vc) in zip(self.layers, cache, strict=True):
            qkv_g, o_g, gu_g, down_g = layer.groups
            q, k, v = qkv_g(F.rms_norm(x, (self.hidden,), layer.ln_in, self.eps), packed)
            q = _rotate(q.view(n, s, nh, hd).transpose(1, 2), cos, sin)
            kc[:, :, start:end] = _rotate(k.view(n, s, nkv, hd).transpose(1, 2), cos, sin)
            vc[:, :, start:end] = v.view(n, s, nkv, hd).transpose(1, 2)
            o = self._attention(q, kc[:, :, :end], vc[:, :, :end], attn_mask, first)
            x = x + o_g(o.transpose(1, 2).reshape(n, s, nh * hd), packed)[0]
            gate, up = gu_g(F.rms_norm(x, (self.hidden,), layer.ln_post, self.eps), packed)
            x = x + down_g(F.silu(gate) * up, packed)[0]
        return F.rms_norm(x, (self.hidden,), self.norm, self.eps)

    def _attention(self, q: Tensor, k: Tensor, v: Tensor, attn_mask: Tensor | None, first: list[int] | None) -> Tensor:
        gqa = self.n_kv != self.n_heads
        if first is None:
            return F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, enable_gqa=gqa)
        if not any(first):  # no left padding: one causal call without a mask (SDPA's fast kernel)
            return F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=gqa)
        o = torch.zeros_like(q)  # left-pad positions: zero (no key ever attends to them)
        for b, f in enumerate(first):
            o[b: b + 1, :, f:] = F.scaled_dot_product_attention(q[b: b + 1, :, f:], k[b: b + 1, :, f:], v[b: b + 1, :, f:],
                                                                  is_causal=True, enable_gqa=gqa)
        return o

    @torch.no_grad()
    def prefix_kv(self, ids: list[int], adapter: str | None) -> KV:
        """K, V [1, n_kv, P, head_dim] per layer of one prompt prefix (positions 0..P-1), plain weights, LoRA unmerged."""
        dev = self.embed.device
        cache = [(torch.empty(1, self.n_kv, len(ids), self.head_dim, device=dev),
                  torch.empty(1, self.n_kv, len(ids), self.head_dim, device=dev)) for _ in self.layers]
        self.prepare(adapter, packed=False)
        x = torch.tensor([ids], dtype=torch.long, device=dev)
        self._forward(F.embedding(x, self.embed), torch.arange(len(ids), device=dev)[None], cache, 0, False, first=[0])
        return cache

    @torch.no_grad()
    def hidden_states(self, prompts: list[list[int]], completions: list[list[int]], adapter: str | None, pad_id: int,
                      prefix: Prefix | None = None) -> tuple[Tensor, Tensor]:
        """Policy.hidden_states without autograd: final hidden states [B, T, H] predicting each completion token and
        the mask [B, T], T = longest completion; layout [left pad | prompt | completion[:-1] | right pad], or with a
        prefix (from `prefix_kv`, every prompt starting with it) [prompt after it | completion[:-1] | right pad]
        attending to the prefix's K, V."""
        B = len(prompts)
        T = max((len(c) for c in completions), default=0)
        dev = self.embed.device
        mask = torch.zeros((B, T), dtype=torch.bool, device=dev)
        for b, c in enumerate(completions):
            mask[b, : len(c)] = True
        if B == 0 or T == 0:
            return torch.zeros((B, T, self.hidden), device=dev), mask
        if prefix is not None:
            return self._rest_states(prompts, completions, adapter, pad_id, prefix), mask
        P = max(len(p) for p in prompts)
        L = P + T - 1
        ids = torch.full((B, L), pad_id, dtype=torch.long)
        valid = torch.zeros((B, L), dtype=torch.bool)
        for b, (p, c) in enumerate(zip(prompts, completions, strict=True)):
            seq = list(p) + list(c[:-1])
            ids[b, P - len(p): P - len(p) + len(seq)] = torch.tensor(seq, dtype=torch.long)
            valid[b, P - len(p): P - len(p) + len(seq)] = True
        ids, valid = ids.to(dev), valid.to(dev)
        pos = (valid.long().cumsum(-1) - 1).clamp(min=0)
        cache = [(torch.empty(B, self.n_kv, L, self.head_dim, device=dev), torch.empty(B, self.n_kv, L, self.head_dim, device=dev))
                 for _ in self.layers]
        self.prepare(adapter, packed=False)
        h = self._forward(F.embedding(ids, self.embed), pos, cache, 0, False, first=[P - len(p) for p in prompts])
        return h[:, P - 1: P - 1 + T], mask

    def _rest_states(self, prompts: list[list[int]], completions: list[list[int]], adapter: str | None, pad_id: int,
                     prefix: Prefix) -> Tensor:
        P = len(prefix.ids)
        rest = rest_layout(prompts, completions, P, pad_id, self.embed.device)
        B, S = rest.ids.shape
        cache = []
        for k, v in prefix.kv:
            kc = torch.empty(B, self.n_kv, P + S, self.head_dim, device=k.device)
            vc = torch.empty(B, self.n_kv, P + S, self.head_dim, device=v.device)
            kc[:, :, :P], vc[:, :, :P] = k, v
            cache.append((kc, vc))
        self.prepare(adapter, packed=False)
        h = self._forward(F.embedding(rest.ids, self.embed), rest.positions, cache, P, False, attn_mask=rest.attention_mask(P))
        return rest.gather(h)

    # ------------------------------------------------------------------ sampling
    @torch.no_grad()
    def generate(self, prompts: list[list[int]], *, max_new_tokens: int, temperature: float, top_p: float,
                 eos_ids: list[int], pad_id: int, adapter: str | None, return_logprobs: bool = False,
                 progress: Callable[[int], None] | None = None, stop: Callable[[list[int]], bool] | None = None
                 ) -> tuple[list[list[int]], list[list[float]] | None]:
        """New token ids per prompt (through the first EOS, the first token after which `stop(row so far)` is true,
        or max_new_tokens of them) and, if asked, the log probability of each under the sampling distribution
        (temperature and top-p applied; greedy: the model's). temperature <= 0 is greedy. Randomness: the global
        torch generator (seed it before); a row's stop leaves the other rows' draws unchanged. progress, if given,
        is called after each step with the number of tokens that step added (rows not yet stopped)."""
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
        cache_u = [(torch.zeros(U, self.n_kv, P, self.head_dim, device=dev), torch.zeros(U, self.n_kv, P, self.head_dim, device=dev))
                   for _ in self.layers]
        self.prepare(adapter, packed=self.pack)
        h = self._forward(F.embedding(ids, self.embed), pos, cache_u, 0, self.pack, first=[P - len(p) for p in uniq])
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
        ends = [max_new_tokens] * B  # tokens kept per row: through its EOS or stop, else all
        so_far: list[list[int]] = [[] for _ in range(B)]  # each row's tokens, for `stop`
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
            threads.adapt()  # at most once a second: a process that starts mid-call must not find us oversubscribed
            done = torch.isin(tok, eos)
            if stop is not None:
                hit = []
                for r, x in zip(active.tolist(), tok.tolist(), strict=True):
                    so_far[r].append(x)
                    hit.append(stop(so_far[r]))
                done |= torch.tensor(hit, device=dev)
            for r in active[done].tolist():
                ends[r] = t + 1
            if t == max_new_tokens - 1 or bool(done.all()):
                break
            if bool(done.any()):
                keep = (~done).nonzero().squeeze(1)
                active, tok = active[keep], tok[keep]
                cache = [(kc[keep], vc[keep]) for kc, vc in cache]
                key_ok, next_pos = key_ok[keep], next_pos[keep]
            key_ok[:, P + t] = True
            h = self._forward(F.embedding(tok[:, None], self.embed), next_pos[:, None], cache, P + t, self.pack,
                              attn_mask=key_ok[:, None, None, : P + t + 1])
            logits = self.lm_head(h[:, 0]).float()
            next_pos = next_pos + 1
        new: list[list[int]] = []
        lp_rows: list[list[float]] | None = [] if lps is not None else None
        for b, row in enumerate(out.tolist()):
            new.append(row[:ends[b]])
            if lp_rows is not None and lps is not None:
                lp_rows.append(lps[b, :ends[b]].tolist())
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
    for u [N] uniform in [0, 1). Two levels (block sums, then a cumsum inside the one block the target falls in),
    so no serial cumsum over the whole vocabulary; cumsums in float64. A token of probability 0 is never returned."""
    n, v = probs.shape
    whole = v // block * block
    mass = probs[:, :whole].view(n, v // block, block).sum(-1)
    if whole < v:
        mass = torch.cat([mass, probs[:, whole:].sum(-1, keepdim=True)], -1)
    mass = mass.to(torch.float64)  # [N, blocks]
    cdf = mass.cumsum(-1)
    target = (u.to(torch.float64) * cdf[:, -1]).clamp(max=cdf[:, -1] * (1 - 2**-52))[:, None]
    j = torch.searchsorted(cdf, target, right=True).clamp(max=mass.shape[1] - 1)  # the block holding the target
    start = torch.where(j > 0, cdf.gather(1, (j - 1).clamp(min=0)), torch.zeros_like(target))
    idx = j * block + torch.arange(block, device=probs.device)  # [N, block]
    inside = probs.gather(1, idx.clamp(max=v - 1)).masked_fill(idx >= v, 0).to(torch.float64).cumsum(-1)
    # the target's place inside the block, as a fraction of the block's own cumsum (which ends at exactly 1)
    frac = ((target - start) / mass.gather(1, j)).clamp(0, 1 - 2**-52)
    k = torch.searchsorted(inside / inside[:, -1:], frac, right=True).clamp(max=block - 1)
    return (j * block + k).squeeze(1)


def _base(model: torch.nn.Module) -> torch.nn.Module:
    return model.get_base_model() if hasattr(model, "get_base_model") else model
