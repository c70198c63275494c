"""The runner's handle on the fork server (see forkserver.py): start a test process, read how it ended,
and end everything of an attempt uid (`end_uid`)."""

import json
import os
import signal
import socket
import time

from . import cleanup, forkserver

END_WAIT_S = 5.0  # longest wait for the killer (a process of the attempt uid can stop it: then the container goes)


class Zygote(object):
    def __init__(self):
        self.pid, self.sock = forkserver.start()
        self.broken = False
        self.stray_cpu = 0.0  # CPU of the server's children other than those it started (clone(CLONE_PARENT)), reaped
        self.helper_cpu = 0.0  # CPU of the clean-up children (kill and IPC removal as the attempt uid), reaped

    def ping(self, timeout=5.0):
        if self.broken:
            return False
        try:
            self.sock.settimeout(timeout)
            self.sock.send(b"ping")
            return self.sock.recv(64) == b"pong"
        except OSError:
            self.broken = True
            return False

    def spawn(self, cmd, fds):
        try:
            self.sock.settimeout(15.0)
            socket.send_fds(self.sock, [json.dumps(cmd).encode()], fds)
            reply = json.loads(self.sock.recv(1 << 16).decode())
        except (OSError, ValueError):
            self.broken = True
            return None
        if type(reply) is dict and type(reply.get("pid")) is int:
            return reply["pid"]
        if type(reply) is not dict or "exit" not in reply:  # an exit first: the child died before its report
            self.broken = True
        return None

    def exit_message(self, block):
        """(rc, cpu seconds) once the child was reaped, None if not yet; (-9, None) if the server is gone."""
        try:
            self.sock.settimeout(15.0 if block else 0.0)
            msg = self.sock.recv(1 << 16)
        except (BlockingIOError, socket.timeout):
            if block:
                self.broken = True
                return (-9, None)
            return None
        except OSError:
            self.broken = True
            return (-9, None)
        if not msg:
            self.broken = True
            return (-9, None)
        d = json.loads(msg.decode())
        self.stray_cpu += float(d.get("stray") or 0.0)
        return int(d["exit"]), d.get("cpu")

    def end_uid(self, uid, keep, ipc=False):
        """Kill every process of `uid` (as that uid, in a child of the fork server: `cleanup.kill_all_of_mine`),
        reaping what is ours meanwhile, then (`ipc`) remove the IPC objects it created. Returns (True when
        nothing of the uid is left, the CPU seconds of the processes reaped here)."""
        pid = self.spawn({"op": "clean", "uid": uid, "kill": True, "ipc": bool(ipc)}, [])
        if pid is None:
            return False, 0.0
        cpu, deadline = 0.0, time.monotonic() + END_WAIT_S
        while True:
            cpu += cleanup.reap(keep)  # a killed task counts against the uid until it is reaped
            got = self.exit_message(False)
            if got is not None:
                self.helper_cpu += got[1] or 0.0
                return got[0] == 0, cpu + cleanup.reap(keep)
            if time.monotonic() > deadline:
                try:
                    os.kill(pid, signal.SIGKILL)  # stopped by a process of its uid
                except OSError:
                    pass
                self.helper_cpu += self.exit_message(True)[1] or 0.0
                return False, cpu + cleanup.reap(keep)
            time.sleep(0.0005)

    def run_clean(self, uid, only=None):
        """Remove the IPC objects `uid` created (as that uid, in a child of the fork server)."""
        if self.spawn({"op": "clean", "uid": uid, "ids": only}, []) is not None:
            self.helper_cpu += self.exit_message(True)[1] or 0.0

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass
        try:
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        except OSError:
            pass
