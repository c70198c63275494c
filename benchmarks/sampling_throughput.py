"""Sampling throughput of the hf backend: tokens/s for batch 1, 4, 8, 16, with and without the LoRA adapter.

    python benchmarks/sampling_throughput.py                        # default model, this machine
    python benchmarks/sampling_throughput.py --model smollm2-135m --batches 1 8 --max-new-tokens 64 --threads 1

tokens/s counts the tokens of the returned completions (what the loop gets), over the wall time of
one `Policy.sample` call, on a shipped problem's prompt at temperature 1. "adapter" = sampling through
the student LoRA (rank 16 on all projections, non-zero); "base" = adapters disabled. Peak RSS is the
process's high-water mark after each row (it only grows). tokens/CPU-s divides by the process's CPU
time instead of wall time: on a shared, oversubscribed box it shows what the code would do alone.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    import torch
    from rich.console import Console
    from rich.table import Table

    from sdpo_ttt.policy.config import PolicyConfig
    from sdpo_ttt.policy.model import Policy
    from sdpo_ttt.problem import load_problem

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="qwen2.5-coder-0.5b")
    ap.add_argument("--problem", default=str(ROOT / "problems" / "fizzbuzz"))
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 4, 8, 16])
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--dtype", default="auto")
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's choice)")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)

    t0 = time.perf_counter()
    pol = Policy.load(PolicyConfig(model=a.model, device=a.device, dtype=a.dtype), seed=0)
    load_s = time.perf_counter() - t0
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():  # a non-zero student so that "adapter" really computes B @ A x
        for p in pol.trainable_parameters():
            p.add_(1e-3 * torch.randn(p.shape, generator=g).to(p.device, p.dtype))
    prompt = pol.chat_ids(pol.problem_messages(load_problem(a.problem)))
    pol.sample([prompt], max_new_tokens=4, seed=0)  # warm-up

    con = Console()
    con.print(f"{a.model} on {pol.device.type} ({pol.dtype}), {torch.get_num_threads()} threads, torch {torch.__version__}; "
              f"load {load_s:.1f} s; prompt {len(prompt)} tokens; max_new_tokens {a.max_new_tokens}", highlight=False)
    t = Table(title="sampling throughput (hf backend)")
    for col in ("batch", "adapter", "tokens", "seconds", "tokens/s", "tokens/CPU-s", "peak RSS (GB)"):
        t.add_column(col, justify="right")
    for b in a.batches:
        for adapter in (None, "student"):
            if pol.device.type == "cuda":
                torch.cuda.synchronize()
            t1, c1 = time.perf_counter(), time.process_time()
            comps = pol.sample([prompt] * b, max_new_tokens=a.max_new_tokens, seed=b, adapter=adapter)
            if pol.device.type == "cuda":
                torch.cuda.synchronize()
            dt, cpu = time.perf_counter() - t1, time.process_time() - c1
            n = sum(len(c.completion_ids) for c in comps)
            rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (1024 ** 2 if sys.platform != "darwin" else 1024 ** 3)
            t.add_row(str(b), "student LoRA" if adapter else "base", str(n), f"{dt:.1f}", f"{n / dt:.1f}", f"{n / cpu:.1f}", f"{rss:.2f}")
            con.print(f"batch {b:>2} {'lora' if adapter else 'base'}: {n} tokens in {dt:.1f} s = {n / dt:.1f} tok/s", highlight=False)
    con.print(t)
    if pol.device.type == "cuda":
        con.print(f"peak GPU memory {torch.cuda.max_memory_allocated() / 1e9:.2f} GB")


if __name__ == "__main__":
    main()
