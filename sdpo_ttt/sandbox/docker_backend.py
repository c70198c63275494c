"""DockerSandbox: a small pool of long-lived hardened containers, one attempt at a time per container.

Each container: no network, read-only root, tmpfs /tmp, pids limit, memory == memory+swap, private IPC
namespace, log driver none, docker's init as pid 1, the project's seccomp profile, no-new-privileges,
labelled with the owner's pid. Its processes run as container root with every capability dropped but
the six the runner needs to drop to the attempt's uid and clean up after it (`RUNNER_CAPS`). The runner
(`box/runner.py`, one long-lived `docker exec` per container: a judge session fed attempts one after
another on its stdin) and its fork server stay root; every attempt runs under a uid dedicated to that
container, with no capabilities (`box/privdrop.py`), and script tests' test program under a second one.
So an attempt can never signal, ptrace or open /proc/<pid>/fd of the runner, the fork server, init or the
exec session, and never reaches the host's end of the session. After every attempt the runner removes
every process, file and IPC object of the attempt uid and reports the container's memory; a session that
could not clean up (`exiting`) is replaced, a container whose memory did not come back to its baseline
(`replace_container`) too. A request that found its session gone is re-sent, once, to a fresh one; any
other failure is a sandbox_error for that one attempt, never an exception out of `judge_many`.

Here: the pool (`DockerSandbox`, one `_Worker` per container) and its exit hooks; a container's settings, labels
and reaping in docker_container.py; the judge session's stream protocol in docker_session.py.
"""

from __future__ import annotations

import atexit
import os
import queue
import random
import signal
import threading
import time
import sys
import weakref
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

from sdpo_ttt.errors import SandboxUnavailable
from sdpo_ttt.problem.schema import Problem
from sdpo_ttt.sandbox import protocol
from sdpo_ttt.sandbox.docker_container import DEFAULT_IMAGE, docker_fix, reap_stale, start_container
from sdpo_ttt.sandbox.docker_session import Session
from sdpo_ttt.sandbox.verdict import Verdict

SCRATCH = "/tmp/attempt"

_LIVE: "weakref.WeakSet[DockerSandbox]" = weakref.WeakSet()
_HOOKS_INSTALLED = False


def _close_all() -> None:
    for sb in list(_LIVE):
        sb.close()


def _on_signal(signum: int, frame: Any) -> None:
    _close_all()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def _install_hooks() -> None:
    """Remove our containers at exit and on SIGTERM/SIGHUP (SIGINT raises KeyboardInterrupt, then atexit)."""
    global _HOOKS_INSTALLED
    if _HOOKS_INSTALLED:
        return
    _HOOKS_INSTALLED = True
    atexit.register(_close_all)
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGHUP):
            if signal.getsignal(sig) in (signal.SIG_DFL, None):
                signal.signal(sig, _on_signal)


class _Worker:
    """One container and the uid its attempts run under."""

    def __init__(self, sb: "DockerSandbox", index: int) -> None:
        self.sb = sb
        self.index = index
        self.uid = 0
        self.container: Any = None
        self.session: Session | None = None
        self.start()

    def start(self) -> None:
        sb = self.sb
        # uids no other container of any sandbox uses (RLIMIT_NPROC is counted per uid machine-wide):
        # the attempt's, and +1 for the tester's
        self.uid = 300_000 + random.randrange(0, 90_000) * 16 + 2 * (self.index % 8)
        self.container = start_container(sb.client, sb.image, self.index, mem_limit_mb=sb.mem_limit_mb,
                                         pids_limit=sb.pids_limit, tmpfs_mb=sb.tmpfs_mb, hide_proc=sb.hide_proc)

    def restart(self) -> None:
        self.remove()
        self.start()

    def remove(self) -> None:
        self.drop_session()
        if self.container is not None:
            try:
                self.container.remove(force=True)
            except Exception:  # noqa: BLE001 - already gone
                pass
            self.container = None

    def alive(self) -> bool:
        try:
            self.container.reload()
            return self.container.status == "running"
        except Exception:  # noqa: BLE001
            return False

    def run_request(self, data: bytes, nonce: str, timeout: float) -> tuple[list[bytes], bytes, bool]:
        """Send one request to this container's judge session (opened, or reopened if it died, first).
        Returns (the stdout lines of this request, its stderr, whether the session ended meanwhile); a
        container the runner asked to replace (memory not back to its baseline) is replaced here.
        Raises TimeoutError, or what docker raises when the exec cannot be started."""
        if self.session is None:
            self.session = Session(self.sb.client, self.container)
        s = self.session
        try:
            lines, err, ended = s.request(data, nonce, timeout)
        except BaseException:
            self.drop_session()
            raise
        self.sb.note_proc(s.proc)
        if s.replace_container:
            self.restart()
        elif ended:
            self.drop_session()
        return lines, err, ended

    def drop_session(self) -> None:
        if self.session is not None:
            self.session.close()
            self.session = None


class DockerSandbox:
    """A pool of hardened containers; `judge_many` spreads attempts over them (thread per container)."""

    name = "docker"

    def __init__(self, workers: int = 2, *, image: str = DEFAULT_IMAGE, mem_limit_mb: int = 1024,
                 pids_limit: int = 128, tmpfs_mb: int = 256, client: Any = None,
                 announce: Callable[[str], None] | None = None, hide_proc: bool = True) -> None:
        import docker

        self.image = image
        self.hide_proc = hide_proc  # False: containers without the capabilities to hide /proc (tests of the fallback)
        self.proc: dict[str, Any] | None = None  # what the runners report about /proc (box/prochide.py), once known
        self._announce = announce or (lambda m: print(m, file=sys.stderr, flush=True))
        self.mem_limit_mb = mem_limit_mb
        self.pids_limit = pids_limit
        self.tmpfs_mb = tmpfs_mb
        self.memory_slack_mb = 64  # container memory (anon + shmem) above its baseline after an attempt: replace it
        self._closed = False
        self._lock = threading.Lock()
        try:
            self.client = client or docker.from_env(timeout=60, max_pool_size=max(10, 2 * workers))
            self.client.ping()
            self.client.images.get(image)
        except Exception as e:  # noqa: BLE001
            raise SandboxUnavailable(f"the Docker sandbox cannot start: {type(e).__name__}: {e}",
                                     docker_fix(image)) from None
        reap_stale(self.client)
        _install_hooks()
        _LIVE.add(self)
        n = max(1, int(workers))
        self._workers: list[_Worker] = []
        try:
            with ThreadPoolExecutor(n) as ex:
                self._workers = list(ex.map(lambda i: _Worker(self, i), range(n)))
        except Exception as e:  # noqa: BLE001
            self.close()
            raise SandboxUnavailable(f"cannot start sandbox containers from {image}: {e}", docker_fix(image)) from None
        self._free: queue.Queue[_Worker] = queue.Queue()
        for w in self._workers:
            self._free.put(w)
        self._pool = ThreadPoolExecutor(n, thread_name_prefix="sdpo-docker")

    @property
    def isolation(self) -> str:
        proc = "" if self.proc is None else ", /proc hides other uids' processes" if self.proc["hidden"] else \
            ", /proc NOT hidden: attempts see the runner's and the tester's processes"
        return (f"{len(self._workers)} hardened container(s) from {self.image} (no network, read-only root, "
                f"attempts under their own uid without capabilities{proc})")

    def note_proc(self, proc: dict[str, Any] | None) -> None:
        """What a runner reported about /proc; announced once per sandbox when it could not be hidden."""
        if proc is None:
            return
        with self._lock:
            first_refusal = not proc["hidden"] and (self.proc is None or self.proc["hidden"])
            self.proc = proc
        if first_refusal:
            self._announce(f"notice: the Docker sandbox could not hide /proc ({proc['detail']}): attempts can see the "
                           "runner's and the tester's processes and their /proc files (a timing signal); every other "
                           "guarantee holds (docs/verifier.md)")

    def __enter__(self) -> "DockerSandbox":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        pool = getattr(self, "_pool", None)
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
        workers = getattr(self, "_workers", [])
        if workers:
            with ThreadPoolExecutor(len(workers)) as ex:
                list(ex.map(lambda w: w.remove(), workers))
        _LIVE.discard(self)

    def judge(self, problem: Problem, code: str) -> Verdict:
        return self.judge_many(problem, [code])[0]

    def judge_many(self, problem: Problem, codes: list[str]) -> list[Verdict]:
        """Judge attempts concurrently, one per free container; results in input order."""
        if self._closed:
            raise RuntimeError("this sandbox is closed")
        return list(self._pool.map(lambda c: self._judge_one(problem, c), codes))

    def _judge_one(self, problem: Problem, code: str) -> Verdict:
        w = self._free.get()
        t0 = time.monotonic()
        try:
            return self._judge_on(w, problem, code)
        except Exception as e:  # noqa: BLE001 - no exception from judging may end a run: this attempt's error
            try:
                w.restart()
            except Exception:  # noqa: BLE001 - the next attempt on this worker retries with a fresh container
                pass
            return protocol.sandbox_error(problem, f"the Docker sandbox failed: {type(e).__name__}: {e}",
                                          time.monotonic() - t0)
        finally:
            self._free.put(w)

    def _judge_on(self, w: _Worker, problem: Problem, code: str, retry: bool = True) -> Verdict:
        req = protocol.build_request(problem, code, scratch=SCRATCH, child_uid=w.uid, tester_uid=w.uid + 1,
                                     wipe=["/dev/shm", "/tmp"],  # all of the tmpfs: nothing carries over
                                     container=True,  # one attempt at a time: its cgroup counts are the attempt's
                                     memory_slack_mb=self.memory_slack_mb)
        budget = len(problem.tests) * (problem.limits.time_s * 2.0 + 1.5) + 30.0
        t0 = time.monotonic()
        try:
            lines, err, ended = w.run_request(protocol.encode_request(req), req["nonce"], budget)
        except TimeoutError:
            w.restart()
            return protocol.sandbox_error(problem, f"the judge took longer than {budget:.0f}s", time.monotonic() - t0)
        except Exception as e:  # noqa: BLE001 - the container died or the daemon hiccupped: fresh one, once
            if self._closed:
                return protocol.sandbox_error(problem, "the sandbox was closed", time.monotonic() - t0)
            w.restart()
            if retry:
                return self._judge_on(w, problem, code, retry=False)
            return protocol.sandbox_error(problem, f"docker exec failed: {type(e).__name__}: {e}", time.monotonic() - t0)
        prefix = req["nonce"].encode() + b" "
        if not any(ln.startswith(prefix) for ln in lines) and retry:
            # Nothing of this attempt ran (no `start`): the session was gone before it (it left after the
            # previous attempt, or died between attempts). A fresh session, in a fresh container if need be.
            if not w.alive():
                w.restart()
            return self._judge_on(w, problem, code, retry=False)
        verdict, broken = protocol.safe_assemble(problem, lines, req["nonce"], time.monotonic() - t0,
                                                 stderr=err.decode("utf-8", "replace"))
        if broken:  # the runner broke its protocol: this attempt is a sandbox_error, the container is replaced
            w.restart()
        return verdict


