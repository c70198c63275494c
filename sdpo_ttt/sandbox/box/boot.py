"""Entry point in the sandbox: `python3 -I -S -c <this source> [--serve]`.

Reads one frame from fd 0 (a length line, then a JSON object {module name: source text}, the `box`
package as sent by the host), installs a finder that serves those modules as `box.<name>`, then runs
`box.runner.main`. Nothing is read from the sandbox's disk but the interpreter and its stdlib, and the
frame is read with os.read of exactly its bytes (the request that follows stays unread in the pipe).
"""

import importlib.util
import json
import os
import sys


class BundleFinder(object):
    def __init__(self, sources):
        self.sources = sources

    def _short(self, name):
        if name == "box":
            return "__init__"
        return name[4:] if name.startswith("box.") else None

    def find_spec(self, name, path=None, target=None):
        short = self._short(name)
        if short is None or short not in self.sources:
            return None
        return importlib.util.spec_from_loader(name, self, is_package=(name == "box"))

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        short = self._short(module.__name__)
        exec(compile(self.sources[short], "<box>/%s.py" % short, "exec"), module.__dict__)


def _read_bundle(fd=0):
    header = b""
    while not header.endswith(b"\n"):
        c = os.read(fd, 1)
        if not c or len(header) > 12:
            raise SystemExit("boot: no code bundle on stdin")
        header += c
    n = int(header)
    parts, got = [], 0
    while got < n:
        chunk = os.read(fd, n - got)
        if not chunk:
            raise SystemExit("boot: truncated code bundle")
        parts.append(chunk)
        got += len(chunk)
    return json.loads(b"".join(parts).decode("utf-8"))


def main():
    sys.meta_path.insert(0, BundleFinder(_read_bundle()))
    from box import runner

    runner.main(sys.argv[1:])


if __name__ == "__main__":
    main()
