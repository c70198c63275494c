"""Host side of the runner protocol: build the request for one attempt, turn the runner's lines into a Verdict.

Shared by every backend, so Docker and local judge identically. See runner.py for the wire format.
"""

from __future__ import annotations

import json
import secrets
from importlib import resources
from typing import Any, Iterable

from sdpo_ttt.problem import Kind, Problem
from sdpo_ttt.verdict import Outcome, TestResult, Verdict

OUTPUT_LIMIT_BYTES = 8 * 1024 * 1024  # stdout cap per test (raised to 2x the expected output when larger)
TLE_BUDGET = 2  # after this many time_limit tests, the rest are marked time_limit without running


def runner_source() -> str:
    """The runner's source text (shipped as package data; sent to the container as `python3 -c`)."""
    return resources.files("sdpo_ttt.sandbox").joinpath("runner.py").read_text(encoding="utf-8")


def build_request(problem: Problem, code: str, *, scratch: str, python: str | None = None, **extra: Any) -> dict[str, Any]:
    """The JSON request for one attempt. `extra` carries backend settings (child_uid, sweep_own_uid, ...)."""
    longest = max((len(t.output.encode("utf-8")) for t in problem.tests), default=0)
    req: dict[str, Any] = {
        "nonce": secrets.token_hex(16),
        "code": code,
        "kind": problem.kind.value,
        "function_name": _entry_point(problem),
        "tests": [{"input": t.input, "output": t.output, "public": t.public} for t in problem.tests],
        "compare": {"mode": "json" if problem.kind is Kind.function else problem.compare.mode.value,
                    "float_tol": problem.compare.float_tol},
        "limits": {"time_s": problem.limits.time_s, "memory_mb": problem.limits.memory_mb},
        "output_limit": max(OUTPUT_LIMIT_BYTES, 2 * longest),
        "tle_budget": TLE_BUDGET,
        "scratch": scratch,
    }
    if problem.kind is Kind.script and problem.script is not None:
        from sdpo_ttt.asserts import instrument

        req["script"] = {"test_code": instrument(problem.script.test_code), "setup_code": problem.script.setup_code,
                         "check_function": problem.script.check_function}
    if python:
        req["python"] = python
    req.update(extra)
    return req


def _entry_point(problem: Problem) -> str:
    if problem.kind is Kind.function and problem.function:
        return problem.function.name
    if problem.kind is Kind.script and problem.script:
        return problem.script.entry_point
    return ""


def encode_request(req: dict[str, Any]) -> bytes:
    body = json.dumps(req).encode("utf-8")
    return str(len(body)).encode() + b"\n" + body


def parse_events(lines: Iterable[bytes | str], nonce: str) -> list[dict[str, Any]]:
    """The runner's events, in order; lines without our nonce (anything else on stdout) are ignored."""
    prefix = nonce + " "
    out: list[dict[str, Any]] = []
    for raw in lines:
        line = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
        if not line.startswith(prefix):
            continue
        try:
            out.append(json.loads(line[len(prefix):]))
        except ValueError:
            continue
    return out


def sandbox_error(problem: Problem, message: str, wall_time_s: float = 0.0) -> Verdict:
    """A verdict for when the verifier itself failed: never the attempt's fault."""
    tests = [TestResult(index=i, outcome=Outcome.sandbox_error, public=t.public, detail=message)
             for i, t in enumerate(problem.tests)]
    return Verdict(passed=False, score=0.0, outcome=Outcome.sandbox_error, tests=tests, wall_time_s=wall_time_s)


def assemble(problem: Problem, events: list[dict[str, Any]], wall_time_s: float, *, stderr: str = "") -> Verdict:
    """Verdict from the runner's events. A stream cut short after `start` means the attempt killed the
    runner (it shares the runner's uid): the test that was running is a runtime_error."""
    if not events or events[0].get("event") != "start":
        tail = stderr.strip()[-500:]
        return sandbox_error(problem, "the judge did not start" + (f": {tail}" if tail else ""), wall_time_s)
    err = next((e for e in events if e.get("event") == "error"), None)
    if err is not None:
        return sandbox_error(problem, f"the judge failed: {err.get('error', '?')}", wall_time_s)
    by_index: dict[int, TestResult] = {}
    for e in events:
        if e.get("event") == "test":
            fields = {k: v for k, v in e.items() if k in TestResult.model_fields}
            r = TestResult.model_validate(fields)
            by_index[r.index] = r
    done = next((e for e in events if e.get("event") == "done"), None)
    tests: list[TestResult] = []
    cut_at: int | None = None
    for i, t in enumerate(problem.tests):
        if i in by_index:
            tests.append(by_index[i])
            continue
        if cut_at is None:
            cut_at = i
            detail = "the judge process was killed while this test ran (did the attempt signal processes outside its own?)"
        else:
            detail = "not run: the judge was killed by an earlier test"
        tests.append(TestResult(index=i, outcome=Outcome.runtime_error, public=t.public, input=t.input[:1000],
                                expected=t.output[:1000], detail=detail))
    n_pass = sum(t.outcome is Outcome.passed for t in tests)
    first_bad = next((t.outcome for t in tests if t.outcome is not Outcome.passed), Outcome.passed)
    return Verdict(
        passed=bool(tests) and n_pass == len(tests),
        score=n_pass / len(tests) if tests else 0.0,
        outcome=first_bad,
        tests=tests,
        compile_error=(done or {}).get("compile_error", "") or "",
        wall_time_s=round(wall_time_s, 4),
    )
