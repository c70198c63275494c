"""One judge session in a Docker sandbox container: a long-lived `docker exec` of the runner, requests in on its
stdin, its events back as docker's multiplexed stream, demultiplexed here into lines (docker_backend.py runs the pool).
"""

from __future__ import annotations

import json
import socket
import struct
import time
from typing import Any

from sdpo_ttt.sandbox import protocol
from sdpo_ttt.sandbox.safe_text import safe_text

PYTHON = "python3"


class Session:
    """One long-lived `docker exec` of the runner in `--serve` mode, as container root (with RUNNER_CAPS).

    Requests go in on its stdin (the runner's framing: a length line, then JSON); its stdout comes back as
    docker's multiplexed frames, demultiplexed here into lines. A request is answered when the `done` or
    `error` event carrying that request's nonce arrives; if the stream ends first (an attempt killed the
    runner, or it left on purpose after something changed about it), the session is over and the worker
    opens a fresh one for the next request."""

    def __init__(self, client: Any, container: Any) -> None:
        api = client.api
        ex = api.exec_create(container.id, protocol.runner_command(PYTHON, serve=True, hide_proc=True),
                             stdin=True,
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
        self.proc: dict[str, Any] | None = None  # {"hidden": bool, "detail": str}: what the runner did about /proc

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
                chunk = self._recv(deadline)
                if not chunk:
                    if self.line:
                        lines.append(bytes(self.line))
                        self.line.clear()
                    return lines, bytes(err), True
                finished = False
                for ln in self._stdout_lines(chunk, err):
                    lines.append(ln)
                    last = _last_event(ln[len(prefix):]) if ln.startswith(prefix) else None
                    if last is not None:
                        finished = True
                        self._note_session(last)
                if finished:
                    return lines, bytes(err), self.exiting
        except socket.timeout as e:
            raise TimeoutError from e

    def _recv(self, deadline: float) -> bytes:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError
        self.raw.settimeout(left)
        return self.raw.recv(1 << 16)

    def _stdout_lines(self, chunk: bytes, err: bytearray) -> list[bytes]:
        """Demultiplex docker's stream (a frame: 1 byte stream id, 3 pad, 4 size, the payload): stderr goes to err,
        the complete stdout lines are returned; a partial frame or line waits for the next chunk."""
        self.buf += chunk
        out: list[bytes] = []
        while len(self.buf) >= 8:
            stream, size = self.buf[0], struct.unpack(">I", bytes(self.buf[4:8]))[0]
            if len(self.buf) < 8 + size:
                break
            payload = bytes(self.buf[8:8 + size])
            del self.buf[:8 + size]
            if stream != 1:
                err += payload
                continue
            self.line += payload
            while (k := self.line.find(b"\n")) >= 0:
                out.append(bytes(self.line[:k]))
                del self.line[:k + 1]
        return out

    def _note_session(self, last: dict[str, Any]) -> None:
        """What the closing event says about the session: whether it ends, whether the container must go."""
        info = last.get("session")
        info = info if isinstance(info, dict) else {}
        # the runner failed (`error`): whatever broke it (a missing device, a damaged scratch dir) is in the
        # container, so the container goes, not just the session
        self.replace_container = info.get("replace_container") is True or last.get("event") == "error"
        self.pids = (info.get("pid"), info.get("fork_server"))
        proc = info.get("proc")
        if isinstance(proc, dict) and isinstance(proc.get("hidden"), bool):
            self.proc = {"hidden": proc["hidden"], "detail": safe_text(str(proc.get("detail", "")))[:300]}
        self.exiting = info.get("exiting") is True or last.get("event") == "error"

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


