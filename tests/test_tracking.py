"""Experiment tracking (issue #15, item 4): TensorBoard event files read back, wandb offline, nothing when not asked."""

from __future__ import annotations

import struct
import sys
import types
from pathlib import Path

import pytest

from sdpo_ttt.config.tree import SolveConfig
from sdpo_ttt.run.loop import run_discovery
from sdpo_ttt.problem.schema import load_problem
from sdpo_ttt.run.rundir import RunDir
from sdpo_ttt.run.tracking import attempt_stats, crc32c, event_bytes, numeric, open_trackers, read_tfrecords
from tests.fakes import FakePolicy, FakeSandbox, program

PROBLEM = Path(__file__).resolve().parent.parent / "problems" / "sum-two-ints" / "problem.json"


# ---- a minimal protobuf reader, independent of the writer's code paths
def _varint(buf: bytes, i: int) -> tuple[int, int]:
    shift = out = 0
    while True:
        b = buf[i]
        i += 1
        out |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return out, i


def _fields(buf: bytes) -> list[tuple[int, object]]:
    i, out = 0, []
    while i < len(buf):
        key, i = _varint(buf, i)
        num, wire = key >> 3, key & 7
        if wire == 0:
            v, i = _varint(buf, i)
        elif wire == 1:
            v, i = struct.unpack("<d", buf[i: i + 8])[0], i + 8
        elif wire == 5:
            v, i = struct.unpack("<f", buf[i: i + 4])[0], i + 4
        else:
            n, i = _varint(buf, i)
            v, i = buf[i: i + n], i + n
        out.append((num, v))
    return out


def read_scalars(log_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """tag -> [(step, value)] from every event file in log_dir."""
    out: dict[str, list[tuple[int, float]]] = {}
    for f in sorted(log_dir.glob("events.out.tfevents.*")):
        for rec in read_tfrecords(f):
            ev = dict(_fields(rec))
            if 5 not in ev:
                assert ev.get(3) == b"brain.Event:2"
                continue
            for _, value in _fields(ev[5]):
                v = dict(_fields(value))
                out.setdefault(v[1].decode(), []).append((ev.get(2, 0), v[2]))
    return out


def test_crc32c_known_values() -> None:
    assert crc32c(b"") == 0 and crc32c(b"123456789") == 0xE3069283  # the standard CRC-32C check value
    assert crc32c(bytes(32)) == 0x8A9136AA  # RFC 3720 test vector: 32 bytes of zeros


def test_event_encoding_round_trip() -> None:
    ev = dict(_fields(event_bytes(12.5, 300, scalars={"loss": 0.25, "a/b": -3.0})))
    assert ev[1] == 12.5 and ev[2] == 300
    values = [dict(_fields(v)) for _, v in _fields(ev[5])]
    assert [(v[1].decode(), v[2]) for v in values] == [("loss", 0.25), ("a/b", -3.0)]


def test_attempt_stats_and_numeric() -> None:
    recs = [{"passed": False, "score": 0.5, "verdict": "wrong_answer", "completion_tokens": 10, "finish_reason": "eos"},
            {"passed": True, "score": 1.0, "verdict": "passed", "completion_tokens": 30, "finish_reason": "length"}]
    s = attempt_stats(recs, best_score=1.0, attempts_used=6, passed_so_far=1)
    assert s["attempts/pass_rate"] == 0.5 and s["attempts/mean_score"] == 0.75 and s["attempts/truncated_frac"] == 0.5
    assert s["attempts/mean_completion_tokens"] == 20 and s["attempts/verdict_frac/passed"] == 0.5 and s["run/attempts_used"] == 6
    assert numeric({"step": 3, "loss": 1, "ok": True, "warning": "x", "grad_norm": 0.5}) == {"loss": 1.0, "grad_norm": 0.5}


def _run(tmp_path: Path, **cfg_values):
    problem = load_problem(PROBLEM)
    cfg = SolveConfig.model_validate({"strategy": "multi-turn", "budget": 6, "batch_size": 2, **cfg_values})
    run = RunDir.create(tmp_path / "run", cfg.flat(), problem.to_json())
    script = [program("a", score=0.25), program("b"), program("c", score=0.5), program("d"), program("e"), program("f", score=0.75)]
    run_discovery(problem, cfg, run, FakePolicy(script), FakeSandbox())
    return run


def test_tensorboard_gets_every_metric_and_attempt_statistics(tmp_path: Path) -> None:
    run = _run(tmp_path, track=["tensorboard"])
    scalars = read_scalars(run.path / "tensorboard")
    for m in run.read_metrics():  # every metrics.jsonl scalar, at its step
        for key, value in numeric(m).items():
            assert (m["step"], pytest.approx(value, rel=1e-6)) in scalars[key], key
    assert [s for s, _ in scalars["attempts/mean_score"]] == [0, 1, 2]
    assert [v for _, v in scalars["run/best_score"]] == [0.25, 0.5, 0.75]


def test_tensorboard_reads_our_files(tmp_path: Path) -> None:
    """The real TensorBoard reader (when installed) sees the same scalars."""
    event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    run = _run(tmp_path, track=["tensorboard"])
    acc = event_accumulator.EventAccumulator(str(run.path / "tensorboard"))
    acc.Reload()
    ours = read_scalars(run.path / "tensorboard")
    tags = acc.Tags()["scalars"]
    assert set(tags) == set(ours)
    for tag in tags:
        assert [(e.step, pytest.approx(e.value)) for e in acc.Scalars(tag)] == ours[tag]


def test_nothing_when_not_asked(tmp_path: Path) -> None:
    before = set(sys.modules)
    run = _run(tmp_path)
    assert not (run.path / "tensorboard").exists() and not (run.path / "wandb").exists()
    assert "wandb" not in set(sys.modules) - before
    assert open_trackers([], tmp_path, "x", {}).trackers == []


def test_wandb_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: dict[str, object] = {"log": []}

    class FakeRun:
        def log(self, values, step):
            calls["log"].append((step, dict(values)))

        def finish(self):
            calls["finished"] = True

    def init(**kw):
        calls["init"] = kw
        return FakeRun()

    fake = types.ModuleType("wandb")
    fake.init = init
    fake.__spec__ = types.SimpleNamespace(name="wandb")  # importlib.util.find_spec finds it in sys.modules
    monkeypatch.setitem(sys.modules, "wandb", fake)
    run = _run(tmp_path, track=["wandb"])
    assert calls["init"]["mode"] == "offline" and calls["init"]["dir"] == str(run.path)
    assert calls["init"]["config"]["budget"] == 6 and calls["finished"]
    logged = {k for _, v in calls["log"] for k in v}
    assert "attempts/pass_rate" in logged and all(k in logged for m in run.read_metrics() for k in numeric(m))


def test_wandb_missing_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from sdpo_ttt.errors import ConfigError

    monkeypatch.setitem(sys.modules, "wandb", None)
    import importlib.util

    if importlib.util.find_spec("wandb") is not None:  # pragma: no cover - a real install
        pytest.skip("wandb is installed")
    with pytest.raises(ConfigError, match="--track: wandb is not installed"):
        SolveConfig(track=["wandb"])
