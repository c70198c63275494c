"""The Docker sandbox for real: hardening, hostile attempts, pool behaviour, clean-up. No mocks."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from sandbox_fixtures import (ADD_FUNC, ADD_STDIO, FORK_BOMB, HOSTILE, function_problem, require_docker,
                              stdio_problem)

pytestmark = pytest.mark.docker
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def sb():
    require_docker()
    from sdpo_ttt.sandbox.docker_backend import DockerSandbox

    with DockerSandbox(workers=1) as s:
        yield s


def _container(sb):
    return sb._workers[0].container


def _assert_clean_and_usable(sb) -> None:
    """No process of the attempt is left in the container, the next attempt passes there, scratch is empty."""
    c = _container(sb)
    c.reload()
    assert c.status == "running"
    w = sb._workers[0]
    # Nothing of the attempt's uid (or the tester's) is alive; only root's init, sleep and the judge session.
    procs = _container_procs(c)
    assert not [pid for pid, uid in procs if uid in (w.uid, w.uid + 1)], procs
    assert all(uid == 0 for _, uid in procs), procs
    v = sb.judge(stdio_problem(), ADD_STDIO)
    assert v.passed, v
    # scratch is wiped at the end of every attempt (and at the start: a runner killed mid-way leaves it)
    listing = c.exec_run(["sh", "-c", "ls -A /tmp /dev/shm"]).output.decode()
    assert listing.split() == ["/dev/shm:", "/tmp:"], listing


_PS = ("import os\nfor d in os.listdir('/proc'):\n if d.isdigit():\n  try:\n"
       "   st = open('/proc/%s/status' % d).read()\n  except OSError:\n   continue\n"
       "  f = dict(l.split(':', 1) for l in st.splitlines() if ':' in l)\n"
       "  print(d, f['Uid'].split()[0])\n")


def _container_procs(c) -> list[tuple[int, int]]:
    """(pid, real uid) of every process in the container, zombies included (one of the attempt's uid, a zombie
    thread-group leader whose threads still run or not, is something its clean-up left), read from its /proc
    (container pids) as root: /proc hides every other uid's processes from anyone outside group 0 (prochide.py)."""
    out = c.exec_run(["python3", "-I", "-S", "-c", _PS], user="0:0").output.decode()
    return [(int(a), int(b)) for a, b in (line.split() for line in out.splitlines())]


def test_container_is_hardened(sb) -> None:
    c = _container(sb)
    hc = c.attrs["HostConfig"]
    assert hc["NetworkMode"] == "none"
    assert hc["ReadonlyRootfs"] is True
    assert hc["CapDrop"] == ["ALL"]
    # the six the runner keeps, and the two it holds only to hide /proc (test_the_runner_hides_proc_then_drops_...)
    assert sorted(hc["CapAdd"]) == sorted(["SETUID", "SETGID", "KILL", "DAC_OVERRIDE", "FOWNER", "CHOWN", "SYS_ADMIN",
                                           "SETPCAP"])
    assert not any("unconfined" in o for o in hc["SecurityOpt"])
    seccomp = [json.loads(o[len("seccomp="):]) for o in hc["SecurityOpt"] if o.startswith("seccomp=")]
    assert len(seccomp) == 1 and seccomp[0]["defaultAction"] == "SCMP_ACT_ERRNO"  # the project's own allow-list
    allowed = {n for rule in seccomp[0]["syscalls"] if rule["action"] == "SCMP_ACT_ALLOW" for n in rule["names"]}
    assert not allowed & {"io_uring_setup", "io_uring_enter", "io_uring_register", "bpf", "userfaultfd", "unshare"}
    mount = [rule for rule in seccomp[0]["syscalls"] if "mount" in rule["names"]]  # one remount of /proc, flags fixed
    assert [(m["args"], m.get("includes")) for m in mount] == [
        ([{"index": 3, "value": 46, "op": "SCMP_CMP_EQ"}], {"caps": ["CAP_SYS_ADMIN"]})]
    assert "no-new-privileges" in hc["SecurityOpt"]
    assert hc["PidsLimit"] and hc["PidsLimit"] > 0
    assert hc["Memory"] > 0 and hc["Memory"] == hc["MemorySwap"]
    assert hc["Init"] is True
    assert hc["LogConfig"]["Type"] == "none"
    assert "/tmp" in hc["Tmpfs"]
    assert c.attrs["Config"]["User"] == "0:0"  # container root with the six capabilities; attempts drop them
    assert c.labels["sdpo-ttt.sandbox"] == "1" and c.labels["sdpo-ttt.owner-pid"] == str(os.getpid())


_CAPS = ("import sys\nfor pid in sys.argv[1:]:\n"
         " print(' '.join(l.split()[1] for l in open('/proc/%s/status' % pid) if l.startswith('Cap')))\n")


def test_the_runner_hides_proc_then_drops_the_capabilities_it_took(sb) -> None:
    assert sb.judge(stdio_problem(), ADD_STDIO).passed
    w = sb._workers[0]
    assert sb.proc is not None and sb.proc["hidden"] is True, sb.proc
    assert "/proc hides other uids' processes" in sb.isolation
    mounts = w.container.exec_run(["cat", "/proc/self/mountinfo"]).output.decode()
    assert [ln for ln in mounts.splitlines() if " /proc " in ln and "hidepid=invisible" in ln], mounts
    out = w.container.exec_run(["python3", "-I", "-S", "-c", _CAPS, *map(str, w.session.pids)], user="0:0")
    rows = [[int(v, 16) for v in line.split()] for line in out.output.decode().splitlines()]
    assert len(rows) == 2 and all(len(r) == 5 for r in rows), rows  # the runner and the fork server: 5 sets each
    for inh, prm, eff, bnd, amb in rows:
        assert not (inh | prm | eff | bnd | amb) & (1 << 21 | 1 << 8), rows  # no SYS_ADMIN, no SETPCAP, in any set
        assert eff == prm == bnd == 0b11101011, rows  # the six: CHOWN DAC_OVERRIDE FOWNER KILL SETGID SETUID


def test_where_proc_cannot_be_hidden_the_sandbox_still_works_and_says_so_once() -> None:
    require_docker()
    from sdpo_ttt.sandbox.docker_backend import DockerSandbox

    said: list[str] = []
    with DockerSandbox(workers=1, hide_proc=False, announce=said.append) as s:  # no CAP_SYS_ADMIN: the remount fails
        for _ in range(2):
            assert s.judge(stdio_problem(), ADD_STDIO).passed
        assert s.judge(stdio_problem(), "print(0)\n").outcome.value == "wrong_answer"
        assert s.proc is not None and s.proc["hidden"] is False and "refused" in s.proc["detail"], s.proc
        assert "NOT hidden" in s.isolation
    assert len(said) == 1 and "could not hide /proc" in said[0], said


@pytest.mark.parametrize("case", HOSTILE + [FORK_BOMB], ids=lambda c: c[0])
def test_hostile_attempt_is_contained(sb, case) -> None:
    name, make_problem, code, allowed = case
    v = sb.judge(make_problem(), code)
    assert v.outcome.value in allowed, (name, v.tests[0].detail, v.tests[0].stderr_tail[-300:])
    assert not v.passed or "passed" in allowed
    _assert_clean_and_usable(sb)


def test_only_loopback_interface(sb) -> None:
    # Lists interfaces only: never sends a packet anywhere.
    p = stdio_problem([("", "lo\n")])
    v = sb.judge(p, "import socket\nprint(' '.join(name for _, name in socket.if_nameindex()))\n")
    assert v.passed, v.tests[0].got


def test_host_files_are_invisible(sb) -> None:
    canary = REPO / f".sandbox-canary-{secrets.token_hex(4)}"
    canary.write_text("secret")
    try:
        p = stdio_problem([("", "False False\n")])
        code = f"import os\nprint(os.path.exists({str(canary)!r}), os.path.exists({str(REPO / 'pyproject.toml')!r}))\n"
        v = sb.judge(p, code)
        assert v.passed, v.tests[0].got
    finally:
        canary.unlink()


def test_files_in_tmp_do_not_carry_over_to_the_next_attempt(sb) -> None:
    p = stdio_problem([("", "ok\n")])
    writer = "open('/tmp/leftover', 'w').write('x')\nopen('/dev/shm/leftover', 'w').write('x')\nprint('ok')\n"
    assert sb.judge(p, writer).passed
    reader = "import os\nprint('ok' if not os.path.exists('/tmp/leftover') and not os.path.exists('/dev/shm/leftover') else 'leak')\n"
    v = sb.judge(p, reader)
    assert v.passed, v.tests[0].got


def test_the_fork_server_cannot_be_signalled(sb) -> None:
    p = stdio_problem([("1 2\n", "3\n"), ("2 2\n", "4\n")], time_s=0.5)
    v = sb.judge(p, "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\na, b = map(int, input().split())\nprint(a + b)\n")
    assert [t.outcome.value for t in v.tests] == ["runtime_error", "runtime_error"]
    assert all("PermissionError" in t.detail for t in v.tests)
    _assert_clean_and_usable(sb)


def test_kill_init_is_refused(sb) -> None:
    v = sb.judge(stdio_problem([("1 2\n", "3\n")], time_s=0.5), "import os\nos.kill(1, 9)\nprint(3)\n")
    assert v.outcome.value == "runtime_error" and "PermissionError" in v.tests[0].detail
    _assert_clean_and_usable(sb)


def test_kill_everything_only_kills_the_attempt_itself(sb) -> None:
    p = stdio_problem([("1 2\n", "3\n"), ("5 7\n", "12\n")], time_s=0.5)
    w = sb._workers[0]
    sb.judge(stdio_problem(), ADD_STDIO)
    before = w.session.pids
    v = sb.judge(p, "import os\nos.kill(-1, 9)\n")
    # kill(-1) reaches every process the caller may signal but itself: under its own uid, none
    assert [t.outcome.value for t in v.tests] == ["wrong_answer", "wrong_answer"]
    assert w.session.pids == before  # the runner and fork server were never touched
    _assert_clean_and_usable(sb)


def test_judge_many_keeps_input_order_over_a_pool() -> None:
    require_docker()
    from sdpo_ttt.sandbox import open_sandbox

    p = function_problem()
    codes = [ADD_FUNC, "def add(a, b):\n    return a - b\n", "def add(a, b):\n    return 'x'\n", ADD_FUNC, "def add(:"]
    with open_sandbox("docker", workers=2) as s:
        assert s.name == "docker"
        got = [v.outcome.value for v in s.judge_many(p, codes)]
    assert got == ["passed", "wrong_answer", "wrong_answer", "passed", "compile_error"]


def test_stale_containers_are_reaped_and_live_ones_kept(sb) -> None:
    from sdpo_ttt.sandbox import docker_container as db

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    labels = {db.LABEL: "1", db.LABEL_PID: str(dead.pid), db.LABEL_HOST: __import__("socket").gethostname()}
    stale = sb.client.containers.create(db.DEFAULT_IMAGE, ["true"], labels=labels, network_mode="none")
    removed = db.reap_stale(sb.client)
    assert stale.name in removed
    assert _container(sb).name not in removed  # ours: owner (this process) is alive
    _container(sb).reload()


def test_sigterm_removes_containers() -> None:
    require_docker()
    script = textwrap.dedent("""
        import sys, time
        from sdpo_ttt.sandbox.docker_backend import DockerSandbox
        sb = DockerSandbox(workers=1)
        print(sb._workers[0].container.name, flush=True)
        time.sleep(60)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, cwd=REPO)
    name = proc.stdout.readline().strip()
    assert name.startswith("sdpo-ttt-sb-")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == -signal.SIGTERM
    import docker

    client = docker.from_env()
    names = [c.name for c in client.containers.list(all=True, filters={"label": "sdpo-ttt.sandbox=1"})]
    assert name not in names


def test_close_removes_containers() -> None:
    require_docker()
    from sdpo_ttt.sandbox.docker_backend import DockerSandbox

    s = DockerSandbox(workers=1)
    name = s._workers[0].container.name
    s.close()
    names = [c.name for c in s.client.containers.list(all=True)]
    assert name not in names
    with pytest.raises(RuntimeError, match="^this sandbox is closed$"):
        s.judge(stdio_problem(), ADD_STDIO)
    time.sleep(0)


def test_the_judge_session_is_reused_across_attempts(sb) -> None:
    assert sb.judge(stdio_problem(), ADD_STDIO).passed
    w = sb._workers[0]
    first = w.session
    assert first is not None and first.pids and None not in first.pids
    procs = dict(_container_procs(_container(sb)))
    assert all(procs.get(pid) == 0 for pid in first.pids), (first.pids, procs)  # root: out of the attempt's reach
    for _ in range(3):
        assert sb.judge(stdio_problem(), ADD_STDIO).passed
    assert w.session is first and w.session.pids == first.pids


ENV_PROBE = textwrap.dedent('''
    import os
    cwd = os.getcwd()
    assert os.environ["HOME"] == cwd and os.environ["TMPDIR"] == cwd, (dict(os.environ), cwd)
    print(" ".join(sorted(os.environ)), os.getenv("PYTHONDONTWRITEBYTECODE"), os.getenv("HOSTNAME"))
''')


def test_every_test_process_gets_exactly_its_environment(sb) -> None:
    # the fork server sets the attempt's environment before it forks (only HOME and TMPDIR change between
    # tests): each test sees its own directory, and nothing of the server's own environment
    keys = "HOME LANG LC_ALL MKL_NUM_THREADS OMP_NUM_THREADS OPENBLAS_NUM_THREADS PATH TMPDIR"
    expected = f"{keys} None None\n"
    p = stdio_problem([("", expected)] * 3, mode="exact")
    for _ in range(2):
        v = sb.judge(p, ENV_PROBE)
        assert v.passed, [(t.outcome, t.got, t.stderr_tail[-300:]) for t in v.tests]


STDIO_PROBE = textwrap.dedent('''
    import os, sys
    # each test process gets new sys.stdin/stdout/stderr (inherited from the fork server, never used there):
    # what an earlier test left in their buffers or learnt about their fds is not here
    state = (sys.stdin.seekable(), sys.stdin.tell(), sys.stdout.seekable(), sys.stderr.seekable(),
             sys.stdout.fileno(), sys.stderr.line_buffering, sys.stdout.encoding, sys.stdin.buffer.raw.tell())
    line = sys.stdin.readline()
    sys.stdout.write("%s %r\\n" % (line.strip(), state))
    if line.strip() == "first":
        sys.stdout.flush()
        sys.stdout.write("LEFT IN THE BUFFER")
        sys.stdin.readline()  # a half-read stdin
        os._exit(0)  # without flushing
''')


def test_every_test_process_gets_new_stdio(sb) -> None:
    state = "(True, 0, False, False, 1, True, 'utf-8', 0)"
    p = stdio_problem([("first\nsecond line\n", f"first {state}\n"), ("second\n", f"second {state}\n")],
                      mode="exact")
    v = sb.judge(p, STDIO_PROBE)
    assert v.passed, [(t.outcome, t.got, t.stderr_tail[-300:]) for t in v.tests]


TAMPER = {
    # what a same-uid attempt could do to a persistent runner / fork server without ptrace rights; under its
    # own uid every one of them is refused (EPERM)
    "prlimit-runner": "import os, resource\nfor p in os.listdir('/proc'):\n    try:\n"
                      "        resource.prlimit(int(p), resource.RLIMIT_NOFILE, (8, 8))\n    except Exception:\n        pass\nprint(3)\n",
    "renice-fork-server": "import os\nos.setpriority(os.PRIO_PROCESS, os.getppid(), 19)\nprint(3)\n",
    "affinity-fork-server": "import os\nos.sched_setaffinity(os.getppid(), {sorted(os.sched_getaffinity(0))[0]})\nprint(3)\n",
    "idle-sched-fork-server": "import os\nos.sched_setscheduler(os.getppid(), os.SCHED_IDLE, os.sched_param(0))\nprint(3)\n",
    "stop-fork-server": "import os, signal\nos.kill(os.getppid(), signal.SIGSTOP)\nprint(3)\n",
    "sigint-runner": "import os, signal\nfor p in os.listdir('/proc'):\n    try:\n"
                     "        os.kill(int(p), signal.SIGINT) if int(p) != os.getpid() else None\n    except Exception:\n        pass\nprint(3)\n",
}


@pytest.mark.parametrize("name", sorted(TAMPER))
def test_tampering_with_the_session_is_refused(sb, name) -> None:
    w = sb._workers[0]
    assert sb.judge(stdio_problem(), ADD_STDIO).passed
    before = w.session.pids
    p = stdio_problem([("1 2\n", "3\n")], time_s=0.5)
    sb.judge(p, TAMPER[name])  # its own verdict may be anything; the next attempts must not notice
    for _ in range(2):
        v = sb.judge(stdio_problem(), ADD_STDIO)
        assert v.passed, (name, [(t.outcome.value, t.detail) for t in v.tests])
    assert w.session.pids == before  # nothing needed replacing
    _assert_clean_and_usable(sb)


def test_a_bad_runner_event_is_one_sandbox_error_and_a_fresh_container(monkeypatch) -> None:
    require_docker()
    from sdpo_ttt.sandbox import protocol
    from sdpo_ttt.sandbox.docker_backend import DockerSandbox

    real = protocol.check_events
    calls = {"n": 0}

    def first_one_is_bad(events, n_tests):
        calls["n"] += 1
        if calls["n"] == 1:
            raise protocol.BadEvent("injected")
        return real(events, n_tests)

    with DockerSandbox(workers=1) as s:
        w = s._workers[0]
        before = w.container.id
        monkeypatch.setattr(protocol, "check_events", first_one_is_bad)
        v = s.judge(stdio_problem(), ADD_STDIO)
        assert v.outcome.value == "sandbox_error" and "injected" in v.tests[0].detail
        assert w.container.id != before  # replaced, and judging goes on
        assert s.judge(stdio_problem(), ADD_STDIO).passed


def test_no_exception_leaves_judge_many(monkeypatch) -> None:
    require_docker()
    from sdpo_ttt.sandbox.docker_backend import DockerSandbox, _Worker

    def broken(self, *a, **k):
        raise ConnectionError("the daemon went away")

    with DockerSandbox(workers=1) as s:
        monkeypatch.setattr(_Worker, "run_request", broken)
        vs = s.judge_many(stdio_problem(), [ADD_STDIO, ADD_STDIO])
        assert [v.outcome.value for v in vs] == ["sandbox_error", "sandbox_error"]
        assert "the daemon went away" in vs[0].tests[0].detail
        monkeypatch.undo()
        assert s.judge(stdio_problem(), ADD_STDIO).passed


def test_a_damaged_container_is_replaced_after_the_runner_fails(sb) -> None:
    """The runner fails (`error` event) when its container is damaged -- here /dev/null removed behind its
    back: that attempt is a sandbox_error, and the container is replaced, so the next attempt passes (a fresh
    session in the same container would fail the same way forever)."""
    assert sb.judge(function_problem(), ADD_FUNC).passed  # a session is open
    c = _container(sb)
    assert c.exec_run(["rm", "-f", "/dev/null"], user="0:0").exit_code == 0
    v = sb.judge(function_problem(), ADD_FUNC)
    assert v.outcome.value == "sandbox_error", v
    assert _container(sb).id != c.id
    for _ in range(2):
        assert sb.judge(function_problem(), ADD_FUNC).passed
