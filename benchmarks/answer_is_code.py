"""What stopping at the closing code fence changes (issue 26, "the answer is the code"): before/after on shipped problems.

    python3 benchmarks/answer_is_code.py                                   # 4 problems, n=8, <= 384 tokens, seed 0
    python3 benchmarks/answer_is_code.py --problems two-sum reverse-words -n 16 --threads 1

For each problem, the same n attempts (same prompt, same seed) are sampled twice with the default model on the
CPU decode loop: "before" runs each row to EOS or the token limit (`Policy.sample(stop_at_code=False)`, the
sampler before issue 26, judged on the longest block as then), "after" stops each row on the token that closes
its first code block (the default); the arms take turns going first. Both arms draw the same uniforms per row and step, so an "after" answer is
its "before" answer cut at the fence; the pass rate can only move where the longest block was not the first.

Printed and saved (JSON, benchmarks/results/answer_is_code-<UTC time>.json) per arm and problem:
tokens per attempt; cut-off rate at the token limit, split into "code cut" (the code block never closed: the
feedback's "cut off" notice is right) and "prose cut" (the code had closed, only the explanation after it was
cut: the notice was wrong before issue 26); the share of generated characters after the closing fence; pass
rate and mean score (sandbox); sampling seconds per attempt.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_PROBLEMS = ["reverse-words", "two-sum", "max-average-window", "merge-intervals"]  # README: 0.5B solves 4-7/16
ARMS = {"before": False, "after": True}  # arm -> stop_at_code


def attempt_row(text: str, n_tokens: int, finish: str) -> dict:
    """One attempt's measurements that need no sandbox."""
    from sdpo_ttt.policy.extract import code_end, extract_code
    from sdpo_ttt.policy.stop import code_cut

    end = code_end(text)
    return {"n_tokens": n_tokens, "finish": finish, "chars": len(text),
            "chars_after_code": len(text) - end if end is not None else 0,
            "cut": finish == "length", "code_cut": code_cut(text, finish), "code": extract_code(text), "text": text}


def summarize(rows: list[dict], sample_s: float) -> dict:
    n = len(rows)
    chars = sum(r["chars"] for r in rows)
    return {
        "n": n,
        "tokens_per_attempt": sum(r["n_tokens"] for r in rows) / n,
        "cut_rate": sum(r["cut"] for r in rows) / n,
        "code_cut_rate": sum(r["code_cut"] for r in rows) / n,
        "prose_cut_rate": sum(r["cut"] and not r["code_cut"] for r in rows) / n,
        "chars_after_code_frac": sum(r["chars_after_code"] for r in rows) / max(chars, 1),
        "passed": sum(r["passed"] for r in rows),
        "pass_rate": sum(r["passed"] for r in rows) / n,
        "mean_score": sum(r["score"] for r in rows) / n,
        "no_code": sum(r["code"] is None for r in rows),
        "sample_s": sample_s,
        "s_per_attempt": sample_s / n,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--problems", nargs="+", default=DEFAULT_PROBLEMS, help="problem folders under problems/")
    ap.add_argument("--model", default=None, help="default: the run default (qwen2.5-coder-0.5b)")
    ap.add_argument("-n", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=384)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--sandbox", default="auto")
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    ap.add_argument("--out", type=Path, default=None, help="JSON file (default benchmarks/results/answer_is_code-<time>.json)")
    a = ap.parse_args()

    import torch

    from sdpo_ttt.config.policy import PolicyConfig
    from sdpo_ttt.policy.model import Policy
    from sdpo_ttt.problem.schema import load_problem
    from sdpo_ttt.sandbox import open_sandbox

    if a.threads:
        torch.set_num_threads(a.threads)
    started = datetime.now(timezone.utc)
    cfg = PolicyConfig() if a.model is None else PolicyConfig(model=a.model)
    t0 = time.perf_counter()
    pol = Policy.load(cfg, seed=a.seed)
    print(f"# {cfg.model}: loaded in {time.perf_counter() - t0:.1f} s; {torch.get_num_threads()} torch threads", flush=True)
    problems = [load_problem(ROOT / "problems" / p) for p in a.problems]
    results: dict[str, dict] = {arm: {} for arm in ARMS}
    rows_all: dict[str, dict[str, list[dict]]] = {arm: {} for arm in ARMS}
    pol.sample([pol.chat_ids(pol.problem_messages(problems[0]))], max_new_tokens=2, seed=0, adapter=None)  # packs the weights once
    with open_sandbox(a.sandbox) as sb:
        for i, prob in enumerate(problems):
            ids = pol.chat_ids(pol.problem_messages(prob))
            for arm in (list(ARMS) if i % 2 == 0 else list(ARMS)[::-1]):  # alternate which arm goes first
                stop = ARMS[arm]
                t1 = time.perf_counter()
                comps = pol.sample([ids] * a.n, max_new_tokens=a.max_new_tokens, seed=a.seed, adapter=None, stop_at_code=stop)
                dt = time.perf_counter() - t1
                rows = [attempt_row(c.text, len(c.completion_ids), c.finish_reason) for c in comps]
                todo = [r for r in rows if r["code"] is not None]
                for r, v in zip(todo, sb.judge_many(prob, [r["code"] for r in todo]) if todo else [], strict=True):
                    r["passed"], r["score"] = bool(v.passed), float(v.score)
                for r in rows:
                    r.setdefault("passed", False)
                    r.setdefault("score", 0.0)
                results[arm][prob.id] = summarize(rows, dt)
                rows_all[arm][prob.id] = rows
                s = results[arm][prob.id]
                print(f"#   {prob.id:20s} {arm:6s} {s['tokens_per_attempt']:6.1f} tok  cut {s['cut_rate']:.0%} "
                      f"(code {s['code_cut_rate']:.0%})  pass {s['passed']}/{s['n']}  {s['s_per_attempt']:.1f} s/attempt", flush=True)
    prefix = sum(after["text"] == before["text"][: len(after["text"])]
                 for pid in rows_all["after"] for after, before in zip(rows_all["after"][pid], rows_all["before"][pid], strict=True))
    for arm in ARMS:
        pooled = [r for pid in rows_all[arm] for r in rows_all[arm][pid]]
        results[arm]["all"] = summarize(pooled, sum(results[arm][pid]["sample_s"] for pid in rows_all[arm]))
    print_table(results, a)
    print(f"after = before cut at the fence (same draws): {prefix}/{len(problems) * a.n} attempts")
    record = {
        "benchmark": "answer_is_code", "issue": 26, "started_utc": started.isoformat(timespec="seconds"),
        "finished_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": "python3 benchmarks/answer_is_code.py " + " ".join(_argv()), "model": cfg.model,
        "n": a.n, "max_new_tokens": a.max_new_tokens, "seed": a.seed, "torch_threads": torch.get_num_threads(),
        "sandbox": sb.name if hasattr(sb, "name") else a.sandbox, "host": platform.node(), "load_avg_at_end": _loadavg(),
        "after_is_prefix_of_before": prefix, "results": results,
        "attempts": {arm: {pid: [{k: v for k, v in r.items() if k != "text"} for r in rs] for pid, rs in per.items()}
                     for arm, per in rows_all.items()},
    }
    out = a.out or ROOT / "benchmarks" / "results" / f"answer_is_code-{started.strftime('%Y%m%dT%H%M%SZ')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=1) + "\n")
    print(f"saved {out}")


def print_table(results: dict, a: argparse.Namespace) -> None:
    head = ["problem", "arm", "tokens/attempt", "cut off", "code cut", "prose cut", "chars after code", "pass", "mean score", "s/attempt"]
    print(f"\n{a.n} samples per problem and arm, <= {a.max_new_tokens} tokens, seed {a.seed}")
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for pid in results["before"]:
        for arm in ARMS:
            s = results[arm][pid]
            print(f"| {pid} | {arm} | {s['tokens_per_attempt']:.0f} | {s['cut_rate']:.0%} | {s['code_cut_rate']:.0%} | "
                  f"{s['prose_cut_rate']:.0%} | {s['chars_after_code_frac']:.0%} | {s['passed']}/{s['n']} | {s['mean_score']:.2f} | "
                  f"{s['s_per_attempt']:.1f} |")


def _argv() -> list[str]:
    import sys

    return sys.argv[1:]


def _loadavg() -> list[float] | None:
    try:
        return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]
    except OSError:
        return None


if __name__ == "__main__":
    main()
