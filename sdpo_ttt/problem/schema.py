"""The problem file (problems/<id>/problem.json, schema 1): a typed model and a loader with clear errors."""

from __future__ import annotations

import json
import re
from enum import Enum
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from sdpo_ttt.errors import ProblemFileError

SCHEMA_VERSION = 1
_SKIP_CONSISTENCY = "skip_consistency"  # validation context flag: field checks only


class Kind(str, Enum):
    stdio = "stdio"  # program reads stdin, writes stdout
    function = "function"  # program defines a function (or class Solution method) called per test
    script = "script"  # program defines a function; a test program (asserts) checks it: HumanEval / MBPP style


class CompareMode(str, Enum):
    tokens = "tokens"  # whitespace-split tokens equal; numbers within float_tol (abs or rel)
    exact = "exact"  # byte-exact output
    lines = "lines"  # line by line, trailing whitespace and trailing blank lines ignored
    json = "json"  # structural JSON equality with float tolerance


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FunctionSpec(_Strict):
    name: str = Field(min_length=1, description="entry point: a top-level function or a method of class Solution")
    starter_code: str = ""

    @field_validator("name")
    @classmethod
    def _identifier(cls, v: str) -> str:
        if not v.isidentifier():
            raise ValueError(f"must be a Python identifier, got {v!r}")
        return v


class ScriptSpec(_Strict):
    """Tests as code. `setup_code` then `test_code` run in a trusted process apart from the attempt (never in
    its namespace), with `entry_point` bound, after the setup, to a proxy that calls the attempt's function
    with plain values; if `check_function` is set (HumanEval: "check"), it is then called with that proxy.
    Each assert of `test_code` is one test (see sdpo_ttt/problem/asserts.py)."""

    entry_point: str = Field(min_length=1, description="the function the attempt must define (top-level, or a method of class Solution)")
    test_code: str = Field(min_length=1, description="Python code whose assert statements are the tests")
    setup_code: str = Field("", description="run before test_code (MBPP test_setup_code; HumanEval: the prompt, "
                                            "whose helpers some checks use)")
    check_function: str = Field("", description="a function test_code defines, called with the attempt's function (HumanEval: check)")

    @field_validator("entry_point")
    @classmethod
    def _identifier(cls, v: str) -> str:
        if not v.isidentifier():
            raise ValueError(f"must be a Python identifier, got {v!r}")
        return v

    @field_validator("check_function")
    @classmethod
    def _identifier_or_empty(cls, v: str) -> str:
        if v and not v.isidentifier():
            raise ValueError(f"must be empty or a Python identifier, got {v!r}")
        return v


class Test(_Strict):
    __test__ = False  # not a pytest class

    input: str = Field(description="stdin text (stdio), a JSON array of positional arguments (function), "
                                   "or the assert statement's source (script)")
    output: str = Field(description="expected stdout (stdio), a JSON value (function), or unused (script)")
    public: bool = Field(True, description="public tests may be shown to the model in feedback")


class Compare(_Strict):
    mode: CompareMode = CompareMode.tokens
    float_tol: float = Field(1e-6, ge=0.0)
    ints_are_floats: bool = Field(False, description="an integer expected value may be answered with any number "
                                                     "within float_tol (for real-valued answers written as integers); "
                                                     "by default an integer needs the same integer")


class Limits(_Strict):
    time_s: float = Field(2.0, gt=0, le=60)
    memory_mb: int = Field(256, ge=16, le=16384)


class Problem(_Strict):
    schema_: Literal[1] = Field(1, alias="schema")
    id: str = Field(min_length=1, description="folder-friendly name: letters, digits, '.', '_', '-'")
    title: str = Field(min_length=1)
    statement: str = Field(min_length=1)
    kind: Kind
    function: FunctionSpec | None = None
    script: ScriptSpec | None = None
    tests: list[Test] = Field(min_length=1)
    compare: Compare = Field(default_factory=Compare)
    limits: Limits = Field(default_factory=Limits)
    difficulty: Literal["", "easy", "medium", "hard"] = ""
    source: str = ""
    tags: list[str] = Field(default_factory=list)

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    @model_validator(mode="after")
    def _consistent(self, info: ValidationInfo) -> "Problem":
        if info.context and info.context.get(_SKIP_CONSISTENCY):
            return self
        errs = consistency_errors(self)
        if errs:
            more = f" (and {len(errs) - 1} more)" if len(errs) > 1 else ""
            raise ValueError(errs[0] + more)
        return self

    @field_validator("id")
    @classmethod
    def _id_chars(cls, v: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", v):
            raise ValueError("must start with a letter or digit and hold only letters, digits, '.', '_' and '-'")
        return v

    @property
    def public_tests(self) -> list[Test]:
        return [t for t in self.tests if t.public]

    def to_json(self) -> str:
        return json.dumps(self.model_dump(mode="json", by_alias=True, exclude_none=True), indent=2, ensure_ascii=False) + "\n"


def consistency_errors(problem: Problem) -> list[str]:
    """Cross-field errors of a problem whose fields are each valid (every one, not just the first)."""
    errs: list[str] = []
    if problem.kind is Kind.function:
        if problem.function is None:
            errs.append('field "function" is missing: kind "function" needs {"name": ..., "starter_code": ...}')
        for i, t in enumerate(problem.tests):
            try:
                args = json.loads(t.input)
            except json.JSONDecodeError as e:
                errs.append(f'field "tests[{i}].input": must be a JSON array of arguments ({e.msg} at column {e.colno})')
            else:
                if not isinstance(args, list):
                    errs.append(
                        f'field "tests[{i}].input": must be a JSON array of arguments, got a JSON {_json_type(args)} '
                        f"(wrap a single argument in [...])"
                    )
            try:
                json.loads(t.output)
            except json.JSONDecodeError as e:
                errs.append(f'field "tests[{i}].output": must be a JSON value ({e.msg} at column {e.colno}); quote strings')
    elif problem.function is not None:
        errs.append('field "function": only allowed when kind is "function" (remove it or set kind to "function")')
    if problem.kind is Kind.script:
        errs.extend(_script_errors(problem))
    elif problem.script is not None:
        errs.append('field "script": only allowed when kind is "script" (remove it or set kind to "script")')
    return errs


def _script_errors(problem: Problem) -> list[str]:
    from sdpo_ttt.problem.asserts import assert_sites

    if problem.script is None:
        return ['field "script" is missing: kind "script" needs {"entry_point": ..., "test_code": ...}']
    errs = []
    for name in ("setup_code", "test_code"):
        try:
            compile(getattr(problem.script, name), name, "exec")
        except SyntaxError as e:
            errs.append(f'field "script.{name}": not valid Python (line {e.lineno}: {e.msg})')
    if errs:
        return errs
    sites = assert_sites(problem.script.test_code)
    if not sites:
        errs.append('field "script.test_code": holds no assert statement (each assert is one test)')
    elif len(sites) != len(problem.tests):
        errs.append(f'field "tests": kind "script" needs one test per assert of script.test_code '
                    f"({len(sites)}), got {len(problem.tests)}; `sdpo_ttt.problem.schema.script_tests` builds them")
    return errs


def script_tests(test_code: str, public_asserts: int | None = None) -> list[dict[str, Any]]:
    """The `tests` of a script problem: one per assert (input = its source), the first `public_asserts`
    public (all when None), the rest hidden."""
    from sdpo_ttt.problem.asserts import assert_sites

    return [{"input": s.source, "output": "", "public": public_asserts is None or s.index < public_asserts}
            for s in assert_sites(test_code)]


def _json_type(v: Any) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean", int: "number", float: "number", type(None): "null"}.get(
        type(v), type(v).__name__
    )


def _loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _describe(err: dict[str, Any]) -> list[str]:
    """One pydantic error as messages naming the field and what is expected."""
    loc = _loc(tuple(err.get("loc", ())))
    msg = str(err.get("msg", "invalid"))
    kind = err.get("type", "")
    if kind == "missing":
        return [f'field "{loc}" is missing']
    if kind == "extra_forbidden":
        return [f'field "{loc}" is not part of schema {SCHEMA_VERSION} (remove it or check its spelling)']
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    if not loc:  # a whole-object check: its message already names the fields
        return [msg]
    got = err.get("input")
    if isinstance(got, (str, int, float, bool)) or got is None:
        shown = json.dumps(got)
        msg += f", got {shown if len(shown) <= 60 else shown[:57] + '...'}"
    else:
        msg += f", got a JSON {_json_type(got)}"
    return [f'field "{loc}": {msg}']


COMMENT_PREFIX = "//"  # keys starting with it are comments (`problem init` writes them); they are dropped on reading


def strip_comments(data: Any) -> Any:
    """The data without comment keys ("// ..."), at any depth."""
    if isinstance(data, dict):
        return {k: strip_comments(v) for k, v in data.items() if not str(k).startswith(COMMENT_PREFIX)}
    if isinstance(data, list):
        return [strip_comments(v) for v in data]
    return data


# How to fix a field, for schema errors ("tests[3].input" matches "tests[].input"; the longest match wins).
FIELD_FIXES = {
    "schema": 'write "schema": 1',
    "id": 'a short name such as "my-problem" (letters, digits, ".", "_", "-")',
    "title": "a one-line title",
    "statement": "the problem statement the model sees (Markdown; include the input/output format and examples)",
    "kind": '"stdio" (reads stdin, prints stdout), "function" (defines a function called per test) or "script" (asserts)',
    "tests": 'a list of {"input": ..., "output": ..., "public": true}; `sdpo-ttt problem init DIR` writes an example',
    "tests[].input": "stdin text (stdio), a JSON array of the arguments as a string (function), or the assert (script)",
    "tests[].output": 'the expected stdout (stdio), or a JSON value as a string (function), e.g. "[1, 2]" or "\\"abc\\""',
    "tests[].public": "true: the model may see this test in feedback; false: hidden",
    "function": '{"name": "the_function", "starter_code": "def the_function(...):\n    ..."} (kind "function" only)',
    "function.name": "the name of the function the program must define",
    "script": '{"entry_point": ..., "test_code": "assert ...\nassert ..."} (kind "script" only)',
    "compare.mode": '"tokens" (default), "exact", "lines" or "json"',
    "limits.time_s": "seconds per test, more than 0 and at most 60",
    "limits.memory_mb": "MiB per test, 16 to 16384",
    "difficulty": '"", "easy", "medium" or "hard"',
}


def field_fix(loc: str) -> str | None:
    """The fix hint of a field path such as 'tests[3].input' (None when there is none)."""
    generic = re.sub(r"\[\d+\]", "[]", loc)
    keys = [k for k in FIELD_FIXES if generic == k or generic.startswith(k + ".")]
    return FIELD_FIXES[max(keys, key=len)] if keys else None


def problem_errors(data: Any) -> list[str]:
    """Every schema error of already-parsed JSON data, each naming its field and how to fix it (empty when valid).
    Comment keys ("// ...") are ignored."""
    data = strip_comments(data)
    if not isinstance(data, dict):
        return [f"expected a JSON object at the top level, got a JSON {_json_type(data)}"]
    try:
        Problem.model_validate(data)
        return []
    except ValidationError as e:
        errs = e.errors()
    if all(not err.get("loc") for err in errs):  # only the cross-field check failed: list all of its findings
        return consistency_errors(Problem.model_validate(data, context={_SKIP_CONSISTENCY: True}))
    return [_with_fix(m, err) for err in errs for m in _describe(err)]


def _with_fix(message: str, err: dict[str, Any]) -> str:
    fix = field_fix(_loc(tuple(err.get("loc", ()))))
    return f"{message} — fix: {fix}" if fix else message


def parse_problem(data: Any, source: str = "<problem>") -> Problem:
    """Validate already-parsed JSON data; raise ProblemFileError naming the source and the (first) field."""
    errs = problem_errors(data)
    if errs:
        more = f" (and {len(errs) - 1} more)" if len(errs) > 1 else ""
        raise ProblemFileError(
            f"{source}: {errs[0]}{more}",
            "fix that field; `sdpo-ttt problem validate FILE` lists every error",
        )
    return Problem.model_validate(strip_comments(data))


def shipped_problems_dir() -> Path:
    """Where the shipped problems are: $SDPO_TTT_PROBLEMS, else the problems/ folder of this installation."""
    import os

    env = os.environ.get("SDPO_TTT_PROBLEMS")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "problems"


def locate(path: Path) -> Path:
    """`path` itself when it exists; else the shipped problem it names, by name (`two-sum`) or by its path in the
    repository (`problems/two-sum/problem.json`, `problems/`), so that the README's examples work from any folder."""
    path = Path(path)
    if path.exists() or path.is_absolute():
        return path
    parts = path.parts
    if parts and parts[0] == "problems":  # the repository's layout
        shipped = shipped_problems_dir().joinpath(*parts[1:])
    elif len(parts) == 1:  # a shipped problem's name
        shipped = shipped_problems_dir() / path
        if not (shipped / "problem.json").is_file():
            return path
    else:
        return path
    return shipped if shipped.exists() else path


def resolve_problem_path(path: Path) -> Path:
    """Accept a problem.json file, a problem folder containing one, or a shipped problem by name (`two-sum`) or
    repository path (`problems/two-sum`) when no such file or folder exists here."""
    path = locate(Path(path))
    if path.is_dir():
        path = path / "problem.json"
    return path


def load_problem(path: str | Path) -> Problem:
    """Read and validate a problem file (or a folder holding problem.json)."""
    p = resolve_problem_path(Path(path))
    if not p.exists():
        raise ProblemFileError(f"{p}: no such problem file", "pass a path to problem.json or to a problem folder")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ProblemFileError(f"{p}: not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})", "fix the JSON syntax") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ProblemFileError(f"{p}: cannot read the file ({e})", "check the path and its permissions") from None
    return parse_problem(data, str(p))


def find_problem_files(paths: list[Path]) -> list[Path]:
    """Expand files and folders into a sorted list of problem.json files (folders searched recursively)."""
    out: list[Path] = []
    for path in paths:
        path = Path(path)
        path = locate(path)  # a shipped problem's name or repository path, from any folder
        if path.is_dir():
            if (path / "problem.json").exists():
                out.append(path / "problem.json")
            else:
                out.extend(sorted(path.rglob("problem.json")))
        else:
            out.append(path)
    return out
