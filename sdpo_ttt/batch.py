"""`batch`: problem x strategy x seed x grid point -> jobs, each its own run directory, with a jobs.jsonl manifest.

Layout under OUT (a `compare` grid per grid point; no grid: exactly compare's layout):
    OUT/[<grid point>/]<problem-id>/<strategy>/seed<k>/   one `solve` run directory per job
    OUT/jobs.jsonl                                        the manifest: one line per job state change, append-only
    OUT/batch-summary.json, OUT/batch-summary.md          written at the end (also after Ctrl-C)
    OUT/report/                                           `sdpo-ttt report OUT` (report.py, as for compare)
A grid point folder is named by its overrides, e.g. `lr=0.0003,temperature=0.7`.

The run directories are the truth, the manifest is the record: a job whose run directory is finished is skipped
(whatever the manifest says), an unfinished one is resumed, a missing one started (compare.cell_state); a job
whose last manifest state is `failed` is left alone unless --retry-failed. Only the driver writes the manifest
(workers and Ray tasks send it their results), one whole line per write, so a kill leaves at most a torn last
line, which readers skip.

Executors: `local` runs the jobs in this process one after another (one GPU: one job at a time), or with
--workers N in N worker processes (CPU); `ray` (batch_ray.py) runs each job as a Ray task.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import itertools
import json
import multiprocessing as mp
import os
import queue
import signal
import socket
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sdpo_ttt.compare import Cell, SharedPolicy, cell_state, plan_grid, run_cell
from sdpo_ttt.config import FLAT, SolveConfig
from sdpo_ttt.errors import UserError
from sdpo_ttt.problem import find_problem_files, load_problem
from sdpo_ttt.runs import write_atomic

STATES = ("pending", "running", "done", "failed", "interrupted")
RESERVED_KEYS = {"strategy": "--strategy", "seed": "--seeds / --seed-start", "stop_on_success": "--best-of-k-fixed-n/--best-of-k-stop"}
MANIFEST, SUMMARY_JSON, SUMMARY_MD, LOCK = "jobs.jsonl", "batch-summary.json", "batch-summary.md", ".batch.lock"


# ------------------------------------------------------------------ planning
@dataclass(frozen=True)
class Job:
    """One run: a compare cell plus the grid point it belongs to."""

    id: str  # the run directory relative to OUT, e.g. "lr=0.001/two-sum/sdpo/seed2"
    cell: Cell
    point: dict[str, Any]

    def describe(self) -> dict[str, Any]:
        c = self.cell
        return {"problem_id": c.problem_id, "problem_path": str(c.problem_path), "strategy": c.strategy, "seed": c.seed,
                "point": self.point, "run_dir": str(c.path)}


@dataclass
class Plan:
    out: Path
    jobs: list[Job]
    broken: list[dict[str, str]]  # problem files that do not load: {"path", "error"}
    points: list[dict[str, Any]]


def parse_value(text: str) -> Any:
    """A --grid value: JSON when it parses (numbers, true/false, null, lists), else the plain string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _key(raw: str, flag: str) -> str:
    key = raw.strip().replace("-", "_")
    if key in RESERVED_KEYS:
        raise UserError(f"{flag} {raw}: the {key} is set by {RESERVED_KEYS[key]}", f"drop it from {flag} and use {RESERVED_KEYS[key]}")
    if key not in FLAT:
        raise UserError(f"{flag}: unknown option {raw!r}", "use an option of `sdpo-ttt solve --help` (dashes or underscores), e.g. --grid lr=1e-4,3e-4")
    return key


def parse_grid(items: Sequence[str]) -> dict[str, list[Any]]:
    """--grid key=v1,v2 ... -> {key: [v1, v2]} (one axis per --grid)."""
    out: dict[str, list[Any]] = {}
    for item in items:
        if "=" not in item:
            raise UserError(f"--grid {item!r}: expected key=v1,v2,...", "e.g. --grid lr=1e-4,3e-4")
        k, v = item.split("=", 1)
        key = _key(k, "--grid")
        values = [parse_value(x.strip()) for x in v.split(",") if x.strip()]
        if not values or key in out:
            raise UserError(f"--grid {item!r}: " + ("no values" if not values else f"{key} given twice"), "one --grid key=v1,v2 per option")
        out[key] = list(dict.fromkeys(values))
    return out


def grid_points(grid: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """The cartesian product of the axes, first axis slowest; [{}] for no grid."""
    keys = list(grid)
    return [dict(zip(keys, combo)) for combo in itertools.product(*(grid[k] for k in keys))]


def point_tag(point: dict[str, Any]) -> str:
    """The folder name of a grid point ('' for none): key=value joined by commas, safe as one path component."""
    def fmt(v: Any) -> str:
        return v if isinstance(v, str) else json.dumps(v, separators=(",", ":"))

    tag = ",".join(f"{k}={fmt(v)}" for k, v in point.items())
    return tag.replace("/", "--").replace(os.sep, "--").replace("\0", "")


def check_problems(paths: Sequence[Path]) -> tuple[list[Path], list[dict[str, str]]]:
    """Problem files that load, and the broken ones with their error (reported and skipped, never fatal)."""
    files = find_problem_files(list(paths))
    good, broken = [], []
    for f in files:
        try:
            load_problem(f)
            good.append(Path(f).resolve())
        except UserError as e:
            broken.append({"path": str(f), "error": e.message})
    if not files:
        raise UserError("no problem files found", "pass problem.json files or folders holding them, e.g. problems/")
    if not good:
        raise UserError(f"no problem file loads ({len(broken)} broken; the first: {broken[0]['error']})",
                        "check the paths, or fix the files (`sdpo-ttt problem validate FILE` names every error)")
    return good, broken


def plan_batch(problems: Sequence[Path], strategies: Sequence[str], seeds: Sequence[int], out: Path, base: SolveConfig,
               grid: dict[str, list[Any]] | None = None, *, best_of_k_fixed_n: bool = True) -> Plan:
    """Expand problem x strategy x seed x grid point into jobs (compare's cell order within each grid point)."""
    out = Path(out).resolve()
    good, broken = check_problems(problems)
    points = grid_points(grid or {})
    jobs: list[Job] = []
    for point in points:
        tag = point_tag(point)
        cfg = base.with_values(point, f"--grid {tag}") if point else base
        if good:
            for cell in plan_grid(good, strategies, seeds, out / tag if tag else out, cfg, best_of_k_fixed_n=best_of_k_fixed_n):
                jobs.append(Job(cell.path.relative_to(out).as_posix(), cell, point))
    return Plan(out, jobs, broken, points)


# ------------------------------------------------------------------ the manifest
class Manifest:
    """OUT/jobs.jsonl: append-only state changes. The state of a job is its last line; torn lines are skipped."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._repaired = False

    def read(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        out = []
        for line in self.path.read_bytes().split(b"\n"):
            try:
                rec = json.loads(line)
            except (json.JSONDecodeError, UnicodeDecodeError):
                continue  # empty, or torn by a kill mid-write
            if isinstance(rec, dict) and "job" in rec:
                out.append(rec)
        return out

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
        rec = {"job": job, "state": state, "time": round(time.time(), 3), **fields}
        data = (json.dumps(rec, ensure_ascii=False, default=str) + "\n").encode("utf-8")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            if not self._repaired:  # a line torn by an earlier kill: end it, so ours starts on a line of its own
                self._repaired = True
                size = os.fstat(fd).st_size
                if size:
                    with open(self.path, "rb") as f:
                        f.seek(size - 1)
                        if f.read(1) != b"\n":
                            data = b"\n" + data
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)


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


# ------------------------------------------------------------------ running one job (in any process)
def execute_job(cell: Cell, state: str, used: int, models: SharedPolicy | None = None, announce=None) -> dict[str, Any]:
    """Run one job to its end; returns the manifest fields of its outcome. A crash becomes `failed`, never escapes.

    KeyboardInterrupt (Ctrl-C, or the driver stopping its workers) is returned as `interrupted`: the loop has
    already written the run's summary as interrupted, and the sandbox context has removed its containers.
    """
    t0 = time.monotonic()
    try:
        outcome = run_cell(cell, state, used, models=models, announce=announce)
    except KeyboardInterrupt:
        return {"state": "interrupted", "wall_s": round(time.monotonic() - t0, 3), **_progress_of(cell)}
    except Exception as e:  # noqa: BLE001 - any crash is this job's, recorded, and the batch goes on
        msg = e.message + (f" (fix: {e.fix})" if getattr(e, "fix", None) else "") if isinstance(e, UserError) else f"{type(e).__name__}: {e}"
        return {"state": "failed", "error": msg, "traceback": traceback.format_exc()[-3000:],
                "wall_s": round(time.monotonic() - t0, 3), **_progress_of(cell)}
    s = outcome.summary
    return {"state": "done", "action": outcome.action, "status": s.get("status"), "solved": bool(s.get("solved")),
            "attempts_used": s.get("attempts_used"), "discovery_attempt": s.get("discovery_attempt"),
            "wall_s": round(time.monotonic() - t0, 3)}


def _progress_of(cell: Cell) -> dict[str, Any]:
    from sdpo_ttt.runs import RunDir

    if not (cell.path / "config.json").exists():
        return {}
    return {"attempts_used": len(RunDir(cell.path).read_attempts())}


def set_threads(n: int | None) -> None:
    if n:
        import torch

        torch.set_num_threads(max(1, int(n)))


# ------------------------------------------------------------------ the driver
@dataclass
class BatchResult:
    plan: Plan
    ran: list[str] = field(default_factory=list)  # job ids run (started or resumed) by this invocation
    skipped: list[str] = field(default_factory=list)  # finished before, or failed and not retried
    interrupted: bool = False
    summary: dict[str, Any] = field(default_factory=dict)


EventSink = Callable[[str, dict[str, Any]], None]  # (job id, manifest record) -> shown to the user


def run_batch(plan: Plan, *, executor: str = "local", workers: int = 1, retry_failed: bool = False,
              address: str | None = None, cpus_per_job: float = 1, threads: int | None = None,
              on_event: EventSink | None = None, announce=None, mp_context: str = "spawn") -> BatchResult:
    """Run every job of the plan that is not finished; record each state change; write the batch summary.

    Run directories made with other options are refused before anything runs (compare.cell_state). Ctrl-C or
    SIGTERM stops the running jobs (marked interrupted), writes the summary, and re-raises KeyboardInterrupt.
    """
    out = plan.out
    on_event = on_event or (lambda job, rec: None)
    with batch_lock(out):
        manifest = Manifest(out / MANIFEST)
        known = manifest.latest()
        for b in plan.broken:
            manifest.append(f"problem-file:{b['path']}", "failed", error=b["error"], kind="problem_file")
        states = {j.id: cell_state(j.cell) for j in plan.jobs}  # all checks before anything runs
        result = BatchResult(plan)
        todo: list[tuple[Job, str, int]] = []
        for job in plan.jobs:
            state, used = states[job.id]
            last = known.get(job.id, {}).get("state")
            if last is None:
                manifest.append(job.id, "pending", **job.describe())
            if state == "finished":
                if last != "done":  # killed between the run's summary and its manifest line
                    manifest.append(job.id, "done", action="found finished", **_finished_fields(job))
                result.skipped.append(job.id)
            elif last == "failed" and not retry_failed:
                result.skipped.append(job.id)
            else:
                todo.append((job, state, used))

        live: dict[str, Job] = {}  # jobs whose last record here is `running`

        def record(job: Job, rec: dict[str, Any]) -> None:
            rec = dict(rec)
            state = rec.pop("state")
            manifest.append(job.id, state, **rec)
            on_event(job.id, {"state": state, **rec})
            if state == "running":
                live[job.id] = job
            else:
                live.pop(job.id, None)
                result.ran.append(job.id)

        try:
            with _sigterm_as_interrupt():
                if executor == "local":
                    run_local(todo, record, workers=workers, threads=threads, announce=announce, mp_context=mp_context)
                elif executor == "ray":
                    from sdpo_ttt.batch_ray import run_ray

                    run_ray(todo, record, address=address, cpus_per_job=cpus_per_job)
                else:
                    raise UserError(f"unknown executor {executor!r}", "use --executor local or --executor ray")
        except KeyboardInterrupt:
            result.interrupted = True
            for job in list(live.values()):  # no result came back: nothing of it may look finished
                record(job, {"state": "interrupted", "error": "stopped before the job reported back"})
            raise
        finally:
            result.summary = write_summary(plan, manifest)
    return result


def _finished_fields(job: Job) -> dict[str, Any]:
    from sdpo_ttt.runs import RunDir

    s = RunDir(job.cell.path).read_summary() or {}
    return {"status": s.get("status"), "solved": bool(s.get("solved")), "attempts_used": s.get("attempts_used"),
            "discovery_attempt": s.get("discovery_attempt"), "wall_s": s.get("wall_time_s")}


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM to the driver stops the batch the way Ctrl-C does (main thread only; restored afterwards)."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


# ------------------------------------------------------------------ local executor
Record = Callable[[Job, dict[str, Any]], None]


def run_local(todo: list[tuple[Job, str, int]], record: Record, *, workers: int = 1, threads: int | None = None,
              announce=None, mp_context: str = "spawn") -> None:
    """workers == 1: one job after another in this process (sharing one base model between base-model runs);
    workers > 1: that many worker processes pulling jobs in order (CPU only: one GPU runs one job at a time)."""
    if not todo:
        return
    if workers <= 1:
        set_threads(threads)
        models = SharedPolicy()
        try:
            for job, state, used in todo:
                record(job, {"state": "running", "pid": os.getpid(), "host": socket.gethostname(), "executor": "local"})
                rec = execute_job(job.cell, state, used, models, announce)
                record(job, rec)
                if rec["state"] == "interrupted":
                    raise KeyboardInterrupt
        finally:
            models.release()
        return
    _run_pool(todo, record, workers=workers, threads=threads, mp_context=mp_context)


def _worker_main(tasks, events, threads: int | None) -> None:
    """A local worker process: pull (job index, cell, state, used), send ("running"|"result", index, payload)."""
    _die_with_parent()
    interrupted = []

    def on_sigint(signum, frame):  # the first SIGINT interrupts the job; repeats (tty + driver) do not cut cleanup short
        if not interrupted:
            interrupted.append(1)
            raise KeyboardInterrupt

    signal.signal(signal.SIGINT, on_sigint)
    set_threads(threads)
    models = SharedPolicy()
    while not interrupted:
        item = tasks.get()
        if item is None:
            break
        index, cell, state, used = item
        events.put(("running", index, {"pid": os.getpid(), "host": socket.gethostname(), "executor": "local"}))
        rec = execute_job(cell, state, used, models)
        events.put(("result", index, rec))
        if rec["state"] == "interrupted":
            break
    models.release()


def _die_with_parent() -> None:
    """Linux: SIGINT this worker when the driver dies (even by SIGKILL), so no orphan keeps running jobs."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGINT)  # PR_SET_PDEATHSIG


def _run_pool(todo: list[tuple[Job, str, int]], record: Record, *, workers: int, threads: int | None, mp_context: str) -> None:
    ctx = mp.get_context(mp_context)
    tasks, events = ctx.Queue(), ctx.Queue()
    for i, (job, state, used) in enumerate(todo):
        tasks.put((i, job.cell, state, used))
    n = min(workers, len(todo))
    for _ in range(n):
        tasks.put(None)
    if threads is None and "OMP_NUM_THREADS" not in os.environ:
        threads = max(1, (os.cpu_count() or 1) // n)
    procs = [ctx.Process(target=_worker_main, args=(tasks, events, threads), daemon=True) for _ in range(n)]
    for p in procs:
        p.start()
    running: dict[int, int] = {}  # job index -> worker pid
    finished: set[int] = set()

    def handle(kind: str, index: int, payload: dict[str, Any]) -> None:
        job = todo[index][0]
        if kind == "running":
            running[index] = payload["pid"]
            record(job, {"state": "running", **payload})
        else:
            running.pop(index, None)
            finished.add(index)
            record(job, payload)

    def drain(timeout: float) -> bool:
        try:
            handle(*events.get(timeout=timeout))
            return True
        except queue.Empty:
            return False

    try:
        while len(finished) < len(todo):
            if drain(0.5):
                continue
            dead = {p.pid: p.exitcode for p in procs if not p.is_alive()}
            for index, pid in list(running.items()):
                if pid in dead and not drain(0.5):  # its result may still be in the pipe
                    running.pop(index, None)
                    finished.add(index)
                    record(todo[index][0], {"state": "failed", "error": f"worker process {pid} died (exit code {dead[pid]}) while running this job"})
            if all(not p.is_alive() for p in procs):
                while drain(0.2):
                    pass
                for i, (job, _, _) in enumerate(todo):  # workers gone with jobs never handed out: restart the pool
                    if i not in finished and i not in running:
                        return _run_pool([t for k, t in enumerate(todo) if k not in finished], record, workers=workers,
                                         threads=threads, mp_context=mp_context)
                break
    except KeyboardInterrupt:
        for p in procs:
            if p.is_alive():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(p.pid, signal.SIGINT)
        deadline = time.monotonic() + 120
        while any(p.is_alive() for p in procs) and time.monotonic() < deadline:
            drain(0.2)
        while drain(0.1):
            pass
        for p in procs:
            if p.is_alive():
                p.kill()
        raise  # run_batch marks the jobs that never reported back as interrupted
    finally:
        for p in procs:
            p.join(timeout=5)


# ------------------------------------------------------------------ the batch summary
def write_summary(plan: Plan, manifest: Manifest) -> dict[str, Any]:
    """batch-summary.json and .md in OUT: per job, and per (grid point, problem, strategy): solved, discovery, time."""
    from sdpo_ttt.report import load_run

    latest = manifest.latest()
    jobs = []
    for job in plan.jobs:
        m = latest.get(job.id, {})
        row: dict[str, Any] = {"job": job.id, **job.describe(), "state": m.get("state", "pending"), "error": m.get("error")}
        rec = None
        if (job.cell.path / "config.json").exists() and (job.cell.path / "problem.json").exists():
            with contextlib.suppress(Exception):
                rec = load_run(job.cell.path)
        row.update({"status": rec.status if rec else None, "attempts_used": rec.attempts_used if rec else 0,
                    "discovery_attempt": rec.discovery if rec else None, "solved": bool(rec and rec.discovery),
                    "wall_time_s": rec.wall_time_s if rec else None})
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
