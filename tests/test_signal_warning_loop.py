"""`solve` warns once when the feedback gives the teacher nothing to teach (issue #16): the loop's wiring of
sdpo_ttt/run/monitors.py, with scripted policy, sandbox and strategy (the decision itself: test_monitors.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

import sdpo_ttt.run.loop as loop
from sdpo_ttt.config.tree import SolveConfig
from sdpo_ttt.problem.schema import load_problem
from sdpo_ttt.run.reporter import Reporter
from sdpo_ttt.run.rundir import RunDir
from tests.fakes import FakePolicy, FakeSandbox, program

PROBLEM = Path(__file__).resolve().parent.parent / "problems" / "sum-two-ints" / "problem.json"


class GapStrategy:
    """Stands in for SDPO: learns nothing, reports a fixed teacher-student log-prob gap and gap-score rank
    correlation per update."""

    name = "sdpo"
    sample_adapter = "student"

    def __init__(self, gap: float, corr: float) -> None:
        self.gap, self.corr = gap, corr
        self.seen: list[list[str]] = []

    def prompts(self, n: int) -> list[list[int]]:
        return [[1, 2, 3] for _ in range(n)]

    def observe(self, attempts) -> dict[str, float]:  # noqa: ANN001
        self.seen.append([a.feedback for a in attempts])
        return {"loss": 0.1, "grad_norm": 0.1, "sdpo/teacher_student_logprob_gap": self.gap, "sdpo/gap_score_corr": self.corr,
                "sdpo/divergence_mean": 0.05,
                "health/frac_with_feedback": sum(bool(a.feedback) for a in attempts) / len(attempts)}

    def save(self, directory: Path) -> None: ...
    def load(self, directory: Path, history: list[dict]) -> None: ...


class Messages(Reporter):
    def __init__(self) -> None:
        self.messages: list[str] = []

    def message(self, text: str) -> None:
        self.messages.append(text)


def _run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, gap: float, corr: float, length_cut: set[int] | None = None,
         cut_after_code: bool = False):
    strategy = GapStrategy(gap, corr)
    monkeypatch.setattr(loop, "make_strategy", lambda cfg, policy, messages, on_phase: strategy)
    problem = load_problem(PROBLEM)
    cfg = SolveConfig.model_validate({"strategy": "sdpo", "budget": 12, "batch_size": 2, "max_new_tokens": 64,
                                      "stop_on_success": False})
    run = RunDir.create(tmp_path / "run", cfg.model_dump(mode="json"), problem.to_json())
    rep = Messages()
    script = [program(c, score=0.25) for c in "abcdefghijkl"]
    loop.run_discovery(problem, cfg, run, FakePolicy(script, length_cut=length_cut, cut_after_code=cut_after_code), FakeSandbox(), rep)
    return run, rep, strategy


def test_warns_once_and_logs_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run, rep, _ = _run(tmp_path, monkeypatch, gap=0.1, corr=-0.3)  # a positive mean gap does not save it
    warnings = [m for m in rep.messages if "little to teach" in m]
    assert len(warnings) == 1 and "--feedback-visibility all" in warnings[0]
    logged = [(i, r) for i, r in enumerate(run.read_metrics()) if "warning" in r]
    assert len(logged) == 1 and logged[0][0] == 2  # on the third update step, once
    assert logged[0][1]["warning"] == "teacher_not_better" and logged[0][1]["warning_message"] == warnings[0]


def test_no_warning_when_the_teacher_prefers_better_attempts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The mean gap is ≤ 0 on the student's own samples whatever the teacher (−KL): no warning for its sign."""
    run, rep, _ = _run(tmp_path, monkeypatch, gap=-0.2, corr=0.4)
    assert not [m for m in rep.messages if "little to teach" in m]
    assert not [r for r in run.read_metrics() if "warning" in r]


def test_truncated_attempts_reach_feedback_and_metrics(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Attempts cut at max_new_tokens (finish reason "length") are told so, counted per step, and most feedback
    being cut off triggers the warning with the --max-new-tokens advice."""
    run, rep, strategy = _run(tmp_path, monkeypatch, gap=-0.01, corr=0.4, length_cut=set(range(12)) - {1, 3})
    first, second = strategy.seen[0]  # attempt 0 was cut, attempt 1 ended by itself
    assert "cut off at the limit of 64 tokens" in first and "cut off" not in second
    fracs = [r["health/truncated_frac"] for r in run.read_metrics()]
    assert fracs[:3] == [0.5, 0.5, 1.0]
    warning = next(m for m in rep.messages if "little to teach" in m)
    assert "a longer --max-new-tokens (now 64" in warning


def test_an_answer_cut_only_after_its_code_is_not_told_it_was_cut(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 26: the limit cut the explanation after a closed code block, not the program: no "cut off" notice,
    not counted as truncated, no advice to raise --max-new-tokens."""
    run, rep, strategy = _run(tmp_path, monkeypatch, gap=-0.01, corr=0.4, length_cut=set(range(12)), cut_after_code=True)
    assert not [fb for pair in strategy.seen for fb in pair if "cut off" in fb]
    assert [r["health/truncated_frac"] for r in run.read_metrics()][:3] == [0.0, 0.0, 0.0]
    assert not [m for m in rep.messages if "--max-new-tokens" in m]
