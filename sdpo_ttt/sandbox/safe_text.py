"""Attempt-derived text made safe for the host: the one helper every string an attempt produced goes through
before it is printed, logged or written (issue 22).

An attempt chooses what it prints, raises and returns, so its text may hold lone surrogates (`"\\ud800"`:
no UTF-8 encoding exists, so writing or printing it raises UnicodeEncodeError) and control characters (a
terminal obeys ESC sequences and carriage returns: a `got` field could repaint a line as PASSED). Both are
replaced by visible escapes (`\\ud800`, `\\x1b`, `\\x0d`); newlines and tabs stay. Pure and idempotent."""

from __future__ import annotations

import re
from typing import Any

# C0 controls but \t and \n, DEL, C1 controls, lone surrogates, and the bidirectional overrides/isolates
# (they reorder what a terminal shows)
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff\u202a-\u202e\u2066-\u2069]")


def _escape(m: re.Match[str]) -> str:
    c = ord(m.group())
    return f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}"


def safe_text(s: str) -> str:
    """`s` with every character a host cannot print or write faithfully replaced by its escape."""
    return _UNSAFE.sub(_escape, s) if _UNSAFE.search(s) else s


def safe_tree(obj: Any) -> Any:
    """`safe_text` applied to every string (dict keys included) in a tree of dicts, lists and tuples."""
    if isinstance(obj, str):
        return safe_text(obj)
    if isinstance(obj, dict):
        return {safe_tree(k): safe_tree(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [safe_tree(v) for v in obj]
    return obj
