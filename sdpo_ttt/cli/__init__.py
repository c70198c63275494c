"""The `sdpo-ttt` command line. Commands are thin: parse options, call one library function, render.

Each command group lives in its own module with a `register(app)` function. Heavy imports (torch,
transformers, docker) happen inside the commands so that `--help` stays fast.
"""

from __future__ import annotations

import sys

import typer
from rich.console import Console
from rich.markup import escape

from sdpo_ttt.cli import batch_cmd, compare_cmd, judge_cmd, models_cmd, problem_cmd, sample_cmd, sandbox_cmd, solve_cmd
from sdpo_ttt.errors import UserError

app = typer.Typer(
    name="sdpo-ttt",
    help="Test-time discovery on one hard programming problem: sample attempts, judge them in a sandbox, "
    "and learn from the feedback with SDPO self-distillation until an attempt passes every test.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # help texts contain literal brackets ("[default: 8]", "sdpo-ttt[vllm]")
)

@app.callback()
def _root() -> None:
    """sdpo-ttt: sample, judge, learn from feedback, repeat until solved."""


@app.command()
def version() -> None:
    """Print the sdpo-ttt version."""
    from sdpo_ttt import __version__

    typer.echo(__version__)


for _module in (judge_cmd, problem_cmd, sandbox_cmd, models_cmd, sample_cmd, solve_cmd, compare_cmd, batch_cmd):
    _module.register(app)


def main() -> None:
    """Entry point: runs the app and renders user errors once, as one message with the fix (exit 2)."""
    try:
        rc = app(standalone_mode=False)  # click returns the exit code of typer.Exit instead of raising it here
        sys.exit(rc if isinstance(rc, int) else 0)
    except UserError as e:
        err = Console(stderr=True, soft_wrap=True)  # never break a path in the middle of a message
        err.print(f"[bold red]error:[/] {escape(e.message)}", highlight=False)
        if e.fix:
            err.print(f"[yellow]fix:[/] {escape(e.fix)}", highlight=False)
        sys.exit(e.exit_code)
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except typer.Abort:
        Console(stderr=True).print("[red]aborted[/]")
        sys.exit(130)
    except KeyboardInterrupt:
        Console(stderr=True).print("[red]interrupted[/]")
        sys.exit(130)
    except Exception as e:  # click usage errors come through here with standalone_mode=False
        if _is_click_error(e):
            e.show()
            sys.exit(2)
        raise


def _is_click_error(e: Exception) -> bool:
    """Usage errors of click, or of the copy of click that typer vendors."""
    kinds: list[type] = []
    try:
        import click

        kinds.append(click.exceptions.ClickException)
    except ImportError:
        pass
    try:
        from typer._click import exceptions as vendored  # type: ignore[attr-defined]

        kinds.append(vendored.ClickException)
    except ImportError:
        pass
    return isinstance(e, tuple(kinds))

if __name__ == "__main__":
    main()
