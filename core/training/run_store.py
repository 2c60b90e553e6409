"""The run store: every training job's folder on disk, per browser session, bounded in size and age.

    <root>/<owner key>/<job id>/job.json              who, when, the TrainConfig (written by the server)
                                checkpoint.safetensors  the last save (written by the worker: periodically,
                                                        on stop and at the end)
                                progress.json, preview.npz  the worker's live progress (core.training.worker)
                                stop, save              requests from the server to the worker (empty files)

The owner key is a hash of the session id, so a folder name never reveals a session. Because everything
lives here, a server restart loses nothing: the registry rescans the store on start and offers each job
to its owner again. `cleanup` deletes folders older than `max_age_seconds` (counted from their last
change) and then the oldest ones until the store fits in `max_bytes`, never a folder in `protected`.

Environment (README, "Running a classroom server"): RDL_RUNS_DIR (default runs/jobs in the repository),
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

from core.checks import check_number
from core.training.config import TrainConfig

DEFAULT_ROOT = Path(__file__).resolve().parents[2] / "runs" / "jobs"
DEFAULT_MAX_MB = 2048
DEFAULT_MAX_DAYS = 7
JOB_RECORD, CHECKPOINT, PROGRESS, PREVIEW = "job.json", "checkpoint.safetensors", "progress.json", "preview.npz"
STOP_REQUEST, SAVE_REQUEST = "stop", "save"
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

    def __init__(self, root: Path | str = DEFAULT_ROOT, max_bytes: int = DEFAULT_MAX_MB * 2**20,
                 max_age_seconds: float = DEFAULT_MAX_DAYS * 86400.0, clock=time.time):
        self.root = Path(root)
        self.max_bytes = int(check_number("max_bytes", max_bytes, 1.0))
        self.max_age_seconds = check_number("max_age_seconds", max_age_seconds, 0.0, open_low=True)
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
        return cls(env.get("RDL_RUNS_DIR") or DEFAULT_ROOT, **values)

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
        times = [path.stat().st_mtime for path in (folder / CHECKPOINT, folder / PROGRESS, folder / JOB_RECORD)
                 if path.exists()]
        return max(times, default=0.0)

    def kept_until(self, folder: Path) -> float:
        """When `cleanup` may delete this folder for its age (unless it changes before)."""
        return self.last_change(folder) + self.max_age_seconds

    def size(self, folder: Path) -> int:
        return sum(path.stat().st_size for path in folder.iterdir() if path.is_file())

    def delete(self, folder: Path) -> None:
        if folder.resolve().is_relative_to(self.root.resolve()):
            shutil.rmtree(folder, ignore_errors=True)

    def cleanup(self, protected=frozenset()) -> list[str]:
        """Delete expired folders, then the oldest until the store fits; returns the deleted job ids."""
        now = self.clock()
        folders = sorted(((self.last_change(self.job_dir(r)), self.job_dir(r), r.job_id) for r in self.scan()),
                         key=lambda item: item[0])
        deleted, kept = [], []
        for changed, folder, job_id in folders:
            if job_id not in protected and changed + self.max_age_seconds < now:
                self.delete(folder)
                deleted.append(job_id)
            else:
                kept.append((folder, job_id))
        total = sum(self.size(folder) for folder, _ in kept)
        for folder, job_id in kept:  # oldest first
            if total <= self.max_bytes:
                break
            if job_id not in protected:
                total -= self.size(folder)
                self.delete(folder)
                deleted.append(job_id)
        return deleted
