"""Kind "script": the test program runs HERE, in a trusted process (its own uid, non-dumpable, forked from
the runner); the function under test is a `Proxy` that sends plain values to the attempt's process and
gets plain values back (wire encoding, validated). The attempt's process never sees the test program, its
expected values or this process's memory, and nothing it sends can run code here: every value it returns
is rebuilt from builtin types by `wire.decode`.

The asserts of the test program were rewritten (sdpo_ttt/problem/asserts.py) into calls of `Helpers`, which report
one result per assert site as JSON lines on the events fd, then a final status line:
  {"status": "ok"}                                   the program ran to the end
  {"status": "load", "load": ..., "type", "error"}   the attempt did not load (compile error, no entry)
  {"status": "exception", "type", "error", "site"}   the program stopped on an exception
  {"status": "gone", "why": exited|memory|protocol, "detail", "site"}   the attempt's process is gone or broke
                                                      the protocol (detail: what was malformed)
  {"status": "unproxyable", "detail"}                the test program passed a value that cannot be sent
"""

import builtins
import json
import os
import traceback

from . import wire
from .harness import MAX_CALL_BYTES

MAX_REPLY_BYTES = 16 * 1024 * 1024  # one returned value, encoded (decoding it here costs ~10x that in memory)
REPR_CAP = 1000

LOAD_SPEC = {"load": (str, True, 20), "type": (str, False, 200), "error": (str, False, 16000)}
REPLY_SPECS = {
    "value": {"value": (None, True, None)},
    "raised": {"raised": (str, True, 200), "error": (str, False, 16000)},
    "unencodable": {"unencodable": (str, True, 200)},
}
FIRST_LOAD_STATES = ("compiled", "compile_error")  # the first frame: the harness writes it before any code of the attempt runs
LATER_LOAD_STATES = ("ok", "load_error", "no_entry", "exception")  # after its code ran: its word about its own failure


def check_load(msg, first):
    """A load status frame, validated: the first frame may only say whether the program compiled (so the
    attempt cannot claim a compile error), a later one only what happened once its code ran."""
    load = wire.check_fields(msg, dict(LOAD_SPEC), "the load status")
    allowed = FIRST_LOAD_STATES if first else LATER_LOAD_STATES
    if load["load"] not in allowed:
        raise wire.Malformed("load status %r where one of %s belongs" % (load["load"][:20], ", ".join(allowed)))
    return load


class AttemptGone(BaseException):
    """The attempt's process exited, ran out of memory or broke the protocol: the program stops here
    (a BaseException, so the test program's own `except Exception` cannot swallow it)."""

    def __init__(self, why, detail=""):
        BaseException.__init__(self, why, detail)
        self.why, self.detail = why, detail


class NotProxyable(BaseException):
    """The test program passed the function a value the wire cannot carry: the problem cannot be judged."""


class AttemptRaised(Exception):
    """The attempt's function raised; carries its type name and traceback text (both the attempt's word)."""

    def __init__(self, type_name, error):
        Exception.__init__(self, "%s raised in the attempt's function" % type_name)
        self.type_name, self.error = type_name, error


# builtin exceptions an attempt's error is re-raised as (besides AttemptRaised), so a test program's
# `except ValueError:` behaves as it would with the function in-process
_RERAISE = ("ValueError", "TypeError", "KeyError", "IndexError", "ZeroDivisionError", "AssertionError",
            "RuntimeError", "NotImplementedError", "AttributeError", "ArithmeticError", "OverflowError",
            "LookupError", "RecursionError", "NameError", "UnboundLocalError")
_RAISED_CLASSES = {}


def raised_error(type_name, error):
    """The exception standing for the attempt's `type_name` exception."""
    if type_name not in _RERAISE:
        return AttemptRaised(type_name, error)
    cls = _RAISED_CLASSES.get(type_name)
    if cls is None:
        cls = _RAISED_CLASSES[type_name] = type(type_name, (AttemptRaised, getattr(builtins, type_name)), {})
    return cls(type_name, error)


class NotPlain(Exception):
    """The attempt's function returned something the wire does not carry."""


def _cut(s, n):
    if len(s) <= n:
        return s
    h = n // 2
    return s[:h] + "...[%d chars cut]..." % (len(s) - n) + s[len(s) - (n - h):]


def srepr(v, n=REPR_CAP):
    """repr of a plain value, bounded and never raising (huge ints are described, not printed)."""
    try:
        if type(v) is int and v.bit_length() > 12000:
            return "<an int of about %d digits>" % int(v.bit_length() * 0.30103)
        return _cut(repr(v), n)
    except Exception:
        return "<%s value>" % type(v).__name__


def read_reply(fd):
    """One validated reply frame from the attempt, as (kind, message). Raises AttemptGone."""
    try:
        body = wire.read_frame(fd, MAX_REPLY_BYTES)
    except wire.Malformed as e:
        raise AttemptGone("protocol", str(e)) from None
    except OSError as e:
        raise AttemptGone("exited", str(e)) from None
    if body is None:
        raise AttemptGone("exited")
    try:
        msg = wire.parse_json(body, max_values=wire.MAX_VALUES)
        if type(msg) is not dict or len(msg) < 1:
            raise wire.Malformed("a reply must be a JSON object")
        kind = next((k for k in REPLY_SPECS if k in msg), None)
        if kind is None:
            raise wire.Malformed("a reply needs one of the fields %s" % ", ".join(REPLY_SPECS))
        wire.check_fields(msg, REPLY_SPECS[kind], "the reply")
        if kind == "value":
            msg["value"] = wire.decode(msg["value"])
        return kind, msg
    except wire.Malformed as e:
        raise AttemptGone("protocol", "the attempt's reply is malformed: %s" % e) from None


class Proxy(object):
    """Stands for the attempt's function in the test program."""

    def __init__(self, fname, call_fd, reply_fd, state):
        self.fname, self.call_fd, self.reply_fd, self.state = fname, call_fd, reply_fd, state

    def __call__(self, *args, **kwargs):
        shown = ", ".join([srepr(x, 200) for x in args] + ["%s=%s" % (k, srepr(x, 200)) for k, x in kwargs.items()])
        call = self.state["call"] = ["%s(%s)" % (self.fname, _cut(shown, 400)), "(no value: it raised)"]
        try:
            msg = {"args": [wire.encode(a) for a in args], "kwargs": {str(k): wire.encode(v) for k, v in kwargs.items()}}
        except (wire.NotEncodable, RecursionError) as e:
            raise NotProxyable("the test program passes %s to %s, which cannot be sent to the attempt's process"
                               % (e, self.fname)) from None
        data = wire.frame(msg)
        if len(data) > MAX_CALL_BYTES:
            raise NotProxyable("the test program passes %d bytes of arguments (limit %d)" % (len(data), MAX_CALL_BYTES))
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(self.call_fd, view):]
        except OSError:
            raise AttemptGone("exited") from None
        kind, reply = read_reply(self.reply_fd)
        if kind == "raised":
            if reply["raised"] == "MemoryError":
                raise AttemptGone("memory", "MemoryError")
            raise raised_error(reply["raised"], reply.get("error", ""))
        if kind == "unencodable":
            call[1] = "<%s object>" % reply["unencodable"]
            raise NotPlain("%s returned a %s object; only plain values (int, float, str, bool, None, bytes, complex, "
                           "and lists, tuples, dicts, sets of them) are accepted" % (call[0], reply["unencodable"]))
        call[1] = srepr(reply["value"])
        return reply["value"]


_OPS = {"==": lambda a, b: a == b, "!=": lambda a, b: a != b, "<": lambda a, b: a < b,
        "<=": lambda a, b: a <= b, ">": lambda a, b: a > b, ">=": lambda a, b: a >= b,
        "in": lambda a, b: a in b, "not in": lambda a, b: a not in b,
        "is": lambda a, b: a is b, "is not": lambda a, b: a is not b}


class Helpers(object):
    """`__sdpo` of the instrumented test program (see sdpo_ttt/problem/asserts.py)."""

    def __init__(self, emit, state):
        self.emit, self.state = emit, state
        self.sent, self.begun = set(), set()

    def record(self, k, ok, **kw):
        if (k, ok) in self.sent:
            return
        self.sent.add((k, ok))
        kw["site"], kw["ok"] = k, ok
        c = self.state["call"]
        if not ok and c is not None:
            kw["call"], kw["returned"] = c[0], c[1]
        self.emit(kw)

    def begin(self, k):
        self.state["site"], self.state["call"] = k, None
        if k not in self.begun:
            self.begun.add(k)
            self.emit({"site": k, "begin": True})

    def raised(self, k, e):
        if isinstance(e, MemoryError):
            raise e
        if isinstance(e, NotPlain):
            self.record(k, False, kind="wrong_answer", detail=str(e))
            return
        if isinstance(e, AttemptRaised):
            last = e.error.strip().splitlines()
            self.record(k, False, kind="runtime_error", detail=_cut(last[-1], 300) if last else e.type_name,
                        error=e.error[-4000:])
            return
        msg = srepr(str(e), 300) if str(e) else ""
        self.record(k, False, kind="runtime_error", detail="%s: %s" % (type(e).__name__, msg) if msg else type(e).__name__,
                    error=traceback.format_exc()[-4000:])

    def compare(self, k, op, a, b):
        try:
            ok = _OPS[op](a, b)
            ok = bool(ok)
        except Exception as e:  # noqa
            self.record(k, False, kind="runtime_error", op=op, left=srepr(a), right=srepr(b),
                        detail="comparing with %s raised %s: %s" % (op, type(e).__name__, _cut(str(e), 200)))
            return
        if ok:
            self.record(k, True)
        else:
            self.record(k, False, kind="wrong_answer", op=op, left=srepr(a), right=srepr(b))

    def truth(self, k, negate, v):
        if bool(v) != bool(negate):
            self.record(k, True)
        else:
            self.record(k, False, kind="wrong_answer", op="not" if negate else "truth", left=srepr(v))


def run(spec, fname, call_fd, reply_fd, events_fd):
    """Run the test program against the attempt; returns the exit code. Every outcome ends in a status line."""
    ev = os.fdopen(events_fd, "w", encoding="utf-8")

    def emit(obj):
        ev.write(json.dumps(obj) + "\n")
        ev.flush()

    state = {"site": -1, "call": None}
    try:
        load = None
        for first in (True, False):
            body = wire.read_frame(reply_fd, 1 << 20)
            if body is None:
                raise AttemptGone("exited")
            load = check_load(wire.parse_json(body, max_values=wire.MAX_VALUES), first)
            if load["load"] == "compile_error" or load["load"] == "exception":
                break
    except wire.Malformed as e:
        emit({"status": "gone", "why": "protocol", "detail": "the attempt's load status is malformed: %s" % e,
              "site": -1})
        return 0
    except AttemptGone as e:
        emit({"status": "gone", "why": e.why, "detail": e.detail, "site": -1})
        return 0
    if load["load"] != "ok":
        emit({"status": "load", "load": load["load"], "type": load.get("type", ""), "error": load.get("error", "")})
        return 0
    ns = {"__name__": "tests", "__builtins__": __builtins__}
    proxy = Proxy(fname, call_fd, reply_fd, state)
    try:
        exec(compile(spec.get("setup_code") or "", "setup_code", "exec"), ns)
        ns[fname] = proxy  # after the setup: a stub of the entry point there (a HumanEval prompt) is replaced
        ns["__sdpo"] = Helpers(emit, state)
        exec(compile(spec["test_code"], "test_code", "exec"), ns)
        if spec.get("check_function"):
            ns[spec["check_function"]](proxy)
    except AttemptGone as e:
        emit({"status": "gone", "why": e.why, "detail": e.detail, "site": state["site"]})
        return 0
    except NotProxyable as e:
        emit({"status": "unproxyable", "detail": str(e), "site": state["site"]})
        return 0
    except SystemExit as e:
        emit({"status": "exception", "type": "SystemExit", "site": state["site"],
              "error": "exit(%r) was called while the tests ran" % (e.code,)})
        return 0
    except BaseException as e:  # noqa - the program stopped: report where and why
        if isinstance(e, AttemptRaised):
            text, tname = e.error, e.type_name
        else:
            text, tname = traceback.format_exc(), type(e).__name__
        emit({"status": "exception", "type": tname, "error": text[-4000:], "site": state["site"]})
        return 0
    emit({"status": "ok"})
    return 0
