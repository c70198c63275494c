"""What a run spends, and when it must stop: attempts (--budget), wall-clock time (--max-time), generated tokens
(--max-tokens), whichever is hit first.

`RunCosts` is the running account the loop keeps (and saves in every checkpoint, so a resumed run goes on from
what was already spent); `stop_reason` is the one rule that decides, before each batch, whether to stop. A batch
that has started always finishes, so the time and token budgets can be overshot by at most one batch.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass
class RunCosts:
    """What a run has spent so far (all of it, across resumes, up to the last complete step)."""

    attempts: int = 0
    generated_tokens: int = 0  # completion tokens sampled, EOS included
    wall_s: float = 0.0  # wall-clock seconds of the loop
    device_s: float = 0.0  # seconds the model occupied its device (GPU or CPU): sampling + updates
    cpu_s: float = 0.0  # CPU seconds of this process, all threads (judging in the sandbox is not counted)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> "RunCosts":
        data = data or {}
        return cls(**{k: type(getattr(cls(), k))(data[k]) for k in asdict(cls()) if k in data})


def stop_reason(costs: RunCosts, budget: int, max_time_s: float | None, max_tokens: int | None) -> str | None:
    """Why the run must stop before its next batch ('attempts' | 'max_time' | 'max_tokens'), or None to go on.

    Checked in this order, so when several are hit at once the attempt budget is named."""
    if costs.attempts >= budget:
        return "attempts"
    if max_time_s is not None and costs.wall_s >= max_time_s:
        return "max_time"
    if max_tokens is not None and costs.generated_tokens >= max_tokens:
        return "max_tokens"
    return None
