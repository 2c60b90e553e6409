"""Recorded training histories: what a training run looked like while it learned, for the Train page's replay.

A history is a folder with `history.json` and a few PNG preview grids:

    {"format": "rdl-training-history", "version": 2,
     "title": "...", "description": "...",          # plain text, shown as text
     "config": {"name": value, ...},                 # the recipe: strings, numbers, booleans (shown as a table)
     "progress": {"step": 1474, "seconds": 300.2,    # the run at its last frame, as the one record of progress
                  "loss_steps": [...], "losses": [...],        # writes it (core.training.stats.ProgressRecord): the
                  "profile_edges": [0, 10, ..., 200],          # whole loss curve, the t-bins (T = the last edge)
                  "profile": [mse per t-bin or null]},         # and the loss per t at the end
     "frames": [{"step": 250, "seconds": 41.5,       # the record's names: training time until this step, evaluation
                                                     # excluded (bench/cpu_recipe.py: CPU seconds of its one thread)
                 "profile": [mse per t-bin or null], # the loss per t at that step
                 "preview": "step_000250.png",       # a sample grid from the EMA model at that step (fixed seed)
                 "fd": 312.4 or null, "classes": 10 or null}, ...]}   # classifier FD and classes present (MNIST)

The last frame is the record's step. Version 1 (T, profile_bin_edges, loss {steps, losses}; the shipped recordings)
is read through core.training.legacy.history_file. `HistoryRecorder` writes one (bench/cpu_recipe.py --history
DIR); `load_history` reads and validates one (the progress and each frame's step, seconds and loss per t as
ProgressRecord checks every store of progress; `TrainingHistory.record_at(i)` gives frame i as that record, what
the replay draws): bounded sizes, finite numbers, steps increasing, preview names that are plain file names inside
the folder, PNGs decoded with a size cap. Nothing is executed or unpickled; text stays text.
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from core.checks import check_int
from core.training import legacy
from core.training.stats import ProgressRecord

FORMAT = "rdl-training-history"
VERSION = 2
HISTORY_FILE = "history.json"
MAX_JSON_BYTES = 1_000_000
MAX_PNG_BYTES = 300_000
MAX_PNG_SIDE = 1024
MAX_FRAMES = 200
MAX_LOSS_POINTS = 5000
MAX_BINS = 200
MAX_TEXT = 2000
MAX_CONFIG_ENTRIES = 64
PREVIEW_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,80}\.png$")
TOP_LEVEL = {"format", "version", "title", "description", "config", "progress", "frames"}
PROGRESS_LISTS = {"loss_steps": MAX_LOSS_POINTS, "losses": MAX_LOSS_POINTS, "profile_edges": MAX_BINS + 1, "profile": MAX_BINS}
FRAME_KEYS = {"step", "seconds", "profile", "preview", "fd", "classes"}


@dataclass(frozen=True)
class Frame:
    step: int
    seconds: float
    profile: list  # float or None (bin not seen yet) per t-bin
    preview: np.ndarray  # the decoded grid, uint8 [H, W] or [H, W, 3]
    fd: float | None
    classes: int | None


@dataclass(frozen=True)
class TrainingHistory:
    title: str
    description: str
    config: dict
    progress: ProgressRecord  # the run at its last frame: the whole loss curve, the t-bins, the loss per t at the end
    frames: list = field(default_factory=list)

    @property
    def T(self) -> int:
        return self.progress.profile_edges[-1]

    def frame_at(self, step: int) -> Frame:
        """The last frame recorded at or before `step` (the first frame before it)."""
        chosen = self.frames[0]
        for frame in self.frames:
            if frame.step <= step:
                chosen = frame
        return chosen

    def record_at(self, index: int) -> ProgressRecord:
        """Frame `index` as the one record of training progress: its step, seconds and loss per t, and the loss
        curve up to its step (what a live run's Snapshot.progress held at that step)."""
        frame = self.frames[index]
        return dataclasses.replace(self.progress.until(frame.step), seconds=frame.seconds, profile=tuple(frame.profile))


def _problem(path, message: str) -> ValueError:
    return ValueError(f"training history {path}: {message}")


def _text(value, name: str, path) -> str:
    if not isinstance(value, str) or len(value) > MAX_TEXT:
        raise _problem(path, f"{name} must be a string of at most {MAX_TEXT} characters")
    return value


def _finite(value, name: str, path, allow_none: bool = False) -> float | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _problem(path, f"{name} must be a finite number, got {value!r}")
    return float(value)


def _integer(value, name: str, path, low: int, high: int) -> int:
    try:
        return check_int(name, value, low, high)
    except ValueError as error:
        raise _problem(path, str(error)) from None


def _png(folder: Path, name, path) -> np.ndarray:
    if not isinstance(name, str) or not PREVIEW_NAME.match(name) or name.startswith("."):
        raise _problem(path, f"preview {name!r} must be a plain .png file name (letters, digits, _ . -)")
    file = folder / name
    if not file.is_file() or file.stat().st_size > MAX_PNG_BYTES:
        raise _problem(path, f"preview {name!r} is missing or larger than {MAX_PNG_BYTES} bytes")
    try:
        with Image.open(io.BytesIO(file.read_bytes())) as image:
            if image.format != "PNG" or max(image.size) > MAX_PNG_SIDE:
                raise _problem(path, f"preview {name!r} must be a PNG of at most {MAX_PNG_SIDE} pixels a side")
            return np.asarray(image.convert("L" if image.mode in ("L", "1", "P") else "RGB"))
    except (OSError, Image.DecompressionBombError) as error:
        raise _problem(path, f"preview {name!r} is not a readable PNG ({type(error).__name__})") from None


def load_history(folder) -> TrainingHistory:
    """Read and validate the history in `folder` (see the module docstring); ValueError names what is wrong."""
    folder = Path(folder)
    path = folder / HISTORY_FILE
    if not path.is_file():
        raise _problem(path, "not found")
    if path.stat().st_size > MAX_JSON_BYTES:
        raise _problem(path, f"larger than {MAX_JSON_BYTES} bytes")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise _problem(path, f"not valid JSON ({type(error).__name__})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or doc.get("version") not in (1, VERSION):
        raise _problem(path, f"not a {FORMAT} file of version 1 or {VERSION}")
    try:
        doc = legacy.history_file(doc)  # version 1 → the record's names
    except ValueError as error:
        raise _problem(path, str(error)) from None
    if set(doc) != TOP_LEVEL:
        raise _problem(path, f"expected exactly the entries {sorted(TOP_LEVEL)}")
    config = doc["config"]
    if not isinstance(config, dict) or len(config) > MAX_CONFIG_ENTRIES or not all(
            isinstance(k, str) and len(k) <= 80 and (v is None or isinstance(v, (str, int, float, bool)))
            and (not isinstance(v, str) or len(v) <= 200) for k, v in config.items()):
        raise _problem(path, f"config must map at most {MAX_CONFIG_ENTRIES} names to short strings, numbers or booleans")
    progress = doc["progress"]
    if not isinstance(progress, dict):
        raise _problem(path, "progress must be an object (a ProgressRecord's JSON)")
    for name, most in PROGRESS_LISTS.items():
        _list(progress.get(name), f"progress.{name}", path, most)
    try:  # checked as the one record of progress checks every store's
        record = ProgressRecord.from_json(progress)
    except ValueError as error:
        raise _problem(path, f"progress: {error}") from None
    _integer(record.profile_edges[-1], "T (the last profile edge)", path, 1, 100_000)
    frames_doc = _list(doc["frames"], "frames", path, MAX_FRAMES)
    if not frames_doc:
        raise _problem(path, "frames must not be empty")
    frames = [_frame(item, i, folder, list(record.profile_edges), path) for i, item in enumerate(frames_doc)]
    if any(b.step <= a.step for a, b in zip(frames, frames[1:])):
        raise _problem(path, "frame steps must increase")
    if frames[-1].step != record.step:
        raise _problem(path, f"the last frame's step {frames[-1].step} is not the progress's step {record.step}")
    return TrainingHistory(title=_text(doc["title"], "title", path),
                           description=_text(doc["description"], "description", path), config=dict(config),
                           progress=record, frames=frames)


def _list(value, name: str, path, max_len: int = MAX_LOSS_POINTS) -> list:
    if not isinstance(value, list) or len(value) > max_len:
        raise _problem(path, f"{name} must be a list of at most {max_len} entries")
    return value


def _frame(item, index: int, folder: Path, edges: list, path) -> Frame:
    """One frame; its step, seconds and loss per t are checked as a ProgressRecord (what record_at gives)."""
    if not isinstance(item, dict) or set(item) != FRAME_KEYS:
        raise _problem(path, f"frames[{index}] must have exactly the entries {sorted(FRAME_KEYS)}")
    step = _integer(item["step"], f"frames[{index}].step", path, 0, 10**9)
    try:
        record = ProgressRecord(step=step, seconds=item["seconds"], loss_steps=(), losses=(), profile_edges=tuple(edges),
                                profile=tuple(_list(item["profile"], f"frames[{index}].profile", path, MAX_BINS)))
    except ValueError as error:
        raise _problem(path, f"frames[{index}]: {error}") from None
    classes = None if item["classes"] is None else _integer(item["classes"], f"frames[{index}].classes", path, 0, 10)
    return Frame(step=step, seconds=record.seconds, profile=list(record.profile), preview=_png(folder, item["preview"], path),
                 fd=_finite(item["fd"], f"frames[{index}].fd", path, allow_none=True), classes=classes)


class HistoryRecorder:
    """Collects a history while a run trains and writes it (JSON + PNGs) to `folder`.

    add_loss(step, loss) every step (kept as means over buckets of `loss_bucket` steps);
    add_frame(step, seconds, profile, grid, fd, classes) at each preview (checked as a ProgressRecord, so a recording
    never holds a frame load_history refuses); save() writes history.json, its "progress" the record at the last
    frame with the whole loss curve."""

    def __init__(self, folder, title: str, description: str, config: dict, T: int, profile_bin_edges: list,
                 loss_bucket: int = 10):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.doc = {"format": FORMAT, "version": VERSION, "title": title, "description": description,
                    "config": dict(config), "progress": None, "frames": []}
        if profile_bin_edges[-1] != T:
            raise ValueError(f"the profile's last edge {profile_bin_edges[-1]} must be T={T}")
        self.profile_edges = tuple(profile_bin_edges)
        self.loss_steps, self.losses = [], []
        self.loss_bucket = loss_bucket
        self._sum, self._count = 0.0, 0
        self._last: ProgressRecord | None = None

    def add_loss(self, step: int, loss: float) -> None:
        self._sum += loss
        self._count += 1
        if self._count == self.loss_bucket:
            self.loss_steps.append(step)
            self.losses.append(round(self._sum / self._count, 6))
            self._sum, self._count = 0.0, 0

    def add_frame(self, step: int, seconds: float, profile: list, grid: np.ndarray, fd: float | None = None,
                  classes: int | None = None) -> None:
        record = ProgressRecord(step=step, seconds=round(seconds, 2), loss_steps=(), losses=(),
                                profile_edges=self.profile_edges,
                                profile=tuple(None if p is None or not math.isfinite(p) else round(p, 6) for p in profile))
        name = f"step_{step:06d}.png"
        Image.fromarray(grid).save(self.folder / name, optimize=True)
        self.doc["frames"].append({"step": record.step, "seconds": record.seconds, "profile": list(record.profile),
                                   "preview": name, "fd": None if fd is None else round(fd, 2), "classes": classes})
        self._last = record

    def save(self) -> Path:
        if self._last is None:
            raise ValueError("a history needs at least one frame")
        final = dataclasses.replace(self._last, loss_steps=tuple(self.loss_steps), losses=tuple(self.losses))
        self.doc["progress"] = final.to_json()
        path = self.folder / HISTORY_FILE
        path.write_text(json.dumps(self.doc, indent=1, allow_nan=False) + "\n")
        return path


def list_histories(root) -> list[Path]:
    """The history folders directly inside `root` (those holding a history.json), sorted by name."""
    root = Path(root)
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and (p / HISTORY_FILE).is_file())


def replay_advance(index: int, frame_count: int, frames_per_second: float, tick_seconds: float) -> tuple[int, bool]:
    """Where a replay playing at `frames_per_second` is one timer tick of `tick_seconds` later:
    (next frame index, still playing). It stops on the last frame."""
    step = max(1, round(frames_per_second * tick_seconds))
    following = min(frame_count - 1, index + step)
    return following, following < frame_count - 1
