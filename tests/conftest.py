"""Shared test configuration: everything runs for real (Docker daemon, small model, LoRA steps).

Tests that need Docker are marked `docker` and skip with the reason when no daemon or image can be had;
tests that load a real model are marked `model`; end-to-end ones `slow`; those that run attempts in the local
process sandbox `sandbox` (CI runs all of them). The fast loop leaves all four out and still reaches the
update, the loop and the strategies through `tiny_model_dir` (a random-initialised model) and a scripted
sandbox (tests/fakes.py).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PROBLEMS = REPO / "problems"

# Never let a test reach for a model hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def problems_dir() -> Path:
    return PROBLEMS


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-initialised tiny Qwen2 (sdpo_ttt/policy/shapes/tiny-qwen2.json) as an ordinary HF folder.

    Built once per session in about a second; the tokenizer comes from the prepared small built-in model.
    Weights are drawn wider than Hugging Face's default (std 0.2, not 0.02): at 0.02 every next-token
    distribution is near uniform and the SDPO loss ~1e-6, too small for a test to tell a right update from a
    wrong one; at 0.2 it is ~0.1 and falls over a few steps.
    """
    from sdpo_ttt.policy.catalog import model_dir
    from sdpo_ttt.policy.random_model import shape_config, write_random_model

    tokenizer = model_dir("smollm2-135m")
    if not (tokenizer / "tokenizer.json").is_file():
        pytest.skip(f"no tokenizer at {tokenizer}: run `bash scripts/setup.sh` (prepares smollm2-135m)")
    shape = {**shape_config("tiny-qwen2"), "initializer_range": 0.2}
    return write_random_model(shape, tokenizer, tmp_path_factory.mktemp("models") / "tiny-qwen2")
