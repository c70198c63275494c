"""Experiment tracking, opt-in (`--track tensorboard,wandb`): every metrics.jsonl scalar and per-step attempt
statistics, where researchers look. Nothing is imported, written or sent when `--track` is empty.

- tensorboard: event files in RUN/tensorboard/, written by torch's SummaryWriter (needs the tensorboard package:
  `pip install "sdpo-ttt[tracking]"`); view them with `tensorboard --logdir RUN/tensorboard`. Local files only.
- wandb: Weights & Biases in offline mode (files in RUN/wandb/, nothing sent; `wandb sync` uploads them later
  if you want); needs `pip install wandb`.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from sdpo_ttt.errors import UserError

TRACKERS = ("tensorboard", "wandb")


class Tracker(Protocol):
    def scalars(self, step: int, values: dict[str, float]) -> None: ...
    def close(self) -> None: ...


# ------------------------------------------------------------------ what is logged
def numeric(values: dict[str, Any]) -> dict[str, float]:
    """The numeric (non-bool) entries of a metrics.jsonl line, as floats; 'step' itself is the x axis, not a scalar."""
    return {k: float(v) for k, v in values.items() if isinstance(v, (int, float)) and not isinstance(v, bool) and k != "step"}


def attempt_stats(records: Sequence[dict[str, Any]], *, best_score: float, attempts_used: int, passed_so_far: int) -> dict[str, float]:
    """Per-step statistics of one judged batch (attempts.jsonl records) and the run so far."""
    n = len(records)
    if n == 0:
        return {}
    verdicts = Counter(str(r.get("verdict", "?")) for r in records)
    tokens = [int(r.get("completion_tokens", 0)) for r in records]
    out = {
        "attempts/pass_rate": sum(bool(r.get("passed")) for r in records) / n,
        "attempts/mean_score": sum(float(r.get("score", 0.0)) for r in records) / n,
        "attempts/max_score": max(float(r.get("score", 0.0)) for r in records),
        "attempts/truncated_frac": sum(r.get("finish_reason") == "length" for r in records) / n,
        "attempts/mean_completion_tokens": sum(tokens) / n,
        "run/best_score": float(best_score),
        "run/attempts_used": float(attempts_used),
        "run/attempts_passed": float(passed_so_far),
    }
    out.update({f"attempts/verdict_frac/{k}": v / n for k, v in verdicts.items()})
    return out


# ------------------------------------------------------------------ TensorBoard
TRACKING_EXTRA = 'pip install "sdpo-ttt[tracking]"'


class TensorBoardWriter:
    """Scalars to one event file in `log_dir` through torch's SummaryWriter (the tensorboard package, from the
    `[tracking]` extra), flushed after every step so that a live `tensorboard --logdir` follows the run."""

    def __init__(self, log_dir: Path) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise UserError("--track tensorboard needs the tensorboard package", f"{TRACKING_EXTRA} (or drop tensorboard from --track)") from None
        self.log_dir = Path(log_dir)
        self._writer = SummaryWriter(log_dir=str(self.log_dir))

    def scalars(self, step: int, values: dict[str, float]) -> None:
        for tag, value in values.items():
            self._writer.add_scalar(tag, value, global_step=step)
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()


# ------------------------------------------------------------------ Weights & Biases, offline
class WandbWriter:
    """wandb in offline mode: runs are written under `directory`/wandb and never sent."""

    def __init__(self, directory: Path, name: str, config: dict[str, Any]) -> None:
        try:
            import wandb
        except ImportError:
            raise UserError("--track wandb needs the wandb package", "pip install wandb (or drop wandb from --track)") from None
        os.environ.setdefault("WANDB_SILENT", "true")
        self._wandb = wandb
        self.run = wandb.init(project="sdpo-ttt", name=name, config=config, dir=str(directory), mode="offline", reinit=True)

    def scalars(self, step: int, values: dict[str, float]) -> None:
        if values:
            self.run.log(values, step=step)

    def close(self) -> None:
        self.run.finish()


class Trackers:
    """Every tracker asked for; with none, every call does nothing."""

    def __init__(self, trackers: list[Tracker]) -> None:
        self.trackers = trackers

    def scalars(self, step: int, values: dict[str, float]) -> None:
        for t in self.trackers:
            t.scalars(step, values)

    def close(self) -> None:
        for t in self.trackers:
            t.close()
        self.trackers = []


def open_trackers(kinds: Sequence[str], run_dir: Path, name: str, config: dict[str, Any]) -> Trackers:
    """The trackers of `--track` for one run (an empty list opens nothing, imports nothing, writes nothing)."""
    unknown = [k for k in kinds if k not in TRACKERS]
    if unknown:
        raise UserError(f"--track {','.join(unknown)}: unknown tracker", f"use {' or '.join(TRACKERS)}, comma-separated")
    out: list[Tracker] = []
    if "tensorboard" in kinds:
        out.append(TensorBoardWriter(Path(run_dir) / "tensorboard"))
    if "wandb" in kinds:
        out.append(WandbWriter(Path(run_dir), name, config))
    return Trackers(out)
