"""Attempt-derived text is made safe on the host before it is printed, logged or written (issue 22): the helper
against a brute-force reference, then each path -- the runner's events, `judge`, `judge --json`, attempts.jsonl."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest

from sandbox_fixtures import function_problem
from sdpo_ttt.sandbox import protocol
from sdpo_ttt.sandbox.safe_text import safe_text, safe_tree

REPO = Path(__file__).resolve().parents[1]
HOSTILE = "\ud800 lone \udfff; \x1b[2K\rPASSED\x07 \u202eevil\x00 ok\ttab\nline"


def _reference(c: str) -> str:
    o = ord(c)
    unsafe = (unicodedata.category(c) in ("Cc", "Cs") and c not in "\t\n") or 0x202A <= o <= 0x202E or 0x2066 <= o <= 0x2069
    if not unsafe:
        return c
    return f"\\x{o:02x}" if o < 0x100 else f"\\u{o:04x}"


def test_safe_text_escapes_exactly_the_unsafe_characters() -> None:
    for o in list(range(0, 0x3000)) + list(range(0xD800, 0xE000)):
        c = chr(o)
        assert safe_text(c) == _reference(c), hex(o)
    out = safe_text(HOSTILE)
    out.encode("utf-8")  # strict: no lone surrogate is left
    assert safe_text(out) == out  # idempotent
    assert "\\ud800" in out and "\\x1b" in out and "\\x0d" in out and "\t" in out and "\n" in out
    assert safe_tree({"a": [HOSTILE, 1, ("x\udc80",)]}) == {"a": [out, 1, ["x\\udc80"]]}


def test_runner_events_with_lone_surrogates_give_a_verdict_that_can_be_written() -> None:
    p = function_problem([([1, 2], 3)])
    events = [{"event": "start"},
              {"event": "test", "index": 0, "outcome": "runtime_error", "detail": HOSTILE, "got": HOSTILE,
               "stderr_tail": HOSTILE, "input": "[1, 2]", "expected": "3"},
              {"event": "done", "compile_error": HOSTILE}]
    nonce = "n" * 32
    lines = [(nonce + " " + json.dumps(e)).encode() for e in events]
    v, broken = protocol.safe_assemble(p, lines, nonce, 0.1)
    assert not broken
    json.dumps(v.model_dump() if hasattr(v, "model_dump") else v.__dict__, default=str, ensure_ascii=False).encode("utf-8")
    t = v.tests[0]
    for text in (t.detail, t.got, t.stderr_tail, v.compile_error):
        text.encode("utf-8")
        assert "\\ud800" in text and "\x1b" not in text


def test_attempts_jsonl_takes_a_lone_surrogate_and_keeps_the_models_code(tmp_path: Path) -> None:
    from sdpo_ttt.run.rundir import RunDir

    run = RunDir(tmp_path)
    code = "print('\x0c')\n"
    run.append_attempt({"index": 0, "feedback": "raised " + HOSTILE, "code": code, "text": code, "verdict": "runtime_error"})
    raw = run.attempts_path.read_bytes().decode("utf-8")  # strict UTF-8
    rec = json.loads(raw)
    assert rec["feedback"] == "raised " + safe_text(HOSTILE) and rec["code"] == code


RAISES_SURROGATE = "def add(a, b):\n    raise ValueError('\\ud800 \\x1b[31mred')\n"


def _judge(tmp_path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    prob = tmp_path / "problem.json"
    prob.write_text(function_problem([([1, 2], 3)]).to_json())
    attempt = tmp_path / "a.py"
    attempt.write_text(RAISES_SURROGATE)
    env = {**os.environ, "COLUMNS": "250", "PYTHONIOENCODING": "utf-8"}
    return subprocess.run([sys.executable, "-m", "sdpo_ttt.cli", "judge", str(prob), str(attempt), "--sandbox", "local",
                           *extra], capture_output=True, text=True, timeout=120, cwd=REPO, env=env)


@pytest.mark.sandbox
def test_judge_prints_an_attempt_that_raises_a_lone_surrogate(tmp_path: Path) -> None:
    r = _judge(tmp_path)
    assert r.returncode == 1, r.stderr[-2000:]
    assert "runtime_error" in r.stdout and "\\ud800" in r.stdout and "\x1b[31m" not in r.stdout, r.stdout


@pytest.mark.sandbox
def test_judge_json_of_an_attempt_that_raises_a_lone_surrogate(tmp_path: Path) -> None:
    r = _judge(tmp_path, "--json")
    assert r.returncode == 1, r.stderr[-2000:]
    rep = json.loads(r.stdout.splitlines()[0])
    assert rep["outcome"] == "runtime_error"
    assert "\\ud800" in json.dumps(rep, ensure_ascii=False).encode("utf-8").decode("utf-8")
    assert not any("\ud800" in t["detail"] for t in rep["tests"])


def test_report_over_runs_whose_attempts_hold_lone_surrogates(tmp_path: Path) -> None:
    """attempts.jsonl of a run written before this helper (a JSON escape of a lone surrogate in any field): the
    report reads it and writes only strict UTF-8 (it shows no attempt-derived text; this guards that)."""
    from sdpo_ttt.files import append_jsonl
    from sdpo_ttt.report.write import build_report
    from test_report import fabricate

    run = fabricate(tmp_path / "cmp", "a", "sdpo", 0, passes=[2])
    for f in list(run.glob("attempts.jsonl")):
        f.write_text("")
        for i in range(3):
            append_jsonl(f, {"step": 0, "index": i, "passed": i == 2, "score": 1.0 if i == 2 else 0.2,
                             "verdict": "passed" if i == 2 else HOSTILE, "feedback": HOSTILE, "code": HOSTILE})
    _, paths = build_report(tmp_path / "cmp", n_boot=50)
    for p in (tmp_path / "cmp" / "report").rglob("*"):
        if p.is_file() and p.suffix in (".html", ".md", ".json", ".csv", ".txt"):
            p.read_bytes().decode("utf-8")
