"""One training job as the server sees it: its folder in the run store, its worker handle while it trains, and
its progress as the worker last published it (core.training.worker). The registry (registry.py) decides when and on
which device it runs (core.runtime.job_devices: nothing here initialises CUDA).
"""

from __future__ import annotations

import signal
import threading

from core import runtime
from core.training import run_store
from core.training.stats import ENDED_STATES, Preview, Snapshot, blank_progress


class Job:
    """One job: its record and folder on disk, and (while it trains) its worker handle."""

    def __init__(self, record: run_store.JobRecord, folder, registry=None):
        self.record, self.folder, self.registry = record, folder, registry
        self.job_id, self.owner_key, self.config = record.job_id, record.owner_key, record.config
        self.data_kind = self.config.data_kind
        # where it may train, preferred first (the registry narrows this to the devices it fits on), and where it
        # trains or last trained: an "auto" job's device is chosen when it is launched (None until then)
        self.devices: tuple[str, ...] = runtime.job_devices(self.config.device)
        self.device: str | None = self.devices[0] if len(self.devices) == 1 else None
        self.handle = None
        self.launch_args: tuple | None = None  # (resume, total_steps, max_seconds) while queued
        self.queued_since: float | None = None
        self.stop_requested = False
        self.budget, self.launched_at = None, 0.0  # the running segment's time budget, and when it was launched
        self._progress = self._preview = (None, None)  # (file stamp, parsed content)
        self._collecting = threading.Lock()

    @property
    def checkpoint(self):
        return self.folder / run_store.CHECKPOINT

    def progress(self) -> dict:
        """progress.json as last written (parsed again only when the file changed)."""
        path = self.folder / run_store.PROGRESS
        try:
            stat = path.stat()
            stamp = (stat.st_mtime_ns, stat.st_size)
        except OSError:
            return {}
        if stamp != self._progress[0]:
            self._progress = (stamp, run_store.read_json(path) or self._progress[1] or {})
        return self._progress[1]

    def preview(self) -> Preview | None:
        path = self.folder / run_store.PREVIEW
        try:
            stat = path.stat()
            stamp = (stat.st_mtime_ns, stat.st_size)
            if stamp != self._preview[0]:
                self._preview = (stamp, Preview.from_npz(path.read_bytes()))
        except (OSError, ValueError, KeyError):  # no preview yet, or the worker is replacing the file right now:
            pass  # keep showing the last complete preview; the next poll reads the new one
        return self._preview[1]

    def write_progress(self, **changes) -> None:
        """Change the state recorded in progress.json (only while no worker is writing it)."""
        run_store.write_json_atomically(self.folder / run_store.PROGRESS, {**blank_progress(self.config), **self.progress(), **changes})

    @property
    def state(self) -> str:
        self.collect()
        if self.queued_since is not None:
            return "queued"
        if self.handle is not None and self.handle.is_alive():
            return "stopping" if self.stop_requested else self.progress().get("state", "running")
        return self.progress().get("state", "stopped")

    def collect(self) -> bool:
        """If the worker has ended, forget its handle; a worker that ended without saying so crashed.
        Returns True when a worker ended."""
        with self._collecting:  # the monitor thread and page threads may ask at once
            handle = self.handle
            if handle is None or handle.is_alive():
                return False
            self.handle = None
        code = handle.exitcode
        if not self.folder.exists():  # deleted meanwhile (discarded, or the run store's cleanup): nothing to record
            return True
        progress = self.progress()
        if progress.get("state") not in ENDED_STATES:
            how = f"killed by signal {signal.Signals(-code).name}" if code and code < 0 else f"exit code {code}"
            saved = progress.get("saved_step")
            kept = (f"its last checkpoint (step {saved:,}) is kept: resume continues from there" if saved
                    else "it had saved no checkpoint yet: resume starts it again")
            self.write_progress(state="crashed", error=f"the training process ended unexpectedly ({how}); {kept}")
        return True

    def snapshot(self) -> Snapshot:
        """The job's progress as its worker last published it, with the registry's view (queue position and
        wait, how long the run store keeps the checkpoint)."""
        data = self.progress_data()
        if self.registry is not None:
            data["queue_position"], data["starts_in_seconds"] = self.registry.queue_view(self.job_id)
            data["kept_until"] = self.registry.store.kept_until(self.folder)
        return Snapshot.from_json(data, preview=self.preview())

    def progress_data(self) -> dict:
        self.collect()
        data = {**blank_progress(self.config), **self.progress(), "state": self.state}
        if data["state"] == "stopping":
            data["message"] = data.get("message") or "stopping after the current step (and saving)…"
        data["checkpoint"] = str(self.checkpoint) if self.checkpoint.exists() else None
        return data
