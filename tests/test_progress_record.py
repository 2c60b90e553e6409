"""One record of training progress (core.training.stats.ProgressRecord): its JSON round trip, its checks, the three
stores that read into it (a live Snapshot, a checkpoint's TrainingRecord, a replay's frame), and the live panel and
the replay drawing the same figures from the same record."""

import dataclasses
import json
import math

import numpy as np
import pytest

from core import checkpoints
from core.training.config import TrainConfig
from core.training.history import HistoryRecorder, load_history
from core.training.stats import ProgressRecord, Snapshot, blank_progress
from core.training.trainer import Trainer

# Bucket means of two equal losses, and profile values, that JSON and the recorder's rounding keep exactly.
RECORD = ProgressRecord(step=6, seconds=9.0, loss_steps=(2, 4, 6), losses=(0.5, 0.25, 0.125), profile_edges=(0, 10, 20, 40),
                        profile=(None, 0.5, 0.25))


def test_a_record_round_trips_through_json_text():
    text = json.dumps(RECORD.to_json(), allow_nan=False)
    assert ProgressRecord.from_json(json.loads(text)) == RECORD
    assert json.loads(text)["profile"] == [None, 0.5, 0.25]


def test_nan_is_an_unseen_bin_like_none():
    assert dataclasses.replace(RECORD, profile=(math.nan, 0.5, 0.25)) == RECORD


def test_until_cuts_the_loss_curve_at_a_step():
    earlier = RECORD.until(4)
    assert earlier.step == 4 and earlier.loss_steps == (2, 4) and earlier.losses == (0.5, 0.25)
    assert earlier.profile == RECORD.profile


@pytest.mark.parametrize("change, message", [
    (dict(losses=(0.5, math.inf, 0.125)), "loss"),
    (dict(loss_steps=(2, 2, 6)), "loss steps must increase"),
    (dict(loss_steps=(2, 4)), "as long as the losses"),
    (dict(profile_edges=(5, 10, 20, 40)), "profile edges must increase from 0"),
    (dict(profile=(0.5, 0.25)), r"one value per bin \(3\), got 2"),
    (dict(step=-1), "step"),
    (dict(seconds=math.nan), "seconds"),
])
def test_a_bad_record_is_refused(change, message):
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(RECORD, **change)


def test_from_json_wants_exactly_the_fields():
    with pytest.raises(ValueError, match="exactly the entries"):
        ProgressRecord.from_json({**RECORD.to_json(), "loss_bucket": 2})


def snapshot_of(record: ProgressRecord) -> Snapshot:
    """A live run's snapshot (as the worker writes it to progress.json) holding `record`."""
    progress = {**blank_progress(TrainConfig(dataset="two_moons", T=40)), "progress": record.to_json()}
    return Snapshot.from_json(json.loads(json.dumps(progress)))


def replay_of(folder, record: ProgressRecord):
    """A recorded history (as bench/cpu_recipe.py writes it) whose second frame is `record`, and one frame later."""
    recorder = HistoryRecorder(folder, "run", "", {}, record.profile_edges[-1], list(record.profile_edges), loss_bucket=2)
    for step, loss in zip(record.loss_steps, record.losses):
        recorder.add_loss(step - 1, loss)
        recorder.add_loss(step, loss)
    recorder.add_loss(7, 0.0625)
    recorder.add_loss(8, 0.0625)
    grid = np.zeros((4, 4), dtype=np.uint8)
    recorder.add_frame(2, 3.0, [None, None, 1.0], grid)
    recorder.add_frame(record.step, record.seconds, list(record.profile), grid)
    recorder.add_frame(8, 12.0, [0.25, 0.25, 0.125], grid)
    recorder.save()
    return load_history(folder)


def test_the_live_snapshot_and_the_replay_frame_read_into_the_same_record(tmp_path):
    history = replay_of(tmp_path / "run", RECORD)
    assert snapshot_of(RECORD).progress == history.record_at(1) == RECORD
    assert history.record_at(2).loss_steps == (2, 4, 6, 8)


def test_the_live_panel_and_the_replay_draw_the_same_figures_from_the_same_record(tmp_path):
    from ui import replay, training_panel

    snapshot, history = snapshot_of(RECORD), replay_of(tmp_path / "run", RECORD)
    record = history.record_at(1)
    live_profile = training_panel.profile_figure(snapshot.progress)
    replayed_profile = replay.profile_figure(history, record)
    for name in ("x", "y", "width"):
        assert list(getattr(live_profile.data[0], name)) == list(getattr(replayed_profile.data[0], name))
    assert list(live_profile.data[0].x) == [5.5, 15.5, 30.5]  # the paper's t = 0-based bin centre + 1
    assert list(live_profile.data[0].y) == [None, 0.5, 0.25]
    assert live_profile.data[0].marker.color == replayed_profile.data[0].marker.color
    assert live_profile.layout.title.text == replayed_profile.layout.title.text
    assert live_profile.layout.xaxis.title.text == replayed_profile.layout.xaxis.title.text

    live_loss = training_panel.loss_figure(snapshot.progress)
    replayed_loss = replay.loss_figure(history, record.step)
    so_far = replayed_loss.data[-1]  # the replay also shows the whole run in grey behind it
    assert list(so_far.x) == list(live_loss.data[0].x) == [2, 4, 6]
    assert list(so_far.y) == list(live_loss.data[0].y) == [0.5, 0.25, 0.125]
    assert so_far.line.color == live_loss.data[0].line.color
    assert list(replayed_loss.data[0].x) == [2, 4, 6, 8]
    assert live_loss.layout.title.text == replayed_loss.layout.title.text


def test_a_saved_run_reads_back_the_record_its_snapshot_held(tmp_path):
    trainer = Trainer(TrainConfig(dataset="two_moons", model_size="tiny", T=50, batch_size=32, total_steps=20, warmup_steps=5,
                                  learning_rate=1e-3, preview_every=20, preview_count=16, preview_steps=4, toy_points=512,
                                  device="cpu"))
    trainer.start()
    trainer.join(60.0)
    assert trainer.state == "finished"
    path = trainer.save(tmp_path / "run.safetensors")
    info = checkpoints.CheckpointInfo.from_document(checkpoints.read_metadata(path))
    saved = info.training.progress
    live = trainer.snapshot().progress
    assert saved.step == live.step == 20 and saved.loss_steps == live.loss_steps == tuple(range(1, 21))
    assert saved.losses == live.losses and saved.profile == live.profile and saved.profile_edges == live.profile_edges
    assert saved.seconds == live.seconds > 0  # a finished run's clock has stopped


def test_the_recorder_refuses_a_frame_the_loader_would_refuse(tmp_path):
    recorder = HistoryRecorder(tmp_path / "run", "run", "", {}, 40, [0, 20, 40])
    with pytest.raises(ValueError, match=r"one value per bin \(2\), got 3"):
        recorder.add_frame(5, 1.0, [0.5, 0.25, 0.125], np.zeros((4, 4), dtype=np.uint8))
    with pytest.raises(ValueError, match="seconds"):
        recorder.add_frame(5, -1.0, [0.5, 0.25], np.zeros((4, 4), dtype=np.uint8))
    assert recorder.doc["frames"] == [] and list((tmp_path / "run").iterdir()) == []  # nothing written
    recorder.add_frame(5, 1.0, [math.inf, 0.25], np.zeros((4, 4), dtype=np.uint8))  # a bin not measured: None
    assert recorder.doc["frames"][0]["profile"] == [None, 0.25]


# ------------------------------------------------------------------ one on-disk form: the record's names in every store
RECORD_NAMES = {f.name for f in dataclasses.fields(ProgressRecord)}  # step, seconds, loss_steps, losses, profile_...
OLD_NAMES = {"elapsed_seconds", "loss_history", "profile_bin_edges", "loss", "T", "steps", "averages"}


def all_keys(value) -> set:
    """Every key of every dict in parsed JSON."""
    if isinstance(value, dict):
        return set(value) | set().union(*(all_keys(v) for v in value.values()))
    if isinstance(value, list):
        return set().union(*(all_keys(v) for v in value)) if value else set()
    return set()


def test_every_store_writes_the_record_under_the_records_names(tmp_path):
    """progress.json, a checkpoint's training object and a history.json each hold the record as "progress", written
    with exactly ProgressRecord's names; none holds an old name for the same numbers."""
    from safetensors import safe_open

    from core.training import run_store, worker

    trainer = Trainer(TrainConfig(dataset="two_moons", model_size="tiny", T=50, batch_size=32, total_steps=12, warmup_steps=2,
                                  learning_rate=1e-3, preview_every=12, preview_count=16, preview_steps=4, toy_points=512,
                                  device="cpu"))
    trainer.start()
    trainer.join(60.0)
    snapshot = trainer.snapshot()
    worker.publish(tmp_path, snapshot, None, None)
    live = json.loads((tmp_path / run_store.PROGRESS).read_text())
    assert set(live["progress"]) == RECORD_NAMES and live["progress"]["loss_steps"] == list(range(1, 13))
    assert not (set(live) & (RECORD_NAMES | OLD_NAMES))  # no flat copy of the record beside it

    path = trainer.save(tmp_path / "run.safetensors")
    with safe_open(str(path), "pt") as handle:
        training = json.loads(handle.metadata()["rdl"])["training"]
    assert set(training) == {"config", "generator_state", "generator_device", "progress", "loss_averaging", "profile_averaging"}
    assert training["progress"] == live["progress"]  # a finished run: the same record in both stores
    beside = all_keys({k: v for k, v in training.items() if k not in ("config", "progress")})
    assert not (beside & (OLD_NAMES | RECORD_NAMES))  # no second copy of the curve or the profile

    replay_of(tmp_path / "replay", RECORD)
    recorded = json.loads((tmp_path / "replay" / "history.json").read_text())
    assert set(recorded["progress"]) == RECORD_NAMES and recorded["version"] == 2
    assert all(set(frame) - {"preview", "fd", "classes"} == {"step", "seconds", "profile"} for frame in recorded["frames"])
    assert not (set(recorded) & OLD_NAMES)
    assert recorded["progress"]["loss_steps"] == [2, 4, 6, 8] and recorded["progress"]["step"] == 8  # the last frame


def test_a_progress_file_of_the_old_flat_layout_still_loads():
    """A run from before (progress.json with flat step, elapsed_seconds, loss_steps, loss_history, profile_edges,
    profile) reads into the same record, through the one legacy reader."""
    old = {**blank_progress(TrainConfig(dataset="two_moons", T=40)), "step": 6, "elapsed_seconds": 9.0,
           "loss_steps": [2, 4, 6], "loss_history": [0.5, 0.25, 0.125], "profile_edges": [0, 10, 20, 40],
           "profile": [None, 0.5, 0.25]}
    del old["progress"]
    assert Snapshot.from_json(json.loads(json.dumps(old))).progress == RECORD


def test_an_old_progress_file_of_a_job_reads_into_the_record(tmp_path):
    """The server reads a job folder written before the change (the flat layout) through Job.progress, so its
    merge with today's defaults keeps the old numbers."""
    from core.training import run_store
    from core.training.job import Job

    config = TrainConfig(dataset="two_moons", T=40, total_steps=6)
    store = run_store.RunStore(tmp_path)
    record = run_store.JobRecord(job_id="0123456789ab", owner_key=run_store.owner_key("alice"), created=1.0, config=config)
    folder = store.create(record)
    old = {key: value for key, value in blank_progress(config).items() if key != "progress"}
    old.update(state="finished", step=6, elapsed_seconds=9.0, loss_steps=[2, 4, 6], loss_history=[0.5, 0.25, 0.125],
               profile_edges=[0, 10, 20, 40], profile=[None, 0.5, 0.25], saved_step=6)
    run_store.write_json_atomically(folder / run_store.PROGRESS, json.loads(json.dumps(old)))
    job = Job.from_disk(record, folder, store.max_age_seconds)
    assert job.snapshot().progress == RECORD and job.snapshot().saved_step == 6


def test_a_shipped_checkpoint_of_the_old_layout_reads_into_the_record():
    """Every shipped checkpoint was written before the change (training: step, loss_history, profile); the legacy
    reader turns it into the record, its numbers taken from the raw file as written."""
    from pathlib import Path

    from safetensors import safe_open

    path = Path(__file__).resolve().parents[1] / "checkpoints" / "toy_two_moons.safetensors"
    with safe_open(str(path), "pt") as handle:
        document = json.loads(handle.metadata()["rdl"])
    old = document["training"]
    assert {"step", "loss_history", "profile"} <= set(old)  # the old layout, as shipped
    info = checkpoints.CheckpointInfo.from_document(checkpoints.read_metadata(path))
    record = info.training.progress
    assert record.step == old["step"] == document["steps"] and record.seconds == document["training_seconds"]
    assert list(record.loss_steps) == old["loss_history"]["steps"] and list(record.losses) == old["loss_history"]["losses"]
    T, bins = old["profile"]["T"], old["profile"]["bins"]
    assert list(record.profile_edges) == [-(-b * T // bins) for b in range(bins + 1)]  # ceil(b·T/bins), in integers
    assert list(record.profile) == old["profile"]["averages"]
    history, profile = info.training.loss_curve(), info.training.timestep_profile()
    assert (history.bucket, history._pending_sum, history._pending_count) == (
        old["loss_history"]["bucket"], old["loss_history"]["pending_sum"], old["loss_history"]["pending_count"])
    assert profile.counts == old["profile"]["counts"] and profile.window == old["profile"]["window"]
    written = info.to_document()["training"]  # written again: the new layout
    assert set(written) == {"config", "generator_state", "generator_device", "progress", "loss_averaging", "profile_averaging"}
    assert checkpoints.CheckpointInfo.from_document({**document, "training": written}).training == info.training


def test_a_shipped_replay_of_version_1_reads_into_the_record():
    """The shipped recordings are version 1 (T, profile_bin_edges, loss {steps, losses}); they load through the
    legacy reader, each frame's record taken from the raw file as written."""
    from pathlib import Path

    folder = Path(__file__).resolve().parents[1] / "checkpoints" / "history" / "mnist_new_recipe"
    raw = json.loads((folder / "history.json").read_text())
    assert raw["version"] == 1
    history = load_history(folder)
    assert history.T == raw["T"] and list(history.progress.profile_edges) == raw["profile_bin_edges"]
    assert list(history.progress.loss_steps) == raw["loss"]["steps"] and list(history.progress.losses) == raw["loss"]["losses"]
    for index in (0, len(raw["frames"]) - 1):
        frame, record = raw["frames"][index], history.record_at(index)
        assert (record.step, record.seconds, list(record.profile)) == (frame["step"], frame["seconds"], frame["profile"])
        assert list(record.loss_steps) == [s for s in raw["loss"]["steps"] if s <= frame["step"]]
