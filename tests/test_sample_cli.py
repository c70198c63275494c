"""`sdpo-ttt sample` end to end on the tiny random model, judged by the fake sandbox (seconds, no Docker)."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sdpo_ttt.cli import app
from tests.fakes import FakeSandbox


@pytest.fixture()
def fake_sandbox(monkeypatch) -> FakeSandbox:
    sandbox = FakeSandbox(n_tests=3)

    @contextlib.contextmanager
    def open_fake(*args, **kwargs):
        yield sandbox

    monkeypatch.setattr("sdpo_ttt.sandbox.open_sandbox", open_fake)
    return sandbox


def test_sample_prints_one_json_object_per_attempt_with_its_verdict(tiny_model_dir: Path, fake_sandbox: FakeSandbox) -> None:
    res = CliRunner().invoke(app, ["sample", "two-sum", "-n", "3", "--judge", "--json", "--model", str(tiny_model_dir),
                                   "--device", "cpu", "--max-new-tokens", "8", "--seed", "1"])
    assert res.exit_code == 0, res.output
    records = [json.loads(line) for line in res.stdout.splitlines() if line.startswith("{")]
    assert [r["index"] for r in records] == [0, 1, 2]
    assert all(0 < r["n_tokens"] <= 8 and r["outcome"] and "score" in r for r in records)
    # attempts with code go to the sandbox, once each; the random model's text rarely holds any (judged as such without it)
    assert fake_sandbox.judged == [r["code"] for r in records if r["code"]]


def test_sample_is_reproducible_from_its_seed(tiny_model_dir: Path) -> None:
    args = ["sample", "two-sum", "-n", "2", "--json", "--model", str(tiny_model_dir), "--device", "cpu", "--max-new-tokens", "8"]
    first, again = (CliRunner().invoke(app, args + ["--seed", "4"]) for _ in range(2))
    other = CliRunner().invoke(app, args + ["--seed", "5"])
    assert first.exit_code == 0, first.output
    assert first.stdout == again.stdout and first.stdout != other.stdout


def test_sample_closes_the_policy_even_when_sampling_fails(tiny_model_dir: Path, monkeypatch) -> None:
    """The sampler's engine (vLLM: a process and GPU memory) is shut down whatever happens while sampling."""
    from sdpo_ttt.policy.model import Policy

    closed: list[bool] = []
    monkeypatch.setattr(Policy, "close", lambda self: closed.append(True))

    def broken(*args, **kwargs):
        raise RuntimeError("sampler broke")

    monkeypatch.setattr("sdpo_ttt.policy.sampling.programs.sample_programs", broken)
    res = CliRunner().invoke(app, ["sample", "two-sum", "-n", "1", "--model", str(tiny_model_dir), "--device", "cpu"])
    assert isinstance(res.exception, RuntimeError) and closed == [True]
