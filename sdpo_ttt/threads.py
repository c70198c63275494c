"""How many torch intra-op threads a process should use.

torch's default (one thread per core) collapses when another CPU-bound process shares the cores: its
OpenMP threads wait for each other at every matrix product, and one descheduled thread stalls them all
(measured ~10x slower with 2 threads on 2 busy cores than with 1). So the count is chosen from

- the CPUs this process may run on (affinity mask, and a cgroup CPU quota if one is set),
- divided by the number of parallel workers that share them (`compare --workers`, `batch --workers`),
- capped by the CPUs that are idle now (the 1-minute load average), never below 1.

An explicit choice wins, in this order: the `requested` argument (a `--threads` option), the
SDPO_TTT_THREADS environment variable, then OMP_NUM_THREADS (the standard OpenMP knob).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path

from sdpo_ttt.errors import ConfigError

ENV = "SDPO_TTT_THREADS"


def available_cpus() -> int:
    """CPUs this process may use: the affinity mask, further limited by a cgroup v2 quota (cpu.max)."""
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        n = os.cpu_count() or 1
    quota = _cgroup_quota(Path("/sys/fs/cgroup/cpu.max"))
    return max(1, min(n, quota) if quota else n)


def _cgroup_quota(path: Path) -> int | None:
    try:
        quota, period = path.read_text().split()[:2]
    except (OSError, ValueError):
        return None
    if quota == "max":
        return None
    return max(1, math.floor(int(quota) / int(period)))


def load_average() -> float:
    """The 1-minute load average (runnable processes, all CPUs); 0 where the OS has none."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return 0.0


def torch_threads(workers: int = 1, requested: int | None = None, *, cpus: int | None = None,
                  load: float | None = None, env: Mapping[str, str] | None = None) -> int:
    """Threads for one of `workers` processes sharing this machine (see the module docstring).

    requested None or 0 = choose. cpus, load and env default to this machine's and os.environ (pass them
    to compute the policy for other numbers; the function reads nothing else).
    """
    if workers < 1:
        raise ConfigError(f"workers must be >= 1, got {workers}", "pass --workers 1 or more")
    if requested is not None and requested < 0:
        raise ConfigError(f"--threads must be >= 0, got {requested}", "pass --threads N (N >= 1), or 0 to choose from the free CPUs")
    if requested:
        return int(requested)
    env = os.environ if env is None else env
    for name in (ENV, "OMP_NUM_THREADS"):
        raw = env.get(name, "").strip()
        if not raw:
            continue
        try:
            n = int(raw)
        except ValueError:
            n = -1
        if n < 1:
            raise ConfigError(f"{name}={raw!r} is not a positive thread count", f"set {name} to an integer >= 1, or unset it")
        return n
    cpus = available_cpus() if cpus is None else cpus
    load = load_average() if load is None else load
    share = max(1, cpus // workers)
    idle = math.floor(cpus - load + 0.5)  # a core at most half busy counts as free
    return max(1, min(share, idle))


def apply(n: int) -> int:
    """Set torch's intra-op thread count to n (>= 1); returns n."""
    import torch

    n = max(1, int(n))
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n
