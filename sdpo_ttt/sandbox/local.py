"""LocalSandbox: the same runner as a host subprocess. Weaker isolation than Docker, for machines without it.

What it does: every test is a fresh child with rlimits (CPU, address space, processes, file size) in its
own session, killed as a group; a fresh temp dir per attempt. When we are root, children run under a
dedicated unprivileged uid per worker (so RLIMIT_NPROC holds, root-only files such as /etc/shadow are
unreadable, and leftovers are swept by uid). What it cannot do: hide the host's world-readable files,
cut the network, or (when not root) stop the attempt from signalling your own processes.
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

from sdpo_ttt.problem import Problem
from sdpo_ttt.sandbox import protocol
from sdpo_ttt.verdict import Verdict

WEAKER_ISOLATION = (
    "using the LOCAL sandbox: attempts run as host processes with rlimits only (no network or filesystem "
    "isolation)"
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
        self.runner_python = sys.executable or "python3"
        self._src = protocol.runner_source()
        self.drop_privileges = os.geteuid() == 0
        base = 400_000 + (os.getpid() % 20_000) * 32  # a uid range no real user or other sandbox owns
        self._slots: queue.Queue[int] = queue.Queue()
        for i in range(self.workers):
            self._slots.put(base + i)
        if self.drop_privileges:
            self.python = _child_python(python or self.runner_python)
            if self.python is None:  # no Python an unprivileged uid can run: keep root, say so
                self.drop_privileges = False
                self.python = python or self.runner_python
        else:
            self.python = python or self.runner_python
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
        """Judge attempts concurrently over the workers; results in input order."""
        return list(self._pool.map(lambda c: self._judge_one(problem, c), codes))

    def _judge_one(self, problem: Problem, code: str) -> Verdict:
        slot = self._slots.get()
        scratch = tempfile.mkdtemp(prefix="sdpo-ttt-attempt-")
        t0 = time.monotonic()
        try:
            extra: dict[str, object] = {}
            if self.drop_privileges:
                os.chmod(scratch, 0o711)
                extra["child_uid"] = slot
            else:
                extra["nproc_relative"] = True  # RLIMIT_NPROC counts all our processes: allow ours + N
            req = protocol.build_request(problem, code, scratch=scratch, python=self.python, **extra)
            n = len(problem.tests)
            budget = n * (problem.limits.time_s * 2.0 + 1.5) + 30.0
            try:
                proc = subprocess.run(
                    [self.runner_python, "-I", "-S", "-c", self._src],
                    input=protocol.encode_request(req), capture_output=True, timeout=budget,
                )
            except subprocess.TimeoutExpired:
                return protocol.sandbox_error(problem, f"the judge took longer than {budget:.0f}s", time.monotonic() - t0)
            events = protocol.parse_events(proc.stdout.splitlines(), req["nonce"])
            return protocol.assemble(problem, events, time.monotonic() - t0,
                                     stderr=proc.stderr.decode("utf-8", "replace"))
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
            self._slots.put(slot)
