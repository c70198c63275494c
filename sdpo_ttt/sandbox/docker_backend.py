"""DockerSandbox: a small pool of long-lived hardened containers, one attempt at a time per container.

Each container: no network, read-only root, tmpfs scratch, pids limit, memory == memory+swap, all
capabilities dropped, no-new-privileges, log driver none, docker's init as pid 1, labelled with the
owner's pid. Its main process (`sleep infinity`) runs as uid 65534; each attempt's runner is a
`docker exec` under a SECOND uid dedicated to that container, so an attempt can never signal the
container's main process or init (the container survives `os.kill(-1, 9)`), RLIMIT_NPROC counts only
that container's attempt, and the runner sweeps every leftover process of that uid.
The runner is sent as `python3 -c <source>` and the request on the exec's stdin: nothing is mounted.
"""

from __future__ import annotations

import atexit
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
from typing import Any

from sdpo_ttt.errors import SandboxUnavailable
from sdpo_ttt.problem import Problem
from sdpo_ttt.sandbox import protocol
from sdpo_ttt.verdict import Verdict

DEFAULT_IMAGE = "sdpo-ttt-sandbox:latest"
LABEL = "sdpo-ttt.sandbox"
LABEL_PID = "sdpo-ttt.owner-pid"
LABEL_START = "sdpo-ttt.owner-start"
LABEL_HOST = "sdpo-ttt.owner-host"
MAIN_UID = 65534  # the container's main process
SCRATCH = "/tmp/attempt"
PYTHON = "python3"

_LIVE: "weakref.WeakSet[DockerSandbox]" = weakref.WeakSet()
_HOOKS_INSTALLED = False


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
        security_opt=["no-new-privileges"],
        user=f"{MAIN_UID}:{MAIN_UID}",
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
        self.start()

    def start(self) -> None:
        sb = self.sb
        # a uid no other container of any sandbox uses: RLIMIT_NPROC is counted per uid machine-wide
        self.uid = 300_000 + random.randrange(0, 90_000) * 8 + self.index % 8
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

    def run_request(self, data: bytes, timeout: float) -> tuple[bytes, bytes]:
        """Exec the runner with `data` on stdin; return (stdout, stderr). Raises TimeoutError."""
        api = self.sb.client.api
        ex = api.exec_create(self.container.id, [PYTHON, "-I", "-S", "-c", self.sb.runner_src], stdin=True,
                             stdout=True, stderr=True, user=f"{self.uid}:{self.uid}", workdir="/tmp")
        sock = api.exec_start(ex["Id"], socket=True)
        raw = getattr(sock, "_sock", sock)
        out, err = bytearray(), bytearray()
        try:
            raw.settimeout(timeout)
            raw.sendall(data)
            buf = bytearray()
            deadline = time.monotonic() + timeout
            while True:
                if time.monotonic() > deadline:
                    raise TimeoutError
                chunk = raw.recv(1 << 16)
                if not chunk:
                    break
                buf += chunk
                while len(buf) >= 8:  # docker's multiplexed stream: 1 byte stream id, 3 pad, 4 size
                    stream, size = buf[0], struct.unpack(">I", bytes(buf[4:8]))[0]
                    if len(buf) < 8 + size:
                        break
                    (out if stream == 1 else err).extend(buf[8:8 + size])
                    del buf[:8 + size]
        except socket.timeout as e:
            raise TimeoutError from e
        finally:
            try:
                sock.close()
            except Exception:  # noqa: BLE001
                pass
        return bytes(out), bytes(err)


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
        self.runner_src = protocol.runner_source()
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
        return f"{len(self._workers)} hardened container(s) from {self.image} (no network, read-only root, non-root)"

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
        try:
            return self._judge_on(w, problem, code)
        finally:
            self._free.put(w)

    def _judge_on(self, w: _Worker, problem: Problem, code: str, retry: bool = True) -> Verdict:
        req = protocol.build_request(problem, code, scratch=SCRATCH, python=PYTHON, sweep_own_uid=True,
                                     wipe=["/dev/shm"])
        budget = len(problem.tests) * (problem.limits.time_s * 2.0 + 1.5) + 30.0
        t0 = time.monotonic()
        try:
            out, err = w.run_request(protocol.encode_request(req), budget)
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
        events = protocol.parse_events(out.splitlines(), req["nonce"])
        if (not events) and retry and not w.alive():
            w.restart()
            return self._judge_on(w, problem, code, retry=False)
        return protocol.assemble(problem, events, time.monotonic() - t0, stderr=err.decode("utf-8", "replace"))


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
