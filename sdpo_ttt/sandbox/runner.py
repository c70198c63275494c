"""The trusted runner: one attempt and its tests in (JSON on stdin), one JSON line per test out.

Stdlib only and Python >= 3.9 compatible: it runs inside the sandbox container (started as
`python3 -I -S -c <this source>`, so nothing on the container's disk can be swapped for it) and, for
the local sandbox, as a host subprocess. It never imports the attempt; it starts EACH test as a fresh
child process:

- rlimits: CPU, address space, processes, file size, stack, core dumps off;
- its own session (setsid), killed as a group (killpg) at the wall limit;
- stdout / stderr / result channel read incrementally with caps (output_limit on overflow);
- a fresh scratch directory per test, removed afterwards; leftover processes swept: our descendants
  (we are a child subreaper) and, given a dedicated uid, every process of that uid (see `_sweep`).

Protocol. stdin: one line with the byte length N of the request, then N bytes of UTF-8 JSON (see
`_Request` fields in `main`). stdout: lines `<nonce> <json>` where nonce comes from the request:
`{"event": "start"}`, one `{"event": "test", ...}` per test (fields of sdpo_ttt.verdict.TestResult),
then `{"event": "done", "compile_error": str}`. The nonce stops a child that reaches our stdout from
forging lines. Expected outputs never leave this process: the child gets only the test input, and we
mark ourselves non-dumpable so a same-uid child cannot read our memory through /proc.

`--serve` (the Docker backend's long-lived session): requests in the same framing, one after another
until stdin closes, each answered as above; the `done` event then carries `session` (our pid, the fork
servers' pids, `exiting`). The fork server outlives attempts; before it is trusted again it must answer a
ping and show the limits / priority / affinity / scheduler it started with, and after every attempt we
check no process of the attempt uid survived and our own fingerprint is unchanged, else we leave after
answering (`exiting`: the host opens a fresh session). See `_Server` and `serve`.
"""

import json
import math
import os
import re
import resource
import selectors
import shutil
import signal
import subprocess
import sys
import time

TRUNC = 1000  # chars kept of input / expected / got in each test record (middle-out)
STDERR_KEEP = 4000  # chars of stderr tail kept
STATUS_CAP = 64 * 1024 * 1024  # bytes accepted on the result channel (function kind)
MB = 1024 * 1024

# Runs in the child as `python3 -I -c HARNESS KIND SOLUTION_PATH STATUS_FD FUNC_NAME`. It loads the
# attempt, runs it (stdio) or calls its entry point once (function), and writes one JSON status line
# to STATUS_FD. The attempt can write to that fd too: all it could forge is its own result, which the
# runner still compares against the expected output the child never sees.
HARNESS = r'''
import sys, os, json, traceback
kind, path, status_fd, fname = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
chan = os.fdopen(status_fd, "w", encoding="utf-8")
def send(**kw):
    try:
        chan.write(json.dumps(kw) + "\n"); chan.flush()
    except Exception:
        pass
def tb_text(e):
    lines = traceback.format_exception(type(e), e, e.__traceback__)
    keep = [l for l in lines if '"<string>"' not in l]
    return "".join(keep)
def run_script(fn, fname, spec, g):
    # kind "script": the test program's asserts were rewritten (sdpo_ttt/asserts.py) into calls of the
    # helpers below, which record one result per assert site on the status channel. Only plain builtin
    # values are ever compared or tested for truth, and the attempt's function must return one, so an
    # object with a lying __eq__ / __bool__ / __sub__ cannot pass an assertion.
    PLAIN = (int, float, bool, str, bytes, complex, type(None))
    def plain(v, d=0):
        t = type(v)
        if t in PLAIN:
            return True
        if d > 100:
            return False
        if t is list or t is tuple or t is set or t is frozenset:
            for x in v:
                if not plain(x, d + 1):
                    return False
            return True
        if t is dict:
            for k, x in dict.items(v):
                if not (plain(k, d + 1) and plain(x, d + 1)):
                    return False
            return True
        return False
    def tname(v):
        try:
            n = type.__dict__["__name__"].__get__(type(v))
            return n if type(n) is str else "?"
        except Exception:
            return "?"
    def cut(s, n):
        if len(s) <= n:
            return s
        h = n // 2
        return s[:h] + "...[%d chars cut]..." % (len(s) - n) + s[len(s) - (n - h):]
    def what(v):
        t = tname(v)
        if type(v) in (list, tuple, set, frozenset, dict):
            try:
                for x in (list(dict.keys(v)) + list(dict.values(v)) if type(v) is dict else v):
                    if not plain(x):
                        return "a %s holding %s" % (t, what(x))
            except Exception:
                pass
        return "a %s object" % t
    def srepr(v, n=1000):
        if not plain(v):
            return "<%s object>" % tname(v)
        try:
            return cut(repr(v), n)
        except Exception:
            return "<%s value>" % tname(v)
    class NotPlain(Exception):
        pass
    state = {"site": -1, "call": None}
    sent = set()
    begun = set()
    def record(k, ok, **kw):
        if (k, ok) in sent:
            return
        sent.add((k, ok))
        kw["site"] = k
        kw["ok"] = ok
        c = state["call"]
        if not ok and c is not None:
            kw["call"] = c[0]
            kw["returned"] = c[1]
        send(**kw)
    def guarded(*a, **kw):
        try:
            shown = ", ".join([srepr(x, 200) for x in a] + ["%s=%s" % (k, srepr(x, 200)) for k, x in kw.items()])
        except Exception:
            shown = "..."
        c = state["call"] = ["%s(%s)" % (fname, cut(shown, 400)), "(no value: it raised)"]
        r = fn(*a, **kw)
        if not plain(r):
            c[1] = "<%s object>" % tname(r)
            raise NotPlain("%s returned %s; only plain values (int, float, str, bool, None, and lists, "
                           "tuples, dicts, sets of them) are accepted" % (c[0], what(r)))
        c[1] = srepr(r)
        return r
    def cmp_ops():
        return {"==": lambda a, b: a == b, "!=": lambda a, b: a != b, "<": lambda a, b: a < b,
                "<=": lambda a, b: a <= b, ">": lambda a, b: a > b, ">=": lambda a, b: a >= b,
                "in": lambda a, b: a in b, "not in": lambda a, b: a not in b,
                "is": lambda a, b: a is b, "is not": lambda a, b: a is not b}
    OPS = cmp_ops()
    class Helpers(object):
        def begin(self, k):
            state["site"] = k
            state["call"] = None
            if k not in begun:  # the first start of each site: where a killed program stopped (roughly)
                begun.add(k)
                send(site=k, begin=True)
        def raised(self, k, e):
            if isinstance(e, MemoryError):
                raise e
            if isinstance(e, NotPlain):
                record(k, False, kind="wrong_answer", detail=str(e))
                return
            try:
                msg = cut(str(e), 300)
            except Exception:
                msg = ""
            record(k, False, kind="runtime_error", detail="%s: %s" % (tname(e), msg) if msg else tname(e),
                   error=tb_text(e))
        def compare(self, k, op, a, b):
            if op not in ("is", "is not"):
                for v in (a, b):
                    if not plain(v):
                        record(k, False, kind="wrong_answer", op=op, left=srepr(a), right=srepr(b),
                               detail="a %s object cannot be compared: only plain values (int, float, str, bool, "
                                      "None, and lists, tuples, dicts, sets of them) are" % tname(v))
                        return
            try:
                ok = OPS[op](a, b)
            except Exception as e:
                record(k, False, kind="runtime_error", op=op, left=srepr(a), right=srepr(b),
                       detail="comparing with %s raised %s: %s" % (op, tname(e), cut(str(e), 200)))
                return
            if type(ok) is bool and ok:
                record(k, True)
            else:
                record(k, False, kind="wrong_answer", op=op, left=srepr(a), right=srepr(b))
        def truth(self, k, negate, v):
            if not plain(v):
                record(k, False, kind="wrong_answer", op="not" if negate else "truth", left=srepr(v),
                       detail="a %s object has no trusted truth value: only plain values are accepted" % tname(v))
                return
            if bool(v) != bool(negate):
                record(k, True)
            else:
                record(k, False, kind="wrong_answer", op="not" if negate else "truth", left=srepr(v))
    ns = dict(g)
    ns["__name__"] = "tests"
    ns[fname] = guarded
    ns["__sdpo"] = Helpers()
    try:
        exec(compile(spec.get("setup_code") or "", "setup_code", "exec"), ns)
        exec(compile(spec["test_code"], "test_code", "exec"), ns)
        if spec.get("check_function"):
            ns[spec["check_function"]](guarded)
    except SystemExit as e:
        send(status="exception", type="SystemExit", site=state["site"],
             error="exit(%r) was called while the tests ran" % (e.code,))
        sys.exit(1)
    except BaseException as e:
        t = tb_text(e); sys.stderr.write(t)
        send(status="exception", type=type(e).__name__, error=t, site=state["site"])
        sys.exit(1)
    try:
        sys.stdout.flush()
    except Exception:
        pass
    send(status="ok")
src = open(path, "rb").read()
try:
    code = compile(src, "solution.py", "exec")
except BaseException as e:
    send(status="compile_error", error="".join(traceback.format_exception_only(type(e), e)))
    sys.exit(3)
if kind != "stdio":
    args = json.loads(sys.stdin.read())
    sys.stdin.close()
    sys.stdin = open(os.devnull)
    g = {"__name__": "solution", "__file__": "solution.py", "__builtins__": __builtins__}
    import typing
    for n in getattr(typing, "__all__", []):
        g.setdefault(n, getattr(typing, n))
else:
    g = {"__name__": "__main__", "__file__": "solution.py", "__builtins__": __builtins__}
try:
    exec(code, g)
except SystemExit as e:
    if kind != "stdio":
        send(status="load_error", type="SystemExit", error="the program called exit() while loading: %r" % (e.code,))
        sys.exit(4)
    if e.code is None or e.code == 0:
        send(status="ok")
    raise
except BaseException as e:
    t = tb_text(e)
    sys.stderr.write(t)
    send(status="load_error" if kind != "stdio" else "exception", type=type(e).__name__, error=t)
    sys.exit(4 if kind != "stdio" else 1)
if kind != "stdio":
    fn = g.get(fname)
    if not callable(fn):
        cls = g.get("Solution")
        if isinstance(cls, type) and callable(getattr(cls, fname, None)):
            try:
                fn = getattr(cls(), fname)
            except BaseException as e:
                t = tb_text(e); sys.stderr.write(t)
                send(status="exception", type=type(e).__name__, error=t)
                sys.exit(1)
        else:
            send(status="no_entry", error="no top-level function %r and no class Solution with a method %r" % (fname, fname))
            sys.exit(5)
if kind == "script":
    run_script(fn, fname, args, g)
elif kind == "function":
    try:
        res = fn(*args)
    except SystemExit as e:
        send(status="exception", type="SystemExit", error="the function called exit(%r) instead of returning" % (e.code,))
        sys.exit(1)
    except BaseException as e:
        t = tb_text(e); sys.stderr.write(t)
        send(status="exception", type=type(e).__name__, error=t)
        sys.exit(1)
    try:
        out = json.dumps(res)
    except BaseException as e:
        send(status="unserializable", type=type(res).__name__, error="%s: %s" % (type(e).__name__, e))
        sys.exit(0)
    send(status="ok", result=out)
    try:
        sys.stdout.flush()
    except Exception:
        pass
else:
    try:
        sys.stdout.flush()
    except Exception:
        pass
    send(status="ok")
'''

# ---------------------------------------------------------------------------------------------
# comparison (pure functions; the runner's only judge of equality: never the attempt's __eq__)

_INT = re.compile(r"^[+-]?\d+$")
_NUM = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


def _close(a, b, tol):
    if a == b:
        return True
    if math.isnan(a) or math.isnan(b) or math.isinf(a) or math.isinf(b):
        return False
    d = abs(a - b)
    return d <= tol or d <= tol * max(abs(a), abs(b))


def _short(s, n=40):
    s = str(s)
    return s if len(s) <= n else s[: n - 3] + "..."


def compare_tokens(got, exp, tol):
    """(ok, detail): whitespace tokens equal; numbers within tol (absolute or relative)."""
    g, e = got.split(), exp.split()
    for i, (a, b) in enumerate(zip(g, e)):
        if a == b:
            continue
        if _INT.match(a) and _INT.match(b):
            if int(a) == int(b):
                continue
        elif _NUM.match(a) and _NUM.match(b):
            if _close(float(a), float(b), tol):
                continue
        return False, "token %d: expected %s, got %s" % (i + 1, _short(b), _short(a))
    if len(g) != len(e):
        return False, "expected %d tokens, got %d" % (len(e), len(g))
    return True, ""


def compare_lines(got, exp):
    def norm(s):
        ls = [l.rstrip() for l in s.replace("\r\n", "\n").split("\n")]
        while ls and not ls[-1]:
            ls.pop()
        return ls

    g, e = norm(got), norm(exp)
    for i, (a, b) in enumerate(zip(g, e)):
        if a != b:
            return False, "line %d: expected %s, got %s" % (i + 1, _short(b), _short(a))
    if len(g) != len(e):
        return False, "expected %d lines, got %d" % (len(e), len(g))
    return True, ""


def _json_eq(a, b, tol, path):
    """None when equal, else a one-line description of the first difference."""
    num = (int, float)
    if isinstance(a, bool) or isinstance(b, bool):
        if type(a) is type(b) and a == b:
            return None
    elif isinstance(a, num) and isinstance(b, num):
        if isinstance(a, int) and isinstance(b, int):
            if a == b:
                return None
        elif _close(float(a), float(b), tol):
            return None
    elif isinstance(a, str) and isinstance(b, str):
        if a == b:
            return None
    elif a is None and b is None:
        return None
    elif isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return "at %s: expected a list of length %d, got length %d" % (path or "top level", len(b), len(a))
        for i, (x, y) in enumerate(zip(a, b)):
            r = _json_eq(x, y, tol, "%s[%d]" % (path, i))
            if r:
                return r
        return None
    elif isinstance(a, dict) and isinstance(b, dict):
        if set(a) != set(b):
            return "at %s: expected keys %s, got %s" % (path or "top level", _short(sorted(b)), _short(sorted(a)))
        for k in sorted(b):
            r = _json_eq(a[k], b[k], tol, "%s[%s]" % (path, json.dumps(k)))
            if r:
                return r
        return None
    return "at %s: expected %s, got %s" % (path or "top level", _short(json.dumps(b)), _short(json.dumps(a)))


def compare_json(got, exp, tol):
    try:
        e = json.loads(exp)
    except ValueError as err:
        return False, "the expected output is not valid JSON (%s)" % err
    try:
        g = json.loads(got)
    except ValueError:
        return False, "the output is not valid JSON"
    try:
        r = _json_eq(g, e, tol, "")
    except RecursionError:
        return False, "the output is nested too deeply to compare"
    return (r is None), (r or "")


def compare(got, exp, mode, tol):
    if mode == "exact":
        return (got == exp), ("" if got == exp else "output differs from the expected output byte for byte")
    if mode == "lines":
        return compare_lines(got, exp)
    if mode == "json":
        return compare_json(got, exp, tol)
    return compare_tokens(got, exp, tol)


def trunc(s, n=TRUNC):
    """Middle-out truncation: keep the head and the tail, say how much was cut."""
    if len(s) <= n:
        return s
    cut = len(s) - n
    h = n // 2
    return s[:h] + "\n...[%d chars cut]...\n" % cut + s[len(s) - (n - h):]


# ---------------------------------------------------------------------------------------------
# process control


def _prctl_setup():
    """Best effort: (1) non-dumpable, so same-uid processes (the attempt) cannot read our memory or fds
    through /proc; (2) child subreaper, so whatever the attempt orphans is re-parented to us, where
    `_sweep_descendants` finds and reaps it whatever its uid or session."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE = 4
        libc.prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER = 36
    except Exception:
        pass


def _descendants():
    """pids of our live descendants (after an orphaning they are our children: we are a subreaper)."""
    kids = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                rest = f.read().rsplit(")", 1)[1].split()
            if rest[0] not in ("Z", "X"):
                kids.setdefault(int(rest[1]), []).append(int(d))
        except (OSError, IndexError, ValueError):
            pass
    out, todo = [], [os.getpid()]
    while todo:
        for c in kids.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def _sweep_descendants(keep=(), rounds=20):
    for _ in range(rounds):
        _reap_zombies()
        victims = [p for p in _descendants() if p not in keep]
        if not victims:
            return
        for p in victims:
            try:
                os.kill(p, signal.SIGKILL)
            except OSError:
                pass
        time.sleep(0.005)
    _reap_zombies()


def _proc_uids():
    """(pid, real uid) of every live (non-zombie) process visible to us."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/status" % d) as f:
                zombie = False
                for line in f:
                    if line.startswith("State:"):
                        zombie = line.split()[1] in ("Z", "X")
                    elif line.startswith("Uid:"):
                        if not zombie:
                            out.append((int(d), int(line.split()[1])))
                        break
        except (OSError, ValueError, IndexError):
            pass
    return out


def _sweep(uid, keep=(), rounds=20):
    """Kill every process of `uid` except ourselves (a dedicated uid, never root, never ours on a
    host). Repeats until none is left, so a fork bomb racing the sweep is caught."""
    if uid is None or uid == 0:
        return 0
    me = os.getpid()
    killed = 0
    for _ in range(rounds):
        victims = [p for p, u in _proc_uids() if u == uid and p != me and p != 1 and p not in keep]
        if not victims:
            break
        for p in victims:
            try:
                os.kill(p, signal.SIGKILL)
                killed += 1
            except OSError:
                pass
        time.sleep(0.01)
        _reap_zombies()
    return killed


def _reap_zombies():
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _count_uid_procs(uid):
    return sum(1 for _, u in _proc_uids() if u == uid)


def _wipe(path):
    """Remove everything under path (not path itself); chmod first so a read-only dir can't block it."""
    if not os.path.isdir(path):
        return
    for name in os.listdir(path):
        p = os.path.join(path, name)
        try:
            if os.path.isdir(p) and not os.path.islink(p):
                for root, dirs, _ in os.walk(p):
                    for d in dirs:
                        try:
                            os.chmod(os.path.join(root, d), 0o700)
                        except OSError:
                            pass
                try:
                    os.chmod(p, 0o700)
                except OSError:
                    pass
                shutil.rmtree(p, ignore_errors=True)
            else:
                os.unlink(p)
        except OSError:
            pass


# The fork server ("zygote"): an interpreter started once per attempt (once per session with `--serve`),
# non-dumpable, holding nothing but the harness (never a test's expected output). For each test the runner sends it the child's stdin / stdout /
# stderr / status fds (SCM_RIGHTS over a SOCK_SEQPACKET pair) and it forks: the child sets up its own
# session, rlimits and uid, then runs HARNESS. Forking an initialized interpreter costs ~1 ms instead of
# the ~20-40 ms of starting one; each test still runs in its own fresh process.
ZYGOTE = r"""
import os, sys, io, json, socket, resource, traceback, atexit
sock = socket.socket(fileno=int(sys.argv[1]))
harness = compile(sys.argv[2], "<string>", "exec")
import typing
try:
    import ctypes
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE 0: a same-uid attempt cannot ptrace or patch the server
except Exception:
    prctl = None
sock.send(b"ready")
def child(cmd, fds):
    code = 1
    try:
        if prctl is not None:
            prctl(4, 1, 0, 0, 0)  # the child itself is an ordinary (dumpable) process, as when exec'd
        os.setsid()
        for i, fd in enumerate(fds[:3]):
            os.dup2(fd, i)
        for fd in fds[:3]:
            if fd > 2:
                os.close(fd)
        sock.close()
        os.chdir(cmd["cwd"])
        for name, val in cmd["rlimits"]:
            resource.setrlimit(getattr(resource, name), (val, val))
        uid = cmd.get("uid")
        if uid is not None:
            os.setgroups([]); os.setgid(uid); os.setuid(uid)
        resource.setrlimit(resource.RLIMIT_NPROC, (cmd["nproc"], cmd["nproc"]))
        os.environ.clear(); os.environ.update(cmd["env"])
        out = io.TextIOWrapper(io.BufferedWriter(io.FileIO(1, "w", closefd=False)), encoding="utf-8")
        err = io.TextIOWrapper(io.BufferedWriter(io.FileIO(2, "w", closefd=False)), encoding="utf-8",
                               errors="backslashreplace", line_buffering=True)
        sys.stdin = sys.__stdin__ = io.TextIOWrapper(io.BufferedReader(io.FileIO(0, "r", closefd=False)), encoding="utf-8")
        sys.stdout = sys.__stdout__ = out
        sys.stderr = sys.__stderr__ = err
        sys.argv = ["-c", cmd["kind"], cmd["path"], str(fds[3]), cmd["fname"]]
        try:
            exec(harness, {"__name__": "__main__", "__builtins__": __builtins__})
            code = 0
        except SystemExit as e:
            if e.code is None:
                code = 0
            elif isinstance(e.code, int):
                code = e.code
            else:
                err.write(str(e.code) + "\n")
                code = 1
        except BaseException:
            traceback.print_exc()
            code = 1
        try:
            atexit._run_exitfuncs()
        except BaseException:
            pass
        for f in (sys.stdout, sys.stderr, out, err):
            try:
                f.flush()
            except BaseException:
                pass
    finally:
        os._exit(code & 0xFF)
while True:
    try:
        msg, fds, _, _ = socket.recv_fds(sock, 1 << 16, 8)
    except OSError:
        break
    if not msg:
        break
    if msg == b"ping" and not fds:
        sock.send(b"pong")
        continue
    cmd = json.loads(msg)
    go_r, go_w = os.pipe()  # the child waits until its pid is reported: it cannot race the report
    pid = os.fork()
    if pid == 0:
        os.close(go_w)
        os.read(go_r, 1)
        os.close(go_r)
        child(cmd, fds)
    os.close(go_r)
    for fd in fds:
        os.close(fd)
    sock.send(json.dumps({"pid": pid}).encode())
    os.write(go_w, b"x")
    os.close(go_w)
    try:
        _, st, ru = os.wait4(pid, 0)
        rc = -os.WTERMSIG(st) if os.WIFSIGNALED(st) else os.WEXITSTATUS(st)
        cpu = ru.ru_utime + ru.ru_stime
    except ChildProcessError:
        rc, cpu = -9, None
    sock.send(json.dumps({"exit": rc, "cpu": cpu}).encode())
"""


class _Zygote(object):
    """The per-attempt fork server (see ZYGOTE). `spawn` returns the child's pid, or None if broken."""

    def __init__(self, python):
        import socket

        a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.sock = a
        self.proc = subprocess.Popen([python, "-I", "-c", ZYGOTE, str(b.fileno()), HARNESS], pass_fds=(b.fileno(),),
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     close_fds=True)
        b.close()
        self.pid = self.proc.pid
        self.broken = False

    def ready(self):
        """True once the server answered its hello (so a failed start falls back to exec, visibly)."""
        try:
            self.sock.settimeout(15.0)
            return self.sock.recv(64) == b"ready"
        except OSError:
            self.broken = True
            return False

    def ping(self, timeout=2.0):
        """True when the server answers at once (not killed, stopped or wedged by an earlier attempt)."""
        if self.broken or self.proc.poll() is not None:
            return False
        try:
            self.sock.setblocking(True)
            self.sock.settimeout(timeout)
            self.sock.send(b"ping")
            return self.sock.recv(64) == b"pong"
        except OSError:
            self.broken = True
            return False

    def spawn(self, cmd, fds):
        import socket

        try:
            self.sock.setblocking(True)
            self.sock.settimeout(10.0)
            socket.send_fds(self.sock, [json.dumps(cmd).encode()], fds)
            msg = self.sock.recv(1 << 16)
            return int(json.loads(msg.decode())["pid"])
        except (OSError, ValueError, KeyError):
            self.broken = True
            return None

    def exit_message(self, block):
        """(returncode, cpu seconds or None) once the child has exited, else None; (-9, None) if we died."""
        try:
            if block:
                self.sock.setblocking(True)
                self.sock.settimeout(10.0)
            else:
                self.sock.setblocking(False)
            msg = self.sock.recv(1 << 16)
        except BlockingIOError:
            return None
        except OSError:
            self.broken = True
            return (-9, None)
        if not msg:
            self.broken = True
            return (-9, None)
        d = json.loads(msg.decode())
        return (int(d["exit"]), d.get("cpu"))

    def close(self):
        try:
            self.proc.kill()
        except OSError:
            pass
        try:
            self.proc.wait(5)
        except Exception:
            pass
        self.sock.close()


class _Child(object):
    """One test's child process (forked by the zygote, or exec'd when there is none) and its output."""

    def __init__(self, req, test_dir, stdin_path, zygote=None):
        self.req = req
        lim = req["limits"]
        self.time_s = float(lim["time_s"])
        self.mem = int(lim["memory_mb"]) * MB
        self.out_cap = int(req["output_limit"])
        cpu = int(math.ceil(self.time_s)) + 1
        as_bytes = self.mem + int(req.get("as_slack_mb", 64)) * MB
        nproc = int(req.get("nproc", 64))
        fsize = int(req.get("fsize_mb", 32)) * MB
        stack = min(64 * MB, as_bytes // 4)
        uid = req.get("child_uid")
        rlimits = [("RLIMIT_CORE", 0), ("RLIMIT_CPU", cpu), ("RLIMIT_AS", as_bytes), ("RLIMIT_FSIZE", fsize),
                   ("RLIMIT_STACK", stack)]
        env = {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "LANG": "C.UTF-8",
            "LC_ALL": "C.UTF-8",
            "HOME": test_dir,
            "TMPDIR": test_dir,
            "OPENBLAS_NUM_THREADS": "1",
            "OMP_NUM_THREADS": "1",
            "MKL_NUM_THREADS": "1",
        }
        path = os.path.join(test_dir, "solution.py")
        fname = req.get("function_name") or ""
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        st_r, st_w = os.pipe()
        self.fds = {out_r: "stdout", err_r: "stderr", st_r: "status"}
        self.zygote = None
        self.proc = None
        self.pid = None
        stdin_fd = os.open(stdin_path, os.O_RDONLY)
        self.t0 = time.monotonic()
        try:
            if zygote is not None and not zygote.broken:
                cmd = {"cwd": test_dir, "rlimits": rlimits, "uid": uid, "nproc": nproc, "env": env,
                       "kind": req["kind"], "path": path, "fname": fname}
                self.pid = zygote.spawn(cmd, [stdin_fd, out_w, err_w, st_w])
                if self.pid is not None:
                    self.zygote = zygote
            if self.pid is None:  # no fork server (or it failed to start): exec a fresh interpreter
                def pre():  # runs in the child between fork and exec
                    os.setsid()
                    for name, val in rlimits:
                        resource.setrlimit(getattr(resource, name), (val, val))
                    if uid is not None:
                        os.setgroups([])
                        os.setgid(uid)
                        os.setuid(uid)
                    resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))

                argv = [req["python"], "-I", "-c", HARNESS, req["kind"], path, str(st_w), fname]
                self.proc = subprocess.Popen(argv, stdin=stdin_fd, stdout=out_w, stderr=err_w, cwd=test_dir, env=env,
                                             preexec_fn=pre, pass_fds=(st_w,), close_fds=True)
                self.pid = self.proc.pid
        finally:
            for fd in (stdin_fd, out_w, err_w, st_w):
                os.close(fd)
        self.stdout = bytearray()
        self.stderr = bytearray()
        self.status = bytearray()
        self.over = None  # which stream overflowed
        self.killed_wall = False
        self.cpu = None
        self.returncode = None

    def _kill(self):
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except OSError:
            pass
        try:
            os.kill(self.pid, signal.SIGKILL)
        except OSError:
            pass

    def _poll(self, block=False):
        """Collect the child's exit status if it has exited; True once it has."""
        if self.returncode is not None:
            return True
        if self.zygote is not None:
            got = self.zygote.exit_message(block)
            if got is None:
                return False
            if not self.zygote.broken:
                self.returncode, self.cpu = got
                return True
            # The attempt killed the fork server; its child is now ours (we are a subreaper). Reaping the
            # dead server first guarantees the re-parenting is complete; then wait for the child itself.
            try:
                self.zygote.proc.wait(5)
            except Exception:
                pass
            self.zygote = None
        try:
            pid, st, ru = os.wait4(self.pid, 0 if block else os.WNOHANG)
        except ChildProcessError:
            self.returncode = -9
            return True
        if not pid:
            return False
        self.returncode = -os.WTERMSIG(st) if os.WIFSIGNALED(st) else os.WEXITSTATUS(st)
        self.cpu = ru.ru_utime + ru.ru_stime
        if getattr(self, "proc", None) is not None:
            self.proc.returncode = self.returncode  # so Popen never waits on it again
        return True

    def run(self):
        wall = self.time_s * 2.0 + 0.5
        sel = selectors.DefaultSelector()
        for fd in self.fds:
            os.set_blocking(fd, False)
            sel.register(fd, selectors.EVENT_READ)
        open_fds = set(self.fds)
        deadline = self.t0 + wall
        drain_until = None  # set once the child exited: what it left behind may hold the pipes open
        while True:
            now = time.monotonic()
            if drain_until is None and self._poll():
                drain_until = now + 0.1
            if not open_fds or (drain_until is not None and now >= drain_until):
                break
            if now >= deadline:
                self.killed_wall = True
                break
            timeout = min(deadline, drain_until or deadline) - now
            for key, _ in sel.select(timeout=min(max(timeout, 0.0), 0.05)):
                fd = key.fd
                try:
                    chunk = os.read(fd, 1 << 16)
                except BlockingIOError:
                    continue
                except OSError:
                    chunk = b""
                if not chunk:
                    sel.unregister(fd)
                    open_fds.discard(fd)
                    continue
                name = self.fds[fd]
                if name == "stdout":
                    self.stdout += chunk
                    if len(self.stdout) > self.out_cap:
                        self.over = "stdout"
                elif name == "stderr":
                    self.stderr += chunk
                    if len(self.stderr) > 4 * STDERR_KEEP:
                        del self.stderr[: len(self.stderr) - 2 * STDERR_KEEP]
                else:
                    self.status += chunk
                    if len(self.status) > STATUS_CAP:
                        self.over = "status"
            if self.over:
                break
        sel.close()
        self._kill()  # the whole group: the child if still running, and whatever it left in its session
        self._poll(block=True)
        if self.returncode is None:
            self.returncode = -9
        self.wall = time.monotonic() - self.t0
        for fd in self.fds:
            try:
                os.close(fd)
            except OSError:
                pass
        return self

    @property
    def cpu_s(self):
        return self.cpu if self.cpu is not None else self.wall


def _status(child):
    line = bytes(child.status).split(b"\n", 1)[0]
    try:
        return json.loads(line.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        return {}


def _stderr_tail(child):
    return bytes(child.stderr).decode("utf-8", "replace")[-STDERR_KEEP:]


_SIGNAMES = {getattr(signal, n): n for n in dir(signal) if n.startswith("SIG") and not n.startswith("SIG_")}


def _status_events(child):
    """Every JSON line of the result channel (kind "script": one per assert site result, then the status)."""
    out = []
    for line in bytes(child.status).split(b"\n"):
        try:
            d = json.loads(line.decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            continue
        if isinstance(d, dict):
            out.append(d)
    return out


def judge_test(req, i, test, scratch, zygote=None, stdin_text=None):
    """Run one test in a fresh child; return (record dict, compile_error text or None).
    Kind "script" runs the whole test program once (stdin_text: the script spec) and the record's outcome
    says how the program ended ("passed": it ran to the end); `_events` holds the per-assert results."""
    test_dir = os.path.join(scratch, "t%d" % i)
    os.mkdir(test_dir, 0o700)
    with open(os.path.join(test_dir, "solution.py"), "w", encoding="utf-8") as f:
        f.write(req["code"])
    stdin_path = os.path.join(scratch, "stdin%d" % i)
    with open(stdin_path, "w", encoding="utf-8") as f:
        f.write(test["input"] if stdin_text is None else stdin_text)
    uid = req.get("child_uid")
    if uid is not None:
        os.chown(test_dir, uid, uid)
        os.chown(os.path.join(test_dir, "solution.py"), uid, uid)
    try:
        child = _Child(req, test_dir, stdin_path, zygote).run()
    finally:
        os.unlink(stdin_path)
    kind = req["kind"]
    st = _status(child)
    events = []
    if kind == "script":
        events = _status_events(child)
        st = next((e for e in reversed(events) if "status" in e), {})
    tail = _stderr_tail(child)
    rec = {
        "index": i,
        "public": bool(test.get("public", True)),
        "time_s": round(child.wall, 4),
        "input": trunc(test["input"]),
        "expected": trunc(test["output"]),
        "got": "",
        "stderr_tail": tail,
        "detail": "",
    }
    got_text = bytes(child.stdout[: child.out_cap]).decode("utf-8", "replace")
    if kind == "stdio":
        rec["got"] = trunc(got_text)
    compile_error = None
    if kind == "script":
        rec["_events"] = [e for e in events if "site" in e and "status" not in e]
        rec["_abort_site"] = st.get("site")

    def done(outcome, detail=""):
        rec["outcome"] = outcome
        rec["detail"] = detail
        return rec, compile_error

    time_s = child.time_s
    rc = child.returncode
    if st.get("status") == "compile_error":
        compile_error = st.get("error", "")
        rec["stderr_tail"] = compile_error[-STDERR_KEEP:]
        return done("compile_error", "the program does not compile")
    if st.get("status") in ("load_error", "no_entry"):
        compile_error = st.get("error", "")
        rec["stderr_tail"] = compile_error[-STDERR_KEEP:]
        what = "the entry point is missing" if st["status"] == "no_entry" else "loading the program raised %s" % st.get("type", "an error")
        return done("compile_error", what)
    if child.over == "stdout":
        return done("output_limit", "printed more than %d bytes" % child.out_cap)
    if child.over == "status":
        return done("output_limit", "the returned value serializes to more than %d bytes" % STATUS_CAP)
    if child.killed_wall or child.cpu_s > time_s or rc in (-signal.SIGXCPU,):
        return done("time_limit", "exceeded the time limit of %gs (cpu %.2fs, wall %.2fs)" % (time_s, child.cpu_s, child.wall))
    if rc == -signal.SIGXFSZ or (rc != 0 and ("File too large" in tail[-400:] or "No space left on device" in tail[-400:])):
        return done("output_limit", "wrote a file larger than the file size limit (%s MB) or filled the scratch space"
                    % req.get("fsize_mb", 32))
    err_type = st.get("type", "")
    if err_type == "MemoryError" or (rc != 0 and ("MemoryError" in tail[-400:] or "Cannot allocate memory" in tail[-400:])):
        return done("memory_limit", "exceeded the memory limit of %d MB" % (child.mem // MB))
    if rc == -signal.SIGKILL:
        return done("memory_limit", "killed by SIGKILL (most likely out of memory; limit %d MB)" % (child.mem // MB))
    if rc is not None and rc < 0:
        name = _SIGNAMES.get(-rc, "signal %d" % -rc)
        hint = " (a crash; deep recursion overflowing the stack is a common cause)" if -rc == signal.SIGSEGV else ""
        return done("runtime_error", "killed by %s%s" % (name, hint))
    if st.get("status") == "exception":
        last = (st.get("error") or "").strip().splitlines()
        if not rec["stderr_tail"]:
            rec["stderr_tail"] = (st.get("error") or "")[-STDERR_KEEP:]
        return done("runtime_error", last[-1] if last else err_type)
    if rc != 0:
        last = tail.strip().splitlines()
        return done("runtime_error", "exit code %d%s" % (rc, (": " + last[-1][:200]) if last else ""))
    if kind == "script":
        if st.get("status") != "ok":
            return done("runtime_error", "the program exited before the tests finished (os._exit or a killed interpreter)")
        return done("passed")
    if kind == "function" and st.get("status") not in ("ok", "unserializable"):
        return done("runtime_error", "the program exited without returning a result (os._exit or a killed interpreter)")
    if kind == "function":
        if st["status"] == "unserializable":
            rec["got"] = "<%s object>" % st.get("type", "?")
            return done("wrong_answer", "the returned value (%s) is not JSON-serializable: %s" % (st.get("type", "?"), st.get("error", "")))
        got = st.get("result", "")
        rec["got"] = trunc(got)
        ok, detail = compare_json(got, test["output"], req["compare"]["float_tol"])
    else:
        if req["compare"]["mode"] == "exact":
            ok = bytes(child.stdout) == test["output"].encode("utf-8")
            detail = "" if ok else "output differs from the expected output byte for byte"
        else:
            ok, detail = compare(got_text, test["output"], req["compare"]["mode"], req["compare"]["float_tol"])
    return done("passed" if ok else "wrong_answer", detail)


def _site_record(i, test, ev):
    """The record of assert site i that failed, from its first failure event."""
    op, left, right = ev.get("op"), ev.get("left", ""), ev.get("right", "")
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
    detail = ev.get("detail") or ("assertion failed: " + _short(what, 300))
    if call and not ev.get("detail"):
        detail += "; %s returned %s" % (_short(call, 200), _short(returned, 200))
    return {"index": i, "public": bool(test.get("public", True)), "time_s": 0.0, "input": trunc(test["input"]),
            "expected": trunc(expected or ""), "got": trunc(returned if call and returned is not None else left or ""),
            "stderr_tail": (ev.get("error") or "")[-STDERR_KEEP:],
            "detail": detail, "outcome": "runtime_error" if ev.get("kind") == "runtime_error" else "wrong_answer"}


def judge_script(req, scratch, zygote=None):
    """Kind "script": run the test program once in one fresh child; return (one record per assert site,
    compile_error text or None). A site that failed reports its first failure; a site that never failed
    passed if the program ran to the end (or the site held before the program stopped); the rest get the
    reason the program stopped (time limit, memory, exception outside an assertion, ...), so an attempt
    passes only if every assertion held and the program completed."""
    tests = req["tests"]
    rec, cerr = judge_test(req, 0, {"input": "", "output": "", "public": True}, scratch, zygote,
                           stdin_text=json.dumps(req["script"]))
    events = rec.pop("_events", [])
    abort_site = rec.pop("_abort_site", None)
    base = {k: rec[k] for k in ("outcome", "detail", "stderr_tail", "time_s")}

    def site(j, **kw):
        r = {"index": j, "public": bool(tests[j].get("public", True)), "time_s": 0.0,
             "input": trunc(tests[j]["input"]), "expected": "", "got": "", "stderr_tail": "", "detail": ""}
        r.update(kw)
        return r

    if cerr is not None:
        return [site(j, outcome=base["outcome"], detail=base["detail"], stderr_tail=base["stderr_tail"])
                for j in range(len(tests))], cerr
    passed, failed, last_begun = set(), {}, None
    for e in events:
        k = e.get("site")
        if not isinstance(k, int) or not 0 <= k < len(tests):
            continue
        if e.get("begin"):
            last_begun = k
        elif e.get("ok") is True:
            passed.add(k)
        elif k not in failed:
            failed[k] = e
    completed = base["outcome"] == "passed"
    stop = abort_site if isinstance(abort_site, int) and abort_site >= 0 else last_begun
    stopped_at = stop if stop is not None and 0 <= stop < len(tests) and stop not in failed else None
    out = []
    for j in range(len(tests)):
        if j in failed:
            out.append(_site_record(j, tests[j], failed[j]))
        elif completed:
            out.append(site(j, outcome="passed"))
        elif j == stopped_at:
            held = " (it had held before)" if j in passed else ""
            out.append(site(j, outcome=base["outcome"], detail=base["detail"] + held, stderr_tail=base["stderr_tail"]))
        elif j in passed:
            out.append(site(j, outcome="passed"))
        elif stopped_at is None:
            stopped_at = j
            out.append(site(j, outcome=base["outcome"], detail=base["detail"], stderr_tail=base["stderr_tail"]))
        else:
            out.append(site(j, outcome=base["outcome"],
                            detail="not reached: the test program stopped at assertion %d" % (stopped_at + 1)))
    if not completed and stopped_at is None:
        # every assertion held or failed before the program stopped: charge the stop to the assertion it was
        # running (or the last one that held), so the attempt never passes a program that did not complete
        ok_sites = [j for j in range(len(tests)) if j not in failed]
        if ok_sites:
            j = abort_site if abort_site in ok_sites else ok_sites[-1]
            out[j] = site(j, outcome=base["outcome"], detail=base["detail"] + " (while or after this assertion ran)",
                          stderr_tail=base["stderr_tail"])
    if out:
        out[0]["time_s"] = base["time_s"]
    return out, None


def _fingerprint(pid):
    """What a same-uid process could change about `pid` without ptrace rights (prlimit(2), setpriority,
    sched_setaffinity, sched_setscheduler) and that would outlive the attempt that changed it; None if
    unreadable. A persistent runner or fork server whose fingerprint moved is replaced."""
    try:
        lims = tuple(resource.prlimit(pid, getattr(resource, n)) for n in _FP_LIMITS if hasattr(resource, n))
        return (lims, os.getpriority(os.PRIO_PROCESS, pid), tuple(sorted(os.sched_getaffinity(pid))),
                os.sched_getscheduler(pid))
    except (OSError, AttributeError, ValueError):
        return None


_FP_LIMITS = ("RLIMIT_CPU", "RLIMIT_AS", "RLIMIT_DATA", "RLIMIT_NOFILE", "RLIMIT_NPROC", "RLIMIT_FSIZE",
              "RLIMIT_STACK", "RLIMIT_MEMLOCK", "RLIMIT_RSS", "RLIMIT_CORE", "RLIMIT_NICE", "RLIMIT_RTPRIO",
              "RLIMIT_SIGPENDING", "RLIMIT_MSGQUEUE")


class _Server(object):
    """State kept across the attempts of one `--serve` session: the fork server (one per python) and the
    fingerprints it and we started with. Nothing of an attempt is kept; see `serve`."""

    def __init__(self):
        self.zygotes = {}  # python -> (_Zygote, fingerprint)
        self.me = _fingerprint(os.getpid())
        self.tainted = False  # set when this runner must not judge another attempt

    def zygote(self, python):
        """The session's healthy fork server for `python` (started if needed), or None."""
        z, fp = self.zygotes.get(python, (None, None))
        if z is not None and not (z.ping() and fp is not None and _fingerprint(z.pid) == fp):
            z.close()
            z = None
        if z is None:
            z = _start_zygote(python)
            fp = _fingerprint(z.pid) if z is not None else None
        if z is None:
            self.zygotes.pop(python, None)
        else:
            self.zygotes[python] = (z, fp)
        return z

    def replace(self, python, z):
        """Record `z` (a replacement started mid-attempt, or None) as the server for `python`."""
        if z is None:
            self.zygotes.pop(python, None)
        else:
            self.zygotes[python] = (z, _fingerprint(z.pid))

    def pids(self):
        return tuple(z.pid for z, _ in self.zygotes.values())

    def close(self):
        for z, _ in self.zygotes.values():
            z.close()
        self.zygotes = {}


def _start_zygote(python):
    try:
        z = _Zygote(python)
    except OSError:
        return None
    if not z.ready():
        z.close()
        return None
    return z


def run(req, emit, server=None):
    """Judge one attempt: emit one record per test; returns the compile error text ('' if none).
    With `server` (a `--serve` session) the fork server outlives the attempt; otherwise it is the attempt's."""
    scratch = req["scratch"]
    uid = req.get("child_uid")
    # Whose processes to sweep: the dedicated child uid (local sandbox as root), or our own uid when
    # the backend says it is a dedicated one (the container's exec user). Never root (see _sweep).
    sweep_uid = uid if uid is not None else (os.getuid() if req.get("sweep_own_uid") else None)
    python = req["python"]
    zygote = None
    if server is not None and req.get("fork_server", True):
        zygote = server.zygote(python)  # checked healthy and untouched before it is trusted again
    keep = (zygote.pid,) if zygote is not None else ()
    for extra in req.get("wipe", []):  # before the scratch dir is made: "/tmp" may hold it
        _wipe(extra)
    os.makedirs(scratch, exist_ok=True)
    _sweep_descendants(keep)
    _sweep(sweep_uid, keep)
    _wipe(scratch)
    if uid is None and req.get("nproc_relative"):
        req["nproc"] = _count_uid_procs(os.getuid()) + int(req.get("nproc", 64))
    if server is None and req.get("fork_server", True):
        zygote = _start_zygote(python)
    compile_error = ""
    tle = 0
    tle_budget = req.get("tle_budget")
    tests = req["tests"]
    try:
        for i, t in enumerate(tests):
            if tle_budget is not None and tle >= tle_budget:
                emit({"index": i, "public": bool(t.get("public", True)), "outcome": "time_limit", "time_s": 0.0,
                      "input": trunc(t["input"]), "expected": trunc(t["output"]), "got": "", "stderr_tail": "",
                      "detail": "not run: the attempt already exceeded the time limit on %d tests" % tle})
                continue
            if zygote is not None and (zygote.broken or zygote.proc.poll() is not None):
                zygote.close()  # the attempt killed or confused it: a fresh one for the next test
                zygote = _start_zygote(python)
                if server is not None:
                    server.replace(python, zygote)
            keep = (zygote.pid,) if zygote is not None else ()
            if req["kind"] == "script":  # one run of the test program; one record per assertion
                try:
                    recs, cerr = judge_script(req, scratch, zygote)
                finally:
                    _sweep_descendants(keep)
                    _sweep(sweep_uid, keep)
                    _wipe(scratch)
                compile_error = cerr or ""
                for r in recs:
                    emit(r)
                break
            try:
                rec, cerr = judge_test(req, i, t, scratch, zygote)
            finally:
                _sweep_descendants(keep)
                _sweep(sweep_uid, keep)
                _wipe(scratch)
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
        if server is None:
            if zygote is not None:
                zygote.close()
            _sweep_descendants()
        else:
            keep = server.pids()
            _sweep_descendants(keep)
            _sweep(sweep_uid, keep)
            _wipe(scratch)
            # Nothing of the attempt may outlive it next to a persistent runner: if a process of its uid
            # survived the sweep, or it changed our limits / priority / affinity, this session ends here.
            me = os.getpid()
            if sweep_uid is not None and any(u == sweep_uid and p != me and p not in keep for p, u in _proc_uids()):
                server.tainted = True
            if server.me is None or _fingerprint(me) != server.me:
                server.tainted = True
        for extra in req.get("wipe", []):
            _wipe(extra)
    return compile_error


def _read_request(stream):
    header = b""
    while not header.endswith(b"\n"):
        c = stream.read(1)
        if not c:
            raise ValueError("no request on stdin")
        header += c
    n = int(header.strip())
    data = b""
    while len(data) < n:
        chunk = stream.read(n - len(data))
        if not chunk:
            raise ValueError("truncated request")
        data += chunk
    return json.loads(data.decode("utf-8"))


def _emitter(nonce, out):
    def emit(obj):
        if "outcome" in obj:
            obj = dict(obj, event="test")
        out.write(nonce + " " + json.dumps(obj) + "\n")
        out.flush()

    return emit


def _judge(req, server=None):
    req.setdefault("python", sys.executable or "python3")
    req.setdefault("output_limit", 8 * MB)
    emit = _emitter(req.get("nonce", ""), sys.stdout)
    emit({"event": "start"})
    try:
        cerr = run(req, emit, server)
        done = {"event": "done", "compile_error": cerr}
        if server is not None:
            done["session"] = {"pid": os.getpid(), "fork_servers": list(server.pids()),
                               "exiting": bool(server.tainted)}
        emit(done)
    except Exception as e:  # the runner's own failure: never the attempt's
        import traceback

        if server is not None:
            server.tainted = True
        emit({"event": "error", "error": "%s: %s" % (type(e).__name__, e), "traceback": traceback.format_exc()[-2000:]})


def serve(max_requests=256):
    """`--serve`: judge requests one after another (same framing as one-shot mode) until stdin closes.
    Each attempt gets exactly what one-shot mode gives it (fresh process per test, sweeps, wiped scratch);
    what persists is this process and its fork server, both non-dumpable and checked after every attempt
    (`_Server`). The session ends, and the host starts a fresh one, when anything about them changed,
    after an error, or after `max_requests` attempts."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # a signal from an attempt kills us: never half-handled
    server = _Server()
    try:
        for _ in range(max_requests):
            try:
                req = _read_request(sys.stdin.buffer)
            except ValueError:
                return
            _judge(req, server)
            if server.tainted:
                return
    finally:
        server.close()
        _sweep_descendants()


def main():
    _prctl_setup()
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    if "--serve" in sys.argv[1:]:
        serve()
        return
    _judge(_read_request(sys.stdin.buffer))


if __name__ == "__main__":
    main()
