"""box/cpuacct.py: the cgroup counters it reads, the /proc readings, and the attempt's share of the container's CPU
(the Docker tests check the whole against real attempts: tests/test_reward_hacking.py)."""

from __future__ import annotations

import os
import random
import resource
import time

from sdpo_ttt.sandbox.box import cpuacct


def _burn(seconds: float) -> None:
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


def test_container_cpu_reads_v1_then_v2(tmp_path) -> None:
    v1, v2 = tmp_path / "cpuacct.usage", tmp_path / "cpu.stat"
    v2.write_text("usage_usec 2500000\nuser_usec 2000000\nsystem_usec 500000\n")
    assert cpuacct.container_cpu(v1=(str(v1),), v2=str(v2)) == 2.5  # no v1 file: v2
    v1.write_text("1234567890\n")
    assert cpuacct.container_cpu(v1=(str(tmp_path / "none"), str(v1)), v2=str(v2)) == 1.23456789
    v1.write_text("garbage\n")
    v2.write_text("user_usec 1\n")
    assert cpuacct.container_cpu(v1=(str(v1),), v2=str(v2)) is None
    assert cpuacct.container_cpu(v1=(), v2=str(tmp_path / "none")) is None


def test_share_against_a_brute_force_sum() -> None:
    rng = random.Random(5)
    for _ in range(200):
        # the container's CPU is the sum of its parts: runner, fork server, the others and the attempt
        runner0, server0 = rng.uniform(0, 50), rng.uniform(0, 50)
        d_runner, d_server, others, attempt = (rng.uniform(0, 3) for _ in range(4))
        total0 = runner0 + server0 + rng.uniform(0, 100)
        start = (total0, runner0, server0)
        end = (total0 + d_runner + d_server + others + attempt, runner0 + d_runner, server0 + d_server)
        assert abs(cpuacct.share(start, end, others) - attempt) < 1e-9


def test_proc_readings_of_this_process() -> None:
    _burn(0.05)
    ru = resource.getrusage(resource.RUSAGE_SELF)
    mine = cpuacct.own_cpu()
    assert mine >= ru.ru_utime + ru.ru_stime >= 0.05
    tick = 1 / os.sysconf("SC_CLK_TCK")
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    waited = kids.ru_utime + kids.ru_stime  # group_cpu holds what it waited for too
    assert mine + waited - 4 * tick <= cpuacct.group_cpu(os.getpid()) <= cpuacct.own_cpu() + waited + 4 * tick
    assert 0 < cpuacct.thread_cpu(os.getpid()) <= cpuacct.own_cpu() + 1e-3  # the main thread's share
    assert cpuacct.group_cpu(2 ** 22 + 1) is None and cpuacct.thread_cpu(2 ** 22 + 1) is None  # no such pid


def test_a_meter_without_a_counter_says_none(monkeypatch) -> None:
    monkeypatch.setattr(cpuacct, "container_cpu", lambda: None)
    assert cpuacct.Meter(os.getpid()).attempt(0.0) is None


def test_a_meter_counts_what_the_others_do_not(monkeypatch) -> None:
    clock = {"t": 10.0}
    monkeypatch.setattr(cpuacct, "container_cpu", lambda: clock["t"] + cpuacct.own_cpu())
    monkeypatch.setattr(cpuacct, "thread_cpu", lambda pid: 1.0)
    m = cpuacct.Meter(os.getpid())
    _burn(0.02)  # the runner's own CPU: not the attempt's
    clock["t"] += 0.7  # 0.5 of the attempt, 0.2 of the others
    assert abs(m.attempt(0.2) - 0.5) < 1e-3
