"""`compare`: the grid preset with one grid point and no manifest: every (problem, strategy, seed) cell in order in
this process (sharing one base model between base-model cells), or with workers > 1 through the local executor.

Layout: OUT/<problem-id>/<strategy>/seed<k>/ (cells.py), OUT/report/ (`sdpo-ttt report`). `batch` (driver.py) is
the same grid with grid points, a manifest and a choice of executor.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sdpo_ttt.errors import UserError
from sdpo_ttt.grid.cells import Cell, CellOutcome, GridProgress, SharedPolicy, Silent, cell_state, run_cell
from sdpo_ttt.grid.local import run_local
from sdpo_ttt.grid.plan import Job
from sdpo_ttt.run.rundir import RunDir


def run_grid(cells: Sequence[Cell], *, progress: GridProgress | None = None, announce=None,
             workers: int = 1, mp_context: str = "spawn") -> list[CellOutcome]:
    """Run (or skip, or resume) every cell in order; returns each cell's summary. workers > 1: that many cells at
    once in worker processes (CPU; batch's local executor), each with its share of the CPUs' torch threads."""
    progress = progress or Silent()
    states = [cell_state(c) for c in cells]  # all checks before anything runs
    todo = sum(c.config.budget - used for c, (st, used) in zip(cells, states, strict=True) if st != "finished")
    progress.grid_start(list(cells), todo)
    if workers > 1:
        return _run_parallel(list(cells), states, workers, progress, announce, mp_context)
    models = SharedPolicy()
    return [run_cell(cell, state, used, models=models, progress=progress, announce=announce)
            for cell, (state, used) in zip(cells, states, strict=True)]


def _run_parallel(cells: list[Cell], states: list[tuple[str, int]], workers: int, progress: GridProgress,
                  announce, mp_context: str) -> list[CellOutcome]:
    """The cells in `workers` processes (local.py); a cell that fails is reported after the others ran."""
    outcomes: dict[str, CellOutcome] = {}
    todo = []
    for cell, (state, used) in zip(cells, states, strict=True):
        if state == "finished":
            outcomes[cell.name] = run_cell(cell, state, used, progress=progress)
        else:
            todo.append((Job(cell.name, cell, {}), state, used))
    actions = {job.id: ("resumed" if state == "resume" else "started", used) for job, state, used in todo}
    failed: list[str] = []

    def record(job, rec: dict[str, Any]) -> None:
        action, used = actions[job.id]
        if rec["state"] == "running":
            progress.run_start(job.cell, action, used)
            return
        if rec["state"] != "done":
            failed.append(f"{job.id}: {rec['state']}" + (f" ({rec['error']})" if rec.get("error") else ""))
            return
        summary = RunDir(job.cell.path).read_summary() or {}
        progress.run_done(job.cell, action, summary)
        outcomes[job.id] = CellOutcome(job.cell, action, summary)

    run_local(todo, record, workers=workers, announce=announce, mp_context=mp_context)
    if failed:
        raise UserError(f"{len(failed)} run(s) did not finish: " + "; ".join(failed),
                        "fix the cause and re-run the same command: finished runs are skipped, the others resumed")
    return [outcomes[c.name] for c in cells]
