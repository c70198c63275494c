"""The in-sandbox code (sdpo_ttt/sandbox/box) on its own: comparisons, the wire encoding and its validation,
the runner protocol (host side), and a one-shot runner round trip as a host subprocess."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import tempfile

import pytest

from sandbox_fixtures import ADD_FUNC, ADD_STDIO, function_problem, stdio_problem
from sdpo_ttt.sandbox import protocol
from sdpo_ttt.sandbox.box import compare, wire

BIG = "7" * 5000  # over Python's 4300-digit int-str limit


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
        ("3.0000001", "3", False),  # an integer answer needs an integer (ints are not floats by default)
        ("3", "3.0", True),  # a float answer accepts an integer within tol
        (BIG, BIG, True),  # any size, compared as digits
        ("-000" + BIG, "-" + BIG, True),
        (BIG + "1", BIG + "2", False),
        ("1" * 300_000, "1" * 300_000, True),  # over the wire's digit limit: tokens are text, any length
        ("1" * 300_000, "2" * 300_000, False),
        ("1" + "0" * 400, "1e300", False),  # a float of 10**400 overflows to inf: no exception
        ("1" + "0" * 400, "1.5", False),
        ("1 2", "1 2 3", False),
    ],
)
def test_compare_tokens(got: str, exp: str, ok: bool) -> None:
    assert compare.compare_tokens(got, exp, 1e-6)[0] is ok


def test_compare_tokens_detail_names_the_token() -> None:
    ok, detail = compare.compare_tokens("1 2 4", "1 2 3", 1e-6)
    assert not ok and detail == "token 3: expected 3, got 4"
    assert compare.compare_tokens("1 2", "1 2 3", 1e-6)[1] == "expected 3 tokens, got 2"


def test_compare_lines_ignores_trailing_space_only() -> None:
    assert compare.compare_lines("a b  \nc\n\n\n", "a b\nc")[0]
    assert not compare.compare_lines("a  b\nc", "a b\nc")[0]
    assert compare.compare_lines("a\nd", "a\nc")[1] == "line 2: expected c, got d"


@pytest.mark.parametrize(
    "got, exp, ok",
    [
        ("[1, 2.0000000001]", "[1, 2]", False),  # an integer expected: a float is not one
        ("[1, 2.0000000001]", "[1, 2.0]", True),
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
    assert compare.compare_text(got, exp, 'json', 1e-6)[0] is ok


def test_compare_json_detail_has_a_path() -> None:
    assert compare.compare_text("[[1, 2], [3, 5]]", "[[1, 2], [3, 4]]", "json", 1e-9)[1] == "at [1][1]: expected 4, got 5"


def test_exact_mode() -> None:
    assert compare.compare_text("a\n", "a\n", "exact", 0)[0]
    assert not compare.compare_text("a", "a\n", "exact", 0)[0]


def test_trunc_is_middle_out() -> None:
    s = "A" * 600 + "B" * 600
    t = compare.trunc(s, 100)
    assert t.startswith("A" * 50) and t.endswith("B" * 50) and "[1100 chars cut]" in t
    assert compare.trunc("short", 100) == "short"




def test_ints_are_floats_only_when_the_problem_says_so() -> None:
    assert not compare.compare_tokens("3.0000001", "3", 1e-6)[0]
    assert "expected the integer 3" in compare.compare_tokens("3.0000001", "3", 1e-6)[1]
    assert compare.compare_tokens("3.0000001", "3", 1e-6, ints_are_floats=True)[0]
    assert not compare.compare_text("3.0", "3", "json", 1e-6)[0]
    assert compare.compare_text("3.0", "3", "json", 1e-6, ints_are_floats=True)[0]
    assert compare.compare_text("3", "3.0", "json", 1e-6)[0]


@pytest.mark.parametrize("got, exp", [
    (BIG, BIG + "1"), ("[" + BIG + "]", "[1.5]"), ("1" + "0" * 400, "1.0"), ("NaN", "1.0"), ("Infinity", "1e308"),
    ("[" * 5000 + "]" * 5000, "[]"), ('{"a": ' * 3000 + "1" + "}" * 3000, "{}"), ("[1e999]", "[1]"),
    ("-" + BIG, BIG), ('"\\ud800"', '"x"'),
])
def test_comparisons_never_raise(got: str, exp: str) -> None:
    for mode in ("tokens", "lines", "json", "exact"):
        ok, detail = compare.compare_text(got, exp, mode, 1e-6)
        assert ok is False and isinstance(detail, str)


def test_huge_ints_compare_equal_as_json() -> None:
    assert compare.compare_text("[" + BIG + "]", "[" + BIG + "]", "json", 1e-6) == (True, "")


# ---------------------------------------------------------------------------- the wire


@pytest.mark.parametrize("value", [
    None, True, 0, -5, pytest.param(10 ** 5000, id="huge-int"), 1.5, float("inf"), "x\u00e9", [1, [2, (3, 4)]], (1,), {1, 2}, frozenset({3}),
    {"a": 1, (1, 2): [None]}, b"\x00\xff", 1 + 2j, [],
])
def test_wire_round_trip(value) -> None:
    frames, rest = wire.split_frames(wire.frame(wire.encode(value)))
    assert rest == b"" and len(frames) == 1
    back = wire.decode(wire.parse_json(frames[0]))
    assert back == value and type(back) is type(value)


@pytest.mark.parametrize("body, why", [
    ('{"x": 1}', "unknown value tag"), ('{"t": 1}', "needs a list"), ('{"t": [], "s": []}', "one tagged object"),
    ('{"b": "zz"}', "hex"), ('{"c": [1]}', "complex"), ('{"s": [[1]]}', "unhashable"), ('{"d": [[1]]}', "pairs"),
    ("[" * 150 + "]" * 150, "nested"), ("1" * 100_001, "digits"), ("[1,", "not valid"), ('"\\ud800', "not valid"),
])
def test_wire_rejects_anything_outside_the_shape(body: str, why: str) -> None:
    with pytest.raises(wire.Malformed, match=why):
        wire.decode(wire.parse_json(body))


def test_subclasses_travel_as_their_plain_base_and_objects_do_not_travel() -> None:
    class Liar(int):
        def __eq__(self, other):
            return True

        __hash__ = int.__hash__

    assert type(wire.encode(Liar(3))) is int and wire.encode(Liar(3)) == 3
    with pytest.raises(wire.NotEncodable, match="object"):
        wire.encode(object())


def test_fields_are_type_and_size_checked() -> None:
    spec = {"raised": (str, True, 10), "error": (str, False, 5)}
    wire.check_fields({"raised": "E"}, spec, "r")
    for bad, why in (({"raised": ["E"]}, "^r field 'raised' must be str, got list$"),
                     ({"raised": "E" * 11}, "^r field 'raised' is 11 chars, over the limit of 10$"),
                     ({"raised": "E", "error": "x" * 6}, "^r field 'error' is 6 chars, over the limit of 5$"),
                     ({"raised": "E", "z": 1}, "^r has an unknown field 'z'$"),
                     ({}, "^r lacks the field 'raised'$"),
                     (["raised"], "^r must be a JSON object$")):
        with pytest.raises(wire.Malformed, match=why):
            wire.check_fields(bad, spec, "r")


# ---------------------------------------------------------------------------- the code bundle


def test_box_is_stdlib_only_python39_and_has_no_code_in_strings() -> None:
    sources = protocol.bundle_sources()
    assert {"boot", "runner", "forkserver", "harness", "tester", "privdrop", "wire", "compare", "cleanup"} <= set(sources)
    for name, src in sources.items():
        tree = ast.parse(src, feature_version=(3, 9))
        mods = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        mods |= {n.module.split(".")[0] for n in ast.walk(tree)
                 if isinstance(n, ast.ImportFrom) and n.module and not n.level}
        assert mods <= set(sys.stdlib_module_names) | {"box"}, (name, mods - set(sys.stdlib_module_names))
        longest = max((len(n.value) for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)
                       and not isinstance(getattr(n, "parent", None), ast.Expr)), default=0)
        assert longest < 2000, name  # docstrings aside, no program text hides in a string


# ---------------------------------------------------------------------------- the runner, one-shot


def _run_runner(req: dict) -> list[str]:
    proc = subprocess.run(protocol.runner_command(sys.executable, serve=False),
                          input=protocol.bundle_frame() + protocol.encode_request(req), capture_output=True, timeout=60)
    return proc.stdout.decode().splitlines()


@pytest.mark.sandbox
def test_protocol_round_trip_and_nonce() -> None:
    p = stdio_problem()
    with tempfile.TemporaryDirectory() as d:
        req = protocol.build_request(p, ADD_STDIO, scratch=d + "/s")
        lines = _run_runner(req)
    assert all(line.startswith(req["nonce"] + " ") for line in lines)
    events = protocol.parse_events(lines, req["nonce"])
    assert [e["event"] for e in events] == ["start", "test", "test", "done"]
    v = protocol.assemble(p, events, 0.1)
    assert v.passed and v.score == 1.0


@pytest.mark.sandbox
def test_spawned_programs_judge_as_expected() -> None:
    p = stdio_problem([("1 2\n", "3\n"), ("2 2\n", "4\n")])
    outcomes = []
    for code in (ADD_STDIO, "print(0)\n", "raise SystemExit('bye')\n", "import sys\nsys.stdout.write('3')\nsys.exit(0)\n"):
        with tempfile.TemporaryDirectory() as d:
            req = protocol.build_request(p, code, scratch=d + "/s")
            v = protocol.assemble(p, protocol.parse_events(_run_runner(req), req["nonce"]), 0.0)
        outcomes.append([t.outcome.value for t in v.tests])
        if code.startswith("raise"):
            assert "bye" in v.tests[0].stderr_tail
    assert outcomes == [["passed", "passed"], ["wrong_answer"] * 2, ["runtime_error"] * 2, ["passed", "wrong_answer"]]


# ---------------------------------------------------------------------------- host-side checks of events


def test_lines_without_the_nonce_are_ignored() -> None:
    p = stdio_problem([("1 2\n", "3\n")])
    forged = json.dumps({"event": "test", "index": 0, "outcome": "passed"})
    events = protocol.parse_events(["start", "abc " + forged, b"\xff\xfe"], nonce="abc2")
    assert events == []
    v = protocol.assemble(p, events, 0.0)
    assert v.outcome.value == "sandbox_error" and not v.passed


def test_a_stream_cut_short_is_the_verifiers_failure_unless_the_attempt_could_reach_the_runner() -> None:
    p = stdio_problem([("1 2\n", "3\n"), ("5 7\n", "12\n"), ("0 0\n", "0\n")])
    events = [{"event": "start"}, {"event": "test", "index": 0, "outcome": "passed", "time_s": 0.01}]
    v = protocol.assemble(p, events, 0.5)
    assert v.outcome.value == "sandbox_error" and not v.passed
    v = protocol.assemble(p, events, 0.5, runner_reachable=True)
    assert [t.outcome.value for t in v.tests] == ["passed", "runtime_error", "runtime_error"]
    assert "killed" in v.tests[1].detail and "not run" in v.tests[2].detail
    assert v.score == pytest.approx(1 / 3) and v.outcome.value == "runtime_error"


_START = {"event": "start"}
_OK = {"event": "test", "index": 0, "outcome": "passed"}
_DONE = {"event": "done", "compile_error": ""}


@pytest.mark.parametrize("events", [
    [_START, dict(_OK, detail=["not", "a", "string"]), _DONE],
    [_START, dict(_OK, index="0"), _DONE],
    [_START, dict(_OK, index=7), _DONE],
    [_START, dict(_OK, outcome="accepted"), _DONE],
    [_START, dict(_OK, extra=1), _DONE],
    [_START, _OK, _OK, _DONE],
    [_START, _DONE],
    [_START, _OK, dict(_DONE, compile_error=5)],
    [_START, _OK, _DONE, _OK],
    [dict(_START, x=1), _OK, _DONE],
    [_START, {"event": "surprise"}, _OK, _DONE],
    [_START, [1], _DONE],
    [_START, dict(_OK, time_s=-1.0), _DONE],
    [_START, dict(_OK, detail="x" * 100_000), _DONE],
])
def test_bad_runner_events_are_a_sandbox_error_never_an_exception(events) -> None:
    p = stdio_problem([("1 2\n", "3\n")])
    nonce = "n0"
    lines = [nonce + " " + json.dumps(e) for e in events]
    v, broken = protocol.safe_assemble(p, lines, nonce, 0.1)
    assert broken and v.outcome.value == "sandbox_error" and not v.passed
    v, broken = protocol.safe_assemble(p, [nonce + " {not json"], nonce, 0.1)
    assert broken and v.outcome.value == "sandbox_error"


def test_function_request_always_compares_as_json() -> None:
    req = protocol.build_request(function_problem(), ADD_FUNC, scratch="/tmp/x")
    assert req["compare"]["mode"] == "json" and req["function_name"] == "add"
    assert req["compare"]["ints_are_floats"] is False


@pytest.mark.parametrize(("got", "exp"), [("١٢", "12"), ("１２", "12"), ("١.٥", "1.5"), ("1.5", "١.٥"), ("12\n", "12")])
def test_numbers_need_ascii_digits(got: str, exp: str) -> None:
    ok, _ = compare.compare_tokens(got + " 7", exp + " 7", 1e-6)
    assert ok is (got.strip() == exp.strip())


def test_a_reply_of_more_values_than_the_limit_is_malformed_before_parsing() -> None:
    body = b"[" + b"[]," * wire.MAX_VALUES + b"[]]"
    with pytest.raises(wire.Malformed, match="values, over the limit"):
        wire.parse_json(body, max_values=wire.MAX_VALUES)
    assert wire.parse_json(b"[" + b"1," * 1000 + b"1]", max_values=wire.MAX_VALUES) == [1] * 1001


def test_wipe_and_fresh_dir_never_follow_a_planted_link(tmp_path) -> None:
    from sdpo_ttt.sandbox.box import cleanup

    outside = tmp_path / "outside"
    (outside / "deep").mkdir(parents=True)
    (outside / "deep" / "keep.txt").write_text("x")
    scratch = tmp_path / "scratch"
    (scratch / "sub").mkdir(parents=True)
    (scratch / "link").symlink_to(outside)
    (scratch / "sub" / "link").symlink_to(outside / "deep")
    (scratch / "sub").chmod(0)
    mode = (outside / "deep").stat().st_mode & 0o777
    cleanup.wipe(str(scratch))
    assert os.listdir(scratch) == []
    assert (outside / "deep" / "keep.txt").read_text() == "x"
    assert (outside / "deep").stat().st_mode & 0o777 == mode  # never chmod'ed through the link
    (scratch).rmdir()
    scratch.symlink_to(outside)  # the scratch dir itself replaced by a link
    cleanup.fresh_dir(str(scratch))
    assert scratch.is_dir() and not scratch.is_symlink() and (outside / "deep" / "keep.txt").exists()
    assert oct(scratch.stat().st_mode & 0o777) == "0o711"


# ---------------------------------------------------------------- the Docker session's stream, without Docker
def _docker_frame(stream: int, payload: bytes) -> bytes:
    return bytes([stream, 0, 0, 0]) + len(payload).to_bytes(4, "big") + payload


def test_the_docker_stream_is_split_into_stdout_lines_and_stderr_across_chunk_boundaries() -> None:
    from sdpo_ttt.sandbox.docker_session import Session

    s = Session.__new__(Session)  # no exec: only the demultiplexer's state
    s.buf, s.line = bytearray(), bytearray()
    data = (_docker_frame(1, b"n1 {\"event\": \"start\"}\nn1 {\"ev") + _docker_frame(2, b"a warning\n")
            + _docker_frame(1, b"ent\": \"done\"}\n") + _docker_frame(1, b"partial"))
    err = bytearray()
    lines = [ln for i in range(0, len(data), 5) for ln in s._stdout_lines(data[i:i + 5], err)]  # 5-byte chunks
    assert lines == [b'n1 {"event": "start"}', b'n1 {"event": "done"}']
    assert bytes(err) == b"a warning\n" and bytes(s.line) == b"partial" and not s.buf
