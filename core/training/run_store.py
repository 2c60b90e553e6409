"""The run store: every training job's folder on disk, per browser session, bounded in size and age.

    <root>/<owner key>/<job id>/job.json              who, when, the TrainConfig (written by the server)
                                checkpoint.safetensors  the last save (written by the worker: periodically,
                                                        on stop and at the end)
                                progress.json, preview.npz  the worker's live progress (core.training.worker)
                                queue.json              while the job waits for a slot: when it joined the queue
                                                        and how it is to start (so it keeps its place across a
                                                        server restart)
                                used                    touched when the owner's session loads the model
                                stop, save              requests from the server to the worker (empty files)
    <root>/<owner key>/evictions.json                 what `cleanup` removed of this owner's, when and why

The owner key is a hash of the session id, so a folder name never reveals a session. Because everything
lives here, a server restart loses nothing: the registry rescans the store on start and offers each job
to its owner again.

`cleanup` (eviction, fair and told): it never deletes a folder in `protected` (the registry's active jobs) nor
one in use (its `used` file touched within `in_use_seconds`: the model a session has selected). It deletes folders
older than `max_age_seconds` (counted from their last change or use), then, while the store is over `max_bytes`,
takes from the owner furthest over its share (max_bytes divided among the owners with folders here) that owner's
oldest folder. An owner within its share loses nothing to make room for others. Every deletion is written to the
owner's evictions.json (the model, when, why, the limit, whether it could have been resumed), which the Train
page shows to its owner.

Environment (README, "Running a classroom server"): RDL_RUNS_DIR (default $RDL_HOME/runs, core.paths),
RDL_RUNS_MAX_MB (default 2048), RDL_RUNS_MAX_DAYS (default 7).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from core import paths
from core.checks import check_int, check_number
from core.training.config import TrainConfig

DEFAULT_MAX_MB = 2048
DEFAULT_MAX_DAYS = 7
JOB_RECORD, CHECKPOINT, PROGRESS, PREVIEW = "job.json", "checkpoint.safetensors", "progress.json", "preview.npz"
QUEUE_ENTRY, USED, EVICTIONS = "queue.json", "used", "evictions.json"
STOP_REQUEST, SAVE_REQUEST = "stop", "save"
DEFAULT_IN_USE_SECONDS = 3600.0  # a model loaded by its session within this long is not evicted
MAX_EVICTIONS_KEPT = 20  # per owner
JOB_ID = re.compile(r"^[0-9a-f]{12}$")
MAX_RECORD_BYTES = 64 * 1024


def owner_key(owner: str) -> str:
    """The folder name of a session's runs: a hash, so the session id itself is never written to disk."""
    return hashlib.sha256(owner.encode()).hexdigest()[:24]


def write_json_atomically(path: Path, data: dict) -> None:
    """Write JSON to a temporary file in the same folder, then rename: readers see the old or the new file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, allow_nan=False))
    os.replace(tmp, path)


def read_json(path: Path, max_bytes: int = 4 * 2**20) -> dict | None:
    """A JSON object from a file of ours, or None when absent, too large or unreadable (e.g. cut by a crash)."""
    try:
        if path.stat().st_size > max_bytes:
            return None
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def last_change(folder: Path) -> float:
    """time.time() of the folder's last change or use (0 when it holds none of the files that count)."""
    times = []
    for name in (CHECKPOINT, PROGRESS, JOB_RECORD, USED):
        try:
            times.append((folder / name).stat().st_mtime)
        except OSError:
            pass
    return max(times, default=0.0)


def _optional_number(data: dict, name: str, low: float, open_low: bool = False):
    value = data.get(name)
    return None if value is None else check_number(name, value, low, open_low=open_low)


@dataclass(frozen=True)
class QueueEntry:
    """A queued job's place and start (queue.json): the queue is ordered by enqueued_at (time.time())."""

    enqueued_at: float
    resume: bool
    total_steps: int | None = None
    max_seconds: float | None = None

    def to_json(self) -> dict:
        return {"enqueued_at": self.enqueued_at, "resume": self.resume, "total_steps": self.total_steps,
                "max_seconds": self.max_seconds}

    @classmethod
    def from_json(cls, data: dict) -> QueueEntry:
        if not isinstance(data, dict) or not isinstance(data.get("resume"), bool):
            raise ValueError("queue entry: resume must be true or false")
        total = data.get("total_steps")
        return cls(enqueued_at=check_number("enqueued_at", data.get("enqueued_at"), 0.0),
                   resume=data["resume"], total_steps=None if total is None else check_int("total_steps", total, 1),
                   max_seconds=_optional_number(data, "max_seconds", 0.0, open_low=True))

    def write(self, folder: Path) -> None:
        write_json_atomically(folder / QUEUE_ENTRY, self.to_json())

    @classmethod
    def read(cls, folder: Path) -> QueueEntry | None:
        """The folder's queue entry, or None when it has none (or a damaged one: the job is then not queued)."""
        data = read_json(folder / QUEUE_ENTRY, MAX_RECORD_BYTES)
        try:
            return None if data is None else cls.from_json(data)
        except (ValueError, TypeError):
            return None


@dataclass(frozen=True)
class Eviction:
    """One folder `cleanup` deleted (an entry of the owner's evictions.json)."""

    job_id: str
    removed_at: float  # time.time()
    reason: str  # "space" | "age"
    dataset: str
    model_size: str
    saved_step: int | None  # the step its checkpoint held (None: none saved)
    resumable: bool  # it could have been continued
    limit_bytes: int  # the store's max_bytes when it was removed
    max_age_seconds: float

    def to_json(self) -> dict:
        return dict(self.__dict__)

    def message(self) -> str:
        """What its owner is told, e.g. "Your model mnist · small (step 1,200) was removed at 14:05 to free space
        (server limit 2048 MB)." (the server's local time; the date too when it was not today)."""
        when = time.localtime(self.removed_at)
        at = time.strftime("%H:%M" if when[:3] == time.localtime()[:3] else "%Y-%m-%d %H:%M", when)
        model = f"{self.dataset} · {self.model_size}" + (f" (step {self.saved_step:,})" if self.saved_step else "")
        if self.reason == "space":
            why = f"to free space (server limit {self.limit_bytes / 2**20:.4g} MB)"
        else:
            why = f"because it was unchanged and unused for {self.max_age_seconds / 86400:.3g} days (server limit)"
        text = f"Your model {model} was removed at {at} {why}."
        if self.resumable:
            text += " It had not reached its last step; it could have been resumed."
        return text

    @classmethod
    def from_json(cls, data: dict) -> Eviction:
        if not isinstance(data, dict) or data.get("reason") not in ("space", "age") or not JOB_ID.match(str(data.get("job_id"))):
            raise ValueError("eviction entry: bad reason or job_id")
        step = data.get("saved_step")
        return cls(job_id=data["job_id"], removed_at=check_number("removed_at", data.get("removed_at"), 0.0),
                   reason=data["reason"], dataset=str(data.get("dataset"))[:64], model_size=str(data.get("model_size"))[:64],
                   saved_step=None if step is None else check_int("saved_step", step, 0),
                   resumable=bool(data.get("resumable")), limit_bytes=check_int("limit_bytes", data.get("limit_bytes"), 1),
                   max_age_seconds=check_number("max_age_seconds", data.get("max_age_seconds"), 0.0, open_low=True))


@dataclass(frozen=True)
class JobRecord:
    """What the server wrote when the job was submitted (job.json)."""

    job_id: str
    owner_key: str
    created: float  # time.time()
    config: TrainConfig
    max_seconds: float | None = None

    def to_json(self) -> dict:
        return {"job_id": self.job_id, "owner_key": self.owner_key, "created": self.created,
                "config": self.config.to_json(), "max_seconds": self.max_seconds}

    @classmethod
    def from_json(cls, data: dict) -> JobRecord:
        if not JOB_ID.match(str(data.get("job_id"))) or not re.fullmatch(r"[0-9a-f]{24}", str(data.get("owner_key"))):
            raise ValueError("job record: bad job_id or owner_key")
        max_seconds = data.get("max_seconds")
        return cls(job_id=data["job_id"], owner_key=data["owner_key"],
                   created=check_number("created", data.get("created"), 0.0),
                   config=TrainConfig.from_json(data.get("config")),
                   max_seconds=None if max_seconds is None else check_number("max_seconds", max_seconds, 0.0, open_low=True))


class RunStore:
    """See the module docstring. `clock` (default time.time) is injectable for tests."""

    def __init__(self, root: Path | str | None = None, max_bytes: int = DEFAULT_MAX_MB * 2**20,
                 max_age_seconds: float = DEFAULT_MAX_DAYS * 86400.0, clock=time.time,
                 in_use_seconds: float = DEFAULT_IN_USE_SECONDS):
        self.root = paths.runs_dir() if root is None else Path(root)  # None: $RDL_RUNS_DIR or $RDL_HOME/runs
        self.max_bytes = int(check_number("max_bytes", max_bytes, 1.0))
        self.max_age_seconds = check_number("max_age_seconds", max_age_seconds, 0.0, open_low=True)
        self.in_use_seconds = check_number("in_use_seconds", in_use_seconds, 0.0)
        self.clock = clock

    @classmethod
    def from_env(cls, env=None) -> RunStore:
        env = os.environ if env is None else env
        values = {}
        for variable, name, scale in (("RDL_RUNS_MAX_MB", "max_bytes", 2**20), ("RDL_RUNS_MAX_DAYS", "max_age_seconds", 86400)):
            text = env.get(variable)
            if text:
                try:
                    values[name] = check_number(variable, float(text), 0.0, open_low=True) * scale
                except ValueError:
                    raise ValueError(f"{variable}={text!r} is not allowed; expected a positive number") from None
        return cls(paths.runs_dir(env), **values)

    def job_dir(self, record: JobRecord) -> Path:
        return self.root / record.owner_key / record.job_id

    def create(self, record: JobRecord) -> Path:
        folder = self.job_dir(record)
        folder.mkdir(parents=True, exist_ok=False)
        write_json_atomically(folder / JOB_RECORD, record.to_json())
        return folder

    def scan(self) -> list[JobRecord]:
        """Every job folder with a valid job.json, oldest first (others are left alone)."""
        records = []
        for record_path in self.root.glob(f"*/*/{JOB_RECORD}"):
            data = read_json(record_path, MAX_RECORD_BYTES)
            try:
                record = JobRecord.from_json(data or {})
            except (ValueError, TypeError):
                continue
            if self.job_dir(record) == record_path.parent:
                records.append(record)
        return sorted(records, key=lambda record: record.created)

    def last_change(self, folder: Path) -> float:
        return last_change(folder)

    def kept_until(self, folder: Path) -> float:
        """When `cleanup` may delete this folder for its age (unless it changes or is used before)."""
        return last_change(folder) + self.max_age_seconds

    def size(self, folder: Path) -> int:
        return sum(path.stat().st_size for path in folder.iterdir() if path.is_file())

    def delete(self, folder: Path) -> None:
        if folder.resolve().is_relative_to(self.root.resolve()):
            shutil.rmtree(folder, ignore_errors=True)

    def mark_used(self, folder: Path) -> None:
        """The owner's session loaded this job's model now: `cleanup` keeps it for in_use_seconds."""
        used = folder / USED
        used.touch()
        now = self.clock()
        os.utime(used, (now, now))

    def in_use(self, folder: Path) -> bool:
        try:
            return self.clock() - (folder / USED).stat().st_mtime <= self.in_use_seconds
        except OSError:
            return False

    def evictions(self, owner_key_: str) -> list[Eviction]:
        """What cleanup removed of this owner's, oldest first (at most MAX_EVICTIONS_KEPT)."""
        if not re.fullmatch(r"[0-9a-f]{24}", owner_key_):
            raise ValueError("bad owner key")
        data = read_json(self.root / owner_key_ / EVICTIONS, MAX_RECORD_BYTES) or {}
        entries = []
        for item in data.get("evictions", []) if isinstance(data.get("evictions"), list) else []:
            try:
                entries.append(Eviction.from_json(item))
            except (ValueError, TypeError):
                continue
        return entries

    def cleanup(self, protected=frozenset()) -> list[str]:
        """Delete expired folders, then evict fairly until the store fits (see the module docstring); returns the
        deleted job ids. Never a folder in `protected` (job ids) nor one in use; every deletion is logged."""
        now = self.clock()
        folders = []  # (last change, folder, record), oldest first
        for record in self.scan():
            folder = self.job_dir(record)
            folders.append((last_change(folder), folder, record))
        folders.sort(key=lambda item: item[0])
        keep = {record.job_id for _, folder, record in folders if record.job_id in protected or self.in_use(folder)}
        deleted, kept = [], []
        for changed, folder, record in folders:
            if record.job_id not in keep and changed + self.max_age_seconds < now:
                self._evict(folder, record, "age")
                deleted.append(record.job_id)
            else:
                kept.append((folder, record, self.size(folder)))
        usage: dict[str, int] = {}
        for _, record, size in kept:
            usage[record.owner_key] = usage.get(record.owner_key, 0) + size
        total = sum(usage.values())
        share = self.max_bytes / max(1, len(usage))
        while total > self.max_bytes:
            # the owner furthest over its share that has a folder it may lose gives up its oldest one
            over = sorted(((usage[owner] - share, owner) for owner in usage if usage[owner] > share), reverse=True)
            victim = next(((folder, record, size) for _, owner in over for folder, record, size in kept
                           if record.owner_key == owner and record.job_id not in keep), None)
            if victim is None:
                break  # what is left is in use, active, or within its owner's share: kept (the store stays over)
            folder, record, size = victim
            kept.remove(victim)
            self._evict(folder, record, "space")
            deleted.append(record.job_id)
            usage[record.owner_key] -= size
            total -= size
        return deleted

    def _evict(self, folder: Path, record: JobRecord, reason: str) -> None:
        """Delete a job's folder and tell its owner (evictions.json next to the owner's job folders)."""
        progress = read_json(folder / PROGRESS) or {}
        saved = progress.get("saved_step")
        saved = saved if isinstance(saved, int) and saved >= 0 else None
        resumable = progress.get("state") in ("stopped", "crashed") or (folder / QUEUE_ENTRY).exists()
        entry = Eviction(job_id=record.job_id, removed_at=time.time(), reason=reason, dataset=record.config.dataset,
                         model_size=record.config.model_size, saved_step=saved, resumable=bool(resumable),
                         limit_bytes=self.max_bytes, max_age_seconds=self.max_age_seconds)
        self.delete(folder)
        log = self.root / record.owner_key / EVICTIONS
        entries = [item.to_json() for item in self.evictions(record.owner_key)] + [entry.to_json()]
        write_json_atomically(log, {"evictions": entries[-MAX_EVICTIONS_KEPT:]})
