"""Checkpoints: exact round trips, EMA vs raw weights, optimizer resume, and rejection of bad files."""

import dataclasses
import json
import os
import pickle
import struct
from datetime import datetime
from pathlib import Path

import pytest
import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from core import checkpoints as ck
from core.checkpoints import CheckpointError
from core.diffusion.gaussian_diffusion import GaussianDiffusion
from core.diffusion.schedules import make_schedule
from core.nets.build import build_model

TINY_UNET = {"kind": "unet", "in_channels": 1, "out_channels": 1, "image_size": 8, "channels": [8, 16],
             "num_res_blocks": [1, 1], "attention": True, "num_heads": 2, "time_embed_dim": 16, "norm_groups": 4}
TINY_MLP = {"kind": "mlp", "data_dim": 2, "out_dim": 4, "hidden": 16, "depth": 2, "time_embed_dim": 8}
INFO = {"training": {"config": {"learning_rate": 2e-4, "batch_size": 8, "ema_decay": 0.999},
                     "generator_state": None, "generator_device": None, "progress": None, "loss_averaging": None,
                     "profile_averaging": None},
        "data": {"dataset": None, "shape": [1, 8, 8]},
        "steps": 1234, "final_loss": 0.0421, "training_seconds": 61.5, "device": "cpu", "notes": "ünïcode ok"}


def randomized(config, seed):
    """A model whose weights are all random (the zero-initialised output layers would hide bugs)."""
    model = build_model(config)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(0.3 * torch.randn(p.shape, generator=g))
    return model.eval()


def unet_case():
    return randomized(TINY_UNET, 1), GaussianDiffusion(make_schedule("linear", 50), "eps", "fixed_large")


MLP_INFO = {**INFO, "data": {"dataset": "two_moons", "shape": [2]}}


def mlp_case():
    return randomized(TINY_MLP, 2), GaussianDiffusion(make_schedule("cosine", 40), "v", "learned_range")


def model_input(model):
    g = torch.Generator().manual_seed(7)
    shape = (3, 1, 8, 8) if model.config["kind"] == "unet" else (3, 2)
    return torch.randn(shape, generator=g), torch.tensor([0, 17, 39])


def output(model):
    with torch.no_grad():
        return model(*model_input(model))


def saved_bytes(tmp_path, **kwargs):
    model, diffusion = unet_case()
    path = ck.save(tmp_path / "m.safetensors", model, diffusion, INFO, **kwargs)
    return path.read_bytes()


def split(data):
    """(rdl document, other metadata, tensors) of checkpoint bytes, parsed independently of core.checkpoints."""
    (n,) = struct.unpack("<Q", data[:8])
    metadata = json.loads(data[8:8 + n])["__metadata__"]
    return json.loads(metadata.pop("rdl")), metadata, st_load(data)


def rebuild(doc, metadata, tensors):
    return st_save(tensors, metadata={"rdl": json.dumps(doc), **metadata})


# ---------------------------------------------------------------------------------------- round trips
@pytest.mark.parametrize("case, info", [(unet_case, INFO), (mlp_case, MLP_INFO)])
def test_round_trip_is_exact(tmp_path, case, info):
    model, diffusion = case()
    path = ck.save(tmp_path / "sub" / "model.safetensors", model, diffusion, info)
    loaded, loaded_diffusion, doc = ck.load(path)

    assert not loaded.training
    assert torch.equal(output(loaded), output(model))  # bitwise
    assert not torch.equal(output(build_model(model.config)), output(model))  # a fresh model differs
    assert loaded_diffusion.to_config() == diffusion.to_config()
    assert torch.equal(loaded_diffusion.schedule.betas, diffusion.schedule.betas)
    assert doc["model"] == model.config and doc["diffusion"] == diffusion.to_config()
    assert {k: doc[k] for k in info} == info
    assert doc["format_version"] == 1 and doc["torch_version"] == torch.__version__
    assert datetime.fromisoformat(doc["created"]).tzinfo is not None
    assert doc["has_raw"] is False and doc["has_optimizer"] is False
    assert ck.read_metadata(path) == doc
    model2, diffusion2, doc2 = ck.load_bytes(path.read_bytes(), name="upload.safetensors")
    assert torch.equal(output(model2), output(model)) and doc2 == doc


def test_metadata_defaults_when_not_given(tmp_path):
    model, diffusion = mlp_case()
    doc = ck.read_metadata(ck.save(tmp_path / "m.safetensors", model, diffusion))
    assert doc["training"] is None and doc["steps"] is None and doc["notes"] == ""
    assert doc["data"] == {"dataset": None, "shape": None}


def test_ema_weights_are_loaded_and_raw_kept_apart(tmp_path):
    ema, diffusion = unet_case()
    raw = randomized(TINY_UNET, 99)
    path = ck.save(tmp_path / "m.safetensors", ema, diffusion, INFO, raw_model=raw)
    model, _, doc = ck.load(path)
    assert doc["has_raw"] is True
    assert torch.equal(output(model), output(ema)) and not torch.equal(output(model), output(raw))
    state = ck.load_for_resume(path)
    assert state.optimizer_state is None
    assert state.raw_state.keys() == raw.state_dict().keys()
    assert all(torch.equal(state.raw_state[k], v) for k, v in raw.state_dict().items())


def assert_same_structure(a, b):
    assert type(a) is type(b), (a, b)
    if isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and torch.equal(a, b)
    elif isinstance(a, dict):
        assert list(a) == list(b)
        for key in a:
            assert_same_structure(a[key], b[key])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            assert_same_structure(x, y)
    else:
        assert a == b


def adam_steps(model, optimizer, n):
    g = torch.Generator().manual_seed(3)
    x, t = torch.randn(16, 2, generator=g), torch.randint(0, 40, (16,), generator=g)
    for _ in range(n):
        optimizer.zero_grad()
        (model(x, t) - 1.0).pow(2).mean().backward()
        optimizer.step()


def test_optimizer_state_round_trip_resumes_identically(tmp_path):
    raw, diffusion = mlp_case()
    raw.train()
    optimizer = torch.optim.Adam(raw.parameters(), lr=1e-2, betas=(0.8, 0.99))
    adam_steps(raw, optimizer, 3)
    ema = randomized(TINY_MLP, 5)
    path = ck.save(tmp_path / "m.safetensors", ema, diffusion, MLP_INFO, raw_model=raw,
                   optimizer_state=optimizer.state_dict())

    state = ck.load_for_resume(path)
    assert state.metadata["has_optimizer"] is True
    assert_same_structure(state.optimizer_state, optimizer.state_dict())
    assert any(s["exp_avg"].abs().sum() > 0 for s in state.optimizer_state["state"].values())
    assert torch.equal(output(state.model), output(ema))

    resumed = build_model(state.metadata["model"])
    resumed.load_state_dict(state.raw_state)
    resumed_optimizer = torch.optim.Adam(resumed.parameters(), lr=1.0)
    resumed_optimizer.load_state_dict(state.optimizer_state)
    adam_steps(raw, optimizer, 2)
    adam_steps(resumed, resumed_optimizer, 2)
    for p, q in zip(raw.parameters(), resumed.parameters()):
        assert torch.equal(p, q)


# ---------------------------------------------------------------------------------------- bad files
def expect_error(data, match, tmp_path=None):
    with pytest.raises(CheckpointError, match=match):
        ck.load_bytes(data)
    if tmp_path is not None:  # the same through a file, and read_metadata where the header itself is bad
        path = tmp_path / "bad.safetensors"
        path.write_bytes(data)
        with pytest.raises(CheckpointError, match=match):
            ck.load(path)


def test_truncated_files_are_rejected(tmp_path):
    data = saved_bytes(tmp_path)
    (n,) = struct.unpack("<Q", data[:8])
    for cut in (0, 5, 8, 30, 8 + n - 1, 8 + n + 10, len(data) // 2, len(data) - 1):
        expect_error(data[:cut], "truncated", tmp_path)


def test_header_only_read_metadata_ignores_tensor_data(tmp_path):
    data = saved_bytes(tmp_path)
    path = tmp_path / "cut.safetensors"
    path.write_bytes(data[:-100])
    assert ck.read_metadata(path)["steps"] == INFO["steps"]  # header intact...
    with pytest.raises(CheckpointError, match="truncated"):
        ck.load(path)  # ...but the weights are not


def test_random_bytes_are_rejected(tmp_path):
    g = torch.Generator().manual_seed(0)
    noise = bytes(torch.randint(0, 256, (2000,), generator=g, dtype=torch.uint8).tolist())
    expect_error(noise, "not a safetensors", tmp_path)
    # a plausible header length followed by garbage
    expect_error(struct.pack("<Q", 100) + noise[:500], "corrupted safetensors header", tmp_path)
    expect_error(struct.pack("<Q", 2) + b"[]" + noise[:8], "JSON object", tmp_path)


def test_safetensors_without_rdl_metadata(tmp_path):
    data = st_save({"w": torch.ones(3)}, metadata={"format": "pt"})
    expect_error(data, "not a Reverse Diffusion Lab checkpoint", tmp_path)
    path = tmp_path / "plain.safetensors"
    path.write_bytes(st_save({"w": torch.ones(3)}))
    with pytest.raises(CheckpointError, match="no 'rdl' metadata"):
        ck.read_metadata(path)


@pytest.mark.parametrize("edit, match", [
    (lambda d: d.update(format_version=2), "unsupported checkpoint format_version 2"),
    (lambda d: d.pop("format_version"), "unsupported checkpoint format_version None"),
    (lambda d: d["model"].update(kind="transformer"), "invalid model config.*transformer"),
    (lambda d: d["model"].update(channels=[8, 17]), "invalid model config"),
    # a ~20-TB model: only shapes are built (meta device) before the file's weights are compared
    (lambda d: d["model"].update(channels=[2**19, 2**20]), r"invalid model config.*channels\[0\]=524288 is not allowed"),
    (lambda d: d["diffusion"].update(prediction="score"), "invalid diffusion config.*score"),
    (lambda d: d["diffusion"].update(variance="learned_range"), "do not fit together.*needs 2"),
    (lambda d: d.update(steps=-3), "'steps'=-3 is not allowed; expected a non-negative integer"),
    (lambda d: d.update(final_loss=float("nan")), "'final_loss'=(nan|inf) is not allowed; expected a finite number"),
    (lambda d: d.update(extra=1), "keys .* differ"),
    (lambda d: d.update(has_raw=True), r"raw\.\* weights do not match"),
    (lambda d: d.update(has_optimizer=True), "'rdl_optimizer' metadata is missing"),
])
def test_invalid_documents_are_rejected(tmp_path, edit, match):
    doc, metadata, tensors = split(saved_bytes(tmp_path))
    edit(doc)
    expect_error(rebuild(doc, metadata, tensors), match, tmp_path)


def test_rdl_metadata_that_is_not_json(tmp_path):
    _, metadata, tensors = split(saved_bytes(tmp_path))
    expect_error(st_save(tensors, metadata={"rdl": "{not json"}), "'rdl' metadata is not valid JSON", tmp_path)


@pytest.mark.parametrize("edit, match", [
    (lambda t: t.update({"ema.out.weight": torch.zeros(1, 8, 3, 3)}), r"unexpected \['out.weight'\]"),
    (lambda t: t.pop(next(iter(t))), "missing"),
    (lambda t: t.update({"extra": torch.zeros(2)}), r"unexpected tensors.*extra"),
])
def test_tensor_names_must_match_the_model(tmp_path, edit, match):
    doc, metadata, tensors = split(saved_bytes(tmp_path))
    edit(tensors)
    expect_error(rebuild(doc, metadata, tensors), match, tmp_path)


def test_wrong_shape_dtype_and_nan_weights(tmp_path):
    doc, metadata, tensors = split(saved_bytes(tmp_path))
    key = next(k for k in tensors if k.endswith("weight") and tensors[k].dim() == 4)
    good = tensors[key]
    tensors[key] = torch.zeros(good.shape[0] + 1, *good.shape[1:])
    expect_error(rebuild(doc, metadata, tensors), f"{key} has shape", tmp_path)
    tensors[key] = good.double()
    expect_error(rebuild(doc, metadata, tensors), "float64", tmp_path)
    tensors[key] = good.clone()
    tensors[key][0, 0, 0, 0] = float("nan")
    expect_error(rebuild(doc, metadata, tensors), f"{key} contains NaN", tmp_path)
    tensors[key][0, 0, 0, 0] = float("inf")
    expect_error(rebuild(doc, metadata, tensors), "NaN or infinite", tmp_path)


def test_malformed_optimizer_index(tmp_path):
    raw, diffusion = mlp_case()
    optimizer = torch.optim.Adam(raw.parameters())
    adam_steps(raw, optimizer, 1)
    ck.save(tmp_path / "m.safetensors", raw, diffusion, raw_model=raw, optimizer_state=optimizer.state_dict())
    doc, metadata, tensors = split((tmp_path / "m.safetensors").read_bytes())
    for skeleton, match in [({"__tensor__": "optim.999"}, "missing tensor 'optim.999'"),
                            ({"__tensor__": "ema.time_mlp.0.weight"}, "missing tensor"),
                            ({"__evil__": 1}, "malformed optimizer state"),
                            ("{oops", "'rdl_optimizer' metadata is not valid JSON")]:
        bad = {**metadata, "rdl_optimizer": skeleton if isinstance(skeleton, str) else json.dumps(skeleton)}
        expect_error(rebuild(doc, bad, tensors), match)


class _Touch:
    """Unpickling this creates `marker` — proof that a loader executed pickle code."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def test_pickle_files_are_rejected_without_unpickling(tmp_path):
    probe = tmp_path / "probe"
    pickle.loads(pickle.dumps(_Touch(probe)))
    assert probe.exists()  # the payload really is hostile

    marker = tmp_path / "pwned"
    pickled = tmp_path / "evil.safetensors"
    pickled.write_bytes(pickle.dumps({"ema.w": _Touch(marker)}))
    zipped = tmp_path / "evil_zip.safetensors"
    torch.save({"ema.w": _Touch(marker)}, zipped)  # torch.save's zip container holding the same pickle
    for path in (pickled, zipped):
        for loader in (ck.load, ck.read_metadata, ck.load_for_resume, lambda p: ck.load_bytes(p.read_bytes())):
            with pytest.raises(CheckpointError, match="not a safetensors checkpoint"):
                loader(path)
    assert not marker.exists()


def test_hostile_headers(tmp_path):
    doc, metadata, _ = split(saved_bytes(tmp_path))
    expect_error(struct.pack("<Q", 2**40) + b"{}", "header length 1099511627776 bytes is absurd", tmp_path)
    expect_error(struct.pack("<Q", 2**64 - 1) + b"{}" * 10, "absurd", tmp_path)

    def file_with(entries, payload):
        header = json.dumps({"__metadata__": {"rdl": json.dumps(doc)}, **entries}).encode()
        return struct.pack("<Q", len(header)) + header + payload

    outside = {"w": {"dtype": "F32", "shape": [1000], "data_offsets": [0, 4000]}}
    expect_error(file_with(outside, bytes(16)), "corrupted or truncated safetensors data", tmp_path)
    huge = {"w": {"dtype": "F32", "shape": [2**62, 2**62], "data_offsets": [0, 16]}}
    expect_error(file_with(huge, bytes(16)), "corrupted or truncated safetensors data", tmp_path)
    overlap = {"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},
               "b": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}
    expect_error(file_with(overlap, bytes(16)), "corrupted or truncated safetensors data", tmp_path)
    bad_dtype = {"w": {"dtype": "PICKLE", "shape": [4], "data_offsets": [0, 16]}}
    expect_error(file_with(bad_dtype, bytes(16)), "corrupted", tmp_path)


def test_size_cap(tmp_path):
    data = saved_bytes(tmp_path)
    path = tmp_path / "m.safetensors"
    for call in (lambda: ck.load(path, max_bytes=1000), lambda: ck.read_metadata(path, max_bytes=1000),
                 lambda: ck.load_bytes(data, max_bytes=1000)):
        with pytest.raises(CheckpointError, match=f"{len(data)} bytes, more than the limit of 1000"):
            call()
    assert ck.load(path, max_bytes=len(data))[2]["steps"] == INFO["steps"]  # the cap is inclusive


# ---------------------------------------------------------------------------------------- saving
@pytest.mark.parametrize("failing", ["fsync", "replace"])
def test_atomic_write_keeps_old_file_on_failure(tmp_path, monkeypatch, failing):
    model, diffusion = unet_case()
    path = ck.save(tmp_path / "m.safetensors", model, diffusion, INFO)
    before = path.read_bytes()

    def fail(*args):
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(os, failing, fail)
    with pytest.raises(OSError, match="simulated"):
        ck.save(path, randomized(TINY_UNET, 42), diffusion, {**INFO, "steps": 1})
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.safetensors"]
    assert ck.read_metadata(path)["steps"] == INFO["steps"]


def test_save_validates_its_arguments(tmp_path):
    model, diffusion = unet_case()
    p = tmp_path / "m.safetensors"
    with pytest.raises(ValueError, match="must end in .safetensors"):
        ck.save(tmp_path / "m.pt", model, diffusion)
    with pytest.raises(ValueError, match="unknown keys.*'stepz'"):
        ck.save(p, model, diffusion, {"stepz": 3})
    with pytest.raises(ValueError, match="'final_loss'=(nan|inf) is not allowed; expected a finite number"):
        ck.save(p, model, diffusion, {"final_loss": float("inf")})
    with pytest.raises(ValueError, match=r"data\['shape'\]"):
        ck.save(p, model, diffusion, {"data": {"dataset": "mnist", "shape": [1, 0]}})
    with pytest.raises(ValueError, match=r"data\['dataset'\]='mnist' holds 1x28x28 images, but the model's input is \[1, 8, 8\]"):
        ck.save(p, model, diffusion, {"data": {"dataset": "mnist", "shape": [1, 8, 8]}})  # 8 x 8: not MNIST's digits
    with pytest.raises(ValueError, match=r"training: config\['lr'\]=<object object at .*> is not allowed"):
        ck.save(p, model, diffusion, {"training": {"config": {"lr": object()}}})
    with pytest.raises(ValueError, match="needs 2"):
        ck.save(p, model, GaussianDiffusion(make_schedule("linear", 50), "eps", "learned_range"))
    with pytest.raises(ValueError, match="same .config"):
        ck.save(p, model, diffusion, raw_model=randomized(TINY_MLP, 0))
    with pytest.raises(ValueError, match="diffusion must be a GaussianDiffusion"):
        ck.save(p, model, {"prediction": "eps"})
    with pytest.raises(ValueError, match="optimizer_state may hold only"):
        ck.save(p, model, diffusion, optimizer_state={"state": {0: object()}})
    with pytest.raises(ValueError, match="device must be"):
        ck.load_bytes(b"", device="gpu9000")
    assert not p.exists() and list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------------------- CheckpointInfo
def test_checkpoint_info_is_the_schema_save_writes_and_load_reads(tmp_path):
    model, diffusion = mlp_case()
    info = ck.CheckpointInfo.describe(model, diffusion, data={"dataset": "two_moons", "shape": [2]},
                                      training={"config": {"model_size": "small", "lr": 1e-3}}, steps=7,
                                      final_loss=0.5, device="cpu", notes="n")
    assert info.data == ck.DataInfo("two_moons", (2,)) and info.model_size == "small"
    path = ck.save(tmp_path / "m.safetensors", model, diffusion, info)
    _, _, doc = ck.load(path)
    assert ck.CheckpointInfo.from_document(doc) == info
    assert {key: doc[key] for key in info.to_document()} == info.to_document()
    # the older dict form gives the same document
    again = ck.save(tmp_path / "d.safetensors", model, diffusion, {k: v for k, v in info.to_document().items()
                                                                   if k not in ("model", "diffusion")})
    assert ck.CheckpointInfo.from_document(ck.read_metadata(again)) == info


def test_checkpoint_info_must_describe_the_saved_model(tmp_path):
    model, diffusion = mlp_case()
    other, _ = unet_case()
    info = ck.CheckpointInfo.describe(other, GaussianDiffusion(make_schedule("linear", 50), "eps", "fixed_large"))
    with pytest.raises(ValueError, match="describes another model"):
        ck.save(tmp_path / "m.safetensors", model, diffusion, info)
    with pytest.raises(ValueError, match=r"data shape \[1, 28, 28\] does not match the model's input \[2\]"):
        ck.CheckpointInfo.describe(model, diffusion, data={"dataset": "mnist", "shape": [1, 28, 28]})
    assert ck.CheckpointInfo.describe(model, diffusion).data_shape == (2,)  # from the model when not recorded


def test_shipping_keeps_the_info_and_drops_the_training_state(tmp_path):
    from scripts.ship_checkpoint import ship

    raw, diffusion = mlp_case()
    optimizer = torch.optim.Adam(raw.parameters())
    adam_steps(raw, optimizer, 1)
    source = ck.save(tmp_path / "run.safetensors", raw, diffusion, {**MLP_INFO, "notes": "first"}, raw_model=raw,
                     optimizer_state=optimizer.state_dict())
    target = ship(source, tmp_path / "shipped.safetensors", command="python -m core.train --x")
    doc = ck.read_metadata(target)
    assert doc["has_raw"] is False and doc["has_optimizer"] is False
    assert doc["notes"] == "first\nreproduce: python -m core.train --x"
    kept = ck.CheckpointInfo.from_document(ck.read_metadata(source))
    assert ck.CheckpointInfo.from_document(doc) == dataclasses.replace(kept, notes=doc["notes"])
    assert target.stat().st_size < source.stat().st_size


def test_sidebar_summary_shows_the_model_size_a_trainer_saved(tmp_path):
    """The bug: model_summary read training["model_size"]; a Trainer writes training["config"]["model_size"]."""
    from core.training.trainer import TrainConfig, Trainer
    from ui.catalog import LoadedModel, model_summary

    trainer = Trainer(TrainConfig(dataset="two_moons", model_size="small", total_steps=5, T=20, device="cpu"))
    path = trainer.save(tmp_path / "t.safetensors")
    model, diffusion, metadata = ck.load(path)
    summary = model_summary(LoadedModel("k", "label", model, diffusion, metadata))
    assert summary["model size"] == "small"
    assert summary["data"] == "two_moons (2,)" and summary["training steps"] == "0"
    assert summary["parameters"] == f"{model.net_config.parameter_count():,}"
