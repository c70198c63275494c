"""The record of a batch: OUT/jobs.jsonl (append-only job states), the lock (one driver per OUT), and
OUT/batch-summary.json/.md. Only the driver writes them."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sdpo_ttt.grid.plan import Plan, point_tag
from sdpo_ttt.errors import UserError
from sdpo_ttt.files import append_jsonl, read_jsonl, write_atomic
from sdpo_ttt.run.rundir import RunDir

STATES = ("pending", "running", "done", "failed", "interrupted")
MANIFEST, SUMMARY_JSON, SUMMARY_MD, LOCK = "jobs.jsonl", "batch-summary.json", "batch-summary.md", ".batch.lock"


class Manifest:
    """OUT/jobs.jsonl: append-only state changes. The state of a job is its last line; torn lines are skipped."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def read(self) -> list[dict[str, Any]]:
        return [rec for rec in read_jsonl(self.path) if "job" in rec]

    def latest(self) -> dict[str, dict[str, Any]]:
        """job id -> its last record, merged over its earlier ones (so a job's description stays with it)."""
        view: dict[str, dict[str, Any]] = {}
        for rec in self.read():
            cur = view.setdefault(rec["job"], {})
            for k in ("error", "traceback", "status", "solved", "attempts_used", "discovery_attempt", "wall_s"):
                cur.pop(k, None)  # results of an earlier try do not outlive a new state
            cur.update(rec)
        return view

    def append(self, job: str, state: str, **fields: Any) -> None:
        assert state in STATES, state
        append_jsonl(self.path, {"job": job, "state": state, "time": round(time.time(), 3), **fields})


@contextlib.contextmanager
def batch_lock(out: Path) -> Iterator[None]:
    """One batch at a time on an OUT folder (two drivers would run the same job twice)."""
    out.mkdir(parents=True, exist_ok=True)
    f = open(out / LOCK, "a+")
    try:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            raise UserError(f"another batch is running on {out} ({f.read().strip() or 'unknown pid'})",
                            "wait for it to finish (or stop it), or pick another --out") from None
        f.seek(0)
        f.truncate()
        f.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
        f.flush()
        yield
    finally:
        f.close()


def run_outcome(path: Path) -> dict[str, Any]:
    """What batch-summary says of one run directory, finished or not: its status ("unfinished" before summary.json),
    attempts used, 1-based discovery attempt (None: no pass yet) and wall time."""
    run = RunDir.open_existing(path)
    summary, attempts = run.read_summary(), run.read_attempts()
    passed = [bool(a.get("passed")) for a in sorted(attempts, key=lambda a: a.get("index", 0))]
    first = next((i + 1 for i, p in enumerate(passed) if p), None)
    if summary and summary.get("discovery_attempt") is not None:
        first = int(summary["discovery_attempt"])
    return {"status": str(summary["status"]) if summary else "unfinished",
            "attempts_used": int(summary["attempts_used"]) if summary else len(passed), "discovery_attempt": first,
            "wall_time_s": float(summary["wall_time_s"]) if summary else None}


def write_summary(plan: Plan, manifest: Manifest) -> dict[str, Any]:
    """batch-summary.json and .md in OUT: per job, and per (grid point, problem, strategy): solved, discovery, time."""
    latest = manifest.latest()
    jobs = []
    for job in plan.jobs:
        m = latest.get(job.id, {})
        row: dict[str, Any] = {"job": job.id, **job.describe(), "state": m.get("state", "pending"), "error": m.get("error")}
        rec = None
        if (job.cell.path / "config.json").exists() and (job.cell.path / "problem.json").exists():
            with contextlib.suppress(Exception):
                rec = run_outcome(job.cell.path)
        rec = rec or {"status": None, "attempts_used": 0, "discovery_attempt": None, "wall_time_s": None}
        row.update({"status": rec["status"], "attempts_used": rec["attempts_used"], "discovery_attempt": rec["discovery_attempt"],
                    "solved": bool(rec["discovery_attempt"]), "wall_time_s": rec["wall_time_s"]})
        jobs.append(row)
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for row in jobs:
        groups.setdefault((point_tag(row["point"]), row["problem_id"], row["strategy"]), []).append(row)
    problems = []
    for (tag, pid, strategy), rows in groups.items():
        disc = [r["discovery_attempt"] for r in rows if r["discovery_attempt"]]
        problems.append({
            "point": tag, "problem_id": pid, "strategy": strategy, "runs": len(rows),
            "finished": sum(r["status"] in ("solved", "budget_exhausted") for r in rows),
            "solved_runs": len(disc), "solved": bool(disc), "discovery_attempts": [r["discovery_attempt"] for r in rows],
            "min_attempts_to_discovery": min(disc) if disc else None,
            "wall_time_s": round(sum(r["wall_time_s"] or 0.0 for r in rows), 3),
            "failed": sum(r["state"] == "failed" for r in rows),
        })
    counts = {s: sum(r["state"] == s for r in jobs) for s in STATES}
    data = {"out": str(plan.out), "jobs_total": len(jobs), "counts": counts, "problems": problems, "jobs": jobs,
            "skipped_problem_files": plan.broken, "points": [point_tag(p) for p in plan.points if p]}
    write_atomic(plan.out / SUMMARY_JSON, json.dumps(data, indent=2, default=str) + "\n")
    write_atomic(plan.out / SUMMARY_MD, summary_markdown(data))
    return data


def summary_markdown(data: dict[str, Any]) -> str:
    c = data["counts"]
    lines = ["# Batch summary", "", f"`{data['out']}`: {data['jobs_total']} jobs; "
             + ", ".join(f"{v} {k}" for k, v in c.items() if v), ""]
    has_points = any(p["point"] for p in data["problems"])
    head = (["grid point"] if has_points else []) + ["problem", "strategy", "solved runs", "attempts to discovery (per seed)", "wall time"]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for p in data["problems"]:
        disc = ", ".join(str(d) if d else "-" for d in p["discovery_attempts"])
        cells = ([p["point"]] if has_points else []) + [
            p["problem_id"], p["strategy"], f"{p['solved_runs']}/{p['runs']}" + (f" ({p['failed']} failed)" if p["failed"] else ""),
            disc, f"{p['wall_time_s']:.0f} s"]
        lines.append("| " + " | ".join(cells) + " |")
    failed = [j for j in data["jobs"] if j["state"] == "failed"]
    if failed or data["skipped_problem_files"]:
        lines += ["", "## Errors", ""]
        lines += [f"- problem file `{b['path']}` skipped: {b['error']}" for b in data["skipped_problem_files"]]
        lines += [f"- job `{j['job']}` failed: {j['error']}" for j in failed]
    lines += ["", "`-`: not solved within the budget (or not run). `sdpo-ttt report OUT` draws the discovery curves."]
    return "\n".join(lines) + "\n"
