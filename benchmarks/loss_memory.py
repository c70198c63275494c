"""Peak memory of the SDPO loss, forward + backward: chunked driver vs naive (everything materialized).

Each variant runs in a FRESH subprocess, so one variant's allocator cache cannot hide another's peak.
  CPU:  peak = ru_maxrss (resident-set high-water mark) after loss+backward − ru_maxrss after building inputs
  CUDA: peak = torch.cuda.max_memory_allocated() − memory_allocated() after building inputs
Inputs: student hidden [B, T, H] (grad), teacher hidden [B, T, H], lm_head W [V, H], all attempt tokens
unmasked. For scale, one [B·T, V] float32 tensor is printed too.

    python benchmarks/loss_memory.py                       # B=2, T=256, V=151936 (Qwen), H=896: ~1-2 min on 2 cores
    python benchmarks/loss_memory.py --batch 4 --seq 512   # the issue's shape (naive needs >10 GB)
    python benchmarks/loss_memory.py --device cuda --dtype bfloat16 --batch 16 --seq 2048
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time


def worker(a: argparse.Namespace) -> None:
    import torch

    from sdpo_ttt.sdpo.chunked import naive_sdpo_loss, sdpo_loss
    from sdpo_ttt.config.sdpo import LossConfig

    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    dev, dt = torch.device(a.device), getattr(torch, a.dtype)
    B, T, H, V = a.batch, a.seq, a.hidden, a.vocab
    w = (torch.randn(V, H, device=dev) * H**-0.5).to(dt)
    s = torch.randn(B, T, H, device=dev).to(dt).requires_grad_(True)
    tch = (s.detach() + 0.1 * torch.randn(B, T, H, device=dev).to(dt)).to(dt)
    y = torch.randint(0, V, (B, T), device=dev)
    mask = torch.ones(B, T, dtype=torch.bool, device=dev)
    cfg = LossConfig(mode=a.mode, topk=a.topk, chunk_tokens=a.chunk)
    fn = sdpo_loss if a.impl == "chunked" else naive_sdpo_loss

    if dev.type == "cuda":
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
    else:
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    t0 = time.perf_counter()
    out = fn(s, tch, w, y, mask, cfg)
    out.loss.backward()
    if dev.type == "cuda":
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() - base
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - base
    secs = time.perf_counter() - t0
    print(json.dumps({"peak_bytes": peak, "seconds": secs, "loss": float(out.loss), "grad_norm": float(s.grad.float().norm())}))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--seq", type=int, default=256)
    p.add_argument("--hidden", type=int, default=896)
    p.add_argument("--vocab", type=int, default=151936)
    p.add_argument("--topk", type=int, default=20)
    p.add_argument("--chunk", type=int, default=256, help="LossConfig.chunk_tokens of the chunked driver")
    p.add_argument("--modes", default="logit,full")
    p.add_argument("--impls", default="chunked,naive")
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="float32", help="dtype of hidden states and lm_head (logits math is fp32)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--mode", default="logit", help=argparse.SUPPRESS)
    p.add_argument("--impl", default="chunked", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.worker:
        worker(a)
        return

    gib = 2**30
    one = a.batch * a.seq * a.vocab * 4
    print(f"B={a.batch} T={a.seq} H={a.hidden} V={a.vocab} K={a.topk} chunk={a.chunk} device={a.device} dtype={a.dtype}")
    print(f"one [B*T, V] float32 tensor = {one / gib:.2f} GiB\n")
    print(f"{'mode':<8}{'impl':<9}{'peak GiB':>10}{'x [BT,V]':>10}{'seconds':>9}{'loss':>14}{'grad norm':>12}")
    common = [f"--{k}={getattr(a, k)}" for k in ("batch", "seq", "hidden", "vocab", "topk", "chunk", "device", "dtype", "threads")]
    for mode in a.modes.split(","):
        for impl in a.impls.split(","):
            cmd = [sys.executable, __file__, "--worker", f"--mode={mode}", f"--impl={impl}", *common]
            r = subprocess.run(cmd, capture_output=True, text=True)
            if r.returncode != 0:
                tail = (r.stderr.strip().splitlines() or ["killed (out of memory?)"])[-1]
                print(f"{mode:<8}{impl:<9}  failed (rc={r.returncode}): {tail}")
                continue
            res = json.loads(r.stdout.strip().splitlines()[-1])
            pk = res["peak_bytes"]
            print(
                f"{mode:<8}{impl:<9}{pk / gib:>10.2f}{pk / one:>10.1f}{res['seconds']:>9.1f}"
                f"{res['loss']:>14.6g}{res['grad_norm']:>12.5g}"
            )


if __name__ == "__main__":
    main()
