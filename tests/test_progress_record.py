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
    progress = {**blank_progress(TrainConfig(dataset="two_moons", T=40)), "step": record.step, "elapsed_seconds": record.seconds,
                "loss_steps": list(record.loss_steps), "loss_history": list(record.losses),
                "profile_edges": list(record.profile_edges), "profile": list(record.profile)}
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
    assert snapshot_of(RECORD).record == history.record_at(1) == RECORD
    assert history.record_at(2).loss_steps == (2, 4, 6, 8)


def test_the_live_panel_and_the_replay_draw_the_same_figures_from_the_same_record(tmp_path):
    from ui import replay, training_panel

    snapshot, history = snapshot_of(RECORD), replay_of(tmp_path / "run", RECORD)
    record = history.record_at(1)
    live_profile = training_panel.profile_figure(snapshot)
    replayed_profile = replay.profile_figure(history, list(record.profile))
    for name in ("x", "y", "width"):
        assert list(getattr(live_profile.data[0], name)) == list(getattr(replayed_profile.data[0], name))
    assert list(live_profile.data[0].x) == [5.5, 15.5, 30.5]  # the paper's t = 0-based bin centre + 1
    assert list(live_profile.data[0].y) == [None, 0.5, 0.25]
    assert live_profile.data[0].marker.color == replayed_profile.data[0].marker.color
    assert live_profile.layout.title.text == replayed_profile.layout.title.text
    assert live_profile.layout.xaxis.title.text == replayed_profile.layout.xaxis.title.text

    live_loss = training_panel.loss_figure(snapshot)
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
    saved = info.training.progress(info.training_seconds)
    live = trainer.snapshot().record
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
