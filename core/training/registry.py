"""The server's training jobs: each runs in a worker process of its own; this registry queues and watches them.

Policy (the numbers are core.training.limits.JobLimits, set by environment variables):
* Each device has slots (CPU: from the cores the container may use; CUDA: several small jobs share the card).
  A job submitted or resumed waits in a first-come-first-served queue until one of its devices has a free slot
  and its session has fewer than `running_per_session` jobs training (fairness: one session cannot fill
  every slot). A job of device "auto" may train on either device (core.runtime.job_devices, narrowed to those its
  step fits on): it takes the first free slot when it is launched, the GPU's before the CPU's, and its worker is
  told that device; "cpu" and "cuda" jobs keep theirs. A queued job's snapshot carries its queue position (among
  the queued jobs that compete for one of its devices) and an ETA measured from the running jobs
  (limits.estimate_device_starts). Nothing here initialises CUDA: the server learns the GPUs from
  core.runtime.cuda_inventory.
  A session's second job waits while its first trains, so jobs queued behind it may go first: the simulation
  does the same, and the position shown is the rank of the estimated start (so ETAs grow with the position).
* Requests are refused with `JobRefused` (a ValueError whose message says why and what to do) when the
  session already has its running + queued jobs, when the whole server has `max_active` jobs running or
  waiting (by default a class: limits.MIN_MAX_ACTIVE), or when the session keeps `models_per_session` trained
  models (discard one first).
* Nothing is lost: every job lives in a folder of the run store (core.training.run_store), the worker saves
  its checkpoint periodically, on stop and at the end; the registry rescans the store on start, so jobs
  survive a server restart and are offered to their owner again: one that was training as "stopped"
  (resumable), one that was queued still queued, in its place (its queue entry is on disk, run_store.QueueEntry).
* The run store's cleanup evicts fairly (run_store.RunStore.cleanup): never an active job nor a model its
  session loaded lately (`mark_used`), the session furthest over its share first; `evictions_for` tells the owner.
* A worker that dies (killed, out of memory) leaves its job "crashed", with the last checkpoint usable and
  resumable. Every browser session sends `heartbeat(owner)`; the reaper stops (never deletes) the jobs of
  sessions silent for more than `heartbeat_timeout` seconds.

Each job owns its state (core.training.job.Job: transitions are its methods); the registry only decides.
`start_worker` is the one place a worker is started (a backend replaces it, or passes another `launcher`).
All methods are thread-safe; `poll()` (run by a monitor thread when `monitor_interval` is given) collects ended
workers, stops the jobs of silent sessions and starts queued jobs. `clock` is injectable for tests.
"""

from __future__ import annotations

import threading
import time
import uuid

from core.checks import check_number
from core.training import run_store, worker
from core.training.config import TrainConfig
from core.training.fits import check_fits
from core.training.job import Job
from core.training.limits import JobLimits, estimate_device_starts
from core.training.run_store import RunStore
from core.training.stats import JobState

CLEANUP_SECONDS = 600.0  # how often poll() lets the run store delete old folders
MARK_USED_SECONDS = 60.0  # a model's `used` mark is renewed at most this often


class JobRefused(ValueError):
    """A request that the registry's policy does not allow (the message says why)."""


class JobRegistry:
    """See the module docstring. `launcher` starts workers (default: processes); `run_store` keeps the folders."""

    def __init__(self, limits: JobLimits | None = None, run_store: RunStore | None = None,
                 launcher=None, heartbeat_timeout: float = 180.0, clock=time.monotonic,
                 monitor_interval: float | None = None):
        check_number("heartbeat_timeout", heartbeat_timeout, 0.0, open_low=True)
        self.limits = JobLimits.from_env() if limits is None else limits
        self.store = RunStore.from_env() if run_store is None else run_store
        self.launcher = worker.ProcessLauncher() if launcher is None else launcher
        self.heartbeat_timeout = float(heartbeat_timeout)
        self.clock = clock
        self._lock = threading.RLock()
        self._jobs: dict[str, Job] = {}
        self._queue: list[str] = []  # job ids waiting for a slot, oldest first
        self._last_seen: dict[str, float] = {}  # owner key -> clock()
        self._marked_used: dict[str, float] = {}  # job id -> clock() of its last `used` mark
        self._next_cleanup = 0.0
        self._rescan()
        self._closed = threading.Event()
        if monitor_interval is not None:
            threading.Thread(target=self._monitor, args=(float(monitor_interval),), name="job-monitor", daemon=True).start()

    def _rescan(self) -> None:
        """Offer every job in the run store again (Job.from_disk): queued jobs queue again in their old order, and
        their owners' silence is counted from now (so the reaper stops them if nobody comes back)."""
        for record in self.store.scan():
            job = Job.from_disk(record, self.store.job_dir(record), self.store.max_age_seconds)
            self._jobs[job.job_id] = job
        queued = sorted((job for job in self._jobs.values() if job.state == JobState.QUEUED),
                        key=lambda job: (job.queue_entry.enqueued_at, job.record.created))
        self._queue = [job.job_id for job in queued]
        for job in queued:
            self._seen(job.owner_key)
        self._cleanup()
        self._promote()

    # ---------------------------------------------------------------------------------- requests
    def submit(self, owner: str, config: TrainConfig, max_seconds: float | None = None) -> str:
        """Register a job for `owner` and start it now, or queue it; returns its id. Raises JobRefused, or
        ValueError when one training step of `config` would not fit in memory (core.training.fits)."""
        if not isinstance(config, TrainConfig):
            raise ValueError(f"config must be a TrainConfig, got {type(config).__name__}")
        devices = check_fits(config.validate())  # a batch that cannot fit is a message now, not a crash in the worker
        key = _owner_key(owner)
        with self._lock:
            self._seen(key)
            if len(self.jobs_for(owner)) >= self.limits.models_per_session:
                raise JobRefused(f"you already keep {self.limits.models_per_session} trained models; "
                                 f"discard one before training another")
            self._check_may_queue(key)
            self._cleanup()
            record = run_store.JobRecord(job_id=uuid.uuid4().hex[:12], owner_key=key, created=time.time(),
                                         config=config.validate(), max_seconds=max_seconds)
            job = Job(record, self.store.create(record), devices=devices, max_age_seconds=self.store.max_age_seconds)
            self._jobs[job.job_id] = job
            self._enqueue(job, resume=False, total_steps=None, max_seconds=max_seconds)
            return job.job_id

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def jobs_for(self, owner: str) -> list[Job]:
        """The owner's jobs, oldest first."""
        key = _owner_key(owner)
        with self._lock:
            return sorted((job for job in self._jobs.values() if job.owner_key == key), key=lambda job: job.record.created)

    def stop(self, job_id: str, message: str | None = None) -> None:
        """Stop a running job gracefully (it saves, then its worker exits), or take a queued one out of the queue."""
        with self._lock:
            job = self._require(job_id)
            job.refresh()
            if job.state == JobState.QUEUED:
                self._queue.remove(job_id)
                job.leave_queue(message)
                self._note_queue_views()
            elif job.state == JobState.RUNNING:
                job.request_stop(message)

    def request_save(self, job_id: str) -> None:
        """Ask a running job's worker to save its checkpoint now (it does so within a fraction of a second)."""
        with self._lock:
            job = self._require(job_id)
            job.refresh()
            if job.state == JobState.RUNNING:
                job.request_save()

    def resume(self, job_id: str, total_steps: int | None = None, max_seconds: float | None = None) -> None:
        """Continue a stopped, crashed or finished job (the latter with a larger total_steps) now, or queue it.
        max_seconds: the time budget of this run (default: the one the job was submitted with)."""
        with self._lock:
            job = self._require(job_id)
            self._seen(job.owner_key)
            snapshot = job.snapshot()
            if snapshot.state == JobState.STOPPING:
                raise JobRefused("this job is still stopping (it finishes its current step and saves); try again in a moment")
            if not snapshot.state.resumable:
                raise JobRefused(f"only a stopped, crashed or finished job can be resumed; this one is {snapshot.state}")
            start_step = snapshot.saved_step or 0
            total = snapshot.total_steps if total_steps is None else total_steps
            if not isinstance(total, int) or total <= start_step:
                raise JobRefused(f"this job already did {start_step:,} steps; give a larger total number of steps "
                                 f"to train further")
            self._check_may_queue(job.owner_key)
            budget = job.record.max_seconds if max_seconds is None else max_seconds  # "train for N minutes" again
            self._enqueue(job, resume=job.checkpoint.exists(), total_steps=total, max_seconds=budget)

    def discard(self, job_id: str) -> None:
        """Forget a job and delete its folder (refused while it trains: stop it first)."""
        with self._lock:
            job = self._require(job_id)
            job.refresh()
            if job.state in (JobState.RUNNING, JobState.STOPPING):
                raise JobRefused(f"this job is {job.state}; stop it and wait until it has stopped before discarding it")
            if job_id in self._queue:
                self._queue.remove(job_id)
            del self._jobs[job_id]
            self.store.delete(job.folder)
            self._note_queue_views()

    def heartbeat(self, owner: str) -> None:
        """Record that `owner`'s browser session is alive."""
        with self._lock:
            self._seen(_owner_key(owner))

    def mark_used(self, owner: str, job_id: str) -> None:
        """`owner`'s session has loaded this job's model (the sidebar's selection lives in the browser): the run
        store's cleanup keeps it for a while (RunStore.in_use_seconds). Another owner's job is left alone."""
        key = _owner_key(owner)
        with self._lock:
            job = self._jobs.get(job_id)
            now = self.clock()
            if job is None or job.owner_key != key or now - self._marked_used.get(job_id, -MARK_USED_SECONDS) < MARK_USED_SECONDS:
                return
            self._marked_used[job_id] = now
            self.store.mark_used(job.folder)

    def evictions_for(self, owner: str) -> list[run_store.Eviction]:
        """What the run store's cleanup removed of this owner's, oldest first (the Train page tells them)."""
        return self.store.evictions(_owner_key(owner))

    def kept_until(self, job_id: str) -> float:
        """time.time() after which the run store may delete this job's folder (if it does not change before)."""
        return self._require(job_id).kept_until()

    # --------------------------------------------------------------------------------- watching
    def poll(self) -> None:
        """Collect ended workers, stop the jobs of silent sessions, start queued jobs where slots are free."""
        with self._lock:
            for job in self._jobs.values():
                job.refresh()
            self.reap()
            self._promote()
            if self.clock() >= self._next_cleanup:
                self._cleanup()

    def reap(self, now: float | None = None) -> list[str]:
        """Stop (never discard) the running and queued jobs of owners silent for longer than heartbeat_timeout."""
        with self._lock:
            now = self.clock() if now is None else now
            stopped = []
            for job in list(self._jobs.values()):
                silent = now - self._last_seen.get(job.owner_key, now)
                if silent > self.heartbeat_timeout and job.state in (JobState.QUEUED, JobState.RUNNING):
                    self.stop(job.job_id, f"stopped automatically: the browser session sent no heartbeat for "
                                          f"{silent:.0f} s (limit {self.heartbeat_timeout:.0f} s); resume it to continue")
                    stopped.append(job.job_id)
            return stopped

    def queue_view(self, job_id: str) -> tuple[int | None, float | None]:
        """(position among the queued jobs that compete for one of its devices, 1 = next to start; estimated seconds
        until it starts, None = unknown). See `_queue_views`."""
        with self._lock:
            self._require(job_id)
            return self._queue_views().get(job_id, (None, None))

    def wait(self, job_id: str, timeout: float, interval: float = 0.05) -> JobState:
        """Poll until the job is neither queued nor training, or `timeout` seconds pass; returns its state."""
        deadline = time.monotonic() + timeout
        while True:
            self.poll()
            state = self._require(job_id).state
            if not state.active or time.monotonic() > deadline:
                return state
            time.sleep(interval)

    def close(self, stop_jobs_within: float | None = None) -> None:
        """Stop the monitor thread. Workers go on and save as usual, unless stop_jobs_within is given: then every
        job is stopped (saving) and waited for, up to that many seconds each."""
        self._closed.set()
        if stop_jobs_within is not None:
            with self._lock:
                jobs = list(self._jobs.values())
            for job in jobs:
                self.stop(job.job_id)
            for job in jobs:
                if self.get(job.job_id) is not None:  # (the run store may have deleted an old one meanwhile)
                    self.wait(job.job_id, stop_jobs_within)

    # ----------------------------------------------------------------------------- the launcher seam
    def start_worker(self, job: Job, device: str, entry: run_store.QueueEntry):
        """Start the worker that trains `job` on `device` as `entry` says; returns its handle (is_alive(),
        exitcode). The one place a worker is started: a backend overrides this (or passes another launcher)."""
        threads = self.limits.threads_per_job if device == "cpu" else 1  # a GPU job's CPU work is launching kernels
        return self.launcher.launch(job.folder, entry.resume, entry.total_steps, entry.max_seconds, threads,
                                    device=device)

    # ----------------------------------------------------------------------------------- helpers
    def _monitor(self, interval: float) -> None:
        while not self._closed.wait(interval):
            self.poll()

    def _seen(self, key: str) -> None:
        self._last_seen[key] = self.clock()

    def _require(self, job_id: str) -> Job:
        job = self._jobs.get(job_id)
        if job is None:
            raise KeyError(f"no job with id {job_id!r} (it may have been discarded)")
        return job

    def _cleanup(self) -> None:
        """Let the run store delete old folders (never an active job's), and forget the jobs deleted."""
        self.store.cleanup(protected={job_id for job_id, job in self._jobs.items() if job.state.active})
        for job_id in [j for j, job in self._jobs.items() if not job.folder.exists()]:
            del self._jobs[job_id]
        self._next_cleanup = self.clock() + CLEANUP_SECONDS

    def _running(self, predicate) -> int:
        return sum(1 for job in self._jobs.values() if job.has_worker and predicate(job))

    def _check_may_queue(self, key: str) -> None:
        limits = self.limits
        running = self._running(lambda job: job.owner_key == key)
        queued = sum(1 for job_id in self._queue if self._jobs[job_id].owner_key == key)
        if queued >= limits.queued_per_session and running + queued >= limits.running_per_session:
            raise JobRefused(f"you already have {running} job(s) training and {queued} waiting (the limit per session "
                             f"is {limits.running_per_session} training + {limits.queued_per_session} waiting); "
                             f"stop one or wait for it to finish")
        running_all = self._running(lambda job: True)
        if running_all + len(self._queue) >= limits.max_active:
            raise JobRefused(f"the server is busy: {running_all} training jobs are running and {len(self._queue)} "
                             f"waiting, its limit (RDL_MAX_JOBS = {limits.max_active}); try again when one has finished")

    def _enqueue(self, job: Job, resume: bool, total_steps, max_seconds) -> None:
        job.enqueue(run_store.QueueEntry(enqueued_at=time.time(), resume=resume, total_steps=total_steps,
                                         max_seconds=max_seconds))
        self._queue.append(job.job_id)
        self._promote()

    def _free_device(self, job: Job) -> str | None:
        """The first of the job's devices (preferred first) with a free slot, or None."""
        for device in job.devices:
            if self._running(lambda other: other.device == device) < self.limits.slots(device):
                return device
        return None

    def _promote(self) -> None:
        """Launch queued jobs, oldest first, while one of their devices has a free slot and their owner may run one
        more; the device is chosen here, at launch (see the module docstring). Then update the queue views."""
        for job_id in list(self._queue):
            job = self._jobs[job_id]
            device = self._free_device(job)
            if device is None:
                continue
            if self._running(lambda other: other.owner_key == job.owner_key) >= self.limits.running_per_session:
                continue
            self._queue.remove(job_id)
            job.launch(device, self.clock(), self.start_worker)
        self._note_queue_views()

    def _note_queue_views(self) -> None:
        for job_id, (position, starts_in) in self._queue_views().items():
            self._jobs[job_id].note_queue_view(position, starts_in)

    def _queue_views(self) -> dict[str, tuple[int, float | None]]:
        """job id -> (position, seconds until it starts) for every queued job. The starts are simulated for the
        whole queue on every device as _promote hands out slots (a job queued ahead on another device may still take
        a slot this one could use; a session's second job waits for its first), from the running jobs' remaining
        time (their time budgets and measured rates) and the queued jobs' budgets or measured rates. A job's
        position is the rank of its start among the queued jobs that compete for one of its devices (unknown
        starts last, in queue order), so the estimated wait grows with the position."""
        if not self._queue:
            return {}
        queued = [self._jobs[j] for j in self._queue]
        devices = {device for job in queued for device in job.devices}
        running = [j for j in self._jobs.values() if j.has_worker and j.device in devices]
        starts = estimate_device_starts(
            {device: self.limits.slots(device) for device in devices},
            {device: [self._seconds_left(j) for j in running if j.device == device] for device in devices},
            [(job.devices, {device: self._duration(job, device) for device in job.devices}) for job in queued],
            running_owners={device: [j.owner_key for j in running if j.device == device] for device in devices},
            queued_owners=[job.owner_key for job in queued], per_owner=self.limits.running_per_session)
        start_of = {job.job_id: start for job, start in zip(queued, starts, strict=True)}
        order = {job.job_id: index for index, job in enumerate(queued)}
        rank = lambda other: (float("inf") if start_of[other.job_id] is None else start_of[other.job_id],  # noqa: E731
                              order[other.job_id])
        views = {}
        for job in queued:
            competing = [other for other in queued if set(other.devices) & set(job.devices)]
            views[job.job_id] = (sorted(competing, key=rank).index(job) + 1, start_of[job.job_id])
        return views

    def _seconds_left(self, job: Job) -> float | None:
        """How long a running job still needs: its measured ETA, at most what is left of its time budget."""
        left = job.progress_data()["eta_seconds"]
        segment = job.segment
        if segment is not None and segment.budget_seconds is not None:
            budget_left = max(0.0, segment.budget_seconds - (self.clock() - segment.launched_at))
            return budget_left if left is None else min(left, budget_left)
        return left

    def _duration(self, job: Job, device: str) -> float | None:
        """Estimated run time of a queued job on `device`: its steps at the measured rate of a job of the same shape
        there, at most its time budget."""
        entry, config = job.queue_entry, job.config
        steps = (entry.total_steps or config.total_steps) - ((job.progress_data()["saved_step"] or 0) if entry.resume else 0)
        rates = [other.progress_data()["images_per_second"] for other in self._jobs.values()
                 if other.device == device and other.config.dataset == config.dataset
                 and other.config.model_size == config.model_size and other.config.batch_size == config.batch_size]
        rates = [rate for rate in rates if rate > 0]
        duration = steps * config.batch_size / rates[0] if rates else None
        if entry.max_seconds is not None:
            duration = entry.max_seconds if duration is None else min(duration, entry.max_seconds)
        return duration



def _owner_key(owner) -> str:
    if not isinstance(owner, str) or not owner:
        raise ValueError(f"owner must be a non-empty session id string, got {owner!r}")
    return run_store.owner_key(owner)
