"""Save a training run to a checkpoint and read it back to continue (core.checkpoints does the file format).

A checkpoint of a run holds the EMA weights (what sampling uses), the raw weights, the Adam state, the
generator state, the run's ProgressRecord (step, seconds, loss curve, loss per t) with the averaging state that
continues it, and the TrainConfig as JSON (core.checkpoints.TrainingRecord): `read_resume_point` turns it into a
`ResumePoint`, which `restore` applies to a fresh TrainState built from the same config, so the run goes on
bit for bit as if it had never stopped (on the same device type; on another one the generator starts from
a fresh seed).
"""

from __future__ import annotations

import base64
import copy
import dataclasses
from dataclasses import dataclass
from pathlib import Path

import torch

from core import checkpoints, runtime
from core.training.config import TrainConfig
from core.training.stats import LossHistory, ProgressRecord, TimestepProfile
from core.training.step import TrainState

RESUME_FIELDS = ("generator_state", "generator_device", "progress", "loss_averaging", "profile_averaging")  # + config


@dataclass
class ResumePoint:
    """A saved run, read and checked: everything `restore` and a Trainer need to continue it."""

    config: TrainConfig
    step: int
    raw_state: dict
    ema_state: dict
    optimizer_state: dict | None
    generator_state: torch.Tensor | None  # None when saved on another device type
    history: LossHistory
    profile: TimestepProfile
    elapsed_seconds: float
    last_loss: float | None


def save_run(path, state: TrainState, history: LossHistory, profile: TimestepProfile, last_loss: float | None,
             elapsed_seconds: float, device_name: str) -> Path:
    """Write the run's checkpoint (atomically, via core.checkpoints.save). The caller keeps the weights still."""
    ema = copy.deepcopy(state.ema).to("cpu", memory_format=torch.contiguous_format)
    raw = copy.deepcopy(state.model).to("cpu", memory_format=torch.contiguous_format)
    optimizer_state = _to_cpu(state.optimizer.state_dict())
    training = checkpoints.TrainingRecord(
        config=state.config.to_json(),
        generator_state=base64.b64encode(state.generator.get_state().numpy().tobytes()).decode("ascii"),
        generator_device=state.device.type, progress=ProgressRecord.of_run(state.step, elapsed_seconds, history, profile),
        loss_averaging=history.averaging(), profile_averaging=profile.averaging())
    info = checkpoints.CheckpointInfo.describe(
        ema, state.diffusion, training=training,
        data=checkpoints.DataInfo(dataset=state.config.dataset, shape=tuple(state.data.shape[1:])),
        steps=state.step, final_loss=last_loss, training_seconds=elapsed_seconds, device=device_name)
    return checkpoints.save(path, ema, state.diffusion, info, raw_model=raw, optimizer_state=optimizer_state)


def read_resume_point(path, device: str | None = None) -> ResumePoint:
    """Read a run saved by `save_run`. device overrides the saved config's ("auto" | "cpu" | "cuda").
    Raises core.checkpoints.CheckpointError for a file that holds no resumable run."""
    saved = checkpoints.load_for_resume(path)
    info = checkpoints.CheckpointInfo.from_document(saved.metadata)  # checked when the file was loaded
    training = info.training
    if training is None or saved.raw_state is None:
        raise checkpoints.CheckpointError(f"{path} holds no training state to resume from "
                                          f"(it was not saved by a Trainer, or saved for sampling only)")
    missing = [name for name in RESUME_FIELDS if getattr(training, name) is None]
    if missing:
        raise checkpoints.CheckpointError(f"{path}: its training state cannot be resumed: the record has no "
                                          f"{', '.join(missing)}")
    try:
        config = TrainConfig.from_json(training.config)
        if device is not None:
            config = dataclasses.replace(config, device=device)
        generator_state = None
        if training.generator_device == runtime.resolve_device(config.device).type:
            raw = base64.b64decode(training.generator_state, validate=True)
            generator_state = torch.frombuffer(bytearray(raw), dtype=torch.uint8)
        return ResumePoint(
            config=config, step=training.progress.step, raw_state=saved.raw_state,
            ema_state=saved.model.state_dict(), optimizer_state=saved.optimizer_state,
            generator_state=generator_state, history=training.loss_curve(), profile=training.timestep_profile(),
            elapsed_seconds=training.progress.seconds, last_loss=info.final_loss)
    except checkpoints.CheckpointError:
        raise
    except (KeyError, TypeError, ValueError, RuntimeError) as error:
        raise checkpoints.CheckpointError(f"{path}: its training state cannot be resumed: {error}") from error


def restore(state: TrainState, point: ResumePoint) -> None:
    """Load a ResumePoint's weights, optimizer and generator state into a fresh TrainState of its config."""
    state.model.load_state_dict(point.raw_state)
    state.ema.load_state_dict(point.ema_state)
    if point.optimizer_state is not None:
        state.optimizer.load_state_dict(point.optimizer_state)
    if point.generator_state is not None:
        state.generator.set_state(point.generator_state)
    state.step = point.step


def _to_cpu(value):
    """Deep copy of a (nested) optimizer state dict with every tensor moved to the CPU."""
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu", copy=True)
    if isinstance(value, dict):
        return {key: _to_cpu(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_to_cpu(item) for item in value)
    return value
