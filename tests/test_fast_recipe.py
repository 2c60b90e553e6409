"""The fast CPU recipe picked for the machine (core.training.config.pick_fast_recipe): the speed probe
(core.training.probe) in this process and in a fresh one, the command line's --recipe fast, and the Train page's
choice (ui.training_panel) with its server override $RDL_FAST_RECIPE."""

import pytest

from core import train as train_cli
from core.training import probe
from core.training.config import LIGHT_TO_STANDARD_STEPS, MNIST_LIGHT_RECIPE, MNIST_STANDARD_RECIPE, TrainConfig
from ui import training_panel

TOY = TrainConfig(dataset="two_moons", model_size="slim", T=20, batch_size=16, toy_points=256, device="cpu")
TOY_FLAGS = ["--dataset", "two_moons", "--T", "50", "--batch-size", "32", "--toy-points", "512", "--steps", "20",
             "--warmup-steps", "2", "--preview-every", "0", "--preview-count", "8", "--preview-steps", "2",
             "--device", "cpu", "--quiet"]


def test_the_probe_times_real_steps_here_and_in_a_fresh_process():
    assert probe.steps_per_second(TOY, steps=2) > 0
    measured = probe.probe_in_subprocess(TOY, threads=1)
    assert measured is not None and measured > 0
    assert probe.probe_in_subprocess(TOY, threads=0) is None  # the child refuses 0 threads: unknown, no exception


def test_the_command_line_says_what_fast_picked(monkeypatch, tmp_path, capsys):
    speeds = []
    monkeypatch.setattr(probe, "steps_per_second", lambda config, steps=probe.PROBE_STEPS: speeds.append(config) or 4.0)
    out = tmp_path / "fast.safetensors"
    assert train_cli.main(["--recipe", "fast", "--max-seconds", "120", *TOY_FLAGS, "--out", str(out)]) == 0
    # 4 light steps/s × 120 s = 480 < LIGHT_TO_STANDARD_STEPS: light; the light recipe was the one timed
    assert speeds and speeds[0].model_size == MNIST_LIGHT_RECIPE.model_size
    assert "fast recipe: light (the light recipe runs 4.0 steps/s here, 480 steps in the budget" in capsys.readouterr().err
    monkeypatch.setattr(probe, "steps_per_second", lambda config, steps=probe.PROBE_STEPS: LIGHT_TO_STANDARD_STEPS / 100.0)
    assert train_cli.main(["--recipe", "fast", "--max-seconds", "100", *TOY_FLAGS, "--out", str(out)]) == 0
    assert "fast recipe: standard" in capsys.readouterr().err


def test_the_train_page_picks_by_the_servers_measured_speed(monkeypatch):
    monkeypatch.delenv(training_panel.FAST_RECIPE_ENV, raising=False)
    training_panel.light_recipe_speed.clear()
    calls = []
    monkeypatch.setattr(probe, "probe_in_subprocess", lambda config, threads: calls.append(config) or 10.0)
    try:
        assert training_panel.fast_recipe_for_this_machine(300.0) is MNIST_STANDARD_RECIPE  # 3,000 steps affordable
        assert training_panel.fast_recipe_for_this_machine(60.0) is MNIST_LIGHT_RECIPE  # 600
        assert calls == [MNIST_LIGHT_RECIPE]  # measured once per server process
        assert "this server runs 10.0 light steps/s" in training_panel.fast_recipe_note(300.0)
        monkeypatch.setenv(training_panel.FAST_RECIPE_ENV, "light")
        assert training_panel.fast_recipe_for_this_machine(300.0) is MNIST_LIGHT_RECIPE
        assert "set by the server" in training_panel.fast_recipe_note(300.0)
        monkeypatch.setenv(training_panel.FAST_RECIPE_ENV, "huge")
        with pytest.raises(ValueError, match="RDL_FAST_RECIPE='huge' is not allowed; expected light, standard or unset"):
            training_panel.fast_recipe_for_this_machine(300.0)
    finally:
        training_panel.light_recipe_speed.clear()


@pytest.mark.parametrize("given, expected", [(None, "PASSIVE"), ("ACTIVE", "ACTIVE")])
def test_importing_core_makes_idle_openmp_threads_sleep_unless_told_otherwise(given, expected):
    import os
    import subprocess
    import sys

    env = {key: value for key, value in os.environ.items() if key != "OMP_WAIT_POLICY"}
    if given is not None:
        env["OMP_WAIT_POLICY"] = given
    # core/__init__ is lazy (it imports no torch itself): its first submodule that imports torch still finds the policy set
    code = ("import os, sys; import core; assert 'torch' not in sys.modules; import core.diffusion.schedules; "
            "assert 'torch' in sys.modules; print(os.environ['OMP_WAIT_POLICY'])")
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120,
                          cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert done.returncode == 0, done.stderr[-500:]
    assert done.stdout.strip() == expected
