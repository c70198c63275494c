"""The live display of `solve` (issue #15, item 6): what it shows, the end-of-run explanation, Ctrl-C and SIGTERM."""

from __future__ import annotations

import io
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest
from rich.console import Console

from sdpo_ttt.cli.display import (
    PlainReporter,
    RunView,
    _Events,
    counts_text,
    explain_end,
    fmt_duration,
    interrupted_hint,
    render_lines,
)
from sdpo_ttt.sandbox.verdict import Outcome

REPO = Path(__file__).resolve().parent.parent


def _attempt(outcome: str, feedback: str = "", finish: str = "eos"):
    """The parts of a loop Attempt the display reads."""
    return SimpleNamespace(
        verdict=SimpleNamespace(outcome=Outcome(outcome), passed=outcome == "passed"),
        feedback=feedback, completion=SimpleNamespace(finish_reason=finish),
    )


def test_sampling_phase_shows_token_progress_and_rate() -> None:
    v = RunView()
    v.start(budget=16, used=0, now=100.0)
    v.set_phase("sampling", step=0, n=8, token_cap=1024, now=100.0)
    v.add_tokens(30)
    v.add_tokens(10)
    lines = render_lines(v, now=102.0)
    assert "step 0 · sampling 8 attempts · 40/1024 tokens · 20.0 tok/s" in lines[1]
    assert "ETA" not in lines[0]  # no pace known before the first batch
    v.set_phase("judging", step=0, n=8, token_cap=0, now=104.0)  # the rate of the finished sampling phase stays visible
    assert "judging 8 attempts · 10.0 tok/s" in render_lines(v, now=105.0)[1]


def test_run_totals_next_to_last_batch_and_loss_kept() -> None:
    v = RunView()
    v.start(budget=16, used=0, now=0.0)
    v.add_attempts([_attempt("wrong_answer", "test 2: expected 5, got 6\nmore")] * 3 + [_attempt("format_error", "no program")], 4, 0.5)
    v.add_metrics(0, {"loss": 0.125, "grad_norm": 0.5})
    v.add_attempts([_attempt("format_error", "no program found"), _attempt("passed")], 6, 1.0)
    lines = render_lines(v, now=12.0)
    text = "\n".join(lines)
    assert "run totals: wrong_answer 3, format_error 2, passed 1 | last batch: format_error 1, passed 1" in text
    assert "loss 0.125 (step 0) · grad norm 0.5" in text  # a logged loss stays on screen until the next one
    assert "last feedback: no program found" in text
    assert lines[0].startswith("attempts 6/16 · passed 1 · best score 1.00 · 0:12 elapsed · ETA 0:20")


def test_eta_counts_only_this_process_after_resume() -> None:
    v = RunView()
    v.start(budget=20, used=10, now=0.0)  # 10 attempts spent before the resume
    v.add_attempts([_attempt("wrong_answer")] * 5, 15, 0.0)
    assert v.eta_s(now=50.0) == pytest.approx(50.0)  # 10 s per attempt here, 5 left


def test_teacher_and_update_phases_show_the_micro_batch() -> None:
    v = RunView()
    v.start(budget=16, used=8, now=0.0)
    v.set_phase("teacher", step=1, n=8, token_cap=0, now=1.0, part=(3, 8))
    assert "step 1 · teacher pass 8 attempts · micro-batch 3/8 · 0:01" == render_lines(v, now=2.0)[1]
    v.set_phase("update", step=1, n=8, token_cap=0, now=2.0, part=(3, 8))
    assert render_lines(v, now=2.0)[1].startswith("step 1 · update 8 attempts · micro-batch 3/8")


def test_time_and_token_budgets_shown_and_bound_the_eta() -> None:
    v = RunView()
    v.start(budget=100, used=0, now=0.0)
    v.set_budgets(max_time_s=600.0, max_tokens=5000, wall_before=500.0, tokens_before=1200)  # resumed: 500 s spent
    assert v.eta_s(now=10.0) == 90.0  # before any batch: the time left
    v.add_tokens(300)
    v.add_attempts([_attempt("wrong_answer")] * 4, 4, 0.0)
    head = render_lines(v, now=20.0)[0]
    assert "tokens 1500/5000" in head and "8:40/10:00 of --max-time" in head and head.endswith("ETA 1:20")


def test_cut_off_attempts_counted() -> None:
    v = RunView()
    v.start(budget=4, used=0, now=0.0)
    v.add_attempts([_attempt("format_error", finish="length")] * 3 + [_attempt("wrong_answer")], 4, 0.0)
    assert "cut off at the token limit: 3/4" in render_lines(v, now=1.0)[2]


def test_explain_end() -> None:
    cut = [{"verdict": "format_error", "finish_reason": "length", "score": 0.0}] * 4
    assert explain_end({"solved": False}, cut, 128) == "4/4 attempts were cut off at 128 tokens; raise --max-new-tokens"
    wrong = [{"verdict": "wrong_answer", "finish_reason": "eos", "score": 0.25}] * 3 + [{"verdict": "format_error", "score": 0.0}]
    msg = explain_end({"solved": False}, wrong, 512)
    assert msg.startswith("3/4 attempts ended in wrong_answer, best score 0.25:") and "--budget" in msg
    fmt = [{"verdict": "format_error", "finish_reason": "eos", "score": 0.0}] * 2
    assert "no program could be read" in explain_end({"solved": False}, fmt, 512)
    assert explain_end({"solved": False, "stop_reason": "max_time"}, wrong, 512).startswith("the --max-time budget ran out; ")
    assert explain_end({"solved": True}, cut, 128) == ""
    assert explain_end({"solved": False}, [], 128) == "no attempt was judged"


def test_small_helpers() -> None:
    assert fmt_duration(187) == "3:07" and fmt_duration(3730) == "1:02:10"
    assert counts_text({"b": 1, "a": 1, "c": 3}) == "c 3, a 1, b 1"
    assert interrupted_hint(Path("runs/x")) == "interrupted — continue with `sdpo-ttt solve --resume runs/x`"
    assert interrupted_hint(None) == "interrupted before the run started: no attempt was made"


def test_plain_reporter_one_line_per_batch() -> None:
    out = io.StringIO()
    rep = PlainReporter(Console(file=out, width=300), quiet=False, clock=lambda: 0.0)
    rep.start(8, 0)
    rep.attempts([_attempt("wrong_answer", "x")] * 4, 4, 0.25)
    rep.step(0, {"loss": 0.5, "grad_norm": 1.0})
    assert out.getvalue().splitlines() == [
        "attempts 4/8  passed 0  best score 0.25  run totals: wrong_answer 4  last batch: wrong_answer 4",
        "  step 0: loss 0.5  grad norm 1",
    ]
    quiet = io.StringIO()
    rep = PlainReporter(Console(file=quiet), quiet=True)
    rep.start(8, 0)
    rep.attempts([_attempt("wrong_answer")], 1, 0.0)
    assert quiet.getvalue() == ""


def test_loop_reports_phases_and_tokens(tmp_path: Path) -> None:
    from sdpo_ttt.config.tree import SolveConfig
    from sdpo_ttt.run.loop import run_discovery
    from sdpo_ttt.problem.schema import load_problem
    from sdpo_ttt.run.rundir import RunDir
    from tests.fakes import FakePolicy, FakeSandbox, program

    class Recorder(_Events):
        def __init__(self) -> None:
            super().__init__(clock=lambda: 0.0)
            self.phases: list[tuple[str, int, int, int]] = []

        def phase(self, name: str, step: int, n: int, token_cap: int, part=None) -> None:
            super().phase(name, step, n, token_cap, part)
            self.phases.append((name, step, n, token_cap))

    problem = load_problem(REPO / "problems" / "sum-two-ints" / "problem.json")
    cfg = SolveConfig.model_validate({"strategy": "multi-turn", "budget": 4, "batch_size": 2, "max_new_tokens": 16})
    run = RunDir.create(tmp_path / "run", cfg.model_dump(mode="json"), problem.to_json())
    rec = Recorder()
    run_discovery(problem, cfg, run, FakePolicy([program(x) for x in "abcd"], length_cut={3}), FakeSandbox(), reporter=rec)
    assert rec.run_dir == run.path
    assert rec.phases == [("sampling", 0, 2, 32), ("judging", 0, 2, 0), ("update", 0, 2, 0),
                          ("sampling", 1, 2, 32), ("judging", 1, 2, 0)]  # no update after the last batch
    assert rec.view.tokens_total == sum(a["completion_tokens"] for a in run.read_attempts()) == 5 + 5 + 5 + 16
    assert rec.view.cut_off == 1 and rec.view.seen == 4


def test_ctrl_c_prints_the_resume_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    import sdpo_ttt.run.solve
    from sdpo_ttt.cli import app

    def interrupted(problem, cfg, *, run_dir=None, reporter=None, **kw):
        reporter.opened(run_dir)
        reporter.start(4, 0)
        raise KeyboardInterrupt

    monkeypatch.setattr(sdpo_ttt.run.solve, "solve", interrupted)
    run = tmp_path / "run"
    r = CliRunner().invoke(app, ["solve", str(REPO / "problems" / "sum-two-ints"), "--run-dir", str(run), "--quiet"])
    assert r.exit_code == 130
    assert f"interrupted — continue with `sdpo-ttt solve --resume {run}`" in r.output


def test_sigterm_restores_the_cursor() -> None:
    script = textwrap.dedent("""
        import os, signal, sys, time
        from rich.console import Console
        from sdpo_ttt.cli.display import LiveReporter
        rep = LiveReporter(Console(file=sys.stdout, force_terminal=True, width=100))
        rep.start(8, 0)
        sys.stdout.flush()
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)
        print("not reached")
    """)
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, cwd=REPO, timeout=60)
    assert r.returncode == -15  # still dies of SIGTERM
    out = r.stdout.decode()
    assert "\x1b[?25l" in out and out.rindex("\x1b[?25h") > out.index("\x1b[?25l")  # hidden, then shown again
    assert "not reached" not in out


def test_sampling_reports_every_generated_token(tiny_model_dir: Path) -> None:
    """Policy.sample's progress calls add up to the completion tokens, rows that stopped early included."""
    import torch

    from sdpo_ttt.config.policy import PolicyConfig
    from sdpo_ttt.policy.model import Policy

    torch.set_num_threads(1)
    policy = Policy.load(PolicyConfig(model=str(tiny_model_dir), device="cpu", lora_rank=2, lora_alpha=4), seed=0)
    calls: list[int] = []
    prompt = policy.chat_ids([{"role": "user", "content": "hi"}])
    comps = policy.sample([prompt] * 3, max_new_tokens=12, seed=1, progress=calls.append, batch_size=2)
    assert sum(calls) == sum(len(c.completion_ids) for c in comps)
    assert len(calls) > 2  # reported as decoding goes, not once at the end


def test_token_counter_stops_counting_a_row_after_its_eos() -> None:
    import torch

    from sdpo_ttt.policy.sampling.generate import TokenCounter

    calls: list[int] = []
    counter = TokenCounter(calls.append, rows=3, eos_ids=[0, 9])
    counter.put(torch.tensor([[5, 6, 7]] * 3))  # the prompt: not generated
    for step in ([4, 0, 4], [4, 0, 9], [0, 0, 0], [0, 0, 0]):  # row 1 ends at step 1, row 2 at step 2, row 0 at step 3
        counter.put(torch.tensor(step))
    counter.end()
    assert calls == [3, 2, 1]  # 1 + 2 + 3 = the completion lengths (EOS included); padding after EOS never counted


def test_sdpo_reports_teacher_and_update_per_micro_batch(tiny_model_dir: Path, tmp_path: Path) -> None:
    """With SDPO the display sees the teacher pass and the student update of every micro-batch."""
    import torch

    from sdpo_ttt.run.loop import run_discovery
    from sdpo_ttt.problem.schema import load_problem
    from sdpo_ttt.run.rundir import RunDir
    from tests.fakes import FakeSandbox
    from tests.fakes import load_policy, tiny_config

    torch.set_num_threads(1)

    class Recorder(_Events):
        def __init__(self) -> None:
            super().__init__(clock=lambda: 0.0)
            self.seen: list[tuple[str, int, tuple[int, int] | None]] = []

        def phase(self, name: str, step: int, n: int, token_cap: int, part=None) -> None:
            super().phase(name, step, n, token_cap, part)
            self.seen.append((name, step, part))

    cfg = tiny_config(tiny_model_dir, strategy="sdpo", budget=4, batch_size=2, micro_batch_size=1)
    problem = load_problem(REPO / "problems" / "sum-two-ints" / "problem.json")
    run = RunDir.create(tmp_path / "run", cfg.flat(), problem.to_json())
    rec = Recorder()
    run_discovery(problem, cfg, run, load_policy(cfg), FakeSandbox(), reporter=rec)
    assert rec.seen == [("sampling", 0, None), ("judging", 0, None), ("update", 0, None),
                        ("teacher", 0, (1, 2)), ("update", 0, (1, 2)), ("teacher", 0, (2, 2)), ("update", 0, (2, 2)),
                        ("sampling", 1, None), ("judging", 1, None)]
