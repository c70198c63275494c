"""`sdpo-ttt solve` input errors: one clear message, exit 2, nothing written (no model is loaded).

The CLI's entry point (`sdpo_ttt.cli.main`, which renders errors once) runs in this process: same code path as
the installed command, without a Python start per case."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from sdpo_ttt.cli import main

REPO = Path(__file__).resolve().parent.parent
PROBLEM = REPO / "problems" / "sum-two-ints" / "problem.json"


@dataclass
class Result:
    returncode: int
    stderr: str


@pytest.fixture()
def _solve(monkeypatch, capsys):
    def run(*args: str) -> Result:
        monkeypatch.setattr(sys, "argv", ["sdpo-ttt", "solve", *args])
        with pytest.raises(SystemExit, match=r"^\d*$") as e:  # an exit code (or none), never a message
            main()
        return Result(int(e.value.code or 0), capsys.readouterr().err)

    return run


def test_unknown_option_in_config_file(tmp_path: Path, _solve) -> None:
    cfg = tmp_path / "run.toml"
    cfg.write_text("budget = 8\nlearning_rate = 0.1\n")
    r = _solve(str(PROBLEM), "--config", str(cfg), "--run-dir", str(tmp_path / "run"))
    assert r.returncode == 2
    assert "error: unknown option --learning-rate (set in " in r.stderr and "run.toml" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "run").exists()


def test_out_of_range_option_names_it(tmp_path: Path, _solve) -> None:
    r = _solve(str(PROBLEM), "--alpha", "1.5", "--run-dir", str(tmp_path / "run"))
    assert r.returncode == 2 and "error: --alpha 1.5: input should be less than or equal to 1" in r.stderr
    assert "fix: give --alpha a value >= 0 and <= 1" in r.stderr
    assert not (tmp_path / "run").exists()


def test_missing_problem_and_bad_resume(tmp_path: Path, _solve) -> None:
    r = _solve(str(tmp_path / "nope.json"))
    assert r.returncode == 2 and "no such problem file" in r.stderr
    r = _solve("--resume", str(tmp_path))
    assert r.returncode == 2 and "not a run directory" in r.stderr
    r = _solve()
    assert r.returncode == 2 and "no problem given" in r.stderr


def test_resume_refuses_other_options(tmp_path: Path, _solve) -> None:
    r = _solve("--resume", str(tmp_path), "--budget", "4")
    assert r.returncode == 2 and "its own saved config" in r.stderr


def test_existing_run_dir_is_not_overwritten(tmp_path: Path, _solve) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "keep.txt").write_text("x")
    r = _solve(str(PROBLEM), "--run-dir", str(run), "--sandbox", "local", "--model", "smollm2-135m")
    assert r.returncode == 2 and "already holds files" in r.stderr and "--resume" in r.stderr
    assert sorted(p.name for p in run.iterdir()) == ["keep.txt"]
