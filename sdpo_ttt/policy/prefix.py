"""A prompt prefix shared by several rows, run once: its KV cache, then each row's rest against it.

Every attempt of a batch answers the same question, so the student prompts are identical and the teacher prompts
(x, [d], f) share the question x and differ only after it. `Policy.hidden_states` lays each row out as
[left pad | prompt | completion] and recomputes the shared part once per row; with a `Prefix` it runs

    prefix   p = the common part, once, one row        ─► per layer K, V [1, n_kv, P, head_dim] (post-RoPE)
    rest     [prompt[P:] | completion[:-1] | right pad] per row, positions P.., attending to p's K, V (expanded)

and returns the same hidden states. The prefix keeps at least the last prompt token of every row out of p, so
each row's first completion token is predicted by a position of its own rest (`common_prefix`).

With autograd the prefix is part of the graph (the LoRA changes its activations): the rows read K, V through
detached leaves, each micro-batch's backward accumulates its gradient into them, and `Prefix.backward` pushes the
sum through the prefix's graph once, so the gradient equals the unshared computation's (micro-batches included).
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

MIN_SHARED_TOKENS = 16  # a shorter common prefix saves less than the rest's explicit attention mask costs

KV = list[tuple[Tensor, Tensor]]  # per layer: keys, values [rows, n_kv, tokens, head_dim]


def common_prefix(prompts: list[list[int]]) -> int:
    """Length of the longest prefix every prompt starts with, short of each prompt's last token."""
    if not prompts:
        return 0
    first, n = prompts[0], min(len(p) for p in prompts) - 1
    for i in range(max(n, 0)):
        if any(p[i] != first[i] for p in prompts):
            return i
    return max(n, 0)


def shared_ids(prompts: list[list[int]]) -> list[int] | None:
    """The prefix worth sharing among these prompts (two rows or more, at least MIN_SHARED_TOKENS), or None."""
    n = common_prefix(prompts)
    return list(prompts[0][:n]) if len(prompts) > 1 and n >= MIN_SHARED_TOKENS else None


@dataclass
class Prefix:
    """The K, V of a shared prompt prefix under one adapter (None: the base model)."""

    ids: list[int]
    adapter: str | None
    kv: KV  # what the rows read: [1, n_kv, P, head_dim]; leaves that collect the rows' gradient when built with grad
    graph: KV = field(default_factory=list)  # the same tensors inside the prefix's graph (with grad only)

    @classmethod
    def of(cls, ids: list[int], adapter: str | None, kv: KV) -> "Prefix":
        leaf = lambda t: t.detach().requires_grad_(t.requires_grad)  # noqa: E731  (K of a layer without LoRA on k_proj: no grad)
        grad = any(t.requires_grad for pair in kv for t in pair)
        return cls(list(ids), adapter, [(leaf(k), leaf(v)) for k, v in kv], kv if grad else [])

    def fits(self, prompts: list[list[int]], adapter: str | None) -> bool:
        n = len(self.ids)
        return adapter == self.adapter and all(len(p) > n and p[:n] == self.ids for p in prompts)

    def expanded(self, rows: int) -> KV:
        return [(k.expand(rows, -1, -1, -1), v.expand(rows, -1, -1, -1)) for k, v in self.kv]

    def backward(self) -> None:
        """Push the gradient the rows left on the prefix's K, V through the prefix's own forward (once)."""
        pairs = [(g, leaf.grad) for gs, ls in zip(self.graph, self.kv, strict=True) for g, leaf in zip(gs, ls, strict=True)
                 if g.requires_grad and leaf.grad is not None]
        if pairs:
            torch.autograd.backward([g for g, _ in pairs], [d for _, d in pairs])
        self.graph = []


@dataclass
class Rest:
    """The rows after a prefix of P tokens: [prompt[P:] | completion[:-1] | right pad], positions P, P+1, ..."""

    ids: Tensor  # [B, S] long
    valid: Tensor  # [B, S] bool: not padding
    positions: Tensor  # [B, S] long
    at: Tensor  # [B, T] long: the index into S of the hidden state that predicts completion token t
    mask: Tensor  # [B, T] bool: a real completion token

    def attention_mask(self, prefix_len: int) -> Tensor:
        """[B, 1, S, P + S] bool: every row sees the whole prefix, then its own earlier (non-pad) tokens."""
        b, s = self.ids.shape
        causal = torch.ones(s, s, dtype=torch.bool, device=self.ids.device).tril()
        own = causal[None] & self.valid[:, None, :]
        seen = torch.ones(b, s, prefix_len, dtype=torch.bool, device=self.ids.device)
        return torch.cat([seen, own], -1)[:, None]

    def gather(self, h: Tensor) -> Tensor:
        """The hidden states [B, S, H] of the rest at the completion tokens: [B, T, H] (zeros under mask False)."""
        picked = h.gather(1, self.at[..., None].expand(-1, -1, h.shape[-1]))
        return picked * self.mask[..., None].to(picked.dtype)


def rest_layout(prompts: list[list[int]], completions: list[list[int]], prefix_len: int, pad_id: int,
                device: torch.device) -> Rest:
    """The rows after the first prefix_len prompt tokens, right-padded (every prompt must be longer than that)."""
    B, P = len(prompts), prefix_len
    T = max((len(c) for c in completions), default=0)
    seqs = [list(p[P:]) + list(c[:-1]) for p, c in zip(prompts, completions, strict=True)]
    S = max(len(s) for s in seqs)
    ids = torch.full((B, S), pad_id, dtype=torch.long)
    valid = torch.zeros((B, S), dtype=torch.bool)
    at = torch.zeros((B, T), dtype=torch.long)
    mask = torch.zeros((B, T), dtype=torch.bool)
    for b, (p, c, s) in enumerate(zip(prompts, completions, seqs, strict=True)):
        ids[b, : len(s)] = torch.tensor(s, dtype=torch.long)
        valid[b, : len(s)] = True
        first = len(p) - P - 1  # the last prompt token predicts the first completion token
        at[b, : len(c)] = torch.arange(first, first + len(c))
        mask[b, : len(c)] = True
    positions = (P + torch.arange(S))[None].expand(B, S)
    return Rest(ids.to(device), valid.to(device), positions.to(device), at.to(device), mask.to(device))


def hf_prefix_kv(decoder: torch.nn.Module, config: object, ids: list[int], device: torch.device) -> KV:
    """K, V of one prompt prefix through a transformers decoder (autograd iff enabled; train/eval mode as set)."""
    cache = _read_only_cache(config, None)
    x = torch.tensor([ids], dtype=torch.long, device=device)
    with _layers_keep_cache(decoder):
        decoder(input_ids=x, position_ids=torch.arange(len(ids), device=device)[None], use_cache=True, **{_cache_kwarg(decoder): cache})
    return list(cache.written)


def hf_rest_hidden(decoder: torch.nn.Module, config: object, prefix: Prefix, rest: Rest) -> Tensor:
    """Final hidden states [B, T, H] of the rest rows through a transformers decoder, over the prefix's K, V."""
    b = rest.ids.shape[0]
    cache = _read_only_cache(config, prefix.expanded(b))
    att = torch.cat([torch.ones(b, len(prefix.ids), dtype=torch.long, device=rest.ids.device), rest.valid.long()], -1)
    with _layers_keep_cache(decoder):
        h = decoder(input_ids=rest.ids, attention_mask=att, position_ids=rest.positions, use_cache=True,
                    **{_cache_kwarg(decoder): cache}).last_hidden_state
    return rest.gather(h)


def checkpointing_keeps_cache(decoder: torch.nn.Module) -> bool:
    """Whether this transformers version lets a checkpointed layer read a KV cache (`_can_checkpoint_with_cache`);
    without it, gradient checkpointing drops the cache and the prefix cannot be used with autograd."""
    return all(hasattr(layer, "_can_checkpoint_with_cache") for layer in decoder.layers)


@contextmanager
def _layers_keep_cache(decoder: torch.nn.Module) -> Iterator[None]:
    """Let checkpointed layers keep the cache: legitimate here, the cache is never written (a layer's replay in
    backward reads the same K, V and records the same new ones)."""
    layers = [layer for layer in decoder.layers if hasattr(layer, "_can_checkpoint_with_cache")]
    for layer in layers:
        layer._can_checkpoint_with_cache = True
    try:
        yield
    finally:
        for layer in layers:
            del layer._can_checkpoint_with_cache  # back to the class's own value


def _cache_kwarg(decoder: torch.nn.Module) -> str:
    """The decoder's name for the KV cache argument (`cache` from transformers 5.2x, `past_key_values` before)."""
    return "cache" if "cache" in inspect.signature(decoder.forward).parameters else "past_key_values"


def _read_only_cache(config: object, kv: KV | None) -> Any:
    """A transformers cache holding kv (None: empty) that every layer reads and none grows: `update` returns the
    held K, V followed by the layer's new ones and records the new ones in `written` (the prefix pass's output)."""
    from transformers import DynamicCache

    class ReadOnlyCache(DynamicCache):
        def update(self, key_states: Tensor, value_states: Tensor, layer_idx: int, *args: Any, **kwargs: Any) -> tuple[Tensor, Tensor]:
            self.written[layer_idx] = (key_states, value_states)
            if kv is None:
                return key_states, value_states
            k, v = kv[layer_idx]
            return torch.cat([k, key_states], -2), torch.cat([v, value_states], -2)

    cache = ReadOnlyCache(ddp_cache_data=kv, config=config) if kv is not None else ReadOnlyCache(config=config)
    cache.written = [None] * len(cache.layers)
    return cache
