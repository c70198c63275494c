"""After every test and every attempt: nothing of the attempt survives.

- processes: every process of the attempt uid (and every descendant of the runner but its helpers) is
  killed, repeatedly until none is left, and reaped; their CPU time is added to the attempt's;
- files: scratch wiped; in the container all of /tmp and /dev/shm; elsewhere what the attempt uid owns
  in the world-writable directories;
- SysV shared memory, message queues, semaphores and POSIX message queues created by the attempt uid:
  removed by `remove_own_ipc`, run in a process that has become that uid (removing is the creator's right;
  the runner keeps no CAP_SYS_ADMIN / CAP_IPC_OWNER);
- memory: `memory_in_use` reads the container's non-reclaimable memory (anon + shmem) so the runner can
  compare it with its baseline.
"""

import ctypes
import os
import signal
import stat
import time

from . import osio

WORLD_WRITABLE = ("/tmp", "/var/tmp", "/dev/shm", "/dev/mqueue", "/run/lock")
_TICK = float(os.sysconf("SC_CLK_TCK"))
IPC_RMID = 0


# ------------------------------------------------------------------------------------------ processes


def scan(uid=None, skip=()):
    """[(pid, ppid, state, uid, own cpu seconds, waited-children cpu seconds)] of every visible process, or
    only of those whose real uid is `uid`; the pids in `skip` are not read (callers' own, known processes).
    /proc/<pid>/status (uid, ppid, state) is read first, /proc/<pid>/stat (CPU times) only for a match."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) in skip:
            continue
        try:
            status = osio.read_file("/proc/%s/status" % d)
            real_uid = osio.status_field(status, b"\nUid:")
            if real_uid is None or (uid is not None and real_uid != uid):
                continue
            rest = osio.read_file("/proc/%s/stat" % d).rsplit(b")", 1)[1].split()
            out.append((int(d), int(rest[1]), rest[0].decode(), real_uid, (int(rest[11]) + int(rest[12])) / _TICK,
                        (int(rest[13]) + int(rest[14])) / _TICK))
        except (OSError, IndexError, ValueError):
            pass
    return out


def descendants(procs, root):
    kids = {}
    for p in procs:
        kids.setdefault(p[1], []).append(p)
    out, todo = [], [root]
    while todo:
        for c in kids.get(todo.pop(), []):
            out.append(c)
            todo.append(c[0])
    return out


def live_attempt_procs(uid, keep):
    """attempt_procs of a fresh scan (only the attempt uid's processes read, when it has one)."""
    if uid is None:
        return attempt_procs(scan(), uid, keep)
    # pid 1 (the namespace's init, there before any attempt) and our own processes are never the attempt's
    return attempt_procs(scan(uid, skip=set(keep) | {1, os.getpid()}), uid, keep)


def attempt_procs(procs, uid, keep):
    """The live processes of the attempt: those of its uid (a dedicated one), else our descendants."""
    me = os.getpid()
    if uid is not None:
        return [p for p in procs if p[3] == uid and p[0] not in keep and p[0] != me and p[2] not in "ZX"]
    # our helpers (fork server, tester) are not the attempt's; the fork server's children are
    return [p for p in descendants(procs, me) if p[0] not in keep and p[2] not in "ZX"]


def reap(exclude):
    """Reap our exited children except `exclude` (their owners reap them); returns the CPU seconds of those
    reaped here (with their own reaped children's)."""
    cpu = 0.0
    while True:
        try:
            info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return cpu
        if info is None or info.si_pid in exclude:
            return cpu
        try:
            pid, _, ru = os.wait4(info.si_pid, os.WNOHANG)
        except ChildProcessError:
            continue
        if not pid:
            return cpu
        cpu += ru.ru_utime + ru.ru_stime


def kill_attempt(uid, keep, rounds=40):
    """SIGKILL every process of the attempt until none is left (catches a fork bomb racing the sweep);
    reaps what is ours. Returns the CPU seconds of the processes reaped here."""
    cpu = 0.0
    for _ in range(rounds):
        victims = live_attempt_procs(uid, keep)
        cpu += reap(keep)
        if not victims:
            return cpu
        for p in victims:
            try:
                os.kill(p[0], signal.SIGKILL)
            except OSError:
                pass
        time.sleep(0.005)
    return cpu + reap(keep)


def survivors(uid, keep):
    return live_attempt_procs(uid, keep)


# ------------------------------------------------------------------------------------------ files


def wipe(path, keep=()):
    """Remove everything under path (not path itself) but the names in `keep`; chmod first so a
    read-only dir cannot block it."""
    if not os.path.isdir(path):
        return
    for name in os.listdir(path):
        if name in keep:
            continue
        _remove(os.path.join(path, name))


def _remove(p):
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
            import shutil  # here, not at the top: the fork server would map bz2 and lzma into every attempt process

            shutil.rmtree(p, ignore_errors=True)
        else:
            os.unlink(p)
    except OSError:
        pass


def remove_uid_files(uid, dirs=WORLD_WRITABLE, depth=4):
    """Remove what `uid` owns in the world-writable dirs, and in the world-writable dirs below them (an
    attempt's uid, without groups, can create entries nowhere else but in what it owns, removed whole)."""
    for d in dirs:
        try:
            names = os.listdir(d)
        except OSError:
            continue
        for name in names:
            p = os.path.join(d, name)
            try:
                st = os.lstat(p)
            except OSError:
                continue
            if st.st_uid == uid:
                _remove(p)
            elif depth > 0 and stat.S_ISDIR(st.st_mode) and st.st_mode & stat.S_IWOTH:
                remove_uid_files(uid, (p,), depth - 1)


# ------------------------------------------------------------------------------------------ IPC


def ipc_objects():
    """{(kind, id): creator uid} of every SysV IPC object (kind: shm, msg, sem) in this IPC namespace."""
    out = {}
    for kind in ("shm", "msg", "sem"):
        try:
            with open("/proc/sysvipc/%s" % kind) as f:
                head = f.readline().split()
                for line in f:
                    cols = dict(zip(head, line.split()))  # noqa: B905 - lenient parse of /proc; Python 3.9 here (no strict=)
                    ident = cols.get("shmid") or cols.get("msqid") or cols.get("semid")
                    if ident is not None and "cuid" in cols:
                        out[(kind, int(ident))] = int(cols["cuid"])
        except (OSError, ValueError):
            pass
    return out


def own_mqueues(uid):
    """Paths of the POSIX message queues `uid` owns (entries that vanish meanwhile are skipped)."""
    try:
        names = os.listdir("/dev/mqueue")
    except OSError:
        return []
    out = []
    for name in names:
        p = os.path.join("/dev/mqueue", name)
        try:
            if os.lstat(p).st_uid == uid:
                out.append(p)
        except OSError:  # gone meanwhile
            pass
    return out


def ipc_left(uid):
    """Whether `uid` owns anything `remove_own_ipc` would remove: a SysV IPC object it created, a POSIX
    message queue (read here, as the runner; the removal itself must run as that uid)."""
    return uid in ipc_objects().values() or bool(own_mqueues(uid))


def remove_own_ipc(only=None):
    """Run AS the attempt uid: remove every SysV IPC object this uid created (only those listed in `only`,
    [[kind, id], ...], when given) and every POSIX message queue it owns."""
    libc = ctypes.CDLL(None, use_errno=True)
    me = os.getuid()
    allowed = None if only is None else {(k, int(i)) for k, i in only}
    for (kind, ident), cuid in ipc_objects().items():
        if cuid != me or (allowed is not None and (kind, ident) not in allowed):
            continue
        if kind == "shm":
            libc.shmctl(ident, IPC_RMID, None)
        elif kind == "msg":
            libc.msgctl(ident, IPC_RMID, None)
        else:
            libc.semctl(ident, 0, IPC_RMID)
    if allowed is None:
        for p in own_mqueues(me):
            try:
                os.unlink(p)
            except OSError:  # gone meanwhile
                pass


# ------------------------------------------------------------------------------------------ memory


def memory_in_use():
    """Bytes of non-reclaimable memory (anon + shmem) charged to our cgroup, or None if unreadable."""
    for path, keys in (("/sys/fs/cgroup/memory.stat", ("anon", "shmem")),
                       ("/sys/fs/cgroup/memory/memory.stat", ("total_rss", "total_shmem"))):
        try:
            with open(path) as f:
                vals = dict(line.split() for line in f if line.strip())
            return sum(int(vals[k]) for k in keys)
        except (OSError, KeyError, ValueError):
            continue
    return None
