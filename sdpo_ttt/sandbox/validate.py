"""`sdpo-ttt problem validate`: check problem files against the schema, then judge their reference and wrong
solutions in the sandbox.

    report = validate_paths([Path("problems")], sandbox="auto")
    report.exit_code   # 0 all good, 1 a reference/wrong check failed, 2 a file is invalid or unreadable

A problem folder may hold `reference/*.py` (each must pass every test) and `wrong/*.py` (each must fail at
least one test, for a reason that is the attempt's fault: a verifier error does not count). One problem's
failure never stops the others. The CLI renders the typed report; nothing here prints.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, Callable

from sdpo_ttt.problem.schema import Problem, locate, problem_errors, resolve_problem_path, strip_comments
from sdpo_ttt.sandbox.verdict import Outcome, Verdict


class Role(str, Enum):
    reference = "reference"  # must pass every test
    wrong = "wrong"  # must fail at least one test


class Status(str, Enum):
    ok = "ok"
    failed = "failed"  # a reference or wrong check did not hold (exit 1)
    invalid = "invalid"  # unreadable file or schema errors (exit 2)


@dataclass
class SolutionCheck:
    """One reference or wrong solution judged against its problem."""

    path: Path
    role: Role
    ok: bool
    detail: str  # one line: why it is (not) ok
    verdict: Verdict | None = None  # None when the file could not be read or judged
    slowest_s: float = 0.0  # the slowest test's time, to compare with the time limit

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "role": self.role.value,
            "ok": self.ok,
            "detail": self.detail,
            "outcome": self.verdict.outcome.value if self.verdict else None,
            "score": self.verdict.score if self.verdict else None,
            "slowest_s": round(self.slowest_s, 3),
        }


@dataclass
class ProblemReport:
    """Everything validate found out about one problem file."""

    path: Path
    problem: Problem | None = None
    errors: list[str] = field(default_factory=list)  # schema / read errors, each naming its field
    checks: list[SolutionCheck] = field(default_factory=list)

    @property
    def status(self) -> Status:
        if self.errors or self.problem is None:
            return Status.invalid
        return Status.ok if all(c.ok for c in self.checks) else Status.failed

    def to_dict(self) -> dict[str, Any]:
        p = self.problem
        return {
            "path": str(self.path),
            "id": p.id if p else None,
            "status": self.status.value,
            "kind": p.kind.value if p else None,
            "difficulty": p.difficulty if p else None,
            "tests": len(p.tests) if p else None,
            "public_tests": len(p.public_tests) if p else None,
            "errors": list(self.errors),
            "checks": [c.to_dict() for c in self.checks],
        }


@dataclass
class ValidationReport:
    problems: list[ProblemReport]
    sandbox: str | None = None  # backend name used for the checks; None with schema_only

    @property
    def exit_code(self) -> int:
        statuses = {r.status for r in self.problems}
        if Status.invalid in statuses:
            return 2
        return 1 if Status.failed in statuses else 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.exit_code == 0,
            "exit_code": self.exit_code,
            "sandbox": self.sandbox,
            "problems": [r.to_dict() for r in self.problems],
        }


def discover(paths: list[Path]) -> list[ProblemReport]:
    """Expand files and folders (recursively) into one report per problem file; a path that names no
    problem file becomes an invalid report saying so."""
    out: list[ProblemReport] = []
    seen: set[Path] = set()
    for path in (locate(Path(p)) for p in paths):
        if path.is_dir():
            direct = path / "problem.json"
            found = [direct] if direct.is_file() else sorted(path.rglob("problem.json"))
            if not found:
                out.append(ProblemReport(path, errors=[f"no problem.json in {path} or below it"]))
        elif path.exists():
            found = [path]
        else:
            out.append(ProblemReport(path, errors=["no such file or folder"]))
            continue
        for f in found:
            if f.resolve() not in seen:
                seen.add(f.resolve())
                out.append(ProblemReport(f))
    return out


def check_schema(report: ProblemReport) -> None:
    """Read the file and fill report.problem or report.errors (every schema error, not just the first)."""
    p = resolve_problem_path(report.path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        report.errors.append(f"not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})")
        return
    except (OSError, UnicodeDecodeError) as e:
        report.errors.append(f"cannot read the file ({e})")
        return
    errs = problem_errors(data)
    if errs:
        report.errors.extend(errs)
    else:
        report.problem = Problem.model_validate(strip_comments(data))


def solution_files(problem_file: Path) -> list[tuple[Role, Path]]:
    """reference/*.py and wrong/*.py beside a problem file, sorted."""
    folder = resolve_problem_path(problem_file).parent
    return [(role, f) for role in Role for f in sorted((folder / role.value).glob("*.py")) if f.is_file()]


def judge_check(role: Role, path: Path, verdict: Verdict) -> SolutionCheck:
    """Turn one verdict into a reference/wrong check with a one-line reason."""
    slowest = max((t.time_s for t in verdict.tests), default=0.0)
    n = len(verdict.tests)
    failing = [t for t in verdict.tests if t.outcome is not Outcome.passed]
    if verdict.outcome is Outcome.sandbox_error or any(t.outcome is Outcome.sandbox_error for t in failing):
        return SolutionCheck(path, role, False, "the verifier failed (sandbox_error), not the solution; see `sdpo-ttt sandbox check`", verdict, slowest)
    if role is Role.reference:
        if verdict.passed:
            return SolutionCheck(path, role, True, f"passes all {n} tests", verdict, slowest)
        if not failing:  # compile error: no per-test results
            first = (verdict.compile_error.strip().splitlines() or [verdict.outcome.value])[-1]
            return SolutionCheck(path, role, False, f"{verdict.outcome.value}: {first[:160]}", verdict, slowest)
        t = failing[0]
        why = t.detail or (t.stderr_tail.strip().splitlines() or [""])[-1]
        more = f" (and {len(failing) - 1} more failing)" if len(failing) > 1 else ""
        fix = {
            Outcome.wrong_answer: f"either the reference or tests[{t.index}].output is wrong: check that test against the statement",
            Outcome.time_limit: f"the reference is too slow for tests[{t.index}]: speed it up or raise limits.time_s",
            Outcome.memory_limit: f"the reference needs more memory on tests[{t.index}]: raise limits.memory_mb",
        }.get(t.outcome, f"run reference/{path.name} on tests[{t.index}].input and fix what fails")
        return SolutionCheck(
            path, role, False, f"test {t.index}: {t.outcome.value}{': ' + why[:160] if why else ''}{more} — fix: {fix}", verdict, slowest
        )
    if verdict.passed:
        return SolutionCheck(path, role, False, f"passes all {n} tests: add a test it fails, or move it to reference/", verdict, slowest)
    kinds = ", ".join(f"{k} x{v}" for k, v in sorted(verdict.counts().items()) if k != Outcome.passed.value)
    what = f"fails {len(failing)}/{n} tests ({kinds})" if failing else f"fails: {verdict.outcome.value}"
    return SolutionCheck(path, role, True, what, verdict, slowest)


def validate_paths(
    paths: list[Path],
    *,
    sandbox: str = "auto",
    schema_only: bool = False,
    workers: int = 2,
    on_progress: Callable[[ProblemReport], None] | None = None,
    announce: Callable[[str], None] | None = None,
) -> ValidationReport:
    """Validate every problem file under `paths`; judge reference/wrong solutions unless schema_only.

    Raises SandboxUnavailable (a UserError) only when the requested sandbox cannot be opened at all."""
    reports = discover(paths)
    for r in reports:
        if not r.errors:
            check_schema(r)
    todo = [r for r in reports if r.problem is not None and solution_files(r.path)]
    if schema_only or not todo:
        for r in reports:
            if on_progress:
                on_progress(r)
        return ValidationReport(reports, None)

    from sdpo_ttt.sandbox import open_sandbox  # heavy (docker SDK): only when needed

    with open_sandbox(sandbox, workers=workers, announce=announce) as sb:
        for r in reports:
            if r.problem is not None:
                r.checks = _check_solutions(sb, r.problem, solution_files(r.path))
            if on_progress:
                on_progress(r)
        return ValidationReport(reports, getattr(sb, "name", sandbox))


def _check_solutions(sb: Any, problem: Problem, files: list[tuple[Role, Path]]) -> list[SolutionCheck]:
    checks: list[SolutionCheck | None] = []
    codes: list[str] = []
    slots: list[int] = []
    for role, f in files:
        try:
            codes.append(f.read_text(encoding="utf-8"))
            slots.append(len(checks))
            checks.append(None)
        except (OSError, UnicodeDecodeError) as e:
            checks.append(SolutionCheck(f, role, False, f"cannot read the file ({e})"))
    if codes:
        try:
            verdicts = sb.judge_many(problem, codes)
        except Exception as e:  # the verifier broke: report it on every solution, go on with the next problem
            verdicts = None
            err = f"the sandbox raised {type(e).__name__}: {e}"
        for k, slot in enumerate(slots):
            role, f = files[slot]
            checks[slot] = judge_check(role, f, verdicts[k]) if verdicts else SolutionCheck(f, role, False, err)
    return [c for c in checks if c is not None]
