"""The one result type and exit-code rule every importer shares (sdpo_ttt/problem/importers/result.py)."""

from __future__ import annotations

from pathlib import Path

from sdpo_ttt.problem.importers.result import ImportResult
from sdpo_ttt.problem.schema import load_problem

SHIPPED = Path(__file__).resolve().parent.parent / "problems" / "sum-two-ints" / "problem.json"


def _doc(pid: str) -> dict:
    return {**load_problem(SHIPPED).model_dump(mode="json", exclude_none=True), "id": pid}


def test_exit_code_rule(tmp_path: Path) -> None:
    r = ImportResult("src", tmp_path)
    assert r.exit_code == 0
    r.skip("tree_problem", "needs TreeNode", by_design=True, difficulty="easy")
    assert r.exit_code == 0  # skipped by design: counted, not a failure
    item = r.write(_doc("p1"), "line 1", overwrite=False, validated=True, detail="passed", kind="stdio")
    assert item is not None and r.exit_code == 0 and item.info == {"kind": "stdio"}
    item.validated = False
    assert r.exit_code == 1  # a problem that failed its check
    item.validated = None
    r.skip("line 7", "not valid JSON")
    assert r.exit_code == 1  # a record that should have imported


def test_write_refuses_duplicates_and_existing_folders(tmp_path: Path) -> None:
    r = ImportResult("src", tmp_path)
    assert r.write(_doc("p1"), "line 1", overwrite=False) is not None
    assert r.write(_doc("p1"), "line 2", overwrite=False) is None
    assert r.skipped[-1].reason == 'id "p1" was already imported from line 1' and not r.skipped[-1].by_design
    again = ImportResult("src", tmp_path)
    assert again.write(_doc("p1"), "line 1", overwrite=False) is None and "pass --overwrite" in again.skipped[0].reason
    assert again.write(_doc("p1"), "line 1", overwrite=True) is not None and again.exit_code == 1
    assert load_problem(tmp_path / "p1").id == "p1"
    d = again.to_dict()
    assert d["exit_code"] == 1 and d["imported"][0]["id"] == "p1" and d["skipped"][0]["by_design"] is False
