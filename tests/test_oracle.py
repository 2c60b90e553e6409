"""Tests for core/diffusion/oracle.py against values derived independently (by hand, by Monte Carlo, by autograd)."""

import math

import pytest
import torch

from core.diffusion.gaussian_diffusion import GaussianDiffusion
from core.diffusion.oracle import EmpiricalDistribution, GaussianMixture, OracleDenoiser, loss_floor_curve
from core.diffusion.samplers import ddim_sample, ddpm_sample
from core.diffusion.schedules import make_schedule

SCHEDULE = make_schedule("linear", 1000)
ALPHA_BARS = SCHEDULE.alpha_bars


def diffusion(prediction="eps", variance="fixed_small", schedule=SCHEDULE):
    return GaussianDiffusion(schedule, prediction, variance)


def gen(seed):
    return torch.Generator().manual_seed(seed)


def two_component_mixture():
    """A 2-D mixture with different isotropic stds (the general code path)."""
    return GaussianMixture(torch.tensor([[-1.0, -0.5], [1.0, 0.5]]), torch.tensor([0.25, 0.35]), torch.tensor([0.3, 0.7]))


# ------------------------------------------------------------------------- single Gaussian closed forms
M, S = 0.7, 0.4  # the 1-D Gaussian N(M, S^2)


def gaussian_posterior_mean(x_t, ab):
    """E[x0 | x_t] for x0 ~ N(M, S^2): the standard Gaussian conditioning formula, written out."""
    return M + math.sqrt(ab) * S**2 / (ab * S**2 + 1 - ab) * (x_t - math.sqrt(ab) * M)


@pytest.mark.parametrize("prediction", ["eps", "x0", "v"])
def test_single_gaussian_outputs_match_closed_form(prediction):
    dist = GaussianMixture([[M]], [S], [1.0])
    oracle = OracleDenoiser(dist, diffusion(prediction))
    x_t = torch.linspace(-3, 3, 13, dtype=torch.float64)[:, None]
    for t in (0, 10, 400, 999):
        ab = float(ALPHA_BARS[t])
        x0 = gaussian_posterior_mean(x_t, ab)
        eps = (x_t - math.sqrt(ab) * x0) / math.sqrt(1 - ab)
        expected = {"x0": x0, "eps": eps, "v": math.sqrt(ab) * eps - math.sqrt(1 - ab) * x0}[prediction]
        t_batch = torch.full((13,), t)
        torch.testing.assert_close(oracle(x_t, t_batch), expected, rtol=1e-9, atol=1e-9)
        torch.testing.assert_close(oracle.expected_x0(x_t, t), x0, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(oracle.score(x_t, t), -eps / math.sqrt(1 - ab), rtol=1e-9, atol=1e-9)


def test_diagonal_gaussian_posterior_is_per_dimension():
    stds = torch.tensor([[0.2, 1.5]], dtype=torch.float64)
    dist = GaussianMixture([[0.5, -1.0]], stds, [1.0])
    oracle = OracleDenoiser(dist, diffusion("x0"))
    x_t = torch.tensor([[0.3, 0.1], [-2.0, 1.0]], dtype=torch.float64)
    t = 300
    ab = float(ALPHA_BARS[t])
    expected = torch.empty_like(x_t)
    for d, (mu, s) in enumerate([(0.5, 0.2), (-1.0, 1.5)]):
        expected[:, d] = mu + math.sqrt(ab) * s**2 / (ab * s**2 + 1 - ab) * (x_t[:, d] - math.sqrt(ab) * mu)
    torch.testing.assert_close(oracle(x_t, torch.full((2,), t)), expected, rtol=1e-12, atol=1e-12)


def test_log_density_of_single_gaussian_and_mixture():
    dist = GaussianMixture([[M]], [S], [1.0])
    x = torch.tensor([[-1.0], [0.2], [2.5]], dtype=torch.float64)
    for t in (5, 500):
        ab = float(ALPHA_BARS[t])
        var = ab * S**2 + 1 - ab
        expected = -0.5 * (x[:, 0] - math.sqrt(ab) * M) ** 2 / var - 0.5 * math.log(2 * math.pi * var)
        torch.testing.assert_close(OracleDenoiser(dist, diffusion()).log_density(x, t), expected)
    mix = two_component_mixture()
    points = torch.tensor([[0.0, 0.0], [1.0, 0.4], [-1.2, -0.3]], dtype=torch.float64)
    density = torch.zeros(3, dtype=torch.float64)
    for mu, s, w in zip(mix.means, [0.25, 0.35], [0.3, 0.7]):
        density += w * torch.exp(-((points - mu) ** 2).sum(1) / (2 * s**2)) / (2 * math.pi * s**2)
    torch.testing.assert_close(mix.log_prob(points), density.log())


def test_score_is_gradient_of_log_density():
    """Tweedie: -E[eps | x_t] / sqrt(1 - ab) equals the autograd gradient of log q_t (general and shared paths)."""
    mixtures = [two_component_mixture(),
                GaussianMixture([[0.0, 1.0], [1.0, -1.0], [-1.0, 0.0]], torch.tensor([[0.2, 0.4], [0.3, 0.3], [0.5, 0.1]]), [1, 2, 1]),
                EmpiricalDistribution(torch.tensor([[0.0, 1.0], [1.0, -1.0], [-0.5, 0.2]]))]
    x_t = torch.randn(16, 2, generator=gen(0), dtype=torch.float64)
    for dist in mixtures:
        oracle = OracleDenoiser(dist, diffusion())
        for t in (20, 250, 900):
            x = x_t.clone().requires_grad_(True)
            (grad,) = torch.autograd.grad(oracle.log_density(x, t).sum(), x)
            torch.testing.assert_close(oracle.score(x_t, t), grad, rtol=1e-7, atol=1e-7)


# ------------------------------------------------------------------ mixtures against brute force
def importance_posterior(dist, x_t, ab, n, generator):
    """Self-normalised importance sampling from the prior: E[x0 | x_t] and tr Cov[x0 | x_t],
    with a delta-method standard error for the mean."""
    x0 = dist.sample(n, generator, dtype=torch.float64)
    log_w = -((x_t - math.sqrt(ab) * x0) ** 2).sum(1) / (2 * (1 - ab))
    w = torch.softmax(log_w, 0)
    mean = (w[:, None] * x0).sum(0)
    var_sum = (w[:, None] * (x0 - mean) ** 2).sum()
    se = ((w[:, None] ** 2 * (x0 - mean) ** 2).sum(0)).sqrt()
    return mean, var_sum, se


@pytest.mark.parametrize("dist", [two_component_mixture(),
                                  GaussianMixture([[-1.0, 0.0], [1.0, 1.0]], torch.tensor([[0.3, 0.6], [0.5, 0.2]]), [0.5, 0.5])])
def test_mixture_posterior_matches_importance_sampling(dist):
    oracle = OracleDenoiser(dist, diffusion("x0"))
    generator = gen(1)
    for t, point in ((150, [0.2, 0.1]), (400, [-0.5, 0.4]), (400, [1.5, -0.5])):
        ab = float(ALPHA_BARS[t])
        x_t = torch.tensor([point], dtype=torch.float64)
        mean, var_sum, se = importance_posterior(dist, x_t, ab, 400_000, generator)
        got = oracle(x_t, torch.tensor([t]))[0]
        assert ((got - mean).abs() <= 5 * se + 1e-3).all(), (t, point, got, mean, se)
        post = dist.posterior(x_t, torch.tensor([ab], dtype=torch.float64), with_variance=True)
        assert abs(float(post.variance_sum[0]) - float(var_sum)) < 0.02 * float(var_sum) + 1e-3


def test_shared_and_general_paths_agree():
    """The same mixture given with stds [K] (shared-variance matmul path) and [K, D] (broadcast path)."""
    means = torch.tensor([[-1.0, 0.5], [0.5, 0.5], [1.0, -1.0]])
    shared = GaussianMixture(means, torch.tensor([0.3, 0.3, 0.3]), [0.2, 0.5, 0.3])
    general = GaussianMixture(means, torch.full((3, 2), 0.3), [0.2, 0.5, 0.3])
    x_t = torch.randn(50, 2, generator=gen(2), dtype=torch.float64) * 1.5
    ab = ALPHA_BARS[torch.randint(0, 1000, (50,), generator=gen(3))]
    a = shared.posterior(x_t, ab, with_variance=True)
    b = general.posterior(x_t, ab, with_variance=True)
    torch.testing.assert_close(a.mean, b.mean, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(a.variance_sum, b.variance_sum, rtol=1e-8, atol=1e-10)
    torch.testing.assert_close(shared.log_prob(x_t), general.log_prob(x_t))


@pytest.mark.parametrize("variance", ["fixed_small", "learned_range"])
def test_predictions_are_mutually_consistent(variance):
    dist = two_component_mixture()
    x_t = torch.randn(32, 2, generator=gen(4))
    t = torch.randint(0, 1000, (32,), generator=gen(5))
    conversions = {}
    for prediction in ("eps", "x0", "v"):
        diff = diffusion(prediction, variance)
        output = OracleDenoiser(dist, diff)(x_t, t)
        assert output.dtype == torch.float32
        assert output.shape == (32, diff.out_channels(2))
        conversions[prediction] = diff.pred_x0_eps(output[:, :2].double(), x_t.double(), t)
        if variance == "learned_range":
            assert (output[:, 2:] == -1).all()
            out = diff.p_mean_variance(output, x_t, t)  # -1 channels give the clipped posterior variance
            torch.testing.assert_close(out.log_variance, SCHEDULE.posterior_log_variance_clipped[t][:, None].float().expand(32, 2))
    for prediction in ("eps", "v"):
        for reference, other in zip(conversions["x0"], conversions[prediction]):
            torch.testing.assert_close(other, reference, rtol=1e-4, atol=1e-4)


# ----------------------------------------------------------------------------- point sets
def test_empirical_single_point_is_returned_exactly():
    point = torch.tensor([[0.3, -0.8]])
    oracle = OracleDenoiser(EmpiricalDistribution(point), diffusion("x0"))
    x_t = torch.randn(10, 2, generator=gen(6)) * 3
    for t in (0, 500, 999):
        assert torch.equal(oracle(x_t, torch.full((10,), t)), point.expand(10, 2))


def test_empirical_small_t_returns_nearest_point_and_large_t_the_average():
    points = torch.tensor([[-1.0, -1.0], [1.0, -1.0], [0.0, 1.0]])
    oracle = OracleDenoiser(EmpiricalDistribution(points), diffusion("x0"))
    x_t = torch.tensor([[-0.7, -0.5], [0.6, -0.9], [0.1, 0.3], [0.4, 0.2]])
    nearest = points[torch.cdist(x_t, points).argmin(1)]
    torch.testing.assert_close(oracle(x_t, torch.full((4,), 5)), nearest, rtol=0, atol=1e-6)
    # at t = T-1, sqrt(ab) ~ 0.006: the responsibilities are nearly uniform
    torch.testing.assert_close(oracle(x_t, torch.full((4,), 999)), points.mean(0).expand(4, 2), rtol=0, atol=0.02)


def test_empirical_many_points_matches_direct_softmax():
    """Thousands of points (several chunks) against a direct [B, N] softmax written here."""
    points = torch.randn(5000, 2, generator=gen(7), dtype=torch.float64)
    dist = EmpiricalDistribution(points)
    x_t = torch.randn(700, 2, generator=gen(8), dtype=torch.float64)
    t = torch.randint(0, 1000, (700,), generator=gen(9))
    ab = ALPHA_BARS[t][:, None]
    sq = ((x_t[:, None, :] - ab.sqrt()[:, :, None] * points[None]) ** 2).sum(2)
    resp = torch.softmax(-sq / (2 * (1 - ab)), dim=1)
    expected = resp @ points
    post = dist.posterior(x_t, ab[:, 0], with_variance=True)
    torch.testing.assert_close(post.mean, expected, rtol=1e-9, atol=1e-9)
    expected_var = (resp * ((points[None] - expected[:, None]) ** 2).sum(2)).sum(1)
    torch.testing.assert_close(post.variance_sum, expected_var, rtol=1e-6, atol=1e-9)


def test_empirical_images_keep_their_shape():
    images = torch.rand(6, 1, 3, 3, generator=gen(10)) * 2 - 1
    diff = diffusion("eps", "learned_range")
    oracle = OracleDenoiser(EmpiricalDistribution(images), diff)
    x_t = torch.randn(4, 1, 3, 3, generator=gen(11))
    out = oracle(x_t, torch.full((4,), 3))
    assert out.shape == (4, 2, 3, 3)
    pred_x0, _ = diff.pred_x0_eps(out[:, :1].double(), x_t.double(), torch.full((4,), 3))
    nearest = images[((x_t[:, None] - math.sqrt(ALPHA_BARS[3]) * images[None]) ** 2).flatten(2).sum(2).argmin(1)]
    torch.testing.assert_close(pred_x0.float(), nearest, rtol=0, atol=1e-4)


# -------------------------------------------------------------------------------- loss floor
def gaussian_floor(prediction, ab):
    """Var[target | x_t] for x0 ~ N(M, S^2): Var[x0|x_t] = S^2 (1-ab)/c, c = ab S^2 + 1 - ab;
    eps = (x_t - sqrt(ab) x0)/sqrt(1-ab) and v = sqrt(ab)/sqrt(1-ab) x_t - x0/sqrt(1-ab) scale it."""
    c = ab * S**2 + 1 - ab
    return {"x0": S**2 * (1 - ab) / c, "eps": 1 - (1 - ab) / c, "v": S**2 / c}[prediction]


def loss_floor(dist, diff, t, n, generator):
    """(mean, standard error) of the loss floor at one timestep: loss_floor_curve with ts = [t]."""
    means, standard_errors = loss_floor_curve(dist, diff, [t], n, generator)
    return float(means[0]), float(standard_errors[0])


def oracle_mc_mse(dist, diff, t, n, generator):
    """The oracle's own MSE on fresh (x0, eps) draws, the way training measures it: mean and standard error."""
    x0 = dist.sample(n, generator, dtype=torch.float64)
    eps = torch.randn(x0.shape, generator=generator, dtype=torch.float64)
    ab = float(ALPHA_BARS[t])
    x_t = math.sqrt(ab) * x0 + math.sqrt(1 - ab) * eps
    target = {"x0": x0, "eps": eps, "v": math.sqrt(ab) * eps - math.sqrt(1 - ab) * x0}[diff.prediction]
    output = OracleDenoiser(dist, diff)(x_t, torch.full((n,), t))
    errors = ((output - target) ** 2).flatten(1).mean(1)
    return float(errors.mean()), float(errors.std()) / math.sqrt(n)


@pytest.mark.parametrize("prediction", ["eps", "x0", "v"])
def test_loss_floor_single_gaussian_closed_form(prediction):
    dist = GaussianMixture([[M]], [S], [1.0])
    diff = diffusion(prediction)
    for t in (0, 100, 600, 999):
        expected = gaussian_floor(prediction, float(ALPHA_BARS[t]))
        mean, se = loss_floor(dist, diff, t, 500, gen(t))
        # Var[target | x_t] does not depend on x_t here, so the estimate is exact
        assert mean == pytest.approx(expected, rel=1e-9, abs=1e-12) and se < 1e-9
        mc_mean, mc_se = oracle_mc_mse(dist, diff, t, 20_000, gen(100 + t))
        assert abs(mc_mean - expected) < 4 * mc_se


@pytest.mark.parametrize("prediction", ["eps", "x0", "v"])
def test_loss_floor_matches_oracle_mse_on_mixtures(prediction):
    points = two_component_mixture().sample(300, gen(12))
    for dist in (two_component_mixture(), EmpiricalDistribution(points)):
        diff = diffusion(prediction)
        for t in (30, 300, 800):
            mean, se = loss_floor(dist, diff, t, 4000, gen(13))
            mc_mean, mc_se = oracle_mc_mse(dist, diff, t, 8000, gen(14))
            assert se > 0
            assert abs(mean - mc_mean) < 4 * math.hypot(se, mc_se), (t, mean, se, mc_mean, mc_se)


def test_training_loss_of_oracle_is_the_floor():
    dist = two_component_mixture()
    diff = diffusion("v", "learned_range")
    n, t = 6000, 200
    x0 = dist.sample(n, gen(15))
    losses = diff.training_losses(OracleDenoiser(dist, diff), x0, t=torch.full((n,), t), generator=gen(16))
    mse = losses["mse"].double()
    mean, se = loss_floor(dist, diff, t, 4000, gen(17))
    assert abs(float(mse.mean()) - mean) < 4 * math.hypot(se, float(mse.std()) / math.sqrt(n))


def test_loss_floor_curve_agrees_with_loss_floor_and_is_reproducible():
    dist = two_component_mixture()
    diff = diffusion("eps")
    ts = [0, 50, 250, 999]
    means, ses = loss_floor_curve(dist, diff, ts, 3000, gen(18))
    again, _ = loss_floor_curve(dist, diff, torch.tensor(ts), 3000, gen(18))
    assert torch.equal(means, again) and means.shape == (4,) and ses.shape == (4,)
    for i, t in enumerate(ts):
        mean, se = loss_floor(dist, diff, t, 3000, gen(19))
        assert abs(mean - float(means[i])) < 4 * math.hypot(se, float(ses[i])) + 1e-12
    # eps is hardest to predict when little noise was added: the floor falls from ~1 at t=0 to ~0 at t=T-1
    assert means[0] > 0.9 and means[-1] < 0.01


# ------------------------------------------------------------------------------- end to end
def mixture_fit(samples, dist):
    """Assign each sample to its most responsible component; return (weights, means) per component."""
    log_resp = torch.stack([torch.distributions.Normal(mu, s).log_prob(samples.double()).sum(1) + math.log(w)
                            for mu, s, w in zip(dist.means, dist.variances.sqrt(), dist.weights)], 1)
    label = log_resp.argmax(1)
    weights = torch.bincount(label, minlength=len(dist.weights)).double() / len(samples)
    means = torch.stack([samples[label == k].double().mean(0) for k in range(len(dist.weights))])
    return weights, means


@pytest.mark.parametrize("prediction", ["eps", "v"])
def test_samplers_with_oracle_reproduce_a_mixture(prediction):
    dist = two_component_mixture()
    diff = diffusion(prediction)
    oracle = OracleDenoiser(dist, diff)
    n = 4000
    for name, samples in (("ddpm", ddpm_sample(oracle, diff, (n, 2), generator=gen(20))),
                          ("ddim50", ddim_sample(oracle, diff, (n, 2), 50, generator=gen(21)))):
        weights, means = mixture_fit(samples, dist)
        # sampling error: weight SE ~ 0.007, mean SE < 0.01; DDIM with 50 steps also contracts slightly
        assert (weights - dist.weights).abs().max() < 0.03, (name, weights)
        assert (means - dist.means).abs().max() < 0.05, (name, means)


def affine_sampler_moments(kind):
    """Mean and std of the sampler's output for x0 ~ N(M, S^2), by hand: with the exact (linear) denoiser
    x0_hat = M + k (x - sqrt(ab) M), every step is x_prev = A x + B (+ sigma z), starting from N(0, 1)."""
    betas, alpha_bars = SCHEDULE.betas.tolist(), ALPHA_BARS.tolist()
    mean, var = 0.0, 1.0
    visited = list(range(999, -1, -1)) if kind == "ddpm" else list(range(980, -1, -20))  # DDIM: "leading", 50 steps
    for i, t in enumerate(visited):
        ab = alpha_bars[t]
        k = math.sqrt(ab) * S**2 / (ab * S**2 + 1 - ab)  # x0_hat = k x + (1 - k sqrt(ab)) M
        if kind == "ddpm":  # posterior mean (Ho et al. eq. 7) with variance beta-tilde
            ab_prev = alpha_bars[t - 1] if t > 0 else 1.0
            coef_x0 = math.sqrt(ab_prev) * betas[t] / (1 - ab)
            coef_xt = math.sqrt(1 - betas[t]) * (1 - ab_prev) / (1 - ab)
            a, b = coef_x0 * k + coef_xt, coef_x0 * (1 - k * math.sqrt(ab)) * M
            noise_var = (1 - ab_prev) / (1 - ab) * betas[t] if t > 0 else 0.0
        else:  # DDIM eta = 0 (Song et al. eq. 12): sqrt(ab_prev) x0_hat + sqrt(1 - ab_prev) eps_hat
            ab_prev = alpha_bars[visited[i + 1]] if i + 1 < len(visited) else 1.0
            # eps_hat = (x - sqrt(ab) x0_hat) / sqrt(1 - ab)
            ratio = math.sqrt(1 - ab_prev) / math.sqrt(1 - ab)
            a = math.sqrt(ab_prev) * k + ratio * (1 - math.sqrt(ab) * k)
            b = (math.sqrt(ab_prev) - ratio * math.sqrt(ab)) * (1 - k * math.sqrt(ab)) * M
            noise_var = 0.0
        mean, var = a * mean + b, a * a * var + noise_var
    return mean, math.sqrt(var)


@pytest.mark.parametrize("kind", ["ddpm", "ddim"])
def test_samplers_with_oracle_on_a_1d_gaussian(kind):
    dist = GaussianMixture([[M]], [S], [1.0])
    diff = diffusion("eps")
    oracle = OracleDenoiser(dist, diff)
    n = 20_000
    if kind == "ddpm":
        samples = ddpm_sample(oracle, diff, (n, 1), generator=gen(22)).double()
    else:
        samples = ddim_sample(oracle, diff, (n, 1), 50, generator=gen(23)).double()
    mean, std = affine_sampler_moments(kind)
    assert abs(float(samples.mean()) - mean) < 4 * std / math.sqrt(n)
    assert abs(float(samples.std()) - std) < 4 * std / math.sqrt(2 * n)
    if kind == "ddpm":  # T = 1000 ancestral sampling with the exact denoiser is almost exact
        assert mean == pytest.approx(M, abs=1e-3) and std == pytest.approx(S, rel=0.01)
    else:  # 50 deterministic DDIM steps (from t = 980) nearly keep the mean but shrink the std by a few percent
        assert mean == pytest.approx(M, abs=5e-3) and 0.85 * S < std < 0.97 * S


# -------------------------------------------------------------------------------- validation
@pytest.mark.parametrize("kwargs, message", [
    (dict(means=[1.0, 2.0], stds=[1.0], weights=[1.0]), "means"),
    (dict(means=[[0.0, 0.0]], stds=[[1.0, 1.0, 1.0]], weights=[1.0]), "stds"),
    (dict(means=[[0.0], [1.0]], stds=[1.0, 0.0], weights=[0.5, 0.5]), "stds must all be > 0"),
    (dict(means=[[0.0], [1.0]], stds=[1.0, -1.0], weights=[0.5, 0.5]), "stds must all be > 0"),
    (dict(means=[[0.0], [1.0]], stds=[1.0, 1.0], weights=[1.5, -0.5]), "weights"),
    (dict(means=[[0.0], [1.0]], stds=[1.0, 1.0], weights=[0.0, 0.0]), "weights"),
    (dict(means=[[0.0], [1.0]], stds=[1.0, 1.0], weights=[1.0]), "weights"),
    (dict(means=[[float("nan")]], stds=[1.0], weights=[1.0]), "finite"),
    (dict(means="abc", stds=[1.0], weights=[1.0]), "means"),
])
def test_gaussian_mixture_validation(kwargs, message):
    with pytest.raises(ValueError, match=message):
        GaussianMixture(**kwargs)


def test_weights_are_normalised_and_samples_reproducible():
    dist = GaussianMixture([[0.0], [5.0]], [0.1, 0.1], [1.0, 3.0])
    assert torch.allclose(dist.weights, torch.tensor([0.25, 0.75], dtype=torch.float64))
    samples = dist.sample(4000, gen(24))
    assert torch.equal(samples, dist.sample(4000, gen(24))) and samples.dtype == torch.float32
    assert abs(float((samples > 2.5).double().mean()) - 0.75) < 4 * math.sqrt(0.75 * 0.25 / 4000)


def test_invalid_inputs_raise_value_errors():
    dist = two_component_mixture()
    oracle = OracleDenoiser(dist, diffusion())
    x_t = torch.zeros(3, 2)
    with pytest.raises(ValueError, match="points"):
        EmpiricalDistribution(torch.zeros(0, 2))
    with pytest.raises(ValueError, match=r"x_t must have shape \[B, 2\]"):
        oracle(torch.zeros(3, 3), torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="x_t must be a floating-point"):
        oracle(torch.zeros(3, 2, dtype=torch.long), torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match=r"t=1000 is not allowed; expected an integer in 0\.\.999"):
        oracle.log_density(x_t, 1000)
    with pytest.raises(ValueError, match="t must be an integer"):
        oracle(x_t, torch.zeros(3))
    with pytest.raises(ValueError, match=r"t must have shape \[B\]=\[3\]"):
        oracle(x_t, torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match="distribution must be"):
        OracleDenoiser("not a distribution", diffusion())
    with pytest.raises(ValueError, match="diffusion must be"):
        OracleDenoiser(dist, "eps")
    with pytest.raises(ValueError, match="n=1 is not allowed; expected an integer >= 2"):
        loss_floor_curve(dist, diffusion(), [10], 1, gen(0))
    with pytest.raises(ValueError, match=r"t must lie in 0\.\.999"):
        loss_floor_curve(dist, diffusion(), [5, 1000], 10, gen(0))
    with pytest.raises(ValueError, match="integer timesteps"):
        loss_floor_curve(dist, diffusion(), [10.0], 10, gen(0))
    with pytest.raises(ValueError, match="generator"):
        loss_floor_curve(dist, diffusion(), [10], 10, None)
    with pytest.raises(ValueError, match="ts must be a non-empty"):
        loss_floor_curve(dist, diffusion(), [], 10, gen(0))
    with pytest.raises(ValueError, match="n=0 is not allowed; expected an integer >= 1"):
        dist.sample(0, gen(0))
    with pytest.raises(ValueError, match="alpha_bar = 1"):
        EmpiricalDistribution(torch.zeros(2, 2)).marginal_log_prob(x_t, 1.0)
