"""The problem file (problems/<id>/problem.json, schema 1): a typed model and a loader with clear errors."""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from sdpo_ttt.errors import ProblemFileError

SCHEMA_VERSION = 1


class Kind(str, Enum):
    stdio = "stdio"  # program reads stdin, writes stdout
    function = "function"  # program defines a function (or class Solution method) called per test


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


class Test(_Strict):
    __test__ = False  # not a pytest class

    input: str = Field(description="stdin text (stdio) or a JSON array of positional arguments (function)")
    output: str = Field(description="expected stdout (stdio) or a JSON value (function)")
    public: bool = Field(True, description="public tests may be shown to the model in feedback")


class Compare(_Strict):
    mode: CompareMode = CompareMode.tokens
    float_tol: float = Field(1e-6, ge=0.0)


class Limits(_Strict):
    time_s: float = Field(2.0, gt=0, le=60)
    memory_mb: int = Field(256, ge=16, le=16384)


class Problem(_Strict):
    schema_: Literal[1] = Field(1, alias="schema")
    id: str = Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    title: str = Field(min_length=1)
    statement: str = Field(min_length=1)
    kind: Kind
    function: FunctionSpec | None = None
    tests: list[Test] = Field(min_length=1)
    compare: Compare = Field(default_factory=Compare)
    limits: Limits = Field(default_factory=Limits)
    difficulty: str = ""
    source: str = ""
    tags: list[str] = Field(default_factory=list)

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    @model_validator(mode="after")
    def _consistent(self) -> "Problem":
        if self.kind is Kind.function:
            if self.function is None:
                raise ValueError('kind "function" needs a "function" object with at least a "name"')
            for i, t in enumerate(self.tests):
                try:
                    args = json.loads(t.input)
                except json.JSONDecodeError as e:
                    raise ValueError(f"tests[{i}].input must be a JSON array of arguments: {e}") from None
                if not isinstance(args, list):
                    raise ValueError(f"tests[{i}].input must be a JSON array of arguments, got {type(args).__name__}")
                try:
                    json.loads(t.output)
                except json.JSONDecodeError as e:
                    raise ValueError(f"tests[{i}].output must be a JSON value: {e}") from None
        elif self.function is not None:
            raise ValueError('"function" is only allowed when kind is "function"')
        return self

    @property
    def public_tests(self) -> list[Test]:
        return [t for t in self.tests if t.public]

    def to_json(self) -> str:
        return json.dumps(self.model_dump(mode="json", by_alias=True, exclude_none=True), indent=2, ensure_ascii=False) + "\n"


def _describe(err: dict[str, Any]) -> str:
    loc = ".".join(str(p) for p in err.get("loc", ())) or "(top level)"
    msg = err.get("msg", "invalid")
    if err.get("type") == "missing":
        return f'field "{loc}" is missing'
    if err.get("type") == "extra_forbidden":
        return f'field "{loc}" is not part of schema {SCHEMA_VERSION} (remove it or check its spelling)'
    return f'field "{loc}": {msg}'


def parse_problem(data: Any, source: str = "<problem>") -> Problem:
    """Validate already-parsed JSON data; raise ProblemFileError naming the source and field."""
    if not isinstance(data, dict):
        raise ProblemFileError(f"{source}: expected a JSON object at the top level", "see problems/*/problem.json for examples")
    try:
        return Problem.model_validate(data)
    except ValidationError as e:
        errs = e.errors()
        first = _describe(errs[0])
        more = f" (and {len(errs) - 1} more)" if len(errs) > 1 else ""
        raise ProblemFileError(
            f"{source}: {first}{more}",
            "fix that field; `sdpo-ttt problem validate FILE` lists every error",
        ) from None


def problem_errors(data: Any) -> list[str]:
    """All schema errors of already-parsed data (empty when valid)."""
    if not isinstance(data, dict):
        return ["expected a JSON object at the top level"]
    try:
        Problem.model_validate(data)
        return []
    except ValidationError as e:
        return [_describe(x) for x in e.errors()]


def resolve_problem_path(path: Path) -> Path:
    """Accept either a problem.json file or a problem folder containing one."""
    path = Path(path)
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
        if path.is_dir():
            if (path / "problem.json").exists():
                out.append(path / "problem.json")
            else:
                out.extend(sorted(path.rglob("problem.json")))
        else:
            out.append(path)
    return out
