"""One attempt process (forked by the fork server under the attempt uid): its output collected within its
caps, its limits watched, and at the end everything of the attempt killed, reaped and its CPU totalled."""

import math
import os
import selectors
import signal
import time

from . import cleanup, cpuacct

STDERR_KEEP = 4000
REPLY_CAP = 64 * 1024 * 1024  # bytes accepted on the reply channel
MB = 1024 * 1024
POLL_S = 0.05
SCAN_EVERY_S = 0.1

_SIGNAMES = {getattr(signal, n): n for n in dir(signal) if n.startswith("SIG") and not n.startswith("SIG_")}


def _rlimits(req, mem):
    as_bytes = mem + int(req.get("as_slack_mb", 64)) * MB
    return [("RLIMIT_CORE", 0), ("RLIMIT_CPU", int(math.ceil(float(req["limits"]["time_s"]))) + 1),
            ("RLIMIT_AS", as_bytes), ("RLIMIT_FSIZE", int(req.get("fsize_mb", 32)) * MB),
            ("RLIMIT_STACK", min(64 * MB, as_bytes // 4)), ("RLIMIT_MSGQUEUE", 0)]


def _environment(test_dir):
    return {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "HOME": test_dir,
            "TMPDIR": test_dir, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


class Proc(object):
    """Start with `Proc(...)`, then `run()`; the outcome of the limits is `limit_outcome()`."""

    def __init__(self, req, test_dir, stdin_fd, session, call_fd, reply_w=None, extra=None):
        self.req = req
        self.session = session
        self.zygote = session.zygote
        self.time_s = float(req["limits"]["time_s"])
        self.mem = int(req["limits"]["memory_mb"]) * MB
        self.out_cap = int(req["output_limit"])
        self.uid = req.get("child_uid")
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        self.fds = {out_r: "stdout", err_r: "stderr"}
        if reply_w is None:  # we read the replies (else the tester does)
            rep_r, rep_w = os.pipe()
            self.fds[rep_r] = "reply"
        else:
            rep_w = os.dup(reply_w)
        self.fds.update(extra or {})  # more fds to read: fd -> name (the tester's events)
        cmd = {"op": "spawn", "cwd": test_dir, "rlimits": _rlimits(req, self.mem), "uid": self.uid,
               "nproc": int(req["nproc"]), "env": _environment(test_dir), "kind": req["kind"],
               "fname": req.get("function_name") or ""}
        # the container's CPU meter (the Docker sandbox: the runner has the container to itself), and what the
        # fork server has reaped of strays and clean-up children so far: everything counts from here
        self.meter = cpuacct.Meter(self.zygote.pid) if session.container else None
        self.stray0, self.helper0 = self.zygote.stray_cpu, self.zygote.helper_cpu
        self.waited_cpu = {}  # pid waited for (the tester) -> its CPU seconds, once reaped
        self.t0 = time.monotonic()
        try:
            self.pid = self.zygote.spawn(cmd, [stdin_fd, out_w, err_w, call_fd, rep_w])
        finally:
            for fd in (out_w, err_w, rep_w):
                os.close(fd)
        self.bufs = {name: bytearray() for name in ("stdout", "stderr", "reply")}
        for name in self.fds.values():
            self.bufs.setdefault(name, bytearray())
        self.over = None  # the stream that went over its cap
        self.killed = None  # "wall", "cpu" or "memory": the limit the runner stopped it for
        self.memory_peak = 0
        self.cpu = 0.0
        self.returncode = None
        self.wall = 0.0

    # ---------------------------------------------------------------------------------------- the run

    def run(self, keep, wait_for=()):
        """Collect output until the process (and every pid in `wait_for`) ended, a cap or a limit was hit.
        Then kill everything of the attempt, reap it, and total its CPU time."""
        if self.pid is None:
            raise RuntimeError("the fork server failed to start the attempt's process")
        self.keep = tuple(keep)
        self.waiting = set(wait_for)
        self.main_cpu, self.reaped_cpu = None, 0.0
        sel = self._open_streams()
        try:
            self._collect(sel)
        finally:
            sel.close()
        self._end_everything()
        self._close_streams()
        return self

    def _collect(self, sel):
        deadline = self.t0 + self.time_s * 2.0 + 0.5
        next_check = self.t0 + SCAN_EVERY_S
        drain_until = None
        while True:
            now = time.monotonic()
            self._poll_exits()
            if drain_until is None and self.main_cpu is not None and not self.waiting:
                drain_until = now + 0.1  # what it wrote just before it ended is still in the pipes
            if not self.open_fds or (drain_until is not None and now >= drain_until):
                return
            if now >= deadline:
                self.killed = "wall"
                return
            if now >= next_check:
                next_check = now + SCAN_EVERY_S
                self.killed = self._over_limits()
                if self.killed:
                    return
            timeout = min(deadline, drain_until or deadline, next_check) - now
            self._read_ready(sel, min(max(timeout, 0.0), POLL_S))
            if self.over:
                return

    def _open_streams(self):
        sel = selectors.DefaultSelector()
        for fd in self.fds:
            os.set_blocking(fd, False)
            sel.register(fd, selectors.EVENT_READ)
        self.open_fds = set(self.fds)
        return sel

    def _poll_exits(self):
        """Note the main process's end (the fork server reaped it) and the end of every pid waited for."""
        if self.main_cpu is None:
            got = self.zygote.exit_message(False)
            if got is not None:
                self.returncode, self.main_cpu = got
        for pid in list(self.waiting):
            try:
                got, _, ru = os.wait4(pid, os.WNOHANG)
                if got:
                    self.waiting.discard(pid)
                    self.waited_cpu[pid] = ru.ru_utime + ru.ru_stime
            except ChildProcessError:
                self.waiting.discard(pid)

    def _over_limits(self):
        """"cpu" or "memory" when the attempt as a whole is over that limit, else None. CPU: every process of
        the attempt, reaped or live (a zombie leader's live threads included), or the container's meter when
        it says more; memory: the container's non-reclaimable memory above the session's baseline, when the
        runner has a container to itself."""
        self.reaped_cpu += cleanup.reap(self.keep)
        live = sum(p[4] + p[5] for p in cleanup.live_attempt_procs(self.uid, self.keep))
        if max(self._counted() + live, self._metered()) > self.time_s:
            return "cpu"
        used = self.session.attempt_memory()
        if used is not None:
            self.memory_peak = max(self.memory_peak, used)
            if used > self.mem:
                return "memory"
        return None

    def _counted(self):
        """CPU seconds of the attempt's processes reaped so far: its main process (with what it waited for), those
        reaped here, and the fork server's strays."""
        return self.reaped_cpu + (self.main_cpu or 0.0) + (self.zygote.stray_cpu - self.stray0)

    def _metered(self):
        """CPU seconds of the attempt by the container's meter (cpuacct.py), less its slack; 0 without one. Every
        process and thread of the attempt counts there, alive or gone, even those no rusage holds."""
        if self.meter is None:
            return 0.0
        others = self.zygote.helper_cpu - self.helper0
        for pid in set(self.waiting) | set(self.waited_cpu):  # the tester: trusted, not the attempt's
            cpu = self.waited_cpu.get(pid)
            others += (cpuacct.group_cpu(pid) or 0.0) if cpu is None else cpu
        got = self.meter.attempt(others)
        return 0.0 if got is None else got - cpuacct.SLACK_S

    def _read_ready(self, sel, timeout):
        for key, _ in sel.select(timeout=timeout):
            fd = key.fd
            try:
                chunk = os.read(fd, 1 << 16)
            except BlockingIOError:
                continue
            except OSError:
                chunk = b""
            if not chunk:
                sel.unregister(fd)
                self.open_fds.discard(fd)
                continue
            name = self.fds[fd]
            buf = self.bufs[name]
            buf += chunk
            if name == "stdout" and len(buf) > self.out_cap:
                self.over = "stdout"
            elif name == "stderr" and len(buf) > 4 * STDERR_KEEP:
                del buf[: len(buf) - 2 * STDERR_KEEP]
            elif len(buf) > REPLY_CAP:
                self.over = name

    def _end_everything(self):
        """Kill the tester (if waited for), the attempt's session, then every process of the attempt uid;
        the attempt's CPU time is its main process's (with what it waited for) and every process reaped."""
        for pid in self.waiting:  # the tester, if the attempt outlived the wall limit or a cap was hit
            try:
                os.kill(pid, signal.SIGKILL)
                ru = os.wait4(pid, 0)[2]
                self.waited_cpu[pid] = ru.ru_utime + ru.ru_stime
            except OSError:
                pass
        self.waiting = set()
        try:
            os.killpg(self.pid, signal.SIGKILL)  # no-op when it exited; its session otherwise
        except OSError:
            pass
        if self.main_cpu is None:  # reaped by the fork server: it exited, or the kill above is being delivered
            self.returncode, self.main_cpu = self.zygote.exit_message(True)
        self.reaped_cpu += self.session.end_attempt_processes(self.uid, self.keep)
        self.cpu = max(self._counted(), self._metered())
        if self.returncode is None:
            self.returncode = -9
        self.wall = time.monotonic() - self.t0

    def _close_streams(self):
        for fd in self.fds:
            try:
                os.close(fd)
            except OSError:
                pass

    # ---------------------------------------------------------------------------------------- results

    def text(self, name):
        return bytes(self.bufs[name]).decode("utf-8", "replace")

    def stderr_tail(self):
        return self.text("stderr")[-STDERR_KEEP:]

    def limit_outcome(self, err_type=""):
        """(outcome, detail) when a limit ended the process or a signal killed it, else None."""
        tail = self.stderr_tail()[-400:]
        rc = self.returncode
        if self.over == "stdout":
            return "output_limit", "printed more than %d bytes" % self.out_cap
        if self.over:
            return "output_limit", "wrote more than %d bytes on its result channel" % REPLY_CAP
        if self.killed in ("wall", "cpu") or self.cpu > self.time_s or rc == -signal.SIGXCPU:
            return "time_limit", "exceeded the time limit of %gs (cpu %.2fs over all its processes, wall %.2fs)" % (
                self.time_s, self.cpu, self.wall)
        if self.killed == "memory":
            return "memory_limit", "its processes together held %d MB, over the memory limit of %d MB" % (
                self.memory_peak // MB, self.mem // MB)
        if rc == -signal.SIGXFSZ or (rc != 0 and ("File too large" in tail or "No space left on device" in tail)):
            return "output_limit", "wrote a file larger than the file size limit (%s MB) or filled the scratch space" % (
                self.req.get("fsize_mb", 32))
        if err_type == "MemoryError" or (rc != 0 and ("MemoryError" in tail or "Cannot allocate memory" in tail)):
            return "memory_limit", "exceeded the memory limit of %d MB" % (self.mem // MB)
        if rc == -signal.SIGKILL:
            return "memory_limit", "killed by SIGKILL (most likely out of memory; limit %d MB)" % (self.mem // MB)
        if rc is not None and rc < 0:
            name = _SIGNAMES.get(-rc, "signal %d" % -rc)
            hint = " (a crash; deep recursion overflowing the stack is a common cause)" if -rc == signal.SIGSEGV else ""
            return "runtime_error", "killed by %s%s" % (name, hint)
        return None
