"""Reward hacking, tried as a hostile model would, against the Docker sandbox (issue #12).

Each test judges one or more hostile attempts and asserts: no PASS, the verdict kind that says whose fault it
is, and that a reference solution judged right after it IN THE SAME SESSION (same container, same runner
when nothing forced a replacement) passes. All tests share one one-worker sandbox, so whatever an attack
left behind would meet the next test's attempts.
"""

from __future__ import annotations

import textwrap

import pytest

from sandbox_fixtures import ADD_FUNC, ADD_STDIO, function_problem, require_docker, stdio_problem
from sdpo_ttt.problem.schema import parse_problem, script_tests
from sdpo_ttt.sandbox.verdict import Outcome, Verdict

pytestmark = pytest.mark.docker

CHECK = '''
def check(candidate):
    assert candidate(1, 2) == 3
    assert candidate(-4, 4) == 0
    assert candidate(10 ** 20, 1) == 10 ** 20 + 1
    assert candidate(123, 456) == 579
    assert candidate(7, 8) == 15
'''
SCRIPT_REF = "def add_nums(a, b):\n    return a + b\n"


def script_problem():
    return parse_problem({
        "schema": 1, "id": "t-hack", "title": "t", "statement": "def add_nums(a, b):\n    \"\"\"a + b\"\"\"\n",
        "kind": "script",
        "script": {"entry_point": "add_nums", "test_code": CHECK, "setup_code": "", "check_function": "check"},
        "tests": script_tests(CHECK, 2), "limits": {"time_s": 1.0, "memory_mb": 256},
    })


@pytest.fixture(scope="module")
def sb():
    require_docker()
    from sdpo_ttt.sandbox.docker_backend import DockerSandbox

    with DockerSandbox(workers=1) as s:
        yield s


def _code(src: str) -> str:
    return textwrap.dedent(src).lstrip("\n")


def _details(v: Verdict) -> list[tuple[str, str]]:
    return [(t.outcome.value, t.detail[:160]) for t in v.tests]


def judge_then_reference(sb, problem, hostile: str, kinds: set[str], reference: str) -> Verdict:
    """Judge `hostile`: no PASS, its outcome in `kinds`; then `reference` passes in the same session."""
    v = sb.judge(problem, hostile)
    assert not v.passed, _details(v)
    assert v.outcome.value in kinds, _details(v)
    ref = sb.judge(problem, reference)
    assert ref.passed, ("the reference after the attack", _details(ref))
    return v


def _leaks(v: Verdict) -> bool:
    return any("LEAK" in t.stderr_tail or "LEAK" in t.got for t in v.tests)


# ---------------------------------------------------------------------------- 1. script kind in the attempt's process

FORGE_RESULT_CHANNEL = _code('''
    import json, os
    def add_nums(a, b):
        # forge "every assert held" on every fd we might share with a judge, then leave without a result
        for msg in ({"status": "ok"}, {"site": 0, "ok": True}, {"load": "ok"}, {"value": 3}):
            body = json.dumps(msg).encode()
            for fd in range(3, 64):
                for data in (str(len(body)).encode() + b"\\n" + body, body + b"\\n"):
                    try:
                        os.write(fd, data)
                    except OSError:
                        pass
        os._exit(0)
''')


def test_forged_result_channel_and_exit(sb) -> None:
    v = judge_then_reference(sb, script_problem(), FORGE_RESULT_CHANNEL, {"runtime_error"}, SCRIPT_REF)
    # it breaks the protocol, or exits; or a forged write hits a pipe already closed and SIGPIPE ends it first
    assert any(w in v.tests[0].detail for w in ("protocol", "exited", "SIGPIPE")), v.tests[0].detail


REBIND_HELPERS = _code('''
    import sys
    def add_nums(a, b):
        f = sys._getframe()
        while f is not None:  # the old harness ran the asserts' helpers a few frames up
            for ns in (f.f_globals, f.f_locals):
                h = ns.get("__sdpo")
                if h is not None:
                    print("LEAK", file=sys.stderr)
                    for name in ("compare", "truth", "raised"):
                        setattr(type(h), name, lambda self, k, *a: self.record(k, True))
            f = f.f_back
        return 0
''')


def test_walking_frames_to_rebind_the_assert_helpers(sb) -> None:
    v = judge_then_reference(sb, script_problem(), REBIND_HELPERS, {"wrong_answer"}, SCRIPT_REF)
    assert not _leaks(v)


STEAL_TEST_PROGRAM = _code('''
    import gc, os, re, sys
    def _find():
        texts = []
        for o in gc.get_objects():  # everything in our own memory
            if isinstance(o, dict):
                texts += [v for v in o.values() if isinstance(v, str)]
        for m in list(sys.modules.values()):
            texts += [v for v in vars(m).values() if isinstance(v, str)]
        for pid in os.listdir("/proc"):  # and everything we can open of the other processes
            for what in ("cmdline", "environ", "mem", "fd/0", "fd/1", "fd/3"):
                try:
                    with open("/proc/%s/%s" % (pid, what), "rb") as f:
                        texts.append(f.read(1 << 20).decode("latin-1"))
                except OSError:
                    pass
        for t in texts:
            if "candidate(123, 456)" in t:
                return t
        return None
    def add_nums(a, b):
        found = _find()
        if found is None:
            return -1
        print("LEAK", file=sys.stderr)
        m = re.findall(r"candidate\\((-?\\d+), (-?\\d+)\\) == (\\S+)", found)
        return {(int(x), int(y)): eval(z) for x, y, z in m}.get((a, b), -1)
''')


def test_reading_the_test_program_from_anywhere(sb) -> None:
    v = judge_then_reference(sb, script_problem(), STEAL_TEST_PROGRAM, {"wrong_answer"}, SCRIPT_REF)
    assert not _leaks(v)


def test_lying_return_values_never_reach_the_test_program(sb) -> None:
    hostile = _code('''
        class Yes(int):
            def __eq__(self, other):
                return True
            __hash__ = int.__hash__
        class Any:
            def __eq__(self, other):
                return True
        def add_nums(a, b):
            return Any() if a == 1 else Yes(0)
    ''')
    judge_then_reference(sb, script_problem(), hostile, {"wrong_answer"}, SCRIPT_REF)


# ---------------------------------------------------------------------------- 2. the runner under the attempt's uid

SIGNAL_EVERYTHING = _code('''
    import os, signal
    for pid in os.listdir("/proc"):
        if pid.isdigit() and int(pid) != os.getpid():
            for sig in (signal.SIGKILL, signal.SIGSTOP, signal.SIGTERM):
                try:
                    os.kill(int(pid), sig)
                except OSError:
                    pass
    print(0)
''')


def test_signalling_the_runner_fork_server_and_tester(sb) -> None:
    w = sb._workers[0]
    sb.judge(stdio_problem(), ADD_STDIO)
    before = w.session.pids
    judge_then_reference(sb, stdio_problem(), SIGNAL_EVERYTHING, {"wrong_answer"}, ADD_STDIO)
    assert w.session.pids == before  # nothing it did reached them: the same runner judged the reference


PTRACE_AND_PROC = _code('''
    import ctypes, os, sys
    libc = ctypes.CDLL(None, use_errno=True)
    hits = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        if libc.ptrace(16, int(pid), 0, 0) == 0:  # PTRACE_ATTACH
            hits.append("ptrace %s" % pid)
        try:
            hits += ["fd %s" % pid for _ in os.listdir("/proc/%s/fd" % pid)][:1]
        except OSError:
            pass
        try:
            with open("/proc/%s/fd/1" % pid, "w") as f:
                f.write("forged\\n")
            hits.append("write %s" % pid)
        except OSError:
            pass
    if hits:
        print("LEAK", hits, file=sys.stderr)
    print(0)
''')


def test_ptrace_and_proc_fds_of_other_processes(sb) -> None:
    v = judge_then_reference(sb, stdio_problem(), PTRACE_AND_PROC, {"wrong_answer"}, ADD_STDIO)
    assert not _leaks(v), v.tests[0].stderr_tail


SURVIVOR = _code('''
    import json, os, time
    # a daemon that outlives the attempt, steals the next request and forges "passed" lines
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            import ctypes
            ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)  # non-dumpable: its /proc entries become root's
            end = time.time() + 8
            while time.time() < end:
                for pid in os.listdir("/proc"):
                    for fd in ("0", "1"):
                        try:
                            with open("/proc/%s/fd/%s" % (pid, fd), "r+b", buffering=0) as f:
                                f.write(b'{"event": "test", "index": 0, "outcome": "passed"}\\n')
                        except OSError:
                            pass
                time.sleep(0.01)
        os._exit(0)
    print(0)
''')


def test_a_survivor_cannot_touch_later_attempts(sb) -> None:
    from test_sandbox_docker import _container_procs

    w = sb._workers[0]
    assert sb.judge(stdio_problem(), SURVIVOR).outcome is Outcome.wrong_answer
    left = [pid for pid, uid in _container_procs(w.container) if uid in (w.uid, w.uid + 1)]
    assert not left, left  # swept by uid, though it left the session and made itself non-dumpable
    assert sb.judge(stdio_problem(), ADD_STDIO).passed
    # a known-wrong attempt and an always-true-__eq__ attempt after it are still judged on their own
    assert sb.judge(stdio_problem(), "print(0)\n").outcome is Outcome.wrong_answer
    liar = "class A:\n    def __eq__(self, o): return True\ndef add(a, b):\n    return A()\n"
    assert sb.judge(function_problem(), liar).outcome is Outcome.wrong_answer


def test_no_way_back_to_root(sb) -> None:
    hostile = _code('''
        import os, subprocess, sys
        for f in (lambda: os.setuid(0), lambda: os.setgid(0), lambda: os.setgroups([0])):
            try:
                f(); print("LEAK", file=sys.stderr)
            except OSError:
                pass
        for cmd in (["su", "-c", "id"], ["mount", "-t", "tmpfs", "x", "/mnt"]):
            try:
                if subprocess.run(cmd, capture_output=True, timeout=2).returncode == 0:
                    print("LEAK", cmd, file=sys.stderr)
            except Exception:
                pass
        caps = [l for l in open("/proc/self/status") if l.startswith(("CapEff", "CapPrm", "CapBnd"))]
        if any(int(l.split()[1], 16) for l in caps[:2]):
            print("LEAK", caps, file=sys.stderr)
        print(0)
    ''')
    v = judge_then_reference(sb, stdio_problem(), hostile, {"wrong_answer"}, ADD_STDIO)
    assert not _leaks(v), v.tests[0].stderr_tail


# ---------------------------------------------------------------------------- 3. state across attempts

SYSV = _code('''
    import ctypes, sys
    libc = ctypes.CDLL(None, use_errno=True)
    libc.shmat.restype = ctypes.c_void_p
    IPC_CREAT = 0o1000
    mode = sys.stdin.readline().strip()
    if mode == "write":
        shm = libc.shmget(0x5d90, 300 * 1024 * 1024, IPC_CREAT | 0o666)
        addr = libc.shmat(shm, None, 0)
        ctypes.memset(addr, 7, 300 * 1024 * 1024)  # pinned: freed only when the segment is removed
        libc.shmdt(ctypes.c_void_p(addr))
        libc.msgget(0x5d91, IPC_CREAT | 0o666)
        libc.semget(0x5d92, 1, IPC_CREAT | 0o666)
        print("written")
    else:
        left = [k for k, get in ((0x5d90, lambda k: libc.shmget(k, 0, 0)), (0x5d91, lambda k: libc.msgget(k, 0)),
                                 (0x5d92, lambda k: libc.semget(k, 0, 0))) if get(k) >= 0]
        print("clean" if not left else "left %s" % left)
''')


def test_sysv_ipc_and_pinned_memory_do_not_survive(sb) -> None:
    # time limits of 5 s: touching 300-600 MB can take over 1 s of CPU on a loaded 2-core machine, and this test is
    # about memory, not time (it failed 2 of ~8 runs under load with the default 1 s)
    p = stdio_problem([("write\n", "nothing\n")], memory_mb=512, time_s=5.0)
    judge_then_reference(sb, p, SYSV, {"wrong_answer"}, "print('nothing')\n")
    reader = stdio_problem([("read\n", "clean\n")], memory_mb=512, time_s=5.0)
    v = sb.judge(reader, SYSV)
    assert v.passed, _details(v)
    # the 300 MB it pinned are free again: an attempt that needs most of the container's memory passes
    big = stdio_problem([("", "ok\n")], memory_mb=700, time_s=5.0)
    v = sb.judge(big, "x = bytearray(600 * 1024 * 1024)\nprint('ok')\n")
    assert v.passed, _details(v)


SYSV_SMALL = SYSV.replace("300 * 1024 * 1024", "64 * 1024")


def test_small_sysv_ipc_objects_are_removed_in_the_same_container(sb) -> None:
    # too small to push the container's memory over its baseline: nothing replaces the container, so it is the
    # runner's clean-up (the IPC cleaner it runs when the attempt uid created an object) that removes them
    w = sb._workers[0]
    assert sb.judge(stdio_problem(), ADD_STDIO).passed
    container, session = w.container.id, w.session
    v = sb.judge(stdio_problem([("write\n", "written\n")]), SYSV_SMALL)
    assert v.passed, _details(v)  # the objects were created: the attack did run
    v = sb.judge(stdio_problem([("read\n", "clean\n")]), SYSV_SMALL)
    assert v.passed, _details(v)
    assert w.container.id == container and w.session is session


SYSV_GIVEN_AWAY = _code('''
    import ctypes, sys
    libc = ctypes.CDLL(None, use_errno=True)
    libc.shmat.restype = ctypes.c_void_p
    IPC_CREAT, IPC_SET, IPC_STAT = 0o1000, 1, 2
    if sys.stdin.readline().strip() == "write":
        shm = libc.shmget(0x5d93, 64 * 1024, IPC_CREAT | 0o666)
        addr = libc.shmat(shm, None, 0)
        ctypes.memmove(addr, b"answers: 3 12", 13)
        libc.shmdt(ctypes.c_void_p(addr))
        ds = ctypes.create_string_buffer(256)  # struct shmid_ds; its ipc_perm starts with key, uid, gid, cuid
        assert libc.shmctl(shm, IPC_STAT, ds) == 0
        ctypes.c_uint32.from_buffer(ds, 4).value = 65534  # hand the segment to another uid (the owner may)
        ok = libc.shmctl(shm, IPC_SET, ds) == 0 and libc.shmctl(shm, IPC_STAT, ds) == 0
        print("given" if ok and ctypes.c_uint32.from_buffer(ds, 4).value == 65534 else "not given")
    else:
        shm = libc.shmget(0x5d93, 0, 0)
        print("clean" if shm < 0 else "left")
''')


def test_a_sysv_segment_given_to_another_uid_is_still_removed(sb) -> None:
    # the lead's own attack: hide a segment from a clean-up that looks at the OWNER by giving it away (IPC_SET
    # uid); the creator (cuid) cannot be changed, and the clean-up goes by the creator
    w = sb._workers[0]
    assert sb.judge(stdio_problem(), ADD_STDIO).passed
    container = w.container.id
    v = sb.judge(stdio_problem([("write\n", "given\n")]), SYSV_GIVEN_AWAY)
    assert v.passed, _details(v)  # the segment was created and given away: the attack did run
    v = sb.judge(stdio_problem([("read\n", "clean\n")]), SYSV_GIVEN_AWAY)
    assert v.passed, _details(v)
    assert w.container.id == container  # removed by the runner's clean-up, not by replacing the container
    assert sb.judge(stdio_problem(), ADD_STDIO).passed


def test_a_container_whose_memory_is_not_back_to_baseline_is_replaced() -> None:
    require_docker()
    from sdpo_ttt.sandbox.docker_backend import DockerSandbox

    with DockerSandbox(workers=1) as s:
        w = s._workers[0]
        assert s.judge(stdio_problem(), ADD_STDIO).passed
        first = w.container.id
        s.memory_slack_mb = -1024  # whatever the memory, it is "above the baseline": the runner asks for a new one
        assert s.judge(stdio_problem(), ADD_STDIO).passed
        assert w.container.id != first
        s.memory_slack_mb = 64
        second = w.container.id
        assert s.judge(stdio_problem(), ADD_STDIO).passed and w.container.id == second


POSIX_MQ = _code('''
    import ctypes, os, sys
    rt = ctypes.CDLL("librt.so.1", use_errno=True)
    mode = sys.stdin.readline().strip()
    if mode == "write":
        q = rt.mq_open(b"/sdpo-leak", os.O_CREAT | os.O_RDWR, 0o666, None)
        print("created" if q >= 0 else "refused")
    else:
        print("clean" if not os.listdir("/dev/mqueue") and rt.mq_open(b"/sdpo-leak", os.O_RDONLY) < 0 else "left")
''')


def test_posix_message_queues_cannot_carry_state(sb) -> None:
    v = judge_then_reference(sb, stdio_problem([("write\n", "nothing\n")]), POSIX_MQ, {"wrong_answer"},
                             "print('nothing')\n")
    assert v.tests[0].got.strip() == "refused"  # RLIMIT_MSGQUEUE 0
    assert sb.judge(stdio_problem([("read\n", "clean\n")]), POSIX_MQ).passed


def test_files_anywhere_writable_do_not_carry_over(sb) -> None:
    writer = _code('''
        import os
        for d in ("/tmp", "/dev/shm", os.getcwd()):
            p = os.path.join(d, ".hidden")
            os.makedirs(p, exist_ok=True)
            open(os.path.join(p, "secret"), "w").write("x")
            os.chmod(p, 0)
        from multiprocessing import shared_memory
        shared_memory.SharedMemory(name="sdpo-leak", create=True, size=4096)
        print("nothing")
    ''')
    p = stdio_problem([("", "ok\n")])
    judge_then_reference(sb, p, writer, {"wrong_answer"}, "print('ok')\n")
    reader = ("import os\nleft = (os.listdir('/tmp'), os.listdir('/dev/shm'), os.listdir('.'))\n"
              "print('ok' if left == (['attempt'], [], ['solution.py']) else left)\n")  # attempt/: the scratch dir
    v = sb.judge(p, reader)
    assert v.passed, v.tests[0].got


def test_filling_tmp_does_not_break_the_next_test(sb) -> None:
    # every test fills the container's /tmp (outside its own scratch dir) to its last byte and answers wrong; each
    # test must still get a verdict about the program, not a verifier failure because the next set-up had no room.
    # Tests 2 and 3 bring 256 KB of input (stored in the scratch dir at set-up): more than the wipe of the previous
    # test's scratch frees, so only removing what the attempt's uid left in /tmp makes room for it.
    hostile = _code('''
        import os
        chunk = 1 << 20
        for i in range(64):  # files of at most 30 MB (the file size limit is 32 MB), to the last byte free
            fd = os.open("/tmp/fill-%d" % i, os.O_WRONLY | os.O_CREAT, 0o600)
            size = 0
            while chunk and size < 30 << 20:
                try:
                    size += os.write(fd, b"x" * chunk)
                except OSError:
                    chunk //= 2
            os.close(fd)
            if not chunk:
                break
        a, b = map(int, input().split())
        print(a + b + 1)
    ''')
    pad = "\n" * (256 << 10)  # ignored by the program (it reads one line)
    p = stdio_problem([("1 2\n", "3\n"), ("5 7\n" + pad, "12\n"), ("0 0\n" + pad, "0\n")])
    v = judge_then_reference(sb, p, hostile, {"wrong_answer"}, ADD_STDIO)
    assert [t.outcome.value for t in v.tests] == ["wrong_answer"] * 3, _details(v)


# ---------------------------------------------------------------------------- 4. untrusted fields

MALFORMED_REPLIES = {
    "list-where-a-string-belongs": '{"raised": ["not", "a", "string"]}',
    "unknown-tag": '{"value": {"zz": 1}}',
    "unknown-field": '{"value": 3, "passed": true}',
    "deep-nesting": '{"value": ' + "[" * 5000 + "]" * 5000 + "}",
    "huge-int": '{"value": ' + "9" * 200_000 + "}",
    "not-json": "{value: 3",
}


@pytest.mark.parametrize("name", sorted(MALFORMED_REPLIES))
def test_malformed_replies_are_the_attempts_runtime_error(sb, name) -> None:
    body = MALFORMED_REPLIES[name]
    hostile = (f"import os\nBODY = {body!r}.encode()\ndef add(a, b):\n"
               "    os.write(4, str(len(BODY)).encode() + b'\\n' + BODY)\n    os._exit(0)\n")
    v = judge_then_reference(sb, function_problem(), hostile, {"runtime_error"}, ADD_FUNC)
    assert "protocol" in v.tests[0].detail, _details(v)


def test_a_garbage_frame_header_is_the_attempts_runtime_error(sb) -> None:
    hostile = "import os\ndef add(a, b):\n    os.write(4, b'99999999999999999999\\n{}')\n    os._exit(0)\n"
    judge_then_reference(sb, function_problem(), hostile, {"runtime_error"}, ADD_FUNC)


@pytest.mark.parametrize("printed, expected", [
    ("7" * 5000, "7" * 4999 + "8"),  # a 5000-digit integer in token compare
    ("1" + "0" * 400, "1.5"),  # 10**400 against a float answer
    ("[" + "9" * 5000 + "]", "[1]"),
])
def test_huge_numbers_are_a_wrong_answer_not_a_sandbox_error(sb, printed, expected) -> None:
    mode = "json" if printed.startswith("[") else "tokens"
    p = stdio_problem([("", expected + "\n")], mode=mode)
    judge_then_reference(sb, p, f"print({printed!r})\n", {"wrong_answer"}, f"print({expected!r})\n")


def test_an_int_result_and_huge_returned_ints(sb) -> None:
    p = function_problem([([1, 2], 3)])
    judge_then_reference(sb, p, "def add(a, b):\n    return 10 ** 6000\n", {"wrong_answer"}, ADD_FUNC)
    judge_then_reference(sb, p, "def add(a, b):\n    return float('nan')\n", {"wrong_answer"}, ADD_FUNC)


def test_its_stdin_cannot_be_written_reopened_or_given_a_name(sb) -> None:
    # stdin is a file without a name (O_TMPFILE | O_EXCL), root's, read-only for the attempt: it cannot write
    # the next test's input into it, reopen it for writing through /proc, or link it into a directory
    hostile = _code('''
        import ctypes, os, sys
        libc = ctypes.CDLL(None, use_errno=True)
        for f in (lambda: os.write(0, b"5 5\\n"), lambda: open("/proc/self/fd/0", "w"),
                  lambda: open("/proc/self/fd/0", "r+")):
            try:
                f(); print("LEAK", file=sys.stderr)
            except OSError:
                pass
        for target in (b"/tmp/attempt/stolen", b"/dev/shm/stolen", os.path.abspath("stolen").encode()):
            if libc.linkat(-100, b"/proc/self/fd/0", -100, target, 0x400) == 0:  # AT_SYMLINK_FOLLOW
                print("LEAK", target, file=sys.stderr)
        a, b = map(int, input().split())
        print(a + b)
    ''')
    p = stdio_problem([("1 2\n", "3\n"), ("5 7\n", "12\n")])
    v = sb.judge(p, hostile)
    assert v.passed and not _leaks(v), _details(v)
    assert sb.judge(p, ADD_STDIO).passed


def test_deleting_its_own_stdin(sb) -> None:
    hostile = _code('''
        import os
        for p in (os.readlink("/proc/self/fd/0"), "/tmp/attempt"):
            try:
                os.unlink(p)
            except OSError:
                pass
        try:
            import shutil; shutil.rmtree("/tmp/attempt")
        except OSError:
            pass
        print(0)
    ''')
    judge_then_reference(sb, stdio_problem(), hostile, {"wrong_answer"}, ADD_STDIO)


# ---------------------------------------------------------------------------- 5. CPU and numbers


def test_cpu_of_processes_it_does_not_wait_for_counts(sb) -> None:
    # three orphaned busy loops; the main process answers (correctly) once they have burnt 0.6 s of CPU
    # between them -- more than the 0.5 s limit. (On a loaded machine the wall limit may come first.)
    hostile = _code('''
        import os, time
        kids = []
        for _ in range(3):
            pid = os.fork()
            if pid == 0:
                os.setsid()
                while True:
                    pass
            kids.append(pid)
        def cpu():
            total = 0
            for k in kids:
                with open("/proc/%d/stat" % k) as f:
                    rest = f.read().rsplit(")", 1)[1].split()
                total += int(rest[11]) + int(rest[12])
            return total / os.sysconf("SC_CLK_TCK")
        t0 = time.time()
        while cpu() < 0.6 and time.time() - t0 < 10:
            time.sleep(0.02)
        a, b = map(int, input().split())
        print(a + b)
    ''')
    p = stdio_problem([("1 2\n", "3\n")], time_s=0.5)
    v = judge_then_reference(sb, p, hostile, {"time_limit"}, ADD_STDIO)
    assert "over all its processes" in v.tests[0].detail


def test_integers_are_not_floats_unless_the_problem_says_so(sb) -> None:
    p = stdio_problem([("", "1000000\n")])
    v = judge_then_reference(sb, p, "print('1000000.0000001')\n", {"wrong_answer"}, "print(1000000)\n")
    assert "integer" in v.tests[0].detail
    fp = function_problem([([1, 2], 3)])
    judge_then_reference(sb, fp, "def add(a, b):\n    return 3.0000000001\n", {"wrong_answer"}, ADD_FUNC)


DELAYED_FORGER = _code('''
    import os, time
    if os.fork() == 0:  # a detached child that forges "passed" events on every fd once the tests run
        os.setsid()
        time.sleep(0.2)
        for _ in range(20):
            for fd in range(64):
                for line in (b'{"event": "test", "index": 0, "verdict": "passed"}\\n', b'{"status": "ok"}\\n'):
                    try:
                        os.write(fd, line)
                    except OSError:
                        pass
            time.sleep(0.05)
        os._exit(0)
    def add(a, b):
        return 0
''')


def test_a_detached_child_forging_events_on_every_fd(sb) -> None:
    """The lead's own attack (session 3): a setsid() child writes forged verdict lines to every fd while the tests
    run; the attempt is judged on what its function returned, and a reference right after passes."""
    judge_then_reference(sb, function_problem(), DELAYED_FORGER, {"wrong_answer"}, ADD_FUNC)


# ---------------------------------------------------------------------------- issue 22: what the process list cannot see

# A helper that leaves every session and ends its main thread with the raw `exit` syscall (not exit_group):
# a thread group whose leader shows Z in /proc while its other thread lives on. From there it rewrites every
# later attempt's solution.py with a correct program (and keeps a CPU hog and a marker of its own).
ZOMBIE_LEADER = _code('''
    import ctypes, os, threading, time
    GOOD = b"a, b = map(int, input().split())\\nprint(a + b)\\n"
    def rewrite():
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                for d in os.listdir("/tmp/attempt"):
                    p = "/tmp/attempt/%s/solution.py" % d
                    try:
                        with open(p, "rb") as f:
                            if f.read() == GOOD:
                                continue
                        with open(p, "wb") as f:
                            f.write(GOOD)
                    except OSError:
                        pass
            except OSError:
                pass
            time.sleep(0.0002)
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            threading.Thread(target=rewrite).start()
            time.sleep(0.05)
            ctypes.CDLL(None).syscall(60, 0)  # SYS_exit of the main thread only: the leader becomes a zombie
        os._exit(0)
    time.sleep(0.2)
    print(0)
''')


def test_a_zombie_leader_thread_group_is_killed_and_cannot_reach_later_attempts(sb) -> None:
    from test_sandbox_docker import _container_procs

    w = sb._workers[0]
    assert sb.judge(stdio_problem(), ZOMBIE_LEADER).outcome is Outcome.wrong_answer
    if w.container is not None:
        left = [pid for pid, uid in _container_procs(w.container) if uid in (w.uid, w.uid + 1)]
        assert not left, left
    for _ in range(3):  # wrong attempts judged after it stay wrong
        v = sb.judge(stdio_problem(), "import time\ntime.sleep(0.05)\nprint(0)\n")
        assert v.outcome is Outcome.wrong_answer, _details(v)
    assert sb.judge(stdio_problem(), ADD_STDIO).passed


ZOMBIE_LEADER_CPU = _code('''
    import ctypes, os, threading, time
    r, w = os.pipe()
    pid = os.fork()
    def burn():
        while True:
            pass
    if pid == 0:  # a zombie leader whose threads burn CPU while the main process waits for them
        os.setsid()
        for _ in range(4):
            threading.Thread(target=burn).start()
        time.sleep(0.01)
        ctypes.CDLL(None).syscall(60, 0)
    def cpu():
        with open("/proc/%d/stat" % pid) as f:  # a zombie leader's stat shows its whole thread group
            rest = f.read().rsplit(")", 1)[1].split()
        return (int(rest[11]) + int(rest[12])) / os.sysconf("SC_CLK_TCK")
    t0 = time.time()
    while cpu() < 0.6 and time.time() - t0 < 10:
        os.write(2, b"helper cpu %.2f\\n" % cpu())
        time.sleep(0.02)
    a, b = map(int, input().split())
    print(a + b)
''')


def test_cpu_of_a_zombie_leaders_threads_counts(sb) -> None:
    import re

    p = stdio_problem([("1 2\n", "3\n")], time_s=0.5)
    v = judge_then_reference(sb, p, ZOMBIE_LEADER_CPU, {"time_limit"}, ADD_STDIO)
    # the CPU counted holds the helper's threads' (on a loaded machine the wall limit may come first)
    counted = float(re.search(r"cpu ([0-9.]+)s", v.tests[0].detail).group(1))
    seen = float(re.findall(r"helper cpu ([0-9.]+)", v.tests[0].stderr_tail)[-1])
    assert seen > 0.1 and counted >= seen, (seen, _details(v))


# Three forked workers holding 100 MB each under a 128 MB limit (each is under its RLIMIT_AS): the attempt as a
# whole holds ~300 MB, then answers correctly.
FORKED_MEMORY = _code('''
    import os, time
    r, w = os.pipe()
    for _ in range(3):
        if os.fork() == 0:
            block = b"\\x01" * (100 << 20)  # written, so resident
            os.write(w, b"x")
            time.sleep(5)
            os._exit(0)
    got = b""
    while len(got) < 3:
        got += os.read(r, 3)
    time.sleep(0.4)
    a, b = map(int, input().split())
    print(a + b)
''')


def test_memory_is_limited_per_attempt_not_per_process(sb) -> None:
    p = stdio_problem([("1 2\n", "3\n")], time_s=2.0, memory_mb=128)
    v = judge_then_reference(sb, p, FORKED_MEMORY, {"memory_limit"}, ADD_STDIO)
    assert "together" in v.tests[0].detail, _details(v)
    assert sb.judge(p, "block = b'\\x01' * (60 << 20)\nprint(3)\n").passed  # 60 MB of 128 is fine


# Root must never follow a link the attempt planted: links to /dev in its cwd and below, one inside a dir it
# made unreadable. A reference judged next checks that /dev is still whole (mode and /dev/null).
PLANT_LINKS = _code('''
    import os
    for name in ("d", "sub/d", "sub/deeper/d"):
        os.makedirs(os.path.dirname(name) or ".", exist_ok=True)
        os.symlink("/dev", name)
    os.chmod("sub", 0)
    print(0)
''')
DEV_INTACT_ADD = ("import os\nst = os.stat('/dev')\nok = (st.st_mode & 0o777) == 0o755 and os.path.exists('/dev/null')\n"
                  "a, b = map(int, input().split())\nprint(a + b if ok else 0)\n")


def test_root_never_follows_a_planted_link(sb) -> None:
    judge_then_reference(sb, stdio_problem(), PLANT_LINKS, {"wrong_answer"}, DEV_INTACT_ADD)


def test_a_reply_legal_in_bytes_but_not_in_objects_is_the_attempts_error(sb) -> None:
    # ~60 MB of 20M empty lists: under the byte cap, far over what a parser may build
    body = b'{"value": [' + b"[]," * (20 << 20) + b"[]]}"
    hostile = ("import os\ndef add(a, b):\n    body = b'{\"value\": [' + b'[],' * (20 << 20) + b'[]]}'\n"
               "    os.write(4, b'%d\\n' % len(body))\n    os.write(4, body)\n    os._exit(0)\n")
    assert len(body) < 64 << 20
    v = judge_then_reference(sb, function_problem(time_s=5.0), hostile, {"runtime_error"}, ADD_FUNC)
    assert "protocol" in v.tests[0].detail, _details(v)


def test_a_script_reply_of_millions_of_objects_is_the_attempts_error(sb) -> None:
    hostile = ("import os\ndef add_nums(a, b):\n    body = b'{\"value\": [' + b'[],' * (5 << 20) + b'[]]}'\n"
               "    os.write(4, b'%d\\n' % len(body))\n    os.write(4, body)\n    os._exit(0)\n")
    v = judge_then_reference(sb, script_problem(), hostile, {"runtime_error"}, SCRIPT_REF)
    assert any(w in v.tests[0].detail for w in ("protocol", "exited")), _details(v)


def test_the_attempt_cannot_choose_compile_error(sb) -> None:
    hostile = ("import os\nbody = b'{\"load\": \"compile_error\", \"error\": \"forged\"}'\n"
               "os.write(4, b'%d\\n' % len(body) + body)\na, b = map(int, input().split())\nprint(a + b + 1)\n")
    v = judge_then_reference(sb, stdio_problem(), hostile, {"wrong_answer", "runtime_error"}, ADD_STDIO)
    assert v.compile_error == "", v.compile_error


IO_URING = _code('''
    import ctypes, os
    libc = ctypes.CDLL(None, use_errno=True)
    params = ctypes.create_string_buffer(120)
    fd = libc.syscall(425, 8, params)  # io_uring_setup (x86_64 and aarch64 alike)
    a, b = map(int, input().split())
    print(a + b if fd >= 0 else 0)
''')


def test_io_uring_is_not_there(sb) -> None:
    judge_then_reference(sb, stdio_problem(), IO_URING, {"wrong_answer"}, ADD_STDIO)


def test_numbers_in_other_scripts_digits_are_not_numbers(sb) -> None:
    p = stdio_problem([("", "1.5\n")])
    judge_then_reference(sb, p, "print('\\u0661.\\u0665')\n", {"wrong_answer"}, "print(1.5)\n")


OWN_SOLUTION = _code('''
    import os
    changed = []
    for f in (lambda: open("solution.py", "a").write("#"), lambda: os.rename("solution.py", "x.py"),
              lambda: os.unlink("solution.py"), lambda: os.chmod("solution.py", 0o777), lambda: os.chmod(".", 0o777)):
        try:
            f()
            changed.append(f)
        except OSError:
            pass
    open("scratch.txt", "w").write("a file of its own is fine")
    a, b = map(int, input().split())
    print(a + b if not changed else 0)
''')


def test_its_solution_py_and_test_dir_are_not_its_own(sb) -> None:
    v = sb.judge(stdio_problem(), OWN_SOLUTION)  # a reference in effect: it passes only if nothing could be changed
    assert v.passed, _details(v)


# ---------------------------------------------------------------------------- 6. what an attempt sees and hides


# Lists /proc and probes every pid up to its own (+100) directly: it must see its own child (same uid) and no
# process of another uid -- not the runner, the fork server, init, or (script kind) the tester it is answering,
# whose /proc/<pid>/schedstat was a per-assert timing oracle. Sees another: a runtime error saying LEAK.
LOOK_AT_OTHERS = _code('''
    import os, time
    def look():
        me = os.getuid()
        kid = os.fork()
        if kid == 0:
            time.sleep(5)
            os._exit(0)
        seen = {}
        listed = {int(d) for d in os.listdir("/proc") if d.isdigit()}
        for pid in sorted(listed | set(range(1, max(listed | {os.getpid()}) + 100))):
            try:
                with open("/proc/%d/status" % pid) as f:
                    uid = int([ln for ln in f if ln.startswith("Uid:")][0].split()[1])
                with open("/proc/%d/schedstat" % pid) as f:
                    f.read()
            except (OSError, IndexError):
                continue
            seen[pid] = uid
        os.kill(kid, 9)
        os.waitpid(kid, 0)
        others = sorted(p for p, u in seen.items() if u != me)
        if others or kid not in seen:
            raise RuntimeError("LEAK: pids of other uids %s; its own child seen: %s" % (others, kid in seen))
''')


@pytest.mark.parametrize("kind", ["stdio", "script"])
def test_other_uids_processes_are_invisible(sb, kind) -> None:
    if kind == "stdio":
        problem, hostile, ref = stdio_problem(), LOOK_AT_OTHERS + "look()\nprint(0)\n", ADD_STDIO
    else:
        problem, hostile, ref = script_problem(), LOOK_AT_OTHERS + "def add_nums(a, b):\n    look()\n    return a + b + 1\n", SCRIPT_REF
    v = judge_then_reference(sb, problem, hostile, {"wrong_answer"}, ref)
    assert not any("LEAK" in t.detail or "LEAK" in t.stderr_tail for t in v.tests), _details(v)


# Six children burn 0.12 s of CPU each, one after another, with SIGCHLD ignored: the kernel reaps them at once and
# nobody's rusage ever holds their CPU (0.72 s in all, under a 0.5 s limit). Each says on stderr what it burnt.
AUTOREAPED_CHILDREN = _code('''
    import os, signal, time
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    for _ in range(6):
        pid = os.fork()
        if pid == 0:
            end = time.process_time() + 0.12
            while time.process_time() < end:
                pass
            os.write(2, b"child cpu %.3f\\n" % time.process_time())
            os._exit(0)
        while True:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.005)
    a, b = map(int, input().split())
    print(a + b)
''')


def test_cpu_of_children_the_kernel_reaped_counts(sb) -> None:
    import re

    p = stdio_problem([("1 2\n", "3\n")], time_s=0.5)
    v = judge_then_reference(sb, p, AUTOREAPED_CHILDREN, {"time_limit"}, ADD_STDIO)
    # the CPU counted holds the children's (on a loaded machine the wall limit may come first)
    counted = float(re.search(r"cpu ([0-9.]+)s", v.tests[0].detail).group(1))
    seen = sum(float(x) for x in re.findall(r"child cpu ([0-9.]+)", v.tests[0].stderr_tail))
    assert seen > 0.2 and counted >= seen - 0.06, (seen, _details(v))


# clone(CLONE_PARENT): a sibling of the attempt's process, so a child of the fork server, which waits for the
# attempt's process alone: the sibling's zombie was never reaped, its CPU never counted, and the uid's task count
# never came back (the clean-up gave up after seconds and the container was replaced, every attempt).
CLONE_PARENT = _code('''
    import ctypes, os, time
    pid = ctypes.CDLL(None, use_errno=True).syscall(56, 0x8000 | 17, 0, 0, 0, 0)  # clone(CLONE_PARENT | SIGCHLD)
    if pid == 0:
        os._exit(0)
    time.sleep(0.1)
    print(0)
''')


def test_a_sibling_by_clone_parent_is_refused(sb) -> None:
    w = sb._workers[0]
    sb.judge(stdio_problem(), ADD_STDIO)
    before = w.container.id
    v = judge_then_reference(sb, stdio_problem(), CLONE_PARENT, {"wrong_answer"}, ADD_STDIO)
    assert w.container.id == before, _details(v)  # nothing was left for the clean-up: the same container
