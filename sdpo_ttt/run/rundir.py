"""The run directory: the one writer and the one reader of everything a run leaves behind (the loop writes through
it; resume, compare, batch and the report read through it).

Layout:
    config.json        the resolved configuration (written once, at creation)
    problem.json       a copy of the problem as judged
    attempts.jsonl     one line per attempt, appended and flushed as soon as it is judged
    metrics.jsonl      one line per update step
    held_back.json     the tests the feedback never quotes (none unless --feedback-visibility all-but-held-back)
    checkpoint/        the latest complete step: adapters + optimizer + state.json (replaced atomically)
    solution.py        the first attempt that passed every test (as soon as one passes, stopping or not)
    summary.json       written at the end (solved / budget_exhausted / interrupted, passes, stop reason), atomically
A run is resumable until its summary says solved or budget_exhausted.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sdpo_ttt.errors import UserError
from sdpo_ttt.files import append_jsonl, read_jsonl, write_atomic
from sdpo_ttt.sandbox.safe_text import safe_tree

_MODEL_TEXT = ("text", "code")  # attempts.jsonl fields the model wrote (not the attempt's run)

FINISHED_STATUSES = ("solved", "budget_exhausted")


def clear_interrupted_creation(path: Path) -> None:
    """Remove what a kill during `RunDir.create` can leave: only write_atomic temp files of config.json, no run."""
    if not path.is_dir() or (path / "config.json").exists():
        return
    entries = list(path.iterdir())
    if entries and all(e.is_file() and e.name.startswith(".config.json.") for e in entries):
        for e in entries:
            e.unlink(missing_ok=True)


class RunDir:
    """One run's directory. Create with `RunDir.create` (new) or `RunDir.open_existing` (resume, report)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    # ---- paths
    @property
    def config_path(self) -> Path:
        return self.path / "config.json"

    @property
    def problem_path(self) -> Path:
        return self.path / "problem.json"

    @property
    def attempts_path(self) -> Path:
        return self.path / "attempts.jsonl"

    @property
    def metrics_path(self) -> Path:
        return self.path / "metrics.jsonl"

    @property
    def checkpoint_path(self) -> Path:
        return self.path / "checkpoint"

    @property
    def held_back_path(self) -> Path:
        return self.path / "held_back.json"

    @property
    def summary_path(self) -> Path:
        return self.path / "summary.json"

    @property
    def solution_path(self) -> Path:
        return self.path / "solution.py"

    # ---- creation
    @classmethod
    def create(cls, path: Path, config: dict[str, Any], problem_json: str) -> "RunDir":
        """Start a fresh run directory; refuse to overwrite an existing run."""
        path = Path(path)
        clear_interrupted_creation(path)
        if path.exists() and any(path.iterdir()):
            raise UserError(
                f"{path} already holds files",
                f"resume it with `--resume {path}`, or pick another `--run-dir`",
            )
        path.mkdir(parents=True, exist_ok=True)
        run = cls(path)
        write_atomic(run.config_path, json.dumps(config, indent=2, sort_keys=True) + "\n")
        write_atomic(run.problem_path, problem_json)
        run.attempts_path.touch()
        run.metrics_path.touch()
        return run

    @classmethod
    def open_existing(cls, path: Path) -> "RunDir":
        path = Path(path)
        if not (path / "config.json").exists():
            raise UserError(f"{path} is not a run directory (no config.json)", "pass the folder a previous `solve` wrote")
        return cls(path)

    @classmethod
    def find_all(cls, root: Path) -> list["RunDir"]:
        """Every run directory below root (one with config.json and problem.json), sorted by path."""
        root = Path(root)
        if not root.is_dir():
            raise UserError(f"{root}: no such folder", "pass the --out folder of a `compare` (or a folder of `solve` runs)")
        return [cls(p.parent) for p in sorted(root.rglob("config.json")) if (p.parent / "problem.json").exists()]

    def read_config(self) -> dict[str, Any]:
        """The run's options, in the flat form (`SolveConfig.flat()`)."""
        return json.loads(self.config_path.read_text(encoding="utf-8"))

    def read_problem(self) -> dict[str, Any]:
        """problem.json as written at creation (parse with problem.parse_problem)."""
        return json.loads(self.problem_path.read_text(encoding="utf-8"))

    def write_held_back(self, visibility: str, fraction: float, seed: int, tests: frozenset[int]) -> None:
        """Record the run's held-back tests (0-based indices into problem.json's tests) and how they were drawn."""
        doc = {"feedback_visibility": visibility, "held_back_fraction": fraction, "seed": seed, "held_back": sorted(tests)}
        write_atomic(self.held_back_path, json.dumps(doc, indent=2) + "\n")

    def read_held_back(self) -> list[int]:
        """The held-back test indices recorded for this run (empty when none were, or for a run older than the record)."""
        if not self.held_back_path.exists():
            return []
        return [int(i) for i in json.loads(self.held_back_path.read_text(encoding="utf-8"))["held_back"]]

    # ---- append-only logs (a line torn by a kill is skipped by the reader and dropped on resume)
    def append_attempt(self, record: dict[str, Any]) -> None:
        """Every attempt-derived string (its verdict's details in the feedback) made safe first; the model's own
        text and code are kept as generated (they are what the run reproduces)."""
        append_jsonl(self.attempts_path, {k: v if k in _MODEL_TEXT else safe_tree(v) for k, v in record.items()})

    def append_metrics(self, record: dict[str, Any]) -> None:
        append_jsonl(self.metrics_path, record)

    def read_attempts(self) -> list[dict[str, Any]]:
        return read_jsonl(self.attempts_path)

    def read_metrics(self) -> list[dict[str, Any]]:
        return read_jsonl(self.metrics_path)

    def truncate_after_step(self, last_step: int) -> None:
        """Drop log lines of steps after `last_step` (a step the kill cut short), keeping the rest."""
        for path, rows in ((self.attempts_path, self.read_attempts()), (self.metrics_path, self.read_metrics())):
            kept = [r for r in rows if r.get("step", -1) <= last_step]
            write_atomic(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in kept))

    # ---- checkpoint (latest complete step only)
    def save_checkpoint(self, state: dict[str, Any], write_files: Callable[[Path], None]) -> None:
        """Write a checkpoint: `write_files(tmpdir)` saves adapters/optimizer, then state.json; swap in atomically."""
        tmp = Path(tempfile.mkdtemp(prefix=".checkpoint-", dir=self.path))
        try:
            write_files(tmp)
            write_atomic(tmp / "state.json", json.dumps(state, indent=2) + "\n")
            old = self.path / ".checkpoint-old"
            if old.exists():
                shutil.rmtree(old)
            if self.checkpoint_path.exists():
                os.replace(self.checkpoint_path, old)
            os.replace(tmp, self.checkpoint_path)
            shutil.rmtree(old, ignore_errors=True)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    def read_checkpoint_state(self) -> dict[str, Any] | None:
        """The state of the latest complete checkpoint, or None (also recovers from a kill mid-swap)."""
        state = self.checkpoint_path / "state.json"
        old = self.path / ".checkpoint-old"
        if not state.exists() and (old / "state.json").exists():
            os.replace(old, self.checkpoint_path)
        if not state.exists():
            return None
        return json.loads(state.read_text(encoding="utf-8"))

    # ---- end of run
    def write_solution(self, code: str) -> None:
        write_atomic(self.solution_path, code if code.endswith("\n") else code + "\n")

    def write_summary(self, summary: dict[str, Any]) -> None:
        write_atomic(self.summary_path, json.dumps(summary, indent=2, sort_keys=True) + "\n")

    def read_summary(self) -> dict[str, Any] | None:
        if not self.summary_path.exists():
            return None
        return json.loads(self.summary_path.read_text(encoding="utf-8"))

    def is_finished(self) -> bool:
        s = self.read_summary()
        return bool(s) and s.get("status") in FINISHED_STATUSES
