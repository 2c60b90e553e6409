"""core.training.fits: the memory check both the CLI and the job registry run before a training run starts."""

import pytest
import torch

from core.training import fits, run_store, worker
from core.training.config import TrainConfig
from core.training.limits import JobLimits
from core.training.registry import JobRegistry
from core.training.step import build_state

CPU = torch.device("cpu")


def toy_config(**overrides):
    settings = dict(dataset="two_moons", model_size="tiny", T=50, batch_size=16, total_steps=3, warmup_steps=1,
                    preview_every=0, preview_count=8, preview_steps=2, toy_points=256, device="cpu")
    return TrainConfig(**{**settings, **overrides})


@pytest.mark.parametrize("config", [
    toy_config(),
    toy_config(model_size="small", variance="learned_range", batch_size=300),
    TrainConfig(dataset="mnist", model_size="tiny", batch_size=8, device="cpu"),
    TrainConfig(dataset="mnist", model_size="tiny", variance="learned_range", batch_size=8, device="cpu"),
])
def test_the_estimate_is_that_of_the_network_the_run_builds(config):
    """fits derives the network from the config alone (no data loaded); the trainer builds it from the loaded
    data. Same network, same estimate: the shapes in fits.DATA_SHAPES are the datasets' real ones."""
    state = build_state(config)
    assert tuple(state.data.shape[1:]) == fits.DATA_SHAPES[config.data_kind]
    assert fits.training_step_bytes(config) == state.model.net_config.training_step_bytes(config.batch_size)


def test_check_fits_refuses_exactly_above_the_share_of_the_free_memory():
    config = TrainConfig(dataset="mnist", model_size="tiny", batch_size=4096, device="cpu")
    needed = fits.training_step_bytes(config)
    assert needed > 2**33  # 4096 digits through the tiny UNet: several GiB of activations
    just_enough = int(needed / fits.MEMORY_SHARE) + 1
    fits.check_fits(config, CPU, available_bytes=just_enough)  # fits: no error
    with pytest.raises(ValueError) as error:
        fits.check_fits(config, CPU, available_bytes=int(needed / fits.MEMORY_SHARE) - 2)
    message = str(error.value)
    assert "\n" not in message and message.startswith("batch size 4096 would need about")
    assert f"{needed / 2**30:.1f} GiB" in message and "on cpu" in message and "smaller batch size" in message


def test_check_fits_measures_the_free_memory_when_none_is_given(monkeypatch):
    config = toy_config(batch_size=64)
    seen = []
    monkeypatch.setattr(fits, "available_memory_bytes", lambda device: seen.append(device) or 1000)
    with pytest.raises(ValueError, match="batch size 64 would need about"):
        fits.check_fits(config)
    assert seen == [CPU]  # the config's device
    monkeypatch.setattr(fits, "available_memory_bytes", lambda device: None)  # unknown: nothing is refused
    fits.check_fits(config)


def test_the_registry_refuses_a_batch_that_cannot_fit_before_any_job_exists(tmp_path, monkeypatch):
    monkeypatch.setattr(fits, "available_memory_bytes", lambda device: 2**20)  # 1 MiB free
    registry = JobRegistry(limits=JobLimits(cpu_slots=1), run_store=run_store.RunStore(tmp_path / "runs"),
                           launcher=worker.ThreadLauncher())
    try:
        with pytest.raises(ValueError, match="batch size 512 would need about"):
            registry.submit("alice", toy_config(batch_size=512))
        assert registry.jobs_for("alice") == []
        assert not any((tmp_path / "runs").glob("*/*"))  # no job folder was written
        monkeypatch.setattr(fits, "available_memory_bytes", lambda device: 2**34)
        job_id = registry.submit("alice", toy_config(batch_size=512))
        assert registry.wait(job_id, 90.0) == "finished"
    finally:
        registry.close(stop_jobs_within=90.0)
