"""One training job as the server sees it: its folder in the run store, its state, and its worker handle while it
trains. The Job owns its state (a core.training.stats.JobState): every change is one of the methods below, which
checks that the move is legal (`TRANSITIONS`) and writes what the move means to the job's folder, so a restart of
the server reads the same state back (`Job.from_disk`). The registry (registry.py) decides when and on which
device a job runs and calls these methods; nothing here knows the registry, and nothing here initialises CUDA.

Reading the folder is always a method: `refresh()` notices a worker that has ended (and records a crash when it
ended without saying how), `progress()` / `preview()` / `snapshot()` read what the worker published. The `state`
attribute itself never touches the disk.
"""

from __future__ import annotations

import signal
import threading
from dataclasses import dataclass
from pathlib import Path

from core import runtime
from core.training import legacy, run_store
from core.training.stats import ENDED_STATES, JobState, Preview, Snapshot, blank_progress

S = JobState
TRANSITIONS = {  # state -> the states a job may move to from it
    S.IDLE: {S.QUEUED},  # a job just submitted
    S.QUEUED: {S.RUNNING, S.STOPPED},  # launched, or taken out of the queue
    S.RUNNING: {S.STOPPING, S.STOPPED, S.FINISHED, S.FAILED, S.CRASHED},
    S.STOPPING: {S.STOPPED, S.FINISHED, S.FAILED, S.CRASHED},
    S.STOPPED: {S.QUEUED}, S.FINISHED: {S.QUEUED}, S.CRASHED: {S.QUEUED},  # resumed
    S.FAILED: set(),  # its last step was not finite: discard it
}



def newer_preview(folder: Path, cached: tuple) -> tuple:
    """(stamp, Preview) of the job folder's preview file, read again only when its stamp (mtime, size) changed; the
    cached pair while there is no preview yet or the worker is replacing the file (the next poll reads the new one)."""
    path = folder / run_store.PREVIEW
    try:
        stat = path.stat()
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp != cached[0]:
            return stamp, Preview.from_npz(path.read_bytes())
    except (OSError, ValueError, KeyError):
        pass
    return cached

class JobStateError(ValueError):
    """A state change that TRANSITIONS does not allow (the registry checks first, so this is a bug if seen)."""


@dataclass(frozen=True)
class Segment:
    """The running segment of a job: where, since when (the registry's clock) and with which time budget."""

    device: str
    launched_at: float
    budget_seconds: float | None


class Job:
    """One job: its record and folder on disk, its state, and (while it trains) its worker handle.

    devices: where it may train, preferred first (the registry narrows the config's choice to the devices its step
    fits on); `device` is where it trains or last trained (for an "auto" job chosen when it is launched)."""

    def __init__(self, record: run_store.JobRecord, folder, devices: tuple[str, ...] | None = None,
                 state: JobState = JobState.IDLE, queue_entry: run_store.QueueEntry | None = None,
                 max_age_seconds: float = run_store.DEFAULT_MAX_DAYS * 86400.0):
        self.record, self.folder = record, folder
        self.job_id, self.owner_key, self.config = record.job_id, record.owner_key, record.config
        self.data_kind = self.config.data_kind
        self.devices: tuple[str, ...] = tuple(devices or runtime.job_devices(self.config.device))
        self.max_age_seconds = max_age_seconds
        self._state = JobState(state)
        self._queue_entry = queue_entry
        self._queue_view: tuple[int | None, float | None] = (None, None)
        self._device: str | None = self.devices[0] if len(self.devices) == 1 else None
        self._segment: Segment | None = None
        self._handle = None
        self._lock = threading.RLock()  # the monitor thread and page threads may change or read it at once
        self._progress = self._preview = (None, None)  # (file stamp, parsed content)

    @classmethod
    def from_disk(cls, record: run_store.JobRecord, folder, max_age_seconds: float) -> Job:
        """A job of the run store as a server finds it when it starts: queued if its queue entry is on disk (it keeps
        its place), else the state its worker last recorded; one recorded as training has lost its worker with the
        old server, so it is stopped (resumable from its last checkpoint)."""
        entry = run_store.QueueEntry.read(folder)
        job = cls(record, folder, max_age_seconds=max_age_seconds)
        if entry is not None:
            job._state, job._queue_entry = JobState.QUEUED, entry
            return job
        recorded = job.progress().get("state")
        if recorded in ENDED_STATES:
            job._state = JobState(recorded)
        else:
            saved = job.progress().get("saved_step")
            job._state = JobState.STOPPED
            job.write_progress(state=JobState.STOPPED, message="the server restarted while this job was "
                               + (f"training; resume continues from its checkpoint at step {saved:,}" if saved
                                  else "waiting; resume starts it"))
        return job

    # ------------------------------------------------------------------------------------ reading
    @property
    def state(self) -> JobState:
        """The state as of the last transition or refresh() (no file is read)."""
        return self._state

    @property
    def device(self) -> str | None:
        return self._segment.device if self._segment else self._device

    @property
    def segment(self) -> Segment | None:
        """The running (or last) segment: device, launch time, time budget."""
        return self._segment

    @property
    def queue_entry(self) -> run_store.QueueEntry | None:
        return self._queue_entry

    @property
    def checkpoint(self):
        return self.folder / run_store.CHECKPOINT

    @property
    def handle(self):
        """The worker's handle (pid, is_alive(), exitcode) while it trains, else None."""
        return self._handle

    @property
    def has_worker(self) -> bool:
        """A worker process (or thread) of this job is alive."""
        handle = self._handle
        return handle is not None and handle.is_alive()

    def progress(self) -> dict:
        """progress.json as last written (parsed again only when the file changed)."""
        path = self.folder / run_store.PROGRESS
        try:
            stat = path.stat()
            stamp = (stat.st_mtime_ns, stat.st_size)
        except OSError:
            return {}
        if stamp != self._progress[0]:
            data = run_store.read_json(path)  # a file of a run from before is read in the new layout (legacy)
            self._progress = (stamp, legacy.progress_file(data) if data else self._progress[1] or {})
        return self._progress[1]

    def preview(self) -> Preview | None:
        self._preview = newer_preview(self.folder, self._preview)
        return self._preview[1]

    def refresh(self) -> bool:
        """Read what the worker says: a worker that ended moves the job to the state it recorded (stopped, finished,
        failed) or, when it recorded none, to crashed (written down, with its last checkpoint kept); a worker that
        stops by itself (its time budget) shows as stopping. Returns True when a worker ended."""
        with self._lock:
            handle = self._handle
            if handle is None:
                return False
            if handle.is_alive():
                if self._state == JobState.RUNNING and self.progress().get("state") == JobState.STOPPING:
                    self._move(JobState.STOPPING)
                return False
            self._handle = None
            recorded = self.progress().get("state")
            if not self.folder.exists():  # deleted meanwhile (discarded): nothing to record
                self._move(JobState.STOPPED)
            elif recorded in ENDED_STATES:
                self._move(JobState(recorded))
            else:
                code = handle.exitcode
                how = f"killed by signal {signal.Signals(-code).name}" if code and code < 0 else f"exit code {code}"
                saved = self.progress().get("saved_step")
                kept = (f"its last checkpoint (step {saved:,}) is kept: resume continues from there" if saved
                        else "it had saved no checkpoint yet: resume starts it again")
                self._move(JobState.CRASHED)
                self.write_progress(state=JobState.CRASHED,
                                    error=f"the training process ended unexpectedly ({how}); {kept}")
            return True

    def note_queue_view(self, position: int | None, starts_in_seconds: float | None) -> None:
        """The registry's latest estimate for this queued job (position 1 = next; seconds until it starts)."""
        self._queue_view = (position, starts_in_seconds)

    def kept_until(self) -> float:
        """time.time() after which the run store may delete the folder for its age (unless it changes before)."""
        return run_store.last_change(self.folder) + self.max_age_seconds

    def progress_data(self) -> dict:
        """The worker's last progress (Snapshot.to_json form) with this job's state; refreshes first."""
        self.refresh()
        state = self._state
        data = {**blank_progress(self.config), **self.progress(), "state": state}
        if state == JobState.STOPPING:
            data["message"] = data.get("message") or "stopping after the current step (and saving)…"
        if state == JobState.QUEUED:
            data["queue_position"], data["starts_in_seconds"] = self._queue_view
        data["checkpoint"] = str(self.checkpoint) if self.checkpoint.exists() else None
        return data

    def snapshot(self) -> Snapshot:
        """The job's progress as its worker last published it, with its queue view and how long it is kept."""
        data = self.progress_data()
        data["kept_until"] = self.kept_until()
        return Snapshot.from_json(data, preview=self.preview())

    # -------------------------------------------------------------------------------- transitions
    def enqueue(self, entry: run_store.QueueEntry) -> None:
        """Wait for a slot (a new job, or a resumed one): the entry is written down, so the job keeps its place
        in the queue across a server restart."""
        with self._lock:
            self._move(JobState.QUEUED)
            entry.write(self.folder)
            self._queue_entry, self._queue_view = entry, (None, None)

    def leave_queue(self, message: str | None = None) -> None:
        """Queued → stopped (the user stopped it before it started, or its session went silent)."""
        with self._lock:
            self._move(JobState.STOPPED)
            self._drop_queue_entry()
            self.write_progress(state=JobState.STOPPED, message=message)

    def launch(self, device: str, now: float, start_worker) -> None:
        """Queued → running on `device`: clears old requests, records the segment, and calls
        start_worker(job, device, entry) -> handle (the registry's launcher seam) to start its worker."""
        with self._lock:
            entry = self._queue_entry
            self._move(JobState.RUNNING)
            for request in (run_store.STOP_REQUEST, run_store.SAVE_REQUEST):
                (self.folder / request).unlink(missing_ok=True)
            self._segment = Segment(device=device, launched_at=now, budget_seconds=entry.max_seconds)
            self.write_progress(state=JobState.RUNNING, error=None, message="starting a training process…",
                                **({"total_steps": entry.total_steps} if entry.total_steps else {}))
            self._drop_queue_entry()
            try:
                self._handle = start_worker(self, device, entry)
            except Exception as error:  # (e.g. no process can be started now) the job ends visibly, resumable
                self._move(JobState.CRASHED)
                self.write_progress(state=JobState.CRASHED, error=f"the training process could not be started "
                                    f"({type(error).__name__}: {error}); resume to try again")

    def request_stop(self, message: str | None = None) -> None:
        """Running → stopping: the worker finishes its step, saves and exits (the message is shown as the reason)."""
        with self._lock:
            self._move(JobState.STOPPING)
            (self.folder / run_store.STOP_REQUEST).write_text(message or "")

    def request_save(self) -> None:
        """Ask the running worker to save its checkpoint now (it does so within a fraction of a second)."""
        with self._lock:
            if self._state != JobState.RUNNING:
                raise JobStateError(f"only a running job can save on request; this one is {self._state}")
            (self.folder / run_store.SAVE_REQUEST).touch()

    def write_progress(self, **changes) -> None:
        """Change what progress.json records (only while no worker is writing it)."""
        run_store.write_json_atomically(self.folder / run_store.PROGRESS,
                                        {**blank_progress(self.config), **self.progress(), **changes})

    # ------------------------------------------------------------------------------------ helpers
    def _move(self, new: JobState) -> None:
        if new != self._state and new not in TRANSITIONS[self._state]:
            raise JobStateError(f"job {self.job_id}: {self._state} → {new} is not a legal state change")
        self._state = new

    def _drop_queue_entry(self) -> None:
        self._queue_entry, self._queue_view = None, (None, None)
        (self.folder / run_store.QUEUE_ENTRY).unlink(missing_ok=True)
