"""`sdpo-ttt judge` and `sdpo-ttt sandbox check` end to end, as a user runs them (subprocess, real sandbox)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sandbox_fixtures import ADD_FUNC, ADD_STDIO, function_problem, require_docker, stdio_problem
from sdpo_ttt.sandbox.image import DOCKERFILE, apt_mirror, debootstrap_command

REPO = Path(__file__).resolve().parents[1]


def _cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "250"}  # rich wraps at the terminal width
    return subprocess.run([sys.executable, "-m", "sdpo_ttt.cli", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO, env=env)


@pytest.fixture()
def stdio_files(tmp_path: Path) -> tuple[Path, Path, Path]:
    prob = tmp_path / "add" / "problem.json"
    prob.parent.mkdir()
    prob.write_text(stdio_problem([("1 2\n", "3\n"), ("2 2\n", "4\n"), ("5 5\n", "10\n")], hidden=1).to_json())
    good = tmp_path / "good.py"
    good.write_text(ADD_STDIO)
    bad = tmp_path / "bad.py"
    bad.write_text("a, b = map(int, input().split())\nprint(a + b if a != 2 else 0)\n")
    return prob, good, bad


@pytest.mark.sandbox
def test_json_passed_and_failed(stdio_files) -> None:
    prob, good, bad = stdio_files
    r = _cli("judge", str(prob), str(good), "--sandbox", "local", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["passed"] is True and out["score"] == 1.0 and out["sandbox"] == "local"
    assert [t["verdict"] for t in out["tests"]] == ["passed"] * 3 and out["feedback"] == "All tests passed."

    r = _cli("judge", str(prob.parent), str(bad), "--sandbox", "local", "--json")
    assert r.returncode == 1, r.stderr
    out = json.loads(r.stdout)
    assert out["passed"] is False and out["score"] == pytest.approx(2 / 3)
    assert [t["verdict"] for t in out["tests"]] == ["passed", "wrong_answer", "passed"]
    assert out["feedback"].startswith("Test Case 2: Wrong Answer")  # the reference style, the default
    r = _cli("judge", str(prob.parent), str(bad), "--sandbox", "local", "--json", "--style", "detailed")
    assert "Test 2 (public): wrong answer" in json.loads(r.stdout)["feedback"]


@pytest.mark.sandbox
def test_several_attempts_in_order_one_json_line_each(stdio_files) -> None:
    prob, good, bad = stdio_files
    r = _cli("judge", str(prob), str(good), str(bad), str(good), "--sandbox", "local", "--json")
    assert r.returncode == 1, r.stderr
    lines = [json.loads(line) for line in r.stdout.splitlines()]
    assert [(d["attempt"], d["passed"]) for d in lines] == [(str(good), True), (str(bad), False), (str(good), True)]
    r = _cli("judge", str(prob), str(good), str(good), "--sandbox", "local", "--json")
    assert r.returncode == 0 and len(r.stdout.splitlines()) == 2
    r = _cli("judge", str(prob), str(good), str(bad), "--sandbox", "local")
    assert r.returncode == 1 and "PASSED" in r.stdout and "FAILED" in r.stdout and "not all of 2 attempts passed" in r.stdout


@pytest.mark.sandbox
def test_table_and_feedback(stdio_files) -> None:
    prob, _, bad = stdio_files
    r = _cli("judge", str(prob), str(bad), "--sandbox", "local", "--visibility", "binary")
    assert r.returncode == 1
    assert "wrong_answer" in r.stdout and "FAILED" in r.stdout and "Result: failed. Score: 0.67" in r.stdout


@pytest.mark.sandbox
def test_bad_input_exits_2(stdio_files, tmp_path: Path) -> None:
    prob, good, _ = stdio_files
    r = _cli("judge", str(prob), str(tmp_path / "missing.py"), "--sandbox", "local")
    assert r.returncode == 2 and "no such file" in r.stderr and "Traceback" not in r.stderr
    r = _cli("judge", str(prob), str(good), str(tmp_path / "missing.py"), "--sandbox", "local", "--json")
    assert r.returncode == 2 and r.stdout == ""  # nothing judged when any attempt is unreadable
    broken = tmp_path / "broken.json"
    broken.write_text('{"schema": 1, "id": "x"')
    r = _cli("judge", str(broken), str(good), "--sandbox", "local")
    assert r.returncode == 2 and "not valid JSON" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.docker
def test_json_in_docker_function_problem(tmp_path: Path) -> None:
    require_docker()
    prob = tmp_path / "problem.json"
    prob.write_text(function_problem().to_json())
    att = tmp_path / "a.py"
    att.write_text(ADD_FUNC)
    r = _cli("judge", str(prob), str(att), "--sandbox", "docker", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["sandbox"] == "docker" and out["passed"] and [t["verdict"] for t in out["tests"]] == ["passed", "passed"]


@pytest.mark.docker
def test_attempts_share_one_docker_session_and_nothing_crosses(tmp_path: Path) -> None:
    require_docker()
    prob = tmp_path / "problem.json"
    prob.write_text(stdio_problem([("", "ok\n")]).to_json())
    writer = tmp_path / "1-writer.py"
    writer.write_text("import os\nopen('/tmp/note', 'w').write('ok')\nopen('/dev/shm/note', 'w').write('ok')\nprint('ok')\n")
    reader = tmp_path / "2-reader.py"
    reader.write_text("import os\nprint('leak' if os.path.exists('/tmp/note') or os.path.exists('/dev/shm/note') else 'ok')\n")
    r = _cli("judge", str(prob), str(writer), str(reader), str(writer), "--sandbox", "docker", "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    assert [json.loads(line)["passed"] for line in r.stdout.splitlines()] == [True, True, True]


@pytest.mark.docker
def test_sandbox_check_docker() -> None:
    require_docker()
    r = _cli("sandbox", "check", "--sandbox", "docker")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "backend: docker" in r.stdout and "sandbox works" in r.stdout
    assert "/proc: hidden from attempts (hidepid=" in r.stdout, r.stdout  # what the runner did about /proc


@pytest.mark.sandbox
def test_sandbox_check_local() -> None:
    r = _cli("sandbox", "check", "--sandbox", "local")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "backend: local" in r.stdout and "sandbox works" in r.stdout
    assert "/proc:" not in r.stdout  # the local sandbox hides nothing, and says nothing of it here


def test_docker_requested_but_image_missing_is_a_clear_error() -> None:
    r = _cli("sandbox", "check", "--sandbox", "docker", "--image", "sdpo-ttt-no-such-image:never")
    assert r.returncode == 2 and "fix:" in r.stderr and "Traceback" not in r.stderr


def test_auto_falls_back_to_local_and_says_so() -> None:
    from sdpo_ttt.sandbox import open_sandbox

    said: list[str] = []
    with open_sandbox("auto", workers=1, image="sdpo-ttt-no-such-image:never", announce=said.append) as sb:
        assert sb.name == "local"
    assert len(said) == 1 and "LOCAL sandbox" in said[0] and "sandbox build --offline" in said[0]


def test_dockerfile_matches_the_packaged_copy() -> None:
    assert (REPO / "sandbox" / "Dockerfile").read_text() == DOCKERFILE
    assert "FROM python:3.12-slim" in DOCKERFILE and "USER 65534" in DOCKERFILE


def test_apt_mirror_parsing(tmp_path: Path) -> None:
    (tmp_path / "debian.sources").write_text(
        "Types: deb\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\n\n"
        "Types: deb\nURIs: http://mirror.example/debian/\nSuites: bookworm\n")
    assert apt_mirror((str(tmp_path / "*.sources"),)) == "http://mirror.example/debian"
    (tmp_path / "sources.list").write_text("# c\ndeb [arch=amd64 signed-by=/k.gpg] http://other.example/debian bookworm main\n")
    assert apt_mirror((str(tmp_path / "sources.list"),)) == "http://other.example/debian"
    assert apt_mirror((str(tmp_path / "none*"),)) == "http://deb.debian.org/debian"
    cmd = debootstrap_command("/r", "http://m/debian")
    assert cmd == ["debootstrap", "--variant=minbase", "--include=python3,python3-numpy", "bookworm", "/r", "http://m/debian"]
