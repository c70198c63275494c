"""Framing and the value encoding spoken across the attempt boundary, with strict validation.

Frames: `<decimal byte length>\\n<UTF-8 JSON>`. Read with `os.read` of exactly the bytes a frame needs,
so a process that forks after reading a frame never holds the bytes of the next one.

Values (a function's arguments and return value) are JSON in which every non-JSON type is tagged:
list -> JSON array; an int of more than 4000 digits {"i": "<digits>"}; tuple {"t": [...]}; set {"s": [...]}; frozenset {"f": [...]}; dict {"d": [[k, v], ...]};
bytes {"b": "<hex>"}; complex {"c": [re, im]}; None / bool / int / float / str as themselves (floats may be
NaN / Infinity). `decode` is the trusted side: it accepts only that shape, bounded in bytes, nesting and
integer digits, and raises `Malformed` (with a one-line reason) for anything else; it never calls code of
the attempt, since what it builds are plain builtin values.
"""

import json
import os
import re

MAX_DEPTH = 100  # nesting of a decoded value
MAX_INT_DIGITS = 100000  # digits of one integer (int(str) is quadratic beyond a few thousand)
MAX_HEADER = 12  # digits of a frame's length line
MAX_VALUES = 2000000  # values in one JSON text the attempt wrote (a list of 2M ints is fine; 20M lists are not)


class Malformed(Exception):
    """The other side sent something outside the protocol (the message says what)."""


# ------------------------------------------------------------------------------------------ frames


def frame(obj):
    body = json.dumps(obj, allow_nan=True).encode("utf-8")
    return str(len(body)).encode() + b"\n" + body


def write_frame(fd, obj):
    data = frame(obj)
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def read_exact(fd, n):
    """Exactly n bytes from fd, or fewer if it ended first."""
    parts, got = [], 0
    while got < n:
        chunk = os.read(fd, min(n - got, 1 << 20))
        if not chunk:
            break
        parts.append(chunk)
        got += len(chunk)
    return b"".join(parts)


def read_frame(fd, max_bytes):
    """The next frame's body (bytes), or None at a clean end of stream. Raises Malformed."""
    header = b""
    while True:
        c = os.read(fd, 1)
        if not c:
            if header:
                raise Malformed("the stream ended inside a frame header")
            return None
        if c == b"\n":
            break
        if not c.isdigit() or len(header) >= MAX_HEADER:
            raise Malformed("a frame header must be a decimal length and a newline")
        header += c
    if not header:
        raise Malformed("empty frame header")
    n = int(header)
    if n > max_bytes:
        raise Malformed("a frame of %d bytes is over the limit of %d bytes" % (n, max_bytes))
    body = read_exact(fd, n)
    if len(body) != n:
        raise Malformed("the stream ended inside a frame (%d of %d bytes)" % (len(body), n))
    return body


def split_frames(data, max_frames=1000):
    """Frames from a byte buffer already read in full: (list of bodies, trailing bytes that are not a frame)."""
    out, pos = [], 0
    while pos < len(data) and len(out) < max_frames:
        nl = data.find(b"\n", pos, pos + MAX_HEADER + 1)
        if nl < 0 or not data[pos:nl].isdigit():
            break
        n = int(data[pos:nl])
        if nl + 1 + n > len(data):
            break
        out.append(data[nl + 1:nl + 1 + n])
        pos = nl + 1 + n
    return out, data[pos:]


def count_values(body):
    """At most how many values (arrays, objects, strings, numbers, literals) the JSON text `body` holds: every
    value but the first follows a `,` or opens after `[` / `:`. Characters inside strings count too (a bound
    in one pass at C speed, with no regular expression to backtrack)."""
    raw = body.encode("utf-8", "surrogatepass") if isinstance(body, str) else body
    return raw.count(b",") + raw.count(b"[") + raw.count(b"{") + raw.count(b":") + 1


def parse_json(body, ints="int", max_values=None):
    """JSON text -> Python value; integers per `ints` ("int": Python ints of at most MAX_INT_DIGITS digits,
    "text": `Int` holding the canonical digits, never converted). `max_values` (MAX_VALUES for anything the
    attempt wrote): more values than that is Malformed before any is built, so no reply can make its reader
    run out of memory (20M empty lists are 60 MB of text and over 1 GB of lists). Raises Malformed."""
    hook = _to_int if ints == "int" else Int.parse
    if max_values is not None:
        n = count_values(body)
        if n > max_values:
            raise Malformed("the JSON holds about %d values, over the limit of %d" % (n, max_values))
    try:
        text = body.decode("utf-8") if isinstance(body, (bytes, bytearray)) else body
        return json.loads(text, parse_int=hook)
    except RecursionError:
        raise Malformed("the JSON is nested too deeply") from None
    except Malformed:
        raise
    except (ValueError, UnicodeDecodeError) as e:
        raise Malformed("not valid UTF-8 JSON (%s)" % str(e)[:120]) from None


# ------------------------------------------------------------------------------------------ integers


def _to_int(s):
    """int(s) for up to MAX_INT_DIGITS digits without touching the interpreter's int-str digit limit."""
    digits = len(s) - (s[:1] in "+-")
    if digits > MAX_INT_DIGITS:
        raise Malformed("an integer of %d digits is over the limit of %d" % (digits, MAX_INT_DIGITS))
    return _int_chunks(s)


def _int_chunks(s):
    if len(s) <= 4000:
        return int(s)
    neg = s[:1] == "-"
    body = s.lstrip("+-")
    h = len(body) // 2
    v = _int_chunks(body[:h]) * 10 ** (len(body) - h) + _int_chunks(body[h:])
    return -v if neg else v


def int_text(v):
    """Decimal text of a Python int of any size (no digit-limit error)."""
    if -10 ** 4000 < v < 10 ** 4000:
        return str(v)
    neg = v < 0
    v = -v if neg else v
    h = int(v.bit_length() * 0.30103) // 2  # about half the digits
    hi, lo = divmod(v, 10 ** h)
    t = int_text(hi) + int_text(lo).rjust(h, "0")
    return "-" + t if neg else t


class Int(object):
    """An integer kept as its canonical decimal text (the runner compares, never converts)."""

    __slots__ = ("text",)

    def __init__(self, text):
        self.text = text

    @classmethod
    def parse(cls, s):
        if len(s) > MAX_INT_DIGITS + 1:
            raise Malformed("an integer of %d digits is over the limit of %d" % (len(s), MAX_INT_DIGITS))
        neg = s.startswith("-")
        body = s.lstrip("+-").lstrip("0") or "0"
        return cls("-" + body if neg and body != "0" else body)

    def __eq__(self, other):
        return type(other) is Int and other.text == self.text

    def __ne__(self, other):
        return not self.__eq__(other)

    def __hash__(self):
        return hash(self.text)

    def __repr__(self):
        return self.text


# ------------------------------------------------------------------------------------------ values


class NotEncodable(Exception):
    """A value outside the plain types (its type name is the message)."""


def encode(v, depth=0):
    """A plain value -> its wire form. Subclasses of the plain types are sent as the base type."""
    if depth > MAX_DEPTH:
        raise NotEncodable("a value nested more than %d levels" % MAX_DEPTH)
    if v is None or v is True or v is False:
        return v
    if isinstance(v, bool):
        return bool(v)
    if isinstance(v, int):
        v = int.__index__(v)
        return v if -10 ** 4000 < v < 10 ** 4000 else {"i": int_text(v)}
    if isinstance(v, float):
        return float.__float__(v)
    if isinstance(v, str):
        return str.__str__(v)
    if isinstance(v, list):
        return [encode(x, depth + 1) for x in list.__iter__(v)]
    if isinstance(v, tuple):
        return {"t": [encode(x, depth + 1) for x in tuple.__iter__(v)]}
    if isinstance(v, frozenset):
        return {"f": [encode(x, depth + 1) for x in frozenset.__iter__(v)]}
    if isinstance(v, set):
        return {"s": [encode(x, depth + 1) for x in set.__iter__(v)]}
    if isinstance(v, dict):
        return {"d": [[encode(k, depth + 1), encode(x, depth + 1)] for k, x in dict.items(v)]}
    if isinstance(v, (bytes, bytearray)):
        return {"b": bytes(v).hex()}
    if isinstance(v, complex):
        return {"c": [v.real, v.imag]}
    item = getattr(type(v), "item", None)
    if type(v).__module__ == "numpy" and callable(item):  # numpy scalars: their Python value
        return encode(v.item(), depth + 1)
    raise NotEncodable(_type_name(v))


def _type_name(v):
    try:
        n = type.__dict__["__name__"].__get__(type(v))
        return n if type(n) is str else "?"
    except Exception:
        return "?"


_TAGS = ("i", "t", "s", "f", "d", "b", "c")
_DIGITS = re.compile(r"^-?[0-9]+\Z")


def decode(obj, depth=0, ints="int"):
    """The wire form (as parsed by `parse_json` with the same `ints`) -> a plain value. Raises Malformed."""
    if depth > MAX_DEPTH:
        raise Malformed("a value nested more than %d levels" % MAX_DEPTH)
    t = type(obj)
    if obj is None or t in (bool, int, float, str, Int):
        return obj
    if t is list:
        return [decode(x, depth + 1, ints) for x in obj]
    if t is not dict or len(obj) != 1:
        raise Malformed("a value must be JSON or one tagged object {%s}" % ", ".join(_TAGS))
    (tag, body), = obj.items()
    if tag == "i":
        if type(body) is not str or not _DIGITS.match(body):
            raise Malformed("a big int must be a string of digits")
        return _to_int(body) if ints == "int" else Int.parse(body)
    if tag == "b":
        if type(body) is not str:
            raise Malformed("bytes must be a hex string")
        try:
            return bytes.fromhex(body)
        except ValueError:
            raise Malformed("bytes must be a hex string") from None
    if tag == "c":
        if type(body) is not list or len(body) != 2 or not all(type(x) in (int, float) for x in body):
            raise Malformed("a complex must be [real, imag]")
        return complex(float(body[0]), float(body[1]))
    if type(body) is not list:
        raise Malformed("tag %r needs a list" % (tag,) if tag in _TAGS else "unknown value tag %r" % (tag[:20],))
    if tag == "t":
        return tuple(decode(x, depth + 1, ints) for x in body)
    if tag in ("s", "f"):
        items = [decode(x, depth + 1, ints) for x in body]
        try:
            return set(items) if tag == "s" else frozenset(items)
        except TypeError:
            raise Malformed("a set holds an unhashable value") from None
    if tag == "d":
        out = {}
        for pair in body:
            if type(pair) is not list or len(pair) != 2:
                raise Malformed("a dict must be a list of [key, value] pairs")
            k = decode(pair[0], depth + 1, ints)
            try:
                out[k] = decode(pair[1], depth + 1, ints)
            except TypeError:
                raise Malformed("a dict key is unhashable") from None
        return out
    raise Malformed("unknown value tag %r" % (tag[:20],))


# ------------------------------------------------------------------------------------------ messages


def check_fields(msg, spec, what):
    """Validate a decoded message: a dict holding exactly the keys of `spec` that it has, each of the given
    type, strings at most `limit` chars. spec: {key: (type, required, limit)}. Raises Malformed."""
    if type(msg) is not dict:
        raise Malformed("%s must be a JSON object" % what)
    for k in msg:
        if k not in spec:
            raise Malformed("%s has an unknown field %r" % (what, str(k)[:40]))
    for k, (typ, required, limit) in spec.items():
        if k not in msg:
            if required:
                raise Malformed("%s lacks the field %r" % (what, k))
            continue
        v = msg[k]
        if typ is not None and type(v) is not typ:
            raise Malformed("%s field %r must be %s, got %s" % (what, k, typ.__name__, type(v).__name__))
        if limit is not None and type(v) is str and len(v) > limit:
            raise Malformed("%s field %r is %d chars, over the limit of %d" % (what, k, len(v), limit))
    return msg
