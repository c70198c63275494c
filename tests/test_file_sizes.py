"""No file outside tests/ and problems/ runs over ~450 lines unless it says why at its top (issue 21).

"Says why" means the words "on purpose" within its first 12 lines (a docstring, a comment, or seccomp.json's "comment"
entry). Measured results under benchmarks/results/ are data, not code or prose, and are not counted.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
LIMIT = 450
KINDS = (".py", ".sh", ".md", ".json", ".toml", ".cfg", ".yaml", ".yml")
EXEMPT = ("tests/", "problems/", "benchmarks/results/")


def long_files_without_reason(paths: list[str], read=lambda p: (REPO / p).read_text(encoding="utf-8")) -> list[str]:
    bad = []
    for path in paths:
        if not path.endswith(KINDS) or path.startswith(EXEMPT):
            continue
        lines = read(path).splitlines()
        if len(lines) > LIMIT and "on purpose" not in "\n".join(lines[:12]):
            bad.append(f"{path} ({len(lines)} lines)")
    return bad


def test_a_long_file_must_say_why_and_a_short_one_need_not() -> None:
    texts = {"a.py": "x\n" * 451, "b.py": '"""(Long on purpose.)"""\n' + "x\n" * 500, "c.md": "x\n" * 450,
             "tests/t.py": "x\n" * 900, "benchmarks/results/r.json": "x\n" * 900}
    assert long_files_without_reason(list(texts), read=texts.__getitem__) == ["a.py (451 lines)"]


def test_no_file_outside_tests_and_problems_is_long_without_saying_why() -> None:
    try:
        listed = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    assert long_files_without_reason(listed.split()) == []
