"""Output comparison: pure functions that never raise and never call code of the attempt.

Numbers: an integer expected value needs an integer answer of the same value (compared as canonical
digits, so any size works); a float expected value accepts any number within `tol` (absolute or relative);
NaN equals nothing, infinities only themselves. `ints_are_floats` (the problem's compare.ints_are_floats)
lets an integer expected value be answered with a float within `tol`.
"""

import math
import re

from .wire import Int

TRUNC = 1000  # chars kept of input / expected / got in each test record (middle-out)
MAX_DEPTH = 100

# ASCII digits only: `\d` and float() accept every Unicode digit ("١٢٣", "１２"), which no judge reads as a number
_INT = re.compile(r"^[+-]?[0-9]+\Z")
_NUM = re.compile(r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?\Z")


def trunc(s, n=TRUNC):
    """Middle-out truncation: keep the head and the tail, say how much was cut."""
    if len(s) <= n:
        return s
    cut = len(s) - n
    h = n // 2
    return s[:h] + "\n...[%d chars cut]...\n" % cut + s[len(s) - (n - h):]


def short(s, n=40):
    s = str(s)
    return s if len(s) <= n else s[: n - 3] + "..."


def _canon_int(tok):
    """Canonical digits of an integer token of any length."""
    neg = tok.startswith("-")
    body = tok.lstrip("+-").lstrip("0") or "0"
    return "-" + body if neg and body != "0" else body


def _to_float(x):
    """float of a number token / Int / float; never raises (overflow gives +-inf)."""
    if type(x) is float:
        return x
    text = x.text if type(x) is Int else x
    try:
        return float(text)
    except (ValueError, OverflowError):
        return math.nan


def close(a, b, tol):
    if a == b:
        return True
    if math.isnan(a) or math.isnan(b) or math.isinf(a) or math.isinf(b):
        return False
    d = abs(a - b)
    return d <= tol or d <= tol * max(abs(a), abs(b))


def _number_ok(got, exp, got_is_int, exp_is_int, tol, ints_are_floats):
    if exp_is_int and got_is_int:
        return _canon_int(got) == _canon_int(exp) if type(got) is str else got == exp
    if exp_is_int and not ints_are_floats:
        return False
    return close(_to_float(got), _to_float(exp), tol)


def compare_tokens(got, exp, tol, ints_are_floats=False):
    """(ok, detail): whitespace tokens equal; numbers as described in the module doc."""
    g, e = got.split(), exp.split()
    for i, (a, b) in enumerate(zip(g, e)):  # noqa: B905 - uneven on purpose (lengths compared below); Python 3.9 here
        if a == b:
            continue
        if _NUM.match(a) and _NUM.match(b):
            a_int, b_int = bool(_INT.match(a)), bool(_INT.match(b))
            if _number_ok(a, b, a_int, b_int, tol, ints_are_floats):
                continue
            if b_int and not a_int and not ints_are_floats:
                return False, "token %d: expected the integer %s, got %s" % (i + 1, short(b), short(a))
        return False, "token %d: expected %s, got %s" % (i + 1, short(b), short(a))
    if len(g) != len(e):
        return False, "expected %d tokens, got %d" % (len(e), len(g))
    return True, ""


def compare_lines(got, exp):
    def norm(s):
        ls = [line.rstrip() for line in s.replace("\r\n", "\n").split("\n")]
        while ls and not ls[-1]:
            ls.pop()
        return ls

    g, e = norm(got), norm(exp)
    for i, (a, b) in enumerate(zip(g, e)):  # noqa: B905 - uneven on purpose (lengths compared below); Python 3.9 here
        if a != b:
            return False, "line %d: expected %s, got %s" % (i + 1, short(b), short(a))
    if len(g) != len(e):
        return False, "expected %d lines, got %d" % (len(e), len(g))
    return True, ""


def compare_text(got, exp, mode, tol, ints_are_floats=False):
    """stdio comparison in `mode` (tokens / lines / exact / json)."""
    if mode == "exact":
        return (got == exp), ("" if got == exp else "output differs from the expected output byte for byte")
    if mode == "lines":
        return compare_lines(got, exp)
    if mode == "json":
        from .wire import MAX_VALUES, Malformed, parse_json

        try:
            e = parse_json(exp, ints="text")
        except Malformed as err:
            return False, "the expected output is not valid JSON (%s)" % err
        try:
            g = parse_json(got, ints="text", max_values=MAX_VALUES)
        except Malformed:
            return False, "the output is not valid JSON"
        return compare_values(g, e, tol, ints_are_floats)
    return compare_tokens(got, exp, tol, ints_are_floats)


# ------------------------------------------------------------------------------------------ JSON values


class NotJson(Exception):
    pass


def json_view(v, depth=0):
    """A decoded return value as JSON would carry it (tuples as lists, dict keys as strings, the way
    json.dumps writes them). Raises NotJson naming the first type JSON cannot hold."""
    if depth > MAX_DEPTH:
        raise NotJson("a value nested more than %d levels" % MAX_DEPTH)
    t = type(v)
    if v is None or t in (bool, Int, float, str):
        return v
    if t in (list, tuple):
        return [json_view(x, depth + 1) for x in v]
    if t is dict:
        out = {}
        for k, x in v.items():
            if type(k) is str:
                key = k
            elif type(k) is Int:
                key = k.text
            elif k is None or type(k) in (bool, float):
                key = {None: "null", True: "true", False: "false"}.get(k) if type(k) is not float else repr(k)
            else:
                raise NotJson("a dict key of type %s" % type(k).__name__)
            out[key] = json_view(x, depth + 1)
        return out
    raise NotJson(t.__name__)


def show(v, n=40):
    """A bounded JSON-like rendering of a decoded value."""
    out = []
    budget = [n + 1]

    def put(s):
        if budget[0] > 0:
            out.append(s[: budget[0]])
            budget[0] -= len(s)

    def walk(x, depth):
        if budget[0] <= 0:
            return
        t = type(x)
        if x is None:
            put("null")
        elif t is bool:
            put("true" if x else "false")
        elif t is Int:
            put(x.text)
        elif t is float:
            put(repr(x))
        elif t is str:
            put('"' + x[: budget[0]].replace("\\", "\\\\").replace('"', '\\"') + '"')
        elif t is list and depth < MAX_DEPTH:
            put("[")
            for i, y in enumerate(x):
                if i:
                    put(", ")
                walk(y, depth + 1)
                if budget[0] <= 0:
                    break
            put("]")
        elif t is dict and depth < MAX_DEPTH:
            put("{")
            for i, (k, y) in enumerate(x.items()):
                put((", " if i else "") + '"%s": ' % k[:40])
                walk(y, depth + 1)
                if budget[0] <= 0:
                    break
            put("}")
        else:
            put("...")

    walk(v, 0)
    return short("".join(out), n)


def _type_word(x):
    t = type(x)
    return {type(None): "null", bool: "a boolean", Int: "an integer", float: "a float", str: "a string",
            list: "a list", dict: "an object"}.get(t, t.__name__)


def compare_values(got, exp, tol, ints_are_floats=False):
    """(ok, detail) for JSON values (integers as Int). Iterative: any nesting depth, never raises."""
    stack = [(got, exp, "")]
    while stack:
        a, b, path = stack.pop()
        where = path or "top level"
        ta, tb = type(a), type(b)
        if tb is bool or ta is bool:
            if ta is tb and a == b:
                continue
        elif tb in (Int, float) and ta in (Int, float):
            if _number_ok(a, b, ta is Int, tb is Int, tol, ints_are_floats):
                continue
            if tb is Int and ta is float and not ints_are_floats:
                return False, "at %s: expected the integer %s, got the float %s" % (where, short(b.text), short(repr(a)))
        elif tb is str and ta is str:
            if a == b:
                continue
        elif a is None and b is None:
            continue
        elif tb is list and ta is list:
            if len(a) != len(b):
                return False, "at %s: expected a list of length %d, got length %d" % (where, len(b), len(a))
            if len(stack) + len(b) > 10 ** 7:
                return False, "the value is too large to compare"
            for i in range(len(b) - 1, -1, -1):
                stack.append((a[i], b[i], "%s[%d]" % (path, i)))
            continue
        elif tb is dict and ta is dict:
            if set(a) != set(b):
                return False, "at %s: expected keys %s, got %s" % (where, short(sorted(b)), short(sorted(a)))
            for k in sorted(b, reverse=True):
                stack.append((a[k], b[k], '%s["%s"]' % (path, short(k, 30))))
            continue
        if ta is not tb and not (ta in (Int, float) and tb in (Int, float)):
            return False, "at %s: expected %s %s, got %s %s" % (where, _type_word(b), show(b), _type_word(a), show(a))
        return False, "at %s: expected %s, got %s" % (where, show(b), show(a))
    return True, ""
