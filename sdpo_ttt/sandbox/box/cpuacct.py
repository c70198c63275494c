"""The attempt's CPU time from the container's cgroup: every process and thread of the attempt, alive or gone,
including children the kernel reaped itself (their parent ignored SIGCHLD), whose CPU no rusage ever holds.

The runner has the container to itself while an attempt runs (one at a time, nothing else started there), so the
cgroup's CPU usage over a test, less that of the container's trusted processes over the same time, is the
attempt's (`share`):

    attempt = container - runner (getrusage of itself) - fork server (its own, /proc/<pid>/schedstat)
              - the clean-up children and the tester (`others`: their rusage, or /proc while the tester runs)

docker-init and `sleep infinity` (idle) are not subtracted, and the tester's /proc reading is in clock ticks:
callers compare the estimate less SLACK_S with the limit. The counters read: cgroup v1 `cpuacct.usage` (ns),
v2 `cpu.stat` usage_usec; where neither is readable (the local sandbox: no container of its own) there is
no meter and only the per-process sums count.
"""

import os
import resource

from . import osio

SLACK_S = 0.05
V1_USAGE = ("/sys/fs/cgroup/cpuacct/cpuacct.usage", "/sys/fs/cgroup/cpu,cpuacct/cpuacct.usage")
V2_STAT = "/sys/fs/cgroup/cpu.stat"
_TICK = float(os.sysconf("SC_CLK_TCK"))


def container_cpu(v1=V1_USAGE, v2=V2_STAT):
    """CPU seconds of every task of our cgroup since it was made, alive or gone; None if unreadable."""
    for path in v1:
        try:
            return int(osio.read_file(path)) / 1e9
        except (OSError, ValueError):
            continue
    try:
        text = osio.read_file(v2)
    except OSError:
        return None
    for line in text.splitlines():
        key, _, value = line.partition(b" ")
        if key == b"usage_usec":
            try:
                return int(value) / 1e6
            except ValueError:
                return None
    return None


def own_cpu():
    """CPU seconds of this process (every thread)."""
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def thread_cpu(pid):
    """CPU seconds of the main thread of `pid` (all of a single-threaded process), to the nanosecond where
    /proc/<pid>/schedstat exists, else in clock ticks; None if unreadable."""
    try:
        return int(osio.read_file("/proc/%d/schedstat" % pid).split()[0]) / 1e9
    except (OSError, ValueError, IndexError):
        return group_cpu(pid)


def group_cpu(pid):
    """CPU seconds of process `pid` (all its threads, alive or gone) and of the children it waited for, from
    /proc/<pid>/stat (clock ticks); None if unreadable."""
    try:
        rest = osio.read_file("/proc/%d/stat" % pid).rsplit(b")", 1)[1].split()
        return sum(int(v) for v in rest[11:15]) / _TICK
    except (OSError, ValueError, IndexError):
        return None


def share(start, end, others):
    """The attempt's CPU seconds between two readings (container, runner, fork server), less `others`."""
    return (end[0] - start[0]) - (end[1] - start[1]) - (end[2] - start[2]) - others


class Meter(object):
    """Started before a test's process is forked; `attempt(others)` at any time after."""

    def __init__(self, fork_server):
        self.fork_server = fork_server
        self.start = self._read()

    def _read(self):
        total = container_cpu()
        server = thread_cpu(self.fork_server)
        if total is None or server is None:
            return None
        return total, own_cpu(), server

    def attempt(self, others):
        """The attempt's CPU seconds since the start, less `others` (trusted processes not measured here); None
        without a counter."""
        if self.start is None:
            return None
        now = self._read()
        return None if now is None else share(self.start, now, others)
