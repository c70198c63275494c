"""Pull the program out of a model's answer.

Rules (measured on real samples of the built-in models, see tests/test_extract.py):
- Fenced blocks (``` or ~~~, closed or cut off at the end of the text) are the candidates. A block
  tagged python/py/python3 is always code. Small models often write the tag on its own line
  ("```\\npython\\n..."): that line is the tag, not code. An untagged block counts only if it looks
  like a program (parses and does more than name a value), so sample I/O blocks ("3 4", "7") are
  skipped. Blocks tagged with another language (text, bash, json...) are skipped.
- Among candidates the LONGEST wins (ties: the later one): small models append short usage
  snippets or re-print a fragment after the real solution more often than they revise it.
- No fenced candidate: the whole text, if it parses as Python and looks like a program.
- Otherwise None (the loop turns that into a format_error verdict with feedback).

Where the answer ends (`code_end`, `code_closed`): at the closing fence of the FIRST closed candidate block.
Every sampler stops there (policy/stop.py), so the answer is the code: nothing after it is sampled, judged or
trained on, and the extractor, which then sees one candidate, judges exactly that block.
"""

from __future__ import annotations

import ast
import re

_FENCE = re.compile(r"^[ \t]{0,3}(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^\n`]*)$", re.MULTILINE)
_PY_TAGS = {"python", "py", "python3", "py3", "python 3"}


def _blocks(text: str) -> list[tuple[str | None, str, int | None]]:
    """(tag, body, end) of each fenced block in order; tag None = untagged; end = the offset just past its closing
    fence, None for an unclosed last block (which runs to the end of the text)."""
    out: list[tuple[str | None, str, int | None]] = []
    pos = 0
    while True:
        m = _FENCE.search(text, pos)
        if m is None:
            return out
        fence, info = m.group("fence"), m.group("info").strip().lower()
        start = m.end() + 1
        close = re.compile(r"^[ \t]{0,3}" + re.escape(fence[0]) + "{" + str(len(fence)) + r",}[ \t]*$", re.MULTILINE)
        c = close.search(text, start) if start <= len(text) else None
        body = text[start: c.start()] if c else text[start:]
        tag: str | None = info.split()[0] if info else None
        if tag is None:  # "```\npython\n...": the language written on the first line
            first, _, rest = body.partition("\n")
            if first.strip().lower() in _PY_TAGS:
                tag, body = "python", rest
        out.append((tag, body, c.end() if c else None))
        if c is None:
            return out
        pos = c.end()


def looks_like_program(code: str) -> bool:
    """Parses as Python and has at least one statement that does something (not just a bare name/number)."""
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):
        return False
    for node in tree.body:
        if not isinstance(node, ast.Expr):
            return True
        if isinstance(node.value, (ast.Call, ast.Await)):
            return True
    return False


def _is_code(tag: str | None, body: str) -> bool:
    """Whether a fenced block is a candidate program: tagged Python, or untagged and looks like a program."""
    if not body.strip():
        return False
    if tag is not None:
        return tag.lstrip("{.").rstrip("}") in _PY_TAGS
    return looks_like_program(body)


def code_end(text: str) -> int | None:
    """The offset just past the closing fence of the first closed candidate block of `text` (the block the
    extractor judges once the answer stops there), or None while no candidate block is closed.

    A fence line at the very end of the text closes (as `extract_code` reads it), so an answer can stop on the
    token that completes the fence."""
    for tag, body, end in _blocks(text):
        if end is not None and _is_code(tag, body.strip("\n")):
            return end
    return None


def code_closed(text: str) -> bool:
    """Whether the answer so far holds a closed code block: the point where every sampler stops."""
    return code_end(text) is not None


def extract_code(text: str) -> str | None:
    """The program in a model's answer, or None if there is none (see module doc for the rules)."""
    candidates = [b for tag, body, _ in _blocks(text) if _is_code(tag, b := body.strip("\n"))]
    if candidates:
        best = max(range(len(candidates)), key=lambda i: (len(candidates[i].strip()), i))
        return candidates[best].rstrip() + "\n"
    stripped = text.strip()
    if stripped and "```" not in stripped and looks_like_program(stripped):
        return stripped + "\n"
    return None
