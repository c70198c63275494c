"""`batch`: problem x strategy x seed x grid point -> jobs, each its own run directory, with a jobs.jsonl manifest.

Layout under OUT (a `compare` grid per grid point; no grid: exactly compare's layout):
    OUT/[<grid point>/]<problem-id>/<strategy>/seed<k>/   one `solve` run directory per job
    OUT/jobs.jsonl                                        the manifest: one line per job state change, append-only
    OUT/batch-summary.json, OUT/batch-summary.md          written at the end (also after Ctrl-C)
    OUT/report/                                           `sdpo-ttt report OUT` (sdpo_ttt/report/, as for compare)
A grid point folder is named by its overrides, e.g. `lr=0.0003,temperature=0.7`.

The run directories are the truth, the manifest is the record: a job whose run directory is finished is skipped
(whatever the manifest says), an unfinished one is resumed, a missing one started (compare.cell_state); a job
whose last manifest state is `failed` is left alone unless --retry-failed. Only the driver writes the manifest
(workers and Ray tasks send it their results), one whole line per write, so a kill leaves at most a torn last
line, which readers skip.

Executors: `local` runs the jobs in this process one after another (one GPU: one job at a time), or with
--workers N in N worker processes (CPU); `ray` (ray_executor.py) runs each job as a Ray task.

Modules: plan.py (jobs, nothing run), manifest.py (jobs.jsonl, the lock, batch-summary), job.py (one job, in any
process), local.py and ray_executor.py (the executors: they run jobs and report through a callback, and know
nothing of the driver), driver.py (run_batch).
"""

from __future__ import annotations

from sdpo_ttt.grid.driver import BatchResult, run_batch
from sdpo_ttt.grid.manifest import Manifest, batch_lock, summary_markdown, write_summary
from sdpo_ttt.grid.plan import Job, Plan, check_problems, grid_points, parse_grid, plan_batch, point_tag

__all__ = ["BatchResult", "Job", "Manifest", "Plan", "batch_lock", "check_problems", "grid_points", "parse_grid",
           "plan_batch", "point_tag", "run_batch", "summary_markdown", "write_summary"]
