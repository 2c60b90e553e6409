"""GaussianDiffusion against formulas derived independently (completing the square, closed-form KLs)
and against Monte Carlo."""

import json
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from core.diffusion.gaussian_diffusion import GaussianDiffusion
from core.diffusion.schedules import make_schedule

torch.set_default_dtype(torch.float32)


def _diffusion(prediction="eps", variance="fixed_large", kind="linear", T=1000):
    return GaussianDiffusion(make_schedule(kind, T), prediction, variance)


def _t(values):
    return torch.tensor(values, dtype=torch.long)


def test_posterior_by_completing_the_square():
    """q(x_{t-1}|x_t,x_0) ∝ N(x_{t-1}; √ᾱ_{t-1}x_0, 1−ᾱ_{t-1})·N(x_t; √α_t x_{t-1}, β_t): the product of the two
    Gaussians in x_{t-1} has precision 1/(1−ᾱ_{t-1}) + α_t/β_t."""
    diffusion = _diffusion(kind="cosine")
    betas = diffusion.schedule.betas.numpy()
    alpha_bars = np.cumprod(1 - betas)
    gen = torch.Generator().manual_seed(0)
    x0 = torch.randn(6, 3, dtype=torch.float64, generator=gen)
    x_t = torch.randn(6, 3, dtype=torch.float64, generator=gen)
    ts = [1, 2, 10, 400, 998, 999]
    mean, variance, log_variance = diffusion.q_posterior(x0, x_t, _t(ts))
    for row, t in enumerate(ts):
        ab_prev, alpha = alpha_bars[t - 1], 1 - betas[t]
        precision = 1 / (1 - ab_prev) + alpha / betas[t]
        expected_var = 1 / precision
        expected_mean = expected_var * (math.sqrt(ab_prev) * x0[row].numpy() / (1 - ab_prev)
                                        + math.sqrt(alpha) * x_t[row].numpy() / betas[t])
        np.testing.assert_allclose(mean[row].numpy(), expected_mean, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(variance[row].numpy(), expected_var, rtol=1e-9)
        np.testing.assert_allclose(log_variance[row].numpy(), math.log(expected_var), rtol=1e-9)
    # t = 0: x_{-1} is x_0 itself, the posterior is a point mass at x_0
    mean0, var0, _ = diffusion.q_posterior(x0[:1], x_t[:1], _t([0]))
    torch.testing.assert_close(mean0, x0[:1])
    assert float(var0.max()) == 0.0


def test_posterior_monte_carlo():
    """Sample x_{t-1} ~ q(·|x0) then x_t ~ q(·|x_{t-1}); regressing x_{t-1} on x_t recovers the posterior
    coefficients and variance."""
    diffusion = GaussianDiffusion(make_schedule("linear", 20, 0.01, 0.2))
    s = diffusion.schedule
    gen = torch.Generator().manual_seed(1)
    n, t, x0 = 400_000, 7, 0.8
    ab_prev, alpha = float(s.alpha_bars[t - 1]), float(s.alphas[t])
    x_prev = math.sqrt(ab_prev) * x0 + math.sqrt(1 - ab_prev) * torch.randn(n, generator=gen, dtype=torch.float64)
    x_t = math.sqrt(alpha) * x_prev + math.sqrt(1 - alpha) * torch.randn(n, generator=gen, dtype=torch.float64)
    slope = float(((x_t - x_t.mean()) * (x_prev - x_prev.mean())).mean() / x_t.var())
    intercept = float(x_prev.mean() - slope * x_t.mean())
    residual_var = float((x_prev - intercept - slope * x_t).var())
    assert slope == pytest.approx(float(s.posterior_mean_coef_xt[t]), abs=4e-3)
    assert intercept == pytest.approx(float(s.posterior_mean_coef_x0[t]) * x0, abs=4e-3)
    assert residual_var == pytest.approx(float(s.posterior_variance[t]), rel=1e-2)
    # and q_posterior evaluated at a few x_t reproduces the regression line
    points = torch.tensor([[-1.0], [0.0], [2.0]], dtype=torch.float64)
    mean, _, _ = diffusion.q_posterior(torch.full_like(points, x0), points, _t([t] * 3))
    np.testing.assert_allclose(mean.squeeze(1).numpy(), intercept + slope * points.squeeze(1).numpy(), atol=1e-2)


def test_q_sample_marginal_monte_carlo():
    diffusion = _diffusion(kind="cosine")
    gen = torch.Generator().manual_seed(2)
    n, t = 200_000, 300
    x0 = torch.full((n, 1), 0.5, dtype=torch.float64)
    x_t = diffusion.q_sample(x0, _t([t] * n), torch.randn(n, 1, generator=gen, dtype=torch.float64))
    ab = float(diffusion.schedule.alpha_bars[t])
    assert float(x_t.mean()) == pytest.approx(math.sqrt(ab) * 0.5, abs=5e-3)
    assert float(x_t.var()) == pytest.approx(1 - ab, rel=1e-2)


@pytest.mark.parametrize("kind", ["linear", "cosine"])
def test_eps_form_mean_equals_x0_form_mean(kind):
    """Ho et al. eq. 11: (1/√α_t)(x_t − β_t/√(1−ᾱ_t)·ε̂) = μ̃_t(x_t, x̂_0(ε̂))."""
    diffusion = _diffusion("eps", "fixed_small", kind)
    s = diffusion.schedule
    gen = torch.Generator().manual_seed(3)
    ts = _t([0, 1, 50, 500, 999])
    x_t = torch.randn(5, 2, 4, 4, generator=gen, dtype=torch.float64)
    eps = torch.randn(5, 2, 4, 4, generator=gen, dtype=torch.float64)
    mean = diffusion.p_mean_variance(eps, x_t, ts).mean
    for row, t in enumerate(ts.tolist()):
        beta, alpha, ab = float(s.betas[t]), float(s.alphas[t]), float(s.alpha_bars[t])
        expected = (x_t[row] - beta / math.sqrt(1 - ab) * eps[row]) / math.sqrt(alpha)
        torch.testing.assert_close(mean[row], expected, rtol=1e-9, atol=1e-9)


@settings(max_examples=60, deadline=None)
@given(t=st.integers(0, 999), seed=st.integers(0, 2**31 - 1), kind=st.sampled_from(["linear", "cosine", "sigmoid"]))
def test_eps_x0_v_round_trips(t, seed, kind):
    diffusion = _diffusion(kind=kind)
    gen = torch.Generator().manual_seed(seed)
    x0 = torch.randn(3, 5, generator=gen, dtype=torch.float64)
    eps = torch.randn(3, 5, generator=gen, dtype=torch.float64)
    ts = torch.full((3,), t, dtype=torch.long)
    x_t = diffusion.q_sample(x0, ts, eps)
    ab = float(diffusion.schedule.alpha_bars[t])
    tol = dict(rtol=1e-7, atol=1e-7 / math.sqrt(min(ab, 1 - ab)))
    torch.testing.assert_close(diffusion.predict_x0_from_eps(x_t, ts, eps), x0, **tol)
    torch.testing.assert_close(diffusion.predict_eps_from_x0(x_t, ts, x0), eps, **tol)
    v = diffusion.v_from_x0_eps(x0, eps, ts)
    torch.testing.assert_close(v, math.sqrt(ab) * eps - math.sqrt(1 - ab) * x0)  # Salimans & Ho's definition
    torch.testing.assert_close(diffusion.predict_x0_from_v(x_t, ts, v), x0, **tol)
    torch.testing.assert_close(diffusion.predict_eps_from_v(x_t, ts, v), eps, **tol)
    for prediction in ["eps", "x0", "v"]:
        other = GaussianDiffusion(diffusion.schedule, prediction)
        target = other.training_target(x0, eps, ts)
        pred_x0, pred_eps = other.pred_x0_eps(target, x_t, ts)
        torch.testing.assert_close(pred_x0, x0, **tol)
        torch.testing.assert_close(pred_eps, eps, **tol)


def test_variance_choices():
    s = make_schedule("linear", 1000)
    x_t = torch.zeros(4, 1, dtype=torch.float64)
    ts = _t([0, 1, 300, 999])
    for variance, expected in [("fixed_large", s.betas[ts]), ("fixed_small", s.posterior_variance[ts])]:
        out = GaussianDiffusion(s, "eps", variance).p_mean_variance(torch.zeros_like(x_t), x_t, ts)
        torch.testing.assert_close(out.variance[1:, 0], expected[1:], rtol=1e-12, atol=0)
    learned = GaussianDiffusion(s, "eps", "learned_range")
    ones = torch.cat([torch.zeros_like(x_t), torch.ones_like(x_t)], dim=1)
    out = learned.p_mean_variance(ones, x_t, ts)
    torch.testing.assert_close(out.variance[:, 0], s.betas[ts], rtol=1e-12, atol=0)  # v = 1 -> β_t
    minus_ones = torch.cat([torch.zeros_like(x_t), -torch.ones_like(x_t)], dim=1)
    out = learned.p_mean_variance(minus_ones, x_t, ts)
    torch.testing.assert_close(out.variance[1:, 0], s.posterior_variance[ts][1:], rtol=1e-12, atol=0)  # v = −1 -> β̃_t
    assert float(out.variance[0, 0]) == pytest.approx(float(s.posterior_variance[1]))  # clipped at t = 0
    half = torch.cat([torch.zeros_like(x_t), torch.zeros_like(x_t)], dim=1)  # v = 0 -> geometric mean
    out = learned.p_mean_variance(half, x_t, ts)
    assert float(out.variance[2, 0]) == pytest.approx(math.sqrt(float(s.betas[300] * s.posterior_variance[300])))


def test_clip_x0_recomputes_eps():
    diffusion = _diffusion("eps", "fixed_small")
    x_t = torch.full((2, 3), 3.0)
    ts = _t([10, 999])
    eps = torch.full((2, 3), -2.0)
    out = diffusion.p_mean_variance(eps, x_t, ts, clip_x0=True)
    assert float(out.pred_x0.abs().max()) <= 1.0
    # the pair (pred_x0, pred_eps) is consistent: it reproduces x_t
    torch.testing.assert_close(diffusion.q_sample(out.pred_x0, ts, out.pred_eps), x_t, rtol=1e-5, atol=1e-5)
    unclipped = diffusion.p_mean_variance(eps, x_t, ts)
    assert float(unclipped.pred_x0.abs().max()) > 1.0


def test_p_sample_adds_noise_except_at_last_step():
    diffusion = _diffusion("eps", "fixed_large")
    x_t = torch.zeros(2, 1, dtype=torch.float64)
    noise = torch.ones(2, 1, dtype=torch.float64)
    ts = _t([0, 5])
    out = diffusion.p_mean_variance(torch.zeros_like(x_t), x_t, ts)
    sample, step = diffusion.p_sample(torch.zeros_like(x_t), x_t, ts, noise)
    torch.testing.assert_close(step.mean, out.mean)
    assert float(sample[0, 0]) == pytest.approx(float(out.mean[0, 0]))
    assert float(sample[1, 0]) == pytest.approx(float(out.mean[1, 0]) + math.sqrt(float(diffusion.schedule.betas[5])))


def test_training_losses_match_hand_computation():
    gen = torch.Generator().manual_seed(4)
    x0 = torch.rand(3, 1, 2, 2, generator=gen) * 2 - 1
    noise = torch.randn(3, 1, 2, 2, generator=gen)
    ts = _t([0, 400, 999])
    prediction = torch.randn(3, 1, 2, 2, generator=gen)
    model = lambda x, t: prediction
    for kind, target_fn in [("eps", lambda ab: noise), ("x0", lambda ab: x0),
                            ("v", lambda ab: ab.sqrt() * noise - (1 - ab).sqrt() * x0)]:
        diffusion = _diffusion(kind)
        ab = diffusion.schedule.alpha_bars[ts].float().reshape(3, 1, 1, 1)
        losses = diffusion.training_losses(model, x0, t=ts, noise=noise)
        expected = ((target_fn(ab) - prediction) ** 2).mean(dim=(1, 2, 3))
        torch.testing.assert_close(losses["mse"], expected)
        torch.testing.assert_close(losses["loss"], expected)
        assert "vb" not in losses


def test_hybrid_loss_stops_gradient_into_the_mean():
    diffusion = _diffusion("eps", "learned_range")
    gen = torch.Generator().manual_seed(5)
    x0 = torch.rand(4, 1, 3, 3, generator=gen) * 2 - 1
    output = torch.randn(4, 2, 3, 3, generator=gen, requires_grad=True)
    losses = diffusion.training_losses(lambda x, t: output, x0, t=_t([0, 3, 500, 999]), generator=gen)
    torch.testing.assert_close(losses["loss"], losses["mse"] + 0.001 * losses["vb"])
    (grad,) = torch.autograd.grad(losses["vb"].sum(), output)
    assert float(grad[:, :1].abs().max()) == 0.0  # vb does not train the mean
    assert float(grad[:, 1:].abs().max()) > 0.0  # but does train the variance


def test_elbo_term_closed_forms():
    """With a perfect ε̂ the predicted mean equals μ̃ exactly, so L_t is the KL between two Gaussians with
    the same mean: 0 for σ² = β̃_t, and ½(log(β_t/β̃_t) + β̃_t/β_t − 1) for σ² = β_t."""
    gen = torch.Generator().manual_seed(6)
    x0 = torch.rand(3, 4, dtype=torch.float64, generator=gen) * 2 - 1
    noise = torch.randn(3, 4, dtype=torch.float64, generator=gen)
    ts = _t([5, 100, 900])
    s = make_schedule("linear", 1000)
    small, large = GaussianDiffusion(s, "eps", "fixed_small"), GaussianDiffusion(s, "eps", "fixed_large")
    x_t = small.q_sample(x0, ts, noise)
    torch.testing.assert_close(small.elbo_term(noise, x0, x_t, ts), torch.zeros(3, dtype=torch.float64), atol=1e-10, rtol=0)
    beta, tilde = s.betas[ts], s.posterior_variance[ts]
    expected = 0.5 * (torch.log(beta / tilde) + tilde / beta - 1)
    torch.testing.assert_close(large.elbo_term(noise, x0, x_t, ts), expected, rtol=1e-9, atol=1e-12)
    # a wrong mean adds the squared distance over 2σ² (per dimension, averaged)
    wrong_eps = noise + 0.1
    out_true = small.q_posterior(x0, x_t, ts)[0]
    out_wrong = small.p_mean_variance(wrong_eps, x_t, ts).mean
    expected_wrong = ((out_true - out_wrong) ** 2).mean(dim=1) / (2 * tilde)
    torch.testing.assert_close(small.elbo_term(wrong_eps, x0, x_t, ts), expected_wrong, rtol=1e-9, atol=1e-12)


def test_decoder_nll_and_prior_kl():
    s = make_schedule("linear", 1000)
    diffusion = GaussianDiffusion(s, "x0", "fixed_small")
    x0 = torch.tensor([[-1.0, 0.0, 1.0, 129 / 127.5 - 1]], dtype=torch.float64)
    x_t = diffusion.q_sample(x0, _t([0]), torch.zeros_like(x0))
    # a decoder predicting x0 exactly with σ = √β̃_1 ≈ 0.0083 puts almost all mass in the right bin (width 2/255)
    sigma = math.sqrt(float(s.posterior_variance[1]))
    phi = lambda z: 0.5 * (1 + math.erf(z / math.sqrt(2)))
    inner_bin = phi((1 / 255) / sigma) - phi(-(1 / 255) / sigma)
    edge_bin = phi((1 / 255) / sigma)
    mean_at_x0 = diffusion.q_posterior(x0, x_t, _t([0]))[0]
    assert torch.allclose(mean_at_x0, x0)
    nll = diffusion.elbo_term(x0, x0, x_t, _t([0]))
    expected = -(2 * math.log(edge_bin) + 2 * math.log(inner_bin)) / 4
    assert float(nll[0]) == pytest.approx(expected, rel=1e-6)
    # prior term: KL(N(√ᾱ_T x0, 1−ᾱ_T) ‖ N(0,1)) in closed form
    ab = float(s.alpha_bars[-1])
    expected_prior = np.mean([0.5 * (-math.log(1 - ab) + (1 - ab) + ab * v**2 - 1) for v in x0[0].tolist()])
    assert float(diffusion.prior_kl(x0)[0]) == pytest.approx(expected_prior, rel=1e-9)


def test_config_round_trip_and_out_channels():
    diffusion = GaussianDiffusion(make_schedule("quadratic", 300, 1e-4, 0.03, True), "v", "learned_range")
    rebuilt = GaussianDiffusion.from_config(json.loads(json.dumps(diffusion.to_config())))
    assert (rebuilt.prediction, rebuilt.variance, rebuilt.T) == ("v", "learned_range", 300)
    torch.testing.assert_close(rebuilt.schedule.betas, diffusion.schedule.betas)
    assert diffusion.out_channels(1) == 2 and diffusion.out_channels(3) == 6
    assert GaussianDiffusion(make_schedule("linear", 10), "eps", "fixed_small").out_channels(3) == 3


def test_bad_input_messages():
    s = make_schedule("linear", 100)
    with pytest.raises(ValueError, match="prediction='score' is not allowed; expected one of eps, x0, v"):
        GaussianDiffusion(s, "score")
    with pytest.raises(ValueError, match="variance='huge' is not allowed; expected one of fixed_large"):
        GaussianDiffusion(s, "eps", "huge")
    with pytest.raises(ValueError, match="schedule must be a NoiseSchedule"):
        GaussianDiffusion("linear")
    learned = GaussianDiffusion(s, "eps", "learned_range")
    x = torch.zeros(2, 1, 4, 4)
    with pytest.raises(ValueError, match=r"model_output must have shape \[2, 2, \.\.\.\].*learned_range.*\(2, 1, 4, 4\)"):
        learned.p_mean_variance(torch.zeros(2, 1, 4, 4), x, _t([1, 2]))
    # t is checked where a caller hands it in (check_timesteps at the boundaries), not inside q_sample
    with pytest.raises(ValueError, match=r"t must lie in 0\.\.99.*100\.\.100"):
        learned.check_timesteps(_t([100, 100]), x)
    with pytest.raises(ValueError, match=r"t must have shape \[2\]"):
        learned.check_timesteps(_t([1]), x)
    with pytest.raises(ValueError, match="integer"):
        learned.check_timesteps(torch.tensor([1.0, 2.0]), x)
    with pytest.raises(ValueError, match="data_channels"):
        learned.out_channels(0)
    with pytest.raises(ValueError, match="exactly"):
        GaussianDiffusion.from_config({"schedule": {}, "prediction": "eps"})


def test_typed_options_keep_their_tuples():
    """The Literal types are the single source of the option tuples that pages, CLI and configs use."""
    from typing import get_args

    from core.diffusion.gaussian_diffusion import PREDICTIONS, VARIANCES, Prediction, VarianceType
    from core.diffusion.samplers import SPACINGS, Spacing
    from core.diffusion.schedules import SCHEDULE_KINDS, ScheduleKind

    assert PREDICTIONS == get_args(Prediction) == ("eps", "x0", "v")
    assert VARIANCES == get_args(VarianceType) == ("fixed_large", "fixed_small", "learned_range")
    assert SCHEDULE_KINDS == get_args(ScheduleKind) == ("linear", "quadratic", "sigmoid", "cosine")
    assert SPACINGS == get_args(Spacing) == ("leading", "trailing", "linspace")


@pytest.mark.parametrize("kind", ["eps", "x0", "v"])
def test_min_snr_loss_is_the_clipped_snr_times_the_x0_error(kind):
    """Hang et al. eq. 8 checked through the x_0 error: whatever the network predicts, the min-SNR-γ loss equals
    min(SNR_t, γ)·‖x̂_0 − x_0‖² with x̂_0 recovered from the prediction by the model-free conversions, and
    SNR_t = ᾱ_t/(1 − ᾱ_t) computed here from the betas."""
    gen = torch.Generator().manual_seed(6)
    x0 = torch.rand(4, 1, 2, 2, generator=gen) * 2 - 1
    noise = torch.randn(4, 1, 2, 2, generator=gen)
    prediction = torch.randn(4, 1, 2, 2, generator=gen)
    ts = _t([0, 10, 300, 999])
    diffusion = _diffusion(kind)
    gamma = 5.0
    losses = diffusion.training_losses(lambda x, t: prediction, x0, t=ts, noise=noise, min_snr_gamma=gamma)
    alpha_bars = torch.cumprod(1 - diffusion.schedule.betas.double(), 0)[ts]
    snr = alpha_bars / (1 - alpha_bars)
    x_t = alpha_bars.sqrt().reshape(4, 1, 1, 1).float() * x0 + (1 - alpha_bars).sqrt().reshape(4, 1, 1, 1).float() * noise
    pred_x0, _ = diffusion.pred_x0_eps(prediction, x_t, ts)
    expected = snr.clamp(max=gamma).float() * ((pred_x0 - x0) ** 2).mean(dim=(1, 2, 3))
    torch.testing.assert_close(losses["loss"], expected, rtol=2e-4, atol=1e-5)
    assert float(snr[0]) > gamma > float(snr[-1])  # both sides of the clip are exercised
    torch.testing.assert_close(diffusion.training_losses(lambda x, t: prediction, x0, t=ts, noise=noise)["loss"],
                               losses["mse"])  # off by default
