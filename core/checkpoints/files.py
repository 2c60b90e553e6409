"""Writing and loading checkpoints (the format and the checks: core.checkpoints)."""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load as safetensors_load
from safetensors.torch import save as safetensors_save

from core.checkpoints.info import CheckpointInfo, parse_json, unencodable_text
from core.checkpoints.validate import (
    EMA_PREFIX,
    FORMAT_VERSION,
    MAX_CHECKPOINT_BYTES,
    MAX_HEADER_BYTES,
    MAX_UPLOAD_BYTES,
    METADATA_KEY,
    OPTIM_PREFIX,
    OPTIMIZER_KEY,
    RAW_PREFIX,
    TRAINING_INFO_KEYS,
    CheckpointError,
    channels_problem,
    checked_configs,
    checked_document,
    decode_tensors,
    header_length,
    parse_header,
    probe_model,
    take_weights,
)
from core.diffusion.gaussian_diffusion import GaussianDiffusion
from core.nets.build import build_model


@dataclass
class CheckpointContents:
    """Everything needed to continue training. Tensors in raw_state / optimizer_state are on the CPU
    (torch.optim.Optimizer.load_state_dict moves state to the parameters' device itself)."""

    model: torch.nn.Module  # the EMA model, as returned by load()
    diffusion: GaussianDiffusion
    metadata: dict
    raw_state: dict | None  # state_dict of the raw model, or None if not saved
    optimizer_state: dict | None  # optimizer.state_dict(), or None if not saved


def save(path, model, diffusion, metadata: CheckpointInfo | dict | None = None, raw_model=None,
         optimizer_state=None) -> Path:
    """Write a checkpoint atomically (temporary file in the same folder, then os.replace).

    metadata: a CheckpointInfo describing `model` under `diffusion` (CheckpointInfo.describe), or a dict of
    TRAINING_INFO_KEYS (all optional; the older form, still accepted). raw_model and optimizer_state (an
    `optimizer.state_dict()`) are stored only if given, for resuming training.
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
    problem = channels_problem(model.config, diffusion)
    if problem:
        raise ValueError(problem)
    info = _info_for(model, diffusion, metadata)

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
        **info.to_document(),
        "torch_version": torch.__version__,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "has_raw": raw_model is not None,
        "has_optimizer": optimizer_state is not None,
    }
    try:
        header[METADATA_KEY] = json.dumps(document, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise ValueError(f"checkpoint metadata must be JSON-serialisable with finite numbers: {e}") from e
    problem = unencodable_text(document)
    if problem:  # json.dumps wrote it as an escape that no load accepts (parse_json): the run would be lost
        raise ValueError(f"checkpoint metadata holds text that is not valid Unicode: {problem}")
    _write_atomically(path, safetensors_save(tensors, metadata=header))
    return path


def _info_for(model, diffusion, metadata) -> CheckpointInfo:
    """The CheckpointInfo to store: the one given (checked against the model), or one made from a dict."""
    if isinstance(metadata, CheckpointInfo):
        if metadata.model != model.config or metadata.diffusion != diffusion.to_config():
            raise ValueError("metadata describes another model or diffusion than the one saved "
                             "(make it with CheckpointInfo.describe(model, diffusion, ...))")
        return metadata
    metadata = {} if metadata is None else metadata
    if not isinstance(metadata, dict):
        raise ValueError(f"metadata must be a CheckpointInfo or a dict, got {type(metadata).__name__}")
    unknown = sorted(set(metadata) - set(TRAINING_INFO_KEYS), key=str)
    if unknown:
        raise ValueError(f"metadata has unknown keys {unknown}; allowed: {', '.join(TRAINING_INFO_KEYS)}")
    return CheckpointInfo.describe(model, diffusion, **metadata)


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
        header_len = header_length(prefix, size, path.name)
        return checked_document(parse_header(f.read(header_len), path.name)[0], path.name)


def load(path, device="cpu", max_bytes: int = MAX_CHECKPOINT_BYTES):
    """(model, diffusion, metadata): the EMA model rebuilt from its config, in eval mode on `device`."""
    state = load_for_resume(path, device, max_bytes)
    return state.model, state.diffusion, state.metadata


def load_bytes(data: bytes, name: str = "upload", device="cpu", max_bytes: int = MAX_UPLOAD_BYTES):
    """Like load() for a checkpoint held in memory (e.g. an uploaded file); `name` is used in errors."""
    state = _parse(_checked_bytes(data, max_bytes, name), name, _checked_device(device))
    return state.model, state.diffusion, state.metadata


def load_for_resume(path, device="cpu", max_bytes: int = MAX_CHECKPOINT_BYTES) -> CheckpointContents:
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


def _parse(data: bytes, name: str, device: torch.device) -> CheckpointContents:
    header_len = header_length(data[:8], len(data), name)
    metadata, _ = parse_header(data[8:8 + header_len], name)
    doc = checked_document(metadata, name)
    net_config, diffusion = checked_configs(doc, name)
    try:
        tensors = safetensors_load(data)  # validates dtypes, shapes and offsets against the buffer
    except SafetensorError as e:
        raise CheckpointError(f"{name}: corrupted or truncated safetensors data ({str(e)[:200]})") from e
    with torch.device("meta"):  # shapes only, no memory
        expected = build_model(doc["model"]).state_dict()
    ema = take_weights(tensors, EMA_PREFIX, expected, name)
    raw = take_weights(tensors, RAW_PREFIX, expected, name) if doc["has_raw"] else None
    optimizer_state = None
    if doc["has_optimizer"]:
        if OPTIMIZER_KEY not in metadata:
            raise CheckpointError(f"{name}: has_optimizer is true but the {OPTIMIZER_KEY!r} metadata is missing")
        try:
            skeleton = parse_json(metadata[OPTIMIZER_KEY], f"the {OPTIMIZER_KEY!r} metadata", MAX_HEADER_BYTES)
        except ValueError as e:
            raise CheckpointError(f"{name}: {e}") from None
        optimizer_state = decode_tensors(skeleton, tensors, name)
    leftover = sorted(tensors)  # every tensor taken above was popped; anything else is unexplained
    if leftover:
        raise CheckpointError(f"{name}: unexpected tensors in checkpoint: {leftover[:5]}")
    model = build_model(doc["model"])  # within every bound, and the same shapes as the weights in the file
    model.load_state_dict(ema, strict=True)
    probe_model(model.eval(), net_config, diffusion.T, name)
    return CheckpointContents(model.to(device), diffusion, doc, raw, optimizer_state)


