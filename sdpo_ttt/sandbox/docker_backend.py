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
"""

from __future__ import annotations

import atexit
import functools
import json
import os
import queue
import random
import signal
import socket
import struct
import threading
import time
import weakref
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from typing import Any

from sdpo_ttt.errors import SandboxUnavailable
from sdpo_ttt.problem.schema import Problem
from sdpo_ttt.sandbox import protocol
from sdpo_ttt.sandbox.verdict import Verdict

DEFAULT_IMAGE = "sdpo-ttt-sandbox:latest"
LABEL = "sdpo-ttt.sandbox"
LABEL_PID = "sdpo-ttt.owner-pid"
LABEL_START = "sdpo-ttt.owner-start"
LABEL_HOST = "sdpo-ttt.owner-host"
RUNNER_CAPS = ["SETUID", "SETGID", "KILL", "DAC_OVERRIDE", "FOWNER", "CHOWN"]  # all the runner keeps
SCRATCH = "/tmp/attempt"
PYTHON = "python3"

_LIVE: "weakref.WeakSet[DockerSandbox]" = weakref.WeakSet()
_HOOKS_INSTALLED = False


@functools.lru_cache(maxsize=1)
def seccomp_profile() -> str:
    """The sandbox's seccomp profile (shipped in the package), as the compact JSON text docker takes."""
    text = resources.files("sdpo_ttt.sandbox").joinpath("seccomp.json").read_text(encoding="utf-8")
    return json.dumps(json.loads(text), separators=(",", ":"))


def hardening(mem_limit_mb: int, pids_limit: int, tmpfs_mb: int) -> dict[str, Any]:
    """The container settings (docker SDK keyword arguments) every sandbox container gets."""
    return dict(
        network_mode="none",
        read_only=True,
        tmpfs={"/tmp": f"rw,nosuid,nodev,size={tmpfs_mb}m,mode=1777"},
        shm_size="8m",
        pids_limit=pids_limit,
        mem_limit=f"{mem_limit_mb}m",
        memswap_limit=f"{mem_limit_mb}m",
        cap_drop=["ALL"],
        cap_add=list(RUNNER_CAPS),
        # our own seccomp profile (sdpo_ttt/sandbox/seccomp.json: an allow-list without io_uring, bpf, userfaultfd,
        # ptrace, namespaces, ...; docs/verifier.md), never "unconfined"
        security_opt=["no-new-privileges", f"seccomp={seccomp_profile()}"],
        user="0:0",
        log_config={"type": "none", "config": {}},
        init=True,
        ipc_mode="private",
        environment={"PYTHONDONTWRITEBYTECODE": "1"},
    )


def _proc_start_time(pid: int) -> str:
    """Start time of a process (clock ticks since boot) or '' if unknown; guards against pid reuse."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def _owner_alive(labels: dict[str, str]) -> bool:
    if labels.get(LABEL_HOST) != socket.gethostname():
        return True  # another machine's container on a shared daemon: not ours to judge
    try:
        pid = int(labels.get(LABEL_PID, ""))
    except ValueError:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    start = labels.get(LABEL_START, "")
    return not start or start == _proc_start_time(pid)


def reap_stale(client: Any, *, everything_of_mine: bool = False) -> list[str]:
    """Remove labelled sandbox containers whose owner process is dead (or, with everything_of_mine,
    also this process's own). Returns the names removed."""
    removed = []
    for c in client.containers.list(all=True, filters={"label": f"{LABEL}=1"}):
        labels = c.labels or {}
        mine = labels.get(LABEL_PID) == str(os.getpid()) and labels.get(LABEL_HOST) == socket.gethostname()
        if (everything_of_mine and mine) or not _owner_alive(labels):
            try:
                c.remove(force=True)
                removed.append(c.name)
            except Exception:  # noqa: BLE001 - already gone or being removed by its owner
                pass
    return removed


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
        self.session: _Session | None = None
        self.start()

    def start(self) -> None:
        sb = self.sb
        # uids no other container of any sandbox uses (RLIMIT_NPROC is counted per uid machine-wide):
        # the attempt's, and +1 for the tester's
        self.uid = 300_000 + random.randrange(0, 90_000) * 16 + 2 * (self.index % 8)
        self.container = sb.client.containers.run(
            sb.image,
            ["sleep", "infinity"],
            detach=True,
            name=f"sdpo-ttt-sb-{os.getpid()}-{self.index}-{random.randrange(16**6):06x}",
            labels={LABEL: "1", LABEL_PID: str(os.getpid()), LABEL_START: _proc_start_time(os.getpid()),
                    LABEL_HOST: socket.gethostname()},
            **hardening(sb.mem_limit_mb, sb.pids_limit, sb.tmpfs_mb),
        )

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
            self.session = _Session(self)
        s = self.session
        try:
            lines, err, ended = s.request(data, nonce, timeout)
        except BaseException:
            self.drop_session()
            raise
        if s.replace_container:
            self.restart()
        elif ended:
            self.drop_session()
        return lines, err, ended

    def drop_session(self) -> None:
        if self.session is not None:
            self.session.close()
            self.session = None


class _Session:
    """One long-lived `docker exec` of the runner in `--serve` mode, as container root (with RUNNER_CAPS).

    Requests go in on its stdin (the runner's framing: a length line, then JSON); its stdout comes back as
    docker's multiplexed frames, demultiplexed here into lines. A request is answered when the `done` or
    `error` event carrying that request's nonce arrives; if the stream ends first (an attempt killed the
    runner, or it left on purpose after something changed about it), the session is over and the worker
    opens a fresh one for the next request."""

    def __init__(self, w: _Worker) -> None:
        api = w.sb.client.api
        ex = api.exec_create(w.container.id, protocol.runner_command(PYTHON, serve=True), stdin=True,
                             stdout=True, stderr=True, user="0:0", workdir="/")
        self.sock = api.exec_start(ex["Id"], socket=True)
        self.raw = getattr(self.sock, "_sock", self.sock)
        self.raw.settimeout(30)
        self.raw.sendall(protocol.bundle_frame())
        self.buf = bytearray()  # undecoded frame bytes
        self.line = bytearray()  # stdout since the last newline
        self.requests = 0
        self.exiting = False
        self.replace_container = False
        self.pids: tuple[Any, ...] = ()  # (runner, fork server) pids in the container, as last reported

    def request(self, data: bytes, nonce: str, timeout: float) -> tuple[list[bytes], bytes, bool]:
        prefix = nonce.encode() + b" "
        lines: list[bytes] = []
        err = bytearray()
        deadline = time.monotonic() + timeout
        self.requests += 1
        try:
            self.raw.settimeout(timeout)
            self.raw.sendall(data)
        except OSError:
            return lines, bytes(err), True  # the runner was already gone: nothing of this request ran
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError
                self.raw.settimeout(left)
                chunk = self.raw.recv(1 << 16)
                if not chunk:
                    if self.line:
                        lines.append(bytes(self.line))
                        self.line.clear()
                    return lines, bytes(err), True
                self.buf += chunk
                finished = False
                while len(self.buf) >= 8:  # docker's multiplexed stream: 1 byte stream id, 3 pad, 4 size
                    stream, size = self.buf[0], struct.unpack(">I", bytes(self.buf[4:8]))[0]
                    if len(self.buf) < 8 + size:
                        break
                    payload = bytes(self.buf[8:8 + size])
                    del self.buf[:8 + size]
                    if stream != 1:
                        err += payload
                        continue
                    self.line += payload
                    while True:
                        k = self.line.find(b"\n")
                        if k < 0:
                            break
                        ln = bytes(self.line[:k])
                        del self.line[:k + 1]
                        lines.append(ln)
                        last = _last_event(ln[len(prefix):]) if ln.startswith(prefix) else None
                        if last is not None:
                            finished = True
                            info = last.get("session")
                            info = info if isinstance(info, dict) else {}
                            # the runner failed (`error`): whatever broke it (a missing device, a damaged
                            # scratch dir) is in the container, so the container goes, not just the session
                            self.replace_container = info.get("replace_container") is True or last.get("event") == "error"
                            self.pids = (info.get("pid"), info.get("fork_server"))
                            self.exiting = info.get("exiting") is True or last.get("event") == "error"
                if finished:
                    return lines, bytes(err), self.exiting
        except socket.timeout as e:
            raise TimeoutError from e

    def close(self) -> None:
        try:
            self.sock.close()  # the runner sees EOF on stdin and leaves
        except Exception:  # noqa: BLE001
            pass


def _last_event(payload: bytes) -> dict[str, Any] | None:
    """The runner's closing event of a request (`done` or `error`), else None."""
    if b'"event"' not in payload:
        return None
    try:
        ev = json.loads(payload)
    except ValueError:
        return None
    return ev if isinstance(ev, dict) and ev.get("event") in ("done", "error") else None


class DockerSandbox:
    """A pool of hardened containers; `judge_many` spreads attempts over them (thread per container)."""

    name = "docker"

    def __init__(self, workers: int = 2, *, image: str = DEFAULT_IMAGE, mem_limit_mb: int = 1024,
                 pids_limit: int = 128, tmpfs_mb: int = 256, client: Any = None) -> None:
        import docker

        self.image = image
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
        return (f"{len(self._workers)} hardened container(s) from {self.image} (no network, read-only root, "
                "attempts under their own uid without capabilities)")

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


def docker_fix(image: str = DEFAULT_IMAGE) -> str:
    return (
        "install Docker (`apt-get install -y docker.io debootstrap`), start it (`dockerd --bridge=none "
        f"--iptables=false &`), then build the image with `sdpo-ttt sandbox build --offline` (or `--tag {image}`); "
        "or use `--sandbox local` for weaker isolation"
    )


def docker_status(image: str = DEFAULT_IMAGE) -> str | None:
    """None when the Docker backend can be used (daemon answers, image present), else why not."""
    try:
        import docker

        client = docker.from_env(timeout=10)
    except Exception as e:  # noqa: BLE001
        return f"no Docker daemon answers ({type(e).__name__})"
    try:
        client.ping()
    except Exception as e:  # noqa: BLE001
        return f"no Docker daemon answers ({type(e).__name__})"
    try:
        client.images.get(image)
    except Exception:  # noqa: BLE001
        return f"the sandbox image {image} is not built"
    finally:
        client.close()
    return None
