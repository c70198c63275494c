"""Pass rate of each built-in model on each shipped problem (n samples each), judged in the sandbox.

    python benchmarks/pass_rates.py                       # both built-ins, every problem, n=16
    python benchmarks/pass_rates.py --models smollm2-135m --problems fizzbuzz sum-two-ints -n 8
    python benchmarks/pass_rates.py --save samples.jsonl  # keep raw texts (to re-judge with other extraction rules)
    python benchmarks/pass_rates.py --load samples.jsonl  # re-judge saved samples, no model needed

Prints one row per (model, problem): pass rate with the chosen extraction rule (longest block, the
rule in sdpo_ttt.policy.extract) and with the alternative "last block", the fraction of attempts with
no extractable code, mean completion length and sampling time.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def extract_last(text: str) -> str | None:
    """The alternative rule, for comparison: the LAST candidate block instead of the longest."""
    from sdpo_ttt.policy import extract as ex

    cands = []
    for tag, body, _ in ex._blocks(text):
        body = body.strip("\n")
        if not body.strip():
            continue
        if (tag is not None and tag in ex._PY_TAGS) or (tag is None and ex.looks_like_program(body)):
            cands.append(body)
    if cands:
        return cands[-1].rstrip() + "\n"
    return ex.extract_code(text)


def sample_all(models: list[str], problems: list, n: int, max_new_tokens: int, batch: int, seed: int,
               save: Path | None = None) -> list[dict]:
    """Sample n attempts per (model, problem); rows are appended to `save` as each problem finishes."""
    from sdpo_ttt.config.policy import PolicyConfig
    from sdpo_ttt.policy.model import Policy

    rows: list[dict] = []
    for name in models:
        t0 = time.perf_counter()
        pol = Policy.load(PolicyConfig(model=name), seed=seed)
        print(f"# {name}: loaded in {time.perf_counter() - t0:.1f} s", flush=True)
        for prob in problems:
            ids = pol.chat_ids(pol.problem_messages(prob))
            t1 = time.perf_counter()
            comps = pol.sample([ids] * n, max_new_tokens=max_new_tokens, seed=seed, batch_size=batch, adapter=None)
            dt = time.perf_counter() - t1
            new = [{"model": name, "problem": prob.id, "i": i, "text": c.text, "n_tokens": len(c.completion_ids),
                    "finish": c.finish_reason, "sample_s": dt / n} for i, c in enumerate(comps)]
            rows.extend(new)
            if save is not None:
                with save.open("a") as f:
                    f.write("".join(json.dumps(r) + "\n" for r in new))
            print(f"#   {prob.id}: {n} samples in {dt:.0f} s", flush=True)
    return rows


def judge_rows(rows: list[dict], problems: dict, sandbox: str) -> None:
    from sdpo_ttt.policy.extract import extract_code
    from sdpo_ttt.sandbox import open_sandbox

    with open_sandbox(sandbox) as sb:
        for rule, fn in (("longest", extract_code), ("last", extract_last)):
            by_prob: dict[tuple[str, str], list[int]] = {}
            for k, r in enumerate(rows):
                by_prob.setdefault((r["model"], r["problem"]), []).append(k)
            for (_, pid), idx in by_prob.items():
                codes = [fn(rows[k]["text"]) for k in idx]
                todo = [k for k, c in zip(idx, codes, strict=True) if c is not None]
                verdicts = sb.judge_many(problems[pid], [c for c in codes if c is not None]) if todo else []
                for k in idx:
                    rows[k][f"passed_{rule}"] = False
                    rows[k][f"score_{rule}"] = 0.0
                    rows[k][f"nocode_{rule}"] = True
                for k, v in zip(todo, verdicts, strict=True):
                    rows[k][f"passed_{rule}"] = bool(v.passed)
                    rows[k][f"score_{rule}"] = float(v.score)
                    rows[k][f"nocode_{rule}"] = False


def print_table(rows: list[dict]) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title="pass rate per built-in model and shipped problem")
    for col in ("model", "problem", "n", "pass (longest)", "pass (last)", "mean score", "no code", "mean tokens", "s/sample"):
        t.add_column(col, justify="right" if col not in ("model", "problem") else "left")
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        groups.setdefault((r["model"], r["problem"]), []).append(r)
    totals: dict[str, list[dict]] = {}
    for (model, pid), rs in groups.items():
        totals.setdefault(model, []).extend(rs)
        n = len(rs)
        t.add_row(model, pid, str(n),
                  f"{sum(r['passed_longest'] for r in rs)}/{n}", f"{sum(r['passed_last'] for r in rs)}/{n}",
                  f"{sum(r['score_longest'] for r in rs) / n:.2f}", f"{sum(r['nocode_longest'] for r in rs)}",
                  f"{sum(r['n_tokens'] for r in rs) / n:.0f}", f"{sum(r['sample_s'] for r in rs) / n:.1f}")
    for model, rs in totals.items():
        n = len(rs)
        t.add_row(f"[bold]{model}[/]", "[bold]all[/]", str(n),
                  f"{sum(r['passed_longest'] for r in rs) / n:.1%}", f"{sum(r['passed_last'] for r in rs) / n:.1%}",
                  f"{sum(r['score_longest'] for r in rs) / n:.2f}", f"{sum(r['nocode_longest'] for r in rs)}",
                  f"{sum(r['n_tokens'] for r in rs) / n:.0f}", f"{sum(r['sample_s'] for r in rs) / n:.1f}")
    Console().print(t)


def main() -> None:
    from sdpo_ttt.policy.catalog import BUILTINS
    from sdpo_ttt.problem.schema import find_problem_files, load_problem

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=[n for n, b in BUILTINS.items() if not b.on_demand])  # optional ones by name
    ap.add_argument("--problems", nargs="*", default=None, help="problem ids (folders under problems/); default all")
    ap.add_argument("-n", type=int, default=16)
    ap.add_argument("--max-new-tokens", type=int, default=512)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--sandbox", default="auto")
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads (1 is much faster on a busy shared box)")
    ap.add_argument("--save", type=Path, default=None)
    ap.add_argument("--load", type=Path, default=None)
    a = ap.parse_args()
    if a.threads:
        import torch

        torch.set_num_threads(a.threads)

    files = find_problem_files([ROOT / "problems"])
    problems = {p.id: p for p in (load_problem(f) for f in files)}
    chosen = [problems[i] for i in a.problems] if a.problems else list(problems.values())
    if a.load:
        rows = [json.loads(line) for line in a.load.read_text().splitlines() if line.strip()]
    else:
        if a.save:
            a.save.write_text("")
        rows = sample_all(a.models, chosen, a.n, a.max_new_tokens, a.batch, a.seed, a.save)
    judge_rows(rows, problems, a.sandbox)
    if a.save and not a.load:
        a.save.with_suffix(".judged.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    print_table(rows)


if __name__ == "__main__":
    main()
