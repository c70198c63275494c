"""The grid's cells: one (problem, strategy, seed) each, its own `solve` run directory, resumably.

Layout: OUT/<problem-id>/<strategy>/seed<k>/ (a normal `solve` run directory each; the report in OUT/report/,
sdpo_ttt/report/). A finished run is skipped,
an interrupted one resumed, a missing one started (`cell_state`); a run directory made with different options is
refused (mixing budgets or models would make the report lie). `run_cell` is the one way any front door (compare.py,
the batch driver, the executors) runs a cell.

best-of-k is drawn without stopping at the first success (stop_on_success = false) by default, so that all of
its attempts are i.i.d. samples and pass@k is estimated exactly from them; the other strategies stop at their
first success, their discovery time being the measurement.

Models: best-of-k, multi-turn and evolve sample from the base model with adapters disabled and never update it, so
one loaded Policy serves all of them. An sdpo or sdpo-evolve run trains its LoRA, so each loads a fresh Policy (no
state leaks from one run into the next); the shared one is released before those runs start, which therefore come
last.
"""

from __future__ import annotations

import gc
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from sdpo_ttt.config.tree import SolveConfig, build_config
from sdpo_ttt.errors import UserError
from sdpo_ttt.run.loop import Summary
from sdpo_ttt.run.reporter import Reporter
from sdpo_ttt.problem.schema import find_problem_files, load_problem
from sdpo_ttt.run.rundir import RunDir, clear_interrupted_creation
from sdpo_ttt.run.strategies import STRATEGIES

IGNORED_FOR_MATCH = ("sandbox", "sandbox_workers", "device", "threads")  # where a run executes, not what it measures


@dataclass(frozen=True)
class Cell:
    """One (problem, strategy, seed) of the grid."""

    problem_path: Path
    problem_id: str
    title: str
    strategy: str
    seed: int
    path: Path
    config: SolveConfig

    @property
    def name(self) -> str:
        return f"{self.problem_id}/{self.strategy}/seed{self.seed}"


@dataclass(frozen=True)
class CellOutcome:
    cell: Cell
    action: str  # "skipped" (already finished) | "resumed" | "started"
    summary: dict[str, Any]


class GridProgress(Protocol):
    """What the grid runner tells its user (the CLI renders it with rich)."""

    def grid_start(self, cells: list[Cell], todo_attempts: int) -> None: ...
    def run_start(self, cell: Cell, action: str, used: int) -> None: ...
    def run_attempts(self, cell: Cell, used: int, best_score: float) -> None: ...
    def run_done(self, cell: Cell, action: str, summary: dict[str, Any]) -> None: ...
    def message(self, text: str) -> None: ...


class Silent:
    def grid_start(self, cells: list[Cell], todo_attempts: int) -> None: ...
    def run_start(self, cell: Cell, action: str, used: int) -> None: ...
    def run_attempts(self, cell: Cell, used: int, best_score: float) -> None: ...
    def run_done(self, cell: Cell, action: str, summary: dict[str, Any]) -> None: ...
    def message(self, text: str) -> None: ...


class _CellReporter(Reporter):
    """Adapts the loop's Reporter calls for one run to the grid's progress."""

    def __init__(self, cell: Cell, progress: GridProgress) -> None:
        self.cell, self.progress = cell, progress

    def attempts(self, attempts, used: int, best_score: float) -> None:
        self.progress.run_attempts(self.cell, used, best_score)

    def message(self, text: str) -> None:
        self.progress.message(f"{self.cell.name}: {text}")


def parse_strategies(text: str) -> list[str]:
    names = [s.strip() for s in text.split(",") if s.strip()]
    bad = [s for s in names if s not in STRATEGIES]
    if bad or not names:
        raise UserError(f"unknown strategy {', '.join(bad) or '(none)'}", f"use a comma-separated subset of {','.join(STRATEGIES)}")
    return list(dict.fromkeys(names))


def cell_config(base: SolveConfig, strategy: str, seed: int, *, best_of_k_fixed_n: bool = True) -> SolveConfig:
    """The configuration of one grid cell: the shared options with this strategy and seed."""
    stop = not (strategy == "best-of-k" and best_of_k_fixed_n)
    return base.with_values({"strategy": strategy, "seed": seed, "stop_on_success": stop}, "the grid")


def plan_grid(problems: Sequence[Path], strategies: Sequence[str], seeds: Sequence[int], out: Path, base: SolveConfig,
              *, best_of_k_fixed_n: bool = True) -> list[Cell]:
    """The cells in run order: base-model strategies first (one shared model), then sdpo; problem, then seed."""
    files = find_problem_files(list(problems))
    if not files:
        raise UserError("no problem files found", "pass problem.json files or folders holding them, e.g. problems/two-sum")
    loaded = [(f, load_problem(f)) for f in files]
    ids = [p.id for _, p in loaded]
    dup = sorted({i for i in ids if ids.count(i) > 1})
    if dup:
        raise UserError(f"problem id {dup[0]} appears more than once", "pass each problem once (ids name the run folders)")
    order = sorted(strategies, key=lambda s: STRATEGIES[s].learns)  # stable: keeps the given order otherwise
    return [
        Cell(f, p.id, p.title, s, seed, Path(out) / p.id / s / f"seed{seed}", cell_config(base, s, seed, best_of_k_fixed_n=best_of_k_fixed_n))
        for s in order for f, p in loaded for seed in seeds
    ]


def cell_state(cell: Cell) -> tuple[str, int]:
    """("new" | "finished" | "resume", attempts already used). Refuses a directory made with other options."""
    path, run = cell.path, RunDir(cell.path)
    clear_interrupted_creation(path)
    if not path.exists() or not any(path.iterdir()):
        return "new", 0
    if not run.config_path.exists():
        raise UserError(f"{path} holds files but is not a run directory", "move it away, or pick another --out")
    if not run.problem_path.exists():  # killed while being created: nothing was attempted yet
        shutil.rmtree(path)
        return "new", 0
    have = build_config([(str(run.config_path), run.read_config())]).flat()  # options added since then: their defaults
    want = cell.config.flat()
    diff = [k for k in sorted(set(have) | set(want)) if k not in IGNORED_FOR_MATCH and have.get(k) != want.get(k)]
    if diff:
        k = diff[0]
        raise UserError(
            f"{path} was run with {k} = {have.get(k)!r}, this compare asks for {want.get(k)!r}"
            + (f" (and {len(diff) - 1} more differences)" if len(diff) > 1 else ""),
            "use the same options to continue that grid, or pick another --out",
        )
    if run.is_finished():
        return "finished", int(run.read_summary()["attempts_used"])
    return "resume", len(run.read_attempts())


class SharedPolicy:
    """One loaded base model for consecutive base-model runs (best-of-k, multi-turn, evolve) with the same model options.

    An sdpo run gets None (solve loads a fresh model: sdpo trains its LoRA), and the shared one is released first.
    """

    def __init__(self) -> None:
        self.policy, self.key = None, None

    def for_cell(self, cell: Cell):
        if STRATEGIES[cell.strategy].learns:
            self.release()
            return None
        key = repr(cell.config.policy)
        if self.policy is None or key != self.key:
            self.release()
            self.policy, self.key = _load_policy(cell.config), key
        return self.policy

    def release(self) -> None:
        if self.policy is not None:
            policy, self.policy, self.key = self.policy, None, None
            policy.close()  # shut its vLLM engine down now: the next cell's engine needs the GPU memory
            del policy
            _release_memory()


def run_cell(cell: Cell, state: str, used: int, *, models: SharedPolicy | None = None,
             progress: GridProgress | None = None, announce=None, workers: int = 1,
             threads_hint: int | None = None) -> CellOutcome:
    """Skip (finished), resume or start one cell, given its `cell_state`; the one way a grid runs a cell.
    workers / threads_hint: how many cells run in parallel on this machine, a thread count (solve, threads.py)."""
    from sdpo_ttt.run.solve import solve

    progress = progress or Silent()
    if state == "finished":
        summary = RunDir(cell.path).read_summary() or {}
        progress.run_done(cell, "skipped", summary)
        return CellOutcome(cell, "skipped", summary)
    policy = models.for_cell(cell) if models is not None else None
    action = "resumed" if state == "resume" else "started"
    progress.run_start(cell, action, used)
    summary_obj, _ = solve(
        cell.problem_path if state == "new" else None, cell.config if state == "new" else None,
        run_dir=cell.path if state == "new" else None, resume=cell.path if state == "resume" else None,
        reporter=_CellReporter(cell, progress), announce=announce, policy=policy, workers=workers, threads_hint=threads_hint,
    )
    summary = _as_dict(summary_obj)
    progress.run_done(cell, action, summary)
    return CellOutcome(cell, action, summary)


def _load_policy(cfg: SolveConfig):
    from sdpo_ttt.policy.model import Policy

    return Policy.load(cfg.policy, seed=cfg.seed)


def _release_memory() -> None:
    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:  # pragma: no cover
        pass


def _as_dict(s: Summary) -> dict[str, Any]:
    from dataclasses import asdict

    return asdict(s)
