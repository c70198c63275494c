"""End to end on CPU: the tiny real model, the real sandbox (Docker when it can be had), real LoRA steps.

One uninterrupted run, one run killed for real (SIGKILL) after its first checkpoint and then resumed:
the resumed run must give the same attempts and the same adapter as the uninterrupted one.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from sdpo_ttt.run.rundir import RunDir

pytestmark = [pytest.mark.slow, pytest.mark.model]

REPO = Path(__file__).resolve().parent.parent
PROBLEM = REPO / "problems" / "shortest-paths" / "problem.json"  # never solved by the 135M model
OPTIONS = [
    "--model", "smollm2-135m", "--budget", "12", "--batch-size", "4", "--max-new-tokens", "48",
    "--lr", "1e-3", "--seed", "3", "--lora-rank", "4", "--lora-alpha", "8", "--sandbox-workers", "2",
]


def _sandbox_kind() -> str:
    from sdpo_ttt.sandbox import open_sandbox

    try:
        with open_sandbox("docker", workers=1):
            return "docker"
    except Exception:
        return "local"


@pytest.fixture(scope="module")
def sandbox_kind() -> str:
    return _sandbox_kind()


def _containers_of(pid: int) -> list[str]:
    """Sandbox containers (running or not) owned by process `pid` of this host."""
    import docker

    from sdpo_ttt.sandbox.docker_container import LABEL_PID

    client = docker.from_env()
    return [c.name for c in client.containers.list(all=True, filters={"label": f"{LABEL_PID}={pid}"})]


def _solve(args: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sdpo_ttt.cli", "solve", *args], capture_output=True, text=True, cwd=REPO, **kw)


@pytest.fixture(scope="module")
def full_run(tmp_path_factory, sandbox_kind: str) -> Path:
    run = tmp_path_factory.mktemp("e2e") / "full"
    r = _solve([str(PROBLEM), *OPTIONS, "--sandbox", sandbox_kind, "--run-dir", str(run), "--json"], timeout=900)
    assert r.returncode == 1, r.stderr[-3000:]  # budget spent, unsolved
    summary = json.loads(r.stdout)
    assert summary["run_dir"] == str(run)
    return run


def test_run_is_complete_and_consistent(full_run: Path) -> None:
    run = RunDir.open_existing(full_run)
    summary, attempts, metrics = run.read_summary(), run.read_attempts(), run.read_metrics()
    assert summary["status"] == "budget_exhausted" and not summary["solved"]
    assert summary["attempts_used"] == len(attempts) == 12
    assert [a["index"] for a in attempts] == list(range(12))
    assert [a["step"] for a in attempts] == [0] * 4 + [1] * 4 + [2] * 4
    assert summary["best_score"] == max(a["score"] for a in attempts)
    for a in attempts:
        assert a["completion_tokens"] == len(a["completion_ids"]) > 0
        assert not a["passed"] and a["feedback"]  # every failed attempt carries feedback for the teacher
    # two updates (after steps 0 and 1); none after the last batch, which exhausted the budget
    assert [m["step"] for m in metrics] == [0, 1]
    for m in metrics:
        assert torch.isfinite(torch.tensor(m["loss"])) and m["loss"] != 0.0
        assert m["grad_norm"] > 0
        assert m["health/frac_with_feedback"] == 1.0
    assert not (full_run / "solution.py").exists()


def test_lora_weights_changed(full_run: Path) -> None:
    student = load_file(str(full_run / "checkpoint" / "student" / "adapter_model.safetensors"))
    b_norm = sum(float(t.abs().sum()) for k, t in student.items() if "lora_B" in k)
    assert b_norm > 0  # peft initialises B to zero: any non-zero B is learned
    teacher = load_file(str(full_run / "checkpoint" / "teacher" / "adapter_model.safetensors"))
    assert sum(float(t.abs().sum()) for k, t in teacher.items() if "lora_B" in k) > 0  # the EMA teacher moved too


def test_killed_run_resumes_to_the_same_result(full_run: Path, tmp_path: Path, sandbox_kind: str) -> None:
    run = tmp_path / "killed"
    proc = subprocess.Popen(
        [sys.executable, "-m", "sdpo_ttt.cli", "solve", str(PROBLEM), *OPTIONS, "--sandbox", sandbox_kind, "--run-dir", str(run), "--quiet"],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    deadline = time.time() + 600
    while not (run / "checkpoint" / "state.json").exists():  # first step checkpointed
        assert proc.poll() is None and time.time() < deadline, "the run ended before its first checkpoint"
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not RunDir(run).is_finished() and RunDir(run).read_summary() is None

    r = _solve(["--resume", str(run), "--json"], timeout=900)
    assert r.returncode == 1, r.stderr[-3000:]
    if sandbox_kind == "docker":  # the SIGKILLed owner left its containers behind: the resumed run's start reaped them
        assert _containers_of(proc.pid) == []
    key = lambda a: (a["step"], a["index"], a["completion_ids"], a["verdict"], a["score"])  # noqa: E731
    assert [key(a) for a in RunDir(run).read_attempts()] == [key(a) for a in RunDir(full_run).read_attempts()]
    for name in ("student", "teacher"):
        a = load_file(str(full_run / "checkpoint" / name / "adapter_model.safetensors"))
        b = load_file(str(run / "checkpoint" / name / "adapter_model.safetensors"))
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert RunDir(run).read_summary()["attempts_used"] == 12


def test_bad_problem_file_exit_2_and_nothing_written(tmp_path: Path) -> None:
    bad = tmp_path / "problem.json"
    bad.write_text('{"schema": 1, "id": "x", "title": "t", "statement": "s", "kind": "stdio", "tests": []}')
    r = _solve([str(bad), "--run-dir", str(tmp_path / "run"), "--model", "smollm2-135m"], timeout=120)
    assert r.returncode == 2
    assert "tests" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "run").exists()
