"""Does the bfloat16 sampling copy keep the float32 sampler's pass rate, and how much faster is it? (issue 23)

    python benchmarks/sampler_dtype.py                                  # 4 problems x 32 pairs, the 0.5B (~30 min on 2 cores)
    python benchmarks/sampler_dtype.py -n 24 --threads 2                # 96 pairs, ~25 min on a quiet 2-core CPU
    python benchmarks/sampler_dtype.py --problems two-sum,problems/fizzbuzz -n 8
    python benchmarks/sampler_dtype.py --smoke                          # tiny random model, local sandbox, seconds

One run, two samplers, one Policy each: `--sampler-dtype float32` (the default) and `bfloat16` (the decode loop's
packed weight copy rounded to bfloat16, where the CPU has avx512_bf16; sdpo_ttt/policy/decode.py). Per problem, n
attempts in batches of B drawn as the discovery loop draws them (sdpo_ttt/run/loop.py sample_and_judge): one
`Policy.sample` call per batch of B copies of the problem's prompt, seeded step_seed(seed, step), the base model
(best-of-k's adapter; SDPO's first batch is the same, its student starts at ΔW = 0), the run's default temperature,
top-p and max_new_tokens. Both samplers draw every token by inverse CDF from the same uniform per row and step, so
attempt i of the two is the same draw until bf16 rounding flips a token: the comparison is PAIRED. The two dtypes of
a batch run back to back, in alternating order, so load drift hits both alike. Every attempt is judged in the sandbox.

Per problem and pooled (pairs of all problems together; the same n each, so also the mean of the problems):
- pass rate of each dtype; discordant pairs (f32 passed & bf16 failed, the reverse) and the exact two-sided McNemar
  p-value (binomial sign test on the discordant pairs, sdpo_ttt/report/paired.sign_test);
- Δ pass rate and Δ mean score (fraction of tests passed), bf16 − f32 over pairs, with a 90% percentile bootstrap
  interval resampling pairs (sdpo_ttt/report/learning.bootstrap_mean);
- the share of pairs whose text is identical, and the median first token index where the others differ;
- tokens/s of each dtype (completion tokens / `Policy.sample` wall time; judging not counted) and bf16 / f32.
Also the CPU flags that decide the bf16 path (avx512_bf16; without it bfloat16 falls back to float32 and the
comparison is meaningless: said loudly), the load average at start and end, the cores other processes kept busy
while sampling, and the torch threads used. Raw per-attempt records go to --out (JSON).

Default problems: 4 shipped problems the 0.5B solves sometimes (base pass rate, n = 16: two-sum 3/16 and
reverse-words 13/16 in benchmarks/results/calibration-2026-12-07; fizzbuzz 11/16 and count-vowels 12/16 in
docs/results.md's 2026-11-23 table), so that discordant pairs can occur both ways.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DTYPES = ("float32", "bfloat16")
DEFAULT_PROBLEMS = ("two-sum", "reverse-words", "fizzbuzz", "count-vowels")
CPU_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16")


# ------------------------------------------------------------------------------------------- pure
def pair_attempts(f32: Sequence[dict[str, Any]], bf16: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Attempt i of float32 with attempt i of bfloat16 (same problem, batch step and row: the same uniforms).

    Each record: problem, i, step, row, the two dtypes' passed / score / n_tokens, `identical` (same text) and
    `first_diff` (the first token index where the ids differ; None when the ids are the same)."""
    from sdpo_ttt.report.learning import common_prefix

    if len(f32) != len(bf16):
        raise ValueError(f"{len(f32)} float32 attempts but {len(bf16)} bfloat16 ones: not paired")
    pairs = []
    for a, b in zip(f32, bf16, strict=True):
        if (a["problem"], a["i"], a["step"], a["row"]) != (b["problem"], b["i"], b["step"], b["row"]):
            raise ValueError(f"attempt {a['problem']}#{a['i']} paired with {b['problem']}#{b['i']}: not the same draw")
        common = common_prefix(a["ids"], b["ids"])
        same_ids = common == len(a["ids"]) == len(b["ids"])
        pairs.append({"problem": a["problem"], "i": a["i"], "step": a["step"], "row": a["row"],
                      **{f"{k}_f32": a[k] for k in ("passed", "score", "n_tokens", "outcome")},
                      **{f"{k}_bf16": b[k] for k in ("passed", "score", "n_tokens", "outcome")},
                      "identical": a["text"] == b["text"], "first_diff": None if same_ids else common})
    return pairs


def compare(pairs: Sequence[dict[str, Any]], *, n_boot: int = 5000, seed: int = 0) -> dict[str, Any]:
    """Paired figures of a set of pairs: pass counts and rates, discordant pairs and McNemar's exact p, Δ pass rate and
    Δ mean score (bf16 − f32) with 90% bootstrap intervals over pairs, identical share, median first difference."""
    from sdpo_ttt.report.learning import bootstrap_mean
    from sdpo_ttt.report.paired import sign_test

    n = len(pairs)
    f32_only = sum(p["passed_f32"] and not p["passed_bf16"] for p in pairs)
    bf16_only = sum(p["passed_bf16"] and not p["passed_f32"] for p in pairs)
    d_pass = [float(p["passed_bf16"]) - float(p["passed_f32"]) for p in pairs]
    d_score = [float(p["score_bf16"]) - float(p["score_f32"]) for p in pairs]
    dp, dp_lo, dp_hi = bootstrap_mean([d_pass], n_boot=n_boot, seed=seed)
    ds, ds_lo, ds_hi = bootstrap_mean([d_score], n_boot=n_boot, seed=seed)
    firsts = [p["first_diff"] for p in pairs if p["first_diff"] is not None]
    return {
        "pairs": n,
        "passed_f32": sum(bool(p["passed_f32"]) for p in pairs), "passed_bf16": sum(bool(p["passed_bf16"]) for p in pairs),
        "pass_rate_f32": _mean([float(p["passed_f32"]) for p in pairs]), "pass_rate_bf16": _mean([float(p["passed_bf16"]) for p in pairs]),
        "f32_only": f32_only, "bf16_only": bf16_only, "p_mcnemar": sign_test(f32_only, bf16_only),
        "d_pass_rate": dp, "d_pass_rate_ci90": [dp_lo, dp_hi],
        "mean_score_f32": _mean([float(p["score_f32"]) for p in pairs]), "mean_score_bf16": _mean([float(p["score_bf16"]) for p in pairs]),
        "d_mean_score": ds, "d_mean_score_ci90": [ds_lo, ds_hi],
        "identical": sum(bool(p["identical"]) for p in pairs), "identical_share": _mean([float(p["identical"]) for p in pairs]),
        "median_first_diff": statistics.median(firsts) if firsts else None,
    }


def speed(timing: dict[str, dict[str, float]]) -> dict[str, Any]:
    """tokens/s and seconds per attempt of each dtype from {dtype: {tokens, seconds, attempts}}, and bf16 / f32 tokens/s."""
    out: dict[str, Any] = {}
    for d, t in timing.items():
        out[f"tokens_per_s_{d}"] = t["tokens"] / t["seconds"] if t["seconds"] > 0 else float("nan")
        out[f"s_per_attempt_{d}"] = t["seconds"] / t["attempts"] if t["attempts"] else float("nan")
    f, b = out.get("tokens_per_s_float32"), out.get("tokens_per_s_bfloat16")
    out["speedup"] = b / f if f and b is not None else float("nan")
    return out


def cpu_flags(cpuinfo: str) -> dict[str, Any]:
    """The CPU model and whether each flag of CPU_FLAGS is present, from /proc/cpuinfo's text."""
    flags: set[str] = set()
    model = "?"
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags" and not flags:
            flags = set(value.split())
        elif key.strip() == "model name" and model == "?":
            model = value.strip()
    return {"model": model, **{f: f in flags for f in CPU_FLAGS}}


def _mean(xs: Sequence[float]) -> float:
    return sum(xs) / len(xs) if xs else float("nan")


# ------------------------------------------------------------------------------------------- sampling and judging
def sample_problem(policies: dict[str, Any], prompt: list[int], problem_id: str, *, n: int, batch_size: int, seed: int,
                   max_new_tokens: int, temperature: float = 1.0, top_p: float = 1.0) -> tuple[dict[str, list[dict]], dict[str, dict]]:
    """n attempts per dtype as the loop draws them: batch `step` is one Policy.sample call on min(B, left) copies of the
    prompt with seed step_seed(seed, step). The dtypes of a batch run back to back, first one first on even steps.
    Returns (per dtype, attempt records without verdicts), (per dtype, {tokens, seconds, attempts, threads})."""
    from sdpo_ttt.policy import threads
    from sdpo_ttt.run.loop import step_seed

    rows: dict[str, list[dict]] = {d: [] for d in policies}
    timing = {d: {"tokens": 0, "seconds": 0.0, "attempts": 0, "threads": []} for d in policies}
    order = list(policies)
    used, step = 0, 0
    while used < n:
        b = min(batch_size, n - used)
        for d in order if step % 2 == 0 else order[::-1]:
            t0 = time.perf_counter()
            comps = policies[d].sample([prompt] * b, temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens,
                                       seed=step_seed(seed, step), adapter=None)
            seconds = time.perf_counter() - t0
            tm = timing[d]
            tm["tokens"] += sum(len(c.completion_ids) for c in comps)
            tm["seconds"] += seconds
            tm["attempts"] += b
            tm["threads"].append(threads.current())
            rows[d] += [{"problem": problem_id, "i": used + r, "step": step, "row": r, "ids": list(c.completion_ids), "text": c.text,
                         "n_tokens": len(c.completion_ids), "finish": c.finish_reason} for r, c in enumerate(comps)]
        used += b
        step += 1
    return rows, timing


def judge(sandbox: Any, problem: Any, rows: list[dict]) -> None:
    """Judge each attempt's extracted program (no code: a format error, not run) and record passed, score, outcome."""
    from sdpo_ttt.policy.extract import extract_code
    from sdpo_ttt.sandbox.verdict import Verdict

    codes = [extract_code(r["text"]) for r in rows]
    runnable = [k for k, c in enumerate(codes) if c is not None]
    verdicts = [Verdict.format_error(len(problem.tests)) for _ in rows]
    for k, v in zip(runnable, sandbox.judge_many(problem, [codes[k] for k in runnable]) if runnable else [], strict=True):
        verdicts[k] = v
    for r, v in zip(rows, verdicts, strict=True):
        r.update(passed=bool(v.passed), score=float(v.score), outcome=v.outcome.value)


def bf16_status(policy: Any) -> str | None:
    """None when the policy's sampler really computes in bfloat16, else why it falls back to float32."""
    if policy.cfg.sampler_dtype != "bfloat16":
        return f"the policy was loaded with sampler_dtype {policy.cfg.sampler_dtype}"
    dec = policy.decoder()
    if dec is None:
        return f"the sampler is {policy.sampler.name}, not the CPU decode loop (bfloat16 applies to its packed copy only)"
    if not dec.pack:
        return "no packed weight copy (oneDNN missing, or less than 3x the copy's size of memory free)"
    if dec.low is None:
        return "this CPU has no avx512_bf16 (torch.cpu._is_avx512_bf16_supported() is false)"
    return None


# ------------------------------------------------------------------------------------------- report
def render(summary: dict[str, Any]) -> str:
    """The table: one line per problem and the pooled line."""
    head = ("| problem | pairs | pass f32 | pass bf16 | f32 only | bf16 only | McNemar p | Δ pass [90% CI] | Δ score [90% CI] "
            "| identical | median 1st diff | tok/s f32 | tok/s bf16 | bf16/f32 |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for name, s in [*summary["problems"].items(), ("**pooled**", summary["pooled"])]:
        first = "-" if s["median_first_diff"] is None else f"{s['median_first_diff']:g}"
        lines.append(
            f"| {name} | {s['pairs']} | {s['passed_f32']}/{s['pairs']} | {s['passed_bf16']}/{s['pairs']} | {s['f32_only']} | "
            f"{s['bf16_only']} | {s['p_mcnemar']:.3g} | {s['d_pass_rate']:+.3f} [{s['d_pass_rate_ci90'][0]:+.3f}, {s['d_pass_rate_ci90'][1]:+.3f}] | "
            f"{s['d_mean_score']:+.3f} [{s['d_mean_score_ci90'][0]:+.3f}, {s['d_mean_score_ci90'][1]:+.3f}] | "
            f"{s['identical']}/{s['pairs']} | {first} | "
            f"{s['tokens_per_s_float32']:.1f} | {s['tokens_per_s_bfloat16']:.1f} | {s['speedup']:.2f}x |")
    return "\n".join(lines)


def warning_text(why: str) -> str:
    bar = "!" * 100
    return (f"{bar}\n!!! bfloat16 sampler NOT in effect: {why}.\n!!! It samples in float32, exactly as the float32 arm: "
            f"the comparison below is MEANINGLESS (every pair identical, speed-up ~1).\n{bar}")


# ------------------------------------------------------------------------------------------- main
def main(argv: Sequence[str] | None = None) -> int:
    from sdpo_ttt.config.policy import DEFAULT_MODEL
    from sdpo_ttt.config.tree import SamplingConfig
    from sdpo_ttt.errors import UserError

    sampling = SamplingConfig()
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=DEFAULT_MODEL, help="model (default: %(default)s)")
    ap.add_argument("--problems", default=",".join(DEFAULT_PROBLEMS),
                    help="comma-separated shipped problem names or problem folders (default: %(default)s)")
    ap.add_argument("-n", type=int, default=32, help="attempts (pairs) per problem (default: %(default)s)")
    ap.add_argument("--seed", type=int, default=2000, help="run seed; batch s is seeded step_seed(seed, s) (default: %(default)s, "
                    "a seed no calibration used)")
    ap.add_argument("--batch-size", type=int, default=4, help="attempts per Policy.sample call, B (default: %(default)s)")
    ap.add_argument("--max-new-tokens", type=int, default=sampling.max_new_tokens, help="longest attempt (default: %(default)s, solve's)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads; 0 = the product's choice (SDPO_TTT_THREADS / "
                    "OMP_NUM_THREADS if set, else from the free CPUs, re-decided before each call) (default: 0)")
    ap.add_argument("--sandbox", default="auto", choices=["auto", "docker", "local"], help="(default: %(default)s)")
    ap.add_argument("--bootstrap", type=int, default=5000, help="bootstrap replicates (default: %(default)s)")
    ap.add_argument("--out", type=Path, default=None, help="JSON of the figures and every attempt "
                    "(default: benchmarks/results/sampler_dtype-<UTC date>.json; --smoke: none)")
    ap.add_argument("--smoke", action="store_true", help="tiny random model, local sandbox, 2 problems, n=4, 16 tokens")
    args = ap.parse_args(argv)
    args.command = "python benchmarks/sampler_dtype.py " + " ".join(sys.argv[1:] if argv is None else argv)
    try:
        return _run(args, sampling)
    except UserError as e:
        print(f"error: {e}" + (f" ({e.fix})" if e.fix else ""), file=sys.stderr)
        return 2


def _run(args: argparse.Namespace, sampling: Any) -> int:
    import torch

    from sdpo_ttt.config.policy import PolicyConfig
    from sdpo_ttt.policy import threads
    from sdpo_ttt.policy.decode import bf16_available
    from sdpo_ttt.policy.model import Policy
    from sdpo_ttt.problem.schema import load_problem
    from sdpo_ttt.sandbox import open_sandbox

    if args.smoke:
        import tempfile

        from sdpo_ttt.policy.random_model import smoke_model

        tiny = smoke_model(Path(tempfile.gettempdir()) / "sampler-dtype-smoke" / "tiny-model")
        args.model, args.n, args.max_new_tokens, args.sandbox, args.bootstrap = str(tiny), 4, 16, "local", 200
        args.problems = ",".join(DEFAULT_PROBLEMS[:2])
    if args.n < 1 or args.batch_size < 1:
        sys.exit("error: -n and --batch-size must be >= 1")
    problems = [load_problem(s.strip()) for s in args.problems.split(",") if s.strip()]
    start_wall = time.perf_counter()
    load_start = os.getloadavg()
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        cpuinfo = ""
    cpu = {**cpu_flags(cpuinfo), "torch_bf16_supported": bf16_available(), "cpus": threads.available_cpus()}

    def log(msg: str) -> None:
        print(f"[{(time.perf_counter() - start_wall) / 60:5.1f} min] {msg}", file=sys.stderr, flush=True)

    threads.configure(requested=args.threads or None)
    policies: dict[str, Any] = {}
    for d in DTYPES:
        t0 = time.perf_counter()
        pol = Policy.load(PolicyConfig(model=args.model, device="cpu", dtype="float32", sampler_dtype=d), seed=0)
        pol.sample([pol.chat_ids(pol.problem_messages(problems[0]))], max_new_tokens=4, seed=0, adapter=None)  # warm-up, packs
        policies[d] = pol
        log(f"{d} sampler: {args.model} loaded and packed in {time.perf_counter() - t0:.1f} s")
    why = bf16_status(policies["bfloat16"])
    if why:
        print(warning_text(why), flush=True)
    log(f"cpu: {cpu['model']}; " + ", ".join(f"{f} {'yes' if cpu[f] else 'NO'}" for f in CPU_FLAGS)
        + f"; load average {load_start[0]:.2f} {load_start[1]:.2f} {load_start[2]:.2f}")

    all_rows: dict[str, list[dict]] = {d: [] for d in DTYPES}
    timing: dict[str, dict[str, dict]] = {}
    busy_s = 0.0
    with open_sandbox(args.sandbox, workers=2, announce=log) as sandbox:
        for prob in problems:
            prompt = policies["float32"].chat_ids(policies["float32"].problem_messages(prob))
            before = threads.cpu_sample()
            t0 = time.perf_counter()
            rows, timing[prob.id] = sample_problem(policies, prompt, prob.id, n=args.n, batch_size=args.batch_size, seed=args.seed,
                                                   max_new_tokens=args.max_new_tokens, temperature=sampling.temperature, top_p=sampling.top_p)
            after = threads.cpu_sample()
            if before and after:
                busy_s += threads.others_busy(before, after) * (time.perf_counter() - t0)
            for d in DTYPES:
                judge(sandbox, prob, rows[d])
                all_rows[d] += rows[d]
            t = timing[prob.id]
            log(f"{prob.id}: " + ", ".join(f"{d} {sum(r['passed'] for r in rows[d])}/{args.n} passed, "
                                         f"{t[d]['tokens'] / t[d]['seconds']:.1f} tok/s" for d in DTYPES))
    for pol in policies.values():
        pol.close()
    sample_s = sum(t[d]["seconds"] for t in timing.values() for d in DTYPES)
    load_end = os.getloadavg()

    pairs = pair_attempts(all_rows["float32"], all_rows["bfloat16"])
    per_problem = {}
    for prob in problems:
        per_problem[prob.id] = {**compare([p for p in pairs if p["problem"] == prob.id], n_boot=args.bootstrap),
                                **speed(timing[prob.id])}
    pooled_timing = {d: {k: sum(t[d][k] for t in timing.values()) for k in ("tokens", "seconds", "attempts")} for d in DTYPES}
    summary = {"problems": per_problem, "pooled": {**compare(pairs, n_boot=args.bootstrap), **speed(pooled_timing)}}
    used_threads = sorted({x for t in timing.values() for d in DTYPES for x in t[d]["threads"]})
    others = busy_s / sample_s if sample_s > 0 else float("nan")
    table = render(summary)
    date = dt.datetime.now(dt.timezone.utc)
    print(f"\nsampler dtype check, {date:%Y-%m-%d %H:%M} UTC: {args.model}, seed {args.seed}, B {args.batch_size}, n {args.n} a problem, "
          f"max_new_tokens {args.max_new_tokens}, temperature {sampling.temperature}, top_p {sampling.top_p}, torch {torch.__version__}")
    print(table)
    print(f"\nΔ = bfloat16 − float32 over pairs; McNemar: exact two-sided sign test on the discordant pairs. "
          f"cpu: {cpu['model']}; " + ", ".join(f"{f} {'yes' if cpu[f] else 'NO'}" for f in CPU_FLAGS))
    print(f"torch threads used {used_threads}; load average at start {load_start[0]:.2f}, at end {load_end[0]:.2f}; other processes "
          f"kept {others:.2f} of {cpu['cpus']} cores busy while sampling; sampling {sample_s / 60:.1f} min, "
          f"wall {(time.perf_counter() - start_wall) / 60:.1f} min")
    if why:
        print(warning_text(why))
    if not args.smoke or args.out:
        out = args.out or ROOT / "benchmarks" / "results" / f"sampler_dtype-{date:%Y-%m-%d}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        for d in DTYPES:
            for r in all_rows[d]:
                r.pop("ids")
        out.write_text(json.dumps({
            "date": date.isoformat(timespec="seconds"), "commit": _commit(),
            "command": args.command,
            "settings": {"model": args.model, "problems": [p.id for p in problems], "n": args.n, "seed": args.seed,
                         "batch_size": args.batch_size, "max_new_tokens": args.max_new_tokens, "temperature": sampling.temperature,
                         "top_p": sampling.top_p, "threads_requested": args.threads, "sandbox": args.sandbox, "bootstrap": args.bootstrap},
            "machine": {"cpu": cpu, "torch": torch.__version__, "threads_used": used_threads,
                        "load_average_start": list(load_start), "load_average_end": list(load_end), "others_busy_cores": others},
            "bf16_in_effect": why is None, "bf16_fallback_reason": why,
            "timing": {pid: {d: dict(t[d]) for d in DTYPES} for pid, t in timing.items()},
            "summary": summary, "table": table, "pairs": pairs,
            "attempts": all_rows}, indent=1), encoding="utf-8")
        log(f"wrote {out}")
    return 0


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


if __name__ == "__main__":
    raise SystemExit(main())
