"""Whole-file reads, whole-buffer writes and /proc status fields, with os-level calls only.

No buffered file objects: these run in every test process (before the attempt's code) and in every
process sweep, where each object built means copy-on-write page faults after the fork server's fork.
"""

import os


def read_file(path):
    """Every byte of the file at `path`."""
    fd = os.open(path, os.O_RDONLY)
    try:
        parts = []
        while True:
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                return b"".join(parts)
            parts.append(chunk)
    finally:
        os.close(fd)


def write_all(fd, data):
    """Write all of `data` to `fd` (os.write may write less than asked)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def status_field(status, key, base=10):
    """The first number after `key` (e.g. b"\\nUid:", the real uid) in a /proc/<pid>/status text, or None."""
    k = status.find(key)
    if k < 0:
        return None
    return int(status[k + len(key):].split(None, 1)[0], base)
