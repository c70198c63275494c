"""The Ray executor of `batch`: each job one Ray task (one GPU when the cluster has GPUs, else CPU cores).

The tasks write their run directories under --out, which must therefore be a path every node sees (shared
storage); the driver alone writes the manifest from the results the tasks return. Every node needs sdpo-ttt
installed in the same environment (`pip install 'sdpo-ttt[ray]'`). Without --address a Ray instance is started on
this machine, bound to 127.0.0.1; `--address auto` joins a running cluster, `ray://host:10001` one through Ray Client.
Ctrl-C cancels the tasks (KeyboardInterrupt inside them: runs are marked interrupted and the sandbox removes its
containers) before the driver exits.
"""

from __future__ import annotations

import os
import socket
import time
from typing import Any

from sdpo_ttt.grid.job import Record, Todo
from sdpo_ttt.errors import UserError

CANCEL_GRACE_S = 60.0


def _import_ray():
    try:
        import ray
    except ImportError:
        raise UserError("the ray executor needs Ray, which is not installed", "pip install 'sdpo-ttt[ray]'  (or use --executor local)") from None
    return ray


def connect(address: str | None):
    """Use the Ray already initialised in this process, or join `address`, or start a local one on 127.0.0.1."""
    ray = _import_ray()
    if ray.is_initialized():
        return ray
    try:
        if address:
            ray.init(address=address, log_to_driver=False)
        else:  # this machine only: loopback, no dashboard, no usage statistics sent out
            os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
            ray.init(include_dashboard=False, log_to_driver=False, _node_ip_address="127.0.0.1")
    except Exception as e:  # noqa: BLE001 - connection errors of many kinds
        raise UserError(f"cannot start or reach Ray ({address or 'local'}): {e}",
                        "check --address (auto for a cluster started with `ray start`, or ray://HEAD:10001)") from None
    return ray


def _task(cell, state: str, used: int, cpus: int | None) -> dict[str, Any]:
    """Runs on a Ray worker: the same job function as the local executor (threads: the task's CPUs)."""
    from sdpo_ttt.grid.job import execute_job

    rec = execute_job(cell, state, used, threads_hint=cpus)
    rec.setdefault("host", socket.gethostname())
    return rec


def run_ray(todo: Todo, record: Record, *, address: str | None = None, cpus_per_job: float = 1) -> None:
    if not todo:
        return
    ray = connect(address)
    gpus = ray.cluster_resources().get("GPU", 0)
    refs: dict[Any, Any] = {}
    task = ray.remote(max_retries=0)(_task)  # a crashed job is recorded as failed, not silently run twice
    for job, state, used in todo:
        use_gpu = gpus >= 1 and job.cell.config.policy.device != "cpu"
        opts = {"num_gpus": 1, "num_cpus": cpus_per_job} if use_gpu else {"num_cpus": cpus_per_job}
        ref = task.options(**opts).remote(job.cell, state, used, None if use_gpu else max(1, int(cpus_per_job)))
        refs[ref] = job
        record(job, {"state": "running", "executor": "ray", "submitted": True, "resources": opts})
    try:
        while refs:
            ready, _ = ray.wait(list(refs), num_returns=1, timeout=1.0)
            for ref in ready:
                record(refs.pop(ref), _result(ray, ref))
    except KeyboardInterrupt:
        for ref in refs:
            try:
                ray.cancel(ref, force=False)  # KeyboardInterrupt in the task: the run writes its interrupted summary
            except Exception:  # noqa: BLE001 - already finished
                pass
        deadline = time.monotonic() + CANCEL_GRACE_S
        while refs and time.monotonic() < deadline:
            ready, _ = ray.wait(list(refs), num_returns=len(refs), timeout=1.0)
            for ref in ready:
                rec = _result(ray, ref)
                if rec["state"] == "failed" and "Cancel" in (rec.get("error") or ""):
                    rec = {"state": "interrupted", "error": "cancelled by the user"}
                record(refs.pop(ref), rec)
        raise  # run_batch marks the rest interrupted


def _result(ray, ref) -> dict[str, Any]:
    try:
        return ray.get(ref)
    except Exception as e:  # noqa: BLE001 - task crashed, worker died, node lost, cancelled
        return {"state": "failed", "error": f"{type(e).__name__}: {str(e)[-2000:]}", "pid": os.getpid()}
