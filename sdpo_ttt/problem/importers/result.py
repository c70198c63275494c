"""What every importer returns, its one exit-code rule, and the one way a converted problem is written.

    exit 0   every input became a problem folder, or was skipped by design (an unsupported LeetCode problem);
             with validation, every imported problem passed its check
    exit 1   an input that should have imported did not (bad record, duplicate id, folder exists, write error),
             or an imported problem failed validation
    exit 2   unusable input or output (UserError, raised before anything is written)
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class BadRecord(ValueError):
    """An input record that cannot be converted; the message says which field and why."""


@dataclass
class Imported:
    source: str  # where it came from: "line 12" of a JSONL file, or the package's problem name
    problem_id: str
    path: Path
    tests: int
    info: dict[str, Any] = field(default_factory=dict)  # the importer's own facts (kind, difficulty, wrong/ ...)
    validated: bool | None = None  # judged in the sandbox: its check passed (True) or failed (False); None: not judged
    detail: str = ""  # what the validation found


@dataclass
class Skipped:
    source: str
    reason: str
    detail: str = ""
    by_design: bool = False  # an input the importer does not support: counted, not a failure
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class ImportResult:
    source: str
    out_dir: Path
    imported: list[Imported] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    sandbox: str | None = None  # the sandbox that validated, if any
    imported_from: dict[str, str] = field(default_factory=dict, repr=False)  # problem id -> where it came from

    @property
    def exit_code(self) -> int:
        failed = any(not s.by_design for s in self.skipped) or any(i.validated is False for i in self.imported)
        return 1 if failed else 0

    def skip(self, source: str, reason: str, detail: str = "", *, by_design: bool = False, **info: Any) -> None:
        self.skipped.append(Skipped(source, reason, detail, by_design, info))

    def write(self, doc: dict[str, Any], source: str, *, overwrite: bool, files: dict[str, str] | None = None,
              validated: bool | None = None, detail: str = "", **info: Any) -> Imported | None:
        """Write one converted problem (write_problem_atomically) and record it, or record why it was skipped:
        an id imported earlier in this run, an existing folder without `overwrite`, a write error."""
        pid = doc["id"]
        if pid in self.imported_from:
            self.skip(source, f'id "{pid}" was already imported from {self.imported_from[pid]}', **info)
            return None
        try:
            path = write_problem_atomically(doc, self.out_dir, overwrite=overwrite, files=files)
        except FileExistsError:
            self.skip(source, f"{self.out_dir / pid} already exists (pass --overwrite to replace it)", **info)
            return None
        except OSError as e:
            self.skip(source, f"cannot write {self.out_dir / pid} ({e})", **info)
            return None
        self.imported_from[pid] = source
        item = Imported(source, pid, path, len(doc["tests"]), info, validated, detail)
        self.imported.append(item)
        return item

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "out_dir": str(self.out_dir),
            "sandbox": self.sandbox,
            "imported": [{"source": i.source, "id": i.problem_id, "path": str(i.path), "tests": i.tests, **i.info,
                          "validated": i.validated, "detail": i.detail} for i in self.imported],
            "skipped": [{"source": s.source, "reason": s.reason, "detail": s.detail, "by_design": s.by_design, **s.info}
                        for s in self.skipped],
            "exit_code": self.exit_code,
        }


def write_problem_atomically(doc: dict[str, Any], out_dir: Path, *, overwrite: bool,
                             files: dict[str, str] | None = None) -> Path:
    """Write out_dir/<id>/problem.json (and `files`: relative path -> text, e.g. reference/solution.py) via a
    temporary sibling folder and a rename, so a crash never leaves a half-written problem. Raises FileExistsError."""
    target = out_dir / doc["id"]
    if target.exists() and not overwrite:
        raise FileExistsError(target)
    tmp = Path(tempfile.mkdtemp(prefix=f".{doc['id']}.", suffix=".tmp", dir=out_dir))
    old: Path | None = None
    try:
        os.chmod(tmp, 0o755)  # mkdtemp makes it private; the problem folder is not
        with open(tmp / "problem.json", "w", encoding="utf-8") as f:
            f.write(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
            f.flush()
            os.fsync(f.fileno())
        for rel, text in (files or {}).items():
            dest = tmp / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_text(text, encoding="utf-8")
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{doc['id']}.", suffix=".old", dir=out_dir))
            os.rename(target, old / "problem")
        os.rename(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None and not target.exists() and (old / "problem").exists():
            os.rename(old / "problem", target)  # put the previous version back
        raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    return target


def make_out_dir(out_dir: Path) -> Path:
    from sdpo_ttt.errors import UserError

    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"{out_dir}: cannot create the output folder ({e})", "pick a writable folder") from None
    return out_dir
