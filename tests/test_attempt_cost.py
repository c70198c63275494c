"""benchmarks/attempt_cost.py: its pooling (pure) and a smoke run of both strategies on the tiny random model."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import attempt_cost as ac  # noqa: E402


def test_per_attempt_pools_over_runs_weighting_each_attempt_once() -> None:
    runs = [{"attempts": 4, "tokens": 400, "wall_s": 8.0, "sample_s": 4.0, "judge_s": 1.0, "update_s": 3.0, "teacher_s": 1.0,
             "student_fwd_bwd_s": 2.0},
            {"attempts": 2, "tokens": 100, "wall_s": 4.0, "sample_s": 2.0, "judge_s": 1.0, "update_s": 1.0, "teacher_s": 0.5,
             "student_fwd_bwd_s": 0.5}]
    p = ac.per_attempt(runs)
    assert p["attempts"] == 6
    assert p["s_per_attempt"] == pytest.approx(12 / 6)  # not the mean of 2.0 and 2.0 per run by accident: check tokens too
    assert p["tokens_per_attempt"] == pytest.approx(500 / 6)
    assert p["s_per_1k_tokens"] == pytest.approx(1000 * 12 / 500)
    assert p["update_s_per_attempt"] == pytest.approx(4 / 6) and p["student_fwd_bwd_s_per_attempt"] == pytest.approx(2.5 / 6)


@pytest.mark.slow
def test_smoke_run_prints_the_ratio_and_writes_its_figures(tmp_path: Path, tiny_model_dir: Path) -> None:
    out = tmp_path / "cost.json"
    res = subprocess.run([sys.executable, "benchmarks/attempt_cost.py", "--smoke", "--out", str(out)], capture_output=True, text=True,
                         timeout=600, cwd=Path(__file__).resolve().parent.parent)
    assert res.returncode == 0, res.stderr
    assert "sdpo/best-of-k" in res.stdout
    data = json.loads(out.read_text())
    assert set(data["pooled"]) == {"best-of-k", "sdpo"} and data["ratio_sdpo_over_best_of_k"]["s_per_attempt"] > 0
    assert data["pooled"]["sdpo"]["update_s_per_attempt"] > 10 * data["pooled"]["best-of-k"]["update_s_per_attempt"]  # only SDPO learns
