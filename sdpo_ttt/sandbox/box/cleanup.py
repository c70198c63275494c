"""After every test and every attempt: nothing of the attempt survives.

- processes: under a uid of its own, the attempt ends by `kill_all_of_mine`, run AS that uid: kill(-1,
  SIGKILL) until the kernel's own count of the uid's tasks (RLIMIT_NPROC) says nothing else is left. That
  reads no process list, so no process state (a zombie leader whose threads live on, a process hidden by a
  pid race) escapes it, and the answer is exact: if anything survives, the runner has the container
  replaced. Without a uid of its own (the local sandbox, not root) every descendant of the runner but its
  helpers is killed, repeatedly until none is left, from /proc. Either way the runner reaps them and their
  CPU time is added to the attempt's;
- files: scratch wiped; in the container all of /tmp and /dev/shm; elsewhere what the attempt uid owns
  in the world-writable directories; always through directory fds opened with O_NOFOLLOW, so root never
  follows a link the attempt planted;
- SysV shared memory, message queues, semaphores and POSIX message queues created by the attempt uid:
  removed by `remove_own_ipc`, run in a process that has become that uid (removing is the creator's right;
  the runner keeps no CAP_SYS_ADMIN / CAP_IPC_OWNER);
- memory: `memory_in_use` reads the container's non-reclaimable memory (anon + shmem) so the runner can
  compare it with its baseline.
"""

import ctypes
import os
import resource
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
    /proc/<pid>/status (uid, ppid, state) is read first, /proc/<pid>/stat (CPU times) only for a match.
    A zombie thread-group leader whose other threads still run (its main thread ended with the raw `exit`
    syscall) is live: its state is given as "L", and its CPU times are the whole group's."""
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
            state = rest[0].decode()
            if state in "ZX" and (osio.status_field(status, b"\nThreads:") or 0) > 1:
                state = "L"
            out.append((int(d), int(rest[1]), state, real_uid, (int(rest[11]) + int(rest[12])) / _TICK,
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


def kill_all_of_mine(rounds=400):
    """Run AS the attempt uid (no capabilities): SIGKILL every process this uid may signal -- every process
    of the uid in this pid namespace but ourselves, whatever its state -- until none is left. Returns True
    when nothing of the uid but this process is left.

    "Left" is the kernel's count of the uid's tasks, not a process list: with RLIMIT_NPROC at 2 a fork
    succeeds only while this process is the uid's one task (a task counts until it is reaped, so the runner
    reaps meanwhile). kill(-1) itself cannot say it: it answers 0 whenever any other process exists."""
    resource.setrlimit(resource.RLIMIT_NPROC, (2, 2))
    for i in range(rounds):
        try:
            os.kill(-1, signal.SIGKILL)
        except OSError:
            pass
        if _alone():
            return True
        time.sleep(0.0005 * min(i + 1, 20))
    return False


def _alone():
    """Whether this process may fork under RLIMIT_NPROC 2: no other task of its uid exists."""
    try:
        pid = os.fork()
    except OSError:  # EAGAIN: over the uid's task limit
        return False
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    return True


# ------------------------------------------------------------------------------------------ files


MAX_DEPTH = 64  # directory levels removed below a wiped dir (deeper: the container is replaced)
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW


def _open_dir(name, dir_fd=None):
    """An fd on the directory `name` (never through a link), made readable first when it is ours and was
    not (the local sandbox without root has no DAC_OVERRIDE); None if it cannot be opened."""
    try:
        return os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
    except PermissionError:
        pass
    except OSError:
        return None
    try:
        path_fd = os.open(name, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=dir_fd)
    except OSError:
        return None
    try:
        os.chmod("/proc/self/fd/%d" % path_fd, 0o700)  # the directory that fd holds, not a name to follow
        return os.open("/proc/self/fd/%d" % path_fd, _DIR_FLAGS)
    except OSError:
        return None
    finally:
        os.close(path_fd)


def wipe(path, keep=()):
    """Remove everything under path (not path itself) but the names in `keep`, through directory fds
    opened with O_NOFOLLOW: no link the attempt planted is ever followed. Returns False when something
    could not be removed (nested deeper than MAX_DEPTH, or held open against removal)."""
    fd = _open_dir(path)
    if fd is None:
        return not os.path.lexists(path)
    try:
        ok = True
        for name in os.listdir(fd):
            if name not in keep:
                ok = _remove_at(fd, name) and ok
        return ok
    finally:
        os.close(fd)


def _remove_at(dir_fd, name, depth=0):
    """Remove the entry `name` of the directory open as `dir_fd` (a directory with all it holds). Returns
    whether it is gone."""
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return True
    except OSError:
        return False
    if not stat.S_ISDIR(st.st_mode):
        try:
            os.unlink(name, dir_fd=dir_fd)
            return True
        except FileNotFoundError:
            return True
        except OSError:
            return False
    if depth < MAX_DEPTH:
        fd = _open_dir(name, dir_fd)
        if fd is not None:
            try:
                for entry in os.listdir(fd):
                    _remove_at(fd, entry, depth + 1)
            finally:
                os.close(fd)
    try:
        os.rmdir(name, dir_fd=dir_fd)
        return True
    except FileNotFoundError:
        return True
    except OSError:
        return False


def fresh_dir(path, mode=0o711):
    """Remove whatever is at `path` (a link is removed, never followed) and create `path` anew as our
    directory (no exist_ok: one created meanwhile by anyone else is an error), checked with lstat. Raises
    OSError when it cannot be made so."""
    parent, name = os.path.split(path.rstrip("/"))
    pfd = _open_dir(parent or "/")
    if pfd is None:
        raise OSError("cannot open %s" % (parent or "/"))
    try:
        if not _remove_at(pfd, name):
            raise OSError("cannot remove the old %s" % path)
        os.mkdir(name, mode, dir_fd=pfd)
        st = os.stat(name, dir_fd=pfd, follow_symlinks=False)
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid():
            raise OSError("%s is not the directory just made" % path)
        fd = os.open(name, _DIR_FLAGS, dir_fd=pfd)
        try:
            os.fchmod(fd, mode)  # mkdir's mode went through the umask
        finally:
            os.close(fd)
    finally:
        os.close(pfd)


def remove_uid_files(uid, dirs=WORLD_WRITABLE, depth=4):
    """Remove what `uid` owns in the world-writable dirs, and in the world-writable dirs below them (an
    attempt's uid, without groups, can create entries nowhere else but in what it owns, removed whole).
    Returns False when something of it could not be removed."""
    ok = True
    for d in dirs:
        fd = _open_dir(d) if isinstance(d, str) else d
        if fd is None:
            continue
        try:
            for name in os.listdir(fd):
                try:
                    st = os.stat(name, dir_fd=fd, follow_symlinks=False)
                except OSError:
                    continue
                if st.st_uid == uid:
                    ok = _remove_at(fd, name) and ok
                elif depth > 0 and stat.S_ISDIR(st.st_mode) and st.st_mode & stat.S_IWOTH:
                    sub = _open_dir(name, fd)
                    if sub is not None:
                        ok = remove_uid_files(uid, (sub,), depth - 1) and ok
        finally:
            os.close(fd)
    return ok


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



def tasks_in_use():
    """The number of tasks (threads of every process, zombies until reaped) in our pids cgroup -- the
    kernel's count, not a process list -- or None if unreadable."""
    for path in ("/sys/fs/cgroup/pids.current", "/sys/fs/cgroup/pids/pids.current"):
        try:
            return int(osio.read_file(path))
        except (OSError, ValueError):
            continue
    return None


def files_in_memory(dirs=("/tmp", "/dev/shm")):
    """Bytes the files in the memory file systems `dirs` (tmpfs) hold: part of the cgroup's shmem, but
    files (bounded by the tmpfs size and RLIMIT_FSIZE), not an attempt's memory."""
    total = 0
    for d in dirs:
        try:
            st = os.statvfs(d)
        except OSError:
            continue
        total += (st.f_blocks - st.f_bfree) * st.f_frsize
    return total
