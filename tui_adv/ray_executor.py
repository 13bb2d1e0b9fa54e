"""Steps and runs on a Ray cluster: the :class:`~tui_adv.executor.Executor` interface over Ray tasks.

Each step is one Ray task that calls :func:`tui_adv.executor.run_task` on the node it lands on: the
same headless Runner as ``adv-tui run --headless``, writing to the catalog URL the task carries, so a
cluster needs a catalog every node reaches (PostgreSQL; a SQLite file only on one machine or a shared
disk that locks) and checkpoints on a directory every node reaches (``--checkpoints`` /
``$ADV_TUI_CHECKPOINTS``, passed to the task). A task asks for ``num_gpus=1`` when its device is CUDA
(or ``auto`` on a cluster that has GPUs), one CPU otherwise; Ray then gives the worker one torch thread
per CPU asked for, like the local pool's workers, so a point run on Ray and in ``--jobs 2`` locally
gives the same numbers.

Tasks are not retried by Ray (``max_retries=0``): a worker killed mid-run leaves its row ``running``
with a dead pid / stale heartbeat, which liveness marks ``interrupted``; ``adv-tui resume ID
--executor ray`` continues it from its checkpoint on any node. ``stop()`` cancels the running tasks
(``ray.cancel``: a KeyboardInterrupt in the task, which the run records as ``cancelled``).

``ray`` is an optional dependency (the ``cluster`` extra); without it, asking for this executor is one
line saying how to install it.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

from .choices import RunStatus
from .errors import UserError
from .executor import StepOutcome, StepTask


def _ray():  # noqa: ANN202
    try:
        import ray
    except ImportError:
        raise UserError("--executor ray needs Ray: pip install 'adv-tui[cluster]' (or pip install ray)") from None
    return ray


# the driver's settings a worker's run reads from its environment: the checkpoint directory, the
# checkpoint interval and the CUDA-graph mode (checked on the driver before anything is submitted)
FORWARDED_ENV = ("ADV_TUI_CHECKPOINTS", "ADV_TUI_CHECKPOINT_S", "ADV_TUI_CUDA_GRAPH")


def _remote_step(task: StepTask, env: dict[str, str]) -> StepOutcome:
    """What a Ray worker runs: the step, with the driver's settings (:data:`FORWARDED_ENV`)."""
    os.environ.update(env)
    from .executor import run_task

    return run_task(task)


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def _check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """One line, at once, for a Ray address nothing answers at (``host:port`` or ``ray://host:port``)."""
    import socket

    hostport = address.split("://", 1)[-1].rstrip("/")
    host, sep, port = hostport.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise UserError(f"--ray-address {address!r}: expected HOST:PORT (the head node's GCS port, 6379 by default), ray://HOST:PORT or auto")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
    except OSError as e:
        raise UserError(f"cannot reach the Ray cluster at {address}: {e.strerror or type(e).__name__} (is `ray start --head` running there?)") from None


def _for_workers(task: StepTask) -> StepTask:
    """The task as a Ray worker must read it, since a worker has neither this process's working
    directory nor necessarily its environment: a relative SQLite path made absolute, and the data root
    this process resolves (``--data-dir`` > ``$ADV_TUI_DATA`` > the user cache), absolute. Every node
    needs the files at that path (a shared mount, or a copy)."""
    from .core.datasets import resolve_data_root

    db_url, prefix = task.db_url, "sqlite:///"
    if db_url.startswith(prefix) and not db_url.startswith(prefix + "/") and ":memory:" not in db_url:
        db_url = prefix + os.path.abspath(db_url[len(prefix):])
    return dataclasses.replace(task, db_url=db_url, data_dir=str(resolve_data_root(task.data_dir).absolute()))


class _RayHandle:
    def __init__(self, ray, key: str, ref) -> None:  # noqa: ANN001
        self.ray, self.key, self.ref = ray, key, ref

    def done(self) -> bool:
        ready, _ = self.ray.wait([self.ref], timeout=0)
        return bool(ready)

    def result(self) -> StepOutcome:
        try:
            return self.ray.get(self.ref)
        except self.ray.exceptions.TaskCancelledError:
            return StepOutcome(self.key, None, RunStatus.CANCELLED, 0.0, "cancelled before it started")
        except self.ray.exceptions.RayError as e:  # the worker died (killed, out of memory, node lost)
            return StepOutcome(self.key, None, RunStatus.INTERRUPTED, 0.0, f"the Ray worker running the step died: {type(e).__name__}: {_first_line(e)}")


class RayExecutor:
    """Steps as Ray tasks on the cluster at ``address`` (``None``: a Ray already initialised in this
    process, else a local one started here and shut down at :meth:`shutdown`)."""

    def __init__(self, address: str | None = None, *, checkpoints: str | None = None, capacity: int | None = None) -> None:
        ray = self.ray = _ray()
        self._started = False
        if not ray.is_initialized():
            if address and address != "auto":
                _check_reachable(address)  # ray.init retries an unreachable address for minutes
            try:
                ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False)
            except Exception as e:  # noqa: BLE001 - an unreachable cluster, a bad address: one line
                where = f"the Ray cluster at {address}" if address else "a local Ray instance"
                hint = ("; a cluster with token authentication also needs RAY_AUTH_MODE=token here, and its token "
                        "(ray get-auth-token on the head) in ~/.ray/auth_token or $RAY_AUTH_TOKEN") if address and os.environ.get("RAY_AUTH_MODE") != "token" else ""
                raise UserError(f"cannot reach {where}: {_first_line(e)}{hint}") from None
            self._started = True
        res = ray.cluster_resources()
        self.gpus = int(res.get("GPU", 0))
        self.capacity = capacity or max(1, int(res.get("CPU", 1)) + self.gpus)
        self.checkpoints = checkpoints if checkpoints is not None else os.environ.get("ADV_TUI_CHECKPOINTS")
        self.env = {k: os.environ[k] for k in FORWARDED_ENV if os.environ.get(k)}
        if self.checkpoints:
            self.env["ADV_TUI_CHECKPOINTS"] = self.checkpoints
        self._remote = ray.remote(max_retries=0)(_remote_step)
        self._refs: list[Any] = []

    def resources(self, device: str | None) -> dict[str, float]:
        """What one task asks Ray for: a GPU for a CUDA run (and ``auto`` where the cluster has one)."""
        d = (device or "auto").lower()
        if d.startswith("cuda") or (d == "auto" and self.gpus > 0):
            return {"num_gpus": 1, "num_cpus": 1}
        return {"num_cpus": 1}

    def submit(self, task: StepTask) -> _RayHandle:
        task = _for_workers(task)
        ref = self._remote.options(**self.resources(task.device), name=f"adv-tui:{task.key}").remote(task, self.env)
        self._refs.append(ref)
        return _RayHandle(self.ray, task.key, ref)

    def poll_events(self) -> list[dict[str, Any]]:
        return []  # progress lives in the shared catalog (the dashboard follows it there)

    def stop(self) -> None:
        _ready, pending = self.ray.wait(self._refs, num_returns=len(self._refs), timeout=0) if self._refs else ([], [])
        for ref in pending:
            try:
                self.ray.cancel(ref, force=False)
            except Exception:  # noqa: BLE001 - finished meanwhile
                pass

    def shutdown(self) -> None:
        if self._started:
            self.ray.shutdown()
            self._started = False
