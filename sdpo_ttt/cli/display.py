"""What `solve` shows while a run goes on, and the line that explains how it ended.

The loop reports events (sdpo_ttt/run/reporter.py `Reporter`); `RunView` folds them into what a user wants to see
(phase with token progress and tokens/s, run totals next to the last batch, best score, the most common
verdict, the last feedback line, the current loss, an ETA), and `render_lines` turns a view into text.
Both are pure, so the tests drive them with a fake clock. Two reporters render it: `LiveReporter` (a rich
live display on a terminal) and `PlainReporter` (one line per batch, for logs; nothing with --quiet).
`explain_end` reads a finished run's attempts and says why an unsolved run did not solve.
"""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.text import Text

from sdpo_ttt.run.reporter import Reporter

PHASE_LABELS = {"sampling": "sampling", "judging": "judging", "teacher": "teacher pass", "update": "update", "": "starting"}


def fmt_duration(seconds: float) -> str:
    """3:07, 1:02:10 (h:mm:ss past an hour)."""
    s = max(0, int(round(seconds)))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"


def counts_text(counts: Counter[str] | dict[str, int]) -> str:
    """'wrong_answer 9, format_error 3': most common first (ties by name)."""
    items = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return ", ".join(f"{k} {v}" for k, v in items) if items else "-"


def first_line(text: str, limit: int = 160) -> str:
    """The first non-empty line of a feedback text, cut to `limit` characters."""
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    return line if len(line) <= limit else line[: limit - 1] + "…"


@dataclass
class RunView:
    """Everything the display shows, updated by the loop's events (times come from the caller's clock)."""

    budget: int = 0
    used: int = 0
    used_at_start: int = 0  # attempts already spent before this process (resume)
    t_start: float = 0.0
    phase: str = ""
    phase_step: int = 0
    phase_n: int = 0
    phase_t0: float = 0.0
    phase_part: tuple[int, int] | None = None  # micro-batch i of k (teacher / update)
    token_cap: int = 0
    phase_tokens: int = 0
    tokens_total: int = 0  # generated tokens in this process
    best: float = 0.0
    passed: int = 0
    verdicts: Counter[str] = field(default_factory=Counter)  # run totals (this process)
    last_batch: Counter[str] = field(default_factory=Counter)
    cut_off: int = 0  # attempts that hit max_new_tokens (this process)
    seen: int = 0  # attempts judged in this process
    loss: float | None = None
    loss_step: int | None = None
    grad_norm: float | None = None
    last_feedback: str = ""
    last_rate: float | None = None  # tokens/s of the last finished sampling phase
    max_time_s: float | None = None  # --max-time, and what was spent before this process (resume)
    max_tokens: int | None = None
    wall_before: float = 0.0
    tokens_before: int = 0

    def start(self, budget: int, used: int, now: float) -> None:
        self.budget, self.used, self.used_at_start, self.t_start = budget, used, used, now

    def set_phase(self, name: str, step: int, n: int, token_cap: int, now: float, part: tuple[int, int] | None = None) -> None:
        if self.phase == "sampling" and name != "sampling" and now > self.phase_t0 and self.phase_tokens:
            self.last_rate = self.phase_tokens / (now - self.phase_t0)
        self.phase, self.phase_step, self.phase_n, self.token_cap, self.phase_t0 = name, step, n, token_cap, now
        self.phase_part = part
        self.phase_tokens = 0

    def add_tokens(self, n: int) -> None:
        self.phase_tokens += n
        self.tokens_total += n

    def add_attempts(self, attempts: Sequence[Any], used: int, best: float) -> None:
        """`attempts`: the loop's Attempt objects of one batch (verdict, feedback, completion.finish_reason)."""
        self.used, self.best = used, best
        self.last_batch = Counter(a.verdict.outcome.value for a in attempts)
        self.verdicts.update(self.last_batch)
        self.passed += sum(1 for a in attempts if a.verdict.passed)
        self.cut_off += sum(1 for a in attempts if getattr(a.completion, "finish_reason", "") == "length")
        self.seen += len(attempts)
        failed = [a.feedback for a in attempts if a.feedback]
        if failed:
            self.last_feedback = first_line(failed[-1])

    def add_metrics(self, step: int, metrics: dict[str, float]) -> None:
        if "loss" in metrics:
            self.loss, self.loss_step = float(metrics["loss"]), step
        if "grad_norm" in metrics:
            self.grad_norm = float(metrics["grad_norm"])

    def set_budgets(self, max_time_s: float | None, max_tokens: int | None, wall_before: float, tokens_before: int) -> None:
        self.max_time_s, self.max_tokens, self.wall_before, self.tokens_before = max_time_s, max_tokens, wall_before, tokens_before

    def eta_s(self, now: float) -> float | None:
        """Seconds left: at this process's pace per attempt, or until --max-time, whichever comes first (None before
        the first batch when there is no time budget)."""
        left = None if self.max_time_s is None else max(self.max_time_s - self.wall_before - (now - self.t_start), 0.0)
        done = self.used - self.used_at_start
        if done <= 0 or now <= self.t_start:
            return left
        pace = (now - self.t_start) / done * max(self.budget - self.used, 0)
        return pace if left is None else min(pace, left)

    def tokens_per_s(self, now: float) -> float | None:
        if self.phase == "sampling" and self.phase_tokens and now > self.phase_t0:
            return self.phase_tokens / (now - self.phase_t0)
        return self.last_rate


def render_lines(v: RunView, now: float) -> list[str]:
    """The live display as plain lines (the rich reporter styles and cuts them to the terminal width)."""
    eta = v.eta_s(now)
    elapsed = f"{fmt_duration(now - v.t_start)} elapsed"
    if v.max_time_s is not None:
        elapsed = f"{fmt_duration(v.wall_before + now - v.t_start)}/{fmt_duration(v.max_time_s)} of --max-time"
    tokens = f" · tokens {v.tokens_before + v.tokens_total}/{v.max_tokens}" if v.max_tokens is not None else ""
    head = (f"attempts {v.used}/{v.budget}{tokens} · passed {v.passed} · best score {v.best:.2f} · {elapsed}"
            + (f" · ETA {fmt_duration(eta)}" if eta is not None else ""))
    label = PHASE_LABELS.get(v.phase, v.phase)
    phase = f"step {v.phase_step} · {label}" + (f" {v.phase_n} attempts" if v.phase else "")
    if v.phase == "sampling":
        phase += f" · {v.phase_tokens}/{v.token_cap} tokens"
    if v.phase_part is not None:
        phase += f" · micro-batch {v.phase_part[0]}/{v.phase_part[1]}"
    rate = v.tokens_per_s(now)
    if rate is not None:
        phase += f" · {rate:.1f} tok/s"
    phase += f" · {fmt_duration(now - v.phase_t0)}" if v.phase else ""
    lines = [head, phase]
    if v.seen:
        cut = f" · cut off at the token limit: {v.cut_off}/{v.seen}" if v.cut_off else ""
        lines.append(f"run totals: {counts_text(v.verdicts)}{cut} | last batch: {counts_text(v.last_batch)}")
    if v.loss is not None:
        grad = f" · grad norm {v.grad_norm:.3g}" if v.grad_norm is not None else ""
        lines.append(f"loss {v.loss:.4g} (step {v.loss_step}){grad}")
    if v.last_feedback:
        lines.append(f"last feedback: {v.last_feedback}")
    return lines


def batch_line(v: RunView) -> str:
    """One log line per judged batch (not a terminal)."""
    cut = f"  cut off {v.cut_off}/{v.seen}" if v.cut_off else ""
    rate = f"  {v.last_rate:.1f} tok/s" if v.last_rate is not None else ""
    return (f"attempts {v.used}/{v.budget}  passed {v.passed}  best score {v.best:.2f}  run totals: {counts_text(v.verdicts)}"
            f"  last batch: {counts_text(v.last_batch)}{cut}{rate}")


# ------------------------------------------------------------------ how a run ended
def explain_end(summary: dict[str, Any], attempts: Sequence[dict[str, Any]], max_new_tokens: int) -> str:
    """One sentence on why a run did not solve, from its summary and attempts.jsonl records ("" if it solved)."""
    if summary.get("solved"):
        return ""
    n = len(attempts)
    if n == 0:
        return "no attempt was judged"
    reason = summary.get("stop_reason", "")
    spent = {"max_time": "the --max-time budget ran out", "max_tokens": "the --max-tokens budget ran out"}.get(reason, "")
    prefix = f"{spent}; " if spent else ""
    cut = sum(1 for a in attempts if a.get("finish_reason") == "length")
    verdicts = Counter(str(a.get("verdict", "?")) for a in attempts)
    if cut * 2 > n:
        return f"{prefix}{cut}/{n} attempts were cut off at {max_new_tokens} tokens; raise --max-new-tokens"
    kind, k = sorted(verdicts.items(), key=lambda kv: (-kv[1], kv[0]))[0]
    best = max(float(a.get("score", 0.0)) for a in attempts)
    advice = {
        "format_error": "no program could be read from the answer; check --system-prompt/--user-template or try a larger --model",
        "compile_error": "the programs did not load; check the problem's entry point and starter code",
        "sandbox_error": "the sandbox failed (not the attempts); run `sdpo-ttt sandbox check`",
        "time_limit": "too slow for the time limit; check the problem's limits",
    }.get(kind, "raise --budget, or try another --strategy or a larger --model")
    return f"{prefix}{k}/{n} attempts ended in {kind}, best score {best:.2f}: {advice}"


def interrupted_hint(run_dir: Path | None) -> str:
    if run_dir is None:
        return "interrupted before the run started: no attempt was made"
    return f"interrupted — continue with `sdpo-ttt solve --resume {run_dir}`"


# ------------------------------------------------------------------ reporters
class _Events(Reporter):
    """The loop's Reporter calls, folded into a RunView; subclasses render."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.view = RunView()
        self.clock = clock
        self.run_dir: Path | None = None

    def opened(self, path: Path) -> None:
        self.run_dir = Path(path)

    def start(self, budget: int, used: int) -> None:
        self.view.start(budget, used, self.clock())

    def phase(self, name: str, step: int, n: int, token_cap: int, part: tuple[int, int] | None = None) -> None:
        self.view.set_phase(name, step, n, token_cap, self.clock(), part)

    def budgets(self, max_time_s: float | None, max_tokens: int | None, wall_before: float, tokens_before: int) -> None:
        self.view.set_budgets(max_time_s, max_tokens, wall_before, tokens_before)

    def tokens(self, n: int) -> None:
        self.view.add_tokens(n)

    def attempts(self, attempts, used: int, best_score: float) -> None:
        self.view.add_attempts(attempts, used, best_score)

    def step(self, step: int, metrics: dict[str, float]) -> None:
        self.view.add_metrics(step, metrics)

    def stop(self) -> None: ...


class PlainReporter(_Events):
    """No live display (not a terminal, --quiet or --json): one log line per batch on stderr unless quiet."""

    def __init__(self, console: Console, quiet: bool, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(clock)
        self.console, self.quiet = console, quiet

    def attempts(self, attempts, used: int, best_score: float) -> None:
        super().attempts(attempts, used, best_score)
        if not self.quiet:
            self.console.print(batch_line(self.view), highlight=False, soft_wrap=True)

    def step(self, step: int, metrics: dict[str, float]) -> None:
        super().step(step, metrics)
        if not self.quiet and "loss" in metrics:
            self.console.print(f"  step {step}: loss {metrics['loss']:.4g}  grad norm {metrics.get('grad_norm', 0.0):.3g}", highlight=False)

    def message(self, text: str) -> None:
        if not self.quiet:
            self.console.print(text, highlight=False, soft_wrap=True)


class _LiveView:
    """A renderable that re-renders the view on every refresh (so token counts and clocks move between events)."""

    def __init__(self, reporter: "LiveReporter") -> None:
        self.reporter = reporter

    def __rich__(self) -> Group:
        lines = render_lines(self.reporter.view, self.reporter.clock())
        styled = [Text(lines[0], style="bold")] + [Text(ln) for ln in lines[1:]]
        for t in styled:
            t.no_wrap, t.overflow = True, "ellipsis"  # one line each, whatever the terminal width
        return Group(*styled)


class LiveReporter(_Events):
    """The live display on a terminal (stderr). SIGTERM stops it first, so the cursor comes back."""

    def __init__(self, console: Console, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(clock)
        self.console = console
        self.live = Live(_LiveView(self), console=console, refresh_per_second=4, transient=False)
        self._previous_term: Any = None

    def start(self, budget: int, used: int) -> None:
        super().start(budget, used)
        if not self.live.is_started:
            self.live.start()
            self._previous_term = signal.signal(signal.SIGTERM, self._on_sigterm)

    def message(self, text: str) -> None:
        self.console.print(f"[yellow]{text}[/]", highlight=False)

    def stop(self) -> None:
        if self.live.is_started:
            self.live.stop()  # also shows the cursor again
        if self._previous_term is not None:
            signal.signal(signal.SIGTERM, self._previous_term)
            self._previous_term = None

    def _on_sigterm(self, signum: int, frame: FrameType | None) -> None:
        self.stop()
        self.console.show_cursor(True)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)  # die of SIGTERM as if no handler were there
