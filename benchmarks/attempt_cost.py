"""Seconds per attempt of SDPO against best-of-k: the same problem, budget, batch size and seeds, in one run.

SDPO wins only if it wins per second as well as per attempt. This runs both strategies with `--stop-on-success` off
(so every run spends its whole budget and the costs compare attempt for attempt), seed by seed and interleaved
(best-of-k, then SDPO, for each seed), with one model load shared by all runs, and prints per strategy: seconds per
attempt (wall clock of the run, model load excluded), tokens per attempt, seconds per 1,000 generated tokens, the
time split (sample / judge / teacher / student forward+backward), and the ratio SDPO / best-of-k of each, with the
load other processes put on the machine. The figures are written as JSON to --out (default
benchmarks/results/attempt_cost-<date>.json) so a published table can be rebuilt.

    python benchmarks/attempt_cost.py [--problem count-inversions] [--budget 16] [--batch-size 4] [--seeds 0,1]
    python benchmarks/attempt_cost.py --smoke     # tiny random model, fake-free but seconds (mechanics only)
    python benchmarks/attempt_cost.py --from-json benchmarks/results/attempt_cost-2026-12-07-quiet.json  # re-report

Two figures per strategy (issue 23). End to end: the run's wall clock over its budget. A run of budget b at batch
size B updates after ceil(b/B) - 1 batches (never after the last), so a short run understates the update's share:
budget 8 at B = 4 is one update for 8 attempts. Steady state: what an attempt costs in a long run, where every
batch of B attempts pays one update: (wall - update seconds) / attempts + update seconds per update / B, from the
same run (`steady_state`). The first part keeps sampling, judging and the per-batch bookkeeping (checkpoint, journal)
per attempt; the second charges each attempt a B-th of an update. At B = 4, budget 16 gives 3 updates: about 6 minutes a
seed on the quiet 2-core CPU with the 0.5B (2.4 min of best-of-k, 3.6 of SDPO at the 2026-12-07 rates).

Per-attempt cost differs between the strategies in two ways: SDPO adds its update (teacher pass + student
forward/backward) per batch, and its later attempts differ in length from best-of-k's (the update moves the
distribution): compare seconds per 1,000 tokens as well as per attempt.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
STRATEGIES = ("best-of-k", "sdpo")
SPLIT = (("sample", "sample_s"), ("judge", "judge_s"), ("update", "update_s"), ("teacher", "teacher_s"), ("student fwd+bwd", "student_fwd_bwd_s"))


def run_cost(summary: dict[str, Any], attempts: list[dict[str, Any]], metrics: list[dict[str, Any]]) -> dict[str, float]:
    """One run's cost: attempts, tokens, wall seconds and its split (summary.json's time_split_s: sample, judge,
    update; metrics.jsonl: the update's teacher pass and student forward+backward)."""
    split = summary.get("time_split_s", {})
    return {
        "attempts": len(attempts), "tokens": sum(int(a.get("completion_tokens", 0)) for a in attempts),
        "wall_s": float(summary["wall_time_s"]), "steps": len(metrics),
        "sample_s": float(split.get("sample", 0.0)), "judge_s": float(split.get("judge", 0.0)), "update_s": float(split.get("update", 0.0)),
        "teacher_s": sum(float(m.get("time/teacher_s", 0.0)) for m in metrics),
        "student_fwd_bwd_s": sum(float(m.get("time/student_fwd_bwd_s", 0.0)) for m in metrics),
    }


def per_attempt(runs: list[dict[str, float]]) -> dict[str, float]:
    """Pooled over runs: seconds and tokens per attempt, seconds per 1,000 tokens, each split part per attempt."""
    n = sum(r["attempts"] for r in runs)
    tokens = sum(r["tokens"] for r in runs)
    wall = sum(r["wall_s"] for r in runs)
    out = {"attempts": n, "s_per_attempt": wall / n, "tokens_per_attempt": tokens / n, "s_per_1k_tokens": 1000 * wall / max(tokens, 1)}
    for _, key in SPLIT:
        out[key.replace("_s", "_s_per_attempt")] = sum(r[key] for r in runs) / n
    return out


def steady_state(runs: list[dict[str, float]], batch_size: int) -> dict[str, float]:
    """Pooled over runs: seconds per attempt in a long run, where each batch of `batch_size` attempts pays one update.

    Everything but the update (sampling, judging, per-batch bookkeeping) per attempt, plus the update's seconds per
    update (= per batch learned from, `steps`) over the batch size; a strategy that never updates is its end-to-end
    figure."""
    n = sum(r["attempts"] for r in runs)
    steps = sum(r["steps"] for r in runs)
    update = sum(r["update_s"] for r in runs)
    rest = (sum(r["wall_s"] for r in runs) - update) / n
    per_update = update / steps if steps else 0.0
    return {"s_per_attempt": rest + per_update / batch_size, "rest_s_per_attempt": rest, "update_s_per_update": per_update,
            "update_s_per_attempt": per_update / batch_size, "updates": steps}


def figures(runs: dict[str, list[dict[str, float]]], batch_size: int) -> dict[str, Any]:
    """The published figures of the runs (`runs`: strategy -> each run's `run_cost`): pooled end-to-end, steady state,
    and SDPO over best-of-k of each."""
    pooled = {s: per_attempt(r) for s, r in runs.items()}
    steady = {s: steady_state(r, batch_size) for s, r in runs.items()}
    ratio = {k: pooled["sdpo"][k] / pooled["best-of-k"][k] for k in ("s_per_attempt", "tokens_per_attempt", "s_per_1k_tokens")}
    return {"pooled": pooled, "ratio_sdpo_over_best_of_k": ratio, "steady_state": steady,
            "ratio_steady_state": steady["sdpo"]["s_per_attempt"] / steady["best-of-k"]["s_per_attempt"]}


def table(fig: dict[str, Any], batch_size: int) -> str:
    """The printed table: end-to-end per attempt with its split, then the steady state."""
    pooled, ratio, steady = fig["pooled"], fig["ratio_sdpo_over_best_of_k"], fig["steady_state"]
    lines = [f"{'end to end':>16} {'s/attempt':>10} {'tokens/att':>10} {'s/1k tok':>9} " + " ".join(f"{label:>15}" for label, _ in SPLIT)]
    for s in STRATEGIES:
        p = pooled[s]
        lines.append(f"{s:>16} {p['s_per_attempt']:10.2f} {p['tokens_per_attempt']:10.0f} {p['s_per_1k_tokens']:9.2f} "
                     + " ".join(f"{p[key.replace('_s', '_s_per_attempt')]:15.2f}" for _, key in SPLIT))
    lines.append(f"{'sdpo/best-of-k':>16} {ratio['s_per_attempt']:9.2f}x {ratio['tokens_per_attempt']:9.2f}x {ratio['s_per_1k_tokens']:8.2f}x")
    lines.append(f"\n{'steady state':>16} {'s/attempt':>10} {'= rest/att':>10} {'+ update/B':>10}   (one update per batch of {batch_size})")
    for s in STRATEGIES:
        st = steady[s]
        lines.append(f"{s:>16} {st['s_per_attempt']:10.2f} {st['rest_s_per_attempt']:10.2f} {st['update_s_per_attempt']:10.2f}   "
                     f"({st['update_s_per_update']:.1f} s per update, {st['updates']} updates)")
    lines.append(f"{'sdpo/best-of-k':>16} {fig['ratio_steady_state']:9.2f}x")
    return "\n".join(lines)


def rereport(path: Path) -> dict[str, Any]:
    """The figures of a written JSON, recomputed from its runs (files written before the steady state have none)."""
    data = json.loads(path.read_text())
    return {**data, **figures(data["runs"], int(data["args"]["batch_size"]))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="qwen2.5-coder-0.5b")
    ap.add_argument("--problem", default="count-inversions", help="a problem the model rarely solves (name or path)")
    ap.add_argument("--budget", type=int, default=16, help="attempts per run (default: 16 = 3 SDPO updates at B=4)")
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--max-new-tokens", type=int, default=256)
    ap.add_argument("--seeds", default="0,1", help="comma-separated seeds; each runs both strategies (default: 0,1)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads; 0 = the product's choice")
    ap.add_argument("--sandbox", default="auto")
    ap.add_argument("--out", type=Path, default=None, help="JSON file for the figures")
    ap.add_argument("--smoke", action="store_true", help="tiny random model, local sandbox, budget 4: mechanics only")
    ap.add_argument("--from-json", type=Path, default=None, help="print the figures of a written JSON (no run); --out: write them")
    args = ap.parse_args()
    if args.from_json is not None:
        data = rereport(args.from_json)
        a = data["args"]
        print(f"{args.from_json}: model={a['model']} budget={a['budget']} B={a['batch_size']} seeds={a['seeds']} ({data['date_utc']} UTC, "
              f"other processes kept {data['others_busy_cores']:.2f} cores busy)")
        print(table(data, int(a["batch_size"])))
        if args.out:
            args.out.write_text(json.dumps(data, indent=1) + "\n")
            print(f"written: {args.out}")
        return

    from sdpo_ttt.config.tree import SolveConfig
    from sdpo_ttt.policy import threads
    from sdpo_ttt.policy.model import Policy
    from sdpo_ttt.problem.schema import resolve_problem_path
    from sdpo_ttt.run.solve import solve

    extra: dict[str, Any] = {}
    if args.smoke:
        from sdpo_ttt.policy.catalog import model_dir as builtin_dir
        from sdpo_ttt.policy.random_model import shape_config, write_random_model

        model_dir = write_random_model(shape_config("tiny-qwen2"), builtin_dir("smollm2-135m"), Path(tempfile.mkdtemp(prefix="sdpo-ttt-tiny-")) / "m")
        args.model, args.budget, args.batch_size, args.max_new_tokens, args.seeds, args.sandbox = str(model_dir), 4, 2, 8, "0", "local"
        extra = {"lora_rank": 2, "lora_alpha": 4, "lora_targets": ["q_proj", "v_proj"], "device": "cpu"}
    seeds = [int(s) for s in args.seeds.split(",")]
    problem = resolve_problem_path(Path(args.problem))

    def config(strategy: str, seed: int) -> SolveConfig:
        return SolveConfig(model=args.model, strategy=strategy, budget=args.budget, batch_size=args.batch_size, seed=seed,
                           max_new_tokens=args.max_new_tokens, sandbox=args.sandbox, threads=args.threads,
                           stop_on_success=False, **extra)

    policy = Policy.load(config("sdpo", seeds[0]).policy, seed=seeds[0])
    runs: dict[str, list[dict[str, float]]] = {s: [] for s in STRATEGIES}
    before = threads.cpu_sample()
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("student", "teacher"):  # every run starts from the loaded adapters, not the last SDPO run's
            policy.save_adapter(name, Path(tmp) / "initial" / name)
        for seed in seeds:
            for strategy in STRATEGIES:
                for name in ("student", "teacher"):
                    policy.load_adapter(name, Path(tmp) / "initial" / name)
                t0 = time.perf_counter()
                summary, run = solve(problem, config(strategy, seed), run_dir=Path(tmp) / f"{strategy}-{seed}", policy=policy,
                                     announce=lambda m: print(m, file=sys.stderr))
                cost = run_cost(run.read_summary() or {}, run.read_attempts(), run.read_metrics())
                runs[strategy].append(cost)
                print(f"seed {seed} {strategy:>9}: {cost['attempts']} attempts, {cost['tokens']} tokens, "
                      f"{cost['wall_s']:.1f} s ({time.perf_counter() - t0:.1f} s with set-up)", file=sys.stderr)
    after = threads.cpu_sample()
    fig = figures(runs, args.batch_size)
    load = threads.others_busy(before, after) if before and after else None

    print(f"\n{problem.parent.name}: model={args.model} budget={args.budget} B={args.batch_size} max_new_tokens={args.max_new_tokens} "
          f"seeds={seeds} torch threads={threads.current()} ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})")
    print(table(fig, args.batch_size))
    if load is not None:
        print(f"load: other processes kept {load:.2f} of {threads.available_cpus()} cores busy during the runs")
    out = args.out or REPO / "benchmarks" / "results" / f"attempt_cost-{time.strftime('%Y-%m-%d')}.json"
    if not args.smoke or args.out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({"args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
                                   "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()), "runs": runs, **fig,
                                   "others_busy_cores": load}, indent=1) + "\n")
        print(f"written: {out}")


if __name__ == "__main__":
    main()
