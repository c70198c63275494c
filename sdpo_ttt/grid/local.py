"""The local executor of `batch`: jobs one after another in this process, or in N worker processes (CPU)."""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing as mp
import os
import queue
import signal
import socket
import time
from typing import Any

from sdpo_ttt.grid.job import Record, Todo, execute_job
from sdpo_ttt.grid.cells import SharedPolicy
from sdpo_ttt.errors import UserError


def refuse_gpu_workers(workers: int, device: str) -> None:
    """Several worker processes would share one GPU (each loading the model, contending for its memory): refused."""
    if workers <= 1:
        return
    from sdpo_ttt.policy.device import resolve_device

    if resolve_device(device).type == "cuda":
        raise UserError("--workers > 1 on a GPU: one GPU runs one run at a time",
                        "drop --workers (runs then go one after another), or use batch --executor ray on several GPUs")


def refuse_inprocess_vllm(backend: str, environ: dict[str, str] | None = None) -> None:
    """vLLM with VLLM_ENABLE_V1_MULTIPROCESSING=0 runs its engine in this process and does not give its GPU memory back
    on shutdown, so the grid's next run (same process) would load a second engine beside it: refused."""
    env = os.environ if environ is None else environ
    if backend == "vllm" and env.get("VLLM_ENABLE_V1_MULTIPROCESSING") == "0":
        raise UserError("VLLM_ENABLE_V1_MULTIPROCESSING=0 with --backend vllm in a grid: an in-process engine is not released "
                        "between runs, so the next run would not fit on the GPU",
                        "unset VLLM_ENABLE_V1_MULTIPROCESSING (the engine then runs in its own process and is shut down after each run)")


def run_local(todo: Todo, record: Record, *, workers: int = 1, announce=None, mp_context: str = "spawn") -> None:
    """workers == 1: one job after another in this process (sharing one base model between base-model runs);
    workers > 1: that many worker processes pulling jobs in order (CPU only: one GPU runs one job at a time),
    each job's torch threads its share of the free CPUs (threads.py)."""
    if not todo:
        return
    if workers <= 1:
        models = SharedPolicy()
        try:
            for job, state, used in todo:
                record(job, {"state": "running", "pid": os.getpid(), "host": socket.gethostname(), "executor": "local"})
                rec = execute_job(job.cell, state, used, models, announce, workers=1)
                record(job, rec)
                if rec["state"] == "interrupted":
                    raise KeyboardInterrupt
        finally:
            models.release()
        return
    _run_pool(todo, record, workers=workers, mp_context=mp_context)


def _worker_main(tasks, events, workers: int) -> None:
    """A local worker process: pull (job index, cell, state, used), send ("running"|"result", index, payload)."""
    _die_with_parent()
    interrupted = []

    def on_sigint(signum, frame):  # the first SIGINT interrupts the job; repeats (tty + driver) do not cut cleanup short
        if not interrupted:
            interrupted.append(1)
            raise KeyboardInterrupt

    signal.signal(signal.SIGINT, on_sigint)
    models = SharedPolicy()
    while not interrupted:
        item = tasks.get()
        if item is None:
            break
        index, cell, state, used = item
        events.put(("running", index, {"pid": os.getpid(), "host": socket.gethostname(), "executor": "local"}))
        rec = execute_job(cell, state, used, models, workers=workers)
        events.put(("result", index, rec))
        if rec["state"] == "interrupted":
            break
    models.release()


def _die_with_parent() -> None:
    """Linux: SIGINT this worker when the driver dies (even by SIGKILL), so no orphan keeps running jobs."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGINT)  # PR_SET_PDEATHSIG


def _run_pool(todo: Todo, record: Record, *, workers: int, mp_context: str) -> None:
    ctx = mp.get_context(mp_context)
    tasks, events = ctx.Queue(), ctx.Queue()
    for i, (job, state, used) in enumerate(todo):
        tasks.put((i, job.cell, state, used))
    n = min(workers, len(todo))
    for _ in range(n):
        tasks.put(None)
    procs = [ctx.Process(target=_worker_main, args=(tasks, events, n), daemon=True) for _ in range(n)]
    for p in procs:
        p.start()
    running: dict[int, int] = {}  # job index -> worker pid
    finished: set[int] = set()

    def handle(kind: str, index: int, payload: dict[str, Any]) -> None:
        job = todo[index][0]
        if kind == "running":
            running[index] = payload["pid"]
            record(job, {"state": "running", **payload})
        else:
            running.pop(index, None)
            finished.add(index)
            record(job, payload)

    def drain(timeout: float) -> bool:
        try:
            handle(*events.get(timeout=timeout))
            return True
        except queue.Empty:
            return False

    try:
        while len(finished) < len(todo):
            if drain(0.5):
                continue
            dead = {p.pid: p.exitcode for p in procs if not p.is_alive()}
            for index, pid in list(running.items()):
                if pid in dead and not drain(0.5):  # its result may still be in the pipe
                    running.pop(index, None)
                    finished.add(index)
                    record(todo[index][0], {"state": "failed", "error": f"worker process {pid} died (exit code {dead[pid]}) while running this job"})
            if all(not p.is_alive() for p in procs):
                while drain(0.2):
                    pass
                for i in range(len(todo)):  # workers gone with jobs never handed out: restart the pool
                    if i not in finished and i not in running:
                        return _run_pool([t for k, t in enumerate(todo) if k not in finished], record, workers=workers,
                                         mp_context=mp_context)
                break
    except KeyboardInterrupt:
        for p in procs:
            if p.is_alive():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(p.pid, signal.SIGINT)
        deadline = time.monotonic() + 120
        while any(p.is_alive() for p in procs) and time.monotonic() < deadline:
            drain(0.2)
        while drain(0.1):
            pass
        for p in procs:
            if p.is_alive():
                p.kill()
        raise  # run_batch marks the jobs that never reported back as interrupted
    finally:
        for p in procs:
            p.join(timeout=5)
