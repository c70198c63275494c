"""What the loop tells its user, and the phases a step goes through.

`Reporter` is the one interface: subclass it and override what you show (the CLI's live display, a log line per
batch, a grid's progress); every method does nothing by default, so a reporter overrides only what it uses.
`Phases` is how phases reach it: the loop announces its own (sampling, judging, update) and the SDPO updater,
given `Phases.micro_batch` as its on_phase callback, announces each micro-batch's teacher pass and update.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from sdpo_ttt.sandbox.attempt import Attempt


class Reporter(Protocol):
    """The loop's events, in the order they come; every method is a no-op unless a reporter overrides it."""

    def opened(self, path: Path) -> None:
        """The run directory everything is written into."""

    def start(self, budget: int, used: int) -> None:
        """The run starts (or resumes with `used` attempts already spent) with an attempt budget."""

    def budgets(self, max_time_s: float | None, max_tokens: int | None, wall_before: float, tokens_before: int) -> None:
        """The time and token budgets, and what earlier processes of this run already spent of them."""

    def phase(self, name: str, step: int, n: int, token_cap: int, part: tuple[int, int] | None = None) -> None:
        """A step enters a phase (sampling | judging | update | teacher) with its attempt count and token cap
        (sampling); part: micro-batch i of k (teacher | update of an SDPO step)."""

    def tokens(self, n: int) -> None:
        """n more tokens were generated (while sampling)."""

    def attempts(self, attempts: list["Attempt"], used: int, best_score: float) -> None:
        """A batch was judged."""

    def step(self, step: int, metrics: dict[str, float]) -> None:
        """A step's update, with its metrics (as in metrics.jsonl)."""

    def message(self, text: str) -> None:
        """A message for the user (resuming, a warning)."""


class SilentReporter(Reporter):
    """Tells nobody anything."""


class Phases:
    """The phase of the current step, told to the reporter; `micro_batch` is the updater's on_phase callback."""

    def __init__(self, reporter: Reporter) -> None:
        self.reporter = reporter
        self.step, self.n = 0, 0

    def __call__(self, name: str, step: int, n: int, token_cap: int = 0) -> None:
        self.step, self.n = step, n
        self.reporter.phase(name, step, n, token_cap)

    def micro_batch(self, name: str, i: int, k: int) -> None:
        """The updater's ("teacher" | "student", micro-batch i of k): shown as teacher | update, part i+1 of k."""
        self.reporter.phase("teacher" if name == "teacher" else "update", self.step, self.n, 0, (i + 1, k))
