"""The trusted runner: its comparison functions, its wire protocol, and its stdlib-only / Python 3.9 contract."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import tempfile

import pytest

from sandbox_fixtures import ADD_FUNC, ADD_STDIO, function_problem, stdio_problem
from sdpo_ttt.sandbox import protocol, runner


@pytest.mark.parametrize(
    "got, exp, ok",
    [
        ("3\n", "3", True),
        ("1  2\n3", "1 2 3\n", True),
        ("0.3333333", "0.333333333", True),  # within 1e-6 absolute
        ("1000.5", "1000.0", False),
        ("1000000.5", "1000000.0", True),  # relative 5e-7
        ("1e9", "1000000000.0000001", True),  # relative tolerance
        ("1000000000000000001", "1000000000000000000", False),  # integers compare exactly
        ("1_000", "1000", False),  # not a number token: compared as text
        ("nan", "nan", True),
        ("inf", "1e308", False),
        ("YES", "yes", False),
        ("1 2", "1 2 3", False),
    ],
)
def test_compare_tokens(got: str, exp: str, ok: bool) -> None:
    assert runner.compare_tokens(got, exp, 1e-6)[0] is ok


def test_compare_tokens_detail_names_the_token() -> None:
    ok, detail = runner.compare_tokens("1 2 4", "1 2 3", 1e-6)
    assert not ok and detail == "token 3: expected 3, got 4"
    assert runner.compare_tokens("1 2", "1 2 3", 1e-6)[1] == "expected 3 tokens, got 2"


def test_compare_lines_ignores_trailing_space_only() -> None:
    assert runner.compare_lines("a b  \nc\n\n\n", "a b\nc")[0]
    assert not runner.compare_lines("a  b\nc", "a b\nc")[0]
    assert runner.compare_lines("a\nd", "a\nc")[1] == "line 2: expected c, got d"


@pytest.mark.parametrize(
    "got, exp, ok",
    [
        ("[1, 2.0000000001]", "[1, 2]", True),
        ("{\"a\": [1, {\"b\": null}]}", "{\"a\": [1, {\"b\": null}]}", True),
        ("true", "1", False),  # bool is not a number
        ("1", "true", False),
        ("[1, 2]", "[2, 1]", False),
        ("{\"a\": 1}", "{\"a\": 1, \"b\": 2}", False),
        ("\"1\"", "1", False),
        ("not json", "1", False),
        ("NaN", "1", False),
    ],
)
def test_compare_json(got: str, exp: str, ok: bool) -> None:
    assert runner.compare_json(got, exp, 1e-6)[0] is ok


def test_compare_json_detail_has_a_path() -> None:
    assert runner.compare_json("[[1, 2], [3, 5]]", "[[1, 2], [3, 4]]", 1e-9)[1] == "at [1][1]: expected 4, got 5"


def test_exact_mode() -> None:
    assert runner.compare("a\n", "a\n", "exact", 0)[0]
    assert not runner.compare("a", "a\n", "exact", 0)[0]


def test_trunc_is_middle_out() -> None:
    s = "A" * 600 + "B" * 600
    t = runner.trunc(s, 100)
    assert t.startswith("A" * 50) and t.endswith("B" * 50) and "[1100 chars cut]" in t
    assert runner.trunc("short", 100) == "short"


def test_runner_is_stdlib_only_and_python39_syntax() -> None:
    src = protocol.runner_source()
    tree = ast.parse(src, feature_version=(3, 9))
    mods = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    mods |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert mods <= set(sys.stdlib_module_names), mods - set(sys.stdlib_module_names)
    ast.parse(runner.HARNESS, feature_version=(3, 9))


def _run_runner(req: dict) -> list[str]:
    proc = subprocess.run([sys.executable, "-I", "-S", "-c", protocol.runner_source()],
                          input=protocol.encode_request(req), capture_output=True, timeout=60)
    return proc.stdout.decode().splitlines()


def test_protocol_round_trip_and_nonce() -> None:
    p = stdio_problem()
    with tempfile.TemporaryDirectory() as d:
        req = protocol.build_request(p, ADD_STDIO, scratch=d + "/s", python=sys.executable, nproc_relative=True)
        lines = _run_runner(req)
    assert all(line.startswith(req["nonce"] + " ") for line in lines)
    events = protocol.parse_events(lines, req["nonce"])
    assert [e["event"] for e in events] == ["start", "test", "test", "done"]
    v = protocol.assemble(p, events, 0.1)
    assert v.passed and v.score == 1.0


def test_lines_without_the_nonce_are_ignored() -> None:
    p = stdio_problem([("1 2\n", "3\n")])
    forged = json.dumps({"event": "test", "index": 0, "outcome": "passed"})
    events = protocol.parse_events(["start", "abc " + forged, b"\xff\xfe"], nonce="abc2")
    assert events == []
    v = protocol.assemble(p, events, 0.0)
    assert v.outcome.value == "sandbox_error" and not v.passed


def test_stream_cut_after_start_blames_the_running_test() -> None:
    p = stdio_problem([("1 2\n", "3\n"), ("5 7\n", "12\n"), ("0 0\n", "0\n")])
    events = [{"event": "start"}, {"event": "test", "index": 0, "outcome": "passed", "time_s": 0.01}]
    v = protocol.assemble(p, events, 0.5)
    assert [t.outcome.value for t in v.tests] == ["passed", "runtime_error", "runtime_error"]
    assert "killed" in v.tests[1].detail and "not run" in v.tests[2].detail
    assert v.score == pytest.approx(1 / 3) and v.outcome.value == "runtime_error"


def test_function_request_always_compares_as_json() -> None:
    req = protocol.build_request(function_problem(), ADD_FUNC, scratch="/tmp/x")
    assert req["compare"]["mode"] == "json" and req["function_name"] == "add"
    assert "expected" not in json.dumps(req["tests"])  # only input/output/public travel


@pytest.mark.parametrize("fork_server", [True, False])
def test_both_spawn_paths_judge_alike(fork_server: bool) -> None:
    p = stdio_problem([("1 2\n", "3\n"), ("2 2\n", "4\n")])
    outcomes = []
    for code in (ADD_STDIO, "print(0)\n", "raise SystemExit('bye')\n", "import sys\nsys.stdout.write('3')\nsys.exit(0)\n"):
        with tempfile.TemporaryDirectory() as d:
            req = protocol.build_request(p, code, scratch=d + "/s", python=sys.executable, nproc_relative=True,
                                         fork_server=fork_server)
            v = protocol.assemble(p, protocol.parse_events(_run_runner(req), req["nonce"]), 0.0)
        outcomes.append([t.outcome.value for t in v.tests])
        if code.startswith("raise"):
            assert "bye" in v.tests[0].stderr_tail
    assert outcomes == [["passed", "passed"], ["wrong_answer"] * 2, ["runtime_error"] * 2, ["passed", "wrong_answer"]]
