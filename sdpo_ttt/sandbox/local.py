"""LocalSandbox: the same runner as a host subprocess, for machines without Docker; announced as weaker.

Every test is a fresh process (forked by the runner's fork server) with rlimits (CPU, address space,
processes, file size), its own session, killed as a group, in a fresh scratch dir; the CPU of every process
of the attempt is counted. What else holds depends on who runs it:

- as root: the runner runs under a Python every uid can read (none: it refuses to start rather than
  run attempts as root), and each attempt under a dedicated
  unprivileged uid per worker with no capabilities (script tests' test program under a second one). The
  attempt cannot signal, ptrace or open /proc/*/fd of the runner, the fork server, the tester or your
  session; root-only files are unreadable; after the attempt every process of its uid, every file it owns
  in the world-writable dirs (/tmp, /var/tmp, /dev/shm, /dev/mqueue, /run/lock and those below them)
  and every SysV IPC object it created are removed.
- not root: everything runs under YOUR uid. The runner and fork server are non-dumpable (no ptrace, no
  /proc/<pid>/fd or mem of theirs), but the attempt CAN signal them and every other process of yours (your
  session included), read and write every file you can, and its files outside the scratch dir survive.
  Its processes are still swept (descendants of the runner, a child subreaper) and the SysV IPC objects
  created while it ran are removed. Not a security boundary: for code you would run yourself.

Never isolated here (Docker is): the network, the host's world-readable files, the machine's memory.
"""

from __future__ import annotations

import os
import queue
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from sdpo_ttt.errors import SandboxUnavailable
from sdpo_ttt.problem.schema import Problem
from sdpo_ttt.sandbox import protocol
from sdpo_ttt.sandbox.verdict import Verdict

WEAKER_ISOLATION = (
    "using the LOCAL sandbox: attempts run as host processes with rlimits only (no network or filesystem "
    "isolation; unless started as root they run under your own uid and can signal your processes and "
    "write your files)"
)


def _reachable_by_others(path: str) -> bool:
    """True when a process of an unrelated uid can execute `path` (every parent dir is o+x)."""
    p = Path(os.path.realpath(path))
    try:
        if not p.stat().st_mode & stat.S_IXOTH:
            return False
        for parent in p.parents:
            if not parent.stat().st_mode & stat.S_IXOTH:
                return False
    except OSError:
        return False
    return True


def _child_python(preferred: str) -> str | None:
    """A Python an unprivileged uid can run: ours when reachable, else a system one."""
    for cand in (preferred, "/usr/bin/python3", "/usr/local/bin/python3"):
        if cand and os.path.exists(cand) and _reachable_by_others(cand):
            return cand
    return None


class LocalSandbox:
    """Judge attempts with host subprocesses (see module doc for what that does and does not isolate)."""

    name = "local"

    def __init__(self, workers: int = 2, *, python: str | None = None) -> None:
        self.workers = max(1, min(int(workers), 32))
        self.drop_privileges = os.geteuid() == 0
        base = 400_000 + (os.getpid() % 20_000) * 64  # a uid range no real user or other sandbox owns
        self._slots: queue.Queue[int] = queue.Queue()
        for i in range(self.workers):
            self._slots.put(base + 2 * i)  # attempt uid; +1 is the tester's
        preferred = python or sys.executable or "python3"
        self.python = preferred
        if self.drop_privileges:
            # the attempt is forked from the runner's interpreter: its uid must be able to read that Python
            reachable = _child_python(preferred)
            if reachable is None:  # never run attempts as root
                raise SandboxUnavailable(
                    "the local sandbox runs as root but finds no Python an unprivileged uid can run, so attempts "
                    "would run as root", "install a system python3 (/usr/bin/python3), or use the Docker sandbox")
            self.python = reachable
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="sdpo-local")
        self._closed = False

    @property
    def isolation(self) -> str:
        who = "a dedicated unprivileged uid per worker" if self.drop_privileges else "your own uid"
        return f"host subprocesses under {who}, rlimits, no network/filesystem isolation"

    def __enter__(self) -> "LocalSandbox":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._pool.shutdown(wait=True)

    def judge(self, problem: Problem, code: str) -> Verdict:
        return self.judge_many(problem, [code])[0]

    def judge_many(self, problem: Problem, codes: list[str]) -> list[Verdict]:
        """Judge attempts concurrently over the workers; results in input order. Never raises for an
        attempt: whatever goes wrong in the verifier is that attempt's sandbox_error."""
        return list(self._pool.map(lambda c: self._judge_safely(problem, c), codes))

    def _judge_safely(self, problem: Problem, code: str) -> Verdict:
        t0 = time.monotonic()
        try:
            return self._judge_one(problem, code)
        except Exception as e:  # noqa: BLE001 - no exception from judging may end a run
            return protocol.sandbox_error(problem, f"the local sandbox failed: {type(e).__name__}: {e}",
                                          time.monotonic() - t0)

    def _judge_one(self, problem: Problem, code: str) -> Verdict:
        slot = self._slots.get()
        scratch = tempfile.mkdtemp(prefix="sdpo-ttt-attempt-")
        t0 = time.monotonic()
        try:
            extra: dict[str, object] = {}
            if self.drop_privileges:
                os.chmod(scratch, 0o711)
                extra.update(child_uid=slot, tester_uid=slot + 1)
            req = protocol.build_request(problem, code, scratch=scratch, **extra)
            n = len(problem.tests)
            budget = n * (problem.limits.time_s * 2.0 + 1.5) + 30.0
            try:
                proc = subprocess.run(
                    protocol.runner_command(self.python, serve=False),
                    input=protocol.bundle_frame() + protocol.encode_request(req), capture_output=True, timeout=budget,
                )
            except subprocess.TimeoutExpired:
                return protocol.sandbox_error(problem, f"the judge took longer than {budget:.0f}s", time.monotonic() - t0)
            verdict, _ = protocol.safe_assemble(problem, proc.stdout.splitlines(), req["nonce"], time.monotonic() - t0,
                                                stderr=proc.stderr.decode("utf-8", "replace"),
                                                runner_reachable=not self.drop_privileges)
            return verdict
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
            self._slots.put(slot)
