"""The fork server: a process forked from the runner before the runner reads any request, so its memory
(and every child's) holds the bundled code and nothing of any test. For each test the runner sends it the
child's fds (SCM_RIGHTS over a SOCK_SEQPACKET pair) and a command; it forks, the child sets up its session,
rlimits and stdio, goes through `privdrop.drop_privileges`, and runs `harness.main` (op "spawn") or, as the
attempt uid, kills every process of that uid ("clean" with "kill") and removes its IPC objects ("clean").
Forking an initialized interpreter costs ~1 ms instead of the ~30 ms of starting one; each test still runs in its own fresh process. The server answers
`{"pid": N}` (sent by the child itself, before it does anything else) and `{"exit": rc, "cpu": seconds, "stray":
seconds}` when that child has been reaped ("stray": the CPU of any other child of the server reaped meanwhile).

It runs under the runner's uid (root in the container, with the few capabilities the runner keeps) and is
non-dumpable: an attempt's process (another uid, no capabilities) can neither signal, trace nor open it.
"""

import fcntl
import io
import json
import os
import resource
import socket
import sys

from . import cleanup, harness, privdrop

MAX_FDS = 8


def start():
    """Fork the server; returns (pid, the runner's end of its socket)."""
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            a.close()
            _detach_stdio(b.fileno())
            serve(b)
            code = 0
        finally:
            os._exit(code)
    b.close()
    return pid, a


def _detach_stdio(keep):
    """Point fds 0-2 at /dev/null and close every other fd but `keep` (the runner's request stream and
    event stream must not exist here)."""
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)
    os.closerange(3, keep)
    os.closerange(keep + 1, 1 << 16)


def serve(sock):
    privdrop._prctl(privdrop.PR_SET_DUMPABLE, 0)
    import site  # the runner runs with -S; attempts get the usual site dirs (numpy) and builtins (exit)

    site.main()
    import gc

    stdio = _stdio_prototypes()
    gc.freeze()  # what every child inherits is never scanned by their GC: fewer copy-on-write page faults
    while True:
        try:
            msg, fds, _, _ = socket.recv_fds(sock, 1 << 16, MAX_FDS)
        except OSError:
            return
        if not msg:
            return
        if msg == b"ping":
            for fd in fds:
                os.close(fd)
            sock.send(b"pong")
            continue
        cmd = json.loads(msg)
        if "env" in cmd:  # here, before the fork (the child inherits it): between tests only HOME and TMPDIR change
            _set_environ(cmd["env"])
        # As little as possible runs here between the fork and the wait: after a fork every page this
        # process writes costs a copy-on-write fault. The child reports its own pid (first thing, still
        # trusted code), so the report always precedes the exit message sent below.
        pid = os.fork()
        if pid == 0:
            _child(cmd, fds, sock, stdio)
        for fd in fds:
            os.close(fd)
        rc, cpu, stray = _wait(pid)
        sock.send(b'{"exit": %d, "cpu": %s, "stray": %s}' % (
            rc, b"null" if cpu is None else repr(cpu).encode(), repr(stray).encode()))


def _wait(pid):
    """(exit code, CPU seconds of `pid` with what it waited for, CPU seconds of the other children reaped
    meanwhile). Other children: siblings an attempt made with clone(CLONE_PARENT) (the local sandbox has no
    seccomp profile to refuse it), reaped here so that their CPU counts and the uid's task count comes back."""
    stray = 0.0
    while True:
        try:
            got, st, ru = os.wait4(-1, 0)
        except ChildProcessError:
            return -9, None, stray
        if got != pid:
            stray += ru.ru_utime + ru.ru_stime
            continue
        rc = -os.WTERMSIG(st) if os.WIFSIGNALED(st) else os.WEXITSTATUS(st)
        return rc, ru.ru_utime + ru.ru_stime, stray


def _set_environ(env):
    """Make os.environ (and the C environment) exactly `env`, changing only what differs."""
    for k in [k for k in os.environ if k not in env]:
        del os.environ[k]
    for k, v in env.items():
        if os.environ.get(k) != v:
            os.environ[k] = v


def _child(cmd, fds, sock, stdio):
    """In the forked child: never returns."""
    code = 1
    try:
        sock.send(b'{"pid": %d}' % os.getpid())
        sock.close()
        if cmd["op"] == "clean":
            privdrop.drop_privileges(cmd.get("uid"))
            code = 0
            if cmd.get("kill"):  # only ever under a uid of the attempt's own (never ours: see kill_all_of_mine)
                if cmd.get("uid") is None or os.getuid() == 0:
                    raise privdrop.PrivilegeError("kill(-1) only as a dedicated attempt uid")
                code = 0 if cleanup.kill_all_of_mine() else 1
            if cmd.get("ipc", True):
                cleanup.remove_own_ipc(cmd.get("ids"))
        else:
            code = _attempt(cmd, fds, stdio)
    except BaseException:  # noqa - the child must reach os._exit whatever happened
        code = 1
    finally:
        os._exit(code & 0xFF)


def _stdio_prototypes():
    """The attempt's sys.stdin, sys.stdout and sys.stderr, built once here and never used here: each child
    inherits them new instead of building three text wrappers itself (codec look-ups and buffers: about 30
    copy-on-write page faults per test). Built over fds of the kinds the child's fds 0-2 are (stdin: /dev/null,
    seekable at offset 0 like the child's input file or /dev/null; stdout and stderr: a pipe), so what the
    wrappers learn about their fd when built (seekable, position) holds in the child."""
    r, w = os.pipe()
    saved = [os.dup(1), os.dup(2)]
    try:
        os.dup2(w, 1)
        os.dup2(w, 2)
        stdin = io.TextIOWrapper(io.BufferedReader(io.FileIO(0, "r", closefd=False)), encoding="utf-8")
        out = io.TextIOWrapper(io.BufferedWriter(io.FileIO(1, "w", closefd=False)), encoding="utf-8")
        err = io.TextIOWrapper(io.BufferedWriter(io.FileIO(2, "w", closefd=False)), encoding="utf-8",
                               errors="backslashreplace", line_buffering=True)
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in saved + [r, w]:
            os.close(fd)
    return stdin, out, err


def _attempt(cmd, fds, stdio):
    """Set up the attempt's process (run as root until the drop), then run the harness."""
    os.setsid()
    # fds: stdin, stdout, stderr, then the call channel (becomes fd 3) and the reply channel (fd 4); moved
    # out of the way first, so no dup2 can overwrite one not yet placed
    high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 256) for fd in fds[:5]]
    for i, fd in enumerate(high):
        os.dup2(fd, i)
    os.closerange(5, 1 << 16)
    os.chdir(cmd["cwd"])
    try:  # the OOM killer takes the attempt, never the runner
        fd = os.open("/proc/self/oom_score_adj", os.O_WRONLY)
        try:
            os.write(fd, b"1000")
        finally:
            os.close(fd)
    except OSError:
        pass
    for name, val in cmd["rlimits"]:
        resource.setrlimit(getattr(resource, name), (val, val))
    privdrop.drop_privileges(cmd.get("uid"), dumpable=True)
    resource.setrlimit(resource.RLIMIT_NPROC, (cmd["nproc"], cmd["nproc"]))
    # os.environ is cmd["env"] already: the server set it before the fork (_set_environ)
    stdin, out, err = stdio  # fresh: built by the server (over fds of these kinds) and never used
    sys.stdin = sys.__stdin__ = stdin
    sys.stdout = sys.__stdout__ = out
    sys.stderr = sys.__stderr__ = err
    sys.argv = ["solution.py"]
    return harness.main(cmd["kind"], cmd["fname"], out, err)
