"""Import MBPP records as problem folders of kind `script` (each assert of test_list is one test).

MBPP record: task_id, text, code, test_list (assert lines calling the function by name), test_setup_code.
Each task becomes <out>/mbpp-<task_id>/problem.json with the record's code in reference/solution.py; writing,
validation (`--validate`: the reference judged, a failing AST mutant kept in wrong/) and the result are shared
with HumanEval (humaneval.import_suite).
"""

from __future__ import annotations

import ast
from typing import Any

from sdpo_ttt.problem.importers.humaneval import DEFAULT_MEMORY_MB, DEFAULT_PUBLIC_ASSERTS, DEFAULT_TIME_S, checked, require_str
from sdpo_ttt.problem.importers.result import BadRecord
from sdpo_ttt.problem.schema import script_tests


def _called_names(test_code: str) -> list[str]:
    out: list[str] = []
    for node in ast.walk(ast.parse(test_code)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id not in out:
            out.append(node.func.id)
    return out


def convert_mbpp(record: Any, *, public_asserts: int = DEFAULT_PUBLIC_ASSERTS, time_s: float = DEFAULT_TIME_S,
                 memory_mb: int = DEFAULT_MEMORY_MB) -> tuple[dict[str, Any], str]:
    """One MBPP record -> (problem.json data, reference solution). The entry point is the first function the
    asserts call that the reference code defines. Raises BadRecord naming the field."""
    text, code = require_str(record, "text"), require_str(record, "code")
    tl = record.get("test_list")
    if not isinstance(tl, list) or not tl or not all(isinstance(t, str) for t in tl):
        raise BadRecord('field "test_list": expected a non-empty list of assert strings')
    setup = record.get("test_setup_code") or ""
    if not isinstance(setup, str):
        raise BadRecord('field "test_setup_code": expected a string')
    test = "\n".join(t.strip() for t in tl) + "\n"
    try:
        tests = script_tests(test, public_asserts)
        defined = {n.name for n in ast.parse(code.replace("\r\n", "\n")).body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    except SyntaxError as e:
        raise BadRecord(f'fields "test_list" / "code": not valid Python (line {e.lineno}: {e.msg})') from None
    entry = next((n for n in _called_names(test) if n in defined), None)
    if entry is None:
        raise BadRecord('field "test_list": the asserts call no function that field "code" defines')
    tid = record.get("task_id")
    pid = f"mbpp-{tid}" if isinstance(tid, (int, str)) and str(tid).strip() else ""
    if not pid or not all(c.isalnum() or c in "._-" for c in pid):
        raise BadRecord('field "task_id": expected a number or a simple name')
    statement = (text.strip() + f"\n\nThe function is named `{entry}`. Your code should pass tests like:\n"
                 + "\n".join(tl[: max(1, min(public_asserts, len(tl)))]) + "\n")
    doc = {
        "schema": 1, "id": pid, "title": entry, "statement": statement, "kind": "script",
        "script": {"entry_point": entry, "test_code": test, "setup_code": setup, "check_function": ""},
        "tests": tests, "limits": {"time_s": time_s, "memory_mb": memory_mb},
        "source": f"MBPP (task {tid})", "tags": ["mbpp"],
    }
    return checked(doc), code.replace("\r\n", "\n")
