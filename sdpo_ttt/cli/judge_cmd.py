"""`sdpo-ttt judge PROBLEM ATTEMPT.py [ATTEMPT.py ...]`: judge programs in order in one sandbox session (as
`solve` does, so what one attempt leaves behind would meet the next); table + feedback, or --json lines."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table

from sdpo_ttt.cli.config_options import choice_enum
from sdpo_ttt.errors import UserError
from sdpo_ttt.sandbox.safe_text import safe_text, safe_tree
from sdpo_ttt.sandbox.verdict import Verdict

SandboxKind = choice_enum("sandbox", "SandboxKind")  # the run config's choices, declared once
VisibilityOpt = choice_enum("feedback_visibility", "VisibilityOpt")
StyleOpt = choice_enum("feedback_style", "StyleOpt")


_STYLE = {"passed": "green", "wrong_answer": "red", "compile_error": "bold red", "format_error": "bold red",
          "sandbox_error": "magenta"}


def _read_attempts(attempts: list[Path]) -> list[str]:
    codes = []
    for attempt in attempts:
        try:
            codes.append(attempt.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise UserError(f"{attempt}: no such file", "pass the path of each program to judge") from None
        except IsADirectoryError:
            raise UserError(f"{attempt}: is a folder", "pass the .py files, e.g. `FOLDER/*.py`") from None
        except (OSError, UnicodeDecodeError) as e:
            raise UserError(f"{attempt}: cannot read it ({e})", "pass readable UTF-8 .py files") from None
    return codes


def judge(
    problem: Path = typer.Argument(..., help="problem.json or a problem folder"),
    attempts: list[Path] = typer.Argument(..., help="the programs to judge (.py files), judged in this order"),
    sandbox: SandboxKind = typer.Option(SandboxKind.auto, help="auto: Docker if available, else local (announced)"),
    visibility: VisibilityOpt = typer.Option(VisibilityOpt.public, help="which tests the feedback may quote (docs/feedback.md)"),
    style: StyleOpt = typer.Option(StyleOpt.reference, help="how the feedback is written: the reference's rules, or detailed"),
    seed: int = typer.Option(0, min=0, help="the run seed that draws the held-back tests (--visibility all-but-held-back)"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object per line per attempt (attempt, passed, "
                                                       "score, outcome, tests, feedback, sandbox)"),
) -> None:
    """Judge each ATTEMPT against every test of PROBLEM, in order, in ONE sandbox session.
    Exit 0 if every attempt passed, 1 if any failed, 2 on bad input (nothing is judged then)."""
    from sdpo_ttt.config.tree import JudgeConfig
    from sdpo_ttt.sandbox.feedback import FeedbackRules
    from sdpo_ttt.problem.schema import load_problem
    from sdpo_ttt.sandbox import open_sandbox
    from sdpo_ttt.sandbox.verdict import verdict_report

    prob = load_problem(problem)
    rules = FeedbackRules.for_run(prob, JudgeConfig(feedback_style=style.value, feedback_visibility=visibility.value), seed)
    codes = _read_attempts(attempts)
    err = Console(stderr=True)
    out = Console()
    all_passed = True
    with open_sandbox(sandbox.value, workers=1, announce=lambda m: err.print(f"[yellow]{m}[/]", highlight=False)) as sb:
        backend = sb.name
        for attempt, code in zip(attempts, codes, strict=True):
            verdict = sb.judge(prob, code)
            all_passed = all_passed and verdict.passed
            feedback = rules.render(prob, verdict)
            if as_json:
                report = verdict_report(verdict, feedback, attempt=str(attempt), problem=prob.id, sandbox=backend)
                typer.echo(json.dumps(safe_tree(report)))
            else:
                _print_table(out, prob.id, attempt, backend, verdict, feedback, f"{style.value}, {visibility.value}",
                             rules.held_back)
    if not as_json and len(attempts) > 1:
        out.print(f"[bold]{'all' if all_passed else 'not all'} of {len(attempts)} attempts passed[/]")
    raise typer.Exit(0 if all_passed else 1)


def _print_table(out: Console, problem_id: str, attempt: Path, backend: str, verdict: Verdict, feedback: str,
                 rules: str, held_back: frozenset[int]) -> None:
    table = Table(title=f"{problem_id}: {attempt.name} ({backend} sandbox)")
    for col in ("#", "test", "verdict", "time (s)", "detail"):
        table.add_column(col, overflow="fold")
    for t in verdict.tests:
        style = _STYLE.get(t.outcome.value, "yellow")
        which = "held back" if t.index in held_back else "public" if t.public else "hidden"
        table.add_row(str(t.index + 1), which, f"[{style}]{t.outcome.value}[/]",
                      f"{t.time_s:.3f}", escape(safe_text(t.detail[:120])))
    out.print(table)
    n_pass = sum(t.outcome.value == "passed" for t in verdict.tests)
    colour = "green" if verdict.passed else "red"
    out.print(f"[bold {colour}]{'PASSED' if verdict.passed else 'FAILED'}[/] {n_pass}/{len(verdict.tests)} tests, "
              f"score {verdict.score:.2f}")
    out.print(Panel(escape(safe_text(feedback)), title=f"feedback ({rules})", expand=False), highlight=False)


def register(app: typer.Typer) -> None:
    """Add `judge` to the app."""
    app.command("judge")(judge)
