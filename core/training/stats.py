"""What a run reports while it trains: the loss curve, the loss per timestep, previews and progress snapshots.

These are plain data, with a JSON round trip so a training worker process can publish them to the web server as a
small file, and a checkpoint can keep them. `ProgressRecord` is the one record of progress (step, seconds, loss
curve, loss per t), and `ProgressRecord.to_json()` its one on-disk form: a live run's progress.json holds it as
"progress" (Snapshot.to_json), a checkpoint's training record as "progress" (core.checkpoints.info.TrainingRecord)
and a recorded replay as "progress" (core.training.history); the training figures draw it. A checkpoint adds only
what resuming bit for bit needs beyond it (`LossHistory.averaging()`, `TimestepProfile.averaging()`). Files in the
layouts used before are read through core.training.legacy. Everything read back is checked: it crosses a process
boundary or comes from a file.
"""

from __future__ import annotations

import dataclasses
import io
import math
from dataclasses import dataclass, field, fields
from enum import StrEnum

import numpy as np
import torch

from core.checks import check_int, check_number
from core.diffusion.schedules import MAX_T
from core.training import legacy

LOSS_HISTORY_POINTS = 500  # the loss curve is averaged down so it never holds more points than this
PROFILE_BINS = 20  # per-timestep loss profile: t is split into this many equal bins
PROFILE_WINDOW = 512  # examples per bin after which the profile average becomes exponential
LOSS_AVERAGING_KEYS = {"max_points", "bucket", "pending_sum", "pending_count"}  # LossHistory.averaging()
PROFILE_AVERAGING_KEYS = {"window", "counts"}  # TimestepProfile.averaging()


class JobState(StrEnum):
    """Where a run (a Trainer) or a server job (core.training.job.Job) stands. A str, so progress files stay plain
    JSON text ("running") and records written before this type load unchanged. The Trainer goes
    IDLE → RUNNING → (STOPPING →) STOPPED | FINISHED | FAILED; a server job adds QUEUED before RUNNING and CRASHED
    (its worker process ended without saying how); core.training.job.TRANSITIONS lists the moves a job may make."""

    IDLE = "idle"
    QUEUED = "queued"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"
    FINISHED = "finished"
    FAILED = "failed"
    CRASHED = "crashed"

    @property
    def active(self) -> bool:
        """Waiting for or holding a training slot."""
        return self in ACTIVE_STATES

    @property
    def ended(self) -> bool:
        return self in ENDED_STATES

    @property
    def resumable(self) -> bool:
        """May be continued by a resume (a failed run is not: its last step was not finite)."""
        return self in (JobState.STOPPED, JobState.FINISHED, JobState.CRASHED)


ACTIVE_STATES = (JobState.QUEUED, JobState.RUNNING, JobState.STOPPING)
ENDED_STATES = (JobState.STOPPED, JobState.FINISHED, JobState.FAILED, JobState.CRASHED)


class LossHistory:
    """The loss curve, averaged down so it never holds more than `max_points` points.

    Each point averages `bucket` consecutive steps; when the list is full, neighbouring points are merged
    in pairs and `bucket` doubles, so every stored point is a plain mean over equally many steps.
    """

    def __init__(self, max_points: int = LOSS_HISTORY_POINTS):
        if max_points < 2 or max_points % 2:
            raise ValueError(f"max_points must be an even integer >= 2, got {max_points!r}")
        self.max_points = max_points
        self.bucket = 1
        self.steps: list[int] = []  # the last step (1-based) each point covers
        self.losses: list[float] = []
        self._pending_sum = 0.0
        self._pending_count = 0

    def add(self, step: int, loss: float) -> None:
        self._pending_sum += loss
        self._pending_count += 1
        if self._pending_count == self.bucket:
            self.steps.append(step)
            self.losses.append(self._pending_sum / self.bucket)
            self._pending_sum, self._pending_count = 0.0, 0
            if len(self.losses) == self.max_points:
                self.steps = self.steps[1::2]
                self.losses = [(a + b) / 2 for a, b in zip(self.losses[::2], self.losses[1::2])]
                self.bucket *= 2

    def averaging(self) -> dict:
        """What resuming needs besides the curve itself (which a ProgressRecord holds): the points' cap, the steps per
        point and the partial bucket (the sum and count of the steps not yet in a point)."""
        return {"max_points": self.max_points, "bucket": self.bucket, "pending_sum": self._pending_sum,
                "pending_count": self._pending_count}

    @classmethod
    def from_record(cls, record: ProgressRecord, averaging: dict) -> LossHistory:
        """The history whose curve is `record`'s and whose averaging state is `averaging` (the inverse of
        ProgressRecord.of_run and `averaging()`; checked: it may come from a file)."""
        if not isinstance(averaging, dict) or set(averaging) != LOSS_AVERAGING_KEYS:
            raise ValueError(f"loss averaging: expected a dict with exactly the entries {sorted(LOSS_AVERAGING_KEYS)}")
        history = cls(check_int("max_points", averaging["max_points"], 2))
        check_int("bucket", averaging["bucket"], 1)
        check_int("pending_count", averaging["pending_count"], 0, averaging["bucket"] - 1)
        check_number("pending_sum", averaging["pending_sum"])
        if len(record.losses) >= history.max_points:
            raise ValueError(f"loss averaging: a curve of {len(record.losses)} points cannot have been averaged down to "
                             f"fewer than max_points={history.max_points}")
        history.bucket, history.steps, history.losses = averaging["bucket"], list(record.loss_steps), list(record.losses)
        history._pending_sum, history._pending_count = float(averaging["pending_sum"]), averaging["pending_count"]
        return history


class TimestepProfile:
    """Running average of the per-example mse in PROFILE_BINS equal bins of t.

    With n examples seen in a bin (capped at `window`) and a batch of c examples with mean m, the average
    moves by c/n·(m − average): the exact mean for the first `window` examples, then an exponential
    average over roughly the last `window`, so the profile follows training instead of its start.
    """

    def __init__(self, T: int, bins: int = PROFILE_BINS, window: int = PROFILE_WINDOW):
        self.T, self.bins, self.window = T, min(bins, T), window
        self.averages = [math.nan] * self.bins
        self.counts = [0] * self.bins

    def bin_edges(self) -> list[int]:
        """Bin b holds t with edges[b] <= t < edges[b + 1]."""
        return [math.ceil(b * self.T / self.bins) for b in range(self.bins + 1)]

    def add(self, t: torch.Tensor, mse: torch.Tensor) -> None:
        which = (t.long() * self.bins) // self.T  # = b exactly for edges[b] <= t < edges[b+1]
        sums = torch.zeros(self.bins, dtype=torch.float64).index_add_(0, which, mse.double())
        counts = torch.bincount(which, minlength=self.bins)
        for b in torch.nonzero(counts).flatten().tolist():
            c = int(counts[b])
            batch_mean = float(sums[b]) / c
            self.counts[b] = min(self.counts[b] + c, self.window)
            previous = 0.0 if math.isnan(self.averages[b]) else self.averages[b]
            self.averages[b] = previous + c / self.counts[b] * (batch_mean - previous)

    def averaging(self) -> dict:
        """What resuming needs besides the averages themselves (which a ProgressRecord holds): the window and the
        examples each bin has counted (capped at the window)."""
        return {"window": self.window, "counts": list(self.counts)}

    @classmethod
    def from_record(cls, record: ProgressRecord, averaging: dict) -> TimestepProfile:
        """The profile whose bins and averages are `record`'s and whose counts are `averaging`'s (the inverse of
        ProgressRecord.of_run and `averaging()`; checked: it may come from a file). T is the last edge."""
        if not isinstance(averaging, dict) or set(averaging) != PROFILE_AVERAGING_KEYS:
            raise ValueError(f"profile averaging: expected a dict with exactly the entries {sorted(PROFILE_AVERAGING_KEYS)}")
        edges = record.profile_edges
        T = check_int("T (the last profile edge)", edges[-1], 1, MAX_T)
        profile = cls(T, len(edges) - 1, check_int("window", averaging["window"], 1))
        if tuple(profile.bin_edges()) != edges:
            raise ValueError(f"profile averaging: the edges {list(edges)[:8]} are not {len(edges) - 1} equal bins of "
                             f"T={edges[-1]}")
        counts = averaging["counts"]
        if not (isinstance(counts, list) and len(counts) == profile.bins):
            raise ValueError(f"profile averaging: counts must be a list of {profile.bins} integers")
        profile.counts = [check_int("count", c, 0, profile.window) for c in counts]
        profile.averages = [math.nan if a is None else a for a in record.profile]
        return profile


@dataclass(frozen=True)
class ProgressRecord:
    """Where a run stands at one step: the one record of training progress behind both training figures
    (ui/training_figures.py). Each store of progress reads into it: a live run's Snapshot (`Snapshot.record`), a
    checkpoint's TrainingRecord (`TrainingRecord.progress`) and a replay's frame (`TrainingHistory.record_at`).

    step: steps trained;  seconds: training time so far;  loss_steps, losses: the loss curve, each point the mean of
    equally many consecutive steps ending at its step;  profile_edges: bin b holds core's 0-based t with
    edges[b] <= t < edges[b + 1];  profile: the mean loss per bin (None: no example seen yet). Checked on
    construction, so every reader of every store applies the same bounds.
    """

    step: int
    seconds: float
    loss_steps: tuple
    losses: tuple
    profile_edges: tuple
    profile: tuple

    def __post_init__(self):
        check_int("step", self.step, 0)
        check_number("seconds", self.seconds, 0.0)
        for name in ("loss_steps", "losses", "profile_edges", "profile"):
            if not isinstance(getattr(self, name), (list, tuple)):
                raise ValueError(f"progress: {name} must be a list, got {type(getattr(self, name)).__name__}")
        steps = tuple(check_int("loss step", s, 1) for s in self.loss_steps)
        losses = tuple(float(check_number("loss", v)) for v in self.losses)
        if len(steps) != len(losses) or any(b <= a for a, b in zip(steps, steps[1:])):
            raise ValueError("progress: the loss steps must increase and be as long as the losses")
        edges = tuple(check_int("profile edge", e, 0) for e in self.profile_edges)
        if len(edges) < 2 or edges[0] != 0 or any(b <= a for a, b in zip(edges, edges[1:])):
            raise ValueError(f"progress: profile edges must increase from 0, got {list(edges)[:8]}")
        profile = tuple(None if v is None or (isinstance(v, float) and math.isnan(v)) else float(check_number("profile", v))
                        for v in self.profile)
        if len(profile) != len(edges) - 1:
            raise ValueError(f"progress: the profile must have one value per bin ({len(edges) - 1}), got {len(profile)}")
        for name, value in (("loss_steps", steps), ("losses", losses), ("profile_edges", edges), ("profile", profile),
                            ("seconds", float(self.seconds))):
            object.__setattr__(self, name, value)

    @classmethod
    def of_run(cls, step: int, seconds: float, history: LossHistory, profile: TimestepProfile) -> ProgressRecord:
        """The record of a run's own statistics (a Trainer's, or those a checkpoint kept)."""
        return cls(step=step, seconds=seconds, loss_steps=tuple(history.steps), losses=tuple(history.losses),
                   profile_edges=tuple(profile.bin_edges()), profile=tuple(profile.averages))

    def until(self, step: int) -> ProgressRecord:
        """The record as it stood at an earlier `step`: the loss curve cut there (the profile kept as it is)."""
        count = sum(1 for s in self.loss_steps if s <= step)
        return dataclasses.replace(self, step=step, loss_steps=self.loss_steps[:count], losses=self.losses[:count])

    def to_json(self) -> dict:
        """JSON-safe (lists; None for unseen profile bins); from_json(to_json()) == self."""
        return {f.name: list(value) if isinstance(value := getattr(self, f.name), tuple) else value for f in fields(self)}

    @classmethod
    def from_json(cls, data) -> ProgressRecord:
        """Inverse of to_json, checked (exactly this class's keys)."""
        names = {f.name for f in fields(cls)}
        if not isinstance(data, dict) or set(data) != names:
            raise ValueError(f"progress: expected a dict with exactly the entries {sorted(names)}")
        return cls(**data)


@dataclass(frozen=True)
class Preview:
    """Samples from the EMA model after `step` steps: `samples` is a float CPU tensor ([n, C, H, W] in
    [-1, 1] for images, [n, 2] for points); `grid` the uint8 image grid (images only)."""

    step: int
    kind: str
    samples: torch.Tensor
    grid: object = None

    def to_npz(self) -> bytes:
        """The preview as .npz bytes (plain arrays, no pickled objects)."""
        buffer = io.BytesIO()
        arrays = {"step": np.array(self.step), "kind": np.array(self.kind), "samples": self.samples.numpy()}
        if self.grid is not None:
            arrays["grid"] = np.asarray(self.grid, dtype=np.uint8)
        np.savez(buffer, **arrays)
        return buffer.getvalue()

    @classmethod
    def from_npz(cls, data: bytes) -> Preview:
        """Inverse of `to_npz`; never unpickles (allow_pickle=False) and checks kinds and shapes."""
        with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
            kind = str(arrays["kind"])
            samples = np.asarray(arrays["samples"], dtype=np.float32)
            grid = np.asarray(arrays["grid"], dtype=np.uint8) if "grid" in arrays else None
            step = check_int("preview step", int(arrays["step"]), 0)
        if kind not in ("image", "points") or samples.ndim != (4 if kind == "image" else 2):
            raise ValueError(f"preview: samples of shape {samples.shape} do not fit the kind {kind!r}")
        return cls(step=step, kind=kind, samples=torch.from_numpy(samples.copy()), grid=grid)


@dataclass(frozen=True)
class Snapshot:
    """A consistent copy of a job's progress, safe to read from another thread or process.

    `progress` is the one ProgressRecord (step, training seconds, loss curve, loss per t) that the training figures
    draw; the other fields say how the run stands around it. The fields after `budget_plan` are filled in by the job
    registry (a Trainer leaves them at their defaults): the queue position, the checkpoint that holds the job's
    weights on disk and until when it is kept.
    """

    state: JobState
    error: str | None
    message: str | None  # why it stopped, when stopped by someone other than the user
    progress: ProgressRecord
    total_steps: int
    loss_bucket: int  # each point of progress.losses is the mean loss of this many consecutive steps
    last_loss: float | None  # the latest batch
    profile_counts: list  # examples counted per t bin (capped at the profile's window)
    images_per_second: float
    eta_seconds: float | None
    learning_rate: float
    device: str
    parameters: int
    preview: Preview | None
    config: dict = field(default_factory=dict)
    budget_seconds: float | None = None  # the running segment's time budget (None = none)
    budget_plan: str | None = None  # how the budget was turned into total_steps (core.training.budget), while running
    queue_position: int | None = None  # 1 = next to start, while queued
    starts_in_seconds: float | None = None  # estimated wait for a slot, while queued (None = unknown)
    checkpoint: str | None = None  # path of the last checkpoint written for this job
    saved_step: int | None = None  # the step that checkpoint holds
    kept_until: float | None = None  # time.time() after which the server may delete the checkpoint

    def __post_init__(self):
        object.__setattr__(self, "state", JobState(self.state))  # ValueError for a state that is not one
        if not isinstance(self.progress, ProgressRecord):
            raise ValueError(f"a snapshot's progress must be a ProgressRecord, got {type(self.progress).__name__}")

    @property
    def step(self) -> int:
        """progress.step: the steps trained (what most readers of a snapshot want)."""
        return self.progress.step

    def to_json(self) -> dict:
        """Every field but the preview (which travels as .npz, see Preview.to_npz), JSON-safe; the progress as
        ProgressRecord.to_json writes it (progress.json's "progress" entry)."""
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("preview", "progress")}
        data["progress"] = self.progress.to_json()
        return data

    @classmethod
    def from_json(cls, data: dict, preview: Preview | None = None) -> Snapshot:
        """Inverse of `to_json` (unknown keys are an error, missing ones too, except the registry's). A progress
        file written before "progress" held the ProgressRecord is read through core.training.legacy."""
        if not isinstance(data, dict):
            raise ValueError(f"a progress snapshot must be a dict, got {type(data).__name__}")
        values = legacy.progress_file(data)
        names = [f.name for f in fields(cls) if f.name != "preview"]
        unknown = sorted(set(values) - set(names), key=str)
        if unknown:
            raise ValueError(f"unknown progress snapshot entries {unknown}")
        check_int("total_steps", values.get("total_steps"), 1)
        values["progress"] = ProgressRecord.from_json(values.get("progress"))
        return cls(**values, preview=preview)


def blank_progress(config) -> dict:
    """The progress (Snapshot.to_json form) of a job of this TrainConfig before its worker has reported anything."""
    profile = TimestepProfile(config.T)
    progress = ProgressRecord.of_run(0, 0.0, LossHistory(), profile)
    return {"state": JobState.STOPPED, "error": None, "message": None, "progress": progress.to_json(),
            "total_steps": config.total_steps, "loss_bucket": 1, "last_loss": None, "profile_counts": [0] * profile.bins,
            "images_per_second": 0.0, "eta_seconds": None, "learning_rate": config.learning_rate,
            "device": config.device, "parameters": 0, "config": config.to_json(), "saved_step": None, "checkpoint": None}
