"""LocalSandbox: same runner as host subprocesses. Verdict kinds, function problems, and the hostile attempts
that are safe on a host. The fork bomb runs only when children get a dedicated uid (we are root): as root
without it RLIMIT_NPROC is not enforced, and as a normal user it would count against your own processes.
Network and host-file isolation are NOT properties of this backend (see test_sandbox_docker.py)."""

from __future__ import annotations

import os
import re
import subprocess

import pytest

from sandbox_fixtures import ADD_FUNC, ADD_STDIO, FORK_BOMB, HOSTILE, function_problem, stdio_problem
from sdpo_ttt.sandbox import open_sandbox
from sdpo_ttt.sandbox.local import LocalSandbox

pytestmark = pytest.mark.sandbox


def _live_uids() -> set[int]:
    """uids of live processes; zombies (killed, waiting for the host's init to reap them) do not count."""
    out = subprocess.run(["ps", "-eo", "uid=,stat="], capture_output=True, text=True).stdout.split("\n")
    return {int(line.split()[0]) for line in out if line.strip() and not line.split()[1].startswith("Z")}


@pytest.fixture(scope="module")
def sb():
    with LocalSandbox(workers=2) as s:
        yield s


def test_open_local_is_local() -> None:
    with open_sandbox("local", workers=1) as s:
        assert s.name == "local"
        assert s.judge(stdio_problem(), ADD_STDIO).passed


def test_verdict_kinds(sb) -> None:
    p = stdio_problem(time_s=0.5)
    codes = {
        "passed": ADD_STDIO,
        "wrong_answer": "print(4)\n",
        "compile_error": "def f(:\n",
        "runtime_error": "raise ValueError('boom')\n",
        "time_limit": "while True:\n    pass\n",
        "memory_limit": "x = bytearray(10**10)\n",
        "output_limit": "while True:\n    print('x' * 1000)\n",
    }
    verdicts = sb.judge_many(p, list(codes.values()))
    assert [v.outcome.value for v in verdicts] == list(codes)
    by = dict(zip(codes, verdicts, strict=True))
    assert by["passed"].score == 1.0 and by["wrong_answer"].score == 0.0
    assert "ValueError: boom" in by["runtime_error"].tests[0].stderr_tail
    assert "solution.py" in by["runtime_error"].tests[0].stderr_tail and '"<string>"' not in by["runtime_error"].tests[0].stderr_tail
    assert "SyntaxError" in by["compile_error"].compile_error
    assert all(t.outcome.value == "compile_error" for t in by["compile_error"].tests)
    # after two time-outs the rest are not run
    assert "not run" not in by["time_limit"].tests[1].detail


def test_partial_score_and_first_failure(sb) -> None:
    p = stdio_problem([("1 2\n", "3\n"), ("2 2\n", "4\n"), ("3 3\n", "6\n"), ("1 1\n", "2\n")])
    v = sb.judge(p, "a, b = map(int, input().split())\nprint(a + b if a != 2 else 0)\n")
    assert not v.passed and v.score == 0.75 and v.outcome.value == "wrong_answer"
    assert v.tests[1].got.strip() == "0" and v.tests[1].detail == "token 1: expected 4, got 0"


def test_function_kind_top_level_and_solution_class(sb) -> None:
    p = function_problem([([1, 2], 3), ([0.1, 0.2], 0.3)])
    codes = [ADD_FUNC, "from typing import List\nclass Solution:\n    def add(self, a: float, b: float) -> float:\n"
             "        return a + b\n", "def add(a: List[int], b):\n    return a + b\n",
             "import sys\nprint('noise')\nsys.stdout.flush()\ndef add(a, b):\n    return [a + b]\n",
             "def other(a, b):\n    return a + b\n", "import no_such_module\ndef add(a, b):\n    return a + b\n"]
    got = [v.outcome.value for v in sb.judge_many(p, codes)]
    assert got == ["passed", "passed", "passed", "wrong_answer", "compile_error", "compile_error"]


def test_tle_budget_skips_the_rest(sb) -> None:
    p = stdio_problem([("1 2\n", "3\n")] * 4, time_s=0.3)
    v = sb.judge(p, "while True:\n    pass\n")
    assert [t.outcome.value for t in v.tests] == ["time_limit"] * 4
    assert "not run" in v.tests[3].detail and "not run" not in v.tests[1].detail


@pytest.mark.parametrize("case", HOSTILE, ids=lambda c: c[0])
def test_hostile_attempt(sb, case) -> None:
    name, make_problem, code, allowed = case
    if name == "read_shadow" and not sb.drop_privileges:
        pytest.skip("children run under your own uid: /etc/shadow readability is the host's business")
    v = sb.judge(make_problem(), code)
    assert v.outcome.value in allowed, (name, v.tests[0].detail, v.tests[0].stderr_tail[-300:])
    assert sb.judge(stdio_problem(), ADD_STDIO).passed


def test_fork_bomb_with_dedicated_uid(sb) -> None:
    if not sb.drop_privileges:
        pytest.skip("needs root to give children a dedicated uid (RLIMIT_NPROC is not enforced for root)")
    name, make_problem, code, allowed = FORK_BOMB
    slot_uids = list(sb._slots.queue)
    v = sb.judge(make_problem(), code)
    assert v.outcome.value in allowed
    assert not _live_uids() & set(slot_uids)  # every process of the attempt's uid is gone (zombies aside)


def test_leftover_processes_are_killed(sb) -> None:
    if not sb.drop_privileges:
        pytest.skip("sweeping by uid needs a dedicated uid (root)")
    code = ("import os, time\nif os.fork() == 0:\n    os.setsid()\n    os.close(1); os.close(2)\n    time.sleep(600)\n"
            "print(3)\n")
    uids = list(sb._slots.queue)
    assert sb.judge(stdio_problem([("1 2\n", "3\n")]), code).passed
    assert not _live_uids() & set(uids)


# Eight siblings made with clone(CLONE_PARENT) -- children of the fork server, which the local sandbox's missing
# seccomp profile cannot refuse -- burn 0.09 s of CPU each, one after another (each under a sweep's period), 0.72 s
# in all under a 0.5 s limit. Waits for each to be reaped (its /proc entry gone) or to stay a zombie.
CLONE_PARENT_CPU = """import ctypes, os, time
libc = ctypes.CDLL(None, use_errno=True)
for _ in range(8):
    pid = libc.syscall(56, 0x8000 | 17, 0, 0, 0, 0)  # clone(CLONE_PARENT | SIGCHLD)
    if pid == 0:
        end = time.process_time() + 0.09
        while time.process_time() < end:
            pass
        os.write(2, b"sibling cpu %.3f\\n" % time.process_time())
        os._exit(0)
    while True:
        try:
            with open("/proc/%d/stat" % pid) as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    break
        except OSError:
            break
        time.sleep(0.005)
a, b = map(int, input().split())
print(a + b)
"""


def test_cpu_of_clone_parent_siblings_counts_and_they_are_reaped() -> None:
    if os.geteuid() != 0:
        pytest.skip("without root the attempt runs under your uid (no dedicated uid to count or clean up by)")
    with LocalSandbox(workers=1) as s:
        v = s.judge(stdio_problem([("1 2\n", "3\n")], time_s=0.5), CLONE_PARENT_CPU)
        assert v.outcome.value == "time_limit", [(t.outcome.value, t.detail) for t in v.tests]
        # the CPU counted holds the siblings' (on a loaded machine the wall limit may come first)
        counted = float(re.search(r"cpu ([0-9.]+)s", v.tests[0].detail).group(1))
        seen = sum(float(x) for x in re.findall(r"sibling cpu ([0-9.]+)", v.tests[0].stderr_tail))
        assert seen > 0.2 and counted >= seen - 0.06, (seen, v.tests[0].detail)
        assert s.judge(stdio_problem(), ADD_STDIO).passed


def test_temp_dirs_are_removed(sb, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)
    sb.judge(stdio_problem(), "open('junk.txt', 'w').write('x' * 1000)\n" + ADD_STDIO)
    assert os.listdir(tmp_path) == []


def _as_nobody(problem, code: str) -> tuple:
    """The one-shot runner as uid 65534 (what the local sandbox is when not started as root)."""
    import shutil

    from sdpo_ttt.sandbox import protocol

    if os.geteuid() != 0 or shutil.which("setpriv") is None or not os.path.exists("/usr/bin/python3"):
        pytest.skip("needs root, setpriv and /usr/bin/python3 to run the runner as another, unprivileged user")
    import tempfile

    scratch = tempfile.mkdtemp(prefix="sdpo-ttt-nobody-")  # pytest's tmp_path is private to root
    os.chown(scratch, 65534, 65534)
    req = protocol.build_request(problem, code, scratch=scratch + "/s")
    r = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                        *protocol.runner_command("/usr/bin/python3", serve=False)],
                       input=protocol.bundle_frame() + protocol.encode_request(req), capture_output=True, cwd="/tmp",
                       timeout=60)
    shutil.rmtree(scratch, ignore_errors=True)
    return protocol.safe_assemble(problem, r.stdout.splitlines(), req["nonce"], 0.0, runner_reachable=True)


def test_without_root_the_same_uid_attempt_is_still_judged_on_its_own() -> None:
    v, broken = _as_nobody(stdio_problem(), ADD_STDIO)
    assert v.passed and not broken
    # it CAN kill the fork server (same uid): charged to the attempt, never a pass nor a verifier error
    v, broken = _as_nobody(stdio_problem(), "import os\nos.kill(os.getppid(), 9)\nprint(3)\n")
    assert [t.outcome.value for t in v.tests] == ["runtime_error", "runtime_error"] and not broken
    assert "killed the fork server" in v.tests[0].detail


KILL_THE_RUNNER_ON_TEST_2 = (
    "import os, signal\n"
    "a, b = map(int, input().split())\n"
    "if a == 5:  # the runner: our fork server's parent\n"
    "    runner = int(open('/proc/%d/stat' % os.getppid()).read().rsplit(')', 1)[1].split()[1])\n"
    "    os.kill(runner, signal.SIGKILL)\n"
    "print(a + b)\n")


def test_without_root_tests_judged_before_a_killed_runner_keep_their_verdicts() -> None:
    # the runner can be reached by the attempt here, so it writes each test's event as soon as it has it (it
    # holds them back for one write only under a dedicated uid): what was judged before the kill stays judged
    v, broken = _as_nobody(stdio_problem([("1 2\n", "3\n"), ("5 7\n", "12\n"), ("2 2\n", "4\n")]),
                           KILL_THE_RUNNER_ON_TEST_2)
    assert not broken and not v.passed
    assert [t.outcome.value for t in v.tests] == ["passed", "runtime_error", "runtime_error"], v.tests
    assert "killed while this test ran" in v.tests[1].detail


def test_as_root_files_in_world_writable_dirs_do_not_survive(sb) -> None:
    import tempfile

    if not sb.drop_privileges:
        pytest.skip("without root the attempt runs under your uid: its files are yours (documented)")
    shared = tempfile.mkdtemp(prefix="sdpo-ttt-ww-")
    os.chmod(shared, 0o1777)  # like /tmp/.X11-unix: world-writable, below /tmp
    try:
        code = (f"import os\nopen({shared!r} + '/left', 'w').write('x')\nos.mkdir('/tmp/sdpo-ttt-left-' + str(os.getuid()))\n"
                "print(3)\n")
        assert sb.judge(stdio_problem([("1 2\n", "3\n")]), code).passed
        assert os.listdir(shared) == []
        assert not [n for n in os.listdir("/tmp") if n.startswith("sdpo-ttt-left-")]
    finally:
        os.rmdir(shared)


@pytest.mark.parametrize("o_tmpfile", [True, False], ids=["O_TMPFILE", "named-then-unlinked"])
def test_a_tests_stdin_is_a_read_only_file_without_a_name(tmp_path, monkeypatch, o_tmpfile) -> None:
    from sdpo_ttt.sandbox.box import pertest

    if not o_tmpfile:
        monkeypatch.delattr(os, "O_TMPFILE")  # a file system or platform without it: the fallback
    fd = pertest._unlinked_file(str(tmp_path), b"1 2\n" * 5000)
    try:
        assert os.listdir(tmp_path) == []
        assert os.read(fd, 1 << 20) == b"1 2\n" * 5000
        with pytest.raises(OSError, match="Bad file descriptor"):
            os.write(fd, b"x")
        assert os.fstat(fd).st_nlink == 0 and os.fstat(fd).st_mode & 0o777 == 0o600
    finally:
        os.close(fd)
