"""Where the server's training jobs live: a job backend, chosen once per server process.

* LocalBackend (the default): the in-process JobRegistry of core.training.registry, its workers processes of this
  machine and its run store on local disk. Choosing it imports nothing of Ray.
* RayBackend (core.training.ray_backend, when $RDL_RAY_ADDRESS is set): the same JobRegistry, but held by a detached
  named actor on a Ray cluster (core.training.ray_service), so every app replica that connects to the cluster sees
  the same jobs, owners, queue and limits; its workers are Ray tasks on any node; the run store ($RDL_RUNS_DIR) is a
  path every replica and node mounts.

Both answer the JobBackend protocol below, which is what the pages use (ui.session.get_registry). A job they return
answers the JobView protocol (core.training.job.Job locally, a proxy of the actor's job with Ray).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol, runtime_checkable

from core.training import run_store
from core.training.config import TrainConfig
from core.training.registry import JobRegistry
from core.training.stats import Snapshot

RAY_ADDRESS_ENV = "RDL_RAY_ADDRESS"  # e.g. "ray-head:6379" (a node's GCS address) or "ray://ray-head:10001"


@runtime_checkable
class JobView(Protocol):
    """What the pages read of one job."""

    job_id: str
    config: TrainConfig
    data_kind: str

    @property
    def checkpoint(self) -> Path: ...

    def snapshot(self) -> Snapshot: ...


@runtime_checkable
class JobBackend(Protocol):
    """The requests of core.training.registry.JobRegistry that the app makes (see there for their meaning)."""

    def submit(self, owner: str, config: TrainConfig, max_seconds: float | None = None) -> str: ...

    def get(self, job_id: str) -> JobView | None: ...

    def jobs_for(self, owner: str) -> list[JobView]: ...

    def stop(self, job_id: str, message: str | None = None) -> None: ...

    def request_save(self, job_id: str) -> None: ...

    def resume(self, job_id: str, total_steps: int | None = None, max_seconds: float | None = None) -> None: ...

    def discard(self, job_id: str) -> None: ...

    def heartbeat(self, owner: str) -> None: ...

    def mark_used(self, owner: str, job_id: str) -> None: ...

    def evictions_for(self, owner: str) -> list[run_store.Eviction]: ...

    def kept_until(self, job_id: str) -> float: ...

    def close(self, stop_jobs_within: float | None = None) -> None: ...


class LocalBackend(JobRegistry):
    """Today's registry, unchanged: jobs in worker processes of this machine (core.training.registry)."""


def ray_address(env=None, name: str = RAY_ADDRESS_ENV) -> str | None:
    """$RDL_RAY_ADDRESS, stripped (None when unset or blank). Checked: printable, no spaces, at most 300 characters;
    `name` is what the error message calls it (the CLI's --ray-address)."""
    text = (os.environ if env is None else env).get(RAY_ADDRESS_ENV, "").strip()
    if not text:
        return None
    if len(text) > 300 or not text.isprintable() or any(c.isspace() for c in text):
        raise ValueError(f"{name}={text[:60]!r} is not allowed; expected an address like ray-head:6379")
    return text


def backend_from_env(env=None, **options) -> JobBackend:
    """The backend this server uses: a RayBackend connected to $RDL_RAY_ADDRESS when it is set (Ray is imported
    only then), else a LocalBackend. `options` go to the backend (the local one takes JobRegistry's arguments:
    monitor_interval, heartbeat_timeout, ...; the Ray one heartbeat_timeout)."""
    address = ray_address(env)
    if address is None:
        return LocalBackend(**options)
    from core.training.ray_backend import RayBackend

    return RayBackend(address, heartbeat_timeout=options.get("heartbeat_timeout"))
