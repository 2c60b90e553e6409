"""core/lab/reverse_step.py: densities, one reverse step, its KLs, parameterizations, the noise ablation.

Expected values are derived independently: by hand with plain Python floats (schedules rebuilt from their
definition), by numerical integration, or by Monte Carlo.
"""

import math

import pytest
import torch
from helpers import alpha_bars_by_hand, linear_betas

from core.data.toys import toy_mixture_parameters
from core.diffusion.gaussian_diffusion import GaussianDiffusion
from core.diffusion.oracle import GaussianMixture
from core.diffusion.schedules import make_schedule
from core.lab.reverse_step import (
    eps_form_mean,
    gaussian_pdf,
    kl_curves,
    mixture_total_variance,
    noise_ablation,
    parameterization_views,
    plot_range,
    reverse_step_1d,
    sample_without_noise,
    total_variance,
)


def gaussian_kl_by_hand(m1, v1, m2, v2):
    """KL(N(m1, v1) ‖ N(m2, v2)) = ½·(log(v2/v1) + v1/v2 + (m1 − m2)²/v2 − 1), in plain floats."""
    return 0.5 * (math.log(v2 / v1) + v1 / v2 + (m1 - m2) ** 2 / v2 - 1.0)


def trapezoid(y, x):
    return float(torch.trapezoid(y, x))


# ------------------------------------------------------------------------------------ densities, KL
@pytest.mark.parametrize("mean, variance", [(0.0, 1.0), (2.5, 0.01), (-1.0, 1e-6), (0.3, 9.0)])
def test_gaussian_pdf_integrates_to_one_and_peaks_at_the_mean(mean, variance):
    std = math.sqrt(variance)
    x = torch.linspace(mean - 12 * std, mean + 12 * std, 20001, dtype=torch.float64)
    assert trapezoid(gaussian_pdf(x, mean, variance), x) == pytest.approx(1.0, abs=1e-9)
    assert float(gaussian_pdf(mean, mean, variance)) == pytest.approx(1 / math.sqrt(2 * math.pi * variance))
    # second moment about the mean is the variance
    assert trapezoid((x - mean) ** 2 * gaussian_pdf(x, mean, variance), x) == pytest.approx(variance, rel=1e-8)


def test_gaussian_pdf_errors():
    with pytest.raises(ValueError, match="variance=-1.0 is not allowed"):
        gaussian_pdf(0.0, 0.0, -1.0)
    with pytest.raises(ValueError, match="mean=nan is not allowed"):
        gaussian_pdf(0.0, float("nan"), 1.0)


def test_plot_range_covers_every_gaussian():
    grid = plot_range([0.0, 3.0], [1.0, 0.25], width=4.0, points=11)
    assert float(grid[0]) == pytest.approx(-4.0) and float(grid[-1]) == pytest.approx(5.0) and len(grid) == 11


# ---------------------------------------------------------------------------------- one reverse step
def test_reverse_step_matches_hand_formulas():
    T, t = 1000, 9  # 0-based index 9 = paper step 10
    betas = linear_betas(T)
    alpha_bars = alpha_bars_by_hand(betas)
    a, a_prev, beta = alpha_bars[t], alpha_bars[t - 1], betas[t]
    x0, noise = 0.5, 0.3
    step = reverse_step_1d(make_schedule("linear", T), x0, t, noise)
    x_t = math.sqrt(a) * x0 + math.sqrt(1 - a) * noise
    assert step.x_t == pytest.approx(x_t, rel=1e-12)
    assert step.forward_mean == pytest.approx(math.sqrt(a) * x0) and step.forward_variance == pytest.approx(1 - a)
    posterior_variance = beta * (1 - a_prev) / (1 - a)
    posterior_mean = math.sqrt(a_prev) * beta / (1 - a) * x0 + math.sqrt(1 - beta) * (1 - a_prev) / (1 - a) * x_t
    assert step.posterior_mean == pytest.approx(posterior_mean, rel=1e-12)
    assert step.posterior_variance == pytest.approx(posterior_variance, rel=1e-10)
    # an exact x0: the means agree, so the KL is from the variances alone: ½(log r + 1/r − 1), r = σ²/β̃
    assert step.model_mean == pytest.approx(posterior_mean, rel=1e-12)
    r = beta / posterior_variance
    assert step.kls["fixed_large"] == pytest.approx(0.5 * (math.log(r) + 1 / r - 1), rel=1e-8)
    assert step.kls["fixed_small"] == pytest.approx(0.0, abs=1e-15)
    assert step.model_variances["fixed_large"] == pytest.approx(beta)
    # learned with v = 0: the geometric mean of β and β̃
    assert step.model_variances["learned_range"] == pytest.approx(math.sqrt(beta * posterior_variance), rel=1e-10)


def test_posterior_by_monte_carlo():
    """Draw (x_{t-1}, x_t) from the forward chain and regress x_{t-1} on x_t: the slope, intercept and
    residual variance must be the posterior's coef_xt, coef_x0·x_0 and β̃ shown on the page."""
    schedule, t, x0 = make_schedule("linear", 100), 30, 0.8
    step = reverse_step_1d(schedule, x0, t, 0.0)
    generator = torch.Generator().manual_seed(0)
    n = 400_000
    a_prev, beta = float(schedule.alpha_bars[t - 1]), float(schedule.betas[t])
    x_prev = math.sqrt(a_prev) * x0 + math.sqrt(1 - a_prev) * torch.randn(n, generator=generator, dtype=torch.float64)
    x_t = math.sqrt(1 - beta) * x_prev + math.sqrt(beta) * torch.randn(n, generator=generator, dtype=torch.float64)
    design = torch.stack([x_t, torch.ones_like(x_t)], dim=1)
    slope, intercept = torch.linalg.lstsq(design, x_prev[:, None]).solution.flatten().tolist()
    residual = x_prev - slope * x_t - intercept
    # posterior mean at this step's x_t (noise 0) from the regression
    assert slope * step.x_t + intercept == pytest.approx(step.posterior_mean, abs=2e-3)
    assert float(residual.var()) == pytest.approx(step.posterior_variance, rel=0.01)


def test_learned_variance_endpoints_and_x0_error():
    schedule, t = make_schedule("cosine", 200), 20
    small = reverse_step_1d(schedule, 0.1, t, -1.2, variance_interp=-1.0)
    large = reverse_step_1d(schedule, 0.1, t, -1.2, variance_interp=1.0)
    assert small.model_variances["learned_range"] == pytest.approx(small.model_variances["fixed_small"], rel=1e-12)
    assert large.model_variances["learned_range"] == pytest.approx(large.model_variances["fixed_large"], rel=1e-12)
    # an x0 error e shifts the mean by coef_x0·e and adds (coef_x0·e)²/(2σ²) to every KL
    e = 0.2
    wrong = reverse_step_1d(schedule, 0.1, t, -1.2, x0_error=e)
    right = reverse_step_1d(schedule, 0.1, t, -1.2)
    coef = float(schedule.posterior_mean_coef_x0[t])
    assert wrong.model_mean - wrong.posterior_mean == pytest.approx(coef * e, rel=1e-9)
    for variance, sigma2 in wrong.model_variances.items():
        expected = gaussian_kl_by_hand(wrong.posterior_mean, wrong.posterior_variance, wrong.model_mean, sigma2)
        assert wrong.kls[variance] == pytest.approx(expected, rel=1e-9)
        assert wrong.kls[variance] - right.kls[variance] == pytest.approx((coef * e) ** 2 / (2 * sigma2), rel=1e-6)


@pytest.mark.parametrize("kwargs, word", [({"t": 0}, "t"), ({"t": 1000}, "t"), ({"variance_interp": 1.5}, "variance_interp"),
                                          ({"x0_error": float("inf")}, "x0_error"), ({"x0": "a"}, "x0")])
def test_reverse_step_rejects_bad_input(kwargs, word):
    args = {"schedule": make_schedule("linear", 1000), "x0": 0.0, "t": 5, "noise": 0.0}
    args.update(kwargs)
    with pytest.raises(ValueError, match=word):
        reverse_step_1d(**args)


def test_reverse_step_needs_two_steps():
    with pytest.raises(ValueError, match="T=1 is not allowed; expected an integer >= 2"):
        kl_curves(make_schedule("linear", 1))
    with pytest.raises(ValueError, match="T=1 is not allowed; expected an integer >= 2"):
        reverse_step_1d(make_schedule("linear", 1), 0.0, 1, 0.0)


def test_kl_curves_agree_with_single_steps_and_with_hand_values():
    schedule = make_schedule("linear", 1000)
    steps, kls = kl_curves(schedule, x0_error=0.05, variance_interp=0.3)
    assert steps[0] == 2 and steps[-1] == 1000 and len(steps) == 999
    for t in (1, 40, 998):
        one = reverse_step_1d(schedule, -0.4, t, 0.9, x0_error=0.05, variance_interp=0.3)
        for variance, value in one.kls.items():
            assert float(kls[variance][t - 1]) == pytest.approx(value, rel=1e-9, abs=1e-18)
    # exact x0: at paper step 2, β̃_2 = β_2·β_1/(1 − (1−β_1)(1−β_2)), KL(β) = ½(log r + 1/r − 1)
    _, exact = kl_curves(schedule)
    b1, b2 = linear_betas(1000)[:2]
    r = b2 / (b2 * b1 / (1 - (1 - b1) * (1 - b2)))
    assert float(exact["fixed_large"][0]) == pytest.approx(0.5 * (math.log(r) + 1 / r - 1), rel=1e-8)
    assert float(exact["fixed_small"].abs().max()) < 1e-15
    # the choice matters most at small t: β's KL falls by orders of magnitude, as β̃_t → β_t
    assert float(exact["fixed_large"][0]) > 1e6 * float(exact["fixed_large"][-1])
    assert 0 < float(exact["learned_range"][0]) < float(exact["fixed_large"][0])


# -------------------------------------------------------------------------------- parameterizations
def test_parameterization_views_recover_the_truth():
    T, t = 1000, 299
    a = alpha_bars_by_hand(linear_betas(T))[t]
    x0, eps = 0.6, -1.1
    x_t = math.sqrt(a) * x0 + math.sqrt(1 - a) * eps
    views = parameterization_views(make_schedule("linear", T), x_t, t, eps)
    assert views.x0_from_eps == pytest.approx(x0, rel=1e-10)
    assert views.v_from_x0_eps == pytest.approx(math.sqrt(a) * eps - math.sqrt(1 - a) * x0, rel=1e-10)
    assert views.x0_from_v == pytest.approx(x0, rel=1e-10)
    assert views.eps_from_v == pytest.approx(eps, rel=1e-10)
    assert views.eps_from_x0 == pytest.approx(eps, rel=1e-10)


def test_eps_form_mean_equals_posterior_mean():
    """Ho et al. eq. 11 rewrites eq. 7 with x_0 = (x_t − √(1−ᾱ)ε)/√ᾱ; the two must agree to round-off."""
    generator = torch.Generator().manual_seed(1)
    for kind, T in (("linear", 1000), ("cosine", 50), ("quadratic", 10)):
        schedule = make_schedule(kind, T)
        for t in (0, T // 3, T - 1):
            x_t, eps = (float(v) for v in torch.randn(2, generator=generator, dtype=torch.float64))
            views = parameterization_views(schedule, x_t, t, eps)
            assert abs(views.mean_difference) < 1e-12 * max(1.0, abs(views.mean_x0_form))
    # hand value: with ε = 0 the mean is x_t/√α_t
    schedule = make_schedule("linear", 1000)
    assert eps_form_mean(schedule, 0.5, 10, 0.0) == pytest.approx(0.5 / math.sqrt(1 - linear_betas(1000)[10]))
    with pytest.raises(ValueError, match=r"t=1000 is not allowed; expected an integer in 0\.\.999"):
        parameterization_views(schedule, 0.5, 1000, 0.0)  # the page's entry point checks t; eq. 11 itself does not


# ------------------------------------------------------------------------------ noise ablation
def test_total_variances():
    assert mixture_total_variance([[1.0, 0.0], [-1.0, 0.0]], [0.5, 0.5], [1.0, 1.0]) == pytest.approx(1.5)
    means, stds, weights = toy_mixture_parameters("gaussian_mixture")
    samples = GaussianMixture(means, stds, weights).sample(200_000, torch.Generator().manual_seed(0), torch.float64)
    assert total_variance(samples) == pytest.approx(mixture_total_variance(means, stds, weights), rel=0.01)
    assert total_variance(torch.tensor([[0.0, 0.0], [2.0, 0.0]])) == pytest.approx(2.0)  # unbiased: (1+1)/(2−1)


def test_noise_free_sampler_on_one_gaussian_is_the_hand_derived_linear_map():
    """Data N(0, s²) in 1-D: E[x0|x_t] = √ᾱ s²/(ᾱ s² + 1 − ᾱ)·x_t, so each noise-free step multiplies x by
    coef_x0·√ᾱ s²/(ᾱ s² + 1 − ᾱ) + coef_xt and the whole loop is x_0 = c·x_T."""
    T, s = 30, 0.5
    betas = linear_betas(T, 1e-3, 0.2)
    alpha_bars = alpha_bars_by_hand(betas)
    c = 1.0
    for t in reversed(range(T)):
        a, a_prev = alpha_bars[t], (alpha_bars[t - 1] if t > 0 else 1.0)
        shrink = math.sqrt(a) * s**2 / (a * s**2 + 1 - a)
        c *= math.sqrt(a_prev) * betas[t] / (1 - a) * shrink + math.sqrt(1 - betas[t]) * (1 - a_prev) / (1 - a)
    from core.diffusion.oracle import OracleDenoiser
    diffusion = GaussianDiffusion(make_schedule("linear", T, scale_with_T=False, beta_start=1e-3, beta_end=0.2), "eps")
    model = OracleDenoiser(GaussianMixture([[0.0]], [s], [1.0]), diffusion)
    x_T = torch.tensor([[1.0], [-2.0]], dtype=torch.float64)
    out = sample_without_noise(model, diffusion, x_T)
    assert out[:, 0].tolist() == pytest.approx([c, -2 * c], rel=1e-9)
    assert c**2 < 0.5 * s**2  # the output variance c² is well below the data's s²


def test_without_noise_the_samples_collapse_with_noise_they_match_the_data():
    means, stds, weights = toy_mixture_parameters("gaussian_mixture")
    mixture = GaussianMixture(means, stds, weights)
    diffusion = GaussianDiffusion(make_schedule("linear", 100, scale_with_T=True), "eps", "fixed_large")
    result = noise_ablation(mixture, diffusion, 1000, torch.Generator().manual_seed(0))
    assert result.data_variance == pytest.approx(mixture_total_variance(means, stds, weights))
    assert result.with_noise_variance == pytest.approx(result.data_variance, rel=0.1)
    assert result.without_noise_variance < 0.01 * result.data_variance
    assert result.with_noise.shape == result.without_noise.shape == result.x_T.shape == (1000, 2)
    assert result.last_step_std == pytest.approx(math.sqrt(1e-3))  # √β_1 with β_1 = 1e-4·1000/100


def test_noise_ablation_is_reproducible_and_validates():
    mixture = GaussianMixture(*toy_mixture_parameters("gaussian_mixture"))
    diffusion = GaussianDiffusion(make_schedule("cosine", 20), "eps", "fixed_large")
    first = noise_ablation(mixture, diffusion, 50, torch.Generator().manual_seed(5))
    again = noise_ablation(mixture, diffusion, 50, torch.Generator().manual_seed(5))
    assert torch.equal(again.with_noise, first.with_noise) and torch.equal(again.without_noise, first.without_noise)
    with pytest.raises(ValueError, match="distribution"):
        noise_ablation("mixture", diffusion, 10, torch.Generator())
    with pytest.raises(ValueError, match="generator"):
        noise_ablation(mixture, diffusion, 10, 0)
    with pytest.raises(ValueError, match=r"n=1 is not allowed; expected an integer in 2\.\.100000"):
        noise_ablation(mixture, diffusion, 1, torch.Generator())
