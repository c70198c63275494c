"""`sdpo-ttt problem calibrate`: how hard is each problem for THIS model? Sample n attempts per problem from the
base model (no adapter), judge them, and record the pass rate with a 95% Wilson interval, the mean completion
length and the verdict kinds; then optionally copy the problems whose pass rate lies in a range (the rarely
solved ones are where test-time discovery matters) into a new folder.

    report = calibrate([Path("problems/humaneval")], SolveConfig(model="smollm2-135m", strategy="best-of-k"), n=32, out=Path("cal.json"))
    chosen = select(report, 0.0, 0.1, into=Path("problems/humaneval-hard"))

calibration.json is rewritten atomically after every problem (a killed run leaves a valid, shorter file).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from sdpo_ttt.config.tree import SolveConfig
from sdpo_ttt.errors import UserError
from sdpo_ttt.files import write_atomic
from sdpo_ttt.problem.schema import find_problem_files, load_problem

Z95 = 1.959963984540054


def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion k/n (n > 0); (0, 1) for n == 0."""
    if n <= 0:
        return 0.0, 1.0
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def parse_range(text: str) -> tuple[float, float]:
    """"0.0-0.1" -> (0.0, 0.1), both ends inclusive."""
    try:
        lo, hi = (float(x) for x in text.split("-", 1))
    except ValueError:
        raise UserError(f"--select {text!r} is not a range", "write it as LOW-HIGH, e.g. 0.0-0.1") from None
    if not 0.0 <= lo <= hi <= 1.0:
        raise UserError(f"--select {text!r}: need 0 <= LOW <= HIGH <= 1", "e.g. --select 0.0-0.1") from None
    return lo, hi


def calibrate(
    paths: list[Path],
    cfg: SolveConfig,
    *,
    n: int,
    out: Path,
    sandbox: str = "auto",
    workers: int = 2,
    policy: Any = None,
    on_problem: Callable[[dict[str, Any]], None] | None = None,
    announce: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Sample n attempts per problem (temperature, max_new_tokens, seed and batch size from cfg) and judge them;
    returns (and writes to `out`) {"model", "n", ..., "problems": [{id, path, passed, n, pass_rate, ci95, ...}]}."""
    from sdpo_ttt.sandbox.feedback import FeedbackRules
    from sdpo_ttt.sandbox.judging import judge_batch
    from sdpo_ttt.policy.extract import extract_code
    from sdpo_ttt.sandbox import open_sandbox

    files = find_problem_files([Path(p) for p in paths])
    if not files:
        raise UserError(f"no problem.json under {', '.join(map(str, paths))}", "pass problem folders or problem.json files")
    problems = [(f, load_problem(f)) for f in files]
    if policy is None:
        from sdpo_ttt.policy.model import Policy
        policy = Policy.load(cfg.policy, seed=cfg.seed)
    report: dict[str, Any] = {
        "model": cfg.policy.model, "n": n, "temperature": cfg.sampling.temperature, "top_p": cfg.sampling.top_p,
        "max_new_tokens": cfg.sampling.max_new_tokens, "seed": cfg.seed, "sandbox": None,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S"), "problems": [],
    }
    batch = cfg.batch_size or 8
    with open_sandbox(sandbox, workers=workers, announce=announce) as sb:
        report["sandbox"] = getattr(sb, "name", sandbox)
        for path, problem in problems:
            t0 = time.monotonic()
            prompt = policy.chat_ids(policy.problem_messages(problem))
            comps = policy.sample([prompt] * n, temperature=cfg.sampling.temperature, top_p=cfg.sampling.top_p,
                                  max_new_tokens=cfg.sampling.max_new_tokens, seed=cfg.seed, adapter=None, batch_size=batch)
            verdicts, _ = judge_batch(problem, sb, [extract_code(c.text) for c in comps], FeedbackRules(visibility="binary"))
            k = sum(v.passed for v in verdicts)
            kinds: dict[str, int] = {}
            for v in verdicts:
                kinds[v.outcome.value] = kinds.get(v.outcome.value, 0) + 1
            lo, hi = wilson(k, n)
            row = {
                "id": problem.id, "path": str(path.parent), "passed": k, "n": n, "pass_rate": k / n,
                "ci95": [round(lo, 4), round(hi, 4)],
                "mean_score": round(sum(v.score for v in verdicts) / n, 4),
                "mean_completion_tokens": round(sum(len(c.completion_ids) for c in comps) / n, 1),
                "truncated": sum(c.finish_reason == "length" for c in comps),
                "verdicts": dict(sorted(kinds.items())),
                "wall_s": round(time.monotonic() - t0, 2),
            }
            report["problems"].append(row)
            write_atomic(Path(out), json.dumps(report, indent=2) + "\n")
            if on_problem:
                on_problem(row)
    return report


def select(report: dict[str, Any], lo: float, hi: float, *, into: Path | None = None, overwrite: bool = False) -> list[dict[str, Any]]:
    """The problems with lo <= pass_rate <= hi; copied (whole folders) into `into` when given."""
    chosen = [r for r in report["problems"] if lo <= r["pass_rate"] <= hi]
    if into is not None:
        into = Path(into)
        into.mkdir(parents=True, exist_ok=True)
        for r in chosen:
            src, dest = Path(r["path"]), into / Path(r["path"]).name
            if dest.exists():
                if not overwrite:
                    raise UserError(f"{dest} already exists", "pass --overwrite or choose an empty --into folder")
                shutil.rmtree(dest)
            tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".tmp", dir=into))
            shutil.copytree(src, tmp / "p")
            os.rename(tmp / "p", dest)
            tmp.rmdir()
    return chosen
