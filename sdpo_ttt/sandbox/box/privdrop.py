"""The one privilege-drop function. Every process that runs the attempt's code, or acts for it (the IPC
cleaner), or runs a test program (the tester), goes through `drop_privileges` before doing so.

Run as root (the container's runner, or the local sandbox started as root): the process takes `uid` as its
real, effective and saved uid and gid, no supplementary groups; leaving uid 0 this way clears every
capability (no SECBIT_KEEP_CAPS is set anywhere), which is then checked from /proc/self/status. Not root
(the weaker local sandbox): the uid cannot change; only no_new_privs is set.
"""

import ctypes
import os

from . import osio

PR_SET_DUMPABLE = 4
PR_SET_NO_NEW_PRIVS = 38

_libc = None


def _prctl(option, arg):
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    return _libc.prctl(option, arg, 0, 0, 0)


class PrivilegeError(Exception):
    """The drop did not give the state it promised (never run the attempt then)."""


def capabilities():
    """(CapPrm, CapEff, CapAmb) of this process, as ints."""
    status = osio.read_file("/proc/self/status")  # os-level: this runs in every attempt process, before its code
    out = []
    for key in (b"\nCapPrm:", b"\nCapEff:", b"\nCapAmb:"):
        value = osio.status_field(status, key, 16)
        if value is None:
            raise PrivilegeError("cannot read %s from /proc/self/status" % key.decode().strip())
        out.append(value)
    return tuple(out)


def drop_privileges(uid, dumpable=False):
    """Become `uid` (gid `uid`, no groups) with no capabilities and no_new_privs; `uid` None: stay as we are
    (not root) but set no_new_privs. `dumpable` False keeps the process non-dumpable (nothing of another uid,
    and no process of the same uid, may ptrace it or open its /proc files). Raises PrivilegeError."""
    if uid is not None:
        if uid <= 0:
            raise PrivilegeError("refusing to run an attempt as uid %r" % (uid,))
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)
    if _prctl(PR_SET_NO_NEW_PRIVS, 1) != 0:
        raise PrivilegeError("prctl(PR_SET_NO_NEW_PRIVS) failed")
    _prctl(PR_SET_DUMPABLE, 1 if dumpable else 0)
    if uid is None:
        return
    if os.getresuid() != (uid, uid, uid) or os.getresgid() != (uid, uid, uid) or os.getgroups():
        raise PrivilegeError("the uid / gid change did not take")
    if any(capabilities()):
        raise PrivilegeError("capabilities survived the drop to uid %d" % uid)
    try:
        os.setuid(0)
    except OSError:
        return
    raise PrivilegeError("uid %d could become root again" % uid)
