"""benchmarks/feedback_learning.py: arms, the results file and its resume, what a trained condition records (every
update's batch, the token change), the report on hand-made records and on a folder from before arms, and a smoke run
of the whole experiment on the tiny random model with the local sandbox (issues 16, 25). Its statistics:
tests/test_report_learning.py."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from tests.fakes import load_benchmark

REPO = Path(__file__).resolve().parent.parent


fl = load_benchmark("feedback_learning")


def test_stable_seeds() -> None:
    assert fl.stable_seed("p", 0, "eval") == fl.stable_seed("p", 0, "eval") != fl.stable_seed("p", 1, "eval")
    assert fl.stable_seed("p", 0, "train", 0) != fl.stable_seed("p", 0, "train", 1)


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


def test_arms_set_the_grpo_weight_of_the_update() -> None:
    from sdpo_ttt.config.tree import SolveConfig

    s = fl.Settings("m", 8, 8, 4, 256, 1.0, "public")
    for arm, weight in (("sdpo", 0.0), ("hybrid:0.5", 0.5), ("hybrid:0.9", 0.9), ("grpo", 1.0)):
        cfg = SolveConfig(**s.solve_values(1e-5, arm))
        assert cfg.sdpo.grpo_weight == weight and cfg.optim.lr == 1e-5, arm
    assert "grpo_weight" not in s.solve_values(1e-5)  # the evaluation conditions: λ plays no part


def test_results_from_before_arms_read_as_sdpo(tmp_path: Path) -> None:
    """A trained record without an arm field is the λ of its settings: sdpo (λ = 0) unless they set grpo_weight."""
    old = {"kind": "trained", "problem": "p", "seed": 0, "lr": 1e-4, "samples": [], "wall_s": 1.0}
    res = fl.Results(tmp_path / "a", fl.Settings("m", 8, 2, 4, 256, 1.0, "public"))
    res.add(dict(old))
    assert res.get("trained", "p", 0, 1e-4, "sdpo") is not None and res.get("trained", "p", 0, 1e-4, "grpo") is None
    assert res.cells() == [("sdpo", 1e-4)]
    res = fl.Results(tmp_path / "b", fl.Settings("m", 8, 2, 4, 256, 1.0, "public", {"grpo_weight": 0.9}))
    res.add(dict(old))
    assert res.cells() == [("hybrid:0.9", 1e-4)]


def test_main_refuses_grpo_weight_beside_the_arms_and_bad_arms(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert fl.main(["--set", "grpo_weight=0.5", "--out", str(tmp_path)]) == 2
    assert "use --arms hybrid:λ" in capsys.readouterr().err
    assert fl.main(["--arms", "sdpo,hybrid:2", "--out", str(tmp_path)]) == 2
    assert "unknown arm 'hybrid:2'" in capsys.readouterr().err
    assert not (tmp_path / "settings.json").exists()  # refused before anything was written


def test_results_resume_and_settings_guard(tmp_path: Path) -> None:
    s = fl.Settings("m", 8, 2, 4, 256, 1.0, "public")
    res = fl.Results(tmp_path, s)
    res.add({"kind": "base", "problem": "p", "seed": 0, "lr": None, "arm": None, "samples": [], "wall_s": 1.0})
    res.add({"kind": "trained", "problem": "p", "seed": 0, "lr": 1e-4, "arm": "grpo", "samples": [], "wall_s": 1.0})
    with (tmp_path / "results.jsonl").open("a") as f:
        f.write('{"kind": "trained", "problem": "p", "seed": 0, "lr": 3e-4, "sam')  # torn by a kill mid-write
    again = fl.Results(tmp_path, s)
    assert again.get("base", "p", 0) is not None and again.get("trained", "p", 0, 1e-4, "grpo") is not None
    assert again.get("trained", "p", 0, 1e-4, "sdpo") is None and again.get("trained", "p", 0, 3e-4, "grpo") is None
    assert again.get("teacher", "p", 0) is None
    assert fl.Results(tmp_path, None).settings == s  # --report reads the settings from OUT
    with pytest.raises(SystemExit, match="holds results of other settings"):
        fl.Results(tmp_path, fl.Settings("m", 16, 2, 4, 256, 1.0, "public"))


def _sample(score: float, tokens: int = 4, **extra: Any) -> dict[str, Any]:
    return {"passed": score == 1.0, "score": score, "tokens": tokens, "truncated": False, "verdict": "x", **extra}


class FakeExperiment:
    """Records which conditions run_all asked for; returns minimal records."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def base(self, problem: Any, seed: int) -> dict[str, Any]:
        self.calls.append(("base", problem.id, seed))
        return {"samples": [_sample(0.5, ids=[1, 2, 3, 4])], "wall_s": 0.0}

    def teacher(self, problem: Any, seed: int, base: dict[str, Any]) -> dict[str, Any]:
        self.calls.append(("teacher", problem.id, seed))
        return {"samples": [_sample(0.0)], "wall_s": 0.0}

    def stream(self, problem: Any, seed: int) -> dict[str, Any]:
        self.calls.append(("base-train", problem.id, seed))
        return {"batches": [[_sample(0.5, ids=[1, 2, 3, 4])]], "wall_s": 0.0}

    def trained(self, problem: Any, seed: int, lr: float, arm: str, base: dict[str, Any], stream: dict[str, Any]) -> dict[str, Any]:
        assert base["kind"] == "base" and stream["kind"] == "base-train"  # the cached records are handed on
        self.calls.append(("trained", problem.id, seed, lr, arm))
        return {"samples": [_sample(0.5, common=4)], "steps": [], "train_samples": [], "wall_s": 0.0}


def test_resume_skips_finished_arm_and_rate_cells(tmp_path: Path) -> None:
    """A second invocation with more arms and rates runs only the new (arm, lr) cells, seed by seed; a third runs nothing."""
    s = fl.Settings("m", 1, 1, 1, 8, 1.0, "public")
    problems, seeds = [SimpleNamespace(id="p1"), SimpleNamespace(id="p2")], [0, 1]
    exp = FakeExperiment()
    fl.run_all(exp, fl.Results(tmp_path, s), problems, seeds, [("sdpo", 1e-5)], print)
    assert len(exp.calls) == 2 * 2 * 4
    exp = FakeExperiment()
    cells = [("sdpo", 1e-5), ("grpo", 1e-5), ("sdpo", 1e-4), ("hybrid:0.9", 1e-4)]
    fl.run_all(exp, fl.Results(tmp_path, s), problems, seeds, cells, print)
    assert exp.calls == [("trained", p, seed, lr, arm) for seed in seeds for p in ("p1", "p2") for arm, lr in cells[1:]]
    results = fl.Results(tmp_path, s)
    assert fl.pending(results, problems, seeds, cells) == []
    assert {(r["arm"], r["lr"]) for r in results.records if r["kind"] == "trained"} == set(cells)
    exp = FakeExperiment()
    fl.run_all(exp, results, problems, seeds, cells, print)
    assert exp.calls == []


def test_base_only_runs_the_calibration_alone(tmp_path: Path) -> None:
    """--base-only: condition (a) for every (problem, seed), nothing else; the full run then reuses it."""
    s = fl.Settings("m", 1, 1, 1, 8, 1.0, "public")
    problems, cells = [SimpleNamespace(id="p1"), SimpleNamespace(id="p2")], [("sdpo", 1e-5)]
    exp = FakeExperiment()
    fl.run_all(exp, fl.Results(tmp_path, s), problems, [0, 1], cells, print, base_only=True)
    assert exp.calls == [("base", p, seed) for seed in (0, 1) for p in ("p1", "p2")]
    results = fl.Results(tmp_path, s)
    assert fl.pending(results, problems, [0, 1], cells, base_only=True) == []
    exp = FakeExperiment()
    fl.run_all(exp, results, problems, [0, 1], cells, print)
    assert [c[0] for c in exp.calls] == ["teacher", "base-train", "trained"] * 4


def _attempt(ids: list[int], score: float) -> SimpleNamespace:
    verdict = SimpleNamespace(passed=score == 1.0, score=score, outcome=SimpleNamespace(value="x"))
    completion = SimpleNamespace(completion_ids=ids, finish_reason="eos", text="```python\nprint(1)\n```")
    return SimpleNamespace(verdict=verdict, completion=completion, feedback="" if score == 1.0 else "Wrong Answer")


@pytest.mark.parametrize(("arm", "weight"), [("sdpo", 0.0), ("hybrid:0.5", 0.5), ("grpo", 1.0)])
def test_trained_records_every_update_and_the_token_change(monkeypatch: pytest.MonkeyPatch, arm: str, weight: float) -> None:
    """Stand-in sampler and updater: the updater gets the arm's λ and only the failed attempts; every update's batch
    score and passes are recorded; each sample's common prefix with its same-seed stream or base sample too."""
    import sdpo_ttt.sdpo.update as update
    from sdpo_ttt.config.tree import SolveConfig

    learned: list[tuple[float, int]] = []

    class Updater:
        def __init__(self, policy: Any, loss: Any, optim: Any, contexts: Any) -> None:
            self.weight = loss.grpo_weight

        def step(self, failed: list[Any]) -> dict[str, float]:
            learned.append((self.weight, len(failed)))
            return {"loss": 0.5, "grpo/advantage_std": 0.1}

    def draw(problem: Any, prompts: list, seed: int, adapter: str | None, step: int = 0) -> list[Any]:
        """Update t's batch: [t, i, 5, 6] before any update, [t, i, 9] after (the student flipped its third token);
        scores rise by 0.25 per update, the last batch's first attempt passes."""
        return [_attempt([step, i, 5, 6] if step == 0 else [step, i, 9], 1.0 if (step, i) == (2, 0) else 0.25 * step)
                for i in range(len(prompts))]

    monkeypatch.setattr(update, "SDPOUpdater", Updater)
    s = fl.Settings("m", 2, 3, 2, 16, 1.0, "public")
    exp = fl.Experiment.__new__(fl.Experiment)  # no model: the pieces that touch one are stood in for
    exp.settings, exp.log, exp.cfg, exp.policy = s, lambda msg: None, SolveConfig(**s.solve_values()), None
    monkeypatch.setattr(exp, "restore", lambda: None)
    monkeypatch.setattr(exp, "_contexts", lambda problem, cfg: SimpleNamespace(student=lambda: [0]))
    monkeypatch.setattr(exp, "_draw", draw)
    stream = {"batches": [[_sample(0.0, ids=[t, i, 5, 6]) for i in range(2)] for t in range(3)]}
    base = {"samples": [_sample(0.0, ids=[0, 0, 5, 6]), _sample(0.0, ids=[0, 1, 8, 8])]}
    rec = exp.trained(SimpleNamespace(id="p"), 0, 1e-4, arm, base, stream)
    assert rec["grpo_weight"] == weight and learned == [(weight, 2), (weight, 2), (weight, 1)]
    assert [(r["step"], r["attempts"], r["passed"], r["score_mean"]) for r in rec["steps"]] == [
        (0, 2, 0, 0.0), (1, 2, 0, 0.25), (2, 2, 1, 0.75)]
    assert [(x["step"], x["common"]) for x in rec["train_samples"]] == [(0, 4), (0, 4), (1, 2), (1, 2), (2, 2), (2, 2)]
    assert [x["common"] for x in rec["samples"]] == [4, 2]  # the evaluation draw against the base samples


def _records() -> list[dict[str, Any]]:
    """Two problems, one seed, T = 2, B = 2, two arms at one rate: sdpo moved the samples, grpo did not."""
    recs: list[dict[str, Any]] = []
    stream = [[_sample(0.5, ids=[1, 2, 3, 4]) for _ in range(2)] for _ in range(2)]
    for pid, after in (("p1", 0.75), ("p2", 0.25)):
        base_score = 0.5 if pid == "p1" else 0.0
        common = [0, 4] if pid == "p1" else [3, 4]
        recs += [{"kind": "base", "problem": pid, "seed": 0, "lr": None, "arm": None, "wall_s": 60.0,
                  "samples": [_sample(base_score, ids=[1, 2, 3, 4]) for _ in range(2)]},
                 {"kind": "base-train", "problem": pid, "seed": 0, "lr": None, "arm": None, "wall_s": 60.0, "batches": stream},
                 {"kind": "trained", "problem": pid, "seed": 0, "lr": 1e-4, "arm": "sdpo", "wall_s": 120.0,
                  "samples": [_sample(after, common=c) for c in common],
                  "steps": [{"step": 0, "loss": 0.1, "sdpo/teacher_student_logprob_gap": 0.25}, {"step": 1, "loss": 0.1}],
                  "train_samples": [_sample(0.5, step=0, common=4)] * 2 + [_sample(1.0, step=1, common=2), _sample(0.5, step=1, common=4)]},
                 {"kind": "trained", "problem": pid, "seed": 0, "lr": 1e-4, "arm": "grpo", "wall_s": 120.0,
                  "samples": [_sample(base_score, common=4) for _ in range(2)],
                  "steps": [{"step": t, "loss": 0.0, "grpo/advantage_std": 0.0} for t in range(2)],
                  "train_samples": [_sample(0.5, step=t, common=4) for t in (0, 0, 1, 1)]}]
    recs.append({"kind": "teacher", "problem": "p1", "seed": 0, "lr": None, "arm": None, "wall_s": 60.0,
                 "samples": [_sample(0.75), _sample(0.75)]})
    return recs


def test_report_arms_curves_rows_and_notes(tmp_path: Path) -> None:
    """Hand-made records: the pooled arm rows, the token change and its plain-words note, the curve of every update,
    the per-problem rows with their arm, the teacher table, the coupling check."""
    from sdpo_ttt.report.learning_summary import Records, summarise
    from sdpo_ttt.report.learning_text import render

    records = Records(_records(), updates=2, batch=2)
    summary = summarise(records, ["p1", "p2"], 200, {"updates": 2, "max_new_tokens": 128})
    text = render(summary)
    lines = text.splitlines()
    row = next(line for line in lines if line.startswith("| sdpo | 0 | 0.0001 |"))
    assert row == ("| sdpo | 0 | 0.0001 | 2 | 2 | +0 [+0, +0] | +0.25 [+0.25, +0.25] | 2/4 | 31% | 0.50 → 0.75 | - | 2/2 |")
    assert next(line for line in lines if line.startswith("| grpo | 1 |")).endswith("| 0/4 | 0% | 0.50 → 0.50 | 0/4 | 0/2 |")
    assert ("- **grpo at lr 0.0001**: no after-sample changed: they are the base samples token for token, so Δ = 0 by "
            "construction — this arm and rate learned nothing visible; GRPO had no signal") in text
    assert "**sdpo at lr" not in text  # it moved 31% of the tokens: no warning
    assert "equals the same-seed stream on 8/8 samples." in text
    curve = lines[lines.index("### sdpo, lr 0.0001"):]
    assert curve[4] == "| 1 | 0/4 | 0.50 [0.50, 0.50] | 0.50 | +0.00 [+0.00, +0.00] | 0/4 | 0% |"
    assert curve[5].startswith("| 2 | 2/4 | 0.75 [") and curve[5].endswith("| 0.50 | +0.25 [+0.00, +0.50] | 2/4 | 25% |")
    assert curve[6] == "| after (eval seeds) | 0/4 | 0.50 | 0.25 (base) | +0.25 [+0.25, +0.25] | 2/4 | 31% |"
    assert [c["update"] for c in summary["cells"][0]["curve"]] == [1, 2]
    assert ("| p1 | sdpo | 1 | 0/2 | 0.50 | 0/2 | 0.75 | +0 [+0, +0] | +0.25 [+0.25, +0.25] | 1/2 | 50% | +0.250 | - | 24 "
            "| 2.0 min |") in lines
    assert "| **pooled (2 problems)** | grpo | | | | | | +0 [+0, +0] | +0.00 [+0.00, +0.00] | 0/4 | 0% | | | | |" in lines
    assert "| p1 | 1 | 0/2 | 0.50 | 0% | 0/2 | 0.75 | +0.25 [+0.25, +0.25] | 32 | 3.0 min |" in lines
    assert "beat the base model (teacher − base score > 0) on 1/2 problems" in text
    json.dumps(summary, allow_nan=False)  # JSON-ready: no NaN


def test_report_of_a_folder_from_before_arms(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The committed 2026-12-07 run (no arm, no token ids, no stream) still reports: arm sdpo, its figures unchanged,
    the token change marked as not recorded, only the listed problems counted; summary.md and .json are written."""
    out = tmp_path / "old"
    shutil.copytree(REPO / "benchmarks" / "results" / "feedback_learning-public-2026-12-07", out)
    problems = "problems/sum-two-ints,problems/count-inversions,problems/spiral-order"  # not HumanEval/96: no import
    assert fl.main(["--report", "--out", str(out), "--problems", problems, "--bootstrap", "300"]) == 0
    text = capsys.readouterr().out
    assert "| sdpo | 0 | 1e-05 | 3 | 3 | -4 [-12, +0] |" in text and "| sdpo | 0 | 0.0001 | 1 | 1 | -12 [" in text
    assert "Not in the problem list, so left out: HumanEval-96." in text
    assert "- **sdpo at lr 1e-05**: token change not recorded (results from before issue 25)" in text
    assert "| sum-two-ints | sdpo | 1 | 1/8 | 0.59 | 0/8 | 0.47 | -12 [" in text  # the figures of docs/results.md
    assert "| spiral-order | sdpo | 1 | 0/8 | 0.01 | 0/8 | 0.08 | +0 [+0, +0] | +0.07 [" in text
    assert "Calibration: base pass rate above 20% (the band of problems/feedback-learning.txt) on none." in text
    summary = json.loads((out / "summary.json").read_text())
    assert [(c["arm"], c["lr"]) for c in summary["cells"]] == [("sdpo", 1e-5), ("sdpo", 1e-4)]
    assert (out / "summary.md").read_text().strip() == text.strip()


@pytest.mark.sandbox
def test_smoke_run_is_resumable(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The whole experiment (base, teacher, stream, T updates per arm, after) on the tiny random model: every
    condition is recorded with its curve and token change, the tables printed, and a second run finds everything
    done; a third with another arm runs only that arm."""
    from sdpo_ttt.policy.catalog import model_dir

    if not (model_dir("smollm2-135m") / "tokenizer.json").is_file():
        pytest.skip("no smollm2-135m tokenizer for the tiny model: run `bash scripts/setup.sh`")
    out = tmp_path / "fl"
    assert fl.main(["--smoke", "--out", str(out), "--arms", "sdpo,grpo"]) == 0
    printed = capsys.readouterr()
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert [(r["kind"], r["arm"]) for r in records] == [("base", None), ("teacher", None), ("base-train", None),
                                                        ("trained", "sdpo"), ("trained", "grpo")]
    stream, trained = records[2], records[3]
    assert [len(b) for b in stream["batches"]] == [2, 2] and all("ids" in x for b in stream["batches"] for x in b)
    assert len(trained["samples"]) == 2 and trained["lr"] == 1e-4 and trained["grpo_weight"] == 0.0
    assert records[4]["grpo_weight"] == 1.0
    assert [(s["step"], s["attempts"], s["passed"]) for s in trained["steps"]] == [(0, 2, 0), (1, 2, 0)]  # the curve
    assert all("score_mean" in s for s in trained["steps"]) and [x["step"] for x in trained["train_samples"]] == [0, 0, 1, 1]
    assert all("common" in x for x in trained["samples"] + trained["train_samples"])
    step = trained["steps"][0]
    assert step["failed"] == 2 and "sdpo/teacher_student_logprob_gap" in step
    assert step["health/frac_with_demo"] == 0.0  # feedback only: never a demonstration
    assert "| sum-two-ints | sdpo | 1 | 0/2 |" in printed.out and "pooled (1 problems)" in printed.out
    assert "equals the same-seed stream on 4/4 samples." in printed.out  # sampling is coupled: batch 1 = stream
    assert "### grpo, lr 0.0001" in printed.out and (out / "summary.json").is_file()
    assert all("code_cut" in s for s in records[0]["samples"])
    regime = json.loads((out / "regime.json").read_text())  # which regime measured it: the resolved defaults
    config = regime[-1]["configs"]["sdpo lr=0.0001"]
    assert config["feedback_style"] == "reference" and config["aggregation"] == "token-mean"
    assert config["weight_decay"] == 0.01 and config["adv_clip"] == 5.0 and config["lr"] == 1e-4
    assert regime[-1]["configs"]["grpo lr=0.0001"]["grpo_weight"] == 1.0
    assert "regime (commit" in printed.out and "feedback_style=reference" in printed.out
    assert fl.main(["--smoke", "--out", str(out), "--arms", "sdpo,grpo"]) == 0
    assert "nothing to run" in capsys.readouterr().err
    assert len((out / "results.jsonl").read_text().splitlines()) == 5
    assert fl.main(["--smoke", "--out", str(out), "--arms", "sdpo,hybrid:0.9,grpo"]) == 0
    added = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()][5:]
    assert [(r["kind"], r["arm"]) for r in added] == [("trained", "hybrid:0.9")]
    assert len(json.loads((out / "regime.json").read_text())) == 3  # each invocation appended, none overwritten
