"""Sampling throughput against the memory-bandwidth bound, and the sampled log-probs against float32 re-scoring.

    python benchmarks/sampling_throughput.py                      # default model (qwen2.5-coder-0.5b), ~4 min on 2 cores
    python benchmarks/sampling_throughput.py --model smollm2-135m --batches 1 8 --max-new-tokens 64 --threads 1

For each batch size and adapter (base = adapters disabled; student LoRA = rank 16 on all projections, made
non-zero) one `Policy.sample` call on a shipped problem's prompt at temperature 1, every row running
max_new_tokens (EOS disabled, so a batch of 8 stays 8 rows). Columns:
- tokens/s: completion tokens over the call's wall time (what the loop gets, prefill included);
- decode tok/s: tokens produced by decode steps over the time after the first token (no prefill);
- bound tok/s: batch x copy bandwidth / bytes read per decode step, where bytes = every weight the step reads
  (projections, norms, LM head, plus the LoRA factors with the adapter) + the KV cache at the mean context;
  the copy bandwidth (bytes read + written per second by a 256 MiB tensor copy, best of 5, with the same
  thread count) is measured in this run;
- % bound: decode tok/s / bound tok/s.
Log-prob gap: |log p of each sampled token as the sampler computed it - log p from the float32 training
model's forward (transformers + peft, autograd on, as in the student pass)|, mean and max, over the first row of every call and all rows
of the batch-8 LoRA call. The load line says how many cores other processes kept busy meanwhile.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def copy_bandwidth(mib: int = 256, repeats: int = 5) -> float:
    """Bytes read + written per second by a large tensor copy (STREAM 'copy'), best of `repeats`."""
    import torch

    src = torch.ones(mib * 2**20 // 4)
    dst = torch.empty_like(src)
    dst.copy_(src)
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        dst.copy_(src)
        best = min(best, time.perf_counter() - t)
    return 2 * src.numel() * 4 / best


def step_bytes(policy, batch: int, context: float, adapter: bool, weight_bytes: int = 4) -> float:
    """Bytes one decode step reads: weights (the embedding matrix once, as the LM head) at weight_bytes a parameter
    (4: float32, 2: the bfloat16 sampling copy), LoRA factors, KV cache."""
    base = policy.model.get_base_model()
    cfg = base.config.get_text_config()
    weights = sum(p.numel() * weight_bytes for n, p in policy.model.named_parameters() if ".lora_" not in n)
    if not cfg.tie_word_embeddings:  # the input embedding is only looked up (B rows), not read whole
        emb = base.get_input_embeddings().weight
        weights -= emb.numel() * weight_bytes
    lora = sum(p.numel() * p.element_size() for n, p in policy.model.named_parameters() if ".lora_" in n and ".student." in n)
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    kv = cfg.num_hidden_layers * 2 * batch * cfg.num_key_value_heads * context * head_dim * 4
    return weights + (lora if adapter else 0) + kv


def training_logprobs(policy, prompt: list[int], completion: list[int], adapter: str | None):
    """log p of each completion token from the float32 training forward: transformers + peft with autograd on,
    as the student pass of an update computes them (without autograd, Policy.hidden_states uses the sampler's code)."""
    import torch

    with torch.enable_grad():
        h, _ = policy.hidden_states([prompt], [completion], adapter=adapter)
    with torch.no_grad():
        logits = h[0].detach().float() @ policy.lm_head_weight.float().T
        return torch.log_softmax(logits, -1).gather(1, torch.tensor(completion)[:, None]).squeeze(1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="qwen2.5-coder-0.5b", help="model (default: qwen2.5-coder-0.5b)")
    ap.add_argument("--problem", default=str(ROOT / "problems" / "fizzbuzz"), help="problem whose prompt is sampled (default: fizzbuzz)")
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 4, 8, 16], help="batch sizes (default: 1 4 8 16)")
    ap.add_argument("--max-new-tokens", type=int, default=128, help="tokens per row (default: 128)")
    ap.add_argument("--threads", type=int, default=0,
                    help="torch threads; 0 = the product's choice (SDPO_TTT_THREADS / OMP_NUM_THREADS if set, else from the free CPUs, "
                         "re-decided before each call) (default: 0)")
    ap.add_argument("--rescore-all-at", type=int, default=8, help="batch size whose LoRA call has every row re-scored (default: 8)")
    ap.add_argument("--sampler-dtype", default="float32", choices=("float32", "bfloat16"),
                    help="the sampler's weight copy (--sampler-dtype of the run; bfloat16 falls back to float32 without avx512_bf16)")
    a = ap.parse_args()

    import torch
    from rich.console import Console
    from rich.table import Table

    from sdpo_ttt.policy import threads
    from sdpo_ttt.config.policy import PolicyConfig
    from sdpo_ttt.policy.model import Policy
    from sdpo_ttt.problem.schema import load_problem

    threads.configure(requested=a.threads or None)
    t0 = time.perf_counter()
    pol = Policy.load(PolicyConfig(model=a.model, device="cpu", dtype="float32", sampler_dtype=a.sampler_dtype), seed=0)
    load_s = time.perf_counter() - t0
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():  # a non-zero student so that "LoRA" really computes B @ A x
        for p in pol.trainable_parameters():
            p.add_(1e-3 * torch.randn(p.shape, generator=g).to(p.device, p.dtype))
    pol.eos_ids = [-1]  # no row stops early: each batch size is measured at that size
    prompt = pol.chat_ids(pol.problem_messages(load_problem(a.problem)))
    pol.sample([prompt], max_new_tokens=4, seed=0)  # warm-up (and the decoder's weight packing)
    dec = pol.decoder()
    before = threads.cpu_sample()
    bw = copy_bandwidth()

    con = Console(width=150)
    low = dec is not None and dec.low is not None
    kernels = f"oneDNN, packed {'bfloat16' if low else 'float32'} weights" if dec is not None and dec.pack else \
        "oneDNN" if dec is not None and dec.onednn else "F.linear"
    sampler = "generate (transformers)" if dec is None else f"policy/decode.py ({kernels})"
    con.print(f"{a.model} float32 on cpu, torch {torch.__version__}; sampler: {sampler}; load {load_s:.1f} s; "
              f"prompt {len(prompt)} tokens; max_new_tokens {a.max_new_tokens}; copy bandwidth {bw / 1e9:.1f} GB/s", highlight=False)
    t = Table(title=f"sampling throughput vs the memory-bandwidth bound ({time.strftime('%Y-%m-%d')})")
    for col in ("batch", "adapter", "threads", "tokens", "seconds", "tokens/s", "decode tok/s", "bound tok/s", "% bound", "GB/step", "peak RSS GB"):
        t.add_column(col, justify="right")
    gaps: list[float] = []
    for b in a.batches:
        for adapter in (None, "student"):
            stamps: list[tuple[float, int]] = []
            t1 = time.perf_counter()
            comps = pol.sample([prompt] * b, max_new_tokens=a.max_new_tokens, seed=b, adapter=adapter, return_logprobs=True,
                               progress=lambda n, stamps=stamps: stamps.append((time.perf_counter(), n)))
            dt = time.perf_counter() - t1
            n = sum(len(c.completion_ids) for c in comps)
            dec_tokens, dec_s = n - stamps[0][1], stamps[-1][0] - stamps[0][0]
            dec_rate = dec_tokens / dec_s if dec_s > 0 else float("nan")
            context = len(prompt) + a.max_new_tokens / 2
            sb = step_bytes(pol, b, context, adapter is not None, 2 if low else 4)
            bound = b * bw / sb
            rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
            t.add_row(str(b), "student LoRA" if adapter else "base", str(threads.current()), str(n), f"{dt:.1f}", f"{n / dt:.1f}", f"{dec_rate:.1f}",
                      f"{bound:.1f}", f"{100 * dec_rate / bound:.0f}%", f"{sb / 1e9:.2f}", f"{rss:.2f}")
            rows = comps if (adapter and b == a.rescore_all_at) else comps[:1]
            for c in rows:
                gaps.extend((torch.tensor(c.logprobs) - training_logprobs(pol, c.prompt_ids, c.completion_ids, adapter)).abs().tolist())
            con.print(f"batch {b:>2} {'lora' if adapter else 'base'}: {n} tokens in {dt:.1f} s = {n / dt:.1f} tok/s, "
                      f"decode {dec_rate:.1f} tok/s = {100 * dec_rate / bound:.0f}% of {bound:.1f}", highlight=False)
    after = threads.cpu_sample()
    con.print(t)
    con.print(f"log-prob gap to float32 re-scoring over {len(gaps)} tokens: mean {statistics.mean(gaps):.2e}, max {max(gaps):.2e} (nats)",
              highlight=False)
    if before and after:
        con.print(f"load: other processes kept {threads.others_busy(before, after):.2f} of {threads.available_cpus()} cores busy "
                  f"during the measurements", highlight=False)


if __name__ == "__main__":
    main()
