"""vLLM backend bookkeeping, without vLLM: adapter versions, fingerprints, request ids, output conversion."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from sdpo_ttt.errors import ConfigError, ModelUnavailable
from sdpo_ttt.policy.config import PolicyConfig
from sdpo_ttt.policy.vllm_backend import AdapterPublisher, VLLMSampler, fingerprint, to_completion


class FakePolicy:
    """Just what the publisher touches: named parameters and save_adapter."""

    def __init__(self) -> None:
        self.w = {"x.lora_A.student.weight": torch.nn.Parameter(torch.ones(2, 3)),
                  "x.lora_A.teacher.weight": torch.nn.Parameter(torch.zeros(4, 3))}
        self.model = SimpleNamespace(named_parameters=lambda: iter(self.w.items()))
        self.saved: list[tuple[str, Path]] = []

    def save_adapter(self, name: str, directory: Path) -> None:
        directory.mkdir(parents=True)
        (directory / "adapter_model.safetensors").write_bytes(b"x")
        self.saved.append((name, directory))


def test_publish_only_when_the_adapter_changed(tmp_path: Path) -> None:
    pol, pub = FakePolicy(), AdapterPublisher(tmp_path)
    a = pub.publish(pol, "student")
    assert a.id == 1 and a.path.is_dir() and pub.publish(pol, "student") == a  # unchanged: same id, no save
    with torch.no_grad():
        pol.w["x.lora_A.student.weight"].add_(1e-3)
    b = pub.publish(pol, "student")
    assert b.id == 2 and b.name != a.name and b.path != a.path
    t = pub.publish(pol, "teacher")
    assert t.id == 3 and len(pol.saved) == 3


def test_old_versions_are_pruned(tmp_path: Path) -> None:
    pol, pub = FakePolicy(), AdapterPublisher(tmp_path, keep=1)
    refs = []
    for i in range(5):
        with torch.no_grad():
            pol.w["x.lora_A.student.weight"].add_(1.0)
        refs.append(pub.publish(pol, "student"))
    assert refs[-1].path.is_dir()
    assert sum(r.path.is_dir() for r in refs) <= 2
    assert len({r.id for r in refs}) == 5


def test_fingerprint_sees_small_changes() -> None:
    p = torch.randn(8, 8)
    f0 = fingerprint([p])
    p[3, 3] += 1e-4
    assert fingerprint([p]) != f0


def test_to_completion_keeps_eos() -> None:
    c = to_completion([1, 2], [5, 6], "stop", None, [9, 10], "ab")
    assert c.completion_ids == [5, 6, 9] and c.finish_reason == "eos"
    c = to_completion([1, 2], [5, 10], "stop", None, [9, 10], "ab")
    assert c.completion_ids == [5, 10]
    c = to_completion([1], [5], "stop", 10, [9, 10], "a")
    assert c.completion_ids == [5, 10]
    c = to_completion([1], [5, 6, 7], "length", None, [9], "abc")
    assert c.completion_ids == [5, 6, 7] and c.finish_reason == "length" and c.prompt_ids == [1]


def test_vllm_needs_a_gpu(tmp_path: Path) -> None:
    pol = SimpleNamespace(device=torch.device("cpu"))
    with pytest.raises(ModelUnavailable, match="CUDA"):
        VLLMSampler(pol, tmp_path)


def test_backend_config() -> None:
    assert PolicyConfig().backend == "hf"
    with pytest.raises(ConfigError):
        PolicyConfig(backend="tgi")
    with pytest.raises(ConfigError):
        PolicyConfig(backend="vllm", vllm_gpu_memory=1.5)
