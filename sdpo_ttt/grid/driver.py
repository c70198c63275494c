"""The batch driver: decide each job's fate from its run directory and the manifest, hand the rest to an
executor (local.py, ray_executor.py), record every state change, and write the summary."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from sdpo_ttt.grid.local import run_local
from sdpo_ttt.grid.manifest import MANIFEST, Manifest, batch_lock, write_summary
from sdpo_ttt.grid.plan import Job, Plan
from sdpo_ttt.grid.cells import cell_state
from sdpo_ttt.errors import UserError


@dataclass
class BatchResult:
    plan: Plan
    ran: list[str] = field(default_factory=list)  # job ids run (started or resumed) by this invocation
    skipped: list[str] = field(default_factory=list)  # finished before, or failed and not retried
    interrupted: bool = False
    summary: dict[str, Any] = field(default_factory=dict)


EventSink = Callable[[str, dict[str, Any]], None]  # (job id, manifest record) -> shown to the user


def run_batch(plan: Plan, *, executor: str = "local", workers: int = 1, retry_failed: bool = False,
              address: str | None = None, cpus_per_job: float = 1,
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
                    run_local(todo, record, workers=workers, announce=announce, mp_context=mp_context)
                elif executor == "ray":
                    from sdpo_ttt.grid.ray_executor import run_ray

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
    from sdpo_ttt.run.rundir import RunDir

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
