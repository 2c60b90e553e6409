"""CheckpointInfo.training is a TrainingRecord: every shipped checkpoint reads into one and writes back the same JSON,
and a hostile "training" object is refused at the boundary (core.checkpoints.validate) with one line."""

import base64
import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

import core.checkpoints as ck
from core.checkpoints.validate import checked_document
from core.diffusion.gaussian_diffusion import GaussianDiffusion
from core.diffusion.schedules import make_schedule
from core.nets.build import build_model
from core.training.config import TrainConfig
from core.training.saving import read_resume_point
from core.training.stats import LossHistory, TimestepProfile

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = sorted(p for p in (ROOT / "checkpoints").glob("*.safetensors") if p.name != "mnist_classifier.safetensors")
TINY_MLP = {"kind": "mlp", "data_dim": 2, "out_dim": 2, "hidden": 16, "depth": 2, "time_embed_dim": 8}


def raw_document(path) -> dict:
    """The "rdl" document read with safetensors' own metadata reader (not through core.checkpoints)."""
    with safe_open(str(path), "pt") as handle:
        return json.loads(handle.metadata()["rdl"])


def record_dict(**changes) -> dict:
    history, profile = LossHistory(4), TimestepProfile(10, bins=5)
    for step in range(1, 8):
        history.add(step, 1.0 / step)
    profile.add(torch.tensor([0, 3, 9]), torch.tensor([0.5, 0.25, 0.125]))
    state = base64.b64encode(torch.Generator().manual_seed(3).get_state().numpy().tobytes()).decode("ascii")
    record = {"config": TrainConfig(dataset="two_moons").to_json(), "step": 7, "generator_state": state,
              "generator_device": "cpu", "loss_history": history.state(), "profile": profile.state()}
    return {**record, **changes}


def test_the_shipped_checkpoints_are_all_checked():
    assert len(SHIPPED) == 9  # 4 MNIST models, 5 toys: a file that disappears or stops loading fails here


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_every_shipped_checkpoint_reads_into_a_record_that_writes_the_same_json(path):
    document = raw_document(path)
    info = ck.CheckpointInfo.from_document(ck.read_metadata(path))
    record = info.training
    assert isinstance(record, ck.TrainingRecord)
    assert record.to_dict() == document["training"]
    assert ck.TrainingRecord.from_dict(record.to_dict()) == record
    assert info.to_document()["training"] == document["training"]
    assert record.step == document["steps"] and info.model_size == document["training"]["config"]["model_size"]
    curve = record.loss_curve()
    assert curve.steps == document["training"]["loss_history"]["steps"] and len(curve.steps) == len(curve.losses)
    assert record.timestep_profile().bin_edges()[-1] == document["diffusion"]["schedule"]["T"]
    TrainConfig.from_json(record.config)  # the resumable config


def test_a_record_round_trips_through_a_saved_file(tmp_path):
    model = build_model(TINY_MLP)
    diffusion = GaussianDiffusion(make_schedule("linear", 10))
    record = ck.TrainingRecord.from_dict(record_dict())
    path = ck.save(tmp_path / "m.safetensors", model, diffusion, {"training": record, "data": {"dataset": "two_moons",
                                                                                                 "shape": [2]}})
    assert raw_document(path)["training"] == record_dict()
    assert ck.CheckpointInfo.from_document(ck.read_metadata(path)).training == record
    assert record.loss_curve().state() == record_dict()["loss_history"]


def test_only_the_config_is_required_and_the_rest_defaults_to_none():
    record = ck.TrainingRecord.from_dict({"config": {"seed": 4}})
    assert record.to_dict() == {"config": {"seed": 4}, "step": None, "generator_state": None, "generator_device": None,
                                "loss_history": None, "profile": None}
    assert record.loss_curve() is None and record.timestep_profile() is None


BAD_RECORDS = {
    "not a dict": ([1, 2], r"'training'=\[1, 2\] is not allowed; expected a TrainingRecord, a dict or None"),
    "unknown key": (record_dict(lr=0.1), r"keys .* are not allowed; expected 'config' and any of step"),
    "no config": ({"step": 3}, r"keys \['step'\] are not allowed; expected 'config' and any of"),
    "nested config": (record_dict(config={"lr": [1, 2]}), r"config\['lr'\]=\[1, 2\] is not allowed"),
    "bool step": (record_dict(step=True), r"'step'=True is not allowed"),
    "negative step": (record_dict(step=-1), r"'step'=-1 is not allowed"),
    "generator state not base64": (record_dict(generator_state="a b!"), r"'generator_state'='a b!' is not allowed"),
    "huge generator state": (record_dict(generator_state="A" * 20_000),
                             r"'generator_state'='A{79}… is not allowed; expected base64 text of at most 16384"),
    "odd device": (record_dict(generator_device="cu da"), r"'generator_device'='cu da' is not allowed"),
    "loss history too long": (record_dict(loss_history={**record_dict()["loss_history"], "steps": [1, 2, 3, 4],
                                                        "losses": [1.0, 1.0, 1.0, 1.0]}),
                              r"'loss_history' cannot be read back \(.*equally long lists"),
    "loss history missing entry": (record_dict(loss_history={"max_points": 4}),
                                   r"'loss_history' cannot be read back \(it has no 'bucket' entry\)"),
    "profile of the wrong length": (record_dict(profile={**record_dict()["profile"], "counts": [0]}),
                                    r"'profile' cannot be read back \(.*lists of 5 numbers"),
}


@pytest.mark.parametrize("name", BAD_RECORDS)
def test_a_bad_record_is_refused_at_the_boundary_in_one_line(name):
    training, message = BAD_RECORDS[name]
    document = {**raw_document(SHIPPED[-1]), "training": training}
    with pytest.raises(ck.CheckpointError, match="^upload.safetensors: invalid checkpoint metadata: (training: )?" + message) as caught:
        checked_document({"rdl": json.dumps(document)}, "upload.safetensors")
    assert "\n" not in str(caught.value)


def test_a_record_without_the_run_state_is_not_resumable(tmp_path):
    model = build_model(TINY_MLP)
    diffusion = GaussianDiffusion(make_schedule("linear", 10))
    path = ck.save(tmp_path / "m.safetensors", model, diffusion, {"training": {"config": TrainConfig().to_json(), "step": 2}},
                   raw_model=model)
    with pytest.raises(ck.CheckpointError, match="cannot be resumed: the record has no generator_state, generator_device, "
                                                 "loss_history, profile"):
        read_resume_point(path)
