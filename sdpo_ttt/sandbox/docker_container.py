"""The Docker sandbox's containers: the settings every one gets (`hardening`), the labels that name its owner,
starting one, and reaping the containers whose owner process is gone (docker_backend.py is the pool using them).
"""

from __future__ import annotations

import functools
import json
import os
import random
import socket
from importlib import resources
from typing import Any

DEFAULT_IMAGE = "sdpo-ttt-sandbox:latest"
LABEL = "sdpo-ttt.sandbox"
LABEL_PID = "sdpo-ttt.owner-pid"
LABEL_START = "sdpo-ttt.owner-start"
LABEL_HOST = "sdpo-ttt.owner-host"
RUNNER_CAPS = ["SETUID", "SETGID", "KILL", "DAC_OVERRIDE", "FOWNER", "CHOWN"]  # all the runner keeps
# held only until the runner has remounted /proc hiding other uids' processes, then dropped for good (box/prochide.py)
TEMPORARY_CAPS = ["SYS_ADMIN", "SETPCAP"]


@functools.lru_cache(maxsize=1)
def seccomp_profile() -> str:
    """The sandbox's seccomp profile (shipped in the package), as the compact JSON text docker takes."""
    text = resources.files("sdpo_ttt.sandbox").joinpath("seccomp.json").read_text(encoding="utf-8")
    return json.dumps(json.loads(text), separators=(",", ":"))


def hardening(mem_limit_mb: int, pids_limit: int, tmpfs_mb: int, *, hide_proc: bool = True) -> dict[str, Any]:
    """The container settings (docker SDK keyword arguments) every sandbox container gets. `hide_proc`: the two
    capabilities the runner takes to hide /proc and then drops (seccomp.json allows `mount` only with them, and only
    as that remount)."""
    return dict(
        network_mode="none",
        read_only=True,
        tmpfs={"/tmp": f"rw,nosuid,nodev,size={tmpfs_mb}m,mode=1777"},
        shm_size="8m",
        pids_limit=pids_limit,
        mem_limit=f"{mem_limit_mb}m",
        memswap_limit=f"{mem_limit_mb}m",
        cap_drop=["ALL"],
        cap_add=list(RUNNER_CAPS) + (list(TEMPORARY_CAPS) if hide_proc else []),
        # our own seccomp profile (sdpo_ttt/sandbox/seccomp.json: an allow-list without io_uring, bpf, userfaultfd,
        # ptrace, namespaces, ...; docs/verifier.md), never "unconfined"
        security_opt=["no-new-privileges", f"seccomp={seccomp_profile()}"],
        user="0:0",
        log_config={"type": "none", "config": {}},
        init=True,
        ipc_mode="private",
        environment={"PYTHONDONTWRITEBYTECODE": "1"},
    )


def proc_start_time(pid: int) -> str:
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
    return not start or start == proc_start_time(pid)


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


def start_container(client: Any, image: str, index: int, *, mem_limit_mb: int, pids_limit: int, tmpfs_mb: int,
                    hide_proc: bool = True) -> Any:
    """A fresh hardened container (`sleep infinity`: the runner comes as a `docker exec`), labelled as this process's."""
    pid = os.getpid()
    return client.containers.run(
        image,
        ["sleep", "infinity"],
        detach=True,
        name=f"sdpo-ttt-sb-{pid}-{index}-{random.randrange(16**6):06x}",
        labels={LABEL: "1", LABEL_PID: str(pid), LABEL_START: proc_start_time(pid), LABEL_HOST: socket.gethostname()},
        **hardening(mem_limit_mb, pids_limit, tmpfs_mb, hide_proc=hide_proc),
    )


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
