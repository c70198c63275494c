"""What runs in the attempt's process (after `privdrop.drop_privileges`): load solution.py from the cwd,
then run it as __main__ (kind stdio) or answer calls of its entry point (kinds function and script).

Channels: fd 3 carries calls in (`{"args": [...], "kwargs": {...}}` frames, values in wire encoding), fd 4
carries frames out: first `{"load": "compiled"}` or `{"load": "compile_error", ...}` (written before any code
of the attempt runs), then the load status (`{"load": "ok"}` or why not), then one reply per call
(`{"value": v}`, `{"raised": type, "error": traceback}`, or `{"unencodable": type}`). Everything written
on fd 4 is the attempt's word: whoever reads it validates it (wire.Malformed) and compares values itself.
Nothing here is trusted and nothing here knows a test's expected value.
"""

import sys
import traceback

from . import osio, wire

CALL_FD, REPLY_FD = 3, 4
MAX_CALL_BYTES = 256 * 1024 * 1024


def _send(obj):
    try:
        wire.write_frame(REPLY_FD, obj)
    except Exception:
        pass


def _tb(e):
    lines = traceback.format_exception(type(e), e, e.__traceback__)
    return "".join(x for x in lines if "/box/" not in x and "<box>" not in x)[-8000:]


def _flush(*streams):
    for f in streams:
        try:
            f.flush()
        except BaseException:  # noqa
            pass


def main(kind, fname, out, err):
    """Returns the process exit code."""
    try:
        src = osio.read_file("solution.py")
        code = compile(src, "solution.py", "exec")
    except BaseException as e:  # noqa
        _send({"load": "compile_error", "error": "".join(traceback.format_exception_only(type(e), e))[-8000:]})
        return 3
    _send({"load": "compiled"})  # the first frame, before any code of the attempt runs: only we can write it
    if kind == "stdio":
        return _run_stdio(code, out, err)
    g = {"__name__": "solution", "__file__": "solution.py", "__builtins__": __builtins__}
    import typing

    for n in getattr(typing, "__all__", []):
        g.setdefault(n, getattr(typing, n))
    try:
        exec(code, g)
    except SystemExit as e:
        _send({"load": "load_error", "type": "SystemExit", "error": "the program called exit() while loading: %r" % (e.code,)})
        return 4
    except BaseException as e:  # noqa
        t = _tb(e)
        err.write(t)
        _send({"load": "load_error", "type": type(e).__name__, "error": t})
        return 4
    fn = g.get(fname)
    if not callable(fn):
        cls = g.get("Solution")
        if isinstance(cls, type) and callable(getattr(cls, fname, None)):
            try:
                fn = getattr(cls(), fname)
            except BaseException as e:  # noqa
                t = _tb(e)
                _send({"load": "load_error", "type": type(e).__name__, "error": t})
                return 4
        else:
            _send({"load": "no_entry",
                   "error": "no top-level function %r and no class Solution with a method %r" % (fname, fname)})
            return 5
    _send({"load": "ok"})
    code = _serve_calls(fn)
    _flush(out, err)
    return code


def _run_stdio(code, out, err):
    g = {"__name__": "__main__", "__file__": "solution.py", "__builtins__": __builtins__}
    try:
        exec(code, g)
    except SystemExit as e:
        _flush(sys.stdout, sys.stderr, out, err)
        if e.code is None:
            return 0
        if isinstance(e.code, int):
            return e.code
        err.write(str(e.code) + "\n")
        return 1
    except BaseException as e:  # noqa
        t = _tb(e)
        err.write(t)
        _send({"load": "exception", "type": type(e).__name__, "error": t})
        _flush(sys.stdout, sys.stderr, out, err)
        return 1
    _flush(sys.stdout, sys.stderr, out, err)
    return 0


def _serve_calls(fn):
    while True:
        try:
            body = wire.read_frame(CALL_FD, MAX_CALL_BYTES)
        except wire.Malformed:
            return 2
        if body is None:
            return 0
        msg = wire.parse_json(body)
        args = [wire.decode(a) for a in msg.get("args", [])]
        kwargs = {k: wire.decode(v) for k, v in msg.get("kwargs", {}).items()}
        try:
            res = fn(*args, **kwargs)
        except SystemExit as e:
            _send({"raised": "SystemExit", "error": "the function called exit(%r) instead of returning" % (e.code,)})
            continue
        except BaseException as e:  # noqa
            t = _tb(e)
            try:
                sys.stderr.write(t)
            except BaseException:  # noqa
                pass
            _send({"raised": type(e).__name__, "error": t})
            if isinstance(e, MemoryError):
                return 1
            continue
        try:
            enc = wire.encode(res)
        except wire.NotEncodable as e:
            _send({"unencodable": str(e)[:200]})
            continue
        except RecursionError:
            _send({"unencodable": "a value nested too deeply"})
            continue
        try:
            wire.write_frame(REPLY_FD, {"value": enc})
        except (OSError, ValueError):
            return 0
