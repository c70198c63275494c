"""`sdpo-ttt solve`: run the discovery loop on one problem (any strategy; SDPO by default)."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console

from sdpo_ttt.cli.display import LiveReporter, PlainReporter, explain_end, interrupted_hint
from sdpo_ttt.cli.config_options import config_options


def register(app: typer.Typer) -> None:
    @app.command()
    @config_options()
    def solve(
        problem: Optional[Path] = typer.Argument(None, help="problem.json (or its folder). Not needed with --resume."),
        run_dir: Optional[Path] = typer.Option(None, help="Where the run is written [default: runs/<problem>-<strategy>-s<seed>-<time>]."),
        config: Optional[Path] = typer.Option(None, "--config", help="TOML, YAML or JSON file of options (keys are the option names, '-' or '_'); "
                                                                     "options given here override it."),
        resume: Optional[Path] = typer.Option(None, help="Continue a killed run from its last complete step (uses that run's config)."),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="No live display; print only the result line."),
        json_out: bool = typer.Option(False, "--json", help="Print the summary as one JSON object on stdout (no live display)."),
        *,
        options: dict[str, Any],
    ) -> None:
        """Sample attempts, judge them in the sandbox, learn from feedback (SDPO), stop at the first full pass.

        Exit code: 0 solved, 1 budget spent unsolved, 2 bad input.
        """
        from sdpo_ttt.config.tree import resolve_config
        from sdpo_ttt.errors import UserError

        err = Console(stderr=True)
        if resume is not None:
            if problem is not None or options or config is not None:
                raise UserError("--resume continues a run with its own saved config", "drop the problem and the other options")
            cfg = None
        else:
            if problem is None:
                raise UserError("no problem given", "pass a problem.json (or folder), e.g. `sdpo-ttt solve problems/two-sum/problem.json`")
            cfg = resolve_config(config, options)  # a bad option fails here, before torch is even imported
        from sdpo_ttt.run.solve import solve as run_solve

        live = not (quiet or json_out) and sys.stderr.isatty()
        reporter = LiveReporter(err) if live else PlainReporter(err, quiet or json_out)
        announce = (lambda m: err.print(f"[yellow]{m}[/]")) if not json_out else (lambda m: err.print(m))
        try:
            summary, run = run_solve(problem, cfg, run_dir=run_dir, resume=resume, reporter=reporter, announce=announce)
        except KeyboardInterrupt:
            reporter.stop()
            err.print(interrupted_hint(reporter.run_dir), highlight=False, soft_wrap=True)
            raise typer.Exit(130) from None
        finally:
            reporter.stop()
        if json_out:
            typer.echo(json.dumps({**asdict(summary), "run_dir": str(run.path)}))
        elif summary.solved:
            Console().print(
                f"[bold green]solved[/] {summary.problem_id} at attempt {summary.discovery_attempt} of {summary.budget} "
                f"({summary.wall_time_s:.0f} s) -> {run.solution_path}"
                + (f"; {summary.attempts_passed} of {summary.attempts_used} attempts passed" if summary.attempts_passed > 1 else "")
            )
        else:
            Console().print(
                f"[bold red]not solved[/] {summary.problem_id}: {summary.attempts_used} attempts, best score {summary.best_score:.2f} "
                f"({summary.wall_time_s:.0f} s); run: {run.path}"
            )
            why = explain_end(asdict(summary), run.read_attempts(), int(run.read_config().get("max_new_tokens", 0)))
            if why:
                Console().print(why, highlight=False, soft_wrap=True)
        raise typer.Exit(0 if summary.solved else 1)
