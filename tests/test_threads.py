"""Thread-count policy (sdpo_ttt/threads.py): explicit choices win, else cores / workers capped by idle cores."""

from __future__ import annotations

from pathlib import Path

import pytest

from sdpo_ttt import threads
from sdpo_ttt.errors import ConfigError

QUIET: dict[str, str] = {}


def test_quiet_machine_uses_every_cpu() -> None:
    assert threads.torch_threads(cpus=8, load=0.0, env=QUIET) == 8


def test_workers_split_the_cpus() -> None:
    assert threads.torch_threads(workers=2, cpus=8, load=0.0, env=QUIET) == 4
    assert threads.torch_threads(workers=3, cpus=8, load=0.0, env=QUIET) == 2
    assert threads.torch_threads(workers=16, cpus=8, load=0.0, env=QUIET) == 1


def test_load_takes_busy_cores_away() -> None:
    # 2 cores, one other CPU-bound process: one thread, not two (two collapse throughput)
    assert threads.torch_threads(cpus=2, load=1.0, env=QUIET) == 1
    assert threads.torch_threads(cpus=2, load=0.4, env=QUIET) == 2  # under half a core busy counts as free
    assert threads.torch_threads(cpus=8, load=5.0, env=QUIET) == 3
    assert threads.torch_threads(cpus=2, load=9.0, env=QUIET) == 1  # never below one


def test_explicit_choices_win_in_order() -> None:
    env = {"SDPO_TTT_THREADS": "3", "OMP_NUM_THREADS": "5"}
    assert threads.torch_threads(requested=7, cpus=2, load=9.0, env=env) == 7
    assert threads.torch_threads(requested=0, cpus=2, load=9.0, env=env) == 3
    assert threads.torch_threads(cpus=2, load=9.0, env={"OMP_NUM_THREADS": "5"}) == 5
    assert threads.torch_threads(cpus=8, load=0.0, env={"SDPO_TTT_THREADS": " "}) == 8  # blank = unset


@pytest.mark.parametrize("bad", ["0", "-2", "two", "1.5"])
def test_bad_env_value_is_a_config_error_naming_the_variable(bad: str) -> None:
    with pytest.raises(ConfigError, match="SDPO_TTT_THREADS"):
        threads.torch_threads(cpus=2, load=0.0, env={"SDPO_TTT_THREADS": bad})


def test_bad_arguments_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="--threads"):
        threads.torch_threads(requested=-1, env=QUIET)
    with pytest.raises(ConfigError, match="workers"):
        threads.torch_threads(workers=0, env=QUIET)


def test_cgroup_quota(tmp_path: Path) -> None:
    f = tmp_path / "cpu.max"
    f.write_text("150000 100000\n")
    assert threads._cgroup_quota(f) == 1
    f.write_text("400000 100000\n")
    assert threads._cgroup_quota(f) == 4
    f.write_text("max 100000\n")
    assert threads._cgroup_quota(f) is None
    assert threads._cgroup_quota(tmp_path / "missing") is None


def test_defaults_read_this_machine() -> None:
    n = threads.torch_threads(env=QUIET)
    assert 1 <= n <= threads.available_cpus()


def test_apply_sets_torch() -> None:
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    try:
        assert threads.apply(1) == 1 and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
