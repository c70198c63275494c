"""Shared helpers for the sandbox tests: tiny problems built in code, and the Docker availability check."""

from __future__ import annotations

import functools
import json
from typing import Any

import pytest

from sdpo_ttt.problem.schema import Problem, parse_problem
from sdpo_ttt.sandbox import DEFAULT_IMAGE


def stdio_problem(tests: list[tuple[str, str]] | None = None, *, time_s: float = 1.0, memory_mb: int = 128,
                  mode: str = "tokens", hidden: int = 0) -> Problem:
    """An a+b style stdio problem: each test is (input, expected output); the last `hidden` are not public."""
    tests = tests or [("1 2\n", "3\n"), ("5 7\n", "12\n")]
    n = len(tests)
    return parse_problem({
        "schema": 1, "id": "t-stdio", "title": "t", "statement": "Print the sum of two integers.",
        "kind": "stdio",
        "tests": [{"input": i, "output": o, "public": k < n - hidden} for k, (i, o) in enumerate(tests)],
        "compare": {"mode": mode, "float_tol": 1e-6},
        "limits": {"time_s": time_s, "memory_mb": memory_mb},
    })


def function_problem(tests: list[tuple[list[Any], Any]] | None = None, *, name: str = "add", time_s: float = 1.0,
                     memory_mb: int = 128) -> Problem:
    tests = tests or [([1, 2], 3), ([5, 7], 12)]
    return parse_problem({
        "schema": 1, "id": "t-func", "title": "t", "statement": "Return a + b.", "kind": "function",
        "function": {"name": name, "starter_code": f"def {name}(a, b): ..."},
        "tests": [{"input": json.dumps(a), "output": json.dumps(o)} for a, o in tests],
        "limits": {"time_s": time_s, "memory_mb": memory_mb},
    })


ADD_STDIO = "a, b = map(int, input().split())\nprint(a + b)\n"
ADD_FUNC = "def add(a, b):\n    return a + b\n"


@functools.lru_cache(maxsize=None)
def require_docker() -> None:
    """Skip, saying why and the fix, unless the Docker backend can be used (daemon answers, image built)."""
    from sdpo_ttt.sandbox.docker_container import docker_fix, docker_status

    reason = docker_status(DEFAULT_IMAGE)
    if reason:
        pytest.skip(f"{reason}; {docker_fix(DEFAULT_IMAGE)}")


# Hostile attempts: (id, problem factory, code, allowed outcomes). Each must end in one of the outcomes,
# leave nothing behind, and not affect the next attempt. Problems use small limits to keep tests fast.
def _fast_stdio() -> Problem:
    return stdio_problem([("1 2\n", "3\n")], time_s=0.5, memory_mb=128)


def _fast_func() -> Problem:
    return function_problem([([1, 2], 3)], time_s=0.5, memory_mb=128)


HOSTILE: list[tuple[str, Any, str, set[str]]] = [
    ("memory_bomb", _fast_stdio, "x = []\nwhile True:\n    x.append(bytearray(5 * 10**7))\n", {"memory_limit"}),
    ("print_forever", _fast_stdio, "while True:\n    print('spam' * 100)\n", {"output_limit"}),
    ("huge_file", _fast_stdio,
     "with open('big.bin', 'wb') as f:\n    while True:\n        f.write(b'x' * 10**6)\n", {"output_limit"}),
    ("sigalrm_ignored_loop", _fast_stdio,
     "import signal\nsignal.signal(signal.SIGALRM, signal.SIG_IGN)\nsignal.signal(signal.SIGXCPU, signal.SIG_IGN)\n"
     "while True:\n    pass\n", {"time_limit"}),
    ("sleep_forever", _fast_stdio, "import time\ntime.sleep(10**6)\n", {"time_limit"}),
    ("read_shadow", _fast_stdio,
     "try:\n    open('/etc/shadow').read()\n    print('LEAKED')\nexcept OSError:\n    print(3)\n", {"passed"}),
    ("background_process_holding_stdout", _fast_stdio,
     "import os, time\nif os.fork() == 0:\n    os.setsid()\n    time.sleep(10**6)\nprint(3)\n", {"passed"}),
    ("detached_subprocess", _fast_stdio,
     "import subprocess, sys\nsubprocess.Popen([sys.executable, '-c', 'import time; time.sleep(10**6)'],"
     " start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\nprint(3)\n", {"passed"}),
    ("dunder_stdout_forgery", _fast_func,
     "import sys\ndef add(a, b):\n    sys.__stdout__.write('3\\n'); sys.__stdout__.flush()\n    return 0\n",
     {"wrong_answer"}),
    ("exit_before_output", _fast_stdio, "exit(0)\nprint(3)\n", {"wrong_answer"}),
    ("exit_in_function", _fast_func, "import sys\ndef add(a, b):\n    sys.exit(0)\n", {"runtime_error"}),
    ("always_true_eq", _fast_func,
     "class Liar:\n    def __eq__(self, other):\n        return True\n    def __ne__(self, other):\n        return False\n"
     "def add(a, b):\n    return Liar()\n", {"wrong_answer"}),
    ("always_true_eq_int_subclass", _fast_func,
     "class Liar(int):\n    def __eq__(self, other):\n        return True\n    __hash__ = int.__hash__\n"
     "def add(a, b):\n    return Liar(0)\n", {"wrong_answer"}),
    ("binary_garbage", _fast_stdio,
     "import os, sys\nsys.stdout.buffer.write(bytes(range(256)) * 40 + os.urandom(5000))\n", {"wrong_answer"}),
    ("kill_the_fork_server", lambda: stdio_problem([("1 2\n", "3\n"), ("2 2\n", "4\n")], time_s=0.5),
     # its parent is the fork server: under a uid of its own the attempt may not signal it (EPERM); in the
     # local sandbox without root it may, and the runner then charges the test that was running
     "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\na, b = map(int, input().split())\nprint(a + b)\n",
     {"runtime_error"}),
    ("ten_mb_line", _fast_stdio, "import sys\nsys.stdout.write('7' * 10_000_000)\n", {"output_limit"}),
]

FORK_BOMB = ("fork_bomb", _fast_stdio,
             "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n", {"time_limit"})
