"""The one config tree: layers (defaults < command defaults < file < flags), validation once with errors that name
the flag, the flat form (files, config.json, --grid), and the CLI options generated from it."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import get_args

import pytest
from typer.testing import CliRunner

from sdpo_ttt.cli import app
from sdpo_ttt.config.tree import FLAT, SECTIONS, SolveConfig, build_config, field_default, read_config_file, resolve_config
from sdpo_ttt.errors import ConfigError
from sdpo_ttt.config.policy import DEFAULT_MODEL, PolicyConfig
from sdpo_ttt.config.sdpo import LossConfig
from sdpo_ttt.config.strategies import BASELINE, SUMMARIES, StrategyName
from sdpo_ttt.report.styles import STYLES
from sdpo_ttt.run.strategies import STRATEGIES

REPO = Path(__file__).resolve().parent.parent
PROBLEM = REPO / "problems" / "sum-two-ints" / "problem.json"


def test_layers_flags_over_file_over_command_defaults(tmp_path: Path) -> None:
    f = tmp_path / "c.toml"
    f.write_text('budget = 32\nloss = "full"\nlora-rank = 4\n')
    cfg = resolve_config(f, {"budget": 8}, {"budget": 64, "lr": 3e-4})
    assert (cfg.budget, cfg.sdpo.mode, cfg.policy.lora_rank, cfg.optim.lr) == (8, "full", 4, 3e-4)
    assert resolve_config(None, {}, {"budget": 64}).budget == 64
    assert resolve_config(None, {}).budget == field_default("budget") == 256


def test_none_does_not_override() -> None:
    assert build_config([("file", {"budget": 32}), ("the command line", {"budget": None})]).budget == 32


@pytest.mark.parametrize("suffix, text", [(".yaml", "teacher: frozen\nalpha: 0.5\n"), (".json", '{"teacher": "frozen", "alpha": 0.5}')])
def test_yaml_and_json_files(tmp_path: Path, suffix: str, text: str) -> None:
    f = tmp_path / f"c{suffix}"
    f.write_text(text)
    cfg = resolve_config(f, {})
    assert cfg.sdpo.teacher == "frozen" and cfg.sdpo.alpha == 0.5


def test_bad_config_file(tmp_path: Path) -> None:
    f = tmp_path / "c.toml"
    f.write_text("budget = = 3")
    with pytest.raises(ConfigError, match="cannot parse"):
        read_config_file(f)
    with pytest.raises(ConfigError, match="no such config file"):
        read_config_file(tmp_path / "missing.toml")
    (tmp_path / "c.ini").write_text("budget=3")
    with pytest.raises(ConfigError, match="unknown config format"):
        read_config_file(tmp_path / "c.ini")


@pytest.mark.parametrize(
    "values, message, fix",
    [
        ({"bugdet": 3}, r"unknown option --bugdet", r"option names"),
        ({"alpha": 2}, r"^--alpha 2: input should be less than or equal to 1$", r"--alpha a value >= 0 and <= 1"),
        ({"loss": "kl"}, r"^--loss 'kl': input should be", r"--loss one of logit, full, token, sequence"),
        ({"batch_size": 0}, r"^--batch-size 0: ", r"--batch-size a value >= 1"),
        ({"vllm_gpu_memory": 0.99}, r"^--vllm-gpu-memory 0.99: ", r">= 0.05 and <= 0.95"),
        ({"lora_rank": 8, "teacher_rank": 4}, r"--teacher-rank \(4\) must be >= --lora-rank \(8\)", r"solve --help"),
        ({"adv_clip": -1}, r"^--adv-clip -1: input should be greater than or equal to 0$", r"--adv-clip a value >= 0"),
        ({"temperature": 0}, r"--temperature 0 \(greedy\) with --strategy sdpo", r"solve --help"),
        ({"device": "gpu"}, r"^--device 'gpu': ", r"solve --help"),
    ],
)
def test_a_bad_value_names_its_flag(values: dict, message: str, fix: str) -> None:
    with pytest.raises(ConfigError, match=re.compile(message, re.M)) as e:  # str(e): the message, then the fix
        build_config([("the command line", values)])
    assert re.search(message, e.value.message), e.value.message
    assert re.search(fix, e.value.fix or ""), e.value.fix


def test_a_bad_value_from_a_file_names_the_file(tmp_path: Path) -> None:
    f = tmp_path / "c.toml"
    f.write_text("vllm-gpu-memory = 0.99\n")
    with pytest.raises(ConfigError, match=r"--vllm-gpu-memory 0.99 \(set in .*c.toml\)"):
        resolve_config(f, {})


def test_valid_values_pass_and_the_rules_are_the_same_for_sections() -> None:
    assert build_config([("x", {"adv_clip": 1.0, "loss": "logit"})]).sdpo.adv_clip == 1.0  # every loss mode takes it
    assert build_config([("x", {"temperature": 0, "strategy": "best-of-k"})]).sampling.temperature == 0
    # a section built alone validates with the same rules and messages as the tree
    with pytest.raises(ConfigError, match=r"^--vllm-gpu-memory 0.99"):
        PolicyConfig(vllm_gpu_memory=0.99)
    with pytest.raises(ConfigError, match=r"^--loss 'nope'"):
        LossConfig(mode="nope")


def test_defaults_are_defined_once() -> None:
    cfg = SolveConfig()
    assert cfg.policy == PolicyConfig() and cfg.policy.model == DEFAULT_MODEL
    assert cfg.sdpo == LossConfig()
    assert SolveConfig(model="m").policy.model == "m"


def test_the_loss_distils_at_the_sampling_temperature() -> None:
    cfg = SolveConfig(temperature=0.7)
    assert cfg.sdpo.temperature == 0.7
    assert "temperature" not in [f for s, f in FLAT.values() if s == "sdpo"]  # not an option of its own


def test_flat_form_round_trips_and_names_are_unique() -> None:
    cfg = SolveConfig(budget=4, lr=1e-3, loss="full", model="tiny", sandbox="local", lora_targets=["q_proj"])
    flat = cfg.flat()
    assert set(flat) == set(FLAT)
    assert SolveConfig.model_validate(flat) == cfg
    assert SolveConfig.model_validate(json.loads(json.dumps(flat))) == cfg
    assert (flat["lr"], flat["loss"], flat["sandbox"], flat["lora_targets"]) == (1e-3, "full", "local", ["q_proj"])
    n_leaves = sum(1 for n in SolveConfig.model_fields if n not in SECTIONS) + sum(
        len(cls.model_fields) for cls in SECTIONS.values()) - 1  # sdpo.temperature is derived
    assert len(FLAT) == n_leaves


def test_with_values_validates_and_keeps_the_rest() -> None:
    cfg = SolveConfig(budget=4, lr=1e-3)
    other = cfg.with_values({"lr": 3e-4}, "--grid lr=0.0003")
    assert (other.budget, other.optim.lr, cfg.optim.lr) == (4, 3e-4, 1e-3)
    with pytest.raises(ConfigError, match=r"--lr -1 \(set in --grid lr=-1\)"):
        cfg.with_values({"lr": -1}, "--grid lr=-1")


def test_batch_size_default_depends_on_device() -> None:
    assert SolveConfig().resolved_batch_size(on_gpu=False) == 8
    assert SolveConfig().resolved_batch_size(on_gpu=True) == 16
    assert SolveConfig(batch_size=3).resolved_batch_size(on_gpu=True) == 3


def test_the_strategy_names_of_the_config_are_the_registry_of_run() -> None:
    """config/strategies.py names the choices and their help; run/strategies.py implements them: the same names, in
    the same (report) order, and every one has a plot style."""
    assert tuple(get_args(StrategyName)) == tuple(SUMMARIES) == tuple(STRATEGIES)
    assert BASELINE in STRATEGIES and set(STYLES) == set(STRATEGIES)
    for name in STRATEGIES:
        assert SolveConfig(strategy=name, temperature=1.0).strategy == name
    with pytest.raises(ConfigError, match=r"^--strategy 'grpo'"):
        SolveConfig(strategy="grpo")


# ------------------------------------------------------------------ the generated CLI
def _help(*cmd: str) -> str:
    r = CliRunner().invoke(app, [*cmd, "--help"], terminal_width=400)
    assert r.exit_code == 0, r.output
    return r.output


def _option_line(text: str, flag: str) -> str:
    """The help entry of one option, joined over its wrapped lines."""
    m = re.search(rf"^\s+{re.escape(flag)}\b(.*?)(?=^\s+-|\Z)", text, re.S | re.M)
    assert m, f"{flag} not in help"
    return " ".join(m.group(1).split())


def test_solve_help_has_every_option_with_its_default() -> None:
    text = _help("solve")
    for name in FLAT:
        line = _option_line(text, "--" + name.replace("_", "-"))
        assert "[default: " in line, (name, line)
    assert "sdpo|sdpo-evolve|multi-turn|evolve|best-of-k" in text and "logit|full|token|sequence" in text
    assert "ema|trust-region|frozen|live" in text and "auto|docker|local" in text
    assert "[default: 256] [range: >= 1]" in _option_line(text, "--budget")
    assert "[range: >= 0.05 and <= 0.95]" in _option_line(text, "--vllm-gpu-memory")


def test_grid_commands_get_the_options_but_not_what_the_grid_sets() -> None:
    for cmd, budget in (("compare", "64"), ("batch", "256")):
        text = _help(cmd)
        assert f"[default: {budget}]" in _option_line(text, "--budget"), cmd
        assert "--lr" in text and "--teacher " in text and "--no-stop-on-success" not in text and "--seed " not in text


def test_sample_help_shows_the_sampling_options() -> None:
    text = _help("sample")
    assert "[default: 1.0] [range: >= 0]" in _option_line(text, "--temperature")
    assert "--lr" not in text


def test_a_bad_flag_value_fails_before_anything_starts(tmp_path: Path) -> None:
    r = CliRunner().invoke(app, ["solve", str(PROBLEM), "--batch-size", "0", "--run-dir", str(tmp_path / "run")])
    assert isinstance(r.exception, ConfigError) and r.exception.message.startswith("--batch-size 0:")
    assert not (tmp_path / "run").exists()


def test_flags_reach_the_config(tmp_path: Path, monkeypatch) -> None:
    seen = {}

    def fake_solve(problem, cfg, **kw):
        seen["cfg"] = cfg
        raise SystemExit(0)

    monkeypatch.setattr("sdpo_ttt.run.solve.solve", fake_solve)
    r = CliRunner().invoke(app, ["solve", str(PROBLEM), "--lr", "3e-4", "--loss", "token", "--adv-clip", "2",
                                 "--lora-targets", "q_proj, v_proj", "--no-stop-on-success", "--sandbox", "local"])
    assert r.exit_code == 0, r.output
    cfg = seen["cfg"]
    assert (cfg.optim.lr, cfg.sdpo.mode, cfg.sdpo.adv_clip, cfg.policy.lora_targets, cfg.stop_on_success, cfg.judge.sandbox) == (
        3e-4, "token", 2.0, ["q_proj", "v_proj"], False, "local")


def test_compare_runs_the_method_and_the_three_baselines_by_default() -> None:
    from sdpo_ttt.config.strategies import COMPARE_DEFAULT
    from sdpo_ttt.run.strategies import STRATEGIES

    assert set(COMPARE_DEFAULT) == {"sdpo", "multi-turn", "evolve", "best-of-k"} and set(COMPARE_DEFAULT) <= set(STRATEGIES)
