"""benchmarks/attempt_cost.py: its pooling and steady state (pure), its re-report of a written JSON, and a smoke run of
both strategies on the tiny random model."""

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


def _run(attempts: int, wall: float, update: float, steps: int, sample: float = 0.0, judge: float = 0.0) -> dict[str, float]:
    return {"attempts": attempts, "tokens": 100 * attempts, "wall_s": wall, "steps": steps, "sample_s": sample, "judge_s": judge,
            "update_s": update, "teacher_s": 0.0, "student_fwd_bwd_s": update}


def test_steady_state_charges_every_attempt_a_batch_share_of_one_update() -> None:
    # 8 attempts, 100 s of which 20 s is one update, B = 4: (100 - 20)/8 = 10 s besides the update, + 20/4 = 5 s of it
    st = ac.steady_state([_run(8, 100.0, 20.0, 1)], batch_size=4)
    assert st["rest_s_per_attempt"] == pytest.approx(10.0) and st["update_s_per_update"] == pytest.approx(20.0)
    assert st["s_per_attempt"] == pytest.approx(15.0)  # end to end the same run reads 100/8 = 12.5
    # pooled: 8 + 4 attempts, 100 + 70 s, updates 20 + 2·25 s over 1 + 2 updates: (170 - 70)/12 + (70/3)/4
    st = ac.steady_state([_run(8, 100.0, 20.0, 1), _run(4, 70.0, 50.0, 2)], batch_size=4)
    assert st["s_per_attempt"] == pytest.approx(100 / 12 + 70 / 3 / 4) and st["updates"] == 3
    assert ac.steady_state([_run(8, 72.0, 0.0, 0)], batch_size=4)["s_per_attempt"] == pytest.approx(9.0)  # no update: end to end


def test_figures_give_both_ratios_and_a_long_run_converges_to_the_steady_state() -> None:
    bok = _run(8, 72.0, 0.0, 0)
    fig = ac.figures({"best-of-k": [bok], "sdpo": [_run(8, 96.0, 20.0, 1)]}, batch_size=4)
    assert fig["ratio_sdpo_over_best_of_k"]["s_per_attempt"] == pytest.approx(12.0 / 9.0)
    assert fig["ratio_steady_state"] == pytest.approx((76 / 8 + 5) / 9.0)
    # budget 400 at B = 4 = 99 updates of 20 s, 9.5 s an attempt besides: end to end nears the steady state
    long = ac.figures({"best-of-k": [_run(400, 3600.0, 0.0, 0)], "sdpo": [_run(400, 400 * 9.5 + 99 * 20.0, 99 * 20.0, 99)]}, 4)
    assert long["ratio_steady_state"] == pytest.approx(14.5 / 9.0)
    assert long["ratio_sdpo_over_best_of_k"]["s_per_attempt"] == pytest.approx(long["ratio_steady_state"], rel=0.01)


def test_rereport_derives_the_steady_state_of_the_2026_12_07_quiet_run() -> None:
    path = Path(__file__).resolve().parent.parent / "benchmarks" / "results" / "attempt_cost-2026-12-07-quiet.json"
    data = ac.rereport(path)
    # by hand from its runs: sdpo (97.727 - 20.112)/8 + 20.112/4 = 9.702 + 5.028; best-of-k 72.469/8
    assert data["steady_state"]["sdpo"]["s_per_attempt"] == pytest.approx(14.730, abs=1e-3)
    assert data["steady_state"]["best-of-k"]["s_per_attempt"] == pytest.approx(9.059, abs=1e-3)
    assert data["ratio_steady_state"] == pytest.approx(1.626, abs=1e-3)
    assert data["ratio_sdpo_over_best_of_k"]["s_per_attempt"] == pytest.approx(1.349, abs=1e-3)  # as published


@pytest.mark.slow
def test_smoke_run_prints_the_ratio_and_writes_its_figures(tmp_path: Path, tiny_model_dir: Path) -> None:
    out = tmp_path / "cost.json"
    res = subprocess.run([sys.executable, "benchmarks/attempt_cost.py", "--smoke", "--out", str(out)], capture_output=True, text=True,
                         timeout=600, cwd=Path(__file__).resolve().parent.parent)
    assert res.returncode == 0, res.stderr
    assert "sdpo/best-of-k" in res.stdout
    data = json.loads(out.read_text())
    assert set(data["pooled"]) == {"best-of-k", "sdpo"} and data["ratio_sdpo_over_best_of_k"]["s_per_attempt"] > 0
    assert "steady state" in res.stdout and data["ratio_steady_state"] > 0 and data["steady_state"]["sdpo"]["updates"] == 1
    assert data["pooled"]["sdpo"]["update_s_per_attempt"] > 10 * data["pooled"]["best-of-k"]["update_s_per_attempt"]  # only SDPO learns
