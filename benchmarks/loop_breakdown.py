"""Seconds per SDPO step split into sample / judge / teacher forward / student forward+backward.

Runs the real loop (real model, real sandbox, real LoRA steps) on a problem the model does not solve,
for a few steps, then prints the mean split from metrics.jsonl. Peak memory of each loss mode vs the
naive implementation is printed by benchmarks/loss_memory.py (run with --with-loss-memory here).

    python benchmarks/loop_breakdown.py [--model qwen2.5-coder-0.5b] [--steps 2] [--batch-size 4] [--max-new-tokens 256]

Defaults (B=4, <= 256 new tokens, 2 update steps + the first sample) take ~4-6 min on a quiet 2-core machine.
torch threads: the product's default (sdpo_ttt/policy/threads.py), or --threads N; the last line says how many cores
other processes kept busy during the run (figures on a shared machine are slower than alone).
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="qwen2.5-coder-0.5b")
    ap.add_argument("--problem", default=str(REPO / "problems" / "count-inversions" / "problem.json"))
    ap.add_argument("--steps", type=int, default=2, help="update steps (default: 2)")
    ap.add_argument("--batch-size", type=int, default=4, help="attempts per step (default: 4)")
    ap.add_argument("--max-new-tokens", type=int, default=256, help="(default: 256)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads; 0 = the product's choice (default: 0)")
    ap.add_argument("--loss", default="logit")
    ap.add_argument("--sandbox", default="auto")
    ap.add_argument("--with-loss-memory", action="store_true", help="also run benchmarks/loss_memory.py")
    args = ap.parse_args()

    from sdpo_ttt.policy import threads
    from sdpo_ttt.config.tree import SolveConfig
    from sdpo_ttt.run.solve import solve

    cfg = SolveConfig(
        model=args.model, budget=args.batch_size * (args.steps + 1), batch_size=args.batch_size,
        max_new_tokens=args.max_new_tokens, loss=args.loss, sandbox=args.sandbox, seed=0, threads=args.threads,
    )
    before = threads.cpu_sample()
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        summary, run = solve(Path(args.problem), cfg, run_dir=Path(tmp) / "run", announce=lambda m: print(m, file=sys.stderr))
        wall = time.perf_counter() - t0
        metrics = run.read_metrics()
        attempts = run.read_attempts()
    if not metrics:
        print(f"no update step ran (solved at attempt {summary.discovery_attempt}); pick a harder --problem")
        return
    keys = [("sample", "time/sample_s"), ("judge", "time/judge_s"), ("teacher forward", "time/teacher_s"), ("student fwd+bwd", "time/student_fwd_bwd_s")]
    after = threads.cpu_sample()
    tokens = [a["completion_tokens"] for a in attempts]
    print(f"model={args.model} batch={args.batch_size} max_new_tokens={args.max_new_tokens} loss={args.loss} steps={len(metrics)} "
          f"torch threads={threads.current()} ({time.strftime('%Y-%m-%d')})")
    print(f"mean completion tokens: {statistics.mean(tokens):.0f}")
    total = 0.0
    for label, key in keys:
        v = statistics.mean(m[key] for m in metrics)
        total += v
        print(f"  {label:<16} {v:8.1f} s/step")
    print(f"  {'total':<16} {total:8.1f} s/step   (run wall time incl. model load: {wall:.0f} s)")
    sample_s = statistics.mean(m["time/sample_s"] for m in metrics)
    print(f"sampling: {args.batch_size * statistics.mean(tokens) / sample_s:.1f} tokens/s")
    print(f"peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
    if before and after:
        print(f"load: other processes kept {threads.others_busy(before, after):.2f} of {threads.available_cpus()} cores busy during the run")
    if args.with_loss_memory:
        subprocess.run([sys.executable, str(REPO / "benchmarks" / "loss_memory.py")], check=False)


if __name__ == "__main__":
    main()
