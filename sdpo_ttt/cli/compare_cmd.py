"""`sdpo-ttt compare` (run a grid of problems × strategies × seeds, then report) and `sdpo-ttt report` (rebuild it)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from sdpo_ttt.cli.config_options import config_options
from sdpo_ttt.config.strategies import COMPARE_DEFAULT, strategy_help


class RichGridProgress:
    """Two bars: attempts over the whole grid (with ETA) and the current run's attempts."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(), console=console, speed_estimate_period=900,
        )
        self.grid = self.run = None
        self.done_runs = self.total_runs = 0
        self.base = 0  # grid attempts completed before the current run
        self.used0 = 0  # the current run's attempts when it (re)started

    def grid_start(self, cells, todo_attempts: int) -> None:
        self.total_runs = len(cells)
        self.progress.start()
        self.grid = self.progress.add_task("[bold]grid (attempts)", total=max(todo_attempts, 1), info=f"runs 0/{len(cells)}")

    def run_start(self, cell, action: str, used: int) -> None:
        self.used0 = used
        desc = f"{cell.name} ({action})"
        if self.run is None:
            self.run = self.progress.add_task(desc, total=cell.config.budget, completed=used, info="")
        else:
            self.progress.reset(self.run, total=cell.config.budget, completed=used, description=desc, info="")

    def run_attempts(self, cell, used: int, best_score: float) -> None:
        self.progress.update(self.run, completed=used, info=f"best {best_score:.2f}")
        self.progress.update(self.grid, completed=self.base + used - self.used0)

    def run_done(self, cell, action: str, summary: dict[str, Any]) -> None:
        self.done_runs += 1
        if action != "skipped":
            self.base += cell.config.budget - self.used0  # a run that solved early leaves its rest of budget undrawn
            self.progress.update(self.grid, completed=self.base)
            self.message(_run_line(cell, action, summary))
        self.progress.update(self.grid, info=f"runs {self.done_runs}/{self.total_runs}")

    def message(self, text: str) -> None:
        self.progress.console.print(text, highlight=False)

    def stop(self) -> None:
        self.progress.stop()


class PlainGridProgress:
    """Not a terminal (CI, logs): one line per run."""

    def __init__(self, console: Console, quiet: bool) -> None:
        self.console, self.quiet, self.t0, self.n, self.i = console, quiet, time.monotonic(), 0, 0

    def grid_start(self, cells, todo_attempts: int) -> None:
        self.n = len(cells)
        if not self.quiet:
            self.console.print(f"{len(cells)} runs, {todo_attempts} attempts to draw at most", highlight=False)

    def run_start(self, cell, action: str, used: int) -> None: ...
    def run_attempts(self, cell, used: int, best_score: float) -> None: ...

    def run_done(self, cell, action: str, summary: dict[str, Any]) -> None:
        self.i += 1
        if not self.quiet:
            self.console.print(f"[{self.i}/{self.n}] {_run_line(cell, action, summary)} ({time.monotonic() - self.t0:.0f} s)", highlight=False)

    def message(self, text: str) -> None:
        if not self.quiet:
            self.console.print(text, highlight=False)

    def stop(self) -> None: ...


def _run_line(cell, action: str, summary: dict[str, Any]) -> str:
    if summary.get("discovery_attempt"):
        what = f"solved at attempt {summary['discovery_attempt']}"
    elif summary.get("status") == "budget_exhausted" and cell.strategy == "best-of-k" and not cell.config.stop_on_success:
        what = f"{summary.get('attempts_used')} samples drawn"
    else:
        what = f"{summary.get('status', '?')} after {summary.get('attempts_used', '?')} attempts"
    wall = summary.get("wall_time_s")
    return f"{cell.name}: {action}, {what}" + (f" ({wall:.0f} s)" if wall is not None and action != "skipped" else "")


def print_table(console: Console, analysis) -> None:
    from sdpo_ttt.report.text import print_terminal

    print_terminal(console, analysis)


def _once(console: Console):
    """An announcer that says each thing once (every run opens the sandbox and would repeat it)."""
    seen: set[str] = set()

    def say(m: str) -> None:
        if m not in seen:
            seen.add(m)
            console.print(f"[yellow]{m}[/]", highlight=False)

    return say


GRID_DEFAULTS = {"budget": 64}  # a grid runs many runs: a smaller budget per run than solve's
GRID_SETS = ("strategy", "seed", "stop_on_success")  # set per cell by the grid, not options


def register(app: typer.Typer) -> None:
    @app.command()
    @config_options(exclude=GRID_SETS, defaults=GRID_DEFAULTS)
    def compare(
        problems: list[Path] = typer.Argument(..., help="problem.json files or folders (searched recursively)."),
        out: Path = typer.Option(..., "--out", help="Folder of the grid: OUT/<problem>/<strategy>/seed<k>/ and OUT/report/. Re-running continues it."),
        seeds: int = typer.Option(5, min=1, help="Independent runs (seeds) per problem and strategy."),
        seed_start: int = typer.Option(0, min=0, help="First seed; runs use seed_start .. seed_start+seeds-1."),
        strategies: str = typer.Option(",".join(COMPARE_DEFAULT), help="Comma-separated strategies to compare: " + strategy_help() + "."),
        best_of_k_fixed_n: bool = typer.Option(True, "--best-of-k-fixed-n/--best-of-k-stop", help="Draw best-of-k's whole budget without stopping "
                                                                                                  "(exact pass@k from all samples), or stop it at "
                                                                                                  "the first success like the others."),
        config: Optional[Path] = typer.Option(None, "--config", help="TOML, YAML or JSON file of solve options shared by every run (strategy and "
                                                                     "seed are set by the grid)."),
        workers: int = typer.Option(1, min=1, help="Runs at once, in worker processes (CPU only; each gets its share of the CPUs' torch threads, see "
                                                   "--threads)."),
        n_boot: int = typer.Option(2000, help="Bootstrap replicates for the bands and intervals."),
        x: str = typer.Option("attempts", "--x", metavar="attempts|tokens|seconds",
                              help="What to draw discovery against: attempts, generated tokens or wall-clock seconds "
                                   "(the headline ratio is given on every axis the runs recorded)."),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="No live display: only the table at the end."),
        *,
        options: dict[str, Any],
    ) -> None:
        """Run every (problem, strategy, seed) into its own run directory under --out, then write OUT/report/.

        Finished runs are skipped and interrupted ones resumed, so re-running the same command continues a grid.
        """
        from sdpo_ttt.grid.local import refuse_gpu_workers, refuse_inprocess_vllm
        from sdpo_ttt.grid.cells import parse_strategies, plan_grid
        from sdpo_ttt.grid.compare import run_grid
        from sdpo_ttt.config.tree import resolve_config
        from sdpo_ttt.report.write import build_report

        err = Console(stderr=True)
        names = parse_strategies(strategies)
        base = resolve_config(config, options, GRID_DEFAULTS)
        refuse_gpu_workers(workers, base.policy.device)
        refuse_inprocess_vllm(base.policy.backend)
        cells = plan_grid(problems, names, list(range(seed_start, seed_start + seeds)), out, base, best_of_k_fixed_n=best_of_k_fixed_n)
        live = not quiet and err.is_terminal
        progress = RichGridProgress(err) if live else PlainGridProgress(err, quiet)
        t0 = time.monotonic()
        try:
            run_grid(cells, progress=progress, announce=_once(err), workers=workers)
        finally:
            progress.stop()
        analysis, paths = build_report(out, n_boot=n_boot, x=x)
        con = Console()
        print_table(con, analysis)
        con.print(f"grid of {len(cells)} runs done in {time.monotonic() - t0:.0f} s; report: {out / 'report' / 'report.html'}", highlight=False)

    @app.command()
    def report(
        runs_dir: Path = typer.Argument(..., help="A compare --out folder (or any folder of run directories)."),
        out: Optional[Path] = typer.Option(None, "--out", help="Where to write the report [default: RUNS_DIR/report]."),
        n_boot: int = typer.Option(2000, help="Bootstrap replicates for the bands and intervals."),
        x: str = typer.Option("attempts", "--x", metavar="attempts|tokens|seconds",
                              help="What to draw discovery against: attempts, generated tokens or wall-clock seconds "
                                   "(the headline ratio is given on every axis the runs recorded)."),
        seed: int = typer.Option(0, help="Seed of the bootstrap (the report is reproducible for a seed)."),
    ) -> None:
        """Rebuild the report (curves.png, summary.md/.csv/.json, report.html) from existing run directories; runs nothing."""
        from sdpo_ttt.report.write import build_report

        analysis, paths = build_report(runs_dir, out, n_boot=n_boot, seed=seed, x=x)
        con = Console()
        print_table(con, analysis)
        con.print(f"report: {paths[-1]}", highlight=False)
