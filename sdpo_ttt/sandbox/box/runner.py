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

from . import cleanup, osio, wire
from .compare import trunc
from .pertest import judge_test, record
from .proc import MB
from .script import judge_script
from .zygote import Zygote

MAX_REQUEST = 1 << 31
MEMORY_SLACK = 64 * MB  # container memory above the session's baseline after cleanup: replace the container


# ------------------------------------------------------------------------------------------ one attempt


class Session(object):
    """What persists across the attempts of one runner: the fork server, the memory and task baselines, and
    whether this runner may judge another attempt."""

    def __init__(self, proc=None):
        self.proc = proc  # whether /proc hides other uids' processes (prochide), None outside a container
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
    keep = (session.zygote.pid,)
    ipc_before = _prepare(req, session)
    try:
        if not session.zygote.ping():
            raise RuntimeError("the fork server does not answer")
        if req["kind"] == "script":
            try:
                recs, cerr = judge_script(req, req["scratch"], session, keep)
            finally:
                cleanup.wipe(req["scratch"])
            for r in recs:
                emit(r)
            return cerr or ""
        return _run_tests(req, emit, session, keep)
    finally:
        _clean_after(req, session, keep, ipc_before)


def _prepare(req, session):
    """A clean start: the wiped paths, this attempt's memory baseline, a fresh scratch dir, its process limit.
    Returns the IPC objects that existed before (outside a uid of its own, the attempt's are the new ones)."""
    for path in req.get("wipe", []):  # before the scratch dir is made: "/tmp" may hold it
        cleanup.wipe(path)
    session.start_attempt(req)  # the memory baseline of this attempt (nothing of it exists yet)
    cleanup.fresh_dir(req["scratch"])  # root's, made now (whatever was there removed, never followed), mode 0711
    if req.get("child_uid") is None:  # RLIMIT_NPROC counts every process of our uid: allow ours + N
        req["nproc"] = _own_procs() + int(req.get("nproc", 64))
    req.setdefault("nproc", 64)
    return set(cleanup.ipc_objects()) if req.get("child_uid") is None else set()


def _run_tests(req, emit, session, keep):
    """Kinds stdio and function: each test in turn; the rest not run after `tle_budget` time limits, a compile
    error (every test gets its record) or a killed fork server. Returns the compile error text ('' if none)."""
    tests, tle, tle_budget = req["tests"], 0, req.get("tle_budget")
    for i, t in enumerate(tests):
        if tle_budget is not None and tle >= tle_budget:
            emit(record(i, t, outcome="time_limit",
                        detail="not run: the attempt already exceeded the time limit on %d tests" % tle))
            continue
        try:
            rec, cerr = judge_test(req, i, t, req["scratch"], session, keep)  # kills what the test left
        finally:
            cleanup.wipe(req["scratch"])
            if req.get("child_uid") is not None:  # a full /tmp must not fail the next test's set-up
                cleanup.remove_uid_files(req["child_uid"])
        if session.zygote.broken:
            if req.get("child_uid") is not None:  # out of the attempt's reach: the verifier failed
                raise RuntimeError("the fork server stopped answering")
            # same uid (the local sandbox without root): the attempt can kill it, and did
            session.tainted = True
            why = "the attempt killed the fork server (the local sandbox without root cannot stop it)"
            emit(dict(rec, outcome="runtime_error", detail=why))
            for j in range(i + 1, len(tests)):
                emit(record(j, tests[j], outcome="runtime_error", detail="not run: " + why))
            return ""
        if cerr is not None:
            emit(rec)
            for j in range(i + 1, len(tests)):
                emit(dict(rec, index=j, public=bool(tests[j].get("public", True)), time_s=0.0,
                          input=trunc(tests[j]["input"]), expected=trunc(tests[j]["output"])))
            return cerr
        if rec["outcome"] == "time_limit":
            tle += 1
        emit(rec)
    return ""


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
                          "memory": session.memory, "baseline": session.baseline, "proc": session.proc}})
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
    proc = None
    if "--hide-proc" in argv:  # the Docker sandbox: hide /proc, then drop the two capabilities it took, first
        from . import prochide

        proc = prochide.hide_and_drop()  # PrivilegeError: no session (the host sees "the judge did not start")
    _prctl_setup()
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    session = Session(proc)  # forks the fork server now, before any request is read
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
