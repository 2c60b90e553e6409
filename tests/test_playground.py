"""Tests of core/lab/playground.py against values derived independently (closed forms, autograd, brute force)."""

import math

import numpy as np
import pytest
import torch

from core import sampling
from core.data.datasets import load_dataset
from core.data.toys import toy_mixture_parameters
from core.diffusion.gaussian_diffusion import GaussianDiffusion
from core.diffusion.oracle import EmpiricalDistribution, GaussianMixture, OracleDenoiser, loss_floor_curve
from core.diffusion.schedules import make_schedule
from core.lab import playground
from core.training.step import load_training_data

T = 100


def make_diffusion(prediction="eps", variance="fixed_small", kind="linear"):
    return GaussianDiffusion(make_schedule(kind, T, scale_with_T=kind != "cosine"), prediction, variance)


def generator(seed=0):
    return torch.Generator().manual_seed(seed)


# ------------------------------------------------------------------------------------------ fields
@pytest.mark.parametrize("prediction,variance", [("eps", "fixed_small"), ("x0", "fixed_large"), ("v", "learned_range")])
def test_oracle_field_of_one_gaussian_matches_the_closed_form(prediction, variance):
    # x0 ~ N(mu, s^2 I)  =>  x_t ~ N(sqrt(ab) mu, (ab s^2 + 1 - ab) I): score = -(x - sqrt(ab) mu) / c,
    # E[eps | x_t] = -sqrt(1 - ab) * score. Whatever the oracle predicts, the field must be the same.
    mu, s = torch.tensor([[0.3, -0.2]], dtype=torch.float64), 0.4
    diffusion = make_diffusion(prediction, variance)
    oracle = OracleDenoiser(GaussianMixture(mu, torch.tensor([s], dtype=torch.float64), torch.tensor([1.0])), diffusion)
    x = torch.randn(50, 2, generator=generator(1), dtype=torch.float64)
    for t in (0, 37, T - 1):
        ab = float(diffusion.schedule.alpha_bars[t])
        c = ab * s * s + 1 - ab
        score = -(x.double() - math.sqrt(ab) * mu.double()) / c
        assert torch.allclose(playground.predicted_field(oracle, diffusion, t, x, "score"), score, rtol=1e-9, atol=1e-9)
        eps = -math.sqrt(1 - ab) * score
        assert torch.allclose(playground.predicted_field(oracle, diffusion, t, x, "eps"), eps, rtol=1e-9, atol=1e-9)


def test_oracle_score_field_of_the_anisotropic_mixture_is_the_gradient_of_log_q_t():
    distribution = GaussianMixture(*toy_mixture_parameters("gaussian_mixture"))
    diffusion = make_diffusion("x0", "fixed_small", kind="cosine")
    oracle = OracleDenoiser(distribution, diffusion)
    grid = playground.square_grid(1.2, 7)
    for t in (3, 40, 90):
        x = grid.points.double().requires_grad_(True)
        log_q = distribution.marginal_log_prob(x, float(diffusion.schedule.alpha_bars[t]))
        (autograd_score,) = torch.autograd.grad(log_q.sum(), x)
        field = playground.predicted_field(oracle, diffusion, t, grid.points.double(), "score")
        assert torch.allclose(field, autograd_score, rtol=1e-8, atol=1e-10)


def test_oracle_eps_field_of_a_point_set_matches_brute_force():
    # E[x0 | x_t] = sum_i w_i x_i with w = softmax(-|x_t - sqrt(ab) x_i|^2 / (2 (1 - ab))) (uniform prior on the
    # points); E[eps | x_t] = (x_t - sqrt(ab) E[x0 | x_t]) / sqrt(1 - ab); score = -E[eps | x_t] / sqrt(1 - ab).
    points = np.array([[0.5, 0.5], [-0.6, 0.1], [0.2, -0.7], [0.9, -0.3]])
    diffusion = make_diffusion("v", "fixed_small")
    oracle = OracleDenoiser(EmpiricalDistribution(torch.tensor(points)), diffusion)
    x = np.array([[0.0, 0.0], [0.4, 0.6], [-1.0, 1.0], [2.0, -2.0]])
    for t in (5, 60):
        ab = float(diffusion.schedule.alpha_bars[t])
        logits = -((x[:, None, :] - math.sqrt(ab) * points[None]) ** 2).sum(2) / (2 * (1 - ab))
        w = np.exp(logits - logits.max(1, keepdims=True))
        w /= w.sum(1, keepdims=True)
        eps = (x - math.sqrt(ab) * (w @ points)) / math.sqrt(1 - ab)
        field = playground.predicted_field(oracle, diffusion, t, torch.tensor(x), "eps")
        np.testing.assert_allclose(field.numpy(), eps, rtol=1e-9, atol=1e-9)
        score = playground.predicted_field(oracle, diffusion, t, torch.tensor(x), "score")
        np.testing.assert_allclose(score.numpy(), -eps / math.sqrt(1 - ab), rtol=1e-9, atol=1e-9)


def test_model_field_converts_x0_predictions_and_drops_learned_variance():
    # an x0-model that always predicts x0 = c has eps_hat = (x - sqrt(ab) c) / sqrt(1 - ab) (Ho et al. eq. 4)
    diffusion = make_diffusion("x0", "learned_range")
    c = torch.tensor([0.25, -0.5])

    def model(x, t):
        return torch.cat([c.expand_as(x), torch.full_like(x, 0.7)], dim=1)

    x = torch.tensor([[1.0, 2.0], [-0.5, 0.0]])
    ab = float(diffusion.schedule.alpha_bars[20])
    expected = (x.double() - math.sqrt(ab) * c.double()) / math.sqrt(1 - ab)
    assert torch.allclose(playground.predicted_field(model, diffusion, 20, x, "eps"), expected, atol=1e-6)


def test_grid_layout_and_field_comparison_shapes():
    grid = playground.square_grid(2.0, 5)
    assert grid.points.shape == (25, 2) and grid.resolution == 5 and grid.spacing == pytest.approx(1.0)
    assert grid.xs.tolist() == [-2.0, -1.0, 0.0, 1.0, 2.0]
    assert grid.points[1].tolist() == [-1.0, -2.0]  # x varies fastest
    assert grid.points[5].tolist() == [-2.0, -1.0]
    image = grid.image(grid.points[:, 0])
    assert image.shape == (5, 5) and image[0].tolist() == grid.xs.tolist()  # rows are y, columns are x

    diffusion = make_diffusion()
    oracle = OracleDenoiser(GaussianMixture(*toy_mixture_parameters("eight_gaussians")), diffusion)
    alone = playground.compare_fields(None, oracle, 10, grid)
    assert alone.model is None and alone.difference is None and alone.oracle.shape == (25, 2)
    assert alone.log_density.shape == (25,)

    def shifted(x, t):  # the oracle plus a constant 0.1 in both coordinates: difference sqrt(0.02) everywhere
        return oracle(x, t) + 0.1

    both = playground.compare_fields(shifted, oracle, 10, grid, "eps")
    assert torch.allclose(both.difference, torch.full((25,), math.sqrt(0.02), dtype=torch.float64), atol=1e-6)


def test_arrow_geometry():
    points = torch.tensor([[0.0, 0.0], [1.0, 1.0]])
    vectors = torch.tensor([[1.0, 0.0], [0.0, 10.0]])
    x, y = playground.arrow_segments(points, vectors, scale=0.5, max_length=1.0, head=0.2)
    assert len(x) == 14 and np.isnan(x[[3, 6, 10, 13]]).all()
    assert (x[1], y[1]) == (0.5, 0.0)  # tip = p + scale * v
    assert (x[8], y[8]) == pytest.approx((1.0, 2.0))  # 5.0 long, clipped to max_length = 1
    barb = math.hypot(x[2] - x[1], y[2] - y[1])
    assert barb == pytest.approx(0.2 * 0.5)  # head stroke = head * arrow length
    angle = math.degrees(math.atan2(y[2] - y[1], x[2] - x[1]))
    assert abs(angle) == pytest.approx(180 - 25)  # pointing back along the shaft, 25 degrees off
    lengths = torch.tensor([[3.0, 4.0], [0.0, 1.0]])  # lengths 5 and 1; the 1.0-quantile is 5
    assert playground.arrow_scale([lengths, None], spacing=2.0, quantile=1.0) == pytest.approx(0.9 * 2.0 / 5.0)


# ---------------------------------------------------------------------------------- loss per timestep
@pytest.mark.parametrize("toy,prediction", [("eight_gaussians", "eps"), ("swiss_roll", "x0"), ("gaussian_mixture", "v")])
def test_the_oracle_as_a_model_reaches_the_loss_floor(toy, prediction):
    distribution = playground.oracle_distribution(toy, toy_points=256)
    diffusion = make_diffusion(prediction)
    oracle = OracleDenoiser(distribution, diffusion)
    ts = torch.tensor([0, 10, 50, 99])
    means, errors = playground.timestep_loss(oracle, diffusion, distribution.sample, ts, 3000, generator(1))
    floor, floor_errors = loss_floor_curve(distribution, diffusion, ts, 3000, generator(2))
    z = (means - floor) / (errors**2 + floor_errors**2).sqrt()
    assert z.abs().max() < 4.5, (means, floor, z)


def test_timestep_loss_of_a_zero_eps_model_is_one():
    # predicting eps_hat = 0 costs E|eps|^2 / D = 1 at every t, whatever the data
    diffusion = make_diffusion("eps")
    means, errors = playground.timestep_loss(lambda x, t: torch.zeros_like(x), diffusion,
                                             lambda n, g: torch.zeros(n, 2), [0, 99], 20000, generator(), batch_size=7000)
    assert torch.all((means - 1).abs() < 4 * errors) and torch.all(errors < 0.02)


def test_a_biased_model_sits_above_the_floor_by_its_squared_bias():
    # eps-model = oracle + b: loss = floor + |b|^2 / D exactly (the cross term has mean 0)
    distribution = GaussianMixture(*toy_mixture_parameters("eight_gaussians"))
    diffusion = make_diffusion("eps")
    oracle = OracleDenoiser(distribution, diffusion)
    ts = torch.tensor([5, 80])
    biased, errors = playground.timestep_loss(lambda x, t: oracle(x, t) + torch.tensor([0.3, 0.4]), diffusion,
                                              distribution.sample, ts, 4000, generator(3))
    floor, floor_errors = loss_floor_curve(distribution, diffusion, ts, 4000, generator(4))
    assert torch.all((biased - floor - 0.125).abs() < 4 * (errors**2 + floor_errors**2).sqrt())


def test_bin_average_by_hand():
    means, errors = playground.bin_average([0, 1, 2, 3, 7], [1.0, 2.0, 3.0, 4.0, 9.0], [0.3, 0.4, 0.1, 0.1, 1.0],
                                           [0, 2, 4, 6, 8])
    assert means[:2] == [1.5, 3.5] and math.isnan(means[2]) and means[3] == 9.0
    assert errors[0] == pytest.approx(0.5 / 2) and errors[1] == pytest.approx(math.sqrt(0.02) / 2)
    with pytest.raises(ValueError, match="edges"):
        playground.bin_average([0], [1.0], [0.1], [3, 3])


# ------------------------------------------------------------------------------------- oracle and data
def test_oracle_distribution_is_the_mixture_or_the_training_set():
    mixture = playground.oracle_distribution("gaussian_mixture")
    means, stds, weights = toy_mixture_parameters("gaussian_mixture")
    assert isinstance(mixture, GaussianMixture) and torch.equal(mixture.means, means) and torch.equal(mixture.stds, stds)
    assert playground.has_exact_density("eight_gaussians") and not playground.has_exact_density("two_moons")

    config = playground.playground_config("two_moons", seed=3)
    empirical = playground.oracle_distribution("two_moons", config.seed, config.toy_points)
    training_set = load_training_data("two_moons", 3, config.toy_points).data  # what a Trainer trains on
    assert isinstance(empirical, EmpiricalDistribution)
    assert torch.equal(empirical.points, training_set.double())
    bigger = playground.oracle_distribution("checkerboard", 0, 8192)  # only a fixed sample of a large set
    assert torch.equal(bigger.points, load_dataset("checkerboard", seed=0, n_points=8192).data[: playground.ORACLE_POINTS].double())


def test_fresh_data_is_not_training_data():
    fresh = playground.fresh_data("swiss_roll", 500, seed=0, toy_points=2048)
    training = load_dataset("swiss_roll", seed=0, n_points=2048).data
    assert fresh.shape == (500, 2)
    assert torch.cdist(fresh, training).min() > 0


def test_toy_data_settings_and_config_validation():
    metadata = {"data": {"dataset": "checkerboard", "shape": [2]}, "training": {"config": {"seed": 4, "toy_points": 999}}}
    assert playground.toy_data_settings(metadata) == ("checkerboard", 4, 999)
    assert playground.toy_data_settings({"data": {"dataset": "two_moons"}}) == ("two_moons", 0, 8192)
    with pytest.raises(ValueError, match="not on a 2-D toy"):
        playground.toy_data_settings({"data": {"dataset": "mnist"}})
    config = playground.playground_config("eight_gaussians", schedule="cosine", T=200, prediction="v")
    assert (config.device, config.model_size, config.toy_points) == ("cpu", "tiny", playground.ORACLE_POINTS)
    with pytest.raises(ValueError, match="dataset"):
        playground.playground_config("mnist")
    with pytest.raises(ValueError, match="T="):
        playground.playground_config("two_moons", T=0)


def test_invalid_inputs_name_the_parameter():
    diffusion = make_diffusion()
    oracle = OracleDenoiser(GaussianMixture(*toy_mixture_parameters("eight_gaussians")), diffusion)
    grid = playground.square_grid(1.0, 3)
    # the page's entry point (compare_fields) checks the widget values; predicted_field under it does not
    with pytest.raises(ValueError, match="kind='x0' is not allowed; expected one of eps, score"):
        playground.compare_fields(None, oracle, 0, grid, "x0")
    with pytest.raises(ValueError, match=f"t={T} is not allowed"):
        playground.compare_fields(None, oracle, T, grid)
    with pytest.raises(ValueError, match=r"points and vectors must have the same shape \[N, 2\]"):
        playground.arrow_segments(torch.zeros(3, 3), torch.zeros(3, 3), 1.0)
    with pytest.raises(ValueError, match=f"t must lie in 0..{T - 1}"):
        playground.timestep_loss(oracle, diffusion, lambda n, g: torch.zeros(n, 2), [T], 4, generator())
    with pytest.raises(ValueError, match="resolution"):
        playground.square_grid(1.0, 1)
    with pytest.raises(ValueError, match="half_width"):
        playground.square_grid(0.0, 5)


# ---------------------------------------------------------------------------------- samples and quality
def test_run_pair_shares_the_noise_and_records_frames():
    diffusion = make_diffusion()
    oracle = OracleDenoiser(GaussianMixture(*toy_mixture_parameters("eight_gaussians")), diffusion)
    settings = sampling.SamplerSettings(method="ddpm", steps=50, variance="fixed_small", clip_x0=False)
    result = playground.run_pair({"model": lambda x, t: torch.zeros_like(x), "oracle": oracle}, diffusion, settings,
                                 64, seed=5, max_frames=10)
    (_model_x0, model_t, model_frames), (oracle_x0, oracle_t, oracle_frames) = result["model"], result["oracle"]
    assert model_t == oracle_t and model_t[-1] == -1 and len(model_t) == oracle_frames.shape[0] <= 12
    assert model_frames.shape == (len(model_t), 64, 2)
    np.testing.assert_array_equal(model_frames[0], oracle_frames[0])  # the same x_T
    np.testing.assert_array_equal(oracle_frames[-1], oracle_x0.numpy())


def test_quality_table_ranks_the_oracle_above_a_bad_model():
    diffusion = make_diffusion()
    distribution = GaussianMixture(*toy_mixture_parameters("eight_gaussians"))
    reference = distribution.sample(600, generator(9))
    models = {"oracle": OracleDenoiser(distribution, diffusion), "zero": lambda x, t: torch.zeros_like(x)}
    calls = []
    rows = playground.quality_table(models, diffusion, [10, 50, 10], 300, 1, reference,
                                    progress=lambda i, n: calls.append((i, n)))
    assert [(row["sampler"], row["steps"]) for row in rows] == [("DDPM", 10), ("DDPM", 50), ("DDIM", 10), ("DDIM", 50)]
    assert calls[-1] == (8, 8)
    for row in rows:
        assert row["oracle MMD²"] < row["zero MMD²"] and row["oracle SW₁"] < row["zero SW₁"]
    # oracle DDPM-50 samples are as close to the data as fresh data is (a few times the metrics' noise)
    fresh = playground.sample_quality(distribution.sample(300, generator(10)), reference,
                                      playground.reference_bandwidths(reference))
    assert rows[1]["oracle SW₁"] < 3 * fresh["sw1"] + 0.02


def test_metric_noise_is_centred_on_zero_for_the_true_distribution_and_not_for_another():
    distribution = GaussianMixture(*toy_mixture_parameters("eight_gaussians"))
    reference = distribution.sample(800, generator(11))
    noise = playground.metric_noise(distribution.sample, reference, 300, 6, generator(12))
    mmd_mean, mmd_std = noise["mmd2"]
    assert mmd_std > 0 and abs(mmd_mean) < 3 * mmd_std / math.sqrt(6) + 1e-4  # unbiased MMD²: mean 0
    assert 0 < noise["sw1"][0] < 0.1

    def shifted(n, g):  # the same mixture moved by 0.2: clearly worse than the noise level
        return distribution.sample(n, g) + torch.tensor([0.2, 0.0])

    moved = playground.metric_noise(shifted, reference, 300, 3, generator(13))
    assert moved["mmd2"][0] > mmd_mean + 10 * mmd_std and moved["sw1"][0] > noise["sw1"][0] + 0.05
