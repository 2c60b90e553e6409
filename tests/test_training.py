"""Tests for core/training: TrainConfig and the recipes (config.py), the loss-history / profile statistics and
their JSON / npz round trips (stats.py), the training step (step.py), save/resume (saving.py) and the Trainer.

Jobs use the 2-D two-moons toy with the tiny MLP and T=50 (a step takes about a millisecond), or a tiny
UNet on MNIST for a couple of steps. Waits are polls with generous bounds, never timing assertions.
"""

import dataclasses
import io
import json
import math
import threading
import time

import numpy as np
import pytest
import torch

from core import checkpoints
from core.lab import playground
from core.training.config import MNIST_CPU_RECIPE, PLAYGROUND_RECIPE, TOY_RECIPE, TrainConfig, ema_decay_at, learning_rate_at
from core.training.saving import read_resume_point
from core.training.stats import LossHistory, Preview, ProgressRecord, Snapshot, TimestepProfile
from core.training.trainer import Trainer

WAIT = 60.0  # upper bound for any poll; a healthy run needs a fraction of a second


def toy_config(**overrides) -> TrainConfig:
    settings = dict(dataset="two_moons", model_size="tiny", T=50, batch_size=32, total_steps=40, warmup_steps=5,
                    learning_rate=1e-3, preview_every=20, preview_count=16, preview_steps=4, toy_points=512,
                    device="cpu")
    settings.update(overrides)
    return TrainConfig(**settings)


def wait_until(condition, what: str):
    deadline = time.monotonic() + WAIT
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def run_to_end(trainer: Trainer) -> None:
    trainer.join(WAIT)
    assert trainer.state in ("finished", "stopped", "failed"), trainer.state


def parameters_of(module):
    return [p.detach().clone() for p in module.parameters()]


def stop_at(trainer: Trainer, step: int):
    """A loss hook that asks the trainer to stop while update number `step` (0-based) runs, so exactly
    step + 1 updates are done when the stop takes effect."""
    def hook(k, loss):
        if k == step:
            trainer.stop()
        return loss
    return hook


# ------------------------------------------------------------------------------------------ config
def test_config_json_round_trip_through_text():
    config = toy_config(schedule="cosine", prediction="v", variance="learned_range", preview_count=None,
                        lr_schedule="cosine", scale_with_T=False)
    restored = TrainConfig.from_json(json.loads(json.dumps(config.to_json())))
    assert restored == config
    assert TrainConfig.from_json({}) == TrainConfig()  # missing entries take the defaults


@pytest.mark.parametrize("field, value, allowed", [
    ("dataset", "cifar", "mnist"),
    ("model_size", "huge", "tiny"),
    ("schedule", "exp", "cosine"),
    ("prediction", "score", "eps"),
    ("variance", "learned", "learned_range"),
    ("T", 0, "integer"),
    ("T", 2.5, "integer"),
    ("beta_start", 0.0, "(0.0, 1.0)"),
    ("batch_size", True, "integer"),
    ("learning_rate", -1e-3, "number"),
    ("learning_rate", math.nan, "number"),
    ("total_steps", 0, ">= 1"),
    ("warmup_steps", -1, ">= 0"),
    ("ema_decay", 1.0, "[0.0, 1.0)"),
    ("grad_clip", -1.0, "number"),
    ("device", "tpu", "cuda"),
    ("lr_schedule", "step", "cosine"),
    ("preview_every", -5, ">= 0"),
    ("preview_count", 0, "integer"),
    ("scale_with_T", "yes", "True or False"),
])
def test_config_validation_names_field_value_and_allowed(field, value, allowed):
    with pytest.raises(ValueError) as error:
        toy_config(**{field: value})  # validated once, when built
    message = str(error.value)
    assert field in message and repr(value) in message and allowed in message


def test_config_rejects_invalid_combinations_and_unknown_keys():
    with pytest.raises(ValueError, match="scale_with_T"):  # β_end·1000/T = 2 is not a probability
        toy_config(T=10, scale_with_T=True)
    with pytest.raises(ValueError, match="beta_start"):
        toy_config(beta_start=0.03, beta_end=0.02)
    config = toy_config()
    config.T = 0  # assigned directly: validate() checks again
    with pytest.raises(ValueError, match="T=0"):
        config.validate()
    with pytest.raises(ValueError, match="T=0"):
        dataclasses.replace(toy_config(), T=0)
    with pytest.raises(ValueError, match="unknown training config entries.*'lr'"):
        TrainConfig.from_json({"lr": 0.1})
    with pytest.raises(ValueError, match="model_size"):
        Trainer(toy_config(model_size="gigantic"))


def test_learning_rate_warmup_and_cosine_by_hand():
    config = toy_config(learning_rate=0.01, warmup_steps=4, total_steps=14, lr_schedule="cosine")
    assert [learning_rate_at(config, k) for k in range(4)] == pytest.approx([0.0025, 0.005, 0.0075, 0.01])
    assert learning_rate_at(config, 9) == pytest.approx(0.005)  # half-way through the 10 decay steps
    assert learning_rate_at(config, 14) == pytest.approx(0.0)
    assert learning_rate_at(toy_config(learning_rate=0.01, warmup_steps=0), 1000) == 0.01


def test_ema_decay_warmup_by_hand():
    assert ema_decay_at(0.999, 0) == pytest.approx(0.1)
    assert ema_decay_at(0.999, 90) == pytest.approx(91 / 100)
    assert ema_decay_at(0.999, 10**6) == 0.999
    assert ema_decay_at(0.0, 5) == 0.0


# -------------------------------------------------------------------------------------- statistics
@pytest.mark.parametrize("n", [5, 8, 37, 64, 100])
def test_loss_history_is_block_means_of_equal_size(n):
    values = np.random.default_rng(n).normal(size=n)
    history = LossHistory(max_points=8)
    for step, value in enumerate(values, start=1):
        history.add(step, float(value))
    bucket = 1  # independently: the smallest power of two leaving fewer than 8 complete blocks
    while n // bucket >= 8:
        bucket *= 2
    blocks = n // bucket
    expected = values[:blocks * bucket].reshape(blocks, bucket).mean(axis=1)
    assert history.bucket == bucket
    assert history.losses == pytest.approx(expected.tolist())
    assert history.steps == [bucket * (i + 1) for i in range(blocks)]
    record = ProgressRecord.from_json(json.loads(json.dumps(ProgressRecord.of_run(n, 0.0, history, TimestepProfile(10)).to_json())))
    restored = LossHistory.from_record(record, json.loads(json.dumps(history.averaging())))
    assert (restored.steps, restored.losses, restored.averaging()) == (history.steps, history.losses, history.averaging())


def test_timestep_profile_exact_means_then_exponential():
    profile = TimestepProfile(T=30, bins=20, window=1000)
    edges = profile.bin_edges()
    assert edges[0] == 0 and edges[-1] == 30 and len(edges) == 21
    rng = np.random.default_rng(0)
    ts = rng.integers(0, 30, size=300)
    mse = rng.random(300)
    for start in range(0, 300, 64):  # batches of uneven composition
        profile.add(torch.tensor(ts[start:start + 64]), torch.tensor(mse[start:start + 64]))
    for b in range(20):
        inside = (ts >= edges[b]) & (ts < edges[b + 1])
        assert profile.counts[b] == inside.sum()
        expected = mse[inside].mean() if inside.any() else math.nan
        assert (math.isnan(profile.averages[b]) and math.isnan(expected)) or profile.averages[b] == pytest.approx(expected)

    small = TimestepProfile(T=10, bins=1, window=4)
    for value in [1.0, 2.0, 3.0, 4.0, 8.0, 0.0]:  # one example at a time, all in the single bin
        small.add(torch.tensor([0]), torch.tensor([value]))
    mean4 = 2.5  # exact mean of the first four, then a ← a + (x − a)/4
    after8 = mean4 + (8.0 - mean4) / 4
    assert small.averages[0] == pytest.approx(after8 + (0.0 - after8) / 4)


# ------------------------------------------------------------------------------------------ trainer
def test_trainer_runs_reports_progress_and_finishes():
    trainer = Trainer(toy_config(total_steps=60))
    first = trainer.snapshot()
    assert first.state == "idle" and first.step == 0 and first.preview is None
    assert first.parameters == sum(p.numel() for p in trainer.model.parameters()) > 0
    assert first.device.startswith("cpu (") and first.device.endswith("threads)")
    trainer.start()
    run_to_end(trainer)
    snapshot = trainer.snapshot()
    assert snapshot.state == "finished" and snapshot.error is None
    assert snapshot.step == snapshot.total_steps == 60
    losses = snapshot.progress.losses
    assert len(losses) == 60 and all(math.isfinite(v) for v in losses)
    assert losses[-1] == snapshot.last_loss
    assert sum(snapshot.profile_counts) == 60 * 32  # every example lands in one t bin (window not reached)
    filled = [a for a in snapshot.progress.profile if a is not None]
    assert len(filled) == 20 and all(a > 0 for a in filled)
    assert snapshot.images_per_second > 0 and snapshot.eta_seconds == 0.0 and snapshot.progress.seconds > 0
    assert snapshot.preview.step == 60 and snapshot.preview.samples.shape == (16, 2)
    assert snapshot.preview.kind == "points" and torch.isfinite(snapshot.preview.samples).all()


def test_ema_follows_the_warmup_formula():
    """Recompute the EMA from the raw weights after every update (recorded by the loss hook)."""
    trainer = Trainer(toy_config(total_steps=12, ema_decay=0.5, preview_every=0))
    recorded = [parameters_of(trainer.model)]  # the hook at update k sees the weights after update k−1
    trainer.loss_hook = lambda k, loss: (recorded.append(parameters_of(trainer.model)) if k > 0 else None) or loss
    trainer.start()
    run_to_end(trainer)
    recorded.append(parameters_of(trainer.model))
    ema = [p.clone() for p in recorded[0]]
    for k in range(12):
        decay = min(0.5, (1 + k) / (10 + k))
        ema = [decay * e + (1 - decay) * p for e, p in zip(ema, recorded[k + 1])]
    for expected, actual in zip(ema, trainer.ema.parameters()):
        torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-6)


def test_stop_freezes_then_resume_continues_like_an_uninterrupted_run():
    reference = Trainer(toy_config())
    reference.start()
    run_to_end(reference)

    trainer = Trainer(toy_config())
    trainer.loss_hook = stop_at(trainer, 14)
    optimizer = trainer.optimizer
    trainer.start()
    run_to_end(trainer)
    assert trainer.state == "stopped" and trainer.step == 15
    adam_steps = [float(s["step"]) for s in optimizer.state.values()]
    assert adam_steps and all(step == 15 for step in adam_steps)
    time.sleep(0.1)
    assert trainer.snapshot().step == 15  # frozen while stopped

    trainer.loss_hook = None
    trainer.resume()
    run_to_end(trainer)
    assert trainer.state == "finished" and trainer.step == 40
    assert trainer.optimizer is optimizer
    assert all(float(s["step"]) == 40 for s in optimizer.state.values())
    for a, b in zip(reference.model.parameters(), trainer.model.parameters()):
        assert torch.equal(a, b)  # same generator, optimizer and EMA state: bit-identical continuation
    for a, b in zip(reference.ema.parameters(), trainer.ema.parameters()):
        assert torch.equal(a, b)


def test_stop_from_another_thread_takes_effect_at_the_next_step():
    gate = threading.Event()
    trainer = Trainer(toy_config(total_steps=10_000))
    trainer.loss_hook = lambda k, loss: (gate.wait(WAIT) and None) or loss
    trainer.start()
    assert trainer.state == "running"
    trainer.stop()
    assert trainer.state == "stopping"
    gate.set()
    run_to_end(trainer)
    assert trainer.state == "stopped" and trainer.step == 1  # the update under way completed, no more


def test_finished_run_can_be_extended():
    trainer = Trainer(toy_config(total_steps=10))
    trainer.start()
    run_to_end(trainer)
    with pytest.raises(ValueError, match="total_steps"):
        trainer.resume()
    trainer.resume(total_steps=15)
    run_to_end(trainer)
    assert trainer.state == "finished" and trainer.step == 15


def test_save_gives_the_ema_model_and_resume_from_file_continues(tmp_path):
    reference = Trainer(toy_config())
    reference.start()
    run_to_end(reference)

    trainer = Trainer(toy_config())
    trainer.loss_hook = stop_at(trainer, 24)
    trainer.start()
    run_to_end(trainer)
    path = tmp_path / "run.safetensors"
    trainer.save(path)
    model, diffusion, metadata = checkpoints.load(path)
    for name, value in trainer.ema.state_dict().items():
        assert torch.equal(model.state_dict()[name], value)
    assert not all(torch.equal(a, b) for a, b in zip(trainer.ema.parameters(), trainer.model.parameters()))
    assert metadata["steps"] == 25 and diffusion.T == 50 and metadata["data"]["dataset"] == "two_moons"

    restored = Trainer.from_checkpoint(path)
    assert restored.state == "stopped" and restored.step == 25
    assert restored.snapshot().progress == trainer.snapshot().progress  # the loss curve, profile, step and seconds
    restored.resume()
    run_to_end(restored)
    assert restored.state == "finished" and restored.step == 40
    for a, b in zip(reference.model.parameters(), restored.model.parameters()):
        assert torch.equal(a, b)
    for a, b in zip(reference.ema.parameters(), restored.ema.parameters()):
        assert torch.equal(a, b)


def test_from_checkpoint_refuses_a_sampling_only_file(tmp_path):
    trainer = Trainer(toy_config(total_steps=2))
    path = checkpoints.save(tmp_path / "ema_only.safetensors", trainer.ema, trainer.diffusion)
    with pytest.raises(checkpoints.CheckpointError, match="no training state"):
        Trainer.from_checkpoint(path)


def test_nan_loss_fails_cleanly_with_the_step():
    trainer = Trainer(toy_config(total_steps=30))
    trainer.loss_hook = lambda k, loss: loss * math.nan if k == 7 else loss
    weights = {}
    original_hook = trainer.loss_hook

    def hook(k, loss):
        if k == 7:
            weights["before"] = parameters_of(trainer.model)
        return original_hook(k, loss)

    trainer.loss_hook = hook
    trainer.start()
    run_to_end(trainer)
    snapshot = trainer.snapshot()
    assert snapshot.state == "failed" and snapshot.step == 7
    assert "NaN" in snapshot.error and "step 8" in snapshot.error
    for before, after in zip(weights["before"], trainer.model.parameters()):
        assert torch.equal(before, after)  # the bad step changed nothing
    with pytest.raises(ValueError, match="failed"):
        trainer.resume()


def test_infinite_loss_and_exceptions_fail_with_a_message():
    trainer = Trainer(toy_config())
    trainer.loss_hook = lambda k, loss: loss + math.inf if k == 2 else loss
    trainer.start()
    run_to_end(trainer)
    assert trainer.state == "failed" and "infinite" in trainer.snapshot().error and "step 3" in trainer.snapshot().error

    def broken(k, loss):
        raise RuntimeError("the disk is on fire")

    trainer = Trainer(toy_config(), loss_hook=broken)
    trainer.start()
    run_to_end(trainer)
    snapshot = trainer.snapshot()
    assert snapshot.state == "failed" and "the disk is on fire" in snapshot.error and "step 1" in snapshot.error


def test_tiny_unet_on_mnist_previews_an_image_grid():
    config = TrainConfig(dataset="mnist", model_size="tiny", T=100, batch_size=4, total_steps=2, preview_every=1,
                         preview_count=4, preview_steps=2, device="cpu")
    trainer = Trainer(config)
    trainer.start()
    run_to_end(trainer)
    snapshot = trainer.snapshot()
    assert snapshot.state == "finished" and snapshot.step == 2
    preview = snapshot.preview
    assert preview.kind == "image" and preview.samples.shape == (4, 1, 28, 28)
    assert preview.grid.dtype == np.uint8 and preview.grid.shape == (2 * 30 + 2, 2 * 30 + 2)
    model = trainer.export_model()
    assert not model.training and model(preview.samples, torch.zeros(4, dtype=torch.long)).shape == (4, 1, 28, 28)


# ---------------------------------------------------------------------- round trips, recipes, budget
def test_snapshot_and_preview_round_trip_through_json_and_npz():
    trainer = Trainer(toy_config(total_steps=20, preview_every=10))
    trainer.start()
    run_to_end(trainer)
    snapshot = trainer.snapshot()
    preview = Preview.from_npz(snapshot.preview.to_npz())
    assert preview.step == 20 and preview.kind == "points" and torch.equal(preview.samples, snapshot.preview.samples)
    restored = Snapshot.from_json(json.loads(json.dumps(snapshot.to_json())), preview=preview)
    assert restored.to_json() == snapshot.to_json() and restored.progress == snapshot.progress
    with pytest.raises(ValueError, match="unknown progress snapshot entries"):
        Snapshot.from_json({**snapshot.to_json(), "evil": 1})
    with pytest.raises(ValueError, match="step"):
        Snapshot.from_json({**snapshot.to_json(), "progress": {**snapshot.to_json()["progress"], "step": -1}})
    with pytest.raises(ValueError, match="step"):
        Snapshot.from_json({**snapshot.to_json(), "step": -1})  # the old flat layout is read, and checked, too


def test_image_preview_npz_keeps_the_grid_and_never_unpickles(tmp_path):
    samples = torch.rand(4, 1, 28, 28) * 2 - 1
    grid = np.arange(62 * 62, dtype=np.uint8).reshape(62, 62)
    preview = Preview.from_npz(Preview(step=3, kind="image", samples=samples, grid=grid).to_npz())
    assert preview.kind == "image" and np.array_equal(preview.grid, grid) and torch.equal(preview.samples, samples)
    buffer = io.BytesIO()
    np.savez(buffer, step=np.array(1), kind=np.array("points"), samples=np.array([object()], dtype=object))
    with pytest.raises(ValueError):  # an object array would need pickle: refused
        Preview.from_npz(buffer.getvalue())


def test_time_budget_stops_the_run_and_resume_gets_a_new_budget():
    # the cut-off alone (plan_budget=False); the plan that normally ends the run first: tests/test_budget.py
    trainer = Trainer(toy_config(total_steps=10_000_000), max_seconds=0.3, plan_budget=False)
    trainer.start()
    run_to_end(trainer)
    snapshot = trainer.snapshot()
    assert snapshot.state == "stopped" and 0 < snapshot.step < 10_000_000 and "time budget of 0.3 s" in snapshot.message
    assert snapshot.progress.seconds >= 0.3
    first = snapshot.step
    trainer.resume()
    run_to_end(trainer)
    assert trainer.state == "stopped" and trainer.step > first


def test_from_checkpoint_builds_through_the_constructor(tmp_path):
    trainer = Trainer(toy_config(total_steps=5))
    trainer.start()
    run_to_end(trainer)
    path = trainer.save(tmp_path / "run.safetensors")
    point = read_resume_point(path)
    assert point.step == 5 and point.config == trainer.config
    with pytest.raises(ValueError, match="same TrainConfig"):
        Trainer(toy_config(total_steps=5, seed=1), resume_from=point)


def test_recipes_are_valid_configs():
    assert MNIST_CPU_RECIPE == TrainConfig() and TOY_RECIPE.data_kind == "points"
    config = TrainConfig(dataset="two_moons", **PLAYGROUND_RECIPE)
    assert config.toy_points == playground.ORACLE_POINTS  # the oracle knows exactly the training set


def test_fast_mnist_recipes_reach_noise_and_the_rule_picks_by_affordable_steps():
    """The fast recipes keep x_T pure noise at T = 200 (β range scaled ×5: ᾱ_T = Π(1 − β_t) by hand); the rule picks
    the standard recipe once the budget affords LIGHT_TO_STANDARD_STEPS light steps (the shipped models' recipe
    stays TrainConfig's defaults); GPU jobs keep the page-friendly tiny UNet."""
    from core.training.config import (
        LIGHT_TO_STANDARD_STEPS,
        MNIST_CPU_RECIPE,
        MNIST_LIGHT_RECIPE,
        MNIST_STANDARD_RECIPE,
        TrainConfig,
        build_diffusion,
        pick_fast_recipe,
        recipe_for,
    )

    assert MNIST_CPU_RECIPE == TrainConfig() and MNIST_LIGHT_RECIPE.T == MNIST_STANDARD_RECIPE.T == 200
    betas = torch.linspace(1e-4 * 5, 0.02 * 5, 200, dtype=torch.float64)
    alpha_bar_T = float(torch.prod(1 - betas))
    assert alpha_bar_T < 1e-4
    assert float(build_diffusion(MNIST_LIGHT_RECIPE).schedule.alpha_bars[-1]) == pytest.approx(alpha_bar_T, rel=1e-9)
    per_second = LIGHT_TO_STANDARD_STEPS / 300.0  # exactly the switch for a 5-minute budget
    assert pick_fast_recipe(per_second, 300.0) is MNIST_STANDARD_RECIPE
    assert pick_fast_recipe(per_second * 0.99, 300.0) is MNIST_LIGHT_RECIPE
    assert pick_fast_recipe(per_second, 120.0) is MNIST_LIGHT_RECIPE  # the same machine, a shorter lesson
    assert pick_fast_recipe(None, 300.0) is MNIST_LIGHT_RECIPE and pick_fast_recipe(None, None) is MNIST_STANDARD_RECIPE
    assert recipe_for("mnist", on_gpu=False, light_steps_per_second=100.0, budget_seconds=60.0) is MNIST_STANDARD_RECIPE
    assert recipe_for("two_moons", on_gpu=False).dataset == "two_moons"
    gpu = recipe_for("mnist", on_gpu=True)
    assert gpu.model_size == "tiny" and gpu.batch_size == 2 * MNIST_STANDARD_RECIPE.batch_size


# ------------------------------------------------------------------------------------- thread policy
def test_thread_policy_changes_the_count_between_steps_never_during_one(monkeypatch):
    """A ThreadPolicy with a fake load probe and clock re-decides before every step: the training thread runs
    each step with the count decided just before it, and the device label names the count in force."""
    from core import runtime
    from core.training import trainer as trainer_module

    monkeypatch.delenv(runtime.THREADS_ENV, raising=False)
    loads = [0.0, 0.0, 1.0, 1.0, 1.0, 0.0, 0.0, 1.0]  # other runnable tasks seen before steps 0..7
    expected = [2, 2, 1, 1, 1, 2, 2, 1]  # choose_threads(2 cores, load): a free second core is used
    events, clock = [], iter(range(1000))
    real_step = trainer_module.queue_step

    def step(state, loss_hook=None):
        events.append(("begin", state.step))
        result = real_step(state, loss_hook)
        events.append(("end", state.step - 1))
        return result

    def set_threads(n):
        events.append(("set", n))
        torch.set_num_threads(n)

    def hook(k, loss):
        events.append(("running", k, torch.get_num_threads()))
        return loss

    monkeypatch.setattr(trainer_module, "queue_step", step)
    load_seen = iter(loads)  # the clock advances one interval per update, so every update probes once
    policy = runtime.ThreadPolicy(interval_s=1.0, probe=lambda: next(load_seen), clock=lambda: float(next(clock)),
                                  usable_cores=2, set_threads=set_threads)
    try:
        trainer = Trainer(toy_config(total_steps=len(loads), preview_every=0), loss_hook=hook, thread_policy=policy)
        trainer.start()
        run_to_end(trainer)
        assert trainer.state == "finished"
        running = [(e[1], e[2]) for e in events if e[0] == "running"]
        assert running == list(enumerate(expected))  # each step ran with the count decided just before it
        assert [e[1] for e in events if e[0] == "set"] == [2, 1, 2, 1]  # set only when the decision changes
        inside = False
        for event in events:  # no "set" between a step's begin and its end
            inside = {"begin": True, "end": False}.get(event[0], inside)
            assert not (inside and event[0] == "set"), events
        assert trainer.snapshot().device.endswith("1 threads)")  # the count of the last step
    finally:
        torch.set_num_threads(1)


def test_a_pinned_thread_count_is_respected(monkeypatch):
    from core import runtime

    monkeypatch.setenv(runtime.THREADS_ENV, "2")
    counts, set_calls = [], []

    def never():
        raise AssertionError("a pinned count needs no load probe")

    def set_threads(n):
        set_calls.append(n)
        torch.set_num_threads(n)

    policy = runtime.ThreadPolicy(interval_s=0.0, probe=never, usable_cores=2, set_threads=set_threads)
    try:
        trainer = Trainer(toy_config(total_steps=5, preview_every=0), thread_policy=policy,
                          loss_hook=lambda k, loss: counts.append(torch.get_num_threads()) or loss)
        trainer.start()
        run_to_end(trainer)
        assert trainer.state == "finished" and counts == [2] * 5 and set_calls == [2]
        assert "2 threads" in trainer.snapshot().device
    finally:
        torch.set_num_threads(1)


def test_a_trainer_without_policy_leaves_the_thread_count_alone():
    """In-process trainers (python -m core.train, the ThreadLauncher) never change the count between steps."""
    counts = []
    trainer = Trainer(toy_config(total_steps=4, preview_every=0),
                      loss_hook=lambda k, loss: counts.append(torch.get_num_threads()) or loss)
    before = torch.get_num_threads()
    trainer.start()
    run_to_end(trainer)
    assert trainer.thread_policy is None and len(set(counts)) == 1 and torch.get_num_threads() == before
