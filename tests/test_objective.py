"""core.lab.objective: Algorithm 1, the ELBO weights, the bound terms and bits/dim.

Expected values come from the schedule rebuilt in plain floats, from KLs of Gaussians written out by hand,
and from an exact model whose bound terms are known in closed form.
"""

import math

import pytest
import torch

from core.diffusion.gaussian_diffusion import GaussianDiffusion
from core.diffusion.oracle import EmpiricalDistribution, OracleDenoiser
from core.diffusion.schedules import make_schedule
from core.lab.objective import LN2, algorithm1_step, bound_terms, elbo_eps_weights, hybrid_weight_in_bits


def linear_alpha_bars(T, start=1e-4, end=0.02):
    betas = [start + (end - start) * i / (T - 1) for i in range(T)]
    bars, product = [], 1.0
    for beta in betas:
        product *= 1 - beta
        bars.append(product)
    return betas, bars


def test_algorithm1_step_forms_x_t_and_the_loss_by_hand():
    diffusion = GaussianDiffusion(make_schedule("linear", 100), "eps")
    x0 = torch.linspace(-1, 1, 12, dtype=torch.float64).reshape(3, 4)
    step = algorithm1_step(lambda x, t: 0.5 * x, diffusion, x0, torch.Generator().manual_seed(3))
    _, bars = linear_alpha_bars(100)
    for row in range(3):
        ab = bars[int(step.t[row])]
        x_t = [math.sqrt(ab) * float(a) + math.sqrt(1 - ab) * float(e) for a, e in zip(x0[row], step.noise[row])]
        assert step.x_t[row].tolist() == pytest.approx(x_t, abs=1e-12)
        loss = sum((float(e) - 0.5 * x) ** 2 for e, x in zip(step.noise[row], x_t)) / 4
        assert float(step.loss[row]) == pytest.approx(loss, rel=1e-12)
    # t is drawn from the generator: the same seed gives the same step, another seed another t
    again = algorithm1_step(lambda x, t: 0.5 * x, diffusion, x0, torch.Generator().manual_seed(3))
    assert torch.equal(again.t, step.t) and torch.equal(again.noise, step.noise)


def test_elbo_weights_by_hand_and_their_direction():
    T = 1000
    betas, bars = linear_alpha_bars(T)
    weights = elbo_eps_weights(make_schedule("linear", T), "fixed_small")
    for i in (1, 10, 500, 999):  # β̃ form: β_t / (2 α_t (1 − ᾱ_{t−1}))
        assert float(weights[i]) == pytest.approx(betas[i] / (2 * (1 - betas[i]) * (1 - bars[i - 1])), rel=1e-9)
    large = elbo_eps_weights(make_schedule("linear", T), "fixed_large")
    assert float(large[500]) == pytest.approx(betas[500] / (2 * (1 - betas[500]) * (1 - bars[500])), rel=1e-9)
    assert math.isnan(float(weights[0]))
    # the ELBO weights small t MORE: about 0.6 at t = 2, 0.01 at t = T
    assert float(weights[1]) > 50 * float(weights[-1])
    assert float(weights[1]) == float(weights[1:].max())  # the largest weight of all KL terms is at t = 2
    # it falls fast, then follows β_t/(2α_t) once 1 − ᾱ ≈ 1: about 0.005 mid-way, 0.01 at T
    assert float(weights[1]) > 50 * float(weights[100:].max())
    assert bool((weights[1:100] > weights[2:101]).all())


def test_elbo_weight_equals_the_kl_of_the_two_gaussians():
    """L_{t-1} through core's elbo_term (KL of the posterior and the model's Gaussian) = λ_t·mean(δ²)."""
    schedule = make_schedule("linear", 200)
    diffusion = GaussianDiffusion(schedule, "eps", "fixed_small")
    x0 = torch.rand(2, 1, 4, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 2 - 1
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    delta = 0.05 * torch.randn(x0.shape, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    weights = elbo_eps_weights(schedule)
    for i in (1, 50, 199):
        t = torch.full((2,), i)
        x_t = diffusion.q_sample(x0, t, noise)
        kl = diffusion.elbo_term(noise + delta, x0, x_t, t)
        expected = float(weights[i]) * (delta**2).reshape(2, -1).mean(1)
        assert kl.tolist() == pytest.approx(expected.tolist(), rel=1e-6)


def test_bound_terms_of_an_exact_model_of_one_image():
    """Data = one image: the exact denoiser predicts x_0 perfectly, so every KL term with σ² = β̃ is 0, the prior
    term is the closed-form KL of N(√ᾱ_T x, 1−ᾱ_T) from N(0, 1), and L_0 is the decoder's bin probability."""
    schedule = make_schedule("linear", 30, scale_with_T=True)
    diffusion = GaussianDiffusion(schedule, "x0", "fixed_small")
    x0 = (torch.randint(0, 256, (1, 1, 3, 3), generator=torch.Generator().manual_seed(0)).double() / 127.5 - 1)
    model = OracleDenoiser(EmpiricalDistribution(x0), diffusion)
    calls = []
    terms = bound_terms(model, diffusion, x0, torch.Generator().manual_seed(1), batch_timesteps=7,
                        progress=lambda done, total: calls.append((done, total)))
    assert calls[-1] == (30, 30) and len(calls) == 5
    assert terms.per_t[0, 1:].abs().max() < 1e-9
    ab = float(schedule.alpha_bars[-1])
    prior = sum(0.5 * (ab * x * x + (1 - ab) - 1 - math.log(1 - ab)) for x in x0.reshape(-1).tolist()) / 9
    assert float(terms.prior[0]) == pytest.approx(prior, rel=1e-9)
    # decoder: mean x_0 exactly, σ² = clipped β̃_1 = β̃_2: −log of the Gaussian mass of each pixel's bin
    sd = math.sqrt(float(schedule.posterior_variance[1]))
    phi = lambda z: 0.5 * (1 + math.erf(z / math.sqrt(2)))  # noqa: E731
    nll = []
    for x in x0.reshape(-1).tolist():
        upper = 1.0 if x > 0.999 else phi((1 / 255) / sd)
        lower = 0.0 if x < -0.999 else phi((-1 / 255) / sd)
        nll.append(-math.log(upper - lower))
    assert float(terms.per_t[0, 0]) == pytest.approx(sum(nll) / 9, rel=1e-6)
    bits, se = terms.bits_per_dim()
    assert bits == pytest.approx(float(terms.total[0]) / LN2) and math.isnan(se)


def test_bits_per_dim_standard_error_and_the_hybrid_weight():
    diffusion = GaussianDiffusion(make_schedule("linear", 25, scale_with_T=True), "eps", "fixed_small")
    x0 = torch.rand(3, 1, 2, 2, generator=torch.Generator().manual_seed(0)) * 2 - 1
    terms = bound_terms(lambda x, t: torch.zeros_like(x), diffusion, x0, torch.Generator().manual_seed(0))
    bits = (terms.total / math.log(2)).tolist()
    mean = sum(bits) / 3
    se = math.sqrt(sum((b - mean) ** 2 for b in bits) / 2) / math.sqrt(3)
    assert terms.bits_per_dim() == pytest.approx((mean, se))
    assert hybrid_weight_in_bits() == pytest.approx(0.001 * math.log(2))
    with pytest.raises(ValueError, match="generator"):
        bound_terms(lambda x, t: x, diffusion, x0, None)
