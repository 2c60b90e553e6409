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
from core.training.stats import LossHistory, ProgressRecord, TimestepProfile

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = sorted(p for p in (ROOT / "checkpoints").glob("*.safetensors") if p.name != "mnist_classifier.safetensors")
TINY_MLP = {"kind": "mlp", "data_dim": 2, "out_dim": 2, "hidden": 16, "depth": 2, "time_embed_dim": 8}


def raw_document(path) -> dict:
    """The "rdl" document read with safetensors' own metadata reader (not through core.checkpoints)."""
    with safe_open(str(path), "pt") as handle:
        return json.loads(handle.metadata()["rdl"])


def run_statistics():
    history, profile = LossHistory(4), TimestepProfile(10, bins=5)
    for step in range(1, 8):
        history.add(step, 1.0 / step)
    profile.add(torch.tensor([0, 3, 9]), torch.tensor([0.5, 0.25, 0.125]))
    return history, profile


def record_dict(**changes) -> dict:
    history, profile = run_statistics()
    state = base64.b64encode(torch.Generator().manual_seed(3).get_state().numpy().tobytes()).decode("ascii")
    record = {"config": TrainConfig(dataset="two_moons").to_json(), "generator_state": state, "generator_device": "cpu",
              "progress": ProgressRecord.of_run(7, 1.5, history, profile).to_json(),
              "loss_averaging": history.averaging(), "profile_averaging": profile.averaging()}
    return {**record, **changes}


def old_record_dict(**changes) -> dict:
    """The same run in the layout used before (what every shipped checkpoint holds): step, and the loss curve and
    profile under their own names, written out here by hand."""
    new = record_dict()
    progress, loss, profile = new["progress"], new["loss_averaging"], new["profile_averaging"]
    record = {"config": new["config"], "step": progress["step"], "generator_state": new["generator_state"],
              "generator_device": "cpu",
              "loss_history": {"max_points": loss["max_points"], "bucket": loss["bucket"], "steps": progress["loss_steps"],
                               "losses": progress["losses"], "pending_sum": loss["pending_sum"],
                               "pending_count": loss["pending_count"]},
              "profile": {"T": 10, "bins": 5, "window": profile["window"], "averages": progress["profile"],
                          "counts": profile["counts"]}}
    return {**record, **changes}


def test_the_shipped_checkpoints_are_all_checked():
    assert len(SHIPPED) == 9  # 4 MNIST models, 5 toys: a file that disappears or stops loading fails here


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_every_shipped_checkpoint_reads_into_a_record_that_writes_the_new_layout(path):
    """The shipped files hold the old layout (read through core.training.legacy); the record they give writes the
    new one and reads back to itself, with the numbers of the raw file."""
    document = raw_document(path)
    old = document["training"]
    info = ck.CheckpointInfo.from_document(ck.read_metadata(path))
    record = info.training
    assert isinstance(record, ck.TrainingRecord)
    assert ck.TrainingRecord.from_dict(record.to_dict()) == record
    assert ck.TrainingRecord.from_dict(json.loads(json.dumps(info.to_document()["training"]))) == record
    assert record.progress.step == old["step"] == document["steps"]
    assert info.model_size == old["config"]["model_size"] and record.config == old["config"]
    assert list(record.progress.loss_steps) == old["loss_history"]["steps"]
    assert list(record.progress.losses) == old["loss_history"]["losses"]
    assert record.progress.seconds == document["training_seconds"]
    assert record.timestep_profile().bin_edges()[-1] == document["diffusion"]["schedule"]["T"]
    assert (record.generator_state, record.generator_device) == (old["generator_state"], old["generator_device"])
    TrainConfig.from_json(record.config)  # the resumable config


def test_the_old_layout_reads_into_the_same_record_as_the_new():
    new, old = ck.TrainingRecord.from_dict(record_dict()), ck.TrainingRecord.from_dict(old_record_dict(), seconds=1.5)
    assert old == new
    history, profile = run_statistics()
    assert new.loss_curve().averaging() == history.averaging() and new.loss_curve().steps == history.steps
    assert new.timestep_profile().averaging() == profile.averaging() and new.timestep_profile().T == 10
    assert new.timestep_profile().averages[1:3] == profile.averages[1:3]  # (bin 0 and 4: one example each)


def test_a_record_round_trips_through_a_saved_file(tmp_path):
    model = build_model(TINY_MLP)
    diffusion = GaussianDiffusion(make_schedule("linear", 10))
    record = ck.TrainingRecord.from_dict(record_dict())
    path = ck.save(tmp_path / "m.safetensors", model, diffusion, {"training": record, "data": {"dataset": "two_moons",
                                                                                                 "shape": [2]}})
    assert raw_document(path)["training"] == record_dict()
    assert ck.CheckpointInfo.from_document(ck.read_metadata(path)).training == record
    assert record.loss_curve().averaging() == record_dict()["loss_averaging"]


def test_only_the_config_is_required_and_the_rest_defaults_to_none():
    record = ck.TrainingRecord.from_dict({"config": {"seed": 4}})
    assert record.to_dict() == {"config": {"seed": 4}, "generator_state": None, "generator_device": None,
                                "progress": None, "loss_averaging": None, "profile_averaging": None}
    assert record.loss_curve() is None and record.timestep_profile() is None


BAD_RECORDS = {
    "not a dict": ([1, 2], r"'training'=\[1, 2\] is not allowed; expected a TrainingRecord, a dict or None"),
    "unknown key": (record_dict(lr=0.1), r"keys .* are not allowed; expected 'config' and any of generator_state"),
    "no config": ({"progress": None}, r"keys \['progress'\] are not allowed; expected 'config' and any of"),
    "nested config": (record_dict(config={"lr": [1, 2]}), r"config\['lr'\]=\[1, 2\] is not allowed"),
    "bool step": (record_dict(progress={**record_dict()["progress"], "step": True}),
                  r"'progress' cannot be read back \(step=True is not allowed"),
    "negative step": (record_dict(progress={**record_dict()["progress"], "step": -1}),
                      r"'progress' cannot be read back \(step=-1 is not allowed"),
    "progress not a dict": (record_dict(progress=[1]), r"'progress'=\[1\] is not allowed; expected a ProgressRecord, its JSON"),
    "progress with an old name": (record_dict(progress={**record_dict()["progress"], "loss_history": []}),
                                  r"'progress' cannot be read back \(progress: expected a dict with exactly the entries"),
    "infinite loss": (record_dict(progress={**record_dict()["progress"], "losses": [1.0, 1e999, 0.2]}),
                      r"'progress' cannot be read back \(loss=inf is not allowed"),
    "generator state not base64": (record_dict(generator_state="a b!"), r"'generator_state'='a b!' is not allowed"),
    "huge generator state": (record_dict(generator_state="A" * 20_000),
                             r"'generator_state'='A{79}… is not allowed; expected base64 text of at most 16384"),
    "odd device": (record_dict(generator_device="cu da"), r"'generator_device'='cu da' is not allowed"),
    "loss curve too long": (record_dict(progress={**record_dict()["progress"], "loss_steps": [1, 2, 3, 4],
                                                  "losses": [1.0, 1.0, 1.0, 1.0]}),
                            r"'loss_averaging' cannot be read back \(loss averaging: a curve of 4 points"),
    "loss averaging missing entry": (record_dict(loss_averaging={"max_points": 4}),
                                     r"'loss_averaging' cannot be read back \(loss averaging: expected a dict with exactly"),
    "partial bucket too full": (record_dict(loss_averaging={**record_dict()["loss_averaging"], "pending_count": 99}),
                                r"'loss_averaging' cannot be read back \(pending_count=99 is not allowed"),
    "averaging without progress": (record_dict(progress=None), r"'loss_averaging' is not allowed without 'progress'"),
    "counts of the wrong length": (record_dict(profile_averaging={**record_dict()["profile_averaging"], "counts": [0]}),
                                   r"'profile_averaging' cannot be read back \(.*list of 5 integers"),
    "count above the window": (record_dict(profile_averaging={"window": 2, "counts": [1, 3, 0, 0, 1]}),
                               r"'profile_averaging' cannot be read back \(count=3 is not allowed"),
    "edges not equal bins": (record_dict(progress={**record_dict()["progress"], "profile_edges": [0, 1, 2, 3, 4, 10]}),
                             r"'profile_averaging' cannot be read back \(.*not 5 equal bins of T=10"),
    # the old layout goes through the legacy reader and then the same checks
    "old layout, loss history too long": (old_record_dict(loss_history={**old_record_dict()["loss_history"],
                                                                        "steps": [1, 2, 3, 4], "losses": [1.0] * 4}),
                                          r"'loss_averaging' cannot be read back \(loss averaging: a curve of 4 points"),
    "old layout, loss history missing entry": (old_record_dict(loss_history={"max_points": 4}),
                                               r"'progress' cannot be read back \(progress: loss_steps must be a list"),
    "old layout, profile of the wrong length": (old_record_dict(profile={**old_record_dict()["profile"], "counts": [0]}),
                                                r"'profile_averaging' cannot be read back \(.*list of 5 integers"),
    "old layout, huge T": (old_record_dict(profile={**old_record_dict()["profile"], "T": 10**400}),
                           r"the old layout's profile must hold T \(at most 10\^9\)"),
    "old layout, bins beyond the averages": (old_record_dict(profile={**old_record_dict()["profile"], "bins": 10**9}),
                                             r"the old layout's profile must hold T .* one average per bin"),
    "old layout, profile alone": ({**old_record_dict(), "loss_history": None},
                                  r"the old layout's step, loss_history and profile must be given together"),
    "old layout, bool step": (old_record_dict(step=True), r"'progress' cannot be read back \(step=True is not allowed"),
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
    path = ck.save(tmp_path / "m.safetensors", model, diffusion, {"training": {"config": TrainConfig().to_json()}},
                   raw_model=model)
    with pytest.raises(ck.CheckpointError, match="cannot be resumed: the record has no generator_state, generator_device, "
                                                 "progress, loss_averaging, profile_averaging"):
        read_resume_point(path)
