"""compare: grid planning, skip/resume/refuse logic (fast, with a stand-in for solve), and one real tiny grid (slow)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sdpo_ttt.grid.cells import cell_state, parse_strategies, plan_grid
from sdpo_ttt.grid.compare import run_grid
from sdpo_ttt.config.tree import SolveConfig
from sdpo_ttt.errors import UserError
from sdpo_ttt.run.rundir import RunDir
from solve_stub import finish, open_run

REPO = Path(__file__).resolve().parent.parent
PROBLEMS = REPO / "problems"


def _base(**kw) -> SolveConfig:
    return SolveConfig(budget=4, batch_size=2, model="tiny", sandbox="local", **kw)


def test_plan_grid_layout_and_configs(tmp_path: Path) -> None:
    cells = plan_grid([PROBLEMS / "sum-two-ints", PROBLEMS / "fizzbuzz" / "problem.json"], ["sdpo", "best-of-k", "multi-turn"],
                      [0, 1], tmp_path, _base())
    assert len(cells) == 12
    # base-model strategies first (one shared model), sdpo last
    assert [c.strategy for c in cells][:8] == ["best-of-k"] * 4 + ["multi-turn"] * 4 and cells[-1].strategy == "sdpo"
    c = next(c for c in cells if c.strategy == "best-of-k" and c.seed == 1 and c.problem_id == "sum-two-ints")
    assert c.path == tmp_path / "sum-two-ints" / "best-of-k" / "seed1"
    assert c.config.stop_on_success is False and c.config.seed == 1 and c.config.budget == 4
    assert all(c.config.stop_on_success for c in cells if c.strategy != "best-of-k")
    stop = plan_grid([PROBLEMS / "sum-two-ints"], ["best-of-k"], [0], tmp_path, _base(), best_of_k_fixed_n=False)
    assert stop[0].config.stop_on_success is True


def test_a_cell_killed_while_its_run_dir_was_created_starts_again(tmp_path: Path) -> None:
    """A SIGKILL inside RunDir.create can leave only write_atomic's temp file of config.json: that is a new cell."""
    [cell] = plan_grid([PROBLEMS / "sum-two-ints"], ["best-of-k"], [0], tmp_path, _base())
    cell.path.mkdir(parents=True)
    (cell.path / ".config.json.abc123").write_text('{"budg')
    assert cell_state(cell) == ("new", 0)
    assert not any(cell.path.iterdir())
    RunDir.create(cell.path, {"a": 1}, "{}")  # and the run directory can be made there
    # anything else that is not a run directory is still refused, not deleted
    other = tmp_path / "x"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="already holds files"):
        RunDir.create(other, {"a": 1}, "{}")


def test_bad_inputs_are_user_errors(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="unknown strategy"):
        parse_strategies("sdpo,greedy")
    assert parse_strategies(" sdpo , best-of-k,sdpo") == ["sdpo", "best-of-k"]
    with pytest.raises(UserError, match="more than once"):
        plan_grid([PROBLEMS / "sum-two-ints", PROBLEMS / "sum-two-ints"], ["sdpo"], [0], tmp_path, _base())
    with pytest.raises(UserError, match="no problem files"):
        plan_grid([tmp_path], ["sdpo"], [0], tmp_path, _base())


class FakeSolve:
    """Stands in for solve(): writes a run directory the way the loop does, solving at `solve_at` (1-based) or never."""

    def __init__(self, solve_at: dict[str, int | None]) -> None:
        self.solve_at, self.calls = solve_at, []

    def __call__(self, problem_path, cfg, *, run_dir=None, resume=None, reporter=None, announce=None, policy=None,
                 workers=1, threads_hint=None):
        run, cfg, problem_id = open_run(problem_path, cfg, run_dir, resume)
        self.calls.append(("resume" if resume else "new", run.path, policy))
        at = self.solve_at.get(cfg.strategy)
        done = len(run.read_attempts())
        for i in range(done, cfg.budget):
            passed = at is not None and i + 1 >= at
            run.append_attempt({"step": i // 2, "index": i, "passed": passed, "score": float(passed)})
            reporter.attempts([], i + 1, float(passed))
            if passed and cfg.stop_on_success:
                break
        solved = at is not None and at <= len(run.read_attempts()) and cfg.stop_on_success
        return finish(run, cfg, problem_id, at if solved else None), run


class SharedModel(str):
    """The shared base model as the grid sees it: compares equal to "SHARED", records when it is closed."""

    def __new__(cls, fake: FakeSolve) -> "SharedModel":
        self = super().__new__(cls, "SHARED")
        self.fake = fake
        return self

    def close(self) -> None:  # Policy.close: shuts its vLLM engine down
        self.fake.closed_after.append(len(self.fake.calls))


@pytest.fixture()
def fake(monkeypatch) -> FakeSolve:
    f = FakeSolve({"sdpo": 2, "best-of-k": 3, "multi-turn": None})
    f.closed_after = []
    monkeypatch.setattr("sdpo_ttt.run.solve.solve", f)
    monkeypatch.setattr("sdpo_ttt.grid.cells._load_policy", lambda cfg: SharedModel(f))
    return f


def test_run_grid_skips_finished_resumes_unfinished_and_shares_the_base_model(tmp_path: Path, fake: FakeSolve) -> None:
    cells = plan_grid([PROBLEMS / "sum-two-ints"], ["sdpo", "best-of-k", "multi-turn"], [0, 1], tmp_path, _base())
    events = []

    class Rec:
        def grid_start(self, cells, todo): events.append(("grid", len(cells), todo))
        def run_start(self, cell, action, used): events.append(("start", cell.name, action, used))
        def run_attempts(self, cell, used, best): pass
        def run_done(self, cell, action, summary): events.append(("done", cell.name, action))
        def message(self, text): pass

    out = run_grid(cells, progress=Rec())
    assert [o.action for o in out] == ["started"] * 6 and events[0] == ("grid", 6, 24)
    # best-of-k and multi-turn share one loaded model; sdpo gets a fresh one (solve loads it)
    assert [p for _, _, p in fake.calls] == ["SHARED"] * 4 + [None] * 2
    assert fake.closed_after == [4]  # closed explicitly after the base-model runs, before the sdpo runs start
    by = {o.cell.name: o.summary for o in out}
    assert by["sum-two-ints/sdpo/seed0"]["discovery_attempt"] == 2
    assert by["sum-two-ints/best-of-k/seed0"]["attempts_used"] == 4  # fixed n: no stop at the pass at 3

    # kill one run half way: drop its summary and the attempts after its first step; a re-run resumes it, skips the rest
    victim = tmp_path / "sum-two-ints" / "multi-turn" / "seed1"
    run = RunDir.open_existing(victim)
    run.summary_path.unlink()
    run.truncate_after_step(0)
    assert len(run.read_attempts()) == 2 and not run.is_finished()
    fake.calls.clear()
    events.clear()
    out = run_grid(cells, progress=Rec())
    assert [o.action for o in out].count("skipped") == 5
    assert [(kind, path) for kind, path, _ in fake.calls] == [("resume", victim)]
    assert ("start", "sum-two-ints/multi-turn/seed1", "resumed", 2) in events and events[0] == ("grid", 6, 2)


def test_a_grid_made_with_other_options_is_refused(tmp_path: Path, fake: FakeSolve) -> None:
    run_grid(plan_grid([PROBLEMS / "sum-two-ints"], ["sdpo"], [0], tmp_path, _base()))
    other = plan_grid([PROBLEMS / "sum-two-ints"], ["sdpo"], [0], tmp_path, SolveConfig(budget=8, batch_size=2, model="tiny"))
    with pytest.raises(UserError, match="budget = 4"):
        cell_state(other[0])
    # the sandbox does not change what a run measures
    same = plan_grid([PROBLEMS / "sum-two-ints"], ["sdpo"], [0], tmp_path, SolveConfig(budget=4, batch_size=2, model="tiny", sandbox="docker"))
    assert cell_state(same[0]) == ("finished", 2)
    junk = tmp_path / "sum-two-ints" / "best-of-k" / "seed0"
    junk.mkdir(parents=True)
    (junk / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="not a run directory"):
        cell_state(plan_grid([PROBLEMS / "sum-two-ints"], ["best-of-k"], [0], tmp_path, _base())[0])


def test_report_command_rebuilds_from_run_dirs(tmp_path: Path, fake: FakeSolve) -> None:
    run_grid(plan_grid([PROBLEMS / "sum-two-ints"], ["sdpo", "best-of-k"], [0, 1], tmp_path, _base()))
    r = subprocess.run([sys.executable, "-m", "sdpo_ttt.cli", "report", str(tmp_path), "--n-boot", "100"],
                       capture_output=True, text=True, cwd=REPO, env={**os.environ, "COLUMNS": "200"})
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "report" / "report.html").exists() and "sdpo" in r.stdout and "best-of-k" in r.stdout
    r = subprocess.run([sys.executable, "-m", "sdpo_ttt.cli", "report", str(tmp_path / "nothing")], capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 2 and "no such folder" in " ".join(r.stderr.split())


# ---------------------------------------------------------------- the real thing, tiny
@pytest.mark.slow
@pytest.mark.sandbox
def test_real_compare_tiny_grid(tmp_path: Path, tiny_model_dir: Path) -> None:
    out = tmp_path / "cmp"
    # the tiny random model, 2 strategies x 2 seeds, a tiny budget: the grid, its report and a re-run that skips
    args = [sys.executable, "-m", "sdpo_ttt.cli", "compare", str(PROBLEMS / "sum-two-ints"), "--out", str(out), "--model", str(tiny_model_dir),
            "--strategies", "sdpo,best-of-k", "--budget", "2", "--batch-size", "2",
            "--max-new-tokens", "32", "--seeds", "2", "--sandbox", "auto", "--sandbox-workers", "1", "--n-boot", "200"]
    # one torch thread: on a shared, loaded 2-core machine OpenMP threads that spin-wait make sampling ~10x slower
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "200"}
    r = subprocess.run(args, capture_output=True, text=True, cwd=REPO, timeout=600, env=env)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    print(r.stdout, r.stderr, sep="\n")
    for s in ("best-of-k", "sdpo"):
        for seed in (0, 1):
            run = RunDir.open_existing(out / "sum-two-ints" / s / f"seed{seed}")
            summary = run.read_summary()
            assert summary["status"] in ("solved", "budget_exhausted") and summary["strategy"] == s
            assert summary["seed"] == seed and run.read_config()["model"] == str(tiny_model_dir)
            assert len(run.read_attempts()) == summary["attempts_used"]
    for name in ("curves.png", "summary.md", "summary.csv", "summary.json", "report.html"):
        assert (out / "report" / name).exists(), name
    # the table agrees with the run directories
    data = json.loads((out / "report" / "summary.json").read_text())
    for g in data["groups"]:
        runs = [x for x in data["runs"] if x["strategy"] == g["strategy"]]
        assert g["samples"] == sum(x["attempts_used"] for x in runs)
        assert g["solved_runs"] == sum(x["passes"] > 0 for x in runs)
    # a re-run skips every finished run (not a byte of any run directory changes) and only rebuilds the report
    runs = [p for p in out.rglob("*") if p.is_file() and "report" not in p.relative_to(out).parts]
    before = {p: p.read_bytes() for p in runs}
    r2 = subprocess.run(args, capture_output=True, text=True, cwd=REPO, timeout=300, env=env)
    assert r2.returncode == 0, r2.stderr[-3000:]
    assert r2.stderr.count("skipped") == 4, r2.stderr
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file() and "report" not in p.relative_to(out).parts} == before


def test_run_grid_with_workers_runs_every_cell_in_worker_processes(tmp_path: Path, fake: FakeSolve) -> None:
    cells = plan_grid([PROBLEMS / "sum-two-ints"], ["best-of-k", "sdpo"], [0, 1], tmp_path, _base())
    events: list[tuple] = []

    class Rec:
        def grid_start(self, cells, todo): pass
        def run_start(self, cell, action, used): pass
        def run_attempts(self, cell, used, best): pass
        def run_done(self, cell, action, summary): events.append((cell.name, action, summary.get("status")))
        def message(self, text): pass

    out = run_grid(cells, progress=Rec(), workers=2, mp_context="fork")  # fork: the workers see the fake solve
    assert [o.action for o in out] == ["started"] * 4 and fake.calls == []  # nothing ran in this process
    assert sorted(events) == sorted((c.name, "started", RunDir(c.path).read_summary()["status"]) for c in cells)
    assert all(RunDir(c.path).is_finished() for c in cells)
    assert RunDir(cells[-1].path).read_summary()["discovery_attempt"] == 2  # sdpo solves at 2 in the fake
    assert [o.action for o in run_grid(cells, workers=2, mp_context="fork")] == ["skipped"] * 4
