"""Where a run stands, and how it is saved and resumed: `Progress` holds everything the next step depends on
besides the strategy's own state (step, attempts used, best score, passes, time split, costs) and keeps the
wall-clock and CPU accounts; `Progress.resume` restores it from the last complete step's checkpoint (and has the
strategy restore its state), `Progress.save` writes the checkpoint after each step.

A checkpoint written by one step and a resume from it give the same next step as an uninterrupted run: sampling
is seeded by (seed, step), and the strategy saves its adapters and optimiser with the state.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sdpo_ttt.errors import UserError
from sdpo_ttt.run.budgets import RunCosts, stop_reason
from sdpo_ttt.run.rundir import RunDir

if TYPE_CHECKING:
    from sdpo_ttt.config.tree import SolveConfig
    from sdpo_ttt.run.reporter import Reporter
    from sdpo_ttt.run.strategies import Strategy
    from sdpo_ttt.sandbox.attempt import Attempt


@dataclass
class PassTally:
    """How many attempts passed so far, and the 1-based index of the first (None before any)."""

    count: int = 0
    first: int | None = None

    def add(self, attempts: list["Attempt"]) -> None:
        for a in attempts:
            if a.verdict.passed:
                self.count += 1
                self.first = a.index + 1 if self.first is None else self.first

    @classmethod
    def from_records(cls, records: list[dict[str, Any]]) -> "PassTally":
        """The tally of attempts.jsonl lines (on resume)."""
        indices = sorted(int(r["index"]) for r in records if r.get("passed"))
        return cls(count=len(indices), first=indices[0] + 1 if indices else None)


@dataclass
class Progress:
    """A run's state between steps, across resumes; `start_clock` begins this process's share of the accounts."""

    step: int = 0
    used: int = 0
    best: float = 0.0
    passes: PassTally = field(default_factory=PassTally)
    split: dict[str, float] = field(default_factory=lambda: {"sample": 0.0, "judge": 0.0, "update": 0.0})
    wall_before: float = 0.0  # wall-clock seconds earlier processes of this run spent in the loop
    costs: RunCosts = field(default_factory=RunCosts)
    _t_start: float = 0.0
    _cpu_start: float = 0.0
    _cpu_before: float = 0.0

    @classmethod
    def resume(cls, run: RunDir, strategy: "Strategy", reporter: "Reporter") -> "Progress":
        """The progress of the last complete step (attempts after it are dropped), the strategy restored to it; a
        fresh start when no step completed."""
        state = run.read_checkpoint_state()
        if state is None:
            run.truncate_after_step(-1)
            reporter.message("no complete step to resume from: starting over")
            return cls()
        if "costs" not in state:
            raise UserError(f"{run.path} was checkpointed before 2026-12-01, by a version that kept no costs",
                            "start the run over in a new run directory")
        run.truncate_after_step(state["step"])
        history = run.read_attempts()
        strategy.load(run.checkpoint_path, history)
        reporter.message(f"resuming after step {state['step']} ({state['attempts_used']} attempts used)")
        return cls(step=state["step"] + 1, used=state["attempts_used"], best=state["best_score"],
                   passes=PassTally.from_records(history), split=state["time_split_s"], wall_before=state["wall_time_s"],
                   costs=RunCosts.from_json(state["costs"]))

    def start_clock(self) -> None:
        self._t_start, self._cpu_start, self._cpu_before = time.perf_counter(), time.process_time(), self.costs.cpu_s

    def wall(self) -> float:
        """Wall-clock seconds of the loop, all processes of this run."""
        return self.wall_before + time.perf_counter() - self._t_start

    def spent(self) -> RunCosts:
        """The costs, brought up to now."""
        self.costs.attempts = self.used
        self.costs.wall_s = self.wall()
        self.costs.cpu_s = self._cpu_before + time.process_time() - self._cpu_start
        return self.costs

    def stop_reason(self, cfg: "SolveConfig", max_time_s: float | None) -> str | None:
        """Why the run must stop before its next batch, or None (budgets.stop_reason on the costs so far)."""
        return stop_reason(self.spent(), cfg.budget, max_time_s, cfg.max_tokens)

    def add_batch(self, attempts: list["Attempt"], times: dict[str, float]) -> "Attempt | None":
        """Count a judged batch; returns its first passing attempt (None: none passed)."""
        self.costs.generated_tokens += sum(len(a.completion.completion_ids) for a in attempts)
        self.costs.device_s += times["sample"]
        self.split["sample"] += times["sample"]
        self.split["judge"] += times["judge"]
        self.used += len(attempts)
        self.spent()
        self.best = max([self.best] + [a.verdict.score for a in attempts])
        self.passes.add(attempts)
        return next((a for a in attempts if a.verdict.passed), None)

    def add_update(self, seconds: float) -> None:
        self.split["update"] += seconds
        self.costs.device_s += seconds

    def save(self, run: RunDir, strategy: "Strategy") -> None:
        """The checkpoint of the step just finished; the next step is the one after it."""
        state = {"step": self.step, "attempts_used": self.used, "best_score": self.best, "time_split_s": self.split,
                 "wall_time_s": self.wall(), "costs": self.spent().to_json()}
        run.save_checkpoint(state, strategy.save)
        self.step += 1
