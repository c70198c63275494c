"""`sdpo-ttt batch`: problem folders x strategies x seeds x grid points -> resumable jobs (local workers or Ray)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.table import Table

from sdpo_ttt.cli.compare_cmd import GRID_SETS
from sdpo_ttt.cli.config_options import config_options
from sdpo_ttt.config.strategies import strategy_help


class EventPrinter:
    """One line per finished job (and per start, unless quiet), on stderr."""

    def __init__(self, console: Console, total: int, quiet: bool) -> None:
        self.console, self.total, self.quiet, self.done, self.t0 = console, total, quiet, 0, time.monotonic()

    def __call__(self, job: str, rec: dict[str, Any]) -> None:
        state = rec["state"]
        if state == "running":
            if not self.quiet:
                self.console.print(f"[dim]start  {job}[/]", highlight=False)
            return
        self.done += 1
        if state == "done":
            what = (f"solved at attempt {rec['discovery_attempt']}" if rec.get("discovery_attempt")
                    else f"{rec.get('status')} after {rec.get('attempts_used')} attempts")
            line = f"[green]done[/]   {job}: {what}"
        elif state == "failed":
            line = f"[red]FAILED[/] {job}: {rec.get('error')}"
        else:
            line = f"[yellow]{state}[/] {job}"
        self.console.print(f"[{self.done}/{self.total}] {line} ({rec.get('wall_s') or 0:.0f} s)", highlight=False)


def print_summary(console: Console, data: dict[str, Any]) -> None:
    has_points = any(p["point"] for p in data["problems"])
    t = Table(title="batch", header_style="bold")
    for col in (["grid point"] if has_points else []) + ["problem", "strategy", "solved", "attempts to discovery", "wall"]:
        t.add_column(col, overflow="fold")
    for p in data["problems"]:
        disc = ", ".join(str(d) if d else "-" for d in p["discovery_attempts"])
        solved = f"{p['solved_runs']}/{p['runs']}" + (f" [red]({p['failed']} failed)[/]" if p["failed"] else "")
        t.add_row(*([p["point"]] if has_points else []), p["problem_id"], p["strategy"], solved, disc, f"{p['wall_time_s']:.0f} s")
    console.print(t)
    for b in data["skipped_problem_files"]:
        console.print(f"[yellow]skipped problem file[/] {b['path']}: {b['error']}", highlight=False)
    c = data["counts"]
    console.print(f"{data['jobs_total']} jobs: " + ", ".join(f"{v} {k}" for k, v in c.items() if v), highlight=False)


def register(app: typer.Typer) -> None:
    @app.command()
    @config_options(exclude=GRID_SETS)
    def batch(
        problems: list[Path] = typer.Argument(..., help="Problem folders or problem.json files (searched recursively); broken files are reported and skipped."),
        out: Path = typer.Option(..., "--out", help="Folder of the batch: [<grid point>/]<problem>/<strategy>/seed<k>/ run dirs, jobs.jsonl, "
                                                    "batch-summary.{json,md}, report/. Re-running continues it."),
        strategy: str = typer.Option("sdpo", "--strategy", help="Strategy, or a comma-separated list: " + strategy_help() + "."),
        seeds: int = typer.Option(1, min=1, help="Independent runs (seeds) per problem, strategy and grid point."),
        seed_start: int = typer.Option(0, min=0, help="First seed; runs use seed_start .. seed_start+seeds-1."),
        grid: list[str] = typer.Option([], "--grid", help="key=v1,v2: one grid axis over an option (key as the option's name, e.g. lr or "
                                                          "temperature); jobs run at every combination of the axes (repeatable)."),
        executor: str = typer.Option("local", metavar="local|ray", help="local: this machine (one job at a time, or --workers processes on CPU); "
                                                                        "ray: one Ray task per job."),
        workers: int = typer.Option(1, min=1, help="local executor: parallel worker processes (CPU only; a GPU runs one job at a time)."),
        address: Optional[str] = typer.Option(None, help="ray executor: cluster to join (auto, or ray://HEAD:10001); default: start Ray on this "
                                                         "machine, on 127.0.0.1."),
        cpus_per_job: float = typer.Option(1.0, help="ray executor: CPU cores per job (a job gets one GPU when the cluster has GPUs)."),
        retry_failed: bool = typer.Option(False, "--retry-failed", help="Run jobs again whose last attempt failed (they are skipped otherwise)."),
        config: Optional[Path] = typer.Option(None, "--config", help="TOML, YAML or JSON file of solve options for every job (below the options given here)."),
        best_of_k_fixed_n: bool = typer.Option(True, "--best-of-k-fixed-n/--best-of-k-stop", help="As in compare: draw best-of-k's whole budget "
                                                                                                  "(exact pass@k), or stop it at the first success."),
        report: bool = typer.Option(True, "--report/--no-report", help="Write OUT/report/ (as `sdpo-ttt report OUT`) at the end."),
        n_boot: int = typer.Option(2000, help="Bootstrap replicates of the report."),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="Only finished jobs and the summary."),
        *,
        options: dict[str, Any],
    ) -> None:
        """Run problem x strategy x seed x grid point as jobs, each its own run directory under --out.

        OUT/jobs.jsonl records every job's state. Re-running the same command skips finished jobs and resumes
        interrupted ones; failed ones are kept (with their error) unless --retry-failed. Ctrl-C stops cleanly.
        """
        from sdpo_ttt.grid import parse_grid, plan_batch, run_batch
        from sdpo_ttt.grid.local import refuse_gpu_workers, refuse_inprocess_vllm
        from sdpo_ttt.grid.cells import parse_strategies
        from sdpo_ttt.config.tree import resolve_config
        from sdpo_ttt.errors import UserError

        from sdpo_ttt.cli.compare_cmd import _once

        if executor not in ("local", "ray"):
            raise UserError(f"unknown executor {executor!r}", "use --executor local or --executor ray")
        base = resolve_config(config, options)
        plan = plan_batch(problems, parse_strategies(strategy), list(range(seed_start, seed_start + seeds)), out, base,
                          parse_grid(grid), best_of_k_fixed_n=best_of_k_fixed_n)
        refuse_inprocess_vllm(base.policy.backend)  # local runs share a process; Ray reuses its worker processes
        if executor == "local":
            refuse_gpu_workers(workers, base.policy.device)
        err = Console(stderr=True)
        for b in plan.broken:
            err.print(f"[yellow]skipping broken problem file[/] {b['path']}: {b['error']}", highlight=False)
        t0 = time.monotonic()
        result = run_batch(plan, executor=executor, workers=workers, retry_failed=retry_failed, address=address,
                           cpus_per_job=cpus_per_job, on_event=EventPrinter(err, len(plan.jobs), quiet), announce=_once(err))
        con = Console()
        print_summary(con, result.summary)
        if result.skipped:
            con.print(f"{len(result.skipped)} job(s) skipped (finished earlier, or failed: --retry-failed reruns those)", style="dim")
        if report and any((j.cell.path / "config.json").exists() for j in plan.jobs):
            from sdpo_ttt.report.write import build_report

            build_report(plan.out, n_boot=n_boot)
        con.print(f"batch of {len(plan.jobs)} jobs in {time.monotonic() - t0:.0f} s; summary: {plan.out / 'batch-summary.md'}", highlight=False)
        counts = result.summary["counts"]
        if counts["failed"] or plan.broken:
            raise typer.Exit(1)
