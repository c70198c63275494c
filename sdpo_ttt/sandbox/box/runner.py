"""The trusted runner: requests in (frames on fd 0), one nonce-tagged JSON line per event out (stdout).

Started by `boot.py`. Privilege layout (see sandbox/README.md): the runner and the fork server run as root
in the container (only SETUID, SETGID, KILL, DAC_OVERRIDE, FOWNER and CHOWN kept, no-new-privileges,
docker's default seccomp) or as the local sandbox's user; each test runs in a fresh process under the
attempt uid (`child_uid`), script tests under a second uid (`tester_uid`). Both are non-root uids with no
capabilities, so an attempt cannot signal, trace or open /proc/<pid>/fd of the runner, the fork server,
the tester or the host session, and holds no fd of theirs: its stdin is an unlinked file, its stdout,
stderr, call and reply channels are pipes only it and the runner (or the tester) hold.

Events: `{"event": "start"}`, one `{"event": "test", ...}` per test (fields of sdpo_ttt.sandbox.verdict.TestResult),
then `{"event": "done", "compile_error": str, "session": {...}}`, or `{"event": "error", "error": str}` when
the runner itself failed. `--serve`: requests one after another until stdin closes; the session ends after
an attempt that left anything behind it could not clean (a surviving process, memory above the baseline:
`exiting` / `replace_container`), and the host opens a fresh one.

Every field that comes from the attempt's side is validated here (wire.Malformed): anything malformed is
the attempt's runtime_error with a clear detail, never an exception out of the runner.
"""

import json
import os
import signal

from . import cleanup, osio, tester, wire
from .compare import NotJson, compare_text, compare_values, json_view, short, show, trunc
from .proc import MB, STDERR_KEEP, Proc
from .zygote import Zygote

MAX_REQUEST = 1 << 31
MEMORY_SLACK = 64 * MB  # container memory above the session's baseline after cleanup: replace the container


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


def _test_dir(req, scratch, i):
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


def _record(i, test, **kw):
    rec = {"index": i, "public": bool(test.get("public", True)), "time_s": 0.0, "input": trunc(test["input"]),
           "expected": trunc(test["output"]), "got": "", "stderr_tail": "", "detail": "", "outcome": "passed"}
    rec.update(kw)
    return rec


def _load_failure(load):
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
    test_dir = _test_dir(req, scratch, i)
    kind = req["kind"]
    if kind == "stdio":
        stdin_fd = _unlinked_file(scratch, test["input"].encode("utf-8"))
        call_fd = os.open(os.devnull, os.O_RDONLY)
    else:
        stdin_fd = os.open(os.devnull, os.O_RDONLY)
        try:
            args = wire.parse_json(test["input"])
        except wire.Malformed:
            args = None
        if type(args) is not list:
            os.close(stdin_fd)
            return _record(i, test, outcome="sandbox_error", detail="the test input is not a JSON array"), None
        call_fd = _unlinked_file(scratch, wire.frame({"args": [wire.encode(a) for a in args]}))
    try:
        p = Proc(req, test_dir, stdin_fd, session, call_fd)
    finally:
        os.close(stdin_fd)
        os.close(call_fd)
    p.run(keep)
    rep = Replies(p.bufs["reply"], kind=kind)
    tail = p.stderr_tail()
    rec = _record(i, test, time_s=round(p.wall, 4), stderr_tail=tail)
    got_text = bytes(p.bufs["stdout"][: p.out_cap]).decode("utf-8", "replace")
    if kind == "stdio":
        rec["got"] = trunc(got_text)
    load = rep.load or {}
    failed = _load_failure(load) if rep.malformed is None else None
    if failed:
        outcome, detail, cerr = failed
        rec.update(outcome=outcome, detail=detail, stderr_tail=cerr[-STDERR_KEEP:])
        return rec, cerr
    lim = p.limit_outcome(load.get("type", "") if load.get("load") == "exception" else "")
    if lim is None and kind == "function" and rep.replies and rep.replies[0][0] == "raised" \
            and rep.replies[0][1]["raised"] == "MemoryError":
        lim = ("memory_limit", "exceeded the memory limit of %d MB" % (p.mem // MB))
    if lim:
        rec.update(outcome=lim[0], detail=lim[1])
        return rec, None
    if rep.malformed is not None:
        rec.update(outcome="runtime_error", detail="the attempt broke the result protocol: %s" % rep.malformed)
        return rec, None
    rc = p.returncode
    if kind == "stdio":
        if load.get("load") == "exception":
            last = (load.get("error") or "").strip().splitlines()
            if not tail:
                rec["stderr_tail"] = (load.get("error") or "")[-STDERR_KEEP:]
            rec.update(outcome="runtime_error", detail=last[-1][:300] if last else load.get("type", ""))
            return rec, None
        if rc != 0:
            last = tail.strip().splitlines()
            rec.update(outcome="runtime_error", detail="exit code %d%s" % (rc, (": " + last[-1][:200]) if last else ""))
            return rec, None
        ok, detail = compare_text(got_text, test["output"], req["compare"]["mode"], req["compare"]["float_tol"],
                                  req["compare"].get("ints_are_floats", False))
        if req["compare"]["mode"] == "exact":
            ok = bytes(p.bufs["stdout"]) == test["output"].encode("utf-8")
        rec.update(outcome="passed" if ok else "wrong_answer", detail=detail)
        return rec, None
    return _function_outcome(req, test, rec, rep, rc), None


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


# ------------------------------------------------------------------------------------------ kind script


def _start_tester(req, call_w, reply_r, events_w):
    """Fork the trusted tester (the test program with a proxy of the attempt's function) under tester_uid."""
    pid = os.fork()
    if pid:
        return pid
    code = 1
    try:
        keep = {call_w, reply_r, events_w}
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        for fd in range(3, 1 << 12):
            if fd not in keep:
                try:
                    os.close(fd)
                except OSError:
                    pass
        from . import privdrop

        privdrop.drop_privileges(req.get("tester_uid"))
        code = tester.run(req["script"], req.get("function_name") or "", call_w, reply_r, events_w)
    finally:
        os._exit(code)


def _tester_events(data):
    out = []
    for line in bytes(data).split(b"\n"):
        try:
            d = json.loads(line.decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            continue
        if isinstance(d, dict):
            out.append(d)
    return out


def _site_record(i, test, ev):
    """The record of assert site i that failed, from its first failure event."""
    op, left, right = ev.get("op"), str(ev.get("left", "")), str(ev.get("right", ""))
    call, returned = ev.get("call"), ev.get("returned")
    if op == "truth":
        expected, what = "a true value", "%s is not true" % left
    elif op == "not":
        expected, what = "a false value", "%s is not false" % left
    elif op == "==":
        expected, what = right, "%s == %s is false" % (left, right)
    elif op:
        expected, what = "%s %s" % (op, right), "%s %s %s is false" % (left, op, right)
    else:
        expected, what = "", ""
    detail = ev.get("detail") or ("assertion failed: " + short(what, 300))
    if call and not ev.get("detail"):
        detail += "; %s returned %s" % (short(call, 200), short(returned, 200))
    return {"index": i, "public": bool(test.get("public", True)), "time_s": 0.0, "input": trunc(test["input"]),
            "expected": trunc(expected or ""), "got": trunc(str(returned if call and returned is not None else left or "")),
            "stderr_tail": str(ev.get("error") or "")[-STDERR_KEEP:],
            "detail": detail, "outcome": "runtime_error" if ev.get("kind") == "runtime_error" else "wrong_answer"}


def judge_script(req, scratch, session, keep):
    """Kind "script": one attempt process answering calls from one run of the test program in the tester;
    returns (one record per assert site, compile_error text or None)."""
    tests = req["tests"]
    test_dir = _test_dir(req, scratch, 0)
    call_r, call_w = os.pipe()
    reply_r, reply_w = os.pipe()
    ev_r, ev_w = os.pipe()
    stdin_fd = os.open(os.devnull, os.O_RDONLY)
    tpid = None
    try:
        p = Proc(req, test_dir, stdin_fd, session, call_r, reply_w=reply_w, extra={ev_r: "events"})
        if p.pid is not None:
            tpid = _start_tester(req, call_w, reply_r, ev_w)
    finally:
        for fd in (stdin_fd, call_r, call_w, reply_r, reply_w, ev_w):
            os.close(fd)
    p.run(tuple(keep) + ((tpid,) if tpid else ()), wait_for=(tpid,) if tpid else ())
    events = _tester_events(p.bufs["events"])
    status = next((e for e in reversed(events) if "status" in e), {})
    site_events = [e for e in events if "site" in e and "status" not in e]
    return script_records(tests, p, status, site_events)


def _script_stop(p, status):
    """(outcome, detail, compile_error or None) for how the test program ended; outcome "passed" when it
    ran to the end."""
    st = status.get("status")
    if st == "load":
        failed = _load_failure(status) or ("compile_error", "the program did not load", status.get("error", ""))
        return failed[0], failed[1], failed[2] or ""
    lim = p.limit_outcome("MemoryError" if status.get("why") == "memory" else "")
    if lim:
        return lim[0], lim[1], None
    if st == "ok":
        return "passed", "", None
    if st == "exception":
        last = str(status.get("error") or "").strip().splitlines()
        return "runtime_error", short(last[-1], 300) if last else str(status.get("type", "")), None
    if st == "unproxyable":  # sdpo_ttt/sandbox/protocol.py UNJUDGEABLE: the importer reports it
        return "sandbox_error", "this problem cannot be judged: %s" % short(str(status.get("detail", "")), 300), None
    if st == "gone" and status.get("why") == "protocol":
        return "runtime_error", "the attempt broke the result protocol: %s" % short(str(status.get("detail", "")), 300), None
    rc = p.returncode
    if rc:
        last = p.stderr_tail().strip().splitlines()
        return "runtime_error", "the program exited before the tests finished (exit code %d%s)" % (
            rc, (": " + last[-1][:200]) if last else ""), None
    if st == "gone":
        return "runtime_error", "the program exited before the tests finished (os._exit or a killed interpreter)", None
    return "sandbox_error", "the test program's process ended without a status", None


def script_records(tests, p, status, site_events):
    """One record per assert site. A site that failed reports its first failure; a site that never failed
    passed if the program ran to the end (or the site held before the program stopped); the rest get the
    reason the program stopped, so an attempt passes only if every assertion held and the program completed."""
    outcome, detail, cerr = _script_stop(p, status)
    base = {"outcome": outcome, "detail": detail, "stderr_tail": p.stderr_tail() or str(status.get("error") or "")[-STDERR_KEEP:],
            "time_s": round(p.wall, 4)}

    def site(j, **kw):
        r = {"index": j, "public": bool(tests[j].get("public", True)), "time_s": 0.0,
             "input": trunc(tests[j]["input"]), "expected": "", "got": "", "stderr_tail": "", "detail": ""}
        r.update(kw)
        return r

    if cerr is not None:
        out = [site(j, outcome=outcome, detail=detail, stderr_tail=cerr[-STDERR_KEEP:]) for j in range(len(tests))]
        return out, cerr
    passed, failed, last_begun = set(), {}, None
    for e in site_events:
        k = e.get("site")
        if type(k) is not int or not 0 <= k < len(tests):
            continue
        if e.get("begin"):
            last_begun = k
        elif e.get("ok") is True:
            passed.add(k)
        elif k not in failed:
            failed[k] = e
    completed = outcome == "passed"
    abort_site = status.get("site")
    stop = abort_site if type(abort_site) is int and abort_site >= 0 else last_begun
    stopped_at = stop if stop is not None and 0 <= stop < len(tests) and stop not in failed else None
    out = []
    for j in range(len(tests)):
        if j in failed:
            out.append(_site_record(j, tests[j], failed[j]))
        elif completed:
            out.append(site(j, outcome="passed"))
        elif j == stopped_at:
            held = " (it had held before)" if j in passed else ""
            out.append(site(j, outcome=outcome, detail=detail + held, stderr_tail=base["stderr_tail"]))
        elif j in passed:
            out.append(site(j, outcome="passed"))
        elif stopped_at is None:
            stopped_at = j
            out.append(site(j, outcome=outcome, detail=detail, stderr_tail=base["stderr_tail"]))
        else:
            out.append(site(j, outcome=outcome,
                            detail="not reached: the test program stopped at assertion %d" % (stopped_at + 1)))
    if not completed and stopped_at is None:
        ok_sites = [j for j in range(len(tests)) if j not in failed]
        if ok_sites:
            j = abort_site if abort_site in ok_sites else ok_sites[-1]
            out[j] = site(j, outcome=outcome, detail=detail + " (while or after this assertion ran)",
                          stderr_tail=base["stderr_tail"])
    if out:
        out[0]["time_s"] = base["time_s"]
    return out, None


# ------------------------------------------------------------------------------------------ one attempt


class Session(object):
    """What persists across the attempts of one runner: the fork server, the memory and task baselines, and
    whether this runner may judge another attempt."""

    def __init__(self):
        self.zygote = Zygote()
        self.baseline = cleanup.memory_in_use()
        self.attempt_base = None  # memory in use, less files, when the running attempt started
        self.tasks = cleanup.tasks_in_use()  # runner, fork server, init (and what else ran then: it only shrinks)
        self.container = False  # per request: the runner has the container (and its cgroups) to itself
        self.tainted = False
        self.replace_container = False
        self.memory = self.baseline

    def attempt_memory(self):
        """Bytes of non-reclaimable memory the running attempt holds, all its processes together (the growth
        of the container's anon + shmem since the attempt started, less what files in /tmp and /dev/shm hold),
        or None outside a container of our own."""
        if not self.container or self.attempt_base is None:
            return None
        mem = cleanup.memory_in_use()
        return None if mem is None else mem - cleanup.files_in_memory() - self.attempt_base

    def start_attempt(self, req):
        self.container = bool(req.get("container"))
        mem = cleanup.memory_in_use() if self.container else None
        self.attempt_base = None if mem is None else mem - cleanup.files_in_memory()

    def end_attempt_processes(self, uid, keep, ipc=False):
        """Kill and reap every process of the attempt; returns the CPU seconds of those reaped here. Under a
        uid of its own: `Zygote.end_uid` (kill(-1) as that uid until the kernel counts none), skipped between
        tests only when the container's task count is at its baseline; anything left means a new container."""
        if uid is None:
            return cleanup.kill_attempt(None, keep)
        cpu = cleanup.reap(keep)
        if not ipc and self.container and self.tasks is not None:
            now = cleanup.tasks_in_use()
            if now is not None and now <= self.tasks:
                return cpu
        alone, more = self.zygote.end_uid(uid, keep, ipc)
        if alone and self.container and self.tasks is not None:
            now = cleanup.tasks_in_use()
            self.tasks = min(self.tasks, now) if now is not None else self.tasks
        else:
            self.tainted = self.replace_container = True
        return cpu + more


def _clean_after(req, session, keep, ipc_before):
    """Everything of the attempt goes: processes, files, IPC objects; then the checks."""
    uid = req.get("child_uid")
    session.end_attempt_processes(uid, keep, ipc=True)  # under its own uid: its IPC objects go too
    clean = all([cleanup.wipe(path) for path in req.get("wipe", [])] + [cleanup.wipe(req["scratch"])])
    if uid is not None:
        for u in (uid, req.get("tester_uid")):
            if u is not None:
                clean = cleanup.remove_uid_files(u) and clean
    else:  # our own uid: only the IPC objects created while the attempt ran
        new = [[k, i] for (k, i), cuid in cleanup.ipc_objects().items()
               if (k, i) not in ipc_before and cuid == os.getuid()]
        if new:
            session.zygote.run_clean(None, new)
        if cleanup.survivors(uid, keep):
            session.tainted = True
    if not clean:  # a tree too deep to remove (or held): nothing of it may meet the next attempt
        session.tainted = session.replace_container = True
    mem = cleanup.memory_in_use()
    session.memory = mem
    slack = int(req.get("memory_slack_mb", MEMORY_SLACK // MB)) * MB
    if mem is not None and session.baseline is not None and mem > session.baseline + slack:
        session.tainted = session.replace_container = True


def run(req, emit, session):
    """Judge one attempt: emit one record per test; returns the compile error text ('' if none)."""
    scratch = req["scratch"]
    zygote = session.zygote
    keep = (zygote.pid,)
    for path in req.get("wipe", []):  # before the scratch dir is made: "/tmp" may hold it
        cleanup.wipe(path)
    session.start_attempt(req)  # the memory baseline of this attempt (nothing of it exists yet)
    cleanup.fresh_dir(scratch)  # root's, made now (whatever was there removed, never followed), mode 0711
    if req.get("child_uid") is None:  # RLIMIT_NPROC counts every process of our uid: allow ours + N
        req["nproc"] = _own_procs() + int(req.get("nproc", 64))
    req.setdefault("nproc", 64)
    ipc_before = set(cleanup.ipc_objects()) if req.get("child_uid") is None else set()
    compile_error = ""
    tle = 0
    tle_budget = req.get("tle_budget")
    tests = req["tests"]
    try:
        if not zygote.ping():
            raise RuntimeError("the fork server does not answer")
        if req["kind"] == "script":
            try:
                recs, cerr = judge_script(req, scratch, session, keep)
            finally:
                cleanup.wipe(scratch)
            for r in recs:
                emit(r)
            return cerr or ""
        for i, t in enumerate(tests):
            if tle_budget is not None and tle >= tle_budget:
                emit(_record(i, t, outcome="time_limit",
                             detail="not run: the attempt already exceeded the time limit on %d tests" % tle))
                continue
            try:
                rec, cerr = judge_test(req, i, t, scratch, session, keep)  # kills what the test left
            finally:
                cleanup.wipe(scratch)
                if req.get("child_uid") is not None:  # a full /tmp must not fail the next test's set-up
                    cleanup.remove_uid_files(req["child_uid"])
            if zygote.broken:
                if req.get("child_uid") is not None:  # out of the attempt's reach: the verifier failed
                    raise RuntimeError("the fork server stopped answering")
                # same uid (the local sandbox without root): the attempt can kill it, and did
                session.tainted = True
                why = "the attempt killed the fork server (the local sandbox without root cannot stop it)"
                emit(dict(rec, outcome="runtime_error", detail=why))
                for j in range(i + 1, len(tests)):
                    emit(_record(j, tests[j], outcome="runtime_error", detail="not run: " + why))
                break
            if cerr is not None:
                compile_error = cerr
                emit(rec)
                for j in range(i + 1, len(tests)):
                    r = dict(rec)
                    r.update(index=j, public=bool(tests[j].get("public", True)), time_s=0.0,
                             input=trunc(tests[j]["input"]), expected=trunc(tests[j]["output"]))
                    emit(r)
                break
            if rec["outcome"] == "time_limit":
                tle += 1
            emit(rec)
    finally:
        _clean_after(req, session, keep, ipc_before)
    return compile_error


def _own_procs():
    me = os.getuid()
    return len(cleanup.scan(me))


# ------------------------------------------------------------------------------------------ the loop


def _emitter(nonce, fd=1):
    """emit(event) writes one event line; emit.flush() writes what was held back. Test events are held back
    until the closing event when `emit.hold` is set (the attempt cannot reach the runner, so nothing can cut
    the stream between them): one write per attempt instead of one per test."""
    held = []

    def emit(obj):
        if "outcome" in obj:
            obj = dict(obj, event="test")
        held.append((nonce + " " + json.dumps(obj) + "\n").encode("utf-8"))
        if not emit.hold or obj.get("event") != "test":
            flush()

    def flush():
        if held:
            data = b"".join(held)
            del held[:]
            osio.write_all(fd, data)

    emit.hold = False
    emit.flush = flush
    return emit


def _read_request():
    body = wire.read_frame(0, MAX_REQUEST)
    if body is None:
        return None
    return json.loads(body.decode("utf-8"))


def judge(req, session):
    req.setdefault("output_limit", 8 * MB)
    emit = _emitter(str(req.get("nonce", "")))
    emit({"event": "start"})
    emit.hold = req.get("child_uid") is not None
    try:
        cerr = run(req, emit, session)
        emit({"event": "done", "compile_error": cerr,
              "session": {"pid": os.getpid(), "fork_server": session.zygote.pid, "exiting": bool(session.tainted),
                          "replace_container": bool(session.replace_container),
                          "memory": session.memory, "baseline": session.baseline}})
    except Exception as e:  # the runner's own failure: never the attempt's
        import traceback

        session.tainted = True
        emit({"event": "error", "error": "%s: %s" % (type(e).__name__, e), "traceback": traceback.format_exc()[-2000:]})


def _prctl_setup():
    """(1) non-dumpable: no process may read our memory or fds through /proc or ptrace us; (2) child
    subreaper: whatever the attempt orphans is re-parented to us, where the sweeps find and reap it."""
    from . import privdrop

    privdrop._prctl(privdrop.PR_SET_DUMPABLE, 0)
    privdrop._prctl(36, 1)  # PR_SET_CHILD_SUBREAPER


def main(argv):
    _prctl_setup()
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    session = Session()  # forks the fork server now, before any request is read
    try:
        if "--serve" not in argv:
            req = _read_request()
            if req is not None:
                judge(req, session)
            return
        for _ in range(256):
            try:
                req = _read_request()
            except (wire.Malformed, ValueError):
                return
            if req is None:
                return
            judge(req, session)
            if session.tainted:
                return
    finally:
        session.zygote.close()
        cleanup.kill_attempt(None, ())
