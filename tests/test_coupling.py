"""Common random numbers on the tiny random model: an sdpo run whose update leaves the LoRA unchanged and a
best-of-k run with the same seed draw identical samples, on the CPU decode loop and on `generate`; with a real update
they share step 0 and part ways after. What the paired report (report/paired.py) relies on."""

from __future__ import annotations

from pathlib import Path

import pytest

from sdpo_ttt.report.paired import pair
from sdpo_ttt.report.runs import load_run
from sdpo_ttt.run import loop
from sdpo_ttt.run.rundir import RunDir
from tests.fakes import FakeSandbox, load_policy, tiny_config
from tests.test_loop_fast import PROBLEM


@pytest.fixture(autouse=True)
def every_answer_is_a_program(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loop, "extract_code", lambda text: f"print({text!r})\n")


def draw(tiny_model_dir: Path, path: Path, sampler: str, **overrides: object) -> RunDir:
    """One run of 3 batches of 4 that never passes; sampler 'decode' (the CPU decode loop) or 'generate'."""
    cfg = tiny_config(tiny_model_dir, budget=12, batch_size=4, **overrides)
    policy = load_policy(cfg)
    if sampler == "generate":
        from sdpo_ttt.policy.sampling.generate import GenerateSampling

        policy.sampler = GenerateSampling(policy)  # as for a model the decode loop does not support: Hugging Face `generate`
    assert (policy.decoder() is not None) == (sampler == "decode")
    run = RunDir.create(path, cfg.flat(), PROBLEM.to_json())
    loop.run_discovery(PROBLEM, cfg, run, policy, FakeSandbox())
    return run


def ids(run: RunDir) -> list[list[int]]:
    return [a["completion_ids"] for a in run.read_attempts()]


@pytest.mark.parametrize("sampler", ["decode", "generate"])
def test_a_zero_update_draws_the_same_samples_as_best_of_k(tiny_model_dir: Path, tmp_path: Path, sampler: str) -> None:
    base = draw(tiny_model_dir, tmp_path / "bok", sampler, strategy="best-of-k", stop_on_success=False)
    # --lr must be > 0: at 1e-30 Adam moves each LoRA weight by ~1e-30, below float32 rounding of every weight and
    # activation it is added to, so the sampled distribution is the base model's bit for bit
    still = draw(tiny_model_dir, tmp_path / "lr0", sampler, strategy="sdpo", lr=1e-30)
    assert len(still.read_metrics()) == 2  # it did update (twice), by nothing visible
    assert ids(still) == ids(base) and len(set(map(tuple, ids(base)))) > 1
    p = pair(load_run(still.path), load_run(base.path))
    assert (p.compared, p.changed, p.outcome) == (12, (), "tie")

    moved = draw(tiny_model_dir, tmp_path / "lr", sampler, strategy="sdpo", lr=0.05)
    assert ids(moved)[:4] == ids(base)[:4]  # step 0 is drawn before any update
    changed = pair(load_run(moved.path), load_run(base.path)).changed
    assert changed and min(changed) > 4  # the update changed later samples only
