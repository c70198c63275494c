"""batch: job expansion and manifest (pure), a fake-solve batch (failures, skips, retries, summary, report),
a real kill mid-batch and its resume (tiny model), and Ray against local (same run directories for the same seeds)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sdpo_ttt.grid import Manifest, grid_points, parse_grid, plan_batch, point_tag, run_batch
from sdpo_ttt.config.tree import SolveConfig
from sdpo_ttt.errors import UserError
from sdpo_ttt.run.rundir import RunDir
from solve_stub import finish, open_run

REPO = Path(__file__).resolve().parent.parent
PROBLEMS = REPO / "problems"


def _base(**kw) -> SolveConfig:
    return SolveConfig(budget=4, batch_size=2, model="tiny", sandbox="local", **kw)


def _problems(tmp: Path, names=("sum-two-ints", "fizzbuzz"), broken: bool = True) -> Path:
    root = tmp / "problems"
    for n in names:
        shutil.copytree(PROBLEMS / n, root / n)
    if broken:
        (root / "zz-broken").mkdir(parents=True)
        (root / "zz-broken" / "problem.json").write_text('{"id": "zz-broken", "tests": [')
    return root


# ---------------------------------------------------------------- pure: expansion and manifest
def test_grid_and_points() -> None:
    g = parse_grid(["lr=1e-4,3e-4", "temperature=0.7,1.0,0.7", "max-new-tokens=64"])
    assert g == {"lr": [1e-4, 3e-4], "temperature": [0.7, 1.0], "max_new_tokens": [64]}
    pts = grid_points({k: g[k] for k in ("lr", "temperature")})
    assert len(pts) == 4 and pts[0] == {"lr": 1e-4, "temperature": 0.7} and grid_points({}) == [{}]
    assert point_tag(pts[1]) == "lr=0.0001,temperature=1.0" and point_tag({}) == ""
    assert point_tag({"model": "Qwen/Qwen3-8B"}) == "model=Qwen--Qwen3-8B"
    for bad, match in ((["seed=3"], "--seeds"), (["strategy=sdpo"], "--strategy"), (["nope=1"], "unknown option 'nope'"),
                       (["lr"], "key=v1,v2"), (["stop-on-success=true"], "--best-of-k-fixed-n")):
        with pytest.raises(UserError, match=match):
            parse_grid(bad)
    with pytest.raises(UserError, match="no values"):
        parse_grid(["lr="])
    with pytest.raises(UserError, match="lr given twice"):
        parse_grid(["lr=1", "lr=2"])


def test_plan_batch_expands_problem_seed_point_and_skips_broken_files(tmp_path: Path) -> None:
    root = _problems(tmp_path)
    out = tmp_path / "out"
    plan = plan_batch([root], ["best-of-k"], [0, 1, 2], out, _base(), parse_grid(["temperature=0.7,1.0"]))
    assert len(plan.jobs) == 2 * 3 * 2  # grid point x problem x seed
    assert [b["path"] for b in plan.broken] == [str(root / "zz-broken" / "problem.json")] and "not valid JSON" in plan.broken[0]["error"]
    j = plan.jobs[0]
    assert j.id == "temperature=0.7/fizzbuzz/best-of-k/seed0" and j.cell.path == out.resolve() / j.id
    assert {x.cell.config.sampling.temperature for x in plan.jobs} == {0.7, 1.0} and all(x.cell.config.budget == 4 for x in plan.jobs)
    assert len({x.id for x in plan.jobs}) == len(plan.jobs)
    # no grid: compare's layout exactly
    plain = plan_batch([root / "fizzbuzz"], ["sdpo"], [0], out, _base())
    assert [x.id for x in plain.jobs] == ["fizzbuzz/sdpo/seed0"] and plain.broken == []
    with pytest.raises(UserError, match=r"^--temperature -1.0 \(set in --grid temperature=-1.0\): input should be greater than or equal to 0"):
        plan_batch([root], ["sdpo"], [0], out, _base(), {"temperature": [-1.0]})
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no problem files"):
        plan_batch([tmp_path / "empty"], ["sdpo"], [0], out, _base())
    with pytest.raises(UserError, match="no problem file loads"):
        plan_batch([tmp_path / "typo", root / "zz-broken"], ["sdpo"], [0], out, _base())


def test_manifest_is_append_only_and_survives_a_torn_line(tmp_path: Path) -> None:
    m = Manifest(tmp_path / "jobs.jsonl")
    m.append("a", "pending", problem_id="p")
    m.append("a", "failed", error="boom")
    m.append("b", "pending")
    with open(m.path, "ab") as f:
        f.write(b'{"job": "b", "state": "runn')  # a kill in the middle of a write
    m2 = Manifest(m.path)  # a new driver: its first line starts on a line of its own
    m2.append("b", "done", attempts_used=4)
    m2.append("a", "running")
    view = m2.latest()
    assert view["b"]["state"] == "done" and view["b"]["attempts_used"] == 4
    assert view["a"]["state"] == "running" and "error" not in view["a"] and view["a"]["problem_id"] == "p"
    assert len(m2.read()) == 5


# ---------------------------------------------------------------- a batch with a stand-in for solve
class FakeSolve:
    """Writes a run directory the way the loop does; fizzbuzz seed 1 crashes (until `crash` is cleared)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Path]] = []
        self.crash = True

    def __call__(self, problem_path, cfg, *, run_dir=None, resume=None, reporter=None, announce=None, policy=None,
                 workers=1, threads_hint=None):
        run, cfg, pid = open_run(problem_path, cfg, run_dir, resume)
        self.calls.append(("resume" if resume else "new", run.path))
        if self.crash and pid == "fizzbuzz" and cfg.seed == 1:
            raise RuntimeError("CUDA out of memory (pretend)")
        for i in range(len(run.read_attempts()), cfg.budget):
            run.append_attempt({"step": i // 2, "index": i, "passed": i == 2, "score": float(i == 2)})
            if i == 2:
                break
        return finish(run, cfg, pid, 3 if len(run.read_attempts()) == 3 else None), run


def test_batch_records_failures_skips_and_retries(tmp_path: Path, monkeypatch) -> None:
    fake = FakeSolve()
    monkeypatch.setattr("sdpo_ttt.run.solve.solve", fake)
    root, out = _problems(tmp_path), tmp_path / "out"
    plan = plan_batch([root], ["sdpo"], [0, 1], out, _base())
    events = []
    res = run_batch(plan, on_event=lambda job, rec: events.append((job, rec["state"])))
    assert len(fake.calls) == 4  # the crash did not stop the others
    view = Manifest(out / "jobs.jsonl").latest()
    assert view["fizzbuzz/sdpo/seed1"]["state"] == "failed" and "out of memory" in view["fizzbuzz/sdpo/seed1"]["error"]
    assert "RuntimeError" in view["fizzbuzz/sdpo/seed1"]["traceback"]
    assert sum(v["state"] == "done" for v in view.values()) == 3
    assert view[f"problem-file:{root / 'zz-broken' / 'problem.json'}"]["state"] == "failed"
    s = json.loads((out / "batch-summary.json").read_text())
    assert s["counts"]["done"] == 3 and s["counts"]["failed"] == 1 and len(s["skipped_problem_files"]) == 1
    row = next(p for p in s["problems"] if p["problem_id"] == "sum-two-ints")
    assert row["solved_runs"] == 2 and row["discovery_attempts"] == [3, 3]
    md = (out / "batch-summary.md").read_text()
    assert "zz-broken" in md and "out of memory" in md and res.summary == s

    # re-run: done jobs skipped, the failed one too (it is kept, with its error)
    fake.calls.clear()
    fake.crash = False
    res = run_batch(plan)
    assert fake.calls == [] and len(res.skipped) == 4
    # --retry-failed: only the failed job, resumed from the run directory it left
    res = run_batch(plan, retry_failed=True)
    assert fake.calls == [("resume", out.resolve() / "fizzbuzz/sdpo/seed1")]
    assert Manifest(out / "jobs.jsonl").latest()["fizzbuzz/sdpo/seed1"]["state"] == "done"
    # the report machinery reads the batch folder
    r = subprocess.run([sys.executable, "-m", "sdpo_ttt.cli", "report", str(out), "--n-boot", "50"], capture_output=True,
                       text=True, cwd=REPO, env={**os.environ, "COLUMNS": "200"})
    assert r.returncode == 0, r.stderr
    assert (out / "report" / "report.html").exists() and "sum-two-ints" in r.stdout


def test_a_second_driver_on_the_same_out_is_refused(tmp_path: Path, monkeypatch) -> None:
    from sdpo_ttt.grid import batch_lock

    with batch_lock(tmp_path):
        with pytest.raises(UserError, match="another batch is running"):
            with batch_lock(tmp_path):
                pass


# ---------------------------------------------------------------- the real thing, tiny
TINY = ["--strategy", "best-of-k", "--budget", "2", "--batch-size", "2", "--max-new-tokens", "16",
        "--sandbox", "local", "--sandbox-workers", "1", "--no-report"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "200", "RAY_USAGE_STATS_ENABLED": "0"}


def _attempts(run: Path) -> list[tuple]:
    return [(a["index"], a["text"], a["code"], a["completion_ids"], a["passed"], a["verdict"]) for a in RunDir(run).read_attempts()]


@pytest.mark.slow
@pytest.mark.sandbox
def test_resume_after_a_real_kill_mid_batch(tmp_path: Path, tiny_model_dir: Path) -> None:
    root, out = _problems(tmp_path), tmp_path / "out"
    args = [sys.executable, "-m", "sdpo_ttt.cli", "batch", str(root), "--out", str(out), "--seeds", "3", "--model", str(tiny_model_dir),
            *TINY]
    p = subprocess.Popen([*args, "--workers", "2"], cwd=REPO, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         start_new_session=True)
    manifest = Manifest(out / "jobs.jsonl")
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and p.poll() is None:
        if "done" in [r["state"] for r in manifest.latest().values()]:
            os.killpg(p.pid, signal.SIGSTOP)  # freeze driver and workers, then look: the states cannot move under us
            states = [r["state"] for r in manifest.latest().values()]
            if "done" in states and "running" in states:
                break
            os.killpg(p.pid, signal.SIGCONT)
        time.sleep(0.02)
    assert p.poll() is None, p.stdout.read().decode()[-3000:]
    os.killpg(p.pid, signal.SIGKILL)  # driver and workers at once: nobody cleans up
    p.wait()
    before = manifest.latest()
    done_before = {j for j, r in before.items() if r["state"] == "done"}
    assert done_before and any(r["state"] == "running" for r in before.values())
    # nothing half-written looks finished: a running job's run directory is unfinished, or (the kill fell between
    # its summary and its manifest line) whole: its summary agrees with its attempts
    for j, r in before.items():
        if r["state"] == "running" and RunDir(out / j).is_finished():
            run = RunDir(out / j)
            assert run.read_summary()["attempts_used"] == len(run.read_attempts()) == 2, j

    r = subprocess.run(args, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=300)
    assert r.returncode == 1, r.stdout[-2000:] + r.stderr[-3000:]  # 1: the broken problem file
    assert "skipping broken problem file" in r.stderr and "zz-broken" in r.stderr
    after = manifest.latest()
    jobs = {j: v for j, v in after.items() if not j.startswith("problem-file:")}
    assert len(jobs) == 6 and all(v["state"] == "done" for v in jobs.values()), after
    for j in done_before:  # finished jobs were skipped, not run again
        assert not any(rec["job"] == j and rec["state"] == "running" and rec["time"] > before[j]["time"] for rec in manifest.read())
    for j in jobs:
        run = RunDir(out / j)
        assert run.is_finished() and run.read_summary()["attempts_used"] == 2 and len(run.read_attempts()) == 2
    s = json.loads((out / "batch-summary.json").read_text())
    assert s["counts"]["done"] == 6 and {p["problem_id"] for p in s["problems"]} == {"sum-two-ints", "fizzbuzz"}
    print(r.stderr[-1500:], r.stdout[-1500:])


@pytest.mark.slow
@pytest.mark.sandbox
def test_ray_executor_makes_the_same_run_dirs_as_local(tmp_path: Path, tiny_model_dir: Path, monkeypatch) -> None:
    ray = pytest.importorskip("ray", reason="ray is not installed (pip install 'sdpo-ttt[ray]')")
    for k in ("OMP_NUM_THREADS", "RAY_USAGE_STATS_ENABLED"):
        monkeypatch.setenv(k, ENV[k])
    root = _problems(tmp_path, ("sum-two-ints",), broken=False)
    cfg = SolveConfig(model=str(tiny_model_dir), strategy="best-of-k", budget=2, batch_size=2, max_new_tokens=16, sandbox="local",
                      sandbox_workers=1)
    local = plan_batch([root], ["best-of-k"], [0, 1], tmp_path / "local", cfg)
    run_batch(local)
    ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False)
    try:
        remote = plan_batch([root], ["best-of-k"], [0, 1], tmp_path / "ray", cfg)
        res = run_batch(remote, executor="ray")
    finally:
        ray.shutdown()
    assert res.summary["counts"]["done"] == 2, res.summary
    view = Manifest(tmp_path / "ray" / "jobs.jsonl").latest()
    assert {v["state"] for v in view.values()} == {"done"} and all(v.get("executor") == "ray" for v in view.values()), view
    for a, b in zip(local.jobs, remote.jobs, strict=True):
        assert a.id == b.id
        ra, rb = RunDir(a.cell.path), RunDir(b.cell.path)
        assert rb.is_finished() and ra.read_config() == rb.read_config()
        assert _attempts(a.cell.path) == _attempts(b.cell.path) and len(_attempts(a.cell.path)) == 2


# ---------------------------------------------------------------- threads: a job's share of the CPUs
def test_a_job_runs_with_its_share_of_the_workers(tmp_path: Path, monkeypatch) -> None:
    from sdpo_ttt.grid.job import execute_job

    seen: list[tuple[int, int | None]] = []

    def fake_solve(problem_path, cfg, *, workers=1, threads_hint=None, **kw):
        seen.append((workers, threads_hint))
        raise RuntimeError("stop here")

    monkeypatch.setattr("sdpo_ttt.run.solve.solve", fake_solve)
    plan = plan_batch([PROBLEMS / "sum-two-ints"], ["sdpo"], [0], tmp_path / "out", _base())
    rec = execute_job(plan.jobs[0].cell, "new", 0, workers=3, threads_hint=2)
    assert seen == [(3, 2)] and rec["state"] == "failed" and rec["error"] == "RuntimeError: stop here"


def test_solve_configures_threads_before_opening_anything(tmp_path: Path, monkeypatch) -> None:
    from sdpo_ttt.policy import threads
    from sdpo_ttt.run.solve import solve

    calls: list[dict] = []

    def configure(**kw):
        calls.append(kw)
        raise KeyError("configured")

    monkeypatch.setattr(threads, "configure", configure)
    with pytest.raises(KeyError, match="configured"):
        solve(PROBLEMS / "sum-two-ints", _base(threads=3), run_dir=tmp_path / "run", workers=2, threads_hint=5)
    with pytest.raises(KeyError, match="configured"):
        solve(PROBLEMS / "sum-two-ints", _base(), run_dir=tmp_path / "run", workers=2, threads_hint=5)
    assert calls == [{"workers": 2, "requested": 3}, {"workers": 2, "requested": 5}]  # --threads wins over the hint
    assert not (tmp_path / "run").exists()


def test_an_in_process_vllm_engine_is_refused_in_a_grid_with_the_fix() -> None:
    """VLLM_ENABLE_V1_MULTIPROCESSING=0 keeps the engine in the grid's process, unreleased between runs."""
    from sdpo_ttt.grid.local import refuse_inprocess_vllm

    with pytest.raises(UserError, match="VLLM_ENABLE_V1_MULTIPROCESSING=0") as e:
        refuse_inprocess_vllm("vllm", {"VLLM_ENABLE_V1_MULTIPROCESSING": "0"})
    assert "unset VLLM_ENABLE_V1_MULTIPROCESSING" in e.value.fix
    refuse_inprocess_vllm("vllm", {"VLLM_ENABLE_V1_MULTIPROCESSING": "1"})
    refuse_inprocess_vllm("vllm", {})
    refuse_inprocess_vllm("hf", {"VLLM_ENABLE_V1_MULTIPROCESSING": "0"})


def test_compare_refuses_an_in_process_vllm_engine_before_planning(tmp_path: Path) -> None:
    env = {**os.environ, "VLLM_ENABLE_V1_MULTIPROCESSING": "0"}
    res = subprocess.run([sys.executable, "-m", "sdpo_ttt.cli", "compare", "two-sum", "--backend", "vllm", "--dtype", "bfloat16",
                          "--out", str(tmp_path / "g")], capture_output=True, text=True, env=env, timeout=120)
    assert res.returncode == 2, res.stderr
    assert "VLLM_ENABLE_V1_MULTIPROCESSING=0" in res.stderr and "fix:" in res.stderr and not (tmp_path / "g").exists()
