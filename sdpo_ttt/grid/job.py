"""Running one job, in any process (this one, a local worker, a Ray task): a crash becomes a `failed` record."""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from typing import Any

from sdpo_ttt.grid.plan import Job
from sdpo_ttt.grid.cells import Cell, SharedPolicy, run_cell
from sdpo_ttt.errors import UserError

Todo = list[tuple[Job, str, int]]  # (job, compare.cell_state state, attempts already used)
Record = Callable[[Job, dict[str, Any]], None]  # an executor reports each state change of a job through this


def execute_job(cell: Cell, state: str, used: int, models: SharedPolicy | None = None, announce=None, *,
                workers: int = 1, threads_hint: int | None = None) -> dict[str, Any]:
    """Run one job to its end; returns the manifest fields of its outcome. A crash becomes `failed`, never escapes.

    torch threads (threads.py): the job's --threads if set, else `threads_hint` (a Ray task's CPUs), else this
    process's share of the free CPUs among `workers` parallel jobs, re-decided as the load changes.

    KeyboardInterrupt (Ctrl-C, or the driver stopping its workers) is returned as `interrupted`: the loop has
    already written the run's summary as interrupted, and the sandbox context has removed its containers.
    """
    t0 = time.monotonic()
    try:
        outcome = run_cell(cell, state, used, models=models, announce=announce, workers=workers, threads_hint=threads_hint)
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
    from sdpo_ttt.run.rundir import RunDir

    run = RunDir(cell.path)
    return {"attempts_used": len(run.read_attempts())} if run.config_path.exists() else {}
