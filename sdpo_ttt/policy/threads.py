"""How many torch intra-op threads this process should use, re-decided as the machine's load changes.

torch's default (one thread per core) collapses when another CPU-bound process shares the cores: its
OpenMP threads meet at a barrier in every matrix product, and one descheduled thread stalls the others
(measured ~10x slower with 2 threads on 2 cores while another process ran than with 1). So the count is

    min(cpus // workers, round(cpus - busy)), at least 1

- cpus: the CPUs this process may run on (affinity mask, and a cgroup v2 CPU quota if one is set);
- workers: how many parallel workers of one command share them (`compare --workers`, `batch --workers`);
- busy: the cores other processes kept busy, measured from /proc/stat minus this process's own CPU time
  (over 0.2 s at the first decision, then over the interval since the last one), else the load average.

`adapt()` re-decides (the CPU sampler calls it before each call and once a second while decoding), so a
run drops to 1 thread while another job runs and takes the cores back when it ends. An explicit choice is
kept and never adapted, in this order: `configure(requested=N)` (a `--threads` option), the
SDPO_TTT_THREADS environment variable, then OMP_NUM_THREADS (the standard OpenMP knob).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from sdpo_ttt.errors import ConfigError

ENV = "SDPO_TTT_THREADS"
FIRST_WINDOW_S = 0.2  # how long the first decision watches the CPUs
MIN_INTERVAL_S = 1.0  # adapt() keeps the count when less time than this has passed (too few jiffies to judge)


# ------------------------------------------------------------------ the policy (pure)
def explicit_threads(requested: int | None, env: Mapping[str, str]) -> int | None:
    """The count the user fixed (requested > SDPO_TTT_THREADS > OMP_NUM_THREADS), or None to choose."""
    if requested is not None and requested < 0:
        raise ConfigError(f"--threads must be >= 0, got {requested}", "pass --threads N (N >= 1), or 0 to follow the free CPUs")
    if requested:
        return int(requested)
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
    return None


def torch_threads(workers: int = 1, requested: int | None = None, *, cpus: int, busy: float,
                  env: Mapping[str, str] | None = None) -> int:
    """Threads for one of `workers` processes sharing `cpus` CPUs while others keep `busy` cores busy."""
    if workers < 1:
        raise ConfigError(f"workers must be >= 1, got {workers}", "pass --workers 1 or more")
    fixed = explicit_threads(requested, os.environ if env is None else env)
    if fixed is not None:
        return fixed
    share = max(1, cpus // workers)
    idle = math.floor(cpus - busy + 0.5)  # a core at most half busy counts as free
    return max(1, min(share, idle))


@dataclass(frozen=True)
class CpuSample:
    """Cumulative CPU seconds: busy on our CPUs (all processes), used by this process; and the wall clock."""

    busy_s: float
    own_s: float
    wall_s: float


def busy_seconds(proc_stat: str, cpus: set[int], hz: int) -> float:
    """Busy CPU seconds of the given CPUs from /proc/stat text (everything but idle and iowait)."""
    total = 0
    for line in proc_stat.splitlines():
        head, _, rest = line.partition(" ")
        if not head.startswith("cpu") or head == "cpu" or int(head[3:]) not in cpus:
            continue
        f = [int(x) for x in rest.split()]
        total += sum(f[:8]) - f[3] - f[4]  # user nice system idle iowait irq softirq steal (guest is inside user)
    return total / hz


def others_busy(before: CpuSample, after: CpuSample) -> float:
    """Cores kept busy by other processes between two samples (never negative)."""
    wall = after.wall_s - before.wall_s
    if wall <= 0:
        return 0.0
    return max(0.0, (after.busy_s - before.busy_s) - (after.own_s - before.own_s)) / wall


# ------------------------------------------------------------------ this machine
def available_cpus() -> int:
    """CPUs this process may use: the affinity mask, further limited by a cgroup v2 quota (cpu.max)."""
    return max(1, min(len(_cpu_set()), _cgroup_quota(Path("/sys/fs/cgroup/cpu.max")) or 10**6))


def _cpu_set() -> set[int]:
    try:
        return set(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return set(range(os.cpu_count() or 1))


def _cgroup_quota(path: Path) -> int | None:
    try:
        quota, period = path.read_text().split()[:2]
    except (OSError, ValueError):
        return None
    if quota == "max":
        return None
    return max(1, math.floor(int(quota) / int(period)))


def cpu_sample() -> CpuSample | None:
    """Now, or None where /proc/stat cannot be read (then the load average stands in)."""
    try:
        text = Path("/proc/stat").read_text()
        hz = os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, AttributeError):
        return None
    return CpuSample(busy_seconds(text, _cpu_set(), hz), time.process_time(), time.monotonic())


def _load_average() -> float:
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return 0.0


# ------------------------------------------------------------------ this process
@dataclass
class _State:
    workers: int = 1
    fixed: int | None = None  # an explicit count: never adapted
    last: CpuSample | None = None
    configured: bool = False


_state = _State()


def configure(workers: int = 1, requested: int | None = None, *, env: Mapping[str, str] | None = None) -> int:
    """Fix this process's policy (its share of `workers`, or an explicit count) and apply the first choice."""
    fixed = explicit_threads(requested, os.environ if env is None else env)
    if workers < 1:
        raise ConfigError(f"workers must be >= 1, got {workers}", "pass --workers 1 or more")
    _state.workers, _state.fixed, _state.configured, _state.last = workers, fixed, True, None
    if fixed is not None:
        return apply(fixed)
    first = cpu_sample()
    if first is None:
        return apply(torch_threads(workers, cpus=available_cpus(), busy=_load_average(), env={}))
    time.sleep(FIRST_WINDOW_S)
    return _decide(first)


def adapt() -> int:
    """Re-decide the count from what other processes did since the last decision (configure() first if nobody did)."""
    if not _state.configured:
        return configure()
    if _state.fixed is not None:
        return apply(_state.fixed)
    last = _state.last
    if last is None:
        return configure(_state.workers, env={})
    if time.monotonic() - last.wall_s < MIN_INTERVAL_S:
        return current()
    return _decide(last)


def _decide(since: CpuSample) -> int:
    now = cpu_sample()
    if now is None:
        return current()
    _state.last = now
    return apply(torch_threads(_state.workers, cpus=available_cpus(), busy=others_busy(since, now), env={}))


def current() -> int:
    import torch

    return torch.get_num_threads()


def apply(n: int) -> int:
    """Set torch's intra-op thread count to n (>= 1); returns n."""
    import torch

    n = max(1, int(n))
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n
