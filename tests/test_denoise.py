"""core/lab/denoise.py: the timestep grid, the denoise sweep, the display helpers and the seeded choices behind
the Denoise explorer.

Expected values are derived by hand in numpy (ᾱ from the linear β's, x_t from eq. 4) or from "cheating" models
that know the true noise, never by calling the code under test.
"""

import math

import numpy as np
import pytest
import torch

from core.diffusion.gaussian_diffusion import GaussianDiffusion
from core.diffusion.schedules import make_schedule
from core.lab import denoise

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
    grid = denoise.timestep_grid(1000, 100)
    # 999/99 = 111/11 per step; k·111/11 is never a half-integer, so floor(x + 0.5) is the rounding
    expected = [math.floor(k * 999 / 99 + 0.5) for k in range(100)]
    assert grid.dtype == torch.long and grid.tolist() == expected
    assert grid[0] == 0 and grid[-1] == 999 and bool((grid[1:] > grid[:-1]).all())


@pytest.mark.parametrize("T, count, expected", [(5, 10, [0, 1, 2, 3, 4]), (5, 5, [0, 1, 2, 3, 4]),
                                                (10, 2, [0, 9]), (10, 4, [0, 3, 6, 9]), (1, 1, [0])])
def test_timestep_grid_small_cases(T, count, expected):
    assert denoise.timestep_grid(T, count).tolist() == expected


@pytest.mark.parametrize("T, count", [(10, 1), (10, 0), (0, 5), (10, 2.5), (10, True)])
def test_timestep_grid_rejects_bad_input(T, count):
    with pytest.raises(ValueError, match="count|T"):
        denoise.timestep_grid(T, count)


# ------------------------------------------------------------------------------------ denoise sweep
def test_sweep_x_t_is_eq4_with_the_seeded_noise():
    x0 = example()
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(7))
    t = denoise.timestep_grid(T, 12)
    sweep = denoise.denoise_sweep(lambda x, tt: torch.zeros_like(x), diffusion(), x0, t, noise)
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
    sweep = denoise.denoise_sweep(model, diffusion(prediction), x0, torch.arange(T), noise)
    np.testing.assert_allclose(sweep.pred_eps.numpy(), np.broadcast_to(noise.numpy(), sweep.pred_eps.shape), atol=2e-3)
    np.testing.assert_allclose(sweep.pred_x0.numpy(), np.broadcast_to(x0.numpy(), sweep.pred_x0.shape), atol=1e-4)
    assert float(sweep.eps_mse.max()) < 1e-5 and float(sweep.x0_mse.max()) < 1e-8
    assert float(sweep.abs_error.max()) < 2e-3


def test_constant_eps_prediction_is_converted_by_hand():
    """ε̂ = 0.5 everywhere: x̂₀ = (x_t − √(1−ᾱ)·0.5)/√ᾱ and the MSEs follow by hand."""
    x0 = example()
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(4))
    t = torch.tensor([0, 10, 49])
    sweep = denoise.denoise_sweep(lambda x, tt: torch.full_like(x, 0.5), diffusion(), x0, t, noise)
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
    by_x0 = denoise.denoise_sweep(lambda x, tt: torch.full_like(x, -0.25), diffusion("x0"), x0, t, noise)
    np.testing.assert_allclose(by_x0.pred_eps.numpy(), (x_t + np.sqrt(ab) * 0.25) / np.sqrt(1 - ab), rtol=1e-4, atol=1e-4)
    by_v = denoise.denoise_sweep(lambda x, tt: torch.full_like(x, 0.4), diffusion("v"), x0, t, noise)
    np.testing.assert_allclose(by_v.pred_x0.numpy(), np.sqrt(ab) * x_t - np.sqrt(1 - ab) * 0.4, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(by_v.pred_eps.numpy(), np.sqrt(1 - ab) * x_t + np.sqrt(ab) * 0.4, rtol=1e-5, atol=1e-5)


def test_chunks_give_one_forward_pass_each_and_the_same_result():
    x0 = example((3, 1, 4, 4))
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(6))
    t = denoise.timestep_grid(T, 10)
    results = []
    for batch_size in (7, 64):
        model = CheatingModel(x0[:1], noise[:1], "eps")
        results.append(denoise.denoise_sweep(model, diffusion(), x0, t, noise, batch_size=batch_size))
        assert model.calls == math.ceil(30 / batch_size)
    for name in ("x_t", "pred_eps", "pred_x0", "eps_mse", "x0_mse"):
        assert torch.equal(getattr(results[0], name), getattr(results[1], name))
    # examples 1 and 2 get example 0's noise as prediction: their ε-error is exactly their noise difference
    expected = ((noise[1:] - noise[:1]) ** 2).sum().double() / noise.numel()
    assert torch.allclose(results[0].eps_mse, expected.expand(10), rtol=1e-6)


def test_learned_variance_channels_are_ignored():
    x0 = example()
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(8))
    t = denoise.timestep_grid(T, 5)
    plain = denoise.denoise_sweep(CheatingModel(x0, noise, "v"), diffusion("v"), x0, t, noise)
    learned = denoise.denoise_sweep(CheatingModel(x0, noise, "v", extra_channels=1), diffusion("v", "learned_range"), x0, t, noise)
    assert torch.equal(plain.pred_x0, learned.pred_x0) and learned.pred_eps.shape == (5, 1, 1, 6, 6)


def test_point_sweep_shapes_and_removal_arrows_land_on_scaled_x0():
    x0 = example((20, 2))
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(9))
    t = denoise.timestep_grid(T, 6)
    sweep = denoise.denoise_sweep(lambda x, tt: torch.zeros_like(x), diffusion(), x0, t, noise)
    assert sweep.x_t.shape == (6, 20, 2) and sweep.eps_mse.shape == (6,)
    arrows = denoise.removal_arrows(sweep, 5)
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
        denoise.denoise_sweep(model, diffusion(), x0, torch.tensor([0, 50]), noise)
    with pytest.raises(ValueError, match="noise"):
        denoise.denoise_sweep(model, diffusion(), x0, torch.tensor([0]), noise[..., :3])
    with pytest.raises(ValueError, match="batch_size"):
        denoise.denoise_sweep(model, diffusion(), x0, torch.tensor([0]), noise, batch_size=0)
    with pytest.raises(ValueError, match="2-D points"):
        denoise.removal_arrows(denoise.denoise_sweep(model, diffusion(), x0, torch.tensor([0]), noise), 3)


def test_same_forward_process_compares_schedules_only():
    assert denoise.same_forward_process(diffusion("eps"), diffusion("v", "learned_range"))
    assert not denoise.same_forward_process(diffusion(), diffusion(T=60))


def test_same_forward_process_compares_the_betas_not_the_settings():
    """Different settings that build identical betas are one process: the cosine schedule ignores its β range,
    and scale-with-T multiplies the β range by 1000/T = 1 at T = 1000."""
    def process(*args, **kwargs):
        return GaussianDiffusion(make_schedule(*args, **kwargs))

    assert denoise.same_forward_process(process("cosine", 100), process("cosine", 100, beta_start=1e-3, beta_end=0.05))
    assert denoise.same_forward_process(process("linear", 1000), process("linear", 1000, scale_with_T=True))
    assert not denoise.same_forward_process(process("linear", 100), process("linear", 100, scale_with_T=True))
    assert not denoise.same_forward_process(process("linear", 100), process("cosine", 100))
    # a relative change of 1e-6 in one β is a different process (the tolerance is float64 round-off)
    betas = make_schedule("linear", 100).betas.clone()
    betas[40] *= 1 + 1e-6
    from core.diffusion.schedules import NoiseSchedule
    assert not denoise.same_forward_process(process("linear", 100), GaussianDiffusion(NoiseSchedule.from_betas(betas)))


# ------------------------------------------------------------------------------------------ display
def test_to_display_maps_ranges_to_pixels():
    x = torch.tensor([-1.0, 0.0, 1.0, 2.0]).reshape(1, 1, 4)
    assert denoise.to_display(x, -1, 1).tolist() == [[0, 128, 255, 255]]  # 127.5 rounds up, 2 is clamped
    assert denoise.to_display(x, -3, 3).tolist() == [[85, 128, 170, 213]]  # 255·(x+3)/6 rounded
    rgb = denoise.to_display(torch.zeros(2, 3, 2, 5), 0, 3)
    assert rgb.shape == (2, 2, 5, 3) and rgb.dtype == np.uint8 and (rgb == 0).all()
    with pytest.raises(ValueError, match="high > low"):
        denoise.to_display(x, 1, 1)
    with pytest.raises(ValueError, match="C = 1 or 3"):
        denoise.to_display(torch.zeros(2, 5, 5), 0, 1)


def test_sweep_pictures():
    x0 = example()
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(2))
    sweep = denoise.denoise_sweep(lambda x, tt: -x, diffusion(), x0, denoise.timestep_grid(T, 4), noise)
    pictures = denoise.sweep_pictures(sweep)
    assert {k: v.shape for k, v in pictures.items()} == {"x_t": (4, 6, 6), "eps": (6, 6), "eps_hat": (4, 6, 6),
                                                          "error": (4, 6, 6), "x0_hat": (4, 6, 6), "x0": (6, 6)}
    np.testing.assert_array_equal(pictures["x0"], np.floor((x0[0, 0].double().numpy() + 1) * 127.5 + 0.5))
    with pytest.raises(ValueError, match="example"):
        denoise.sweep_pictures(sweep, example=1)


def test_random_choices_are_reproducible():
    assert denoise.random_index(500, 3) == denoise.random_index(500, 3)
    assert len({denoise.random_index(500, s) for s in range(20)}) > 10
    subset = denoise.random_subset(100, 30, 1)
    assert subset.tolist() == sorted(set(subset.tolist())) and len(subset) == 30 and int(subset.max()) < 100
    assert len(denoise.random_subset(10, 30, 1)) == 10
    with pytest.raises(ValueError, match="seed"):
        denoise.random_index(5, -1)


