"""Import LiveCodeBench `code_generation_lite` records (one JSON object per line) as problem folders.

Record fields used: question_title, question_content, platform, question_id, contest_id, contest_date,
starter_code, difficulty, public_test_cases (JSON string), private_test_cases (JSON string, or
base64(zlib(pickle(JSON string)))), metadata (JSON string; `func_name` for LeetCode-style problems).

- `stdin` tests become a `stdio` problem (token compare with float tolerance, as LiveCodeBench does).
- `functional` tests store one JSON value per argument, one per line ("[1,2,3]\\n5"); they become a
  `function` problem whose test input is the JSON array of those arguments.
- Public tests stay public; private tests become hidden (public: false).
- The pickled private tests are decoded with an unpickler that refuses every global, so a crafted record
  can produce at most a str/bytes, never run code; decompression is capped.
- Each problem folder is written to a temporary folder beside its target and renamed into place: a
  crash never leaves a half-written problem. A bad record is skipped with its line number and reason.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import pickle
import re
import zlib
from pathlib import Path
from typing import Any

from sdpo_ttt.errors import UserError
from sdpo_ttt.problem.importers.result import BadRecord, ImportResult, make_out_dir
from sdpo_ttt.problem.schema import problem_errors

MAX_DECOMPRESSED_BYTES = 512 * 1024 * 1024  # private tests of one record, after zlib
DEFAULT_TIME_S = 6.0  # LiveCodeBench's own per-test timeout
DEFAULT_MEMORY_MB = 512
MAX_ID_LEN = 64


# ---------------------------------------------------------------- decoding


class _NoGlobals(pickle.Unpickler):
    """Unpickler that refuses every class/function lookup: only plain data (a str here) can come out."""

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"refusing {module}.{name}: only a pickled string is accepted")


def _decode_pickled(text: str) -> str:
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=False)
    except (binascii.Error, UnicodeEncodeError) as e:
        raise BadRecord(f'field "private_test_cases": neither JSON nor base64 ({e})') from None
    d = zlib.decompressobj()
    try:
        data = d.decompress(raw, MAX_DECOMPRESSED_BYTES)
    except zlib.error as e:
        raise BadRecord(f'field "private_test_cases": neither JSON nor base64(zlib(pickle)) ({e})') from None
    if d.unconsumed_tail:
        raise BadRecord(f'field "private_test_cases": larger than {MAX_DECOMPRESSED_BYTES >> 20} MiB once decompressed')
    try:
        value = _NoGlobals(io.BytesIO(data)).load()
    except Exception as e:  # any malformed pickle: UnpicklingError, EOFError, ValueError, ...
        raise BadRecord(f'field "private_test_cases": not a pickled string ({type(e).__name__}: {e})') from None
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if not isinstance(value, str):
        raise BadRecord(f'field "private_test_cases": the pickle holds a {type(value).__name__}, expected a JSON string')
    return value


def _test_list(record: dict[str, Any], name: str) -> list[dict[str, Any]]:
    raw = record.get(name)
    if raw is None or raw == "":
        return []
    if isinstance(raw, list):
        value: Any = raw
    elif isinstance(raw, str):
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            if name != "private_test_cases":
                raise BadRecord(f'field "{name}": not valid JSON') from None
            try:
                value = json.loads(_decode_pickled(raw))
            except json.JSONDecodeError as e:
                raise BadRecord(f'field "{name}": the decoded text is not JSON ({e.msg})') from None
    else:
        raise BadRecord(f'field "{name}": expected a JSON string, got {type(raw).__name__}')
    if not isinstance(value, list):
        raise BadRecord(f'field "{name}": expected a list of tests, got {type(value).__name__}')
    for i, t in enumerate(value):
        if not isinstance(t, dict) or not isinstance(t.get("input"), str) or not isinstance(t.get("output"), str):
            raise BadRecord(f'field "{name}[{i}]": expected {{"input": str, "output": str, "testtype": ...}}')
    return value


def _json_values(text: str) -> list[Any]:
    """All JSON values in `text`, separated by whitespace (LiveCodeBench puts one argument per line)."""
    dec = json.JSONDecoder()
    out: list[Any] = []
    pos = 0
    while True:
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos >= len(text):
            return out
        value, pos = dec.raw_decode(text, pos)
        out.append(value)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def problem_id(record: dict[str, Any]) -> str:
    """A folder-friendly id: question_id and title slugs, e.g. "abc301_a-overall-winner"."""
    qid = re.sub(r"[^A-Za-z0-9_.-]+", "-", str(record.get("question_id") or "")).strip("-._")
    title = _slug(str(record.get("question_title") or ""))
    pid = "-".join(p for p in (qid.lower(), title) if p)[:MAX_ID_LEN].rstrip("-._")
    if not pid:
        raise BadRecord('fields "question_id" and "question_title" are both empty: no id to name the problem by')
    return pid


def convert_record(record: Any, *, time_s: float = DEFAULT_TIME_S, memory_mb: int = DEFAULT_MEMORY_MB) -> dict[str, Any]:
    """One LiveCodeBench record -> problem.json data (schema 1). Raises BadRecord naming the field."""
    if not isinstance(record, dict):
        raise BadRecord(f"expected a JSON object, got {type(record).__name__}")
    for name in ("question_content", "public_test_cases"):
        if name not in record:
            raise BadRecord(f'field "{name}" is missing')
    content = record["question_content"]
    if not isinstance(content, str) or not content.strip():
        raise BadRecord('field "question_content": expected a non-empty string')
    pid = problem_id(record)
    tests = [(t, True) for t in _test_list(record, "public_test_cases")]
    tests += [(t, False) for t in _test_list(record, "private_test_cases")]
    if not tests:
        raise BadRecord('fields "public_test_cases" and "private_test_cases" hold no test')
    types = {str(t.get("testtype", "stdin")) for t, _ in tests}
    if len(types) > 1 or not types <= {"stdin", "functional"}:
        raise BadRecord(f'field "testtype": expected all "stdin" or all "functional", got {sorted(types)}')
    functional = types == {"functional"}

    doc: dict[str, Any] = {
        "schema": 1,
        "id": pid,
        "title": str(record.get("question_title") or pid),
        "statement": content.strip() + "\n",
        "kind": "function" if functional else "stdio",
    }
    if functional:
        meta = record.get("metadata") or "{}"
        try:
            meta = json.loads(meta) if isinstance(meta, str) else meta
        except json.JSONDecodeError:
            raise BadRecord('field "metadata": not valid JSON') from None
        name = meta.get("func_name") if isinstance(meta, dict) else None
        if not isinstance(name, str) or not name:
            raise BadRecord('field "metadata.func_name" is missing: functional tests need the function name')
        doc["function"] = {"name": name, "starter_code": str(record.get("starter_code") or "")}
    out_tests = []
    n_public = sum(public for _, public in tests)
    for i, (t, public) in enumerate(tests):
        where = f"public_test_cases[{i}]" if public else f"private_test_cases[{i - n_public}]"
        if functional:
            try:
                args = _json_values(t["input"])
                expected = json.loads(t["output"])
            except json.JSONDecodeError as e:
                raise BadRecord(f'field "{where}": functional input/output must be JSON values ({e.msg})') from None
            out_tests.append({"input": json.dumps(args), "output": json.dumps(expected), "public": public})
        else:
            out_tests.append({"input": t["input"], "output": t["output"], "public": public})
    doc["tests"] = out_tests
    doc["compare"] = {"mode": "json" if functional else "tokens", "float_tol": 1e-6}
    doc["limits"] = {"time_s": time_s, "memory_mb": memory_mb}
    difficulty = str(record.get("difficulty") or "").lower()
    doc["difficulty"] = difficulty if difficulty in ("easy", "medium", "hard") else ""
    platform = str(record.get("platform") or "")
    where_from = ", ".join(
        x for x in (platform, f"contest {record['contest_id']}" if record.get("contest_id") else "",
                    str(record.get("contest_date") or "")[:10]) if x
    )
    doc["source"] = f"LiveCodeBench ({where_from})" if where_from else "LiveCodeBench"
    doc["tags"] = ["livecodebench"] + ([platform] if platform else [])
    errs = problem_errors(doc)
    if errs:
        raise BadRecord(f"the converted problem is invalid: {errs[0]}")
    return doc


def import_lcb(
    file: Path, out_dir: Path, *, overwrite: bool = False, time_s: float = DEFAULT_TIME_S, memory_mb: int = DEFAULT_MEMORY_MB
) -> ImportResult:
    """Convert every record of a JSONL file; bad records are skipped with their line number and reason.

    Raises UserError (exit 2) only when the input cannot be read or the output folder cannot be made."""
    file = Path(file)
    if not file.is_file():
        raise UserError(f"{file}: no such file", "pass a LiveCodeBench .jsonl file (one record per line)")
    result = ImportResult(str(file), make_out_dir(out_dir))
    try:
        fh = open(file, encoding="utf-8", errors="strict")
    except OSError as e:
        raise UserError(f"{file}: cannot read the file ({e})", "check the path and its permissions") from None
    with fh:
        lineno = 0
        while True:
            try:
                line = fh.readline()
            except UnicodeDecodeError as e:
                raise UserError(f"{file}: line {lineno + 1} is not UTF-8 ({e.reason})", "pass a UTF-8 JSONL file") from None
            if not line:
                break
            lineno += 1
            if not line.strip():
                continue
            where = f"line {lineno}"
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                result.skip(where, f"not valid JSON (column {e.colno}: {e.msg})")
                continue
            try:
                doc = convert_record(record, time_s=time_s, memory_mb=memory_mb)
            except BadRecord as e:
                result.skip(where, str(e))
                continue
            result.write(doc, where, overwrite=overwrite, kind=doc["kind"])
    return result
