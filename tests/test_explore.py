"""Tests for core/lab/explore.py: the denoise sweep, display helpers and sampler runs behind the pages.

Expected values are derived by hand in numpy (ᾱ from the linear β's, x_t from eq. 4, the DDPM update from
Algorithm 2) or from "cheating" models that know the true noise, never by calling the code under test.
"""

import math

import numpy as np
import pytest
import torch

from core.diffusion.gaussian_diffusion import GaussianDiffusion
from core.diffusion.schedules import make_schedule
from core.lab import explore

T = 50
BETA_START, BETA_END = 1e-4, 0.02


def hand_alpha_bars(T=T):
    return np.cumprod(1.0 - np.linspace(BETA_START, BETA_END, T))


def diffusion(prediction="eps", variance="fixed_large", T=T):
    return GaussianDiffusion(make_schedule("linear", T, BETA_START, BETA_END), prediction, variance)


def example(shape=(1, 1, 6, 6), seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(shape, generator=g) * 2 - 1


class CheatingModel:
    """Knows x_0 and ε (one example, broadcast over the batch) and outputs the exact target for `prediction`,
    using ᾱ computed by hand. Counts its forward passes."""

    def __init__(self, x0, noise, prediction, extra_channels=0):
        self.x0, self.noise, self.prediction, self.extra = x0[0], noise[0], prediction, extra_channels
        self.ab = torch.tensor(hand_alpha_bars(), dtype=torch.float32)
        self.calls = 0

    def __call__(self, x_t, t):
        self.calls += 1
        ab = self.ab[t].reshape(-1, *([1] * (x_t.ndim - 1)))
        x0, eps = self.x0.expand_as(x_t), self.noise.expand_as(x_t)
        out = {"eps": eps, "x0": x0, "v": ab.sqrt() * eps - (1 - ab).sqrt() * x0}[self.prediction]
        if self.extra:
            out = torch.cat([out, torch.full_like(out, 0.3)], dim=1)
        return out


# ------------------------------------------------------------------------------------ timestep grid
def test_timestep_grid_is_the_documented_even_grid():
    grid = explore.timestep_grid(1000, 100)
    # 999/99 = 111/11 per step; k·111/11 is never a half-integer, so floor(x + 0.5) is the rounding
    expected = [math.floor(k * 999 / 99 + 0.5) for k in range(100)]
    assert grid.dtype == torch.long and grid.tolist() == expected
    assert grid[0] == 0 and grid[-1] == 999 and bool((grid[1:] > grid[:-1]).all())


@pytest.mark.parametrize("T, count, expected", [(5, 10, [0, 1, 2, 3, 4]), (5, 5, [0, 1, 2, 3, 4]),
                                                (10, 2, [0, 9]), (10, 4, [0, 3, 6, 9]), (1, 1, [0])])
def test_timestep_grid_small_cases(T, count, expected):
    assert explore.timestep_grid(T, count).tolist() == expected


@pytest.mark.parametrize("T, count", [(10, 1), (10, 0), (0, 5), (10, 2.5), (10, True)])
def test_timestep_grid_rejects_bad_input(T, count):
    with pytest.raises(ValueError, match="count|T"):
        explore.timestep_grid(T, count)


# ------------------------------------------------------------------------------------ denoise sweep
def test_sweep_x_t_is_eq4_with_the_seeded_noise():
    x0 = example()
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(7))
    t = explore.timestep_grid(T, 12)
    sweep = explore.denoise_sweep(lambda x, tt: torch.zeros_like(x), diffusion(), x0, t, noise)
    ab = hand_alpha_bars()[t.numpy()]
    expected = np.sqrt(ab)[:, None, None, None, None] * x0.numpy() + np.sqrt(1 - ab)[:, None, None, None, None] * noise.numpy()
    assert sweep.x_t.shape == (12, 1, 1, 6, 6)
    np.testing.assert_allclose(sweep.x_t.numpy(), expected, rtol=0, atol=1e-6)
    np.testing.assert_allclose(sweep.alpha_bars.numpy(), ab, rtol=1e-12)


@pytest.mark.parametrize("prediction", ["eps", "x0", "v"])
def test_a_perfect_model_of_any_parameterization_recovers_eps_and_x0(prediction):
    x0 = example()
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(3))
    model = CheatingModel(x0, noise, prediction)
    sweep = explore.denoise_sweep(model, diffusion(prediction), x0, torch.arange(T), noise)
    np.testing.assert_allclose(sweep.pred_eps.numpy(), np.broadcast_to(noise.numpy(), sweep.pred_eps.shape), atol=2e-3)
    np.testing.assert_allclose(sweep.pred_x0.numpy(), np.broadcast_to(x0.numpy(), sweep.pred_x0.shape), atol=1e-4)
    assert float(sweep.eps_mse.max()) < 1e-5 and float(sweep.x0_mse.max()) < 1e-8
    assert float(sweep.abs_error.max()) < 2e-3


def test_constant_eps_prediction_is_converted_by_hand():
    """ε̂ = 0.5 everywhere: x̂₀ = (x_t − √(1−ᾱ)·0.5)/√ᾱ and the MSEs follow by hand."""
    x0 = example()
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(4))
    t = torch.tensor([0, 10, 49])
    sweep = explore.denoise_sweep(lambda x, tt: torch.full_like(x, 0.5), diffusion(), x0, t, noise)
    ab = hand_alpha_bars()[[0, 10, 49]][:, None, None, None, None]
    x_t = np.sqrt(ab) * x0.numpy() + np.sqrt(1 - ab) * noise.numpy()
    pred_x0 = (x_t - np.sqrt(1 - ab) * 0.5) / np.sqrt(ab)
    np.testing.assert_allclose(sweep.pred_x0.numpy(), pred_x0, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(sweep.eps_mse.numpy(), np.full(3, ((noise.numpy() - 0.5) ** 2).mean()), rtol=1e-6)
    np.testing.assert_allclose(sweep.x0_mse.numpy(), ((pred_x0 - x0.numpy()) ** 2).reshape(3, -1).mean(1), rtol=1e-4)


def test_constant_x0_and_v_predictions_are_converted_by_hand():
    x0 = example()
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(5))
    t = torch.tensor([2, 30])
    ab = hand_alpha_bars()[[2, 30]][:, None, None, None, None]
    x_t = np.sqrt(ab) * x0.numpy() + np.sqrt(1 - ab) * noise.numpy()
    by_x0 = explore.denoise_sweep(lambda x, tt: torch.full_like(x, -0.25), diffusion("x0"), x0, t, noise)
    np.testing.assert_allclose(by_x0.pred_eps.numpy(), (x_t + np.sqrt(ab) * 0.25) / np.sqrt(1 - ab), rtol=1e-4, atol=1e-4)
    by_v = explore.denoise_sweep(lambda x, tt: torch.full_like(x, 0.4), diffusion("v"), x0, t, noise)
    np.testing.assert_allclose(by_v.pred_x0.numpy(), np.sqrt(ab) * x_t - np.sqrt(1 - ab) * 0.4, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(by_v.pred_eps.numpy(), np.sqrt(1 - ab) * x_t + np.sqrt(ab) * 0.4, rtol=1e-5, atol=1e-5)


def test_chunks_give_one_forward_pass_each_and_the_same_result():
    x0 = example((3, 1, 4, 4))
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(6))
    t = explore.timestep_grid(T, 10)
    results = []
    for batch_size in (7, 64):
        model = CheatingModel(x0[:1], noise[:1], "eps")
        results.append(explore.denoise_sweep(model, diffusion(), x0, t, noise, batch_size=batch_size))
        assert model.calls == math.ceil(30 / batch_size)
    for name in ("x_t", "pred_eps", "pred_x0", "eps_mse", "x0_mse"):
        assert torch.equal(getattr(results[0], name), getattr(results[1], name))
    # examples 1 and 2 get example 0's noise as prediction: their ε-error is exactly their noise difference
    expected = ((noise[1:] - noise[:1]) ** 2).sum().double() / noise.numel()
    assert torch.allclose(results[0].eps_mse, expected.expand(10), rtol=1e-6)


def test_learned_variance_channels_are_ignored():
    x0 = example()
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(8))
    t = explore.timestep_grid(T, 5)
    plain = explore.denoise_sweep(CheatingModel(x0, noise, "v"), diffusion("v"), x0, t, noise)
    learned = explore.denoise_sweep(CheatingModel(x0, noise, "v", extra_channels=1), diffusion("v", "learned_range"), x0, t, noise)
    assert torch.equal(plain.pred_x0, learned.pred_x0) and learned.pred_eps.shape == (5, 1, 1, 6, 6)


def test_point_sweep_shapes_and_removal_arrows_land_on_scaled_x0():
    x0 = example((20, 2))
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(9))
    t = explore.timestep_grid(T, 6)
    sweep = explore.denoise_sweep(lambda x, tt: torch.zeros_like(x), diffusion(), x0, t, noise)
    assert sweep.x_t.shape == (6, 20, 2) and sweep.eps_mse.shape == (6,)
    arrows = explore.removal_arrows(sweep, 5)
    xs, ys = arrows["true"]
    assert xs.shape == (6, 15)
    ab = hand_alpha_bars()[t.numpy()]
    ends = np.stack([xs[:, 1::3], ys[:, 1::3]], axis=-1)  # [K, 5, 2]
    np.testing.assert_allclose(ends, np.sqrt(ab)[:, None, None] * x0[:5].numpy(), atol=1e-6)
    np.testing.assert_allclose(np.stack([xs[:, 0::3], ys[:, 0::3]], -1), sweep.x_t[:, :5].numpy())
    assert np.isnan(xs[:, 2::3]).all() and np.isnan(ys[:, 2::3]).all()
    # ε̂ = 0: the predicted arrow has zero length
    pxs, pys = arrows["predicted"]
    np.testing.assert_array_equal(pxs[:, 0::3], pxs[:, 1::3])


def test_sweep_validation():
    x0 = example()
    noise = torch.zeros_like(x0)
    model = lambda x, tt: x  # noqa: E731
    with pytest.raises(ValueError, match="t must lie in 0..49"):
        explore.denoise_sweep(model, diffusion(), x0, torch.tensor([0, 50]), noise)
    with pytest.raises(ValueError, match="noise"):
        explore.denoise_sweep(model, diffusion(), x0, torch.tensor([0]), noise[..., :3])
    with pytest.raises(ValueError, match="batch_size"):
        explore.denoise_sweep(model, diffusion(), x0, torch.tensor([0]), noise, batch_size=0)
    with pytest.raises(ValueError, match="diffusion"):
        explore.denoise_sweep(model, "linear", x0, torch.tensor([0]), noise)
    with pytest.raises(ValueError, match="2-D points"):
        explore.removal_arrows(explore.denoise_sweep(model, diffusion(), x0, torch.tensor([0]), noise), 3)


def test_same_forward_process_compares_schedules_only():
    assert explore.same_forward_process(diffusion("eps"), diffusion("v", "learned_range"))
    assert not explore.same_forward_process(diffusion(), diffusion(T=60))


# ------------------------------------------------------------------------------------------ display
def test_to_display_maps_ranges_to_pixels():
    x = torch.tensor([-1.0, 0.0, 1.0, 2.0]).reshape(1, 1, 4)
    assert explore.to_display(x, -1, 1).tolist() == [[0, 128, 255, 255]]  # 127.5 rounds up, 2 is clamped
    assert explore.to_display(x, -3, 3).tolist() == [[85, 128, 170, 213]]  # 255·(x+3)/6 rounded
    rgb = explore.to_display(torch.zeros(2, 3, 2, 5), 0, 3)
    assert rgb.shape == (2, 2, 5, 3) and rgb.dtype == np.uint8 and (rgb == 0).all()
    with pytest.raises(ValueError, match="high > low"):
        explore.to_display(x, 1, 1)
    with pytest.raises(ValueError, match="C = 1 or 3"):
        explore.to_display(torch.zeros(2, 5, 5), 0, 1)


def test_sweep_pictures():
    x0 = example()
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(2))
    sweep = explore.denoise_sweep(lambda x, tt: -x, diffusion(), x0, explore.timestep_grid(T, 4), noise)
    pictures = explore.sweep_pictures(sweep)
    assert {k: v.shape for k, v in pictures.items()} == {"x_t": (4, 6, 6), "eps": (6, 6), "eps_hat": (4, 6, 6),
                                                          "error": (4, 6, 6), "x0_hat": (4, 6, 6), "x0": (6, 6)}
    np.testing.assert_array_equal(pictures["x0"], np.floor((x0[0, 0].double().numpy() + 1) * 127.5 + 0.5))
    with pytest.raises(ValueError, match="example"):
        explore.sweep_pictures(sweep, example=1)


def test_random_choices_are_reproducible():
    assert explore.random_index(500, 3) == explore.random_index(500, 3)
    assert len({explore.random_index(500, s) for s in range(20)}) > 10
    subset = explore.random_subset(100, 30, 1)
    assert subset.tolist() == sorted(set(subset.tolist())) and len(subset) == 30 and int(subset.max()) < 100
    assert len(explore.random_subset(10, 30, 1)) == 10
    with pytest.raises(ValueError, match="seed"):
        explore.random_index(5, -1)


# ----------------------------------------------------------------------------------------- sampling
def zero_eps_model(x, t):
    return torch.zeros_like(x)


def test_check_settings_rejects_bad_choices():
    d = diffusion()
    good = explore.SamplerSettings("ddpm", 10)
    assert explore.check_settings(good, d) is good
    cases = [(dict(method="euler"), "method"), (dict(steps=51), "steps"), (dict(steps=0), "steps"),
             (dict(spacing="random"), "spacing"), (dict(variance="learned_range"), "learned variances"),
             (dict(variance="big"), "variance"), (dict(eta=-0.1), "eta"), (dict(clip_x0="yes"), "clip_x0")]
    for change, message in cases:
        with pytest.raises(ValueError, match=message):
            explore.check_settings(explore.SamplerSettings(**{**good.__dict__, **change}), d)


def test_all_runs_with_one_seed_start_from_the_same_noise():
    shape = (3, 1, 4, 4)
    expected = torch.randn(shape, generator=torch.Generator().manual_seed(11))
    for settings in (explore.SamplerSettings("ddpm", 5, spacing="trailing"), explore.SamplerSettings("ddim", 10, eta=0.5)):
        _, trajectory = explore.run_sampler(zero_eps_model, diffusion(), settings, shape, 11, record=True)
        assert torch.equal(trajectory.x_t[0], expected)


def test_ddim_one_step_returns_the_predicted_x0():
    target = torch.full((2, 2), 0.3)
    settings = explore.SamplerSettings("ddim", 1, clip_x0=False)
    result = explore.run_sampler(lambda x, t: target.expand_as(x), diffusion("x0"), settings, (2, 2), 0)
    assert torch.allclose(result, target)


@pytest.mark.parametrize("variance", ["fixed_large", "fixed_small"])
def test_ddpm_two_steps_by_hand(variance):
    """ε̂ = 0, T = 2: x_1 = x_2/√α_2 + σ_2·z, x_0 = x_1/√α_1 (Algorithm 2, no noise at the last step)."""
    betas = np.array([0.1, 0.3])
    d = GaussianDiffusion(make_schedule("linear", 2, 0.1, 0.3), "eps", "fixed_large")
    settings = explore.SamplerSettings("ddpm", 2, variance=variance, clip_x0=False)
    result = explore.run_sampler(zero_eps_model, d, settings, (4, 2), 5)
    g = torch.Generator().manual_seed(5)
    x2, z = torch.randn(4, 2, generator=g).double().numpy(), torch.randn(4, 2, generator=g).double().numpy()
    alpha_bar = np.cumprod(1 - betas)
    sigma2 = betas[1] if variance == "fixed_large" else (1 - alpha_bar[0]) / (1 - alpha_bar[1]) * betas[1]
    x1 = x2 / np.sqrt(1 - betas[1]) + np.sqrt(sigma2) * z
    np.testing.assert_allclose(result.numpy(), x1 / np.sqrt(1 - betas[0]), rtol=1e-5, atol=1e-6)


def test_learned_variance_model_can_sample_with_fixed_or_learned_variance():
    """Variance channel v = −1 means σ² = β̃ (Nichol & Dhariwal eq. 15), so 'learned' must equal fixed_small."""
    learned = diffusion("eps", "learned_range")

    def model(x, t):
        return torch.cat([torch.zeros_like(x), -torch.ones_like(x)], dim=1)

    shape = (3, 2)
    run = {v: explore.run_sampler(model, learned, explore.SamplerSettings("ddpm", 20, variance=v, clip_x0=False), shape, 2)
           for v in ("learned_range", "fixed_small", "fixed_large")}
    assert torch.allclose(run["learned_range"], run["fixed_small"], atol=1e-6)
    assert not torch.allclose(run["fixed_large"], run["fixed_small"], atol=1e-3)
    wrapped, process = explore.sampling_process(model, learned, "fixed_large", 2)
    assert process.variance == "fixed_large" and explore.same_forward_process(process, learned)
    assert wrapped(torch.zeros(5, 2), torch.zeros(5, dtype=torch.long)).shape == (5, 2)
    with pytest.raises(ValueError, match="learned"):
        explore.sampling_process(zero_eps_model, diffusion(), "learned_range", 1)


def test_record_every_and_snapshots():
    assert explore.record_every(1000, 60) == 17 and explore.record_every(50, 60) == 1 and explore.record_every(60, 60) == 1
    recorded = list(range(999, -1, -17))  # 999, 982, ..., 14
    positions = explore.snapshot_positions(recorded, 1000)
    targets = [999, 749.25, 499.5, 249.75]
    assert positions == [int(np.argmin([abs(r - x) for r in recorded])) for x in targets]
    with pytest.raises(ValueError, match="fractions"):
        explore.snapshot_positions(recorded, 1000, fractions=(1.5,))


def test_trajectory_pictures_and_snapshots_of_a_real_run():
    settings = explore.SamplerSettings("ddim", 10)
    final, trajectory = explore.run_sampler(zero_eps_model, diffusion(), settings, (5, 1, 4, 4), 0, record=3)
    assert trajectory.t == [45, 30, 15, 0]  # leading spacing 45, 40, ..., 0, every 3rd step plus the last
    pictures = explore.trajectory_pictures(trajectory, count=2, nrow=2)
    assert pictures["t"] == [45, 30, 15, 0, -1]
    assert pictures["x_t"].shape == (5, 4 + 4, 2 * 6 + 2) and pictures["pred_x0"].shape == pictures["x_t"].shape
    np.testing.assert_array_equal(pictures["x_t"][-1], pictures["pred_x0"][-1])
    strip = explore.snapshots(trajectory, T)
    assert [t for t, _ in strip] == [45, 30, 30, 15, -1] and torch.equal(strip[-1][1], final)


def test_keep_first_trims_every_recorded_tensor():
    final, trajectory = explore.run_sampler(zero_eps_model, diffusion(), explore.SamplerSettings("ddim", 5), (6, 2), 0, record=True)
    small = explore.keep_first(trajectory, 2)
    assert small.t == trajectory.t and torch.equal(small.final, final[:2])
    assert all(torch.equal(a, b[:2]) for a, b in zip(small.x_t, trajectory.x_t))
    assert all(x.shape == (2, 2) for x in small.pred_x0 + small.pred_eps)
