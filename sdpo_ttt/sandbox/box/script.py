"""Kind script: one attempt process answering calls from one run of the test program, which runs in the trusted
tester (tester.py) under a uid of its own; one record per assert site (runner.py calls `judge_script` once).
"""

import json
import os

from . import tester
from .compare import short, trunc
from .pertest import load_failure, make_test_dir
from .proc import STDERR_KEEP, Proc


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
    test_dir = make_test_dir(req, scratch, 0)
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
        failed = load_failure(status) or ("compile_error", "the program did not load", status.get("error", ""))
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
