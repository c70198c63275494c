"""Host side of the runner protocol: the code bundle, the request for one attempt, and the runner's events
checked and turned into a Verdict.

Shared by every backend, so Docker and local judge identically. The runner starts as
`python3 -I -S -c <box/boot.py> [--serve]`; its stdin gets `bundle_frame()` (the `box` package's source),
then request frames; its stdout answers each request with lines `<nonce> <json event>` (box/runner.py).
Every event is validated here (`check_events`): a malformed one is the verifier's failure (`BadEvent`), which
the backends turn into a sandbox_error for that attempt and a fresh session; it never raises past them.
"""

from __future__ import annotations

import functools
import json
import secrets
from importlib import resources
from typing import Any, Iterable

from sdpo_ttt.problem.schema import Kind, Problem
from sdpo_ttt.sandbox.safe_text import safe_text
from sdpo_ttt.sandbox.verdict import Outcome, TestResult, Verdict

OUTPUT_LIMIT_BYTES = 8 * 1024 * 1024  # stdout cap per test (raised to 2x the expected output when larger)
TLE_BUDGET = 2  # after this many time_limit tests, the rest are marked time_limit without running
MAX_FIELD_CHARS = 64_000  # longest string accepted in a runner event field
_OUTCOMES = {o.value for o in Outcome}


UNJUDGEABLE = "this problem cannot be judged: "  # a sandbox_error detail's start (box/script.py writes it)


def unjudgeable_reason(verdict: Verdict) -> str | None:
    """Why the problem's tests cannot be run against any attempt (a script test program passing the function
    a value that cannot be sent to the attempt's process), else None."""
    for t in verdict.tests:
        if t.outcome is Outcome.sandbox_error and t.detail.startswith(UNJUDGEABLE):
            return t.detail[len(UNJUDGEABLE):]
    return None


class BadEvent(Exception):
    """The runner's output broke the protocol (the verifier failed; never the attempt's fault)."""


@functools.lru_cache(maxsize=1)
def bundle_sources() -> dict[str, str]:
    """{module name: source} of the in-sandbox package `sdpo_ttt/sandbox/box` (sent to the runner)."""
    pkg = resources.files("sdpo_ttt.sandbox").joinpath("box")
    out = {}
    for entry in pkg.iterdir():
        name = entry.name
        if name.endswith(".py"):
            out[name[:-3]] = entry.read_text(encoding="utf-8")
    return out


def boot_source() -> str:
    return bundle_sources()["boot"]


def runner_command(python: str, *, serve: bool, hide_proc: bool = False) -> list[str]:
    """The runner's command line; `hide_proc` (the Docker sandbox): it hides /proc and drops the capabilities that
    took before anything else (box/prochide.py)."""
    return [python, "-I", "-S", "-c", boot_source()] + (["--serve"] if serve else []) + (
        ["--hide-proc"] if hide_proc else [])


def bundle_frame() -> bytes:
    return _frame(json.dumps(bundle_sources()).encode("utf-8"))


def _frame(body: bytes) -> bytes:
    return str(len(body)).encode() + b"\n" + body


def build_request(problem: Problem, code: str, *, scratch: str, **extra: Any) -> dict[str, Any]:
    """The JSON request for one attempt. `extra` carries backend settings (child_uid, tester_uid, wipe, ...)."""
    longest = max((len(t.output.encode("utf-8")) for t in problem.tests), default=0)
    req: dict[str, Any] = {
        "nonce": secrets.token_hex(16),
        "code": code,
        "kind": problem.kind.value,
        "function_name": _entry_point(problem),
        "tests": [{"input": t.input, "output": t.output, "public": t.public} for t in problem.tests],
        "compare": {"mode": "json" if problem.kind is Kind.function else problem.compare.mode.value,
                    "float_tol": problem.compare.float_tol,
                    "ints_are_floats": bool(getattr(problem.compare, "ints_are_floats", False))},
        "limits": {"time_s": problem.limits.time_s, "memory_mb": problem.limits.memory_mb},
        "output_limit": max(OUTPUT_LIMIT_BYTES, 2 * longest),
        "tle_budget": TLE_BUDGET,
        "scratch": scratch,
    }
    if problem.kind is Kind.script and problem.script is not None:
        from sdpo_ttt.problem.asserts import instrument

        req["script"] = {"test_code": instrument(problem.script.test_code), "setup_code": problem.script.setup_code,
                         "check_function": problem.script.check_function}
    req.update(extra)
    return req


def _entry_point(problem: Problem) -> str:
    if problem.kind is Kind.function and problem.function:
        return problem.function.name
    if problem.kind is Kind.script and problem.script:
        return problem.script.entry_point
    return ""


def encode_request(req: dict[str, Any]) -> bytes:
    return _frame(json.dumps(req).encode("utf-8"))


def parse_events(lines: Iterable[bytes | str], nonce: str) -> list[Any]:
    """The runner's events, in order: lines carrying our nonce, JSON-decoded. Raises BadEvent for a line
    with our nonce that is not JSON (lines without it are ignored)."""
    prefix = nonce + " "
    out: list[Any] = []
    for raw in lines:
        line = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
        if not line.startswith(prefix):
            continue
        try:
            out.append(json.loads(line[len(prefix):]))
        except ValueError:
            raise BadEvent(f"an event line is not JSON: {line[len(prefix):][:80]!r}") from None
    return out


_TEST_FIELDS: dict[str, tuple[type, ...]] = {
    "event": (str,), "index": (int,), "outcome": (str,), "public": (bool,), "time_s": (int, float), "input": (str,),
    "expected": (str,), "got": (str,), "stderr_tail": (str,), "detail": (str,),
}


def _check_test(e: dict[str, Any], n: int) -> TestResult:
    for k, v in e.items():
        types = _TEST_FIELDS.get(k)
        if types is None:
            raise BadEvent(f"a test event has an unknown field {k!r}")
        if type(v) not in types:
            raise BadEvent(f"a test event's field {k!r} is a {type(v).__name__}")
        if isinstance(v, str) and len(v) > MAX_FIELD_CHARS:
            raise BadEvent(f"a test event's field {k!r} is {len(v)} chars long")
    for k in ("index", "outcome"):
        if k not in e:
            raise BadEvent(f"a test event lacks {k!r}")
    if not 0 <= e["index"] < n:
        raise BadEvent(f"a test event's index {e['index']} is outside 0..{n - 1}")
    if e["outcome"] not in _OUTCOMES:
        raise BadEvent(f"a test event's outcome {e['outcome'][:40]!r} is unknown")
    if "time_s" in e and not 0 <= e["time_s"] < 1e6:
        raise BadEvent("a test event's time_s is out of range")
    return TestResult(**{k: safe_text(v) if isinstance(v, str) else v for k, v in e.items() if k != "event"})


def check_events(events: list[Any], n_tests: int) -> tuple[dict[int, TestResult], dict[str, Any] | None, str | None]:
    """Validate the events of one request: (tests by index, the done event or None, the runner's own error or
    None). Raises BadEvent."""
    if not events:
        raise BadEvent("no event")
    for e in events:
        if type(e) is not dict or type(e.get("event")) is not str:
            raise BadEvent("an event is not an object with an \"event\" field")
    if events[0]["event"] != "start" or len(events[0]) != 1:
        raise BadEvent("the first event is not a bare start")
    tests: dict[int, TestResult] = {}
    done: dict[str, Any] | None = None
    for e in events[1:]:
        kind = e["event"]
        if done is not None:
            raise BadEvent(f"a {kind} event after done")
        if kind == "test":
            r = _check_test(e, n_tests)
            if r.index in tests:
                raise BadEvent(f"test {r.index} reported twice")
            tests[r.index] = r
        elif kind == "done":
            if type(e.get("compile_error", "")) is not str or len(e.get("compile_error", "")) > MAX_FIELD_CHARS:
                raise BadEvent("the done event's compile_error is not a string")
            if "session" in e and type(e["session"]) is not dict:
                raise BadEvent("the done event's session is not an object")
            if set(e) - {"event", "compile_error", "session"}:
                raise BadEvent("the done event has unknown fields")
            done = e
        elif kind == "error":
            return tests, None, safe_text(str(e.get("error", "?"))[:2000])
        else:
            raise BadEvent(f"unknown event {kind[:40]!r}")
    if done is not None and len(tests) != n_tests:
        raise BadEvent(f"done after {len(tests)} of {n_tests} tests")
    return tests, done, None


def sandbox_error(problem: Problem, message: str, wall_time_s: float = 0.0) -> Verdict:
    """A verdict for when the verifier itself failed: never the attempt's fault."""
    tests = [TestResult(index=i, outcome=Outcome.sandbox_error, public=t.public, detail=message)
             for i, t in enumerate(problem.tests)]
    return Verdict(passed=False, score=0.0, outcome=Outcome.sandbox_error, tests=tests, wall_time_s=wall_time_s)


def assemble(problem: Problem, events: list[Any], wall_time_s: float, *, stderr: str = "",
             runner_reachable: bool = False) -> Verdict:
    """Verdict from the runner's (unchecked) events; raises BadEvent. A stream cut short after `start` is the
    verifier's failure, unless the attempt could reach the runner (the local sandbox without root): then the
    test that was running is charged to the attempt as a runtime_error."""
    stderr = safe_text(stderr)
    if not events:
        tail = stderr.strip()[-500:]
        return sandbox_error(problem, "the judge did not start" + (f": {tail}" if tail else ""), wall_time_s)
    by_index, done, err = check_events(events, len(problem.tests))
    if err is not None:
        return sandbox_error(problem, f"the judge failed: {err}", wall_time_s)
    if done is None and not runner_reachable:
        tail = stderr.strip()[-300:]
        return sandbox_error(problem, "the judge stopped in the middle of the attempt" + (f": {tail}" if tail else ""),
                             wall_time_s)
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
        compile_error=safe_text((done or {}).get("compile_error", "") or ""),
        wall_time_s=round(wall_time_s, 4),
    )


def safe_assemble(problem: Problem, events_lines: Iterable[bytes | str], nonce: str, wall_time_s: float, *,
                  stderr: str = "", runner_reachable: bool = False) -> tuple[Verdict, bool]:
    """(verdict, whether the runner broke the protocol). Never raises: a bad event is a sandbox_error."""
    try:
        events = parse_events(events_lines, nonce)
        return assemble(problem, events, wall_time_s, stderr=stderr, runner_reachable=runner_reachable), False
    except BadEvent as e:
        return sandbox_error(problem, f"the judge broke its protocol: {e}", wall_time_s), True
    except Exception as e:  # noqa: BLE001 - a verdict must come out whatever the events were
        return sandbox_error(problem, f"the judge's events could not be read: {type(e).__name__}: {e}", wall_time_s), True
