"""Shared helpers for the sandbox tests: tiny problems built in code, and the Docker availability check."""

from __future__ import annotations

import functools
import json
from typing import Any

import pytest

from sdpo_ttt.problem import Problem, parse_problem
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
def docker_unavailable_reason(image: str = DEFAULT_IMAGE) -> str | None:
    """None when a Docker daemon answers and the sandbox image exists, else why not (for pytest.skip)."""
    try:
        import docker

        client = docker.from_env(timeout=10)
        client.ping()
    except Exception as e:  # noqa: BLE001 - any failure means no usable daemon
        return f"no Docker daemon answers ({type(e).__name__}: {e}); start dockerd to run these tests"
    try:
        client.images.get(image)
    except Exception:  # noqa: BLE001
        return f"the sandbox image {image} is missing; build it with `sdpo-ttt sandbox build --offline`"
    finally:
        client.close()
    return None


def require_docker() -> None:
    reason = docker_unavailable_reason()
    if reason:
        pytest.skip(reason)
