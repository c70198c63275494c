"""What the stand-ins for solve() in the grid tests share: open (resume) or create the run directory exactly as
solve() does, through RunDir, and write the summary through the loop's Summary type."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from sdpo_ttt.config.tree import SolveConfig
from sdpo_ttt.run.loop import Summary
from sdpo_ttt.problem.schema import load_problem
from sdpo_ttt.run.rundir import RunDir


def open_run(problem_path: Path | None, cfg: SolveConfig | None, run_dir: Path | None,
             resume: Path | None) -> tuple[RunDir, SolveConfig, str]:
    """(run, its config, problem id): a resumed run keeps its own config, a new one is created from cfg."""
    if resume is not None:
        run = RunDir.open_existing(resume)
        return run, SolveConfig.model_validate(run.read_config()), run.read_problem()["id"]
    problem = load_problem(problem_path)
    return RunDir.create(run_dir, cfg.flat(), problem.to_json()), cfg, problem.id


def finish(run: RunDir, cfg: SolveConfig, problem_id: str, discovery: int | None) -> Summary:
    """Write the run's summary: solved at `discovery` (1-based), or its budget spent."""
    n = len(run.read_attempts())
    s = Summary("solved" if discovery else "budget_exhausted", discovery is not None, problem_id, cfg.strategy, cfg.seed,
                cfg.budget, n, discovery, (n + 1) // 2, 1.0 if discovery else 0.0, 0.5 * n)
    run.write_summary(asdict(s))
    return s
