"""`sdpo-ttt judge PROBLEM ATTEMPT.py`: judge one program in the sandbox; table + feedback, or --json."""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path

import typer
from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from sdpo_ttt.errors import UserError


class SandboxKind(str, Enum):
    auto = "auto"
    docker = "docker"
    local = "local"


class VisibilityOpt(str, Enum):
    public = "public"
    all = "all"
    binary = "binary"


_STYLE = {"passed": "green", "wrong_answer": "red", "compile_error": "bold red", "format_error": "bold red",
          "sandbox_error": "magenta"}


def judge(
    problem: Path = typer.Argument(..., help="problem.json or a problem folder"),
    attempt: Path = typer.Argument(..., help="the program to judge (a .py file)"),
    sandbox: SandboxKind = typer.Option(SandboxKind.auto, help="auto: Docker if available, else local (announced)"),
    visibility: VisibilityOpt = typer.Option(VisibilityOpt.public, help="what the feedback text may reveal"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object (passed, score, tests, feedback)"),
) -> None:
    """Judge ATTEMPT against every test of PROBLEM. Exit 0 passed, 1 failed, 2 bad input."""
    from sdpo_ttt.feedback import render_feedback
    from sdpo_ttt.problem import load_problem
    from sdpo_ttt.sandbox import open_sandbox
    from sdpo_ttt.verdict import verdict_report

    prob = load_problem(problem)
    try:
        code = attempt.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"{attempt}: no such file", "pass the path of the program to judge") from None
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"{attempt}: cannot read it ({e})", "pass a readable UTF-8 .py file") from None
    err = Console(stderr=True)
    with open_sandbox(sandbox.value, workers=1, announce=lambda m: err.print(f"[yellow]{m}[/]", highlight=False)) as sb:
        verdict = sb.judge(prob, code)
        backend = sb.name
    feedback = render_feedback(prob, verdict, visibility.value)
    if as_json:
        typer.echo(json.dumps(verdict_report(verdict, feedback, problem=prob.id, sandbox=backend), indent=2))
        raise typer.Exit(0 if verdict.passed else 1)

    table = Table(title=f"{prob.id}: {attempt.name} ({backend} sandbox)")
    for col in ("#", "test", "verdict", "time (s)", "detail"):
        table.add_column(col, overflow="fold")
    for t in verdict.tests:
        style = _STYLE.get(t.outcome.value, "yellow")
        table.add_row(str(t.index + 1), "public" if t.public else "hidden", f"[{style}]{t.outcome.value}[/]",
                      f"{t.time_s:.3f}", t.detail[:120])
    out = Console()
    out.print(table)
    n_pass = sum(t.outcome.value == "passed" for t in verdict.tests)
    colour = "green" if verdict.passed else "red"
    out.print(f"[bold {colour}]{'PASSED' if verdict.passed else 'FAILED'}[/] {n_pass}/{len(verdict.tests)} tests, "
              f"score {verdict.score:.2f}")
    out.print(Panel(feedback, title=f"feedback ({visibility.value})", expand=False), highlight=False)
    raise typer.Exit(0 if verdict.passed else 1)


def register(app: typer.Typer) -> None:
    """Add `judge` to the app."""
    app.command("judge")(judge)
