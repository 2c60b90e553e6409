"""End-to-end tests of `python -m core.train` and `python -m core.sample` (a few steps each).

Two runs go through real subprocesses (the exact commands a user types); the rest call main(argv) in this
process, which is the same code without the interpreter start-up.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core import checkpoints
from core import sample as sample_cli
from core import train as train_cli

ROOT = Path(__file__).resolve().parent.parent
TOY_FLAGS = ["--dataset", "two_moons", "--size", "tiny", "--T", "50", "--batch-size", "32", "--toy-points", "512",
             "--warmup-steps", "2", "--preview-every", "0", "--preview-count", "8", "--preview-steps", "2",
             "--device", "cpu"]


def run_module(*args, timeout=300):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)


def read_png(path) -> np.ndarray:
    with Image.open(path) as image:
        assert image.format == "PNG"
        return np.asarray(image)


def test_train_and_sample_a_toy_model_end_to_end(tmp_path):
    checkpoint = tmp_path / "moons.safetensors"
    trained = run_module("core.train", *TOY_FLAGS, "--steps", "30", "--out", str(checkpoint))
    assert trained.returncode == 0, trained.stderr
    assert "30/30" in trained.stderr and "img/s" in trained.stderr  # the progress bar
    assert "finished at step 30/30" in trained.stdout and "images/s" in trained.stdout
    assert f"saved {checkpoint}" in trained.stdout and "final loss" in trained.stdout
    model, diffusion, metadata = checkpoints.load(checkpoint)
    assert model.config["kind"] == "mlp" and diffusion.T == 50 and metadata["steps"] == 30

    picture = tmp_path / "moons.png"
    sampled = run_module("core.sample", "--checkpoint", str(checkpoint), "--sampler", "ddim", "--steps", "5",
                         "--n", "200", "--seed", "3", "--out", str(picture))
    assert sampled.returncode == 0, sampled.stderr
    assert "sampled 200 points" in sampled.stdout and str(picture) in sampled.stdout
    pixels = read_png(picture)
    assert pixels.shape == (512, 512, 3)
    dots = (pixels[..., 2] > 150) & (pixels[..., 0] < 100)  # the blue point colour (31, 119, 180)
    assert dots.sum() > 200  # 200 dots of a few pixels each (some may overlap)


def test_train_and_sample_a_tiny_unet_on_mnist(tmp_path):
    checkpoint = tmp_path / "digits.safetensors"
    code = train_cli.main(["--dataset", "mnist", "--size", "tiny", "--prediction", "eps", "--variance", "fixed_small",
                           "--steps", "2", "--batch-size", "4", "--T", "100", "--preview-count", "4",
                           "--preview-steps", "2", "--device", "cpu", "--quiet", "--out", str(checkpoint)])
    assert code == 0
    grid = tmp_path / "digits.png"
    code = sample_cli.main(["--checkpoint", str(checkpoint), "--sampler", "ddpm", "--steps", "3", "--n", "9",
                            "--clip", "--device", "cpu", "--out", str(grid)])
    assert code == 0
    assert read_png(grid).shape == (3 * 30 + 2, 3 * 30 + 2)  # 3x3 grid of 28-pixel digits, 2-pixel padding


def test_resume_continues_the_step_count(tmp_path, capsys):
    checkpoint = tmp_path / "moons.safetensors"
    assert train_cli.main([*TOY_FLAGS, "--steps", "10", "--quiet", "--out", str(checkpoint)]) == 0
    assert train_cli.main(["--resume", str(checkpoint), "--steps", "25", "--quiet"]) == 0
    assert "finished at step 25/25" in capsys.readouterr().out
    assert checkpoints.read_metadata(checkpoint)["steps"] == 25

    with pytest.raises(SystemExit) as exit_info:  # nothing left to do
        train_cli.main(["--resume", str(checkpoint), "--quiet"])
    assert exit_info.value.code == 2 and "larger --steps" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # the saved run keeps its settings
        train_cli.main(["--resume", str(checkpoint), "--lr", "0.1"])
    assert "drop --learning-rate" in capsys.readouterr().err


def test_max_seconds_stops_and_saves_a_resumable_run(tmp_path, capsys):
    checkpoint = tmp_path / "budget.safetensors"
    assert train_cli.main([*TOY_FLAGS, "--steps", "10000000", "--max-seconds", "3", "--quiet", "--out", str(checkpoint)]) == 0
    out = capsys.readouterr().out
    metadata = checkpoints.read_metadata(checkpoint)
    steps = metadata["steps"]  # the budget planned the run's length (the 10 M steps only cap the plan)
    assert 0 < steps < 10_000_000 and f"saved {checkpoint}" in out
    assert re.search(r"time budget: [\d,]+ steps planned for the 3 s budget \([\d.]+ steps/s measured\)", out)
    assert train_cli.main(["--resume", str(checkpoint), "--steps", str(metadata["steps"] + 5), "--quiet"]) == 0
    assert checkpoints.read_metadata(checkpoint)["steps"] == metadata["steps"] + 5


def test_cut_off_keeps_the_steps_and_stops_at_the_budget(tmp_path, capsys):
    checkpoint = tmp_path / "cut.safetensors"
    assert train_cli.main([*TOY_FLAGS, "--steps", "10000000", "--max-seconds", "1", "--cut-off", "--quiet",
                           "--out", str(checkpoint)]) == 0
    out = capsys.readouterr().out
    assert "/10000000 (stopped after its time budget of 1 s" in out and "time budget:" not in out


def test_an_existing_folder_as_out_is_refused_before_training(tmp_path, capsys):
    (tmp_path / "x.safetensors").mkdir()
    with pytest.raises(SystemExit):
        train_cli.main([*TOY_FLAGS, "--out", str(tmp_path / "x.safetensors")])
    assert "exists and is not a file" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["--dataset", "cifar10"], "invalid choice: 'cifar10'"),
    (["--steps", "many"], "invalid int value"),
    (["--steps", "0"], "total_steps=0 is not allowed"),
    (["--T", "10", "--scale-with-T"], "scale_with_T"),
    (["--dataset", "two_moons", "--out", "model.pt"], "must end in .safetensors"),
    (["--resume", "missing.safetensors"], "no checkpoint file"),
    (["--dataset", "two_moons", "--out", "/dev/null/x.safetensors"], "does not exist (or is not a folder)"),
    (["--dataset", "two_moons", "--out", "/no/such/folder/x.safetensors"], "does not exist"),
    (["--dataset", "two_moons", "--out", "/proc/x.safetensors"], "cannot write in '/proc'"),
    (["--dataset", "two_moons", "--out", "/tmp"], "must end in .safetensors"),
    (["--dataset", "two_moons", "--max-seconds", "0"], "--max-seconds=0.0 is not allowed"),
    (["--dataset", "two_moons", "--max-seconds", "nan"], "--max-seconds=nan is not allowed"),
])
def test_train_rejects_bad_flags(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        train_cli.main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_train_refuses_a_batch_whose_step_would_not_fit_before_the_first_step(tmp_path, capsys, monkeypatch):
    from core.training import fits

    monkeypatch.setattr(fits, "available_memory_bytes", lambda device: 2**28)  # a 256 MiB machine
    with pytest.raises(SystemExit) as exit_info:
        train_cli.main([*TOY_FLAGS, "--steps", "2", "--batch-size", "65536", "--out", str(tmp_path / "m.safetensors")])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "batch size 65536 would need about" in err and "0.2 GiB is available" in err
    assert not (tmp_path / "m.safetensors").exists()


def test_sample_rejects_bad_input(tmp_path, capsys):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"definitely not a checkpoint")
    cases = [
        (["--checkpoint", str(tmp_path / "missing.safetensors")], "no checkpoint file"),
        (["--checkpoint", str(bad)], "bad.safetensors"),
        (["--checkpoint", str(bad), "--sampler", "euler"], "invalid choice: 'euler'"),
    ]
    for argv, message in cases:
        with pytest.raises(SystemExit) as exit_info:
            sample_cli.main(argv)
        assert exit_info.value.code == 2 and message in capsys.readouterr().err

    checkpoint = tmp_path / "moons.safetensors"
    assert train_cli.main([*TOY_FLAGS, "--steps", "2", "--quiet", "--out", str(checkpoint)]) == 0
    for argv, message in [(["--steps", "51"], "--steps=51 is not allowed; expected an integer in 1..50"),
                          (["--n", "0"], "--n=0 is not allowed"), (["--eta", "-1"], "--eta=-1.0 is not allowed"),
                          (["--out", "x.jpg"], "must end in .png"), (["--sampler", "ddpm", "--eta", "0.5"], "DDIM only")]:
        with pytest.raises(SystemExit) as exit_info:
            sample_cli.main(["--checkpoint", str(checkpoint), *argv])
        assert exit_info.value.code == 2 and message in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["--seed", "99999999999999999999"], "--seed=99999999999999999999 is not allowed; expected an integer in 0..9007199254740991"),
    (["--seed", "-1"], "--seed=-1 is not allowed"),
    (["--out", "/dev/null/x.png"], "--out '/dev/null/x.png' cannot be written: '/dev/null' is not a folder"),
    (["--out", "/proc/x.png"], "--out '/proc/x.png' cannot be written ("),
    (["--out", "{tmp}"], "is a folder; expected the path of a .png file"),
    (["--checkpoint", "{tmp}"], "is a folder; expected a .safetensors file"),
    (["--checkpoint", "{tmp}/missing.safetensors"], "no checkpoint file at"),
    (["--checkpoint", "{tmp}/unreadable.safetensors"], "cannot be read (Permission denied)"),
])
def test_sample_checks_flags_and_paths_before_sampling(tmp_path, capsys, monkeypatch, argv, message):
    """One line, exit code 2, and nothing sampled: every flag and path is checked before the checkpoint is used."""
    unreadable = tmp_path / "unreadable.safetensors"
    unreadable.write_bytes(b"x")
    real_open = open

    def open_refusing_unreadable(file, *args, **kwargs):  # root can read a chmod-000 file: refuse it here instead
        if Path(file) == unreadable:
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr("builtins.open", open_refusing_unreadable)
    monkeypatch.setattr(sample_cli, "sample", lambda *a, **k: pytest.fail("sampled despite bad input"))
    defaults = {"--checkpoint": str(ROOT / "checkpoints" / "toy_two_moons.safetensors"), "--out": str(tmp_path / "a.png")}
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    for flag, value in defaults.items():
        if flag not in argv:
            argv += [flag, value]
    with pytest.raises(SystemExit) as exit_info:
        sample_cli.main(argv)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and message in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["unreadable.safetensors"]  # nothing written


def test_errors_print_a_message_not_a_traceback(tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x00" * 16)
    result = run_module("core.sample", "--checkpoint", str(bad), "--out", str(tmp_path / "x.png"))
    assert result.returncode == 2
    assert "error:" in result.stderr and "Traceback" not in result.stderr
