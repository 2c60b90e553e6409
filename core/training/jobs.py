"""A process-wide registry of training jobs, shared by every browser session of the app.

Policy (what `submit` and `resume` do):
* At most `max_running_per_device` jobs train at once on each device ("cpu", "cuda"); a job submitted or
  resumed while the device is busy waits in a first-come-first-served queue and starts by itself when a
  slot frees (a job finishes, fails or stops).
* Requests are refused with `JobRefused` (a ValueError whose message says why and what to do) when
  the owner already has an active (queued, running or stopping) job, when `max_queued` jobs already wait,
  or when the owner already keeps `max_jobs_per_owner` jobs (discard one first).
* Jobs are never deleted behind the owner's back: finished, failed and stopped jobs keep their weights
  until `discard(job_id)`.
* Every browser session sends `heartbeat(owner)` while it is open. The reaper (`reap()`, called from
  submit/heartbeat/resume and, if `reaper_interval` is given, from a daemon thread) STOPS the running
  and queued jobs of owners silent for more than `heartbeat_timeout` seconds, so an abandoned tab cannot
  hold the CPU forever; their weights stay and the job can be resumed.

All methods are thread-safe. `clock` (default time.monotonic) is injectable so tests can fake time.
Lock order: the registry lock may be held while calling into a Trainer, never the other way round
(a Trainer calls back `_job_ended` without holding its own locks).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass

from core.training.config import TrainConfig
from core.training.stats import ACTIVE_STATES, Snapshot
from core.training.trainer import Trainer


class JobRefused(ValueError):
    """A submit/resume/discard request that the registry's policy does not allow (message says why)."""


@dataclass
class Job:
    """One registered training job: `trainer` does the work, `owner` is the browser session id."""

    job_id: str
    owner: str
    trainer: Trainer
    submitted: float  # clock() at submission

    @property
    def device(self) -> str:
        return self.trainer.device.type

    def snapshot(self) -> Snapshot:
        return self.trainer.snapshot()


class JobRegistry:
    """See the module docstring for the policy. `trainer_factory(config, on_exit=...)` builds the Trainer
    (default: `Trainer`; pass another to add e.g. a loss_hook)."""

    def __init__(self, max_running_per_device: int = 1, heartbeat_timeout: float = 180.0, max_queued: int = 8,
                 max_jobs_per_owner: int = 4, clock=time.monotonic, reaper_interval: float | None = None,
                 trainer_factory=Trainer):
        for name, value in (("max_running_per_device", max_running_per_device), ("max_queued", max_queued),
                            ("max_jobs_per_owner", max_jobs_per_owner)):
            if isinstance(value, bool) or not isinstance(value, int) or value < (0 if name == "max_queued" else 1):
                raise ValueError(f"{name}={value!r} is not allowed; expected a "
                                 f"{'non-negative' if name == 'max_queued' else 'positive'} integer")
        for name, value in (("heartbeat_timeout", heartbeat_timeout), ("reaper_interval", reaper_interval)):
            if value is None and name == "reaper_interval":
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ValueError(f"{name}={value!r} is not allowed; expected a positive number of seconds")
        self.max_running_per_device = max_running_per_device
        self.heartbeat_timeout = float(heartbeat_timeout)
        self.max_queued = max_queued
        self.max_jobs_per_owner = max_jobs_per_owner
        self.clock = clock
        self.trainer_factory = trainer_factory
        self._lock = threading.RLock()  # re-entrant: a job may end (and call back) while we hold it
        self._jobs: dict[str, Job] = {}
        self._queue: deque[str] = deque()  # job ids waiting for a slot, oldest first
        self._last_seen: dict[str, float] = {}
        self._closed = threading.Event()
        self._reaper = None
        if reaper_interval is not None:
            self._reaper = threading.Thread(target=self._reap_forever, args=(float(reaper_interval),),
                                            name="job-reaper", daemon=True)
            self._reaper.start()

    # ---------------------------------------------------------------------------------- requests
    def submit(self, owner: str, config: TrainConfig) -> str:
        """Register a job for `owner` and start it now, or queue it; returns its id. Raises JobRefused."""
        _check_owner(owner)
        with self._lock:
            now = self.clock()
            self._last_seen[owner] = now
            self.reap(now)
            self._check_owner_may_run(owner)
            if len(self.jobs_for(owner)) >= self.max_jobs_per_owner:
                raise JobRefused(f"you already keep {self.max_jobs_per_owner} trained models; "
                                 f"discard one before training another")
            trainer = self.trainer_factory(config, on_exit=self._job_ended)
            job = Job(job_id=uuid.uuid4().hex[:12], owner=owner, trainer=trainer, submitted=now)
            self._check_queue_room(job)
            self._jobs[job.job_id] = job
            self._start_or_queue(job)
            return job.job_id

    def adopt(self, owner: str, trainer: Trainer) -> str:
        """Register an existing, not running Trainer (e.g. `Trainer.from_checkpoint`) as a job of `owner`."""
        _check_owner(owner)
        if not isinstance(trainer, Trainer) or trainer.state not in ("idle", "stopped", "finished"):
            raise ValueError("trainer must be a Trainer that is idle, stopped or finished")
        with self._lock:
            if len(self.jobs_for(owner)) >= self.max_jobs_per_owner:
                raise JobRefused(f"you already keep {self.max_jobs_per_owner} trained models; discard one first")
            self._last_seen[owner] = self.clock()
            trainer.on_exit = self._job_ended
            job = Job(job_id=uuid.uuid4().hex[:12], owner=owner, trainer=trainer, submitted=self.clock())
            self._jobs[job.job_id] = job
            return job.job_id

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def jobs_for(self, owner: str) -> list[Job]:
        """The owner's jobs, oldest first."""
        with self._lock:
            return sorted((job for job in self._jobs.values() if job.owner == owner), key=lambda job: job.submitted)

    def stop(self, job_id: str, message: str | None = None) -> None:
        """Stop a running job at its next step, or take a queued one out of the queue. Weights are kept."""
        with self._lock:
            job = self._require(job_id)
            if job_id in self._queue:
                self._queue.remove(job_id)
            job.trainer.stop(message)

    def resume(self, job_id: str, total_steps: int | None = None) -> None:
        """Continue a stopped job (or a finished one with a larger total_steps) now, or queue it."""
        with self._lock:
            job = self._require(job_id)
            now = self.clock()
            self._last_seen[job.owner] = now
            self.reap(now)
            state = job.trainer.state
            if state == "stopping":
                raise JobRefused("this job is still stopping (it finishes its current step); try again in a moment")
            if state not in ("stopped", "finished"):
                raise JobRefused(f"only a stopped or finished job can be resumed; this one is {state}")
            self._check_owner_may_run(job.owner)
            if total_steps is not None:
                job.trainer.set_total_steps(total_steps)
            if job.trainer.step >= job.trainer.config.total_steps:
                raise JobRefused(f"this job already did all {job.trainer.config.total_steps} steps; "
                                 f"give a larger total number of steps to train further")
            self._check_queue_room(job)
            self._start_or_queue(job)

    def discard(self, job_id: str) -> None:
        """Forget a job and its weights (refused while it trains: stop it first)."""
        with self._lock:
            job = self._require(job_id)
            state = job.trainer.state
            if state in ("running", "stopping"):
                raise JobRefused(f"this job is {state}; stop it and wait until it has stopped before discarding it")
            if job_id in self._queue:
                self._queue.remove(job_id)
            del self._jobs[job_id]

    def heartbeat(self, owner: str) -> None:
        """Record that `owner`'s browser session is alive (and reap silent owners' jobs)."""
        _check_owner(owner)
        with self._lock:
            now = self.clock()
            self._last_seen[owner] = now
            self.reap(now)

    # ------------------------------------------------------------------------------------ reaper
    def reap(self, now: float | None = None) -> list[str]:
        """Stop (never discard) the active jobs of owners silent for longer than heartbeat_timeout.
        Returns the ids of the jobs stopped."""
        with self._lock:
            now = self.clock() if now is None else now
            stopped = []
            for job in list(self._jobs.values()):
                last_seen = self._last_seen.get(job.owner, job.submitted)
                silent = now - last_seen
                if silent > self.heartbeat_timeout and job.trainer.state in ("queued", "running"):
                    self.stop(job.job_id, f"stopped automatically: the browser session sent no heartbeat for "
                                          f"{silent:.0f} s (limit {self.heartbeat_timeout:.0f} s); resume it to continue")
                    stopped.append(job.job_id)
            self._promote()
            return stopped

    def _reap_forever(self, interval: float) -> None:
        while not self._closed.wait(interval):
            self.reap()

    def close(self) -> None:
        """Stop the reaper thread (jobs are left as they are)."""
        self._closed.set()

    # ----------------------------------------------------------------------------------- helpers
    def _require(self, job_id: str) -> Job:
        job = self._jobs.get(job_id)
        if job is None:
            raise KeyError(f"no job with id {job_id!r} (it may have been discarded)")
        return job

    def _check_owner_may_run(self, owner: str) -> None:
        for job in self.jobs_for(owner):
            state = job.trainer.state
            if state in ACTIVE_STATES:
                raise JobRefused(f"you already have a training job that is {state} ({job.job_id}); "
                                 f"stop it or wait for it to finish before starting another")

    def _running_on(self, device: str) -> int:
        return sum(1 for job in self._jobs.values()
                   if job.device == device and job.trainer.state in ("running", "stopping"))

    def _check_queue_room(self, job: Job) -> None:
        if self._running_on(job.device) >= self.max_running_per_device and len(self._queue) >= self.max_queued:
            raise JobRefused(f"the {job.device} is busy and {len(self._queue)} jobs are already waiting "
                             f"(the queue holds at most {self.max_queued}); try again later")

    def _start_or_queue(self, job: Job) -> None:
        job.trainer.mark_queued()
        self._queue.append(job.job_id)
        self._promote()

    def _promote(self) -> None:
        """Launch queued jobs, oldest first, while their device has a free slot."""
        for job_id in list(self._queue):
            job = self._jobs[job_id]
            if job.trainer.state != "queued":  # stopped directly through its Trainer meanwhile
                self._queue.remove(job_id)
            elif self._running_on(job.device) < self.max_running_per_device:
                self._queue.remove(job_id)
                if job.trainer.step == 0:
                    job.trainer.start()
                else:
                    job.trainer.resume()

    def _job_ended(self, trainer: Trainer) -> None:
        with self._lock:
            self._promote()


def _check_owner(owner) -> None:
    if not isinstance(owner, str) or not owner:
        raise ValueError(f"owner must be a non-empty session id string, got {owner!r}")
