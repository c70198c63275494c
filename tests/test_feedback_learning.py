"""benchmarks/feedback_learning.py: its statistics (pure) and a smoke run of the whole experiment on the tiny
random model with the local sandbox (issue #16)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.fakes import load_benchmark

REPO = Path(__file__).resolve().parent.parent


fl = load_benchmark("feedback_learning")


def test_bootstrap_of_constant_differences_has_zero_width() -> None:
    assert fl.bootstrap_mean([[0.5, 0.5], [0.5] * 4]) == (0.5, 0.5, 0.5)
    est, lo, hi = fl.bootstrap_mean([])
    assert np.isnan(est) and np.isnan(lo) and np.isnan(hi)


def test_bootstrap_estimate_is_the_mean_of_problem_means() -> None:
    """Each problem weighs the same whatever its number of samples (2 samples or 6)."""
    est, lo, hi = fl.bootstrap_mean([[1.0, 1.0], [0.0] * 6], n_boot=500)
    assert est == 0.5 and lo == 0.0 and hi == 1.0  # resampling two problems: 0, 0.5 or 1


def test_bootstrap_interval_against_brute_force() -> None:
    """One group: the interval is the percentile interval of resampled means; compare with a direct simulation."""
    values = [0.0, 0.0, 1.0, 0.25, 1.0, 0.5, 0.0, 1.0]
    est, lo, hi = fl.bootstrap_mean([values], n_boot=4000, seed=1)
    rng = np.random.default_rng(7)
    sims = rng.choice(values, size=(20000, len(values))).mean(axis=1)
    assert est == pytest.approx(np.mean(values))
    assert lo == pytest.approx(np.quantile(sims, 0.05), abs=0.04) and hi == pytest.approx(np.quantile(sims, 0.95), abs=0.04)
    assert lo < est < hi
    assert fl.bootstrap_mean([values], n_boot=300, seed=3) == fl.bootstrap_mean([values], n_boot=300, seed=3)


def test_paired_differences_and_seeds() -> None:
    before = [{"passed": False, "score": 0.25}, {"passed": True, "score": 1.0}]
    after = [{"passed": True, "score": 1.0}, {"passed": True, "score": 1.0}]
    assert fl.paired(after, before, "passed") == [1.0, 0.0] and fl.paired(after, before, "score") == [0.75, 0.0]
    assert fl.stable_seed("p", 0, "eval") == fl.stable_seed("p", 0, "eval") != fl.stable_seed("p", 1, "eval")


def test_results_resume_and_settings_guard(tmp_path: Path) -> None:
    s = fl.Settings("m", 8, 2, 4, 256, 1.0, "public")
    res = fl.Results(tmp_path, s)
    res.add({"kind": "base", "problem": "p", "seed": 0, "lr": None, "samples": [], "wall_s": 1.0})
    res.add({"kind": "trained", "problem": "p", "seed": 0, "lr": 1e-4, "samples": [], "wall_s": 1.0})
    with (tmp_path / "results.jsonl").open("a") as f:
        f.write('{"kind": "trained", "problem": "p", "seed": 0, "lr": 3e-4, "sam')  # torn by a kill mid-write
    again = fl.Results(tmp_path, s)
    assert again.get("base", "p", 0) is not None and again.get("trained", "p", 0, 1e-4) is not None
    assert again.get("trained", "p", 0, 3e-4) is None and again.get("teacher", "p", 0) is None
    assert fl.Results(tmp_path, None).settings == s  # --report reads the settings from OUT
    with pytest.raises(SystemExit, match="holds results of other settings"):
        fl.Results(tmp_path, fl.Settings("m", 16, 2, 4, 256, 1.0, "public"))


def test_the_problem_list_has_eight_rarely_solved_problems_with_a_record() -> None:
    entries = fl.read_problem_list("problems/feedback-learning.txt")
    assert len(entries) >= 8
    calibration = json.loads((REPO / "problems" / "feedback-learning-calibration.json").read_text())
    recorded = {p["entry"]: p for p in calibration["problems"]}
    assert set(entries) <= set(recorded)
    for e in entries:
        rec = recorded[e]
        assert rec["passed"] / rec["n"] <= 0.2 and rec["source"], e
        assert (rec["mean_score"] if rec["mean_score"] is not None else rec["best_score"]) > 0, e
        if not e.startswith(("humaneval:", "leetcode:")):
            assert (REPO / e / "problem.json").is_file(), e


@pytest.mark.sandbox
def test_smoke_run_is_resumable(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The whole experiment (base, teacher, T updates, after) on the tiny random model: every condition is
    recorded, the table printed, and a second run finds everything done."""
    from sdpo_ttt.policy.catalog import model_dir

    if not (model_dir("smollm2-135m") / "tokenizer.json").is_file():
        pytest.skip("no smollm2-135m tokenizer for the tiny model: run `bash scripts/setup.sh`")
    out = tmp_path / "fl"
    assert fl.main(["--smoke", "--out", str(out)]) == 0
    printed = capsys.readouterr()
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert [r["kind"] for r in records] == ["base", "teacher", "trained"]
    trained = records[2]
    assert len(trained["samples"]) == 2 and len(trained["steps"]) == 1 and trained["lr"] == 1e-4
    step = trained["steps"][0]
    assert step["failed"] == 2 and "sdpo/teacher_student_logprob_gap" in step
    assert step["health/frac_with_demo"] == 0.0  # feedback only: never a demonstration
    assert "| sum-two-ints | 1 | 0/2 |" in printed.out and "pooled (1 problems)" in printed.out
    assert all("code_cut" in s for s in records[0]["samples"])
    regime = json.loads((out / "regime.json").read_text())  # which regime measured it: the resolved defaults
    config = regime[-1]["configs"]["0.0001"]
    assert config["feedback_style"] == "reference" and config["aggregation"] == "token-mean"
    assert config["weight_decay"] == 0.01 and config["adv_clip"] == 5.0 and config["lr"] == 1e-4
    assert "regime (commit" in printed.out and "feedback_style=reference" in printed.out
    assert fl.main(["--smoke", "--out", str(out)]) == 0
    assert "nothing to run" in capsys.readouterr().err
    assert len((out / "results.jsonl").read_text().splitlines()) == 3
    assert len(json.loads((out / "regime.json").read_text())) == 2  # each invocation appended, none overwritten


def test_report_rows_pooled_row_and_ingredients(tmp_path: Path) -> None:
    """Two problems, hand-made samples: the row figures, the pooled row and the missing-ingredient line."""
    res = fl.Results(tmp_path, fl.Settings("m", 4, 1, 4, 128, 1.0, "public"))

    def samples(passed, scores, cut=(False,) * 4):
        return [{"passed": p, "score": s, "tokens": 10, "truncated": c, "verdict": "x"} for p, s, c in zip(passed, scores, cut, strict=True)]

    no, gap = [False] * 4, {"step": 0, "sdpo/teacher_student_logprob_gap": 0.25, "sdpo/gap_score_corr": -0.5}
    for pid, after_scores, teach_scores, cut in (("p1", [1.0, 1.0, 1.0, 1.0], [0.5] * 4, (True,) * 4),
                                                ("p2", [0.5] * 4, [0.0] * 4, (False,) * 4)):
        res.add({"kind": "base", "problem": pid, "seed": 0, "lr": None, "samples": samples(no, [0.5] * 4, cut), "wall_s": 60.0})
        res.add({"kind": "teacher", "problem": pid, "seed": 0, "lr": None, "samples": samples(no, teach_scores), "wall_s": 60.0})
        res.add({"kind": "trained", "problem": pid, "seed": 0, "lr": 1e-4, "wall_s": 60.0, "steps": [gap], "train_samples": [],
                 "samples": samples([s == 1.0 for s in after_scores], after_scores)})
    text = fl.report(res, ["p1", "p2"], n_boot=200)
    row1 = next(line for line in text.splitlines() if line.startswith("| p1 |"))
    assert ("| 0/4 | 0.50 | 100% | 4/4 | 1.00 | +100 [+100, +100] | +0.50 [+0.50, +0.50] | 0/4 | 0.50 | +0.00 [+0.00, +0.00] "
            "| +0.250 | -0.50 | 120 | 3.0 min |") in row1
    pooled = next(line for line in text.splitlines() if "pooled (2 problems)" in line)
    assert "+50 [+0, +100]" in pooled and "+0.25 [+0.00, +0.50]" in pooled and "-0.25 [-0.50, +0.00]" in pooled
    assert "gained (Δ score interval above 0) on 1/2" in text and "beat the base model (teacher − base score > 0) on 0/2" in text
    assert "cut off at 128 tokens on 1/2" in text
