"""Sandbox throughput: a trivial correct attempt with 10 tests, judged by

- docker-warm: DockerSandbox, the pool of long-lived containers (one long-lived judge session each);
- docker-naive: one fresh `docker run --rm` per attempt (same hardening, same runner);
- local: LocalSandbox (host subprocesses).

Prints attempts/s (a batch over `--workers` concurrent workers) and per-attempt latency p50/p95 (attempts
judged one at a time). Targets: warm >= 10x naive, warm within 3x of local.

    python benchmarks/sandbox_throughput.py [--attempts 20] [--naive-attempts 6] [--workers 2]
"""

from __future__ import annotations

import argparse
import random
import statistics
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

from sdpo_ttt.problem.schema import Problem, parse_problem
from sdpo_ttt.sandbox import DEFAULT_IMAGE, protocol
from sdpo_ttt.sandbox.docker_backend import SCRATCH, DockerSandbox
from sdpo_ttt.sandbox.docker_container import RUNNER_CAPS, TEMPORARY_CAPS
from sdpo_ttt.sandbox.local import LocalSandbox

CODE = "a, b = map(int, input().split())\nprint(a + b)\n"


def problem() -> Problem:
    tests = [{"input": f"{i} {2 * i}\n", "output": f"{3 * i}\n"} for i in range(10)]
    return parse_problem({"schema": 1, "id": "bench-add", "title": "add", "statement": "a+b", "kind": "stdio",
                          "tests": tests, "limits": {"time_s": 2, "memory_mb": 256}})


def naive_judge(p: Problem, code: str) -> bool:
    """One fresh hardened container per attempt: `docker run --rm -i ... python3 -c <boot>` (the code bundle
    and the request on its stdin), the same settings as docker_container.hardening() (the pool's containers)."""
    # A uid of its own per container, as the pool draws them: the attempt's clean-up kills as that uid until the kernel
    # counts none of its tasks, so two concurrent containers sharing one uid would wait on each other (~4 s, then a
    # replacement) — measured so on 2026-12-07 (0.15 attempts/s), an artefact of this benchmark, not of docker run.
    uid = 300_000 + random.randrange(0, 90_000) * 16 + 2 * random.randrange(0, 8)
    req = protocol.build_request(p, code, scratch=SCRATCH, child_uid=uid, tester_uid=uid + 1, wipe=["/dev/shm"])
    caps = [a for c in RUNNER_CAPS + TEMPORARY_CAPS for a in ("--cap-add", c)]  # the runner hides /proc, drops 2
    cmd = ["docker", "run", "--rm", "-i", "--network", "none", "--read-only", "--tmpfs",
           "/tmp:rw,nosuid,nodev,size=256m,mode=1777", "--shm-size", "8m", "--ipc", "private",
           "--pids-limit", "128", "--memory", "1g", "--memory-swap", "1g",
           "--cap-drop", "ALL", *caps, "--security-opt", "no-new-privileges", "--user", "0:0",
           "--log-driver", "none", "--init", "-e", "PYTHONDONTWRITEBYTECODE=1", "--label", "sdpo-ttt.bench=1",
           DEFAULT_IMAGE, *protocol.runner_command("python3", serve=False, hide_proc=True)]
    out = subprocess.run(cmd, input=protocol.bundle_frame() + protocol.encode_request(req), capture_output=True,
                         timeout=120).stdout
    v, _ = protocol.safe_assemble(p, out.splitlines(), req["nonce"], 0.0)
    return v.passed


def measure(name: str, judge_one: Callable[[], bool], judge_batch: Callable[[int], list[bool]], n: int,
            n_latency: int) -> dict[str, float]:
    judge_one()  # warm-up
    lat = []
    for _ in range(n_latency):
        t = time.perf_counter()
        assert judge_one(), f"{name}: the correct attempt failed"
        lat.append(time.perf_counter() - t)
    t = time.perf_counter()
    ok = judge_batch(n)
    dt = time.perf_counter() - t
    assert all(ok), f"{name}: a correct attempt failed"
    lat.sort()
    p95 = lat[min(len(lat) - 1, int(round(0.95 * (len(lat) - 1))))]
    return {"attempts_per_s": n / dt, "p50_s": statistics.median(lat), "p95_s": p95}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--attempts", type=int, default=20, help="attempts per batch (warm pool and local)")
    ap.add_argument("--naive-attempts", type=int, default=6, help="attempts for the naive docker-run way")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    p = problem()
    results: dict[str, dict[str, float]] = {}

    with DockerSandbox(workers=args.workers) as sb:
        results["docker-warm"] = measure("docker-warm", lambda: sb.judge(p, CODE).passed,
                                         lambda n: [v.passed for v in sb.judge_many(p, [CODE] * n)],
                                         args.attempts, args.attempts)
    with ThreadPoolExecutor(args.workers) as ex:
        results["docker-naive"] = measure("docker-naive", lambda: naive_judge(p, CODE),
                                          lambda n: list(ex.map(lambda _: naive_judge(p, CODE), range(n))),
                                          args.naive_attempts, args.naive_attempts)
    with LocalSandbox(workers=args.workers) as lb:
        results["local"] = measure("local", lambda: lb.judge(p, CODE).passed,
                                   lambda n: [v.passed for v in lb.judge_many(p, [CODE] * n)],
                                   args.attempts, args.attempts)

    print(f"trivial correct attempt, 10 tests, {args.workers} workers")
    print(f"{'backend':<14}{'attempts/s':>12}{'p50 (s)':>10}{'p95 (s)':>10}")
    for k, r in results.items():
        print(f"{k:<14}{r['attempts_per_s']:>12.2f}{r['p50_s']:>10.3f}{r['p95_s']:>10.3f}")
    warm, naive, local = (results[k]["attempts_per_s"] for k in ("docker-warm", "docker-naive", "local"))
    print(f"warm / naive throughput: {warm / naive:.1f}x (target >= 10x)")
    lat = results["docker-naive"]["p50_s"] / results["docker-warm"]["p50_s"]
    print(f"naive / warm latency (p50, one attempt at a time): {lat:.1f}x")
    print(f"local / warm throughput: {local / warm:.2f}x (target <= 3x)")


if __name__ == "__main__":
    main()
