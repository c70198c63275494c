"""Thread-count policy (sdpo_ttt/policy/threads.py): explicit choices win, else cores / workers capped by idle cores."""

from __future__ import annotations

from pathlib import Path

import pytest

from sdpo_ttt.policy import threads
from sdpo_ttt.errors import ConfigError
from sdpo_ttt.policy.threads import CpuSample

QUIET: dict[str, str] = {}


def test_quiet_machine_uses_every_cpu() -> None:
    assert threads.torch_threads(cpus=8, busy=0.0, env=QUIET) == 8


def test_workers_split_the_cpus() -> None:
    assert threads.torch_threads(workers=2, cpus=8, busy=0.0, env=QUIET) == 4
    assert threads.torch_threads(workers=3, cpus=8, busy=0.0, env=QUIET) == 2
    assert threads.torch_threads(workers=16, cpus=8, busy=0.0, env=QUIET) == 1


def test_busy_cores_are_taken_away() -> None:
    # 2 cores, one other CPU-bound process: one thread, not two (two collapse throughput)
    assert threads.torch_threads(cpus=2, busy=1.0, env=QUIET) == 1
    assert threads.torch_threads(cpus=2, busy=0.4, env=QUIET) == 2  # under half a core busy counts as free
    assert threads.torch_threads(cpus=8, busy=5.0, env=QUIET) == 3
    assert threads.torch_threads(cpus=2, busy=9.0, env=QUIET) == 1  # never below one


def test_explicit_choices_win_in_order() -> None:
    env = {"SDPO_TTT_THREADS": "3", "OMP_NUM_THREADS": "5"}
    assert threads.torch_threads(requested=7, cpus=2, busy=9.0, env=env) == 7
    assert threads.torch_threads(requested=0, cpus=2, busy=9.0, env=env) == 3
    assert threads.torch_threads(cpus=2, busy=9.0, env={"OMP_NUM_THREADS": "5"}) == 5
    assert threads.torch_threads(cpus=8, busy=0.0, env={"SDPO_TTT_THREADS": " "}) == 8  # blank = unset


@pytest.mark.parametrize("bad", ["0", "-2", "two", "1.5"])
def test_bad_env_value_is_a_config_error_naming_the_variable(bad: str) -> None:
    with pytest.raises(ConfigError, match="SDPO_TTT_THREADS"):
        threads.torch_threads(cpus=2, busy=0.0, env={"SDPO_TTT_THREADS": bad})


def test_bad_arguments_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="--threads"):
        threads.torch_threads(requested=-1, cpus=2, busy=0.0, env=QUIET)
    with pytest.raises(ConfigError, match="workers"):
        threads.torch_threads(workers=0, cpus=2, busy=0.0, env=QUIET)


PROC_STAT = """cpu  300 0 100 900 50 0 0 0 0 0
cpu0 100 0 50 400 25 0 0 0 0 0
cpu1 200 0 50 500 25 0 0 10 0 0
intr 1 2 3
"""


def test_busy_seconds_counts_all_but_idle_and_iowait_of_our_cpus() -> None:
    assert threads.busy_seconds(PROC_STAT, {0, 1}, hz=100) == pytest.approx((150 + 260) / 100)
    assert threads.busy_seconds(PROC_STAT, {1}, hz=100) == pytest.approx(2.6)  # steal counts as busy


def test_others_busy_subtracts_our_own_cpu_time() -> None:
    before = CpuSample(busy_s=10.0, own_s=1.0, wall_s=100.0)
    # 2 s of wall: 3.6 CPU-s busy on our CPUs, of which 1.6 are ours -> 1 other core busy
    assert threads.others_busy(before, CpuSample(13.6, 2.6, 102.0)) == pytest.approx(1.0)
    assert threads.others_busy(before, CpuSample(11.0, 2.5, 102.0)) == 0.0  # jiffy rounding never goes negative
    assert threads.others_busy(before, before) == 0.0


def test_cgroup_quota(tmp_path: Path) -> None:
    f = tmp_path / "cpu.max"
    f.write_text("150000 100000\n")
    assert threads._cgroup_quota(f) == 1
    f.write_text("400000 100000\n")
    assert threads._cgroup_quota(f) == 4
    f.write_text("max 100000\n")
    assert threads._cgroup_quota(f) is None
    assert threads._cgroup_quota(tmp_path / "missing") is None


def test_configure_and_adapt_on_this_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    monkeypatch.setattr(threads, "_state", threads._State())
    try:
        assert threads.configure(requested=1) == 1 and torch.get_num_threads() == 1
        assert threads.adapt() == 1  # an explicit count is kept
        n = threads.configure(env=QUIET)  # measured: between 1 and the CPUs we may use
        assert 1 <= n <= threads.available_cpus() and torch.get_num_threads() == n
        assert 1 <= threads.adapt() <= threads.available_cpus()
    finally:
        torch.set_num_threads(before)
