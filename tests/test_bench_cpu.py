"""The CPU recipe and bf16 bench scripts run end to end in a tiny mode; a recipe run's recorded history loads."""

from bench import cpu_bf16, cpu_recipe
from core.training.history import load_history


def test_cpu_recipe_records_a_loadable_history(tmp_path):
    result = cpu_recipe.main(["--steps", "4", "--batch", "4", "--threads", "1", "--T", "50", "--scale-with-T",
                              "--min-snr", "5", "--preview-every", "2", "--eval-every-cpu-s", "1e-6", "--eval-n", "8",
                              "--final-samples", "8", "--sample-steps", "2", "--clip", "--precision", "fp32",
                              "--history", str(tmp_path / "history"), "--out", str(tmp_path / "grid.png"),
                              "--out-json", str(tmp_path / "curve.json")])
    assert [point["step"] for point in result["curve"]] == [1, 2, 3, 4]  # an evaluation after every step
    assert all(point["fd"] > 0 and 0 <= point["classes_present"] <= 10 for point in result["curve"])
    history = load_history(tmp_path / "history")
    assert [frame.step for frame in history.frames] == [1, 2, 3, 4]
    assert history.config["min_snr"] == 5.0 and history.T == 50 and len(history.progress.profile_edges) == 21
    assert all(frame.fd is not None for frame in history.frames)
    assert (tmp_path / "curve.json").is_file()


def test_cpu_bf16_speed_rows(tmp_path):
    document = cpu_bf16.main(["--batch", "2", "--repeats", "1", "--speed-sample-steps", "1", "--skip-quality",
                              "--out-json", str(tmp_path / "bf16.json")])
    assert [row["what"] for row in document["speed"]] == ["training step", "forward pass", "DDIM sampling, 1 steps"]
    assert all(row["fp32_ms"] > 0 and row["bf16_ms"] > 0 and row["speedup"] > 0 for row in document["speed"])
