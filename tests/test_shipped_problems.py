"""Every shipped problem is valid, well-formed for the loop, and its reference solutions pass while its
wrong ones fail, judged in the real sandbox (Docker; a quick local-sandbox variant runs everywhere)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from sdpo_ttt.problem.schema import Kind, find_problem_files, load_problem
from sdpo_ttt.sandbox.validate import Role, solution_files, validate_paths

PROBLEMS = Path(__file__).resolve().parent.parent / "problems"
FILES = find_problem_files([PROBLEMS])
# A quick, representative subset for the local sandbox: stdio + function, Solution class, a TLE wrong answer.
LOCAL_SUBSET = ["sum-two-ints", "count-vowels", "two-sum", "calculator"]


def test_the_shipped_set_is_graded_and_mixed() -> None:
    problems = [load_problem(f) for f in FILES]
    assert len(problems) >= 12
    kinds = Counter(p.kind for p in problems)
    assert kinds[Kind.function] >= 3 and kinds[Kind.stdio] >= 3
    levels = Counter(p.difficulty for p in problems)
    assert levels["easy"] >= 3 and levels["medium"] >= 3 and levels["hard"] >= 3
    assert len({p.id for p in problems}) == len(problems)
    assert any(p.compare.mode.value == "lines" for p in problems)


@pytest.mark.parametrize("path", FILES, ids=lambda f: f.parent.name)
def test_problem_is_well_formed(path: Path) -> None:
    p = load_problem(path)
    assert p.id == path.parent.name
    assert 6 <= len(p.tests) <= 15
    assert 1 <= len(p.public_tests) <= 3
    assert p.source and p.tags and p.difficulty in ("easy", "medium", "hard")
    if p.kind is Kind.function:
        assert p.function is not None and p.function.starter_code.strip()
        assert p.function.name in p.statement
    else:  # public stdio tests are the statement's examples
        for t in p.public_tests:
            assert t.input in p.statement and t.output in p.statement
    roles = Counter(role for role, _ in solution_files(path))
    assert roles[Role.reference] >= 1 and roles[Role.wrong] >= 1


def _assert_all_good(report) -> None:  # type: ignore[no-untyped-def]
    problems_bad = [
        f"{r.path}: {r.errors or [f'{c.role.value} {c.path.name}: {c.detail}' for c in r.checks if not c.ok]}"
        for r in report.problems if r.status.value != "ok"
    ]
    assert not problems_bad, "\n".join(problems_bad)
    assert report.exit_code == 0


def _docker_reason() -> str | None:
    try:
        from sdpo_ttt.sandbox.docker_container import docker_status
    except ImportError as e:  # the docker SDK is missing
        return f"docker backend unavailable: {e}"
    return docker_status()


@pytest.mark.docker
def test_references_pass_and_wrongs_fail_in_docker() -> None:
    reason = _docker_reason()
    if reason:
        pytest.skip(f"no Docker sandbox: {reason}")
    report = validate_paths([PROBLEMS], sandbox="docker", workers=2)
    assert report.sandbox == "docker"
    assert len(report.problems) == len(FILES)
    _assert_all_good(report)


@pytest.mark.sandbox
def test_references_pass_and_wrongs_fail_in_the_local_sandbox() -> None:
    report = validate_paths([PROBLEMS / name for name in LOCAL_SUBSET], sandbox="local", workers=2)
    assert report.sandbox == "local"
    _assert_all_good(report)
    assert all(r.checks for r in report.problems)
