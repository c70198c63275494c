"""Shared test configuration: everything runs for real (Docker daemon, small model, LoRA steps).

Tests that need Docker are marked `docker` and skip with the reason when no daemon or image can be had;
tests that load a model are marked `model`; end-to-end ones `slow` (CI runs all of them).
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
