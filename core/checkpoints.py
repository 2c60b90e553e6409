"""Checkpoints: one `.safetensors` file per trained model, with its recipe as JSON metadata.

File layout (safetensors: 8-byte little-endian header length, a JSON header, then raw tensor bytes):

* tensors "ema.<name>"    the EMA weights, used for sampling (always present)
* tensors "raw.<name>"    the raw (non-averaged) weights, only for resuming training (optional)
* tensors "optim.<i>"     the optimizer's tensors, only for resuming training (optional)
* header metadata (safetensors allows only str -> str):
    "rdl"            JSON document describing the checkpoint (schema below, `FORMAT_VERSION`)
    "rdl_optimizer"  (optional) JSON skeleton of `optimizer.state_dict()` in which every tensor is
                     replaced by {"__tensor__": "optim.<i>"}, dicts by {"__dict__": [[key, value], ...]}
                     (keeps integer keys) and tuples by {"__tuple__": [...]}.

The "rdl" document:
    format_version    int, FORMAT_VERSION
    model             the model's `.config` (rebuilt with core.nets.build.build_model)
    diffusion         GaussianDiffusion.to_config()
    training          dict of training settings, or null
    data              {"dataset": str or null, "shape": [int, ...] or null}  (shape of one example)
    steps             int or null;  final_loss  float or null;  training_seconds  float or null
    device            str or null (where it was trained);  torch_version  str;  created  ISO-8601 UTC
    notes             str (free-form)
    has_raw, has_optimizer   bool

API: save(...) writes atomically; load(path) / load_bytes(data) -> (EMA model in eval mode, diffusion,
metadata); load_for_resume(path) -> ResumeState (adds raw weights and optimizer state); read_metadata(path)
reads only the header.

Files are untrusted input (uploads): they are parsed only as safetensors + JSON, never unpickled, size is
capped (max_bytes), the model is first built on the "meta" device (shapes, no memory) and compared with
the file's tensors, and every problem raises `CheckpointError` (a ValueError) saying what is wrong.
"""

from __future__ import annotations

import json
import math
import os
import struct
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load as safetensors_load
from safetensors.torch import save as safetensors_save

from core.diffusion.gaussian_diffusion import GaussianDiffusion
from core.nets.build import build_model

FORMAT_VERSION = 1
METADATA_KEY = "rdl"
OPTIMIZER_KEY = "rdl_optimizer"
EMA_PREFIX, RAW_PREFIX, OPTIM_PREFIX = "ema.", "raw.", "optim."
# Caps on a file's size. A "base" UNet is ~58 MB of float32 weights; raw weights + Adam state make ~4x that.
MAX_CHECKPOINT_BYTES = 256 * 2**20  # files on disk, written by our own training
MAX_UPLOAD_BYTES = 100 * 2**20  # untrusted uploads (sampling needs only the EMA weights)
MAX_HEADER_BYTES = 4 * 2**20  # a real header (names, shapes, metadata) is a few hundred kB at most
TRAINING_INFO_KEYS = ("training", "data", "steps", "final_loss", "training_seconds", "device", "notes")
DOCUMENT_KEYS = ("format_version", "model", "diffusion", *TRAINING_INFO_KEYS,
                 "torch_version", "created", "has_raw", "has_optimizer")


class CheckpointError(ValueError):
    """A checkpoint file is unreadable, inconsistent or unsafe."""


@dataclass
class ResumeState:
    """Everything needed to continue training. Tensors in raw_state / optimizer_state are on the CPU
    (torch.optim.Optimizer.load_state_dict moves state to the parameters' device itself)."""

    model: torch.nn.Module  # the EMA model, as returned by load()
    diffusion: GaussianDiffusion
    metadata: dict
    raw_state: dict | None  # state_dict of the raw model, or None if not saved
    optimizer_state: dict | None  # optimizer.state_dict(), or None if not saved


# ---------------------------------------------------------------------------------------- saving
def save(path, model, diffusion, metadata=None, raw_model=None, optimizer_state=None) -> Path:
    """Write a checkpoint atomically (temporary file in the same folder, then os.replace).

    metadata: training info, keys among TRAINING_INFO_KEYS (all optional). raw_model and
    optimizer_state (an `optimizer.state_dict()`) are stored only if given, for resuming training.
    """
    path = Path(path)
    if path.suffix != ".safetensors":
        raise ValueError(f"path must end in .safetensors, got {str(path)!r}")
    if not isinstance(model, torch.nn.Module) or not isinstance(getattr(model, "config", None), dict):
        raise ValueError(f"model must be an nn.Module with a .config dict (core.nets.build), got {type(model).__name__}")
    if not isinstance(diffusion, GaussianDiffusion):
        raise ValueError(f"diffusion must be a GaussianDiffusion, got {type(diffusion).__name__}")
    if raw_model is not None and getattr(raw_model, "config", None) != model.config:
        raise ValueError("raw_model must have the same .config as model (it is the non-averaged copy)")
    problem = _channels_problem(model.config, diffusion)
    if problem:
        raise ValueError(problem)
    info = _check_training_info({} if metadata is None else metadata)

    # clone: tensors sharing memory (e.g. raw_model is model) cannot be saved by safetensors
    tensors = {EMA_PREFIX + k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    if raw_model is not None:
        tensors.update({RAW_PREFIX + k: v.detach().cpu().clone() for k, v in raw_model.state_dict().items()})
    header = {}
    if optimizer_state is not None:
        if not isinstance(optimizer_state, dict):
            raise ValueError(f"optimizer_state must be an optimizer.state_dict() dict, got {type(optimizer_state).__name__}")
        optimizer_tensors = {}
        header[OPTIMIZER_KEY] = json.dumps(_encode(optimizer_state, optimizer_tensors), allow_nan=False)
        tensors.update(optimizer_tensors)
    document = {
        "format_version": FORMAT_VERSION,
        "model": model.config,
        "diffusion": diffusion.to_config(),
        **info,
        "torch_version": torch.__version__,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "has_raw": raw_model is not None,
        "has_optimizer": optimizer_state is not None,
    }
    try:
        header[METADATA_KEY] = json.dumps(document, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise ValueError(f"checkpoint metadata must be JSON-serialisable with finite numbers: {e}") from e
    _write_atomically(path, safetensors_save(tensors, metadata=header))
    return path


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())  # the bytes are on disk before the name points at them
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes owner-only files; a checkpoint is an ordinary file
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _check_training_info(info) -> dict:
    if not isinstance(info, dict):
        raise ValueError(f"metadata must be a dict, got {type(info).__name__}")
    unknown = sorted(set(info) - set(TRAINING_INFO_KEYS))
    if unknown:
        raise ValueError(f"metadata has unknown keys {unknown}; allowed: {', '.join(TRAINING_INFO_KEYS)}")
    out = {"training": None, "data": {"dataset": None, "shape": None}, "steps": None, "final_loss": None,
           "training_seconds": None, "device": None, "notes": "", **info}
    problem = _training_info_problem(out)
    if problem:
        raise ValueError(problem)
    for key in ("final_loss", "training_seconds"):
        out[key] = None if out[key] is None else float(out[key])
    return out


def _channels_problem(model_config: dict, diffusion: GaussianDiffusion) -> str | None:
    """The network must output diffusion.out_channels(data channels): twice as many for learned variances."""
    data_channels = model_config.get("in_channels", model_config.get("data_dim"))
    out_channels = model_config.get("out_channels", model_config.get("out_dim"))
    if isinstance(data_channels, int) and out_channels != diffusion.out_channels(data_channels):
        return (f"the model outputs {out_channels} channels but a {diffusion.variance!r} diffusion on "
                f"{data_channels}-channel data needs {diffusion.out_channels(data_channels)}")
    return None


def _training_info_problem(doc: dict) -> str | None:
    """Shared by save (ValueError) and load (CheckpointError): what is wrong with the training info."""
    if doc["training"] is not None and not isinstance(doc["training"], dict):
        return f"metadata 'training' must be a dict or None, got {doc['training']!r}"
    steps = doc["steps"]
    if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int) or steps < 0):
        return f"metadata 'steps' must be a non-negative integer or None, got {steps!r}"
    for key in ("final_loss", "training_seconds"):
        value = doc[key]
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)):
            return f"metadata {key!r} must be a finite number or None, got {value!r}"
    if doc["device"] is not None and not isinstance(doc["device"], str):
        return f"metadata 'device' must be a string or None, got {doc['device']!r}"
    if not isinstance(doc["notes"], str):
        return f"metadata 'notes' must be a string, got {doc['notes']!r}"
    data = doc["data"]
    if not isinstance(data, dict) or set(data) != {"dataset", "shape"}:
        return f"metadata 'data' must be a dict with exactly 'dataset' and 'shape', got {data!r}"
    if data["dataset"] is not None and not isinstance(data["dataset"], str):
        return f"metadata data['dataset'] must be a string or None, got {data['dataset']!r}"
    shape = data["shape"]
    if shape is not None and not (isinstance(shape, (list, tuple)) and all(
            isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in shape)):
        return f"metadata data['shape'] must be a list of positive integers or None, got {shape!r}"
    return None


def _encode(obj, tensors: dict):
    """JSON skeleton of a nested optimizer state; tensors are moved into `tensors` as optim.<i>."""
    if isinstance(obj, torch.Tensor):
        name = f"{OPTIM_PREFIX}{len(tensors)}"
        tensors[name] = obj.detach().cpu().clone()
        return {"__tensor__": name}
    if isinstance(obj, dict):
        if not all(isinstance(k, (int, str)) and not isinstance(k, bool) for k in obj):
            raise ValueError(f"optimizer_state dict keys must be int or str, got {list(obj)!r}")
        return {"__dict__": [[k, _encode(v, tensors)] for k, v in obj.items()]}
    if isinstance(obj, tuple):
        return {"__tuple__": [_encode(v, tensors) for v in obj]}
    if isinstance(obj, list):
        return [_encode(v, tensors) for v in obj]
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise ValueError(f"optimizer_state may hold only tensors, numbers, strings, None, lists, tuples and dicts; got {type(obj).__name__}")


# ---------------------------------------------------------------------------------------- loading
def read_metadata(path, max_bytes: int = MAX_CHECKPOINT_BYTES) -> dict:
    """The "rdl" document of a checkpoint, reading only the file's header (cheap; for listings)."""
    path = Path(path)
    size = _checked_size(path, max_bytes)
    with open(path, "rb") as f:
        prefix = f.read(8)
        header_len = _header_length(prefix, size, path.name)
        return _document(_parse_header(f.read(header_len), path.name), path.name)


def load(path, device="cpu", max_bytes: int = MAX_CHECKPOINT_BYTES):
    """(model, diffusion, metadata): the EMA model rebuilt from its config, in eval mode on `device`."""
    state = load_for_resume(path, device, max_bytes)
    return state.model, state.diffusion, state.metadata


def load_bytes(data: bytes, name: str = "upload", device="cpu", max_bytes: int = MAX_UPLOAD_BYTES):
    """Like load() for a checkpoint held in memory (e.g. an uploaded file); `name` is used in errors."""
    state = _parse(_checked_bytes(data, max_bytes, name), name, _checked_device(device))
    return state.model, state.diffusion, state.metadata


def load_for_resume(path, device="cpu", max_bytes: int = MAX_CHECKPOINT_BYTES) -> ResumeState:
    """The EMA model as in load(), plus the raw weights and optimizer state if the file has them."""
    path = Path(path)
    device = _checked_device(device)
    _checked_size(path, max_bytes)
    with open(path, "rb") as f:
        data = f.read(max_bytes + 1)  # +1: notices a file that grew past the cap since stat()
    return _parse(_checked_bytes(data, max_bytes, path.name), path.name, device)


def _checked_device(device) -> torch.device:
    try:
        return torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise ValueError(f"device must be a torch device such as 'cpu' or 'cuda', got {device!r}") from e


def _check_max_bytes(max_bytes) -> None:
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 1:
        raise ValueError(f"max_bytes must be a positive integer, got {max_bytes!r}")


def _checked_size(path: Path, max_bytes: int) -> int:
    _check_max_bytes(max_bytes)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint file at {str(path)!r}")
    size = path.stat().st_size
    if size > max_bytes:
        raise CheckpointError(f"{path.name}: file is {size} bytes, more than the limit of {max_bytes} bytes")
    return size


def _checked_bytes(data, max_bytes: int, name: str) -> bytes:
    _check_max_bytes(max_bytes)
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ValueError(f"data must be bytes, got {type(data).__name__}")
    if len(data) > max_bytes:
        raise CheckpointError(f"{name}: file is {len(data)} bytes, more than the limit of {max_bytes} bytes")
    return bytes(data)


def _header_length(prefix: bytes, size: int, name: str) -> int:
    """The safetensors header length, checked against the file size and MAX_HEADER_BYTES."""
    if len(prefix) < 8 or size < 8:
        raise CheckpointError(f"{name}: not a safetensors checkpoint (only {size} bytes; truncated?)")
    (header_len,) = struct.unpack("<Q", prefix[:8])
    if header_len > MAX_HEADER_BYTES:
        raise CheckpointError(f"{name}: not a safetensors checkpoint (header length {header_len} bytes is "
                              f"absurd; the limit is {MAX_HEADER_BYTES}) - wrong file type or corrupted")
    if header_len > size - 8:
        raise CheckpointError(f"{name}: truncated or not a safetensors checkpoint (header needs {header_len} "
                              f"bytes, only {size - 8} follow)")
    return header_len


def _parse_header(raw: bytes, name: str) -> dict:
    """The safetensors str->str metadata from the JSON header bytes (tensor entries: safetensors checks them)."""
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{name}: corrupted safetensors header (not valid JSON: {e})") from e
    if not isinstance(header, dict):
        raise CheckpointError(f"{name}: corrupted safetensors header (a JSON object was expected)")
    metadata = header.get("__metadata__") or {}
    if not isinstance(metadata, dict):
        raise CheckpointError(f"{name}: corrupted safetensors header (__metadata__ is not an object)")
    return metadata


def _document(metadata: dict, name: str) -> dict:
    """The validated "rdl" JSON document (everything but the model/diffusion configs' contents)."""
    if METADATA_KEY not in metadata:
        raise CheckpointError(f"{name}: a safetensors file, but not a Reverse Diffusion Lab checkpoint "
                              f"(no {METADATA_KEY!r} metadata)")
    try:
        doc = json.loads(metadata[METADATA_KEY])
    except (TypeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{name}: the {METADATA_KEY!r} metadata is not valid JSON ({e})") from e
    if not isinstance(doc, dict):
        raise CheckpointError(f"{name}: the {METADATA_KEY!r} metadata must be a JSON object")
    if doc.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{name}: unsupported checkpoint format_version {doc.get('format_version')!r} "
                              f"(this version of the app reads format_version {FORMAT_VERSION})")
    if set(doc) != set(DOCUMENT_KEYS):
        raise CheckpointError(f"{name}: checkpoint metadata keys {sorted(doc)} differ from the expected "
                              f"{sorted(DOCUMENT_KEYS)}")
    problem = _training_info_problem(doc)
    if problem is None and not (isinstance(doc["model"], dict) and isinstance(doc["diffusion"], dict)):
        problem = "the 'model' and 'diffusion' configs must be JSON objects"
    if problem is None and not all(isinstance(doc[k], bool) for k in ("has_raw", "has_optimizer")):
        problem = "'has_raw' and 'has_optimizer' must be true or false"
    if problem is None and not all(isinstance(doc[k], str) for k in ("torch_version", "created")):
        problem = "'torch_version' and 'created' must be strings"
    if problem:
        raise CheckpointError(f"{name}: invalid checkpoint metadata: {problem}")
    return doc


def _parse(data: bytes, name: str, device: torch.device) -> ResumeState:
    header_len = _header_length(data[:8], len(data), name)
    metadata = _parse_header(data[8:8 + header_len], name)
    doc = _document(metadata, name)
    try:
        tensors = safetensors_load(data)  # validates dtypes, shapes and offsets against the buffer
    except SafetensorError as e:
        raise CheckpointError(f"{name}: corrupted or truncated safetensors data ({e})") from e
    try:
        with torch.device("meta"):  # shapes only, no memory: a hostile config cannot allocate huge weights
            skeleton = build_model(doc["model"])
    except (ValueError, TypeError, KeyError) as e:
        raise CheckpointError(f"{name}: invalid model config in checkpoint ({e})") from e
    try:
        diffusion = GaussianDiffusion.from_config(doc["diffusion"])
    except (ValueError, TypeError, KeyError) as e:
        raise CheckpointError(f"{name}: invalid diffusion config in checkpoint ({e})") from e
    problem = _channels_problem(skeleton.config, diffusion)
    if problem:
        raise CheckpointError(f"{name}: model and diffusion configs do not fit together: {problem}")

    expected = skeleton.state_dict()
    ema = _take_weights(tensors, EMA_PREFIX, expected, name)
    raw = _take_weights(tensors, RAW_PREFIX, expected, name) if doc["has_raw"] else None
    optimizer_state = None
    if doc["has_optimizer"]:
        if OPTIMIZER_KEY not in metadata:
            raise CheckpointError(f"{name}: has_optimizer is true but the {OPTIMIZER_KEY!r} metadata is missing")
        try:
            skeleton = json.loads(metadata[OPTIMIZER_KEY])
        except (TypeError, json.JSONDecodeError) as e:
            raise CheckpointError(f"{name}: the {OPTIMIZER_KEY!r} metadata is not valid JSON ({e})") from e
        optimizer_state = _decode(skeleton, tensors, name)
    leftover = sorted(tensors)  # every tensor taken above was popped; anything else is unexplained
    if leftover:
        raise CheckpointError(f"{name}: unexpected tensors in checkpoint: {leftover[:5]}")
    model = build_model(doc["model"])  # now known to be no bigger than the weights in the file
    model.load_state_dict(ema, strict=True)
    return ResumeState(model.to(device).eval(), diffusion, doc, raw, optimizer_state)


def _take_weights(tensors: dict, prefix: str, expected: dict, name: str) -> dict:
    """Pop the `prefix` weights out of `tensors`, checking names, shapes, dtypes and finiteness."""
    found = {k[len(prefix):]: tensors.pop(k) for k in [k for k in tensors if k.startswith(prefix)]}
    missing, extra = sorted(set(expected) - set(found)), sorted(set(found) - set(expected))
    if missing or extra:
        raise CheckpointError(f"{name}: {prefix}* weights do not match the model rebuilt from its config "
                              f"(missing {missing[:5]}, unexpected {extra[:5]})")
    for key, value in found.items():
        if value.shape != expected[key].shape or value.dtype != expected[key].dtype:
            raise CheckpointError(f"{name}: weight {prefix}{key} has shape {tuple(value.shape)} and dtype {value.dtype}, "
                                  f"the model expects {tuple(expected[key].shape)} and {expected[key].dtype}")
        _check_finite(value, prefix + key, name)
    return found


def _check_finite(value: torch.Tensor, key: str, name: str) -> None:
    if value.is_floating_point() and not bool(torch.isfinite(value).all()):
        raise CheckpointError(f"{name}: tensor {key} contains NaN or infinite values")


def _decode(obj, tensors: dict, name: str):
    """Inverse of _encode; pops the optimizer tensors out of `tensors`."""
    if isinstance(obj, list):
        return [_decode(v, tensors, name) for v in obj]
    if not isinstance(obj, dict):
        return obj
    if set(obj) == {"__tensor__"}:
        key = obj["__tensor__"]
        if not isinstance(key, str) or not key.startswith(OPTIM_PREFIX) or key not in tensors:
            raise CheckpointError(f"{name}: optimizer state refers to a missing tensor {key!r}")
        value = tensors.pop(key)
        _check_finite(value, key, name)
        return value
    if set(obj) == {"__tuple__"} and isinstance(obj["__tuple__"], list):
        return tuple(_decode(v, tensors, name) for v in obj["__tuple__"])
    if set(obj) == {"__dict__"} and isinstance(obj["__dict__"], list) and all(
            isinstance(p, list) and len(p) == 2 and isinstance(p[0], (int, str)) for p in obj["__dict__"]):
        return {k: _decode(v, tensors, name) for k, v in obj["__dict__"]}
    raise CheckpointError(f"{name}: malformed optimizer state entry {str(obj)[:80]}")
