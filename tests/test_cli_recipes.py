"""`python -m core.train --recipe`: the named recipes fill in the flags left out; given flags win."""

import pytest

from core import checkpoints
from core import train as train_cli
from core.training.config import TrainConfig


def config_of(*argv) -> TrainConfig:
    return train_cli._config_from(train_cli.build_parser().parse_args(list(argv)))


def test_without_a_recipe_the_flags_fill_in_trainconfigs_defaults():
    assert config_of() == TrainConfig()
    assert config_of("--recipe", "shipped") == TrainConfig()
    assert config_of("--T", "500").T == 500 and config_of("--T", "500").lr_schedule == "constant"


def test_the_fast_recipe_is_the_train_pages_cpu_recipe_and_flags_override_it():
    fast = config_of("--recipe", "fast")  # no budget: a full run, the standard fast recipe (pick_fast_recipe)
    assert (fast.dataset, fast.T, fast.scale_with_T, fast.lr_schedule, fast.total_steps, fast.batch_size) == \
        ("mnist", 200, True, "cosine", 6000, 64)
    shorter = config_of("--recipe", "fast", "--steps", "50", "--no-scale-with-T")
    assert (shorter.T, shorter.lr_schedule, shorter.total_steps, shorter.scale_with_T) == (200, "cosine", 50, False)


def test_the_toy_recipe_trains_and_its_settings_reach_the_checkpoint(tmp_path, capsys):
    out = tmp_path / "toy.safetensors"
    assert train_cli.main(["--recipe", "toy", "--steps", "3", "--T", "20", "--toy-points", "256", "--preview-every", "0",
                           "--device", "cpu", "--quiet", "--out", str(out)]) == 0
    config = checkpoints.read_metadata(out)["training"]["config"]
    assert (config["dataset"], config["batch_size"], config["lr_schedule"], config["ema_decay"], config["T"]) == \
        ("two_moons", 256, "cosine", 0.995, 20)


def test_a_bad_recipe_and_a_recipe_on_resume_are_refused_in_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        train_cli.main(["--recipe", "fastest"])
    assert exit_info.value.code == 2 and "invalid choice: 'fastest'" in capsys.readouterr().err
    out = tmp_path / "toy.safetensors"
    assert train_cli.main(["--recipe", "toy", "--steps", "2", "--T", "20", "--toy-points", "256", "--preview-every", "0",
                           "--device", "cpu", "--quiet", "--out", str(out)]) == 0
    with pytest.raises(SystemExit):
        train_cli.main(["--resume", str(out), "--recipe", "fast", "--steps", "4"])
    assert "drop --recipe" in capsys.readouterr().err
