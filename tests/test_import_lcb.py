"""`problem import-lcb`: LiveCodeBench records we write ourselves (both private-test encodings, stdin and
functional) become valid problem folders; bad records are skipped by line; writes are atomic."""

from __future__ import annotations

import base64
import json
import pickle
import zlib
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from sdpo_ttt.cli import app
from sdpo_ttt.errors import UserError
from sdpo_ttt.problem.importers.lcb import convert_record, import_lcb
from sdpo_ttt.problem.schema import Kind, load_problem

runner = CliRunner()


def pickled(tests: list[dict[str, str]], protocol: int = 4) -> str:
    """LiveCodeBench's compressed encoding: base64(zlib(pickle(json string)))."""
    return base64.b64encode(zlib.compress(pickle.dumps(json.dumps(tests), protocol=protocol))).decode()


def stdin_record(**over: Any) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "question_title": "Sum Up", "question_content": "Read A and B. Print A+B.\n", "platform": "atcoder",
        "question_id": "abc999_a", "contest_id": "abc999", "contest_date": "2024-01-06T00:00:00",
        "starter_code": "", "difficulty": "easy",
        "public_test_cases": json.dumps([{"input": "1 2\n", "output": "3\n", "testtype": "stdin"}]),
        "private_test_cases": pickled([{"input": "10 20\n", "output": "30\n", "testtype": "stdin"},
                                       {"input": "-1 1\n", "output": "0\n", "testtype": "stdin"}]),
        "metadata": "{}",
    }
    rec.update(over)
    return rec


def functional_record(**over: Any) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "question_title": "Max Window Sum", "question_content": "Return the largest sum of k consecutive numbers.",
        "platform": "leetcode", "question_id": "9001", "contest_id": "weekly-contest-999",
        "contest_date": "2024-02-04T00:00:00",
        "starter_code": "class Solution:\n    def maxWindow(self, nums: List[int], k: int) -> int:\n        ",
        "difficulty": "medium",
        "public_test_cases": json.dumps([{"input": "[1,5,2,7]\n2", "output": "9", "testtype": "functional"}]),
        "private_test_cases": json.dumps([{"input": "[4]\n1", "output": "4", "testtype": "functional"},
                                          {"input": "[-3, -1, -2]\n2", "output": "-3", "testtype": "functional"}]),
        "metadata": json.dumps({"func_name": "maxWindow"}),
    }
    rec.update(over)
    return rec


def write_jsonl(path: Path, lines: list[Any]) -> Path:
    path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines), encoding="utf-8")
    return path


def test_round_trip_both_encodings_and_kinds(tmp_path: Path) -> None:
    src = write_jsonl(tmp_path / "lcb.jsonl", [stdin_record(), functional_record()])
    result = import_lcb(src, tmp_path / "out")
    assert result.exit_code == 0 and not result.skipped
    assert [i.problem_id for i in result.imported] == ["abc999_a-sum-up", "9001-max-window-sum"]

    s = load_problem(tmp_path / "out" / "abc999_a-sum-up")
    assert s.kind is Kind.stdio and s.difficulty == "easy"
    assert [(t.input, t.output, t.public) for t in s.tests] == [
        ("1 2\n", "3\n", True), ("10 20\n", "30\n", False), ("-1 1\n", "0\n", False)]
    assert "atcoder" in s.source and "abc999" in s.source and "livecodebench" in s.tags

    f = load_problem(tmp_path / "out" / "9001-max-window-sum")
    assert f.kind is Kind.function and f.function is not None
    assert f.function.name == "maxWindow" and "class Solution" in f.function.starter_code
    assert [json.loads(t.input) for t in f.tests] == [[[1, 5, 2, 7], 2], [[4], 1], [[-3, -1, -2], 2]]
    assert [json.loads(t.output) for t in f.tests] == [9, 4, -3]
    assert [t.public for t in f.tests] == [True, False, False]
    assert f.compare.mode.value == "json"


def test_functional_json_private_tests_and_pickled_bytes_protocol_2() -> None:
    rec = functional_record(private_test_cases=pickled(
        [{"input": '"a b"\n[[1, 2], [3]]', "output": '["x", 1.5]', "testtype": "functional"}], protocol=2))
    doc = convert_record(rec)
    assert json.loads(doc["tests"][1]["input"]) == ["a b", [[1, 2], [3]]]
    assert json.loads(doc["tests"][1]["output"]) == ["x", 1.5]


@pytest.mark.sandbox
def test_imported_problems_are_judged_by_the_sandbox(tmp_path: Path) -> None:
    import_lcb(write_jsonl(tmp_path / "lcb.jsonl", [stdin_record(), functional_record()]), tmp_path / "out")
    from sdpo_ttt.sandbox import open_sandbox

    stdio = load_problem(tmp_path / "out" / "abc999_a-sum-up")
    func = load_problem(tmp_path / "out" / "9001-max-window-sum")
    solution = ("class Solution:\n    def maxWindow(self, nums: List[int], k: int) -> int:\n"
                "        return max(sum(nums[i:i + k]) for i in range(len(nums) - k + 1))\n")
    with open_sandbox("local", workers=2) as sb:
        assert sb.judge(stdio, "a, b = map(int, input().split())\nprint(a + b)\n").passed
        assert sb.judge(func, solution).passed


def test_bad_records_are_skipped_with_line_and_reason(tmp_path: Path) -> None:
    no_func = functional_record(question_id="9002", metadata="{}")
    mixed = stdin_record(question_id="abc999_b", public_test_cases=json.dumps(
        [{"input": "1", "output": "1", "testtype": "stdin"}, {"input": "[1]", "output": "1", "testtype": "functional"}]))
    src = write_jsonl(tmp_path / "lcb.jsonl", [
        stdin_record(), "{not json", "", no_func, [1, 2], mixed,
        stdin_record(private_test_cases="@@@ not base64 @@@", question_id="abc999_c"),
        {k: v for k, v in stdin_record(question_id="abc999_d").items() if k != "question_content"},
        functional_record(),
    ])
    result = import_lcb(src, tmp_path / "out")
    assert [i.source for i in result.imported] == ["line 1", "line 9"]
    reasons = {int(s.source.removeprefix("line ")): s.reason for s in result.skipped}
    assert not any(s.by_design for s in result.skipped)
    assert set(reasons) == {2, 4, 5, 6, 7, 8}  # line 3 is blank: ignored
    assert "not valid JSON" in reasons[2]
    assert "metadata.func_name" in reasons[4]
    assert "JSON object" in reasons[5]
    assert "testtype" in reasons[6]
    assert "private_test_cases" in reasons[7]
    assert 'field "question_content" is missing' in reasons[8]
    assert result.exit_code == 1


def test_a_crafted_pickle_never_runs_code(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    payload = f"cposix\nsystem\n(S'touch {marker}'\ntR.".encode()
    evil = base64.b64encode(zlib.compress(payload)).decode()
    result = import_lcb(write_jsonl(tmp_path / "lcb.jsonl", [stdin_record(private_test_cases=evil)]), tmp_path / "out")
    assert not marker.exists()
    assert not result.imported and "refusing posix.system" in result.skipped[0].reason
    not_a_string = base64.b64encode(zlib.compress(pickle.dumps([1, 2]))).decode()
    with pytest.raises(ValueError, match="expected a JSON string"):
        convert_record(stdin_record(private_test_cases=not_a_string))


def test_existing_folders_need_overwrite_and_no_temp_dirs_are_left(tmp_path: Path) -> None:
    out = tmp_path / "out"
    src = write_jsonl(tmp_path / "a.jsonl", [stdin_record()])
    assert import_lcb(src, out).exit_code == 0
    again = import_lcb(src, out)
    assert again.exit_code == 1 and "--overwrite" in again.skipped[0].reason
    write_jsonl(src, [stdin_record(question_content="A new statement.")])
    assert import_lcb(src, out, overwrite=True).exit_code == 0
    assert load_problem(out / "abc999_a-sum-up").statement.startswith("A new statement.")
    assert sorted(p.name for p in out.iterdir()) == ["abc999_a-sum-up"]  # no .tmp / .old leftovers
    dup = write_jsonl(tmp_path / "dup.jsonl", [stdin_record(), stdin_record()])
    res = import_lcb(dup, tmp_path / "out2")
    assert len(res.imported) == 1 and "already imported from line 1" in res.skipped[0].reason


def test_cli_exit_codes(tmp_path: Path) -> None:
    good = write_jsonl(tmp_path / "good.jsonl", [stdin_record(), functional_record()])
    res = runner.invoke(app, ["problem", "import-lcb", str(good), str(tmp_path / "o1")])
    assert res.exit_code == 0, res.output
    assert "2 imported, 0 skipped" in res.output
    mixed = write_jsonl(tmp_path / "mixed.jsonl", [stdin_record(), "garbage"])
    res = runner.invoke(app, ["problem", "import-lcb", str(mixed), str(tmp_path / "o2"), "--json"])
    assert res.exit_code == 1
    assert json.loads(res.output)["skipped"] == [
        {"source": "line 2", "reason": "not valid JSON (column 1: Expecting value)", "detail": "", "by_design": False}]
    res = runner.invoke(app, ["problem", "import-lcb", str(tmp_path / "missing.jsonl"), str(tmp_path / "o3")])
    assert res.exit_code != 0 and isinstance(res.exception, UserError)
    # and what was imported validates
    res = runner.invoke(app, ["problem", "validate", str(tmp_path / "o1"), "--schema-only"])
    assert res.exit_code == 0, res.output
