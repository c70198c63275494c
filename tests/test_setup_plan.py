"""scripts/setup.sh picks the torch build: CPU torch 2.13.0 (CI, no GPU) or CUDA torch + vLLM on a GPU machine."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def plan(tmp_path: Path, *args: str, gpu_listing: str | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """`setup.sh --plan` with PATH holding a stand-in nvidia-smi (listing `gpu_listing`, or failing when None)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    smi = bin_dir / "nvidia-smi"
    smi.write_text(f"#!/bin/sh\nprintf '%s\\n' '{gpu_listing}'\n" if gpu_listing is not None else "#!/bin/sh\nexit 9\n")
    smi.chmod(0o755)
    full_env = {k: v for k, v in os.environ.items() if k != "SDPO_TTT_GPU"}
    full_env.update(PATH=f"{bin_dir}:{os.environ['PATH']}", **(env or {}))
    return subprocess.run(["bash", "scripts/setup.sh", "--plan", *args], cwd=REPO, env=full_env, capture_output=True, text=True, timeout=60)


def test_no_gpu_installs_cpu_torch(tmp_path: Path) -> None:
    r = plan(tmp_path)  # nvidia-smi present but failing (no driver), as on CI
    assert r.returncode == 0 and '-e ".[dev,ray,cpu]"' in r.stdout and "torch==2.13.0" in r.stdout


def test_a_listed_gpu_installs_cuda_torch_and_vllm(tmp_path: Path) -> None:
    r = plan(tmp_path, gpu_listing="GPU 0: NVIDIA H200 (UUID: GPU-0)")
    assert r.returncode == 0 and '-e ".[dev,ray,vllm]"' in r.stdout


@pytest.mark.parametrize(("args", "env", "extra"), [
    (["--cpu"], {}, "cpu"), ([], {"SDPO_TTT_GPU": "0"}, "cpu"), (["--gpu"], {}, "vllm"), ([], {"SDPO_TTT_GPU": "1"}, "vllm"),
])
def test_flags_override_detection(tmp_path: Path, args: list[str], env: dict[str, str], extra: str) -> None:
    listing = None if extra == "vllm" else "GPU 0: NVIDIA H200 (UUID: GPU-0)"  # the flag wins over what is detected
    r = plan(tmp_path, *args, gpu_listing=listing, env=env)
    assert r.returncode == 0 and f'-e ".[dev,ray,{extra}]"' in r.stdout


def test_bad_values_are_refused(tmp_path: Path) -> None:
    assert plan(tmp_path, env={"SDPO_TTT_GPU": "yes"}).returncode == 2
    r = plan(tmp_path, "--cuda")
    assert r.returncode == 2 and "unknown option --cuda" in r.stderr


def test_dev_extra_does_not_pull_cpu_torch() -> None:
    """`dev` must not force CPU torch: only the `cpu` extra pins it, and setup.sh adds it on the CPU path only."""
    import tomllib

    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert not any("cpu" in dep or dep.startswith("torch") for dep in extras["dev"])
    assert extras["cpu"] == ["torch==2.13.0"] and not any(dep.startswith("torch") for dep in extras["vllm"])
