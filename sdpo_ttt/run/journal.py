"""Where a run's results go as they come: the run directory (attempts.jsonl, solution.py, metrics.jsonl,
summary.json), the reporter, and the --track trackers (TensorBoard, W&B)."""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from sdpo_ttt.run.budgets import RunCosts
from sdpo_ttt.run.rundir import RunDir
from sdpo_ttt.run.tracking import attempt_stats, numeric, open_trackers

if TYPE_CHECKING:
    from sdpo_ttt.config.tree import SolveConfig
    from sdpo_ttt.run.checkpoint import Progress
    from sdpo_ttt.run.monitors import SignalWarning
    from sdpo_ttt.run.reporter import Reporter
    from sdpo_ttt.sandbox.attempt import Attempt


def attempt_record(a: "Attempt", times: dict[str, float], costs: RunCosts | None = None) -> dict[str, Any]:
    """One line of attempts.jsonl. `costs`: what the run had spent when this attempt's batch was judged (the cost
    of reaching this attempt: `compare`/`report --x tokens|seconds` draw discovery against it)."""
    v = a.verdict
    return {
        "step": a.step,
        "index": a.index,
        "chain": a.chain,
        "parent": a.parent,
        "passed": v.passed,
        "score": v.score,
        "verdict": v.outcome.value,
        "verdict_counts": v.counts(),
        "feedback": a.feedback,
        "text": a.completion.text,
        "code": a.code,
        "finish_reason": a.completion.finish_reason,
        "prompt_tokens": len(a.completion.prompt_ids),
        "completion_tokens": len(a.completion.completion_ids),
        "completion_ids": list(a.completion.completion_ids),
        "judge_time_s": v.wall_time_s,
        "batch_sample_time_s": times["sample"],
        "batch_judge_time_s": times["judge"],
        **({"run_tokens": costs.generated_tokens, "run_wall_s": costs.wall_s, "run_device_s": costs.device_s} if costs else {}),
    }


class Journal:
    """Records a run: `batch` after each judged batch, `update` after each learning step, `summary` at the end."""

    def __init__(self, run: RunDir, cfg: "SolveConfig", reporter: "Reporter") -> None:
        self.run, self.reporter = run, reporter
        self.trackers = open_trackers(cfg.track, run.path, run.path.name, cfg.flat())  # --track: nothing opened when empty

    def batch(self, attempts: list["Attempt"], times: dict[str, float], progress: "Progress", winner: "Attempt | None") -> None:
        """A judged batch, counted in `progress` already; `winner`: its first passing attempt, if any."""
        records = [attempt_record(a, times, progress.costs) for a in attempts]
        for rec in records:
            self.run.append_attempt(rec)
        self.reporter.attempts(attempts, progress.used, progress.best)
        if winner is not None and progress.passes.first == winner.index + 1:
            self.run.write_solution(winner.code or "")  # the first passing program, kept whether or not the run stops
        self.trackers.scalars(progress.step, attempt_stats(records, best_score=progress.best, attempts_used=progress.used,
                                                           passed_so_far=progress.passes.count))

    def update(self, step: int, metrics: dict[str, float], signal: "SignalWarning | None") -> None:
        """A learning step's metrics (with the no-signal warning, when one was decided on this step)."""
        extra = {} if signal is None else {"warning": ",".join(signal.reasons), "warning_message": signal.message}
        self.run.append_metrics({**metrics, **extra})
        self.reporter.step(step, metrics)
        self.trackers.scalars(step, numeric(metrics))

    def summary(self, summary: Any) -> Any:
        self.run.write_summary(asdict(summary))
        return summary

    def close(self) -> None:
        self.trackers.close()
