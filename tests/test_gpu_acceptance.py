"""benchmarks/gpu_acceptance.sh on CPU with the tiny random shape (so the GPU script never rots), its failure
detection, and the memory arithmetic it prints beside the measurements (benchmarks/memory_model.py)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "benchmarks"))

import memory_model as mm  # noqa: E402

from sdpo_ttt.policy.random_model import shape_config, shape_names  # noqa: E402

GPU_SHAPES = ["qwen2.5-coder-1.5b", "qwen2.5-coder-7b", "qwen3-8b"]
TINY_RUN = ["--shapes", "tiny-qwen2", "--device", "cpu", "--batch", "2", "--steps", "2", "--loop-tokens", "12",
            "--probe-tokens", "24,40", "--workers", "2"]


def _tokenizer() -> Path:
    from sdpo_ttt.policy.catalog import model_dir

    tok = model_dir("qwen2.5-coder-0.5b")
    if not (tok / "tokenizer.json").is_file():
        pytest.skip(f"no Qwen tokenizer at {tok}: run `bash scripts/setup.sh` (prepares qwen2.5-coder-0.5b)")
    return tok


# ------------------------------------------------------------------ the script, end to end on CPU
@pytest.mark.sandbox
def test_gpu_acceptance_script_runs_green_on_cpu(tmp_path: Path) -> None:
    _tokenizer()
    out = tmp_path / "figures.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "SDPO_TTT_ACCEPT_TIMEOUT": "300"}
    r = subprocess.run(["bash", "benchmarks/gpu_acceptance.sh", *TINY_RUN, "--json", str(out)], cwd=REPO, env=env,
                       capture_output=True, text=True, timeout=400)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    text = r.stdout
    assert "step 0: sample" in text and "step 1: sample" in text and "update probe B=2 x T=40" in text
    assert "gpu_acceptance OK" in text
    res = json.loads(out.read_text())["results"][0]
    first, last = res["steps"]
    assert first["generated_tokens"] == 2 * 12 and last["generated_tokens"] == 2 * 12  # EOS never ends an attempt
    assert first["judge_s"] > 0 and math.isfinite(first["loss"]) and first["teacher_s"] > 0 and first["student_fwd_bwd_s"] > 0
    assert last["loss"] is None  # the last step of a run samples and judges only, as in solve
    assert [p["tokens"] for p in res["probes"]] == [24, 40] and all(math.isfinite(p["loss"]) for p in res["probes"])
    assert res["lora_tensors_changed"].split("/")[0] != "0" and not res["gradient_checkpointing"]  # CPU: off, as solve sets it
    assert set(res["predictions"]) == {"sample B=2 T=12", "update B=2 T=24", "update B=2 T=40"}


@pytest.mark.sandbox
def test_a_broken_update_or_shape_fails_the_run(monkeypatch, capsys) -> None:
    """Non-finite loss, an unchanged LoRA and a shape that cannot be built each give exit status 1."""
    import gpu_acceptance

    from sdpo_ttt.run import strategies

    _tokenizer()
    monkeypatch.setattr(strategies.SDPO, "observe", lambda self, attempts: {"loss": float("nan"), "time/teacher_s": 0.0,
                                                                            "time/student_fwd_bwd_s": 0.0})
    args = ["--shapes", "tiny-qwen2,no-such-shape", "--device", "cpu", "--batch", "1", "--steps", "2", "--loop-tokens", "8",
            "--probe-tokens", "16", "--workers", "1"]
    assert gpu_acceptance.main(args) == 1
    failed = capsys.readouterr().out.split("FAILED:")[1]
    assert "tiny-qwen2: step 0 loss is nan" in failed and "update probe T=16 loss is nan" in failed
    assert "tiny-qwen2: the student LoRA did not change" in failed and "no-such-shape: FileNotFoundError" in failed


# ------------------------------------------------------------------ memory arithmetic against brute force
@pytest.mark.parametrize("name", shape_names())
def test_parameter_count_matches_the_built_model(name: str) -> None:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    values = shape_config(name)
    kind = values.pop("model_type")
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(AutoConfig.for_model(kind, **values))
    assert mm.n_params(mm.Shape.from_config({"model_type": kind, **values})) == sum(p.numel() for p in model.parameters())


def test_published_parameter_counts() -> None:
    """The model cards: Qwen2.5-Coder-1.5B 1.54 B, -7B 7.61 B; Qwen3-8B 8.2 B."""
    got = [mm.n_params(mm.Shape.from_config(shape_config(n))) / 1e9 for n in GPU_SHAPES]
    assert got == pytest.approx([1.54, 7.61, 8.19], abs=0.01)


def test_lora_count_matches_peft(tiny_model_dir: Path) -> None:
    from sdpo_ttt.config.policy import PolicyConfig
    from sdpo_ttt.policy.model import Policy

    pol = Policy.load(PolicyConfig(model=str(tiny_model_dir), device="cpu", lora_rank=3, lora_alpha=6), seed=0)
    shape = mm.Shape.from_config(shape_config("tiny-qwen2"))
    assert mm.lora_params(shape, 3) == sum(p.numel() for p in pol.trainable_parameters())
    teacher = sum(p.numel() for n, p in pol.model.named_parameters() if ".lora_" in n and ".teacher." in n)
    assert mm.lora_params(shape, 6) == teacher


def test_training_memory_by_hand_for_qwen3_8b_at_8k() -> None:
    s = mm.Shape.from_config(shape_config("qwen3-8b"))
    T = 8192 + 400
    got = mm.training_memory(s, tokens=T)
    assert got["weights (bf16)"] == 2 * 8_190_735_360
    assert got["student LoRA + grad + AdamW (fp32)"] == 16 * 36 * 16 * (2 * 4096 + 2 * (4096 + 1024) + 2 * 4096 + 3 * (4096 + 12288))
    assert got["checkpointed layer inputs (bf16)"] == 2 * 36 * T * 4096
    assert got["logits in chunks (fp32)"] == 4 * 6 * 256 * 151936
    # peft's float32 copy of each LoRA input in the recomputed layer: q, k, v, o, gate, up read H = 4096 (o: 32 x 128), down 12288
    assert got["LoRA inputs cast by peft (fp32)"] == 4 * T * (6 * 4096 + 12288)
    # two RMSNorms + the final norm on [T, 4096], Qwen3's q/k norms on [T, 32 x 128] and [T, 8 x 128]
    assert got["RMSNorm inputs up-cast (fp32)"] == 4 * T * (3 * 4096 + 4096 + 1024)
    assert got["total"] == pytest.approx(sum(v for k, v in got.items() if k != "total"))
    assert 20e9 < got["total"] < 25e9  # docs/gpu.md's ~25 GB training side


def test_sampling_memory_kv_cache() -> None:
    s = mm.Shape.from_config(shape_config("qwen3-8b"))
    assert mm.kv_bytes_per_token(s) == 147_456  # 36 layers x (K, V) x 8 heads x 128 x bf16
    got = mm.sampling_memory(s, batch=16, tokens=2048)
    assert got["KV cache (bf16)"] == 16 * 2048 * 147_456


# ------------------------------------------------------------------ what the GPU runs by default, checked on CPU
def test_gradient_checkpointing_gives_the_same_student_gradients(tiny_model_dir: Path) -> None:
    """solve turns checkpointing on for a GPU (off on CPU): the student pass must compute the same values and grads."""
    import torch

    from sdpo_ttt.config.policy import PolicyConfig
    from sdpo_ttt.policy.model import Policy

    prompts, completions = [[5, 6, 7, 8], [9, 10]], [[11, 12, 13], [14, 15, 16, 17, 18]]
    results = []
    for on in (False, True):
        pol = Policy.load(PolicyConfig(model=str(tiny_model_dir), device="cpu", lora_rank=2, lora_alpha=4, gradient_checkpointing=on), seed=0)
        assert any(getattr(m, "gradient_checkpointing", False) is True for m in pol.model.get_base_model().modules()) == on
        with torch.no_grad():  # a non-zero student so that every LoRA factor gets a gradient
            for p in pol.trainable_parameters():
                p.copy_(torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())) * 0.1)
        h, m = pol.hidden_states(prompts, completions, adapter="student")
        (h[m].float() @ pol.lm_head_weight.float().T).logsumexp(-1).mean().backward()
        results.append((h.detach(), [p.grad.clone() for p in pol.trainable_parameters()]))
    (h0, g0), (h1, g1) = results
    assert torch.allclose(h0, h1, atol=1e-5)
    assert all(torch.allclose(a, b, atol=1e-6, rtol=1e-4) for a, b in zip(g0, g1, strict=True)) and any(a.abs().sum() > 0 for a in g0)
