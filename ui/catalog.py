"""The model catalogue every page shares: which models exist and which one is active.

Models come from three places: the checkpoints shipped in `checkpoints/`, models trained by this session
(their checkpoints in the job registry's run store, until their owner discards them), and `.safetensors` files the user uploads
(validated by core.checkpoints). Nothing here does diffusion math.

Uploads live in this browser session's st.session_state only (never in a process-wide cache), so they are
released when the session ends; a session holds at most MAX_UPLOADS of them and MAX_UPLOAD_SESSION_BYTES of
files in total. File names and other strings from a file are shown through ui.text.
"""

from __future__ import annotations

import hashlib
import json
import weakref
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path

import streamlit as st
import torch

from core import checkpoints, paths
from core.checkpoints import CheckpointInfo
from ui.session import get_registry, session_id
from ui.text import safe_name

CHECKPOINT_DIR = paths.checkpoint_dir()  # $RDL_CHECKPOINT_DIR points the app at another folder (core/paths.py)
DEFAULT_MODEL = "shipped:mnist_eps"
MAX_UPLOADS = 4  # uploaded models one browser session keeps at a time
MAX_UPLOAD_SESSION_BYTES = 120 * 2**20  # their files' total size (one file: .streamlit/config.toml, 50 MB)


@dataclass
class LoadedModel:
    """A model ready to sample from: the EMA network, its diffusion process and its metadata."""

    key: str
    label: str
    model: torch.nn.Module
    diffusion: object
    metadata: dict

    @property
    def is_image_model(self) -> bool:
        return len(self.data_shape) == 3

    @cached_property
    def info(self) -> CheckpointInfo:
        """The typed metadata (core.checkpoints.CheckpointInfo), parsed once per LoadedModel (its metadata is fixed)."""
        return CheckpointInfo.from_document(self.metadata)

    @property
    def data_shape(self) -> tuple:
        return tuple(self.info.data_shape)

    @property
    def dataset(self) -> str | None:
        """The core.data.datasets name of the training data, or None if the checkpoint does not say."""
        return self.info.data.dataset

    @cached_property
    def token(self) -> str:
        """Changes whenever the weights may have changed (another file, more training): for cache keys. Computed once
        per LoadedModel (a page asks for it several times a run)."""
        digest = hashlib.sha256(json.dumps(self.metadata, sort_keys=True, default=str).encode()).hexdigest()
        return f"{self.key}:{digest[:16]}"


@lru_cache(maxsize=256)
def _is_diffusion_checkpoint(path: str, mtime: float) -> bool:
    """Whether this version (path, modification time) of a file in checkpoints/ is a diffusion checkpoint: False for a
    damaged file or another kind (e.g. the metrics classifier). Decided once per file version for the whole server
    process, refusals included: every run of every page lists the shipped models several times (sidebar, active
    model), and a Streamlit cache's own cost per call (hashing the arguments) was most of the listing's."""
    try:
        return "diffusion" in checkpoints.read_metadata(path)
    except ValueError:
        return False


def shipped_models() -> dict:
    """key -> (label, path) for every valid checkpoint in checkpoints/ (the classifier excluded)."""
    found = {}
    for path in sorted(CHECKPOINT_DIR.glob("*.safetensors")):
        if _is_diffusion_checkpoint(str(path), path.stat().st_mtime):
            found[f"shipped:{path.stem}"] = (f"{path.stem} (shipped)", str(path))
    return found


@st.cache_resource(show_spinner="Loading checkpoint…", max_entries=16)
def _load_shipped(path: str, mtime: float):
    return checkpoints.load(path, device="cpu")


def add_uploaded(name: str, data: bytes) -> str:
    """Validate an uploaded checkpoint; on success it becomes selectable and its key is returned.
    Raises ValueError (CheckpointError) with a readable message for a bad file or when this session already
    holds its share of uploads. Only the loaded model is kept (not the file's bytes), in this session's state."""
    uploads = st.session_state.setdefault("uploaded_models", {})
    digest = hashlib.sha256(data).hexdigest()[:16]
    key = f"uploaded:{digest}"
    if key in uploads:
        return key
    held = sum(entry["bytes"] for entry in uploads.values())
    if len(uploads) >= MAX_UPLOADS or held + len(data) > MAX_UPLOAD_SESSION_BYTES:
        raise ValueError(f"this session already holds {len(uploads)} uploaded models ({held / 2**20:.0f} MB); the "
                         f"limit is {MAX_UPLOADS} models and {MAX_UPLOAD_SESSION_BYTES // 2**20} MB: remove uploads first")
    label = f"{safe_name(name)} (uploaded)"
    model, diffusion, metadata = checkpoints.load_bytes(data, name=safe_name(name))
    uploads[key] = {"label": label, "bytes": len(data), "loaded": (model, diffusion, metadata)}
    return key


def remove_uploads() -> None:
    """Forget every uploaded model of this session (their memory is freed)."""
    st.session_state["uploaded_models"] = {}


def trained_models() -> dict:
    """key -> (label, job_id) for models trained by this session's jobs that have a saved checkpoint to use."""
    found = {}
    for job in get_registry().jobs_for(session_id()):
        snapshot = job.snapshot()
        if snapshot.saved_step and snapshot.checkpoint and snapshot.state in ("stopped", "finished", "crashed"):
            config = job.config
            label = f"{config.dataset} · step {snapshot.saved_step} · {config.prediction}/{config.variance} (trained here)"
            found[f"trained:{job.job_id}"] = (label, job.job_id)
    return found


def _export_trained(job_id: str):
    """(model, diffusion, metadata) of a trained job's checkpoint (its EMA weights), loaded once per file version."""
    job = get_registry().get(job_id)
    if job is None:
        raise KeyError(job_id)
    path = job.checkpoint
    return _load_shipped(str(path), path.stat().st_mtime)


def available_models() -> dict:
    """key -> label for the sidebar selector, shipped first."""
    labels = {key: label for key, (label, _) in shipped_models().items()}
    labels.update({key: label for key, (label, _) in trained_models().items()})
    labels.update({key: entry["label"] for key, entry in st.session_state.get("uploaded_models", {}).items()})
    return labels


def load_model(key: str) -> LoadedModel:
    """Load a catalogue entry (cached). Raises KeyError for an unknown key."""
    source = key.split(":", 1)[0]
    if source == "shipped":
        label, path = shipped_models()[key]
        model, diffusion, metadata = _load_shipped(path, Path(path).stat().st_mtime)
    elif source == "uploaded":
        entry = st.session_state["uploaded_models"][key]
        label, (model, diffusion, metadata) = entry["label"], entry["loaded"]
    elif source == "trained":
        label, job_id = trained_models()[key]
        model, diffusion, metadata = _export_trained(job_id)
        get_registry().mark_used(session_id(), job_id)  # the run store's cleanup keeps a model in use
    else:
        raise KeyError(key)
    return LoadedModel(key=key, label=label, model=model, diffusion=diffusion, metadata=metadata)


def active_model_key() -> str | None:
    models = available_models()
    key = st.session_state.get("active_model_key")
    if key not in models:
        key = DEFAULT_MODEL if DEFAULT_MODEL in models else next(iter(models), None)
    return key


def active_model() -> LoadedModel | None:
    """The model selected in the sidebar (the shipped MNIST ε model by default), or None if there is none."""
    key = active_model_key()
    return load_model(key) if key else None


def models_of(predicate) -> dict:
    """key -> LoadedModel for every available model whose metadata satisfies predicate (for comparisons)."""
    result = {}
    for key in available_models():
        loaded = load_model(key)
        if predicate(loaded):
            result[key] = loaded
    return result


_PARAMETER_COUNTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # network -> its number of parameters


def parameter_count(model: torch.nn.Module) -> int:
    """The network's number of parameters, counted once per network object (the sidebar shows it on every run; a
    loaded network's architecture never changes, and a network that is dropped is forgotten here too)."""
    count = _PARAMETER_COUNTS.get(model)
    if count is None:
        count = _PARAMETER_COUNTS[model] = sum(p.numel() for p in model.parameters())
    return count


def model_summary(loaded: LoadedModel) -> dict:
    """The settings the sidebar shows, as label -> value strings (values may quote the file: show them as text)."""
    info = loaded.info
    schedule = info.diffusion["schedule"]
    summary = {
        "data": f"{info.data.dataset or '?'} {tuple(info.data_shape)}",
        "schedule": f"{schedule['kind']}, T={schedule['T']}",
        "prediction": info.diffusion["prediction"],
        "variance": info.diffusion["variance"],
        "parameters": f"{parameter_count(loaded.model):,}",
        "training steps": f"{'?' if info.steps is None else info.steps}",
    }
    if info.model_size:
        summary["model size"] = info.model_size
    return summary


def require_active_model() -> LoadedModel | None:
    """The active model, or None after telling the user why there is none (never a traceback)."""
    try:
        loaded = active_model()
    except (ValueError, KeyError) as error:
        st.error(f"The active model could not be loaded: {error}")
        return None
    if loaded is None:
        st.info("No model is available yet. Train one on the Train page or upload a checkpoint in the sidebar.")
    return loaded
