"""A user's own problem in minutes (issue #15, item 5): `problem init`, validate messages that say the fix, and
shipped problems reachable by name from any folder."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from sdpo_ttt.errors import ProblemFileError, UserError
from sdpo_ttt.problem.schema import field_fix, load_problem, parse_problem, problem_errors, resolve_problem_path, strip_comments
from sdpo_ttt.problem.init import KINDS, init_problem, problem_id_for, template
from sdpo_ttt.sandbox.validate import validate_paths

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("kind", KINDS)
def test_init_writes_a_problem_that_validates(tmp_path: Path, kind: str) -> None:
    folder = tmp_path / f"My {kind} problem"
    files = init_problem(folder, kind)
    assert {f.relative_to(folder).as_posix() for f in files} == {"problem.json", "reference/ok.py", "wrong/wrong.py", "README.md"}
    raw = json.loads((folder / "problem.json").read_text())
    assert any(k.startswith("// ") for k in raw) and raw["kind"] == kind and raw["id"] == "My-" + kind + "-problem"
    problem = load_problem(folder)  # comments and all
    assert problem.kind.value == kind and problem.tests
    assert f"sdpo-ttt problem validate {folder}" in (folder / "README.md").read_text()
    report = validate_paths([folder], schema_only=True)
    assert report.exit_code == 0 and not report.problems[0].errors


@pytest.mark.sandbox
@pytest.mark.parametrize("kind", KINDS)
def test_init_reference_passes_and_wrong_fails(tmp_path: Path, kind: str) -> None:
    init_problem(tmp_path / "p", kind)
    report = validate_paths([tmp_path / "p"], sandbox="local", workers=1)
    checks = {c.role.value: c for c in report.problems[0].checks}
    assert report.exit_code == 0, [c.detail for c in report.problems[0].checks]
    assert checks["reference"].ok and checks["wrong"].ok


def test_init_refuses_an_existing_problem_and_leaves_nothing(tmp_path: Path) -> None:
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="not an empty folder"):
        init_problem(tmp_path / "taken", "stdio")
    with pytest.raises(UserError, match="unknown problem kind"):
        init_problem(tmp_path / "new", "graph")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]  # no temp folder left behind
    (tmp_path / "empty-ok").mkdir()
    init_problem(tmp_path / "empty-ok", "stdio")  # an empty folder is fine
    assert (tmp_path / "empty-ok" / "problem.json").is_file()


def test_cli_init(tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, "-m", "sdpo_ttt.cli", "problem", "init", str(tmp_path / "q"), "--kind", "function"],
                       capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "wrote" in r.stdout and f"sdpo-ttt problem validate {tmp_path / 'q'}" in r.stdout
    assert json.loads((tmp_path / "q" / "problem.json").read_text())["kind"] == "function"


def test_comments_are_ignored_everywhere() -> None:
    doc = template("stdio", "x")
    doc["tests"][0]["// why"] = "a comment inside a test"
    assert problem_errors(doc) == []
    assert "// why" not in parse_problem(doc).to_json() and "// kind" not in parse_problem(doc).to_json()
    assert strip_comments({"// a": 1, "b": [{"// c": 2, "d": 3}]}) == {"b": [{"d": 3}]}
    assert problem_id_for(Path("/x/Hard one!")) == "Hard-one"


def test_validate_messages_name_the_field_and_the_fix() -> None:
    doc = template("function", "x")
    doc["tests"][1]["output"] = 5  # not a string
    del doc["statement"]
    doc["kind"] = "functions"
    errs = problem_errors(doc)
    assert any(e.startswith('field "statement" is missing — fix: the problem statement') for e in errs)
    assert any(e.startswith('field "tests[1].output"') and "fix: the expected stdout" in e for e in errs)
    assert any(e.startswith('field "kind"') and 'fix: "stdio"' in e for e in errs)
    assert field_fix("tests[12].input").startswith("stdin text") and field_fix("nonsense") is None
    with pytest.raises(ProblemFileError, match='field "statement" is missing'):
        parse_problem(doc, "p.json")


def test_reference_failure_says_which_test_and_how_to_fix() -> None:
    from sdpo_ttt.sandbox.validate import Role, judge_check
    from sdpo_ttt.sandbox.verdict import Outcome, TestResult, Verdict

    tests = [TestResult(index=0, outcome=Outcome.passed), TestResult(index=1, outcome=Outcome.wrong_answer, detail="expected 6, got 5")]
    check = judge_check(Role.reference, Path("ok.py"), Verdict(passed=False, score=0.5, outcome=Outcome.wrong_answer, tests=tests))
    assert check.detail.startswith("test 1: wrong_answer: expected 6, got 5")
    assert "fix: either the reference or tests[1].output is wrong" in check.detail


def test_shipped_problems_by_name_from_any_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert resolve_problem_path(Path("two-sum")) == REPO / "problems" / "two-sum" / "problem.json"
    assert load_problem("two-sum").id == "two-sum"
    from sdpo_ttt.problem.schema import find_problem_files

    assert find_problem_files([Path("two-sum"), Path("fizzbuzz")]) == [REPO / "problems" / n / "problem.json" for n in ("two-sum", "fizzbuzz")]
    # the README's repository paths work from here too
    assert load_problem("problems/count-inversions/problem.json").id == "count-inversions"
    assert load_problem(Path("problems") / "fizzbuzz").id == "fizzbuzz"
    assert len(validate_paths([Path("problems")], schema_only=True).problems) == len(list((REPO / "problems").rglob("problem.json")))
    (tmp_path / "two-sum").mkdir()  # a folder of that name here wins over the shipped one
    assert resolve_problem_path(Path("two-sum")) == Path("two-sum") / "problem.json"
    with pytest.raises(ProblemFileError, match="no such problem file"):
        load_problem("no-such-problem")
    monkeypatch.setenv("SDPO_TTT_PROBLEMS", str(tmp_path / "mine"))
    init_problem(tmp_path / "mine" / "custom", "stdio")
    monkeypatch.chdir(tmp_path / "mine" / "custom" / "reference")
    assert load_problem("custom").id == "custom"


def test_init_from_a_text_file(tmp_path: Path) -> None:
    text = tmp_path / "problem.md"
    text.write_text("# Longest run\n\nRead a string and print the length of its longest run of equal characters.\n")
    init_problem(tmp_path / "run-length", "stdio", statement=text)
    p = load_problem(tmp_path / "run-length")
    assert p.title == "Longest run" and p.statement.startswith("# Longest run\n\nRead a string")
    raw = json.loads((tmp_path / "run-length" / "problem.json").read_text())
    assert "replace them with this problem's" in raw["// tests"]
    (tmp_path / "empty.md").write_text("\n")
    with pytest.raises(UserError, match="statement file is empty"):
        init_problem(tmp_path / "x", "stdio", statement=tmp_path / "empty.md")
    with pytest.raises(UserError, match="cannot read the statement file"):
        init_problem(tmp_path / "y", "stdio", statement=tmp_path / "missing.md")
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()
