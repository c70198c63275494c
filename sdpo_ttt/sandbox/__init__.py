"""The verifier's sandbox: one interface, two backends (Docker pool, local subprocesses).

    with open_sandbox("auto", workers=2) as sb:
        verdicts = sb.judge_many(problem, codes)   # concurrent over the pool, input order

Backends share the in-sandbox code (box/: runner, fork server, harness, tester, privilege drop, clean-up)
and the host-side protocol (protocol.py), so they judge identically; they differ only in isolation
(sandbox/README.md says what each guarantees). `judge_many` never raises for an attempt: whatever fails
in the verifier is that attempt's sandbox_error.
"""

from __future__ import annotations

import sys
from typing import Callable, Protocol, runtime_checkable

from sdpo_ttt.errors import SandboxUnavailable
from sdpo_ttt.problem.schema import Problem
from sdpo_ttt.sandbox.verdict import Verdict

DEFAULT_IMAGE = "sdpo-ttt-sandbox:latest"
KINDS = ("auto", "docker", "local")


@runtime_checkable
class Sandbox(Protocol):
    name: str  # "docker" or "local"

    def judge(self, problem: Problem, code: str) -> Verdict: ...

    def judge_many(self, problem: Problem, codes: list[str]) -> list[Verdict]: ...

    def close(self) -> None: ...

    def __enter__(self) -> "Sandbox": ...

    def __exit__(self, *exc: object) -> None: ...


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def open_sandbox(kind: str = "auto", *, workers: int = 2, image: str = DEFAULT_IMAGE,
                 announce: Callable[[str], None] | None = None) -> Sandbox:
    """Open a sandbox. "auto": Docker when a daemon answers and the image exists, else the local one,
    announced as weaker isolation with the fix. "docker": raise SandboxUnavailable (with the fix) if
    impossible. "local": host subprocesses with rlimits."""
    from sdpo_ttt.sandbox.docker_backend import DockerSandbox
    from sdpo_ttt.sandbox.docker_container import docker_fix, docker_status
    from sdpo_ttt.sandbox.local import WEAKER_ISOLATION, LocalSandbox

    say = announce or _stderr
    if kind not in KINDS:
        raise SandboxUnavailable(f"unknown sandbox {kind!r}", f"use one of: {', '.join(KINDS)}")
    if kind == "local":
        return LocalSandbox(workers)
    why = docker_status(image)
    if why is None:
        return DockerSandbox(workers, image=image, announce=say)
    if kind == "docker":
        raise SandboxUnavailable(f"the Docker sandbox is unavailable: {why}", docker_fix(image))
    say(f"warning: {WEAKER_ISOLATION}, because {why}. For full isolation: {docker_fix(image)}.")
    return LocalSandbox(workers)


__all__ = ["DEFAULT_IMAGE", "KINDS", "Sandbox", "open_sandbox"]
