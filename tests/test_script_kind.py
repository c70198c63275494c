"""Problem kind `script` (assert-style tests, HumanEval / MBPP): the AST transform, the per-assert verdicts
with the returned values, lying objects failing, and the same judgement in the local and Docker sandboxes."""

from __future__ import annotations

import pytest
from sandbox_fixtures import require_docker

from sdpo_ttt.problem.asserts import assert_sites, instrument
from sdpo_ttt.sandbox.feedback import render_feedback
from sdpo_ttt.problem.schema import parse_problem, problem_errors, script_tests
from sdpo_ttt.sandbox.verdict import Outcome

CHECK = '''
METADATA = {"author": "t", "dataset": "test"}


def check(candidate):
    assert candidate([1, 2, 3]) == 6
    assert candidate([]) == 0
    for i in range(5):
        assert candidate([i]) == i
    assert abs(candidate([0.1, 0.2]) - 0.3) < 1e-6
    assert not candidate([0])
    assert candidate([1]) in [1, 2]
'''


def script_problem(test_code: str = CHECK, *, public: int | None = 3, check: str = "check", name: str = "total",
                   setup: str = "", time_s: float = 1.0):
    return parse_problem({
        "schema": 1, "id": "t-script", "title": "t", "statement": f"def {name}(xs):\n    \"\"\"Sum of xs.\"\"\"\n",
        "kind": "script",
        "script": {"entry_point": name, "test_code": test_code, "setup_code": setup, "check_function": check},
        "tests": script_tests(test_code, public), "limits": {"time_s": time_s, "memory_mb": 256},
    })


GOOD = "def total(xs):\n    return sum(xs)\n"
OFF = "def total(xs):\n    return sum(xs) + (1 if len(xs) > 1 else 0)\n"
ALWAYS_EQUAL = ("class A:\n    def __eq__(self, o): return True\n    def __ne__(self, o): return False\n"
                "    def __bool__(self): return False\n    def __sub__(self, o): return 0\n    def __lt__(self, o): return True\n"
                "    def __abs__(self): return 0\n")


def test_sites_and_transform():
    sites = assert_sites(CHECK)
    assert [s.line for s in sites] == [6, 7, 9, 10, 11, 12]
    assert sites[2].source == "assert candidate([i]) == i"
    code = instrument(CHECK)
    assert "assert " not in code and "__sdpo.compare(3, '<', *__sdpo_v)" in code and "__sdpo.truth(4, True" in code
    compile(code, "t", "exec")


def test_schema_needs_one_test_per_assert():
    doc = script_problem().model_dump(mode="json", by_alias=True)
    doc["tests"] = doc["tests"][:2]
    assert any("one test per assert" in e for e in problem_errors(doc))
    doc = script_problem().model_dump(mode="json", by_alias=True)
    doc["script"]["test_code"] = "x = 1\n"
    assert any("no assert" in e for e in problem_errors(doc))


@pytest.fixture(scope="module")
def local_sb():
    from sdpo_ttt.sandbox import open_sandbox

    with open_sandbox("local") as sb:
        yield sb


@pytest.mark.sandbox
def test_values_first_failure_and_loops(local_sb):
    p = script_problem()
    assert local_sb.judge(p, GOOD).passed
    v = local_sb.judge(p, OFF)
    assert [t.outcome.value for t in v.tests] == ["wrong_answer", "passed", "passed", "wrong_answer", "passed", "passed"]
    assert v.score == pytest.approx(4 / 6)
    first = v.tests[0]
    assert first.expected == "6" and first.got == "7" and "total([1, 2, 3]) returned 7" in first.detail
    fb = render_feedback(p, v, "public", style="detailed")
    assert "Assertion 1 (public, line 6)" in fb and "assert candidate([1, 2, 3]) == 6" in fb
    assert "Hidden assertions: 2 of 3 passed" in fb and "0.1, 0.2" not in fb  # hidden: counts only
    assert "Assertion 4 (hidden, line 10)" in render_feedback(p, v, "all", style="detailed")
    # a loop assert that fails on its third round reports that round's values
    v = local_sb.judge(p, "def total(xs):\n    return 99 if xs == [2] else sum(xs)\n")
    loop = v.tests[2]
    assert loop.outcome is Outcome.wrong_answer and "total([2]) returned 99" in loop.detail and loop.expected == "2"


@pytest.mark.sandbox
@pytest.mark.parametrize("code", [
    ALWAYS_EQUAL + "def total(xs):\n    return A()\n",
    ALWAYS_EQUAL + "def total(xs):\n    return [A()]\n",
])
@pytest.mark.sandbox
def test_lying_objects_fail(local_sb, code):
    v = local_sb.judge(script_problem(), code)
    assert not v.passed and v.score == 0.0
    assert all(t.outcome is Outcome.wrong_answer for t in v.tests)
    assert "only plain values" in v.tests[0].detail


@pytest.mark.sandbox
def test_a_subclass_of_a_plain_type_is_judged_by_its_plain_value(local_sb):
    # the proxy sends int.__index__(I(0)) = 0: its lying __eq__ never reaches the test program
    v = local_sb.judge(script_problem(), "class I(int):\n    def __eq__(self, o): return True\n"
                                         "def total(xs):\n    return I(0)\n")
    assert not v.passed and v.tests[0].got == "0"
    assert [t.outcome.value for t in v.tests] == ["wrong_answer", "passed", "wrong_answer", "wrong_answer", "passed",
                                                  "wrong_answer"]


@pytest.mark.sandbox
def test_exceptions_timeouts_and_early_exit(local_sb):
    p = script_problem()
    v = local_sb.judge(p, "def total(xs):\n    if not xs:\n        raise ValueError('empty!')\n    return sum(xs)\n")
    t = v.tests[1]
    assert t.outcome is Outcome.runtime_error and "ValueError: empty!" in t.detail
    assert 'solution.py", line 3' in t.stderr_tail and sum(x.outcome is Outcome.passed for x in v.tests) == 5
    v = local_sb.judge(p, "def total(xs):\n    while xs == [3]:\n        pass\n    return sum(xs)\n")
    assert [t.outcome.value for t in v.tests][:3] == ["passed", "passed", "time_limit"] and not v.passed
    v = local_sb.judge(p, "import os\ndef total(xs):\n    if xs == [0.1, 0.2]:\n        os._exit(0)\n    return sum(xs)\n")
    assert not v.passed and v.tests[3].outcome is Outcome.runtime_error
    v = local_sb.judge(p, "def total(xs) return 1\n")
    assert v.outcome is Outcome.compile_error and len(v.tests) == 6


@pytest.mark.sandbox
def test_mbpp_style_top_level_asserts_with_setup(local_sb):
    code = 'assert remove_char("hello", "l") == "heo"\nassert remove_char(WORD, "a") == "bnn"\n'
    p = script_problem(code, check="", name="remove_char", setup='WORD = "banana"', public=None)
    assert local_sb.judge(p, "def remove_char(s, c):\n    return s.replace(c, '')\n").passed
    v = local_sb.judge(p, "def remove_char(s, c):\n    return s.replace(c, '', 1)\n")
    assert v.tests[0].got == "'helo'" and v.tests[1].got == "'bnana'"


@pytest.mark.docker
@pytest.mark.sandbox
def test_docker_judges_like_local(local_sb):
    require_docker()
    from sdpo_ttt.sandbox import open_sandbox

    p = script_problem()
    codes = [GOOD, OFF, ALWAYS_EQUAL + "def total(xs):\n    return A()\n"]
    with open_sandbox("docker", workers=1) as sb:
        dv = sb.judge_many(p, codes)
    lv = local_sb.judge_many(p, codes)
    for d, l in zip(dv, lv, strict=True):
        assert [(t.outcome, t.got, t.detail) for t in d.tests] == [(t.outcome, t.got, t.detail) for t in l.tests]
    assert dv[0].passed and not dv[1].passed and not dv[2].passed


@pytest.mark.sandbox
def test_tests_that_cannot_be_proxied_are_reported_by_the_importer(tmp_path, local_sb):
    from sdpo_ttt.problem.importers.humaneval import import_suite
    from sdpo_ttt.problem.importers.mbpp import convert_mbpp
    from sdpo_ttt.sandbox.protocol import unjudgeable_reason

    record = {"task_id": 9, "text": "Apply f to x.", "code": "def apply(f, x):\n    return f(x)\n",
              "test_list": ["assert apply(lambda v: v + 1, 1) == 2"], "test_setup_code": ""}
    doc, ref = convert_mbpp(record)
    v = local_sb.judge(parse_problem(doc), ref)
    assert v.outcome is Outcome.sandbox_error and "function" in (unjudgeable_reason(v) or "")
    res = import_suite(iter([(1, record)]), convert_mbpp, tmp_path / "out", sandbox=local_sb)
    assert not res.imported and len(res.skipped) == 1 and "cannot be run against an attempt" in res.skipped[0].reason
    assert not (tmp_path / "out" / "mbpp-9").exists()


@pytest.mark.sandbox
def test_the_attempts_builtin_exceptions_reach_the_test_program_as_themselves(local_sb):
    code = ("try:\n    f(-1)\n    ok = False\nexcept ValueError:\n    ok = True\nassert ok\n"
            "assert f(2) == 4\n")
    p = script_problem(code, check="", name="f", public=None)
    good = "def f(x):\n    if x < 0:\n        raise ValueError('negative')\n    return x * x\n"
    assert local_sb.judge(p, good).passed
    v = local_sb.judge(p, "def f(x):\n    if x < 0:\n        raise KeyError(x)\n    return x * x\n")
    assert not v.passed and v.tests[0].outcome is Outcome.runtime_error and "KeyError" in v.tests[0].detail
