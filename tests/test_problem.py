"""Problem files: loading errors name the file and the field; `problem validate` lists every error and
judges reference/wrong solutions; exit codes 0 / 1 / 2."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from sdpo_ttt.cli import app
from sdpo_ttt.errors import ProblemFileError
from sdpo_ttt.problem.schema import Kind, load_problem, parse_problem, problem_errors
from sdpo_ttt.sandbox.validate import Role, Status, judge_check, validate_paths
from sdpo_ttt.sandbox.verdict import Outcome, TestResult, Verdict

runner = CliRunner()


def stdio_doc(**over: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "schema": 1, "id": "add", "title": "Add", "statement": "Print a+b.", "kind": "stdio",
        "tests": [{"input": "1 2\n", "output": "3\n", "public": True}, {"input": "5 7\n", "output": "12\n", "public": False}],
        "limits": {"time_s": 1, "memory_mb": 128},
    }
    doc.update(over)
    return doc


def func_doc(**over: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "schema": 1, "id": "addf", "title": "Add", "statement": "Return a+b.", "kind": "function",
        "function": {"name": "add", "starter_code": "def add(a, b): ..."},
        "tests": [{"input": "[1, 2]", "output": "3"}, {"input": "[5, 7]", "output": "12", "public": False}],
        "compare": {"mode": "json"}, "limits": {"time_s": 1, "memory_mb": 128},
    }
    doc.update(over)
    return doc


def write(folder: Path, doc: Any, *, raw: str | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "problem.json"
    path.write_text(raw if raw is not None else json.dumps(doc), encoding="utf-8")
    return path


def load_error(tmp_path: Path, doc: Any = None, raw: str | None = None) -> str:
    path = write(tmp_path / "p", doc, raw=raw)
    with pytest.raises(ProblemFileError, match=re.escape(str(path))) as e:
        load_problem(path)
    msg = e.value.message
    assert str(path) in msg and "Traceback" not in msg
    return msg


# ---------------------------------------------------------------- loading


def test_valid_files_load_from_file_or_folder(tmp_path: Path) -> None:
    write(tmp_path / "s", stdio_doc())
    write(tmp_path / "f", func_doc())
    assert load_problem(tmp_path / "s").kind is Kind.stdio
    p = load_problem(tmp_path / "f" / "problem.json")
    assert p.function is not None and p.function.name == "add" and len(p.public_tests) == 1


def test_missing_field_is_named(tmp_path: Path) -> None:
    doc = stdio_doc()
    del doc["statement"]
    assert 'field "statement" is missing' in load_error(tmp_path, doc)


def test_wrong_type_is_named_with_what_was_given(tmp_path: Path) -> None:
    msg = load_error(tmp_path, stdio_doc(limits={"time_s": "fast"}))
    assert 'field "limits.time_s"' in msg and '"fast"' in msg


def test_extra_field_is_named(tmp_path: Path) -> None:
    msg = load_error(tmp_path, stdio_doc(timelimit=3))
    assert 'field "timelimit" is not part of schema 1' in msg


def test_bad_json_names_line_and_column(tmp_path: Path) -> None:
    msg = load_error(tmp_path, raw='{"schema": 1,\n "id": }')
    assert "not valid JSON" in msg and "line 2" in msg


def test_top_level_must_be_an_object(tmp_path: Path) -> None:
    assert "JSON object" in load_error(tmp_path, [1, 2])


def test_function_kind_needs_function(tmp_path: Path) -> None:
    doc = func_doc()
    del doc["function"]
    assert 'field "function" is missing' in load_error(tmp_path, doc)


def test_function_input_must_be_json_array(tmp_path: Path) -> None:
    doc = func_doc(tests=[{"input": "5", "output": "5"}])
    msg = load_error(tmp_path, doc)
    assert 'field "tests[0].input"' in msg and "JSON array" in msg


def test_function_output_must_be_json(tmp_path: Path) -> None:
    msg = load_error(tmp_path, func_doc(tests=[{"input": "[1]", "output": "hello"}]))
    assert 'field "tests[0].output"' in msg


def test_function_object_only_with_function_kind(tmp_path: Path) -> None:
    msg = load_error(tmp_path, stdio_doc(function={"name": "f"}))
    assert 'field "function"' in msg and "only allowed" in msg


def test_missing_file_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ProblemFileError, match="no such problem file"):
        load_problem(tmp_path / "nope")


def test_problem_errors_lists_every_error() -> None:
    doc = stdio_doc(id="bad id", kind="bogus", difficulty="insane", extra=1)
    del doc["title"]
    errs = problem_errors(doc)
    fields = ['"id"', '"kind"', '"difficulty"', '"extra"', '"title"']
    assert len(errs) == len(fields)
    for f in fields:
        assert any(f in e for e in errs), (f, errs)


def test_problem_errors_lists_every_bad_function_test() -> None:
    doc = func_doc(tests=[{"input": "1", "output": "1"}, {"input": "[1", "output": "1"}, {"input": "[]", "output": "x"}])
    errs = problem_errors(doc)
    assert [e.split(":")[0] for e in errs] == ['field "tests[0].input"', 'field "tests[1].input"', 'field "tests[2].output"']


def test_parse_problem_says_how_many_more() -> None:
    with pytest.raises(ProblemFileError, match=r"and 2 more"):
        parse_problem(stdio_doc(kind="x", tests=[], limits={"time_s": 0}), "mem.json")


def test_round_trip_to_json() -> None:
    p = parse_problem(func_doc())
    assert parse_problem(json.loads(p.to_json())) == p


# ---------------------------------------------------------------- judge_check (no sandbox)


def _verdict(outcomes: list[Outcome]) -> Verdict:
    tests = [TestResult(index=i, outcome=o) for i, o in enumerate(outcomes)]
    passed = all(o is Outcome.passed for o in outcomes)
    first = next((o for o in outcomes if o is not Outcome.passed), Outcome.passed)
    return Verdict(passed=passed, score=sum(o is Outcome.passed for o in outcomes) / len(outcomes), outcome=first, tests=tests)


def test_judge_check_rules() -> None:
    ok, wa, tle, se = Outcome.passed, Outcome.wrong_answer, Outcome.time_limit, Outcome.sandbox_error
    assert judge_check(Role.reference, Path("r.py"), _verdict([ok, ok])).ok
    bad_ref = judge_check(Role.reference, Path("r.py"), _verdict([ok, tle]))
    assert not bad_ref.ok and "test 1: time_limit" in bad_ref.detail
    assert judge_check(Role.wrong, Path("w.py"), _verdict([ok, wa])).ok
    passing_wrong = judge_check(Role.wrong, Path("w.py"), _verdict([ok, ok]))
    assert not passing_wrong.ok and "passes all" in passing_wrong.detail
    # a verifier failure is never evidence that a wrong solution is wrong
    assert not judge_check(Role.wrong, Path("w.py"), _verdict([ok, se])).ok


# ---------------------------------------------------------------- validate (CLI and library)


def test_validate_schema_only_ok(tmp_path: Path) -> None:
    write(tmp_path / "a", stdio_doc())
    write(tmp_path / "b", func_doc())
    res = runner.invoke(app, ["problem", "validate", str(tmp_path), "--schema-only"])
    assert res.exit_code == 0, res.output
    assert "2/2 problems ok" in res.output


def test_validate_lists_every_error_and_goes_on(tmp_path: Path) -> None:
    write(tmp_path / "good", stdio_doc())
    doc = func_doc(tests=[{"input": "1", "output": "1"}], compare={"mode": "fuzzy"})
    del doc["function"]
    write(tmp_path / "bad", doc)
    write(tmp_path / "broken", None, raw="{nope")
    res = runner.invoke(app, ["problem", "validate", str(tmp_path), str(tmp_path / "missing"), "--schema-only", "--json"])
    assert res.exit_code == 2, res.output
    out = json.loads(res.output)
    by_path = {Path(p["path"]).parent.name if p["path"].endswith(".json") else Path(p["path"]).name: p for p in out["problems"]}
    assert by_path["good"]["status"] == "ok"
    assert by_path["bad"]["status"] == "invalid"
    bad_errors = " ".join(by_path["bad"]["errors"])
    assert '"compare.mode"' in bad_errors  # field errors come first; the cross-field check runs once they are fixed
    assert by_path["broken"]["errors"][0].startswith("not valid JSON")
    assert by_path["missing"]["errors"] == ["no such file or folder"]


def test_validate_table_names_file_and_field(tmp_path: Path) -> None:
    doc = stdio_doc()
    del doc["tests"]
    path = write(tmp_path / "x", doc)
    res = runner.invoke(app, ["problem", "validate", str(path), "--schema-only"])
    assert res.exit_code == 2
    assert "problem.json" in res.output and 'field "tests" is missing' in res.output


def test_empty_folder_is_an_error(tmp_path: Path) -> None:
    report = validate_paths([tmp_path], schema_only=True)
    assert report.exit_code == 2 and "no problem.json" in report.problems[0].errors[0]


def _solutions(folder: Path, files: dict[str, str]) -> None:
    for rel, code in files.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_text(code)


@pytest.mark.sandbox
def test_validate_runs_reference_and_wrong_in_the_local_sandbox(tmp_path: Path) -> None:
    good, bad = tmp_path / "good", tmp_path / "bad"
    write(good, stdio_doc())
    _solutions(good, {"reference/ok.py": "a, b = map(int, input().split())\nprint(a + b)\n",
                      "wrong/minus.py": "a, b = map(int, input().split())\nprint(a - b)\n"})
    write(bad, func_doc())
    _solutions(bad, {"reference/broken.py": "def add(a, b):\n    return a * b\n",
                     "wrong/actually_right.py": "def add(a, b):\n    return a + b\n"})
    report = validate_paths([tmp_path], sandbox="local", workers=2)
    assert report.exit_code == 1 and report.sandbox == "local"
    status = {r.problem.id: r for r in report.problems if r.problem}
    assert status["add"].status is Status.ok
    assert [c.ok for c in status["add"].checks] == [True, True]
    assert status["addf"].status is Status.failed
    ref, wrong = status["addf"].checks
    assert ref.role is Role.reference and not ref.ok and "wrong_answer" in ref.detail
    assert wrong.role is Role.wrong and not wrong.ok and "passes all" in wrong.detail

    res = runner.invoke(app, ["problem", "validate", str(good), "--sandbox", "local"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["problem", "validate", str(bad), "--sandbox", "local"])
    assert res.exit_code == 1 and "actually_right.py" in res.output
