"""`sdpo-ttt problem init DIR --kind stdio|function|script`: a new problem folder that validates as written.

    DIR/problem.json     a small working example of the kind, every field explained by a "// ..." comment key
    DIR/reference/ok.py  a correct solution (validate checks it passes every test)
    DIR/wrong/wrong.py   a wrong one (validate checks it fails at least one test)
    DIR/README.md        what to edit, and the commands that validate and run it

The folder is written next to DIR and renamed into place, so an interrupted init leaves nothing behind.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

from sdpo_ttt.errors import UserError
from sdpo_ttt.problem.schema import Kind, parse_problem, script_tests

KINDS = tuple(k.value for k in Kind)

_COMMON = {
    "// schema": "Always 1. Keys starting with // are comments: `problem validate` and `solve` ignore them; delete them freely.",
    "// id": "Folder-friendly name (letters, digits, '.', '_', '-'); run folders are named after it.",
    "// statement": "What the model reads (Markdown). Say the input and output format and give an example or two.",
    "// tests": "Each test: input, expected output, and public (true: its details may be shown to the model as feedback; "
                "false: hidden, only counted). The model must pass every test.",
    "// limits": "Per test: time_s (seconds, <= 60) and memory_mb.",
}

_STDIO = {
    "statement": "Read an integer `n`, then `n` integers, and print their sum.\n\n## Example\nInput:\n```\n3\n1 2 3\n```\nOutput:\n```\n6\n```\n",
    "// kind": "stdio: the program reads stdin and prints to stdout; outputs are compared token by token (see compare).",
    "tests": [
        {"input": "3\n1 2 3\n", "output": "6\n", "public": True},
        {"input": "1\n-5\n", "output": "-5\n", "public": True},
        {"input": "4\n10 20 30 40\n", "output": "100\n", "public": False},
        {"input": "2\n1000000000000 1\n", "output": "1000000000001\n", "public": False},
    ],
    "// compare": "mode: tokens (whitespace-split, numbers within float_tol), exact, lines or json.",
    "compare": {"mode": "tokens", "float_tol": 1e-6},
}
_STDIO_REF = "n = int(input())\nprint(sum(map(int, input().split()[:n])))\n"
_STDIO_WRONG = "n = int(input())\nprint(max(map(int, input().split()[:n])))  # max, not sum: fails most tests\n"

_FUNCTION = {
    "statement": "Write `total(xs: list[int]) -> int` returning the sum of `xs` (0 for an empty list).",
    "// kind": "function: the program defines function.name (top level, or a method of class Solution); each test calls it.",
    "function": {"name": "total", "starter_code": "def total(xs: list[int]) -> int:\n    ...\n"},
    "// tests (function)": "input: the JSON array of the call's arguments, as a string; output: the JSON of the expected return value.",
    "tests": [
        {"input": "[[1, 2, 3]]", "output": "6", "public": True},
        {"input": "[[]]", "output": "0", "public": True},
        {"input": "[[-4, 4, 9]]", "output": "9", "public": False},
    ],
}
_FUNCTION_REF = "def total(xs: list[int]) -> int:\n    return sum(xs)\n"
_FUNCTION_WRONG = "def total(xs: list[int]) -> int:\n    return max(xs)  # fails on [] and on sums\n"

_SCRIPT_CODE = "assert is_palindrome('abba')\nassert not is_palindrome('abc')\nassert is_palindrome('')\nassert not is_palindrome('ab')\n"
_SCRIPT = {
    "statement": "Write `is_palindrome(s: str) -> bool`: True when `s` reads the same backwards.",
    "// kind": "script: the program defines script.entry_point; each assert of script.test_code is one test (HumanEval/MBPP style).",
    "script": {"entry_point": "is_palindrome", "test_code": _SCRIPT_CODE},
    "// tests (script)": "One test per assert of test_code, in order (input = the assert's source, output unused); keep them in "
                         "step when you edit test_code: `sdpo-ttt problem validate` says when they disagree.",
    "tests": script_tests(_SCRIPT_CODE, public_asserts=2),
}
_SCRIPT_REF = "def is_palindrome(s: str) -> bool:\n    return s == s[::-1]\n"
_SCRIPT_WRONG = "def is_palindrome(s: str) -> bool:\n    return len(s) % 2 == 0  # right for 'abba' and '', wrong otherwise\n"

_TEMPLATES: dict[str, tuple[dict[str, Any], str, str]] = {
    "stdio": (_STDIO, _STDIO_REF, _STDIO_WRONG),
    "function": (_FUNCTION, _FUNCTION_REF, _FUNCTION_WRONG),
    "script": (_SCRIPT, _SCRIPT_REF, _SCRIPT_WRONG),
}


def problem_id_for(folder: Path) -> str:
    """A valid problem id from a folder name ('My Problem!' -> 'My-Problem')."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", folder.resolve().name).strip("-._")
    return name or "my-problem"


def template(kind: str, problem_id: str) -> dict[str, Any]:
    """The commented problem.json of a kind, as a dict in file order (comments just before what they explain)."""
    if kind not in _TEMPLATES:
        raise UserError(f"unknown problem kind {kind!r}", f"use --kind {' or '.join(KINDS)}")
    body = _TEMPLATES[kind][0]
    doc: dict[str, Any] = {"// schema": _COMMON["// schema"], "schema": 1, "// id": _COMMON["// id"], "id": problem_id,
                           "title": f"{problem_id} ({kind} example: replace it with your problem)",
                           "// kind": body["// kind"], "kind": kind}
    doc["// statement"] = _COMMON["// statement"]
    doc["statement"] = body["statement"]
    for key in ("function", "script"):
        if key in body:
            doc[key] = body[key]
    doc["// tests"] = _COMMON["// tests"]
    for k in body:
        if k.startswith("// tests ("):
            doc[k] = body[k]
    doc["tests"] = body["tests"]
    if "compare" in body:
        doc["// compare"] = body["// compare"]
        doc["compare"] = body["compare"]
    doc["// limits"] = _COMMON["// limits"]
    doc["limits"] = {"time_s": 2.0, "memory_mb": 256}
    return doc


def readme(folder: Path, kind: str) -> str:
    return (
        f"# {folder.name}\n\n"
        f"A {kind} problem for sdpo-ttt, written by `sdpo-ttt problem init` as a working example: edit problem.json "
        "(statement, tests; the `// ...` keys are comments), put a correct program in reference/ and a plausible wrong "
        "one in wrong/.\n\n"
        f"Validate (schema, then reference/ must pass every test and wrong/ must fail one): `sdpo-ttt problem validate {folder}`\n\n"
        f"Run a discovery: `sdpo-ttt solve {folder} --budget 64`\n"
    )


def with_statement(doc: dict[str, Any], text: str) -> dict[str, Any]:
    """The template with a statement taken from a text file: its first line (without '#') becomes the title.
    The example tests stay: replace them with the problem's own."""
    lines = text.strip().splitlines()
    if not lines:
        raise UserError("the statement file is empty", "write the problem statement into it (Markdown)")
    title = lines[0].lstrip("#").strip() or doc["title"]
    return {**doc, "title": title, "statement": text.strip() + "\n",
            "// tests": doc["// tests"] + " The tests below belong to the example: replace them with this problem's."}


def init_problem(folder: Path, kind: str, statement: Path | None = None) -> list[Path]:
    """Write a new problem folder (refusing to touch an existing problem); returns the files written.
    statement: a text (Markdown) file whose content becomes the statement, its first line the title."""
    folder = Path(folder)
    if kind not in _TEMPLATES:
        raise UserError(f"unknown problem kind {kind!r}", f"use --kind {' or '.join(KINDS)}")
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise UserError(f"{folder} already exists and is not an empty folder", "pick a new folder name for the problem")
    doc = template(kind, problem_id_for(folder))
    if statement is not None:
        try:
            doc = with_statement(doc, Path(statement).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as e:
            raise UserError(f"{statement}: cannot read the statement file ({e})", "pass a readable text file to --statement") from None
    parse_problem(doc, "template")  # the template itself must be a valid problem
    _, ref, wrong = _TEMPLATES[kind]
    files = {
        "problem.json": json.dumps(doc, indent=2, ensure_ascii=False) + "\n",
        "reference/ok.py": ref,
        "wrong/wrong.py": wrong,
        "README.md": readme(folder, kind),
    }
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        for rel, text in files.items():
            (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
            (tmp / rel).write_text(text, encoding="utf-8")
        os.chmod(tmp, 0o755)
        os.replace(tmp, folder)  # onto a missing or empty folder: all files appear at once
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return [folder / rel for rel in files]
