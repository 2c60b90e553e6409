"""core/training/step.py's per-step work: the EMA in one foreach call, the CPU step bit-identical to the update it
replaced, and the device-guarded step of CUDA (fused Adam with found_inf, a sticky skip flag, the summary read one
step late), run here on the CPU with the guard forced on; the CUDA-only pieces (pinned copy, event, cuDNN
benchmark) with torch.cuda mocked."""

import copy
import math

import pytest
import torch

from core.nets.build import build_model, model_config_for
from core.training import step as step_module
from core.training import worker
from core.training.config import TrainConfig, ema_decay_at, learning_rate_at
from core.training.step import TrainingFailed, build_state, queue_step, settle, train_step, update_ema


def toy_config(**overrides):
    settings = dict(dataset="two_moons", model_size="tiny", T=50, batch_size=16, total_steps=40, warmup_steps=2,
                    preview_every=0, toy_points=256, device="cpu")
    return TrainConfig(**{**settings, **overrides})


def image_config(**overrides):
    return TrainConfig(**{**dict(dataset="mnist", model_size="tiny", T=40, scale_with_T=True, batch_size=4,
                                 warmup_steps=2, device="cpu"), **overrides})


def snapshot(state):
    """Everything a step may change, as copies."""
    return {"model": copy.deepcopy(state.model.state_dict()), "ema": copy.deepcopy(state.ema.state_dict()),
            "optimizer": copy.deepcopy(state.optimizer.state_dict()["state"]), "step": state.step}


def assert_same(a, b):
    assert a["step"] == b["step"]
    for part in ("model", "ema"):
        assert a[part].keys() == b[part].keys()
        for name in a[part]:
            assert torch.equal(a[part][name], b[part][name]), (part, name)
    assert a["optimizer"].keys() == b["optimizer"].keys()
    for index, values in a["optimizer"].items():
        for name, value in values.items():
            assert torch.equal(torch.as_tensor(value), torch.as_tensor(b["optimizer"][index][name])), (index, name)


# ---------------------------------------------------------------------------------------------- the EMA
@pytest.mark.parametrize("decay", [0.0, 0.1, 0.5, 0.9, 0.999])
def test_the_foreach_ema_equals_the_per_parameter_loop_to_the_last_bit(decay):
    model = build_model(model_config_for("image", (1, 28, 28), "tiny", 1))
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator))
    ema = build_model(model_config_for("image", (1, 28, 28), "tiny", 1))
    expected = copy.deepcopy(ema)
    with torch.no_grad():
        for ema_param, param in zip(expected.parameters(), model.parameters()):  # the loop it replaced
            ema_param.lerp_(param, 1.0 - decay)
    assert len(list(model.parameters())) > 50  # the UNet's many small tensors: one call instead of one each
    update_ema(ema, model, decay)
    for got, want in zip(ema.parameters(), expected.parameters()):
        assert torch.equal(got, want)


def test_the_guarded_ema_moves_like_the_plain_one_or_not_at_all():
    model, ema = torch.nn.Linear(3, 2), torch.nn.Linear(3, 2)
    plain = copy.deepcopy(ema)
    update_ema(plain, model, 0.9)
    update_ema(ema, model, 0.9, skip=torch.tensor(0.0))
    for got, want in zip(ema.parameters(), plain.parameters()):
        torch.testing.assert_close(got, want, rtol=0, atol=1e-7)  # a + w(b − a) vs lerp: rounding only
    before = copy.deepcopy(ema)
    update_ema(ema, model, 0.9, skip=torch.tensor(1.0))
    for got, want in zip(ema.parameters(), before.parameters()):
        assert torch.equal(got, want)


# ------------------------------------------------------------------------------ the CPU step, unchanged
@torch.no_grad()
def old_update_ema(ema, model, decay):
    for ema_param, param in zip(ema.parameters(), model.parameters()):
        ema_param.lerp_(param, 1.0 - decay)
    for ema_buffer, buffer in zip(ema.buffers(), model.buffers()):
        ema_buffer.copy_(buffer)


def old_train_step(state):
    """train_step as it was before the device guard (commit ecc2eea), copied: the reference of the CPU path."""
    config, k = state.config, state.step
    index = torch.randint(0, state.data.shape[0], (config.batch_size,), generator=state.generator, device=state.device)
    x0 = state.data[index]
    if state.channels_last:
        x0 = x0.contiguous(memory_format=torch.channels_last)
    state.model.train()
    with step_module.runtime.autocast(state.device, enabled=state.autocast):
        losses = state.diffusion.training_losses(state.model, x0, generator=state.generator)
    loss = losses["loss"].float().mean()
    state.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    max_norm = config.grad_clip if config.grad_clip > 0 else math.inf
    grad_norm = torch.nn.utils.clip_grad_norm_(state.model.parameters(), max_norm)
    batch = config.batch_size
    summary = torch.cat([loss.detach().reshape(1), grad_norm.detach().float().reshape(1),
                         losses["mse"].detach().float(), losses["t"].float()]).cpu()
    for group in state.optimizer.param_groups:
        group["lr"] = learning_rate_at(config, k)
    state.optimizer.step()
    old_update_ema(state.ema, state.model, ema_decay_at(config.ema_decay, k))
    state.step = k + 1
    return float(summary[0]), float(summary[1]), summary[2:2 + batch], summary[2 + batch:]


@pytest.mark.parametrize("config", [toy_config(), toy_config(variance="learned_range", grad_clip=0.0),
                                    image_config()], ids=["toy", "toy-learned-noclip", "mnist-unet"])
def test_the_cpu_step_is_bit_identical_to_the_update_it_replaced(config):
    new, old = build_state(config), build_state(config)
    assert not new.device_guard and not new.optimizer.defaults["fused"]  # plain Adam, host check, as before
    for k in range(5):
        result = train_step(new)
        loss, grad_norm, mse, t = old_train_step(old)
        assert (result.loss, result.grad_norm, result.step) == (loss, grad_norm, k + 1)
        assert torch.equal(result.mse, mse) and torch.equal(result.t, t)
    assert_same(snapshot(new), snapshot(old))
    assert torch.equal(new.generator.get_state(), old.generator.get_state())


def test_a_bad_cpu_step_changes_nothing_and_names_its_step():
    state = build_state(toy_config())
    for _ in range(3):
        train_step(state)
    before = snapshot(state)
    with pytest.raises(TrainingFailed, match=r"^training stopped at step 4: the loss is NaN .*after step 3"):
        train_step(state, lambda k, loss: loss * math.nan)
    assert_same(snapshot(state), before)


# ------------------------------------------------------------------------- the device-guarded step (CUDA)
def test_a_guarded_step_trains_like_the_host_checked_one():
    guarded, plain = build_state(toy_config(), device_guard=True), build_state(toy_config())
    assert guarded.device_guard and guarded.optimizer.defaults["fused"]
    for k in range(6):
        a, b = train_step(guarded), train_step(plain)
        assert a.step == b.step == k + 1
        assert a.loss == pytest.approx(b.loss, rel=1e-4) and torch.equal(a.t, b.t)  # same draws
    for got, want in zip(guarded.ema.parameters(), plain.ema.parameters()):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)  # fused vs foreach Adam: rounding only


@pytest.mark.parametrize("poison, kind", [(math.nan, "loss is NaN"), (math.inf, "loss is infinite")])
def test_a_bad_guarded_step_is_skipped_on_the_device(poison, kind):
    state = build_state(toy_config(), device_guard=True)
    for _ in range(3):
        train_step(state)
    before = snapshot(state)
    with pytest.raises(TrainingFailed, match=rf"^training stopped at step 4: the {kind} .*after step 3"):
        train_step(state, lambda k, loss: loss * poison)
    assert_same(snapshot(state), before)  # weights, EMA, Adam moments and step counts as after step 3
    assert float(state.skip) == 1.0


class InfiniteGradient(torch.autograd.Function):
    """The identity going forward, an infinite gradient coming back: a finite loss whose gradient is not."""

    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        return grad * math.inf


def test_a_non_finite_gradient_is_caught_too():
    state = build_state(toy_config(), device_guard=True)
    train_step(state)
    before = snapshot(state)
    with pytest.raises(TrainingFailed, match=r"^training stopped at step 2: the gradient norm is (NaN|infinite)"):
        train_step(state, lambda k, loss: InfiniteGradient.apply(loss))
    assert_same(snapshot(state), before)


def test_queue_step_reports_every_step_once_one_step_late():
    queued, synced = build_state(toy_config(), device_guard=True), build_state(toy_config(), device_guard=True)
    expected = [train_step(synced) for _ in range(5)]
    got = [queue_step(queued) for _ in range(5)]
    assert got[0] is None and queued.step == 5  # five updates applied, the last summary still in flight
    last = settle(queued)
    assert settle(queued) is None
    for result, want in zip(got[1:] + [last], expected):
        assert (result.step, result.loss, result.grad_norm) == (want.step, want.loss, want.grad_norm)
        assert torch.equal(result.mse, want.mse) and torch.equal(result.t, want.t)
    assert_same(snapshot(queued), snapshot(synced))
    queue_step(queued)
    with pytest.raises(ValueError, match="call settle"):
        train_step(queued)


def test_queue_step_names_the_bad_step_and_no_later_update_applies():
    state = build_state(toy_config(), device_guard=True)
    poison = lambda k, loss: loss * math.nan if k == 3 else loss
    for _ in range(3):
        queue_step(state, poison)
    after_three = snapshot(state)
    assert queue_step(state, poison).step == 3  # queues the bad update 4, reports step 3
    with pytest.raises(TrainingFailed, match=r"^training stopped at step 4: the loss is NaN .*after step 3"):
        queue_step(state, poison)  # queues update 5 (finite, but after a bad one), reports step 4
    assert state.step == 3 and state.in_flight is None
    assert_same(snapshot(state), after_three)  # neither update 4 nor update 5 changed anything


def test_the_unguarded_queue_step_is_the_plain_step():
    state, reference = build_state(toy_config()), build_state(toy_config())
    assert queue_step(state).loss == train_step(reference).loss and settle(state) is None


# ---------------------------------------------------------------------------- CUDA pieces, with mocks
class FakeCudaTensor:
    device = torch.device("cuda", 0)
    shape = (5,)
    dtype = torch.float32


def test_the_summary_reaches_the_host_without_blocking_on_cuda(monkeypatch):
    made, events = [], []

    class Host:
        def copy_(self, source, non_blocking=False):
            made.append((source, non_blocking))
            return self

    class Event:
        def record(self):
            events.append("record")

        def synchronize(self):
            events.append("synchronize")

    def empty(shape, dtype=None, pin_memory=False):
        made.append((shape, dtype, pin_memory))
        return Host()

    monkeypatch.setattr(step_module.torch, "empty", empty)
    monkeypatch.setattr(step_module.torch.cuda, "Event", Event)
    source = FakeCudaTensor()
    host, ready = step_module.to_host(source)
    assert made == [((5,), torch.float32, True), (source, True)]  # pinned memory, non-blocking copy
    assert isinstance(ready, Event) and events == ["record"]
    monkeypatch.setattr(step_module, "_report", lambda state, k, summary: (k, summary))
    assert step_module._read(None, step_module.InFlight(step=7, summary=host, ready=ready)) == (7, host)
    assert events == ["record", "synchronize"]  # reading waits for that copy only


def test_the_cpu_summary_needs_no_event():
    summary = torch.arange(4.0)
    host, ready = step_module.to_host(summary)
    assert ready is None and torch.equal(host, summary)


def test_a_cuda_worker_lets_cudnn_pick_its_fastest_kernels(monkeypatch):
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    worker.prepare_device(torch.device("cpu"))
    assert torch.backends.cudnn.benchmark is False
    worker.prepare_device(torch.device("cuda"))
    assert torch.backends.cudnn.benchmark is True


def test_a_guarded_state_resumed_from_a_cpu_run_is_fused_again():
    """A job that trained on the CPU and resumes on CUDA loads an unfused Adam state (fused=False comes back with
    it); only fused Adam reads found_inf, so the guarded step fuses it again and still skips a bad update."""
    cpu_run = build_state(toy_config())
    for _ in range(2):
        train_step(cpu_run)
    resumed = build_state(toy_config(), device_guard=True)
    resumed.model.load_state_dict(cpu_run.model.state_dict())
    resumed.optimizer.load_state_dict(cpu_run.optimizer.state_dict())
    resumed.step = cpu_run.step
    assert not resumed.optimizer.param_groups[0]["fused"]
    assert train_step(resumed).step == 3 and resumed.optimizer.param_groups[0]["fused"]
    steps = [resumed.optimizer.state[p]["step"] for p in resumed.model.parameters()]
    assert all(s.dtype == torch.float32 and float(s) == 3.0 for s in steps)
    before = snapshot(resumed)
    with pytest.raises(TrainingFailed, match="step 4"):
        train_step(resumed, lambda k, loss: loss * math.nan)
    assert_same(snapshot(resumed), before)
