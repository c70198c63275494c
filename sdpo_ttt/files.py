"""Files that survive a kill: the one atomic writer, and the one append-only JSONL writer and reader.

A kill (SIGKILL, power loss) can stop a write half-way. `write_atomic` makes readers see the old or the new file,
never half of one. `append_jsonl` writes one whole line per record and, if an earlier kill left the last line
torn, starts on a fresh line; `read_jsonl` skips lines that do not parse (a torn line), so a reader never fails
on a file a kill left behind.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any


def write_atomic(path: Path, text: str) -> None:
    """Write text to path so that readers see either the old or the new file, never half of it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def append_jsonl(path: Path, record: dict[str, Any]) -> None:
    """Append one record as one line, flushed to disk; a line torn by an earlier kill is ended first."""
    path = Path(path)
    # backslashreplace: a lone surrogate becomes its JSON escape (read back as the same string), never a crash
    data = (json.dumps(record, ensure_ascii=False, default=str) + "\n").encode("utf-8", "backslashreplace")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            data = b"\n" + data
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The records of a JSONL file ([] if it does not exist), skipping empty lines and lines torn by a kill."""
    path = Path(path)
    if not path.exists():
        return []
    out: list[dict[str, Any]] = []
    for line in path.read_bytes().split(b"\n"):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError):
            continue  # torn by a kill mid-write
        if isinstance(rec, dict):
            out.append(rec)
    return out
