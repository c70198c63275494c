"""Hide every other uid's processes from the attempts (the Docker sandbox only; runner.main, first thing).

The container is started with two capabilities for this alone, CAP_SYS_ADMIN and CAP_SETPCAP (docker_container's
TEMPORARY_CAPS; a `docker exec` gets the container's capabilities, so every judge session starts with them). The
runner, before it forks anything or reads a request:

1. remounts the container's /proc with `hidepid=invisible,gid=0` (once per container: a later session finds it
   done). A process then sees /proc/<pid> only of the processes it may ptrace -- an attempt (its own uid, no
   capabilities) its own processes only: not the runner, the fork server, init or the tester, whose
   /proc/<pid>/schedstat was a timing oracle -- while group 0 (the runner and the fork server) still sees all;
2. drops both capabilities from its bounding, permitted, effective and inheritable sets (ambient follows), so
   neither the runner nor anything it starts can hold them again (no-new-privileges: no exec gives them back),
   and checks that from /proc/self/status.

When the remount is refused (a host's AppArmor or SELinux policy, an older config without the capability), the
runner still drops both, runs as before with /proc visible, and says so in every closing event (`proc`), where
the host announces it once. Only step 2 failing stops the runner: it never judges while holding them.
"""

import ctypes
import os

from . import osio
from .privdrop import PrivilegeError

CAP_SETPCAP = 8
CAP_SYS_ADMIN = 21
TEMPORARY = (CAP_SYS_ADMIN, CAP_SETPCAP)  # SETPCAP last: dropping from the bounding set needs it
PR_CAPBSET_DROP = 24
MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT = 2, 4, 8, 32
REMOUNT_FLAGS = MS_REMOUNT | MS_NOSUID | MS_NODEV | MS_NOEXEC  # docker's /proc flags, kept (seccomp.json allows only these)
OPTIONS = (b"hidepid=invisible,gid=0", b"hidepid=2,gid=0")  # the second for kernels before 5.8
HIDING = ("invisible", "2", "ptraceable", "4")  # hidepid values that hide other processes' /proc entries
_CAP_KEYS = (b"\nCapInh:", b"\nCapPrm:", b"\nCapEff:", b"\nCapBnd:", b"\nCapAmb:")
_LINUX_CAPABILITY_VERSION_3 = 0x20080522


def hidepid(mountinfo, mount_point="/proc"):
    """The hidepid option of the file system mounted last at `mount_point` in a /proc/<pid>/mountinfo text
    (the one a path lookup reaches), "0" when it has none, None when nothing is mounted there."""
    found = None
    for line in mountinfo.splitlines():
        fields = line.split(" - ", 1)
        head = fields[0].split()
        if len(head) < 5 or len(fields) < 2 or head[4] != mount_point:
            continue
        tail = fields[1].split()
        found = "0"
        for opt in (tail[2] if len(tail) > 2 else "").split(","):
            if opt.startswith("hidepid="):
                found = opt[len("hidepid="):]
    return found


def proc_hidden():
    """Whether this mount namespace's /proc hides the processes one may not ptrace."""
    try:
        return hidepid(osio.read_file("/proc/self/mountinfo").decode("utf-8", "replace")) in HIDING
    except OSError:
        return False


def _libc():
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
    return libc


def remount_hidden(libc):
    """Remount /proc hiding other processes; None when done (or already so), else why not."""
    if proc_hidden():
        return None
    err = 0
    for opts in OPTIONS:
        if libc.mount(b"proc", b"/proc", b"proc", REMOUNT_FLAGS, opts) == 0 and proc_hidden():
            return None
        err = ctypes.get_errno()
    return "remounting /proc with hidepid was refused (%s)" % (os.strerror(err) if err else "no effect")


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def drop_temporary(libc, caps=TEMPORARY):
    """Drop `caps` from every capability set of this process for good; raises PrivilegeError unless
    /proc/self/status then shows none of them in any set."""
    for cap in caps:
        libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0)  # fails (harmlessly) when neither it nor SETPCAP is held
    head, data = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0), (_CapData * 2)()
    if libc.capget(ctypes.byref(head), data) == 0:
        for cap in caps:
            keep = ~(1 << (cap % 32)) & 0xFFFFFFFF
            d = data[cap // 32]
            d.effective, d.permitted, d.inheritable = d.effective & keep, d.permitted & keep, d.inheritable & keep
        libc.capset(ctypes.byref(head), data)
    held = holding(osio.read_file("/proc/self/status"), caps)
    if held:
        raise PrivilegeError("the runner still holds capabilities %s (%s)" % (list(caps), ", ".join(held)))


def holding(status, caps):
    """The capability sets (CapInh, CapPrm, ...) of a /proc/<pid>/status text that hold any of `caps`
    (a set missing from the text counts as holding them, but for the ambient set of old kernels)."""
    mask = sum(1 << c for c in caps)
    out = []
    for key in _CAP_KEYS:
        value = osio.status_field(status, key, 16)
        if value is None and key == b"\nCapAmb:":  # kernels before 4.3 have no ambient set
            continue
        if value is None or value & mask:
            out.append(key.decode().strip(" \n:"))
    return out


def hide_and_drop():
    """Steps 1 and 2 of the module's doc. Returns {"hidden": bool, "detail": str}; raises PrivilegeError when
    the capabilities could not be dropped."""
    libc = _libc()
    why = remount_hidden(libc)
    drop_temporary(libc)
    if why is None:
        return {"hidden": True, "detail": "hidepid=%s" % hidepid(
            osio.read_file("/proc/self/mountinfo").decode("utf-8", "replace"))}
    return {"hidden": False, "detail": why}
