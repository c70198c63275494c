"""Kinds stdio and function: each test in a fresh attempt process (runner.py calls `judge_test` per test).

The attempt's stdin is an unlinked file (stdio) and its call an unlinked frame (function); what it writes on
its reply channel is validated (`Replies`) before any of it becomes the test's record.
"""

import os

from . import osio, tester, wire
from .compare import NotJson, compare_text, compare_values, json_view, short, show, trunc
from .proc import MB, STDERR_KEEP, Proc


# ------------------------------------------------------------------------------------------ the reply channel


class Replies(object):
    """The attempt's frames on its reply channel, validated: `load` (dict: the load status, None for a stdio
    program that ran to its end) and `replies` [(kind, msg)], or `malformed` (the reason) at the first
    thing outside the protocol. Frame 0 (compiled or not) is the harness's, written before the attempt's
    code ran; then for kind stdio at most one frame (an exception), else the load status and the replies."""

    def __init__(self, data, ints="text", kind="function"):
        self.load, self.replies, self.malformed = None, [], None
        frames, rest = wire.split_frames(data)
        try:
            if rest:
                raise wire.Malformed("%d bytes on the reply channel are not a frame" % len(rest))
            for i, body in enumerate(frames):
                msg = wire.parse_json(body, ints=ints, max_values=wire.MAX_VALUES)
                if i == 0:
                    first = tester.check_load(msg, first=True)
                    self.load = first if first["load"] == "compile_error" else None
                    continue
                if self.load is not None and self.load["load"] == "compile_error":
                    raise wire.Malformed("frames after a compile error")
                if i == 1 or kind == "stdio":
                    if i > 1:
                        raise wire.Malformed("a stdio program's harness writes at most one status")
                    self.load = tester.check_load(msg, first=False)
                    continue
                self.replies.append(_reply(msg, ints))
        except wire.Malformed as e:
            self.malformed = str(e)


def _reply(msg, ints):
    """(kind, msg) of one validated reply."""
    if type(msg) is not dict:
        raise wire.Malformed("a reply must be a JSON object")
    kind = next((k for k in tester.REPLY_SPECS if k in msg), None)
    if kind is None:
        raise wire.Malformed("a reply needs one of the fields %s" % ", ".join(tester.REPLY_SPECS))
    wire.check_fields(msg, tester.REPLY_SPECS[kind], "the reply")
    if kind == "value":
        msg["value"] = wire.decode(msg["value"], ints=ints)
    return kind, msg


# ------------------------------------------------------------------------------------------ one test


def make_test_dir(req, scratch, i):
    """A fresh test dir in the scratch dir (root's, 0711, made by this runner), and solution.py in it: both
    root's (under a uid of the attempt's own), the file read-only to everyone, the dir sticky and writable
    (the attempt may create files there, never remove, rename or rewrite solution.py)."""
    test_dir = os.path.join(scratch, "t%d" % i)
    os.mkdir(test_dir, 0o700)
    dfd = os.open(test_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        fd = os.open("solution.py", os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o444, dir_fd=dfd)
        try:
            osio.write_all(fd, req["code"].encode("utf-8"))
            os.fchmod(fd, 0o444)
        finally:
            os.close(fd)
        os.fchmod(dfd, 0o1777 if req.get("child_uid") is not None else 0o700)
    finally:
        os.close(dfd)
    return test_dir


def _unlinked_file(scratch, data):
    """A read-only fd on a file without a name that nobody can give it one (nothing can delete, swap or link
    it): O_TMPFILE | O_EXCL, reopened read-only through /proc/self/fd; where the file system has no
    O_TMPFILE, a named temporary file unlinked at once."""
    try:
        fd = os.open(scratch, os.O_TMPFILE | os.O_EXCL | os.O_WRONLY, 0o600)
    except (OSError, AttributeError):
        return _unlinked_named(scratch, data)
    try:
        osio.write_all(fd, data)
        try:
            return os.open("/proc/self/fd/%d" % fd, os.O_RDONLY)
        except OSError:  # no /proc to reopen it through
            pass
    finally:
        os.close(fd)
    return _unlinked_named(scratch, data)


def _unlinked_named(scratch, data):
    import tempfile  # not at the top: the fork server (forked from us) would carry `random` and its at-fork reseed

    fd, path = tempfile.mkstemp(dir=scratch)
    try:
        osio.write_all(fd, data)
        ro = os.open(path, os.O_RDONLY)
    finally:
        os.close(fd)
        os.unlink(path)
    return ro


def record(i, test, **kw):
    rec = {"index": i, "public": bool(test.get("public", True)), "time_s": 0.0, "input": trunc(test["input"]),
           "expected": trunc(test["output"]), "got": "", "stderr_tail": "", "detail": "", "outcome": "passed"}
    rec.update(kw)
    return rec


def load_failure(load):
    """(outcome, detail, compile_error text) for a load status other than ok, else None."""
    state = load.get("load")
    if state == "compile_error":
        return "compile_error", "the program does not compile", load.get("error", "")
    if state == "no_entry":
        return "compile_error", "the entry point is missing", load.get("error", "")
    if state == "load_error":
        return "compile_error", "loading the program raised %s" % (load.get("type") or "an error"), load.get("error", "")
    return None


def judge_test(req, i, test, scratch, session, keep):
    """Run test i (kinds stdio and function) in a fresh process; returns (record, compile_error or None)."""
    test_dir = make_test_dir(req, scratch, i)
    fds = _input_fds(req["kind"], test, scratch)
    if fds is None:
        return record(i, test, outcome="sandbox_error", detail="the test input is not a JSON array"), None
    stdin_fd, call_fd = fds
    try:
        p = Proc(req, test_dir, stdin_fd, session, call_fd)
    finally:
        os.close(stdin_fd)
        os.close(call_fd)
    p.run(keep)
    rep = Replies(p.bufs["reply"], kind=req["kind"])
    rec = record(i, test, time_s=round(p.wall, 4), stderr_tail=p.stderr_tail())
    if req["kind"] == "stdio":
        rec["got"] = trunc(_stdout_text(p))
    decided, cerr = _stopped_before_a_result(rec, p, rep, req["kind"])
    if decided:
        return rec, cerr
    if req["kind"] == "stdio":
        return _stdio_outcome(req, test, rec, p, rep.load or {}), None
    return _function_outcome(req, test, rec, rep, p.returncode), None


def _input_fds(kind, test, scratch):
    """(stdin fd, call fd) of the test's process: for stdio the input as an unlinked file, for function the call
    frame as one; None when a function test's input is not a JSON array."""
    if kind == "stdio":
        return _unlinked_file(scratch, test["input"].encode("utf-8")), os.open(os.devnull, os.O_RDONLY)
    try:
        args = wire.parse_json(test["input"])
    except wire.Malformed:
        args = None
    if type(args) is not list:
        return None
    stdin_fd = os.open(os.devnull, os.O_RDONLY)
    return stdin_fd, _unlinked_file(scratch, wire.frame({"args": [wire.encode(a) for a in args]}))


def _stdout_text(p):
    return bytes(p.bufs["stdout"][: p.out_cap]).decode("utf-8", "replace")


def _stopped_before_a_result(rec, p, rep, kind):
    """(decided, compile_error or None): the program did not load, hit a limit or broke the reply protocol."""
    load = rep.load or {}
    failed = load_failure(load) if rep.malformed is None else None
    if failed:
        outcome, detail, cerr = failed
        rec.update(outcome=outcome, detail=detail, stderr_tail=cerr[-STDERR_KEEP:])
        return True, cerr
    lim = p.limit_outcome(load.get("type", "") if load.get("load") == "exception" else "")
    if lim is None and kind == "function" and rep.replies and rep.replies[0][0] == "raised" \
            and rep.replies[0][1]["raised"] == "MemoryError":
        lim = ("memory_limit", "exceeded the memory limit of %d MB" % (p.mem // MB))
    if lim:
        rec.update(outcome=lim[0], detail=lim[1])
        return True, None
    if rep.malformed is not None:
        rec.update(outcome="runtime_error", detail="the attempt broke the result protocol: %s" % rep.malformed)
        return True, None
    return False, None


def _stdio_outcome(req, test, rec, p, load):
    rc, tail = p.returncode, rec["stderr_tail"]
    if load.get("load") == "exception":
        last = (load.get("error") or "").strip().splitlines()
        if not tail:
            rec["stderr_tail"] = (load.get("error") or "")[-STDERR_KEEP:]
        rec.update(outcome="runtime_error", detail=last[-1][:300] if last else load.get("type", ""))
        return rec
    if rc != 0:
        last = tail.strip().splitlines()
        rec.update(outcome="runtime_error", detail="exit code %d%s" % (rc, (": " + last[-1][:200]) if last else ""))
        return rec
    ok, detail = compare_text(_stdout_text(p), test["output"], req["compare"]["mode"], req["compare"]["float_tol"],
                              req["compare"].get("ints_are_floats", False))
    if req["compare"]["mode"] == "exact":
        ok = bytes(p.bufs["stdout"]) == test["output"].encode("utf-8")
    rec.update(outcome="passed" if ok else "wrong_answer", detail=detail)
    return rec


def _function_outcome(req, test, rec, rep, rc):
    if load_state(rep) != "ok" or not rep.replies:
        detail = "the program exited without returning a result (exit code %d)" % rc if rc else \
            "the program exited without returning a result (os._exit or a killed interpreter)"
        rec.update(outcome="runtime_error", detail=detail)
        return rec
    kind, msg = rep.replies[0]
    if kind == "raised":
        err = msg.get("error", "")
        last = err.strip().splitlines()
        rec.update(outcome="runtime_error", detail=short(last[-1], 300) if last else msg["raised"],
                   stderr_tail=rec["stderr_tail"] or err[-STDERR_KEEP:])
        return rec
    if kind == "unencodable":
        rec.update(outcome="wrong_answer", got="<%s object>" % msg["unencodable"],
                   detail="the returned value (%s) is not JSON-serializable" % msg["unencodable"])
        return rec
    try:
        got = json_view(msg["value"])
    except NotJson as e:
        rec.update(outcome="wrong_answer", got="<not JSON>",
                   detail="the returned value (%s) is not JSON-serializable" % e)
        return rec
    try:
        exp = wire.parse_json(test["output"], ints="text")
    except wire.Malformed as e:
        rec.update(outcome="sandbox_error", detail="the expected output is not valid JSON (%s)" % e)
        return rec
    rec["got"] = trunc(show(got, 2 * 1000))
    ok, detail = compare_values(got, exp, req["compare"]["float_tol"], req["compare"].get("ints_are_floats", False))
    rec.update(outcome="passed" if ok else "wrong_answer", detail=detail)
    return rec


def load_state(rep):
    return (rep.load or {}).get("load")
