"""The model catalogue every page shares: which models exist and which one is active.

Models come from three places: the checkpoints shipped in `checkpoints/`, models trained by this session
(their checkpoints in the job registry's run store, until their owner discards them), and `.safetensors` files the user uploads
(validated by core.checkpoints). Nothing here does diffusion math.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import streamlit as st
import torch

from core import checkpoints
from ui.session import ROOT, get_registry, session_id

CHECKPOINT_DIR = Path(os.environ.get("RDL_CHECKPOINT_DIR") or ROOT / "checkpoints")  # env: point the app at another folder
DEFAULT_MODEL = "shipped:mnist_eps"


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

    @property
    def data_shape(self) -> tuple:
        return tuple((self.metadata.get("data") or {}).get("shape") or [])

    @property
    def dataset(self) -> str | None:
        """The core.data.datasets name of the training data, or None if the checkpoint does not say."""
        data = self.metadata.get("data") or {}
        return data.get("dataset") or data.get("name")

    @property
    def token(self) -> str:
        """Changes whenever the weights may have changed (another file, more training): for cache keys."""
        digest = hashlib.sha256(json.dumps(self.metadata, sort_keys=True, default=str).encode()).hexdigest()
        return f"{self.key}:{digest[:16]}"


@st.cache_data(show_spinner=False)
def _shipped_metadata(path: str, mtime: float) -> dict:
    return checkpoints.read_metadata(path)


def shipped_models() -> dict:
    """key -> (label, path) for every valid checkpoint in checkpoints/ (the classifier excluded)."""
    found = {}
    for path in sorted(CHECKPOINT_DIR.glob("*.safetensors")):
        try:
            meta = _shipped_metadata(str(path), path.stat().st_mtime)
        except ValueError:
            continue  # not a diffusion checkpoint (e.g. the metrics classifier) or damaged: not offered
        if "diffusion" not in meta:
            continue
        found[f"shipped:{path.stem}"] = (f"{path.stem} (shipped)", str(path))
    return found


@st.cache_resource(show_spinner="Loading checkpoint…", max_entries=16)
def _load_shipped(path: str, mtime: float):
    return checkpoints.load(path, device="cpu")


@st.cache_resource(show_spinner="Checking uploaded checkpoint…", max_entries=8)
def _load_uploaded(digest: str, data: bytes, name: str):
    return checkpoints.load_bytes(data, name=name)


def add_uploaded(name: str, data: bytes) -> str:
    """Validate an uploaded checkpoint; on success it becomes selectable and its key is returned.
    Raises ValueError (CheckpointError) with a readable message for a bad file."""
    digest = hashlib.sha256(data).hexdigest()[:16]
    _load_uploaded(digest, data, name)
    uploads = st.session_state.setdefault("uploaded_models", {})
    key = f"uploaded:{digest}"
    uploads[key] = (f"{name} (uploaded)", digest, data, name)
    return key


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
    labels.update({key: value[0] for key, value in st.session_state.get("uploaded_models", {}).items()})
    return labels


def load_model(key: str) -> LoadedModel:
    """Load a catalogue entry (cached). Raises KeyError for an unknown key."""
    source = key.split(":", 1)[0]
    if source == "shipped":
        label, path = shipped_models()[key]
        model, diffusion, metadata = _load_shipped(path, Path(path).stat().st_mtime)
    elif source == "uploaded":
        label, digest, data, name = st.session_state["uploaded_models"][key]
        model, diffusion, metadata = _load_uploaded(digest, data, name)
    elif source == "trained":
        label, job_id = trained_models()[key]
        model, diffusion, metadata = _export_trained(job_id)
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


def model_summary(loaded: LoadedModel) -> dict:
    """The settings the sidebar shows, as label -> value strings."""
    meta = loaded.metadata
    schedule = meta["diffusion"]["schedule"]
    training = meta.get("training") or {}
    summary = {
        "data": f"{meta.get('data', {}).get('dataset') or '?'} {tuple(meta.get('data', {}).get('shape', []))}",
        "schedule": f"{schedule['kind']}, T={schedule['T']}",
        "prediction": meta["diffusion"]["prediction"],
        "variance": meta["diffusion"]["variance"],
        "parameters": f"{sum(p.numel() for p in loaded.model.parameters()):,}",
        "training steps": f"{meta.get('steps', '?')}",
    }
    if training.get("model_size"):
        summary["model size"] = training["model_size"]
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
