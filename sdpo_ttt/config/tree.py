"""The configuration of one run (`solve`, and every run of `compare`/`batch`): one typed tree, validated once.

    SolveConfig                      strategy, budget, batch_size, seed, stop_on_success
      .sampling  SamplingConfig      temperature, top_p, max_new_tokens, max_prompt_tokens
      .policy    PolicyConfig        model, device, dtype, backend, LoRA ...      (sdpo_ttt/config/policy.py)
      .optim     OptimConfig         lr, weight_decay, grad_clip, steps_per_batch, micro_batch_size
      .sdpo      LossConfig          loss, alpha, topk, teacher, teacher_rate ...  (sdpo_ttt/config/sdpo.py)
                                     (its temperature is derived: the sampling temperature)
      .judge     JudgeConfig         feedback_style, feedback_visibility, held_back_fraction, sandbox, sandbox_workers
      .evolve    EvolveConfig        parent_selection, parent_exploration, inspirations  (sdpo_ttt/config/evolve.py)

Every leaf has one flat name (its field name unless declared otherwise, e.g. sdpo.mode is `loss`). The flat form
is what users write and what a run directory keeps: config files (TOML/YAML/JSON), `--set`/`--grid` keys,
config.json, and the CLI flags (`batch_size` -> `--batch-size`), which are generated from this tree.
Values come from defaults < a command's own defaults < a config file (`--config`) < options on the command line.

Adding an option: add a field (with `option(...)`: default, help, range, paper reference) to the section it
belongs to, and a test; it appears in the CLI of solve/compare/batch, config files and config.json by itself.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from sdpo_ttt.config.durations import parse_duration
from sdpo_ttt.config.fields import Section, config_error, field_extra, flat_name, is_derived, option
from sdpo_ttt.errors import ConfigError
from sdpo_ttt.config.evolve import EvolveConfig
from sdpo_ttt.config.policy import PolicyConfig
from sdpo_ttt.config.sdpo import LossConfig
from sdpo_ttt.config.strategies import StrategyName, strategy_help

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10 (pyproject declares tomli there)
    import tomli as tomllib


class SamplingConfig(Section):
    temperature: float = option(1.0, "Sampling temperature (paper: 1.0); 0 = greedy.", ge=0)
    top_p: float = option(1.0, "Nucleus sampling mass.", gt=0, le=1)
    max_new_tokens: int = option(512, "Longest attempt, in tokens.", ge=8)
    max_prompt_tokens: int = option(
        4096, "Longest prompt: multi-turn drops the oldest feedback first to fit, the teacher's feedback is cut to fit.", ge=128)


class OptimConfig(Section):
    lr: float = option(
        1e-5,
        "AdamW learning rate on the LoRA weights (paper: 1e-6 for full fine-tuning; LoRA needs more). Measured "
        "2026-12-01 on the 2-core CPU with the 0.5B (docs/results.md): 1e-5 did least harm to the student in "
        "feedback-only updates and discovered more than 1e-4 in the same compare grid.", gt=0)
    weight_decay: float = option(
        0.01, "AdamW (decoupled) weight decay on the LoRA weights: pulls the student's update ΔW toward 0, the base model. "
        "0.01 as in the reference (lasgroup/SDPO actor optim.weight_decay).", ge=0)
    grad_clip: float = option(1.0, "Clip the global gradient norm at this value (paper: 1.0).", gt=0)
    steps_per_batch: int = option(
        1, "Optimiser steps on each batch of attempts (paper: 1). Steps after the first are off-policy: each token's loss "
        "is weighted by the importance ratio π_θ(y_t)/π_old(y_t), capped at --ratio-clip (the reference's is_clip).", ge=1)
    micro_batch_size: int = option(
        1, "Attempts per forward/backward pass; gradients accumulate over the batch, and the update and its logged "
        "statistics do not depend on this (the denominators are the whole batch's).", ge=1)


FeedbackStyle = Literal["reference", "detailed"]  # sandbox/feedback.py renders them
FeedbackVisibility = Literal["public", "all-but-held-back", "all", "binary"]


class JudgeConfig(Section):
    feedback_style: FeedbackStyle = option(
        "reference", "How feedback is written: reference = the SDPO authors' rules (failing tests only: the first error, "
        "else the first time-out, else up to 2 wrong answers, shortest first; fields of 8 lines x 250 characters; no "
        "pass counts, no score); detailed = pass counts, the score and up to 3 failing tests in full (the style before "
        "issue #26). See docs/feedback.md.")
    feedback_visibility: FeedbackVisibility = option(
        "public", "Which tests the feedback may quote: public = public tests only (a failing hidden test is named by its "
        "kind); all-but-held-back = any failing test, hidden ones included, except a held-back set fixed per run from "
        "the run's seed (judged like the others, never quoted, so a lookup table of the quoted tests cannot pass); all = "
        "any test; binary = passed/failed and the score only. See docs/feedback.md.")
    held_back_fraction: float = option(
        0.25, "With --feedback-visibility all-but-held-back: the fraction of the hidden tests (of all tests when none is "
        "hidden) that is never quoted, at least one test; drawn from the run's seed, recorded in RUN/held_back.json.", gt=0, le=1)
    sandbox: Literal["auto", "docker", "local"] = option(
        "auto", "Where attempts run: docker when a daemon answers (auto), else a local process sandbox (weaker isolation).")
    sandbox_workers: int = option(2, "Containers (or processes) judging attempts in parallel.", ge=1)


class SolveConfig(BaseModel):
    """Everything that decides what a run does. Build it from flat names (`SolveConfig(budget=8, lr=3e-4)`,
    `SolveConfig.model_validate(config_json)`) or from sections; `flat()` gives the flat form back."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=(), validate_default=True)

    strategy: StrategyName = option("sdpo", "How the next batch is drawn and what is learned from it. " + strategy_help() + ".")
    budget: int = option(256, "Total number of attempts (every sampled attempt counts).", ge=1)
    batch_size: int | None = option(None, "Attempts per step, B.", ge=1, default_help="8 on CPU, 16 on GPU")
    seed: int = option(0, "Seed of sampling and initialisation; a run is deterministic for a seed on CPU.", ge=0)
    stop_on_success: bool = option(True, "Stop at the first attempt that passes every test.")
    max_time: str | None = option(
        None, "Wall-clock budget, e.g. 90s, 30m, 2h or 1h30m: no batch starts once it is spent. With --budget and "
        "--max-tokens, whichever is hit first ends the run; --resume counts the time already spent.", default_help="none")
    max_tokens: int | None = option(
        None, "Generated-token budget: no batch starts once this many completion tokens were sampled (whichever of "
        "--budget, --max-time, --max-tokens is hit first ends the run).", ge=1, default_help="none")
    track: list[Literal["tensorboard", "wandb"]] = option(
        default_factory=list, help="Also log every metrics.jsonl scalar and per-step attempt statistics to: tensorboard "
        "(event files in RUN/tensorboard/, local; needs `pip install \"sdpo-ttt[tracking]\"`) and/or wandb (offline mode, "
        "files in RUN/wandb/; needs `pip install wandb`).",
        default_help="none")
    threads: int = option(
        0, "torch threads per run; 0 = its share of the free CPUs (CPUs / parallel workers, fewer while other "
        "processes keep cores busy), re-decided as the load changes (sdpo_ttt/policy/threads.py). SDPO_TTT_THREADS or "
        "OMP_NUM_THREADS in the environment also fix it.", ge=0, default_help="0: the free CPUs' share")

    sampling: SamplingConfig = Field(default_factory=SamplingConfig)
    policy: PolicyConfig = Field(default_factory=PolicyConfig)
    optim: OptimConfig = Field(default_factory=OptimConfig)
    sdpo: LossConfig = Field(default_factory=LossConfig)
    judge: JudgeConfig = Field(default_factory=JudgeConfig)
    evolve: EvolveConfig = Field(default_factory=EvolveConfig)

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as e:
            raise config_error(e, SolveConfig) from None

    @field_validator("max_time", mode="before")
    @classmethod
    def _duration(cls, v: Any) -> Any:
        """A duration ('2h', '1h30m', or seconds as a number), kept as written; checked here so errors name --max-time."""
        if v is None:
            return None
        parse_duration(v)
        return str(v)

    @field_validator("track")
    @classmethod
    def _trackers_installed(cls, v: list[str]) -> list[str]:
        """Refuse --track tensorboard or wandb before anything is opened when its package is not installed."""
        import importlib.util

        if "tensorboard" in v and importlib.util.find_spec("tensorboard") is None:
            missing = ConfigError("--track tensorboard: the tensorboard package is not installed",
                                  'pip install "sdpo-ttt[tracking]" (or drop tensorboard from --track)')
            missing.flag_name = "track"
            raise missing
        if "wandb" in v and importlib.util.find_spec("wandb") is None:
            raise ValueError("wandb is not installed: pip install wandb, or track with tensorboard only")
        return list(dict.fromkeys(v))

    @model_validator(mode="before")
    @classmethod
    def _nest_flat_names(cls, data: Any) -> Any:
        """Accept flat names (`lr`, `loss`, `lora-rank`) next to sections; unknown names stay, to be refused."""
        if not isinstance(data, dict):
            return data
        out: dict[str, Any] = {}
        for key, value in data.items():
            k = str(key).replace("-", "_")
            if k in SECTIONS:
                section = out.setdefault(k, {})
                section.update(value.model_dump() if isinstance(value, BaseModel) else dict(value))
            elif k in FLAT and FLAT[k][0] is not None:
                out.setdefault(FLAT[k][0], {})[FLAT[k][1]] = value
            else:
                out[k] = value
        return out

    @model_validator(mode="after")
    def _derive(self) -> "SolveConfig":
        """Values one section takes from another: the loss distils at the sampling temperature."""
        tau = self.sampling.temperature
        if tau == 0 and self.strategy in ("sdpo", "sdpo-evolve"):
            raise ValueError(f"--temperature 0 (greedy) with --strategy {self.strategy}: SDPO distils at the sampling temperature, "
                             "and B greedy attempts are all the same; use a temperature > 0 (paper: 1.0)")
        if tau > 0 and self.sdpo.temperature != tau:
            self.sdpo = self.sdpo.model_copy(update={"temperature": tau})
        return self

    def flat(self) -> dict[str, Any]:
        """Flat name -> JSON value of every option: what config.json holds."""
        dumped = self.model_dump(mode="json")
        return {name: (dumped[sec][field] if sec else dumped[field]) for name, (sec, field) in FLAT.items()}

    def with_values(self, values: dict[str, Any], source: str = "options") -> "SolveConfig":
        """A copy with some flat values replaced, validated."""
        return build_config([("this run", self.flat()), (source, values)])

    def resolved_batch_size(self, on_gpu: bool) -> int:
        return self.batch_size or (16 if on_gpu else 8)


SECTIONS: dict[str, type[Section]] = {
    name: f.annotation for name, f in SolveConfig.model_fields.items()
    if isinstance(f.annotation, type) and issubclass(f.annotation, Section)
}
# what --help panels and docs/options.md call the root and each section
SECTION_TITLES: dict[str | None, str] = {None: "Run", "sampling": "Sampling", "policy": "Model and LoRA", "optim": "Optimiser",
                                         "sdpo": "SDPO loss and teacher", "judge": "Judging",
                                         "evolve": "Parent selection (evolve, sdpo-evolve)"}


def _flat_index() -> dict[str, tuple[str | None, str]]:
    index: dict[str, tuple[str | None, str]] = {}
    for name in SolveConfig.model_fields:
        if name not in SECTIONS:
            index[name] = (None, name)
    for sec, cls in SECTIONS.items():
        for name in cls.model_fields:
            if is_derived(cls, name):
                continue
            key = flat_name(cls, name)
            if key in index or key in SECTIONS:
                raise RuntimeError(f"config: flat name {key!r} of {sec}.{name} is not unique")
            index[key] = (sec, name)
    return index


FLAT: dict[str, tuple[str | None, str]] = _flat_index()  # flat name -> (section or None for the root, field)


def field_info(name: str):
    """The pydantic FieldInfo of a flat name."""
    sec, field = FLAT[name]
    owner = SECTIONS[sec] if sec else SolveConfig
    return owner.model_fields[field]


def field_default(name: str) -> Any:
    return field_info(name).get_default(call_default_factory=True)


def field_help(name: str) -> str:
    """The help text of a flat name (its description and paper reference)."""
    sec, field = FLAT[name]
    extra = field_extra(SECTIONS[sec] if sec else SolveConfig, field)
    text = field_info(name).description or ""
    return text + (f" (paper: {extra['paper']})" if "paper" in extra else "")


def field_default_help(name: str) -> str:
    """How --help shows a flat name's default."""
    sec, field = FLAT[name]
    extra = field_extra(SECTIONS[sec] if sec else SolveConfig, field)
    if "default_help" in extra:
        return str(extra["default_help"])
    d = field_default(name)
    if isinstance(d, bool):
        return "on" if d else "off"
    if isinstance(d, list):
        return ",".join(map(str, d))
    return "none" if d is None else str(d)


def normalize_keys(values: dict[str, Any]) -> dict[str, Any]:
    return {str(k).replace("-", "_"): v for k, v in values.items()}


def build_config(layers: list[tuple[str, dict[str, Any]]]) -> SolveConfig:
    """Merge flat values, lowest priority first, as (source, values) pairs (values that are None were not given),
    and validate once. A bad value raises ConfigError naming the flag and, for a file, the file."""
    merged: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for source, values in layers:
        for k, v in normalize_keys(values).items():
            if v is not None:
                merged[k] = v
                sources[k] = source
    try:
        return SolveConfig.model_validate(merged)
    except ValidationError as e:
        raise config_error(e, SolveConfig, sources) from None


def read_config_file(path: Path) -> dict[str, Any]:
    """Read a TOML, YAML or JSON config file into flat values (keys are flat names; '-' may replace '_')."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: no such config file", "check the path given to --config")
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix.lower() == ".toml":
            data = tomllib.loads(text)
        elif path.suffix.lower() in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text) or {}
        elif path.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            raise ConfigError(f"{path}: unknown config format", "use a .toml, .yaml/.yml or .json file")
    except ConfigError:
        raise
    except Exception as e:  # parse errors of any of the three formats
        raise ConfigError(f"{path}: cannot parse ({e})", "fix the syntax of the file") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a table/mapping of options at the top level", "write `key = value` lines (TOML) or `key: value` (YAML)")
    return normalize_keys(data)


def resolve_config(config_file: Path | None, cli_values: dict[str, Any], command_defaults: dict[str, Any] | None = None) -> SolveConfig:
    """The one way a command builds its config: defaults < the command's defaults < --config file < flags."""
    layers: list[tuple[str, dict[str, Any]]] = [("defaults", dict(command_defaults or {}))]
    if config_file is not None:
        layers.append((str(config_file), read_config_file(config_file)))
    layers.append(("the command line", cli_values))
    return build_config(layers)
