"""What a checkpoint says about its model: `CheckpointInfo`, the one schema every producer writes, and the bounds
a file's metadata must keep before anything is built from it.

Producers describe a model with a CheckpointInfo (scripts/ship_checkpoint.py and core.training.saving do; save()
still accepts the older dict of the same keys and turns it into one); core.checkpoints.save stores it as the "rdl"
JSON document, adding the file facts (format_version, torch_version, created, has_raw, has_optimizer). Reading goes
the other way: CheckpointInfo.from_document(doc) on a loaded document (ui.catalog.LoadedModel.info). Its `training`
is a TrainingRecord (what a Trainer run records: config, generator state, its ProgressRecord and the averaging
state resuming needs), or None.

Bounds on untrusted metadata (uploads), all checked before any tensor or module is made:

* JSON text: at most MAX_DOCUMENT_BYTES per document and MAX_JSON_DEPTH levels of nesting (checked on the raw
  text, so a deeply nested file never reaches the recursive parser);
* data.dataset: a core.data.datasets name or None; device: at most MAX_NAME_CHARS; notes: MAX_NOTES_CHARS;
* training: exactly TrainingRecord's keys (config required; the old layout's step, loss_history and profile are
  converted by core.training.legacy first): a flat config of at most MAX_CONFIG_ENTRIES short scalars, a base64
  generator state of at most MAX_GENERATOR_CHARS, a progress record that core.training.stats.ProgressRecord checks,
  and averaging states that continue it (LossHistory.from_record, TimestepProfile.from_record);
* data shape: the model's own input, so at most 4 x 64 x 64 images or 16-D points (core.nets.config.BOUNDS); a named
  dataset's shape (DATASET_SHAPES: 1 x 28 x 28 images, 2-D points) is the model's input too;
* text: every string UTF-8 can encode (no lone surrogates from JSON escapes; parse_json and save check it).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass, field, fields

import numpy as np

from core.data.datasets import DATASET_NAMES, IMAGE_DATASET_NAMES
from core.data.toys import TOY_NAMES
from core.training import legacy
from core.training.stats import LossHistory, ProgressRecord, TimestepProfile

MAX_DOCUMENT_BYTES = 2 * 2**20  # the "rdl" document: configs, loss history, generator state (real ones: < 200 kB)
MAX_JSON_DEPTH = 32  # a real document nests 6 levels deep
MAX_NAME_CHARS = 200
MAX_NOTES_CHARS = 20_000
MAX_CONFIG_ENTRIES = 64  # TrainConfig has 27 fields
MAX_GENERATOR_CHARS = 16_384  # base64 of torch.Generator.get_state(): 6,752 characters on the CPU (mt19937), 24 on CUDA
BASE64 = re.compile(r"[A-Za-z0-9+/]*={0,2}")
# The shape of one example of each core.data.datasets name: every image dataset is 28 x 28 grey (MNIST, its subset,
# Fashion-MNIST), every toy 2-D (tests/test_hostile_files.py checks this against the loaded data). A model trained
# on one of them has exactly this input; pages that use the named data (the Training objective's digits, the v
# page's real images, a toy's oracle) rely on it.
DATASET_SHAPES = {**{name: (1, 28, 28) for name in IMAGE_DATASET_NAMES}, **{name: (2,) for name in TOY_NAMES}}


def parse_json(text, what: str, max_bytes: int = MAX_DOCUMENT_BYTES, max_depth: int = MAX_JSON_DEPTH):
    """json.loads for untrusted text, in bounded time and memory: size and nesting depth are checked first
    (on the text with its strings removed: one regex pass and a cumulative sum), so no RecursionError and no
    huge integers (Python's int parsing limit is turned into the same one-line ValueError)."""
    if isinstance(text, (bytes, bytearray)):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError as error:
            raise ValueError(f"{what} is not UTF-8 text ({error.reason} at byte {error.start})") from None
    if not isinstance(text, str):
        raise ValueError(f"{what} must be JSON text, got {type(text).__name__}")
    if len(text) > max_bytes:
        raise ValueError(f"{what} is {len(text):,} characters long, more than the limit of {max_bytes:,}")
    depth = json_depth(text)
    if depth > max_depth:
        raise ValueError(f"{what} nests {depth} levels deep, more than the limit of {max_depth}")
    try:
        value = json.loads(text)
    except ValueError as error:  # JSONDecodeError, and ints longer than sys.get_int_max_str_digits()
        raise ValueError(f"{what} is not valid JSON ({str(error)[:120]})") from None
    problem = unencodable_text(value)
    if problem:
        raise ValueError(f"{what} holds text that is not valid Unicode: {problem} (a lone UTF-16 surrogate, "
                         f"written as a \\u escape, cannot be shown or saved)")
    return value


def unencodable_text(value, path: str = "") -> str | None:
    """Where the first string (or key) of parsed JSON is that UTF-8 cannot encode, with the string, or None.

    Valid UTF-8 text cannot hold a lone surrogate, but a JSON escape such as "\\ud800" can, and such a string breaks
    every page that shows it (Streamlit sends text as UTF-8). One C-speed encode of the whole value decides; only a
    value that fails is walked, to name the field (its depth is bounded by parse_json). Strings are quoted with
    repr, which writes a surrogate as an escape."""
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
        return None
    except UnicodeEncodeError:
        pass
    if isinstance(value, str):
        return f"{path or 'the value'}={short_text(value)}"
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        if isinstance(key, str) and unencodable_text(key) is not None:
            return f"a key of {path or 'the document'}, {short_text(key)}"
        name = key if isinstance(key, str) and key.isascii() and key.isidentifier() else repr(key)
        where = f"{path}[{key}]" if isinstance(key, int) else f"{path}.{name}" if path else name
        found = unencodable_text(item, where)
        if found is not None:
            return found
    return None


def json_depth(text: str, chunk: int = 2**18) -> int:
    """The deepest nesting of [ and { in JSON text, outside strings, in O(len) vectorised steps over chunks of
    `chunk` characters (bounded memory; no regex, so no backtracking on hostile input): a quote opens or closes a
    string unless an odd run of backslashes precedes it."""
    data = text.encode("utf-8", "replace")
    deepest, depth, inside, backslashes = 0, 0, False, 0  # carried from one chunk to the next
    for begin in range(0, len(data), chunk):
        chars = np.frombuffer(data, dtype=np.uint8, count=min(chunk, len(data) - begin), offset=begin)
        positions = np.arange(chars.size, dtype=np.int32)
        last_other = np.maximum.accumulate(np.where(chars != ord("\\"), positions, -1 - backslashes))
        run_before = np.empty_like(positions)  # backslashes immediately before each position
        run_before[0] = backslashes
        run_before[1:] = positions[:-1] - last_other[:-1]
        quotes = (chars == ord('"')) & (run_before % 2 == 0)
        outside = (np.cumsum(quotes, dtype=np.int32) % 2 == 0) != inside
        steps = np.zeros(chars.size, dtype=np.int32)
        steps[outside & ((chars == ord("[")) | (chars == ord("{")))] = 1
        steps[outside & ((chars == ord("]")) | (chars == ord("}")))] = -1
        levels = np.cumsum(steps, dtype=np.int64) + depth
        deepest, depth = max(deepest, int(levels.max())), int(levels[-1])
        inside = inside != bool(quotes.sum() % 2)
        backslashes = int(chars.size - 1 - last_other[-1])
    return deepest


def _shape_words(shape: tuple) -> str:
    """'1x28x28 images' or '2-D points'."""
    return f"{'x'.join(map(str, shape))} images" if len(shape) == 3 else f"{shape[0]}-D points"


def short_text(value, limit: int = 80) -> str:
    """repr(value) cut to `limit` characters, for messages about untrusted values."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "…"


@dataclass(frozen=True)
class DataInfo:
    """The training data: a core.data.datasets name and the shape of one example ([C, H, W] or [D])."""

    dataset: str | None = None
    shape: tuple[int, ...] | None = None

    def __post_init__(self):
        if self.dataset is not None and self.dataset not in DATASET_NAMES:
            raise ValueError(f"data['dataset']={short_text(self.dataset)} is not allowed; expected one of "
                             f"{', '.join(DATASET_NAMES)} or None")
        if self.shape is not None:
            shape = self.shape
            if not (isinstance(shape, (list, tuple)) and 1 <= len(shape) <= 3 and all(
                    isinstance(n, int) and not isinstance(n, bool) and 0 < n <= 4096 for n in shape)):
                raise ValueError(f"data['shape']={short_text(shape)} is not allowed; expected [D] or [C, H, W] with "
                                 f"positive sizes")
            object.__setattr__(self, "shape", tuple(shape))


@dataclass(frozen=True)
class TrainingRecord:
    """What a training run records in its checkpoint (core.training.saving.save_run writes every field; other
    producers may give only the config). The JSON form (`to_dict`) is the document's "training" object.

    config: TrainConfig.to_json() (flat: names to strings, numbers, booleans or null);  generator_state: base64 of
    torch.Generator.get_state();  generator_device: the device type that state belongs to;  progress: the run's
    ProgressRecord when it was saved (written as ProgressRecord.to_json(), the names every store of progress uses);
    loss_averaging: LossHistory.averaging(), profile_averaging: TimestepProfile.averaging() (what resuming bit for
    bit needs beyond the record). A "training" object of the layout used before (step, loss_history, profile) is
    read through core.training.legacy.checkpoint_training.
    """

    config: dict
    generator_state: str | None = None
    generator_device: str | None = None
    progress: ProgressRecord | None = None
    loss_averaging: dict | None = None
    profile_averaging: dict | None = None

    def __post_init__(self):
        if isinstance(self.progress, dict):
            try:
                object.__setattr__(self, "progress", ProgressRecord.from_json(self.progress))
            except (TypeError, ValueError) as error:
                raise ValueError(f"training: 'progress' cannot be read back ({str(error)[:160]})") from None
        problem = self._problem()
        if problem:
            raise ValueError(f"training: {problem}")

    def _problem(self) -> str | None:
        config = self.config
        if not isinstance(config, dict) or len(config) > MAX_CONFIG_ENTRIES:
            return f"'config'={short_text(config)} is not allowed; expected a dict of at most {MAX_CONFIG_ENTRIES} entries"
        for key, value in config.items():
            if not isinstance(key, str) or len(key) > 80:
                return f"config key {short_text(key)} is not allowed; expected a short string"
            if not (value is None or isinstance(value, (bool, int, str)) or (isinstance(value, float) and math.isfinite(value))) \
                    or (isinstance(value, str) and len(value) > MAX_NAME_CHARS):
                return f"config[{key!r}]={short_text(value)} is not allowed; expected a short string, finite number, boolean or null"
        state = self.generator_state
        if state is not None and not (isinstance(state, str) and len(state) <= MAX_GENERATOR_CHARS and len(state) % 4 == 0
                                      and BASE64.fullmatch(state)):
            return f"'generator_state'={short_text(state)} is not allowed; expected base64 text of at most {MAX_GENERATOR_CHARS} characters"
        device = self.generator_device
        if device is not None and not (isinstance(device, str) and 0 < len(device) <= 16 and device.isidentifier()):
            return f"'generator_device'={short_text(device)} is not allowed; expected a device type such as 'cpu' or 'cuda'"
        if self.progress is not None and not isinstance(self.progress, ProgressRecord):
            return f"'progress'={short_text(self.progress)} is not allowed; expected a ProgressRecord, its JSON or None"
        for name, reader in (("loss_averaging", LossHistory.from_record), ("profile_averaging", TimestepProfile.from_record)):
            value = getattr(self, name)
            if value is None:
                continue
            if self.progress is None:
                return f"{name!r} is not allowed without 'progress' (it continues the record's averages)"
            try:
                reader(self.progress, value)
            except (TypeError, ValueError) as error:
                return f"{name!r} cannot be read back ({str(error)[:160]})"
        return None

    @classmethod
    def from_dict(cls, data, seconds=None) -> TrainingRecord:
        """The record of a document's "training" object: exactly this class's keys, "config" required. An object
        of the old layout is converted first (core.training.legacy; `seconds`: the document's training_seconds)."""
        if not isinstance(data, dict):
            raise ValueError(f"training: {short_text(data)} is not allowed; expected a dict or None")
        names = [f.name for f in fields(cls)]
        unknown = sorted(set(data) - set(names) - set(legacy.TRAINING_FIELDS), key=str)
        if unknown or "config" not in data:
            raise ValueError(f"training: keys {short_text(sorted(map(str, data)))} are not allowed; expected 'config' and "
                             f"any of {', '.join(names[1:])}")
        try:
            data = legacy.checkpoint_training(data, seconds)
        except ValueError as error:
            raise ValueError(f"training: {error}") from None
        return cls(**data)

    def to_dict(self) -> dict:
        """The JSON form: every field, None included (from_dict(to_dict()) == self)."""
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["progress"] = None if self.progress is None else self.progress.to_json()
        return data

    def loss_curve(self) -> LossHistory | None:
        """The recorded loss curve as the LossHistory that continues it, or None when the record lacks it."""
        if self.progress is None or self.loss_averaging is None:
            return None
        return LossHistory.from_record(self.progress, self.loss_averaging)

    def timestep_profile(self) -> TimestepProfile | None:
        """The recorded loss per t-bin as the TimestepProfile that continues it, or None when the record lacks it."""
        if self.progress is None or self.profile_averaging is None:
            return None
        return TimestepProfile.from_record(self.progress, self.profile_averaging)


@dataclass(frozen=True)
class CheckpointInfo:
    """Everything a checkpoint records about its model besides the weights (see the module docstring).

    model: the model's JSON config (core.nets.config);  diffusion: GaussianDiffusion.to_config();
    data: DataInfo;  training: a TrainingRecord (its dict form is accepted too) or None;  steps, final_loss,
    training_seconds, device: what the run did;  notes: free text.
    """

    model: dict
    diffusion: dict
    data: DataInfo = field(default_factory=DataInfo)
    training: TrainingRecord | None = None
    steps: int | None = None
    final_loss: float | None = None
    training_seconds: float | None = None
    device: str | None = None
    notes: str = ""

    def __post_init__(self):
        if isinstance(self.data, dict):
            if set(self.data) != {"dataset", "shape"}:
                raise ValueError(f"data={short_text(self.data)} is not allowed; expected a dict with exactly 'dataset' "
                                 f"and 'shape'")
            object.__setattr__(self, "data", DataInfo(**self.data))
        if isinstance(self.training, dict):
            object.__setattr__(self, "training", TrainingRecord.from_dict(self.training, self.training_seconds))
        problem = self._problem()
        if problem:
            raise ValueError(problem)
        for name in ("final_loss", "training_seconds"):
            value = getattr(self, name)
            object.__setattr__(self, name, None if value is None else float(value))

    def _problem(self) -> str | None:
        if not isinstance(self.model, dict) or not isinstance(self.diffusion, dict):
            return "the 'model' and 'diffusion' configs must be JSON objects"
        if not isinstance(self.data, DataInfo):
            return f"data must be a DataInfo or a dict, got {type(self.data).__name__}"
        if self.training is not None and not isinstance(self.training, TrainingRecord):
            return f"'training'={short_text(self.training)} is not allowed; expected a TrainingRecord, a dict or None"
        steps = self.steps
        if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int) or not 0 <= steps <= 10**12):
            return f"'steps'={short_text(steps)} is not allowed; expected a non-negative integer or None"
        for name in ("final_loss", "training_seconds"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                      or not math.isfinite(value)):
                return f"{name!r}={short_text(value)} is not allowed; expected a finite number or None"
        if self.device is not None and (not isinstance(self.device, str) or len(self.device) > MAX_NAME_CHARS):
            return f"'device'={short_text(self.device)} is not allowed; expected a short string or None"
        known = self.model.get("kind") in ("unet", "mlp")  # other kinds: the model config check says what is wrong
        if known and self.data.shape is not None and self.data.shape != self.model_input_shape:
            return (f"data shape {list(self.data.shape)} does not match the model's input "
                    f"{short_text(list(self.model_input_shape))}")
        dataset = self.data.dataset
        if known and dataset is not None and DATASET_SHAPES[dataset] != self.model_input_shape:
            return (f"data['dataset']={dataset!r} holds {_shape_words(DATASET_SHAPES[dataset])}, but the model's input is "
                    f"{short_text(list(self.model_input_shape))}")
        if not isinstance(self.notes, str) or len(self.notes) > MAX_NOTES_CHARS:
            return f"'notes' must be a string of at most {MAX_NOTES_CHARS} characters, got {short_text(self.notes, 40)}"
        return None

    # ------------------------------------------------------------------------------ building, reading
    @classmethod
    def describe(cls, model, diffusion, **fields) -> CheckpointInfo:
        """The info of `model` (its .config) under `diffusion` (its to_config()); the other fields as keywords."""
        return cls(model=dict(model.config), diffusion=diffusion.to_config(), **fields)

    @classmethod
    def from_document(cls, doc: dict) -> CheckpointInfo:
        """The info part of a checkpoint's "rdl" document (the file facts are left out)."""
        return cls(**{name: doc[name] for name in INFO_FIELDS if name in doc})

    def to_document(self) -> dict:
        """The JSON form (a dict of the "rdl" document's info keys; shapes as lists)."""
        doc = asdict(self)
        doc["training"] = None if self.training is None else self.training.to_dict()
        doc["data"] = {"dataset": self.data.dataset, "shape": None if self.data.shape is None else list(self.data.shape)}
        return doc

    # ------------------------------------------------------------------------------ what pages show
    @property
    def train_config(self) -> dict:
        """The TrainConfig JSON the model was trained with ({} when the file does not say)."""
        return {} if self.training is None else self.training.config

    @property
    def model_size(self) -> str | None:
        """The named size ("tiny", "small", "base") from the training config, or None."""
        size = self.train_config.get("model_size")
        return size if isinstance(size, str) else None

    @property
    def model_input_shape(self) -> tuple:
        """The shape of one input of the model: (C, H, W) for a UNet, (D,) for the toy MLP."""
        if self.model.get("kind") == "unet":
            return (self.model.get("in_channels"), self.model.get("image_size"), self.model.get("image_size"))
        return (self.model.get("data_dim", 2),)  # ToyMLPConfig's default

    @property
    def data_shape(self) -> tuple:
        """The shape of one example: data.shape, or the model's input when the file does not record it."""
        return self.data.shape if self.data.shape is not None else self.model_input_shape


INFO_FIELDS = ("model", "diffusion", "data", "training", "steps", "final_loss", "training_seconds", "device", "notes")
