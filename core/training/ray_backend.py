"""The app's side of the Ray job backend: a JobBackend (core.training.backends) whose registry is the cluster's
detached actor (core.training.ray_service). Every app replica connected to the same cluster talks to the same
actor, so a browser (its owner id, from its cookie) sees and controls the same jobs on any replica, and nobody
else's. Jobs come back as RemoteJob proxies: their id and config, their checkpoint path on the shared run store,
and `snapshot()` (the actor's progress; the preview is read from the shared run store here, not sent through Ray).

Requests the registry refuses come back as the same exceptions as locally (JobRefused, ValueError, KeyError),
with their one-line message.
"""

from __future__ import annotations

import time
from pathlib import Path

import ray

from core.training import run_store
from core.training.config import TrainConfig
from core.training.job import newer_preview
from core.training.registry import JobRefused
from core.training.stats import Preview, Snapshot

ERRORS = {"JobRefused": JobRefused, "ValueError": ValueError, "KeyError": KeyError}
CALL_TIMEOUT_SECONDS = 60.0


class RemoteJob:
    """One job of the cluster's registry as a page reads it (core.training.backends.JobView)."""

    def __init__(self, backend: RayBackend, view: dict):
        self._backend = backend
        self.job_id: str = view["job_id"]
        self.config = TrainConfig.from_json(view["config"])
        self.data_kind = self.config.data_kind
        self.folder = Path(view["folder"])
        self._progress = view["progress"]
        self._preview = (None, None)

    @property
    def checkpoint(self) -> Path:
        return self.folder / run_store.CHECKPOINT

    @property
    def state(self):
        return Snapshot.from_json(self._progress).state

    def snapshot(self) -> Snapshot:
        """The job's progress now (one request to the actor), with the newest preview from the shared run store."""
        self._progress = self._backend._call("snapshot", self.job_id)
        return Snapshot.from_json(self._progress, preview=self.preview())

    def preview(self) -> Preview | None:
        self._preview = newer_preview(self.folder, self._preview)
        return self._preview[1]


class RayBackend:
    """A JobBackend on a Ray cluster: connects to `address` (ray.init; a node's GCS address "host:6379" or a Ray
    client address "ray://host:10001") and finds or starts the course's registry actor."""

    def __init__(self, address: str, heartbeat_timeout: float | None = None):
        from core.training import ray_service

        if not ray.is_initialized():
            ray.init(address=address, namespace=ray_service.NAMESPACE, log_to_driver=False,
                     configure_logging=False)
        self.address = address
        self.actor = ray_service.service_actor(heartbeat_timeout=180.0 if heartbeat_timeout is None else heartbeat_timeout)

    def _call(self, method: str, *args):
        answer = ray.get(self.actor.call.remote(method, *args), timeout=CALL_TIMEOUT_SECONDS)
        if answer[0] == "ok":
            return answer[1]
        raise ERRORS.get(answer[1], ValueError)(answer[2])

    # ------------------------------------------------------------------------- the JobBackend protocol
    def submit(self, owner: str, config: TrainConfig, max_seconds: float | None = None) -> str:
        if not isinstance(config, TrainConfig):
            raise ValueError(f"config must be a TrainConfig, got {type(config).__name__}")
        return self._call("submit", owner, config.to_json(), max_seconds)

    def _job(self, job_id: str) -> RemoteJob:
        job = self.get(job_id)
        if job is None:
            raise KeyError(f"no job with id {job_id!r} (it may have been discarded)")
        return job

    def get(self, job_id: str) -> RemoteJob | None:
        view = self._call("get", job_id)
        return None if view is None else RemoteJob(self, view)

    def jobs_for(self, owner: str) -> list[RemoteJob]:
        return [RemoteJob(self, view) for view in self._call("jobs_for", owner)]

    def stop(self, job_id: str, message: str | None = None) -> None:
        self._call("stop", job_id, message)

    def request_save(self, job_id: str) -> None:
        self._call("request_save", job_id)

    def resume(self, job_id: str, total_steps: int | None = None, max_seconds: float | None = None) -> None:
        self._call("resume", job_id, total_steps, max_seconds)

    def discard(self, job_id: str) -> None:
        self._call("discard", job_id)

    def heartbeat(self, owner: str) -> None:
        self._call("heartbeat", owner)

    def mark_used(self, owner: str, job_id: str) -> None:
        self._call("mark_used", owner, job_id)

    def evictions_for(self, owner: str) -> list[run_store.Eviction]:
        return [run_store.Eviction.from_json(data) for data in self._call("evictions_for", owner)]

    def kept_until(self, job_id: str) -> float:
        return self._call("kept_until", job_id)

    def limits(self) -> dict:
        """The cluster registry's limits (core.training.limits.JobLimits fields)."""
        return self._call("limits")

    def close(self, stop_jobs_within: float | None = None) -> None:
        """Nothing to close: the registry and its jobs belong to the cluster, not to this replica (a replica that
        restarts loses nothing). stop_jobs_within is accepted for the protocol and ignored."""

    def wait(self, job_id: str, timeout: float, interval: float = 0.2):
        """Poll until the job is neither queued nor training, or `timeout` seconds pass; returns its state."""
        deadline = time.monotonic() + timeout
        while True:
            state = self._job(job_id).state
            if not state.active or time.monotonic() > deadline:
                return state
            time.sleep(interval)


def run_on_cluster(address: str, config: TrainConfig, out: Path, max_seconds: float | None = None, print_line=print,
                   progress_line=None, refresh_seconds: float = 1.0) -> int:
    """`python -m core.train --ray-address ADDRESS`: submit one run to the cluster's registry under a fresh owner id
    (nobody else's page shows it), print a progress line every `refresh_seconds` while it trains (heartbeats
    included, so the reaper leaves it alone), copy its checkpoint from the shared run store to `out`, and remove
    the job from the cluster. Ctrl-C stops it (it saves) and still copies. Returns the exit code: 0, 1 when the
    run failed or its checkpoint cannot be read here, 130 when interrupted."""
    import secrets
    import shutil

    owner = f"cli-{secrets.token_hex(16)}"
    try:
        backend = RayBackend(address)
        job_id = backend.submit(owner, config, max_seconds=max_seconds)
    except (ConnectionError, TimeoutError, ValueError) as error:  # no cluster there, or the registry refused the run
        print_line(f"error: {error}")
        return 2
    print_line(f"submitted job {job_id} to the Ray cluster at {address}")
    interrupted = False
    job = backend._job(job_id)
    try:
        while True:
            backend.heartbeat(owner)
            snapshot = job.snapshot()
            if snapshot.state == "queued":
                print_line(f"queued (position {snapshot.queue_position})")
            elif snapshot.state in ("running", "stopping") and progress_line is not None:
                print_line(progress_line(snapshot) + (f"  [{snapshot.message}]" if snapshot.message else ""))
            if not snapshot.state.active:
                break
            time.sleep(refresh_seconds)
    except KeyboardInterrupt:
        interrupted = True
        print_line("interrupted: stopping the job after its current step (it saves) ...")
        backend.stop(job_id, "interrupted from the keyboard")
        snapshot = backend.wait(job_id, 600.0) and job.snapshot()
    if snapshot.state == "failed" or not job.checkpoint.exists():
        why = snapshot.error or f"no checkpoint at {job.checkpoint} (is the run store mounted here at the same path?)"
        print_line(f"error: {why}; the job stays on the cluster as {job_id}")
        return 1
    shutil.copyfile(job.checkpoint, out)
    print_line(f"{snapshot.state} at step {snapshot.step}/{snapshot.total_steps}; saved {out}")
    backend.discard(job_id)
    return 130 if interrupted else 0
