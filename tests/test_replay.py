"""Recorded training histories: core.training.history (writer, validated loader, replay stepping) and the ui.replay section
(AppTest on a tiny history recorded in the test)."""

import json
import math

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from core.training.history import HISTORY_FILE, HistoryRecorder, list_histories, load_history, replay_advance


def record(folder, frames=(0, 10, 20), bins=4, T=40, title="Tiny run"):
    """A small history as bench/cpu_recipe.py writes it: losses every step, a frame every 10 steps."""
    recorder = HistoryRecorder(folder, title, "**not bold** <b>raw</b>", {"lr": 0.002, "T": T, "min_snr": 5.0},
                               T, [0, 10, 20, 30, 40][: bins + 1], loss_bucket=2)
    for step in range(1, max(frames) + 1):
        recorder.add_loss(step, 1.0 / step)
    for i, step in enumerate(frames):
        grid = np.full((30, 30), 40 * i, dtype=np.uint8)
        profile = [None] + [1.0 / (i + 1 + b) for b in range(1, bins)]
        recorder.add_frame(step, 1.5 * step, profile, grid, fd=None if i == 0 else 100.0 / i, classes=None if i == 0 else 9 + (i > 1))
    recorder.save()
    return folder


def test_recorded_history_round_trips(tmp_path):
    history = load_history(record(tmp_path / "run"))
    assert history.title == "Tiny run" and history.T == 40
    assert history.progress.loss_steps == (2, 4, 6, 8, 10, 12, 14, 16, 18, 20)
    assert history.progress.losses[0] == pytest.approx((1.0 + 0.5) / 2)  # mean over a bucket of two steps
    assert [f.step for f in history.frames] == [0, 10, 20]
    assert history.frames[0].profile[0] is None and history.frames[2].profile[1] == pytest.approx(1 / 4)
    assert history.frames[1].preview.shape == (30, 30) and int(history.frames[2].preview[0, 0]) == 80
    assert history.frame_at(15).step == 10 and history.frame_at(99).step == 20
    assert history.record_at(1).loss_steps == (2, 4, 6, 8, 10) and history.record_at(1).losses == history.progress.losses[:5]
    assert (history.progress.step, history.progress.seconds) == (20, 30.0)  # the record at the last frame


def corrupt(folder, change):
    path = folder / HISTORY_FILE
    doc = json.loads(path.read_text())
    change(doc)
    path.write_text(json.dumps(doc))


@pytest.mark.parametrize("change, message", [
    (lambda d: d.update(format="other"), "not a rdl-training-history"),
    (lambda d: d.update(extra=1), "expected exactly the entries"),
    (lambda d: d["frames"][1].update(preview="../secret.png"), "plain .png file name"),
    (lambda d: d["frames"][1].update(preview="missing.png"), "missing"),
    (lambda d: d["frames"][1].update(step=0), "frame steps must increase"),
    (lambda d: d["frames"][1].update(profile=[1.0]), "one value per bin"),
    (lambda d: d["frames"][1].update(fd="NaN"), "finite number"),
    (lambda d: d["progress"].update(losses=d["progress"]["losses"][:-1]), "as long as"),
    (lambda d: d["progress"].update(step=True), "step=True is not allowed"),
    (lambda d: d["progress"].update(step=30), "the last frame's step 20 is not the progress's step 30"),
    (lambda d: d["progress"].update(losses=[0.5] * 5001), r"progress.losses must be a list of at most 5000"),
    (lambda d: d["progress"].update(loss_history=[]), "progress: expected a dict with exactly the entries"),
    (lambda d: d.update(progress=[1]), "progress must be an object"),
    (lambda d: d.update(T=40), "expected exactly the entries"),  # an old name in a version-2 file
    (lambda d: d.update(config={"x": [1, 2]}), "config must map"),
    (lambda d: d["progress"].update(profile_edges=[0, 20, 10, 40]), "must increase"),
    (lambda d: d["progress"].update(profile_edges=[0, 10, 20, 30, 200_000]), r"T \(the last profile edge\)=200000"),
    (lambda d: d.update(title="x" * 5000), "title must be a string"),
])
def test_bad_histories_are_refused_with_a_clear_message(tmp_path, change, message):
    folder = record(tmp_path / "run")
    corrupt(folder, change)
    with pytest.raises(ValueError, match=message):
        load_history(folder)


def as_version_1(doc: dict) -> dict:
    """The layout history.json had before the record's names (what checkpoints/history/ ships), written by hand."""
    progress = doc["progress"]
    return {"format": doc["format"], "version": 1, "title": doc["title"], "description": doc["description"],
            "config": doc["config"], "T": progress["profile_edges"][-1], "profile_bin_edges": progress["profile_edges"],
            "loss": {"steps": progress["loss_steps"], "losses": progress["losses"]}, "frames": doc["frames"]}


def test_a_version_1_history_reads_into_the_same_records(tmp_path):
    new = load_history(record(tmp_path / "run"))
    corrupt(tmp_path / "run", lambda d: d.update(as_version_1(d)) or d.pop("progress"))
    assert json.loads((tmp_path / "run" / HISTORY_FILE).read_text())["version"] == 1
    old = load_history(tmp_path / "run")
    assert old.progress == new.progress and [old.record_at(i) for i in range(3)] == [new.record_at(i) for i in range(3)]


@pytest.mark.parametrize("change, message", [
    (lambda d: d.update(T=39), "profile_bin_edges must end at T=39"),
    (lambda d: d.pop("loss"), "a version-1 history has exactly the entries"),
    (lambda d: d.update(loss=[1]), "loss must have exactly 'steps' and 'losses'"),
    (lambda d: d.update(frames=[]), "frames must be a non-empty list"),
    (lambda d: d["loss"].update(losses=d["loss"]["losses"][:-1]), "as long as"),
    (lambda d: d["frames"][-1].update(seconds=-1.0), "seconds=-1.0 is not allowed"),
])
def test_bad_version_1_histories_are_refused_with_a_clear_message(tmp_path, change, message):
    folder = record(tmp_path / "run")
    corrupt(folder, lambda d: d.update(as_version_1(d)) or d.pop("progress"))
    corrupt(folder, change)
    with pytest.raises(ValueError, match=message):
        load_history(folder)


def test_non_png_and_non_json_are_refused(tmp_path):
    folder = record(tmp_path / "run")
    (folder / "step_000010.png").write_bytes(b"GIF89a not a png")
    with pytest.raises(ValueError, match="not a readable PNG"):
        load_history(folder)
    (folder / HISTORY_FILE).write_bytes(b"\xff\xfe{")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_history(folder)
    with pytest.raises(ValueError, match="not found"):
        load_history(tmp_path / "nowhere")


def test_list_histories(tmp_path):
    record(tmp_path / "b")
    record(tmp_path / "a")
    (tmp_path / "empty").mkdir()
    assert [p.name for p in list_histories(tmp_path)] == ["a", "b"]
    assert list_histories(tmp_path / "nowhere") == []


@pytest.mark.parametrize("index, count, fps, tick, expected", [
    (0, 10, 1.0, 1.0, (1, True)),
    (0, 10, 8.0, 0.25, (2, True)),
    (7, 10, 8.0, 0.25, (9, False)),  # stops on the last frame
    (9, 10, 2.0, 0.5, (9, False)),
    (0, 10, 0.5, 1.0, (1, True)),  # always moves on
])
def test_replay_advance(index, count, fps, tick, expected):
    assert replay_advance(index, count, fps, tick) == expected


def replay_script(history_dir):
    import streamlit as st  # noqa: F401  (AppTest runs this function's body as the page script)

    from ui.replay import render_replay

    render_replay(history_dir)


def shipped_like(tmp_path):
    root = tmp_path / "history"
    record(root / "tiny_run")
    return root


def test_replay_section_shows_frames_and_follows_the_slider(tmp_path):
    root = shipped_like(tmp_path)
    at = AppTest.from_function(replay_script, args=(str(root),), default_timeout=60)
    at.run()
    assert not at.exception, at.exception
    assert [t.value for t in at.text][:2] == ["Tiny run", "**not bold** <b>raw</b>"]  # text shown as text
    slider = at.select_slider(key="replay_frame_tiny_run")
    assert slider.value == 0
    assert at.metric[0].value == "0" and at.metric[2].value == "–"
    slider.set_value(20).run()
    assert not at.exception, at.exception
    assert at.metric[0].value == "20" and at.metric[2].value == "50" and at.metric[3].value == "10 / 10"
    assert [node.type for node in _walk(at._tree)].count("image") == 1
    assert [node.type for node in _walk(at._tree)].count("plotly_chart") == 2


def test_replay_play_runs_to_the_end_and_stops(tmp_path):
    root = shipped_like(tmp_path)
    at = AppTest.from_function(replay_script, args=(str(root),), default_timeout=60)
    at.run()
    at.button(key="replay_play_button").click().run()
    assert at.button(key="replay_play_button").label == "Pause"
    assert at.session_state["replay_position_tiny_run"] == 10  # a tick advanced one frame (2 frames/s, 0.5 s ticks)
    assert [slider.key for slider in at.select_slider] == ["replay_speed"]  # no step slider while playing
    for _ in range(3):
        at.run()
    assert not at.exception, at.exception
    assert at.session_state["replay_position_tiny_run"] == 20
    assert at.session_state["replay_playing"] is False
    assert at.button(key="replay_play_button").label == "Play"
    assert at.select_slider(key="replay_frame_tiny_run").value == 20  # the slider is back, at the last frame
    assert at.metric[0].value == "20"


def test_replay_bad_recording_is_an_error_not_a_traceback(tmp_path):
    root = shipped_like(tmp_path)
    corrupt(root / "tiny_run", lambda d: d["frames"][0].update(preview="../../etc/passwd.png"))
    at = AppTest.from_function(replay_script, args=(str(root),), default_timeout=60)
    at.run()
    assert not at.exception
    assert "cannot be shown" in at.error[0].value and "plain .png file name" in at.error[0].value


def test_replay_without_recordings(tmp_path):
    at = AppTest.from_function(replay_script, args=(str(tmp_path / "none"),), default_timeout=60)
    at.run()
    assert not at.exception and "No recorded training runs" in at.caption[0].value


def test_profile_values_are_finite_or_missing(tmp_path):
    history = load_history(record(tmp_path / "run"))
    assert all(v is None or math.isfinite(v) for f in history.frames for v in f.profile)


def _walk(node):
    yield node
    for child in getattr(node, "children", {}).values():
        yield from _walk(child)


def test_shipped_histories_are_valid():
    """checkpoints/history/ holds the recorded runs of docs/benchmarks.md ("A faster MNIST recipe")."""
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent / "checkpoints" / "history"
    folders = list_histories(root)
    assert [folder.name for folder in folders] == ["mnist_new_recipe", "mnist_old_recipe"]
    for folder in folders:
        history = load_history(folder)
        assert history.frames[-1].fd is not None and history.frames[-1].classes == 10
        assert history.frames[-1].seconds == pytest.approx(300, abs=1)  # the 300 CPU-second budget
    total = sum(f.stat().st_size for f in root.rglob("*") if f.is_file())
    assert total < 600_000
