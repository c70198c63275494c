"""Experiment tracking, opt-in (`--track tensorboard,wandb`): every metrics.jsonl scalar and per-step attempt
statistics, where researchers look. Nothing is imported, written or sent when `--track` is empty.

- tensorboard: event files in RUN/tensorboard/, written here with no dependency (the TFRecord framing and the
  three protobuf messages TensorBoard reads: Event, Summary, Summary.Value); view them with
  `pip install tensorboard` and `tensorboard --logdir RUN/tensorboard`. Local files only.
- wandb: Weights & Biases in offline mode (files in RUN/wandb/, nothing sent; `wandb sync` uploads them later
  if you want); needs `pip install wandb`.
"""

from __future__ import annotations

import os
import socket
import struct
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

from sdpo_ttt.errors import UserError

TRACKERS = ("tensorboard", "wandb")


class Tracker(Protocol):
    def scalars(self, step: int, values: dict[str, float]) -> None: ...
    def close(self) -> None: ...


# ------------------------------------------------------------------ what is logged
def numeric(values: dict[str, Any]) -> dict[str, float]:
    """The numeric (non-bool) entries of a metrics.jsonl line, as floats; 'step' itself is the x axis, not a scalar."""
    return {k: float(v) for k, v in values.items() if isinstance(v, (int, float)) and not isinstance(v, bool) and k != "step"}


def attempt_stats(records: Sequence[dict[str, Any]], *, best_score: float, attempts_used: int, passed_so_far: int) -> dict[str, float]:
    """Per-step statistics of one judged batch (attempts.jsonl records) and the run so far."""
    n = len(records)
    if n == 0:
        return {}
    verdicts = Counter(str(r.get("verdict", "?")) for r in records)
    tokens = [int(r.get("completion_tokens", 0)) for r in records]
    out = {
        "attempts/pass_rate": sum(bool(r.get("passed")) for r in records) / n,
        "attempts/mean_score": sum(float(r.get("score", 0.0)) for r in records) / n,
        "attempts/max_score": max(float(r.get("score", 0.0)) for r in records),
        "attempts/truncated_frac": sum(r.get("finish_reason") == "length" for r in records) / n,
        "attempts/mean_completion_tokens": sum(tokens) / n,
        "run/best_score": float(best_score),
        "run/attempts_used": float(attempts_used),
        "run/attempts_passed": float(passed_so_far),
    }
    out.update({f"attempts/verdict_frac/{k}": v / n for k, v in verdicts.items()})
    return out


# ------------------------------------------------------------------ TensorBoard event files, no dependency
def _crc32c_table() -> list[int]:
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_CRC_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli), as TFRecord files use."""
    c = 0xFFFFFFFF
    for b in data:
        c = _CRC_TABLE[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def masked_crc(data: bytes) -> int:
    c = crc32c(data)
    return (((c >> 15) | (c << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def tfrecord(data: bytes) -> bytes:
    """One TFRecord: length, masked CRC of the length, data, masked CRC of the data."""
    header = struct.pack("<Q", len(data))
    return header + struct.pack("<I", masked_crc(header)) + data + struct.pack("<I", masked_crc(data))


def _varint(n: int) -> bytes:
    n &= (1 << 64) - 1  # int64 as protobuf encodes it (two's complement for negatives)
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field_bytes(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def event_bytes(wall_time: float, step: int, *, scalars: dict[str, float] | None = None, file_version: str | None = None) -> bytes:
    """An Event message: wall_time (1, double), step (2, int64), file_version (3, string) or summary (5, Summary of
    Values: tag (1, string), simple_value (2, float))."""
    out = _varint(1 << 3 | 1) + struct.pack("<d", wall_time) + _varint(2 << 3 | 0) + _varint(step)
    if file_version is not None:
        out += _field_bytes(3, file_version.encode())
    if scalars:
        values = b"".join(
            _field_bytes(1, _field_bytes(1, tag.encode()) + _varint(2 << 3 | 5) + struct.pack("<f", value))
            for tag, value in scalars.items()
        )
        out += _field_bytes(5, values)
    return out


class TensorBoardWriter:
    """Appends scalar events to one new event file in `log_dir` (one file per process, as TensorBoard expects)."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = Path(log_dir)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        name = f"events.out.tfevents.{int(time.time())}.{socket.gethostname()}.{os.getpid()}.sdpo-ttt"
        self.path = self.log_dir / name
        self._f = self.path.open("ab")
        self._write(event_bytes(time.time(), 0, file_version="brain.Event:2"))

    def _write(self, event: bytes) -> None:
        self._f.write(tfrecord(event))
        self._f.flush()

    def scalars(self, step: int, values: dict[str, float]) -> None:
        if values:
            self._write(event_bytes(time.time(), step, scalars=values))

    def close(self) -> None:
        self._f.close()


def read_tfrecords(path: Path) -> Iterator[bytes]:
    """The records of a TFRecord file, checking both CRCs (for tests and tools)."""
    data = Path(path).read_bytes()
    pos = 0
    while pos < len(data):
        header = data[pos: pos + 8]
        (length,) = struct.unpack("<Q", header)
        (hcrc,) = struct.unpack("<I", data[pos + 8: pos + 12])
        body = data[pos + 12: pos + 12 + length]
        (dcrc,) = struct.unpack("<I", data[pos + 12 + length: pos + 16 + length])
        if hcrc != masked_crc(header) or dcrc != masked_crc(body):
            raise ValueError(f"{path}: bad CRC at byte {pos}")
        yield body
        pos += 16 + length


# ------------------------------------------------------------------ Weights & Biases, offline
class WandbWriter:
    """wandb in offline mode: runs are written under `directory`/wandb and never sent."""

    def __init__(self, directory: Path, name: str, config: dict[str, Any]) -> None:
        try:
            import wandb
        except ImportError:
            raise UserError("--track wandb needs the wandb package", "pip install wandb (or drop wandb from --track)") from None
        os.environ.setdefault("WANDB_SILENT", "true")
        self._wandb = wandb
        self.run = wandb.init(project="sdpo-ttt", name=name, config=config, dir=str(directory), mode="offline", reinit=True)

    def scalars(self, step: int, values: dict[str, float]) -> None:
        if values:
            self.run.log(values, step=step)

    def close(self) -> None:
        self.run.finish()


class Trackers:
    """Every tracker asked for; with none, every call does nothing."""

    def __init__(self, trackers: list[Tracker]) -> None:
        self.trackers = trackers

    def scalars(self, step: int, values: dict[str, float]) -> None:
        for t in self.trackers:
            t.scalars(step, values)

    def close(self) -> None:
        for t in self.trackers:
            t.close()
        self.trackers = []


def open_trackers(kinds: Sequence[str], run_dir: Path, name: str, config: dict[str, Any]) -> Trackers:
    """The trackers of `--track` for one run (an empty list opens nothing, imports nothing, writes nothing)."""
    unknown = [k for k in kinds if k not in TRACKERS]
    if unknown:
        raise UserError(f"--track {','.join(unknown)}: unknown tracker", f"use {' or '.join(TRACKERS)}, comma-separated")
    out: list[Tracker] = []
    if "tensorboard" in kinds:
        out.append(TensorBoardWriter(Path(run_dir) / "tensorboard"))
    if "wandb" in kinds:
        out.append(WandbWriter(Path(run_dir), name, config))
    return Trackers(out)
