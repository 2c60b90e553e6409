"""core.lab.small_steps: the grid density of q(x_{t-1}|x_t) against a closed form and Monte Carlo; the gaps.

Independent derivation: for a Gaussian mixture, q(x_{t-1}|x_t) ∝ N(x_t; √α x, β)·Σ_k w_k N(x; m_k, c_k) is itself
a mixture: component k has precision 1/c_k + α/β, mean (m_k/c_k + √α x_t/β)/precision and weight
∝ w_k N(x_t; √α m_k, α c_k + β).
"""

import math

import pytest
import torch

from core.lab.small_steps import chain_gap, chain_schedule, default_mixture, nearest_step, reverse_transition


def closed_form(mixture, schedule, i, x_t):
    alpha, beta, ab_prev = float(schedule.alphas[i]), float(schedule.betas[i]), float(schedule.alpha_bars_prev[i])
    out = []
    for w, mu, var in zip(mixture.weights.tolist(), mixture.means[:, 0].tolist(), mixture.variances.tolist()):
        m, c = math.sqrt(ab_prev) * mu, ab_prev * var + 1 - ab_prev
        precision = 1 / c + alpha / beta
        mean = (m / c + math.sqrt(alpha) * x_t / beta) / precision
        marginal_var = alpha * c + beta
        log_weight = math.log(w) - 0.5 * (x_t - math.sqrt(alpha) * m) ** 2 / marginal_var - 0.5 * math.log(marginal_var)
        out.append((log_weight, mean, 1 / precision))
    top = max(lw for lw, _, _ in out)
    total = sum(math.exp(lw - top) for lw, _, _ in out)
    return [(math.exp(lw - top) / total, m, v) for lw, m, v in out]


def mixture_pdf(components, x):
    return sum(w * math.exp(-(x - m) ** 2 / (2 * v)) / math.sqrt(2 * math.pi * v) for w, m, v in components)


@pytest.mark.parametrize("steps, alpha_bar, x_t", [(1000, 0.5, 0.3), (100, 0.2, -0.4), (10, 0.5, 0.3), (10, 0.9, 1.1)])
def test_grid_density_equals_the_closed_form_mixture(steps, alpha_bar, x_t):
    mixture = default_mixture()
    schedule = chain_schedule(steps)
    i = nearest_step(schedule, alpha_bar)
    transition = reverse_transition(mixture, schedule, i, [x_t])
    components = closed_form(mixture, schedule, i, x_t)
    grid, density = transition.grid[0].tolist(), transition.density[0]
    expected = torch.tensor([mixture_pdf(components, x) for x in grid], dtype=torch.float64)
    assert float((density - expected).abs().max()) < 1e-6 * float(expected.max())
    mean = sum(w * m for w, m, _ in components)
    variance = sum(w * (v + m * m) for w, m, v in components) - mean**2
    assert float(transition.mean[0]) == pytest.approx(mean, rel=1e-8)
    assert float(transition.variance[0]) == pytest.approx(variance, rel=1e-6)


def test_grid_density_against_monte_carlo():
    """Self-normalised importance sampling: x_{t-1} ~ q_{t-1} (noise the data), weight q(x_t|x_{t-1})."""
    mixture = default_mixture()
    schedule = chain_schedule(10)
    i, x_t = nearest_step(schedule, 0.5), 0.3
    generator = torch.Generator().manual_seed(0)
    n = 400_000
    ab_prev = float(schedule.alpha_bars_prev[i])
    x0 = mixture.sample(n, generator, dtype=torch.float64)[:, 0]
    x_prev = math.sqrt(ab_prev) * x0 + math.sqrt(1 - ab_prev) * torch.randn(n, generator=generator, dtype=torch.float64)
    alpha, beta = float(schedule.alphas[i]), float(schedule.betas[i])
    weights = torch.exp(-(x_t - math.sqrt(alpha) * x_prev) ** 2 / (2 * beta))
    weights = weights / weights.sum()
    mc_mean = float((weights * x_prev).sum())
    mc_var = float((weights * (x_prev - mc_mean) ** 2).sum())
    mc_above = float(weights[x_prev > 0.5].sum())
    transition = reverse_transition(mixture, schedule, i, [x_t])
    effective = 1 / float((weights**2).sum())
    tolerance = 5 * math.sqrt(mc_var / effective)
    assert float(transition.mean[0]) == pytest.approx(mc_mean, abs=tolerance)
    assert float(transition.variance[0]) == pytest.approx(mc_var, rel=0.03)
    grid, density = transition.grid[0], transition.density[0]
    above = float(torch.trapezoid(torch.where(grid > 0.5, density, torch.zeros_like(density)), grid))
    assert above == pytest.approx(mc_above, abs=0.01)


def test_kl_and_tv_are_zero_for_a_gaussian_and_grow_with_the_step():
    mixture = default_mixture()
    results = {steps: chain_gap(mixture, steps, x_points=21, grid_points=201) for steps in (100, 10)}
    for gap in results.values():
        assert bool((gap.expected_kl >= -1e-9).all())
    assert results[10].total_kl > 10 * results[100].total_kl
    # one data Gaussian: every reverse transition is Gaussian, so the gap is zero up to quadrature error
    from core.diffusion.oracle import GaussianMixture

    single = GaussianMixture([[0.5]], [0.3], [1.0])
    assert chain_gap(single, 10, x_points=11).expected_kl.abs().max() < 1e-8
    assert results[10].paper_steps.tolist()[0] == 1 and results[10].paper_steps.tolist()[-1] == 1000


def test_nearest_step_and_checks():
    schedule = chain_schedule(10)
    i = nearest_step(schedule, 0.5)
    logsnr = (schedule.snr.log() - 0.0).abs()
    assert i == int(logsnr.argmin())
    with pytest.raises(ValueError, match="steps"):
        chain_schedule(0)
    with pytest.raises(ValueError, match="alpha_bar"):
        nearest_step(schedule, 1.0)


def test_the_default_chain_resolution_is_converged():
    """The page's resolution (41 x_t values; 101 grid points per transition, 41 for 1000 steps) against finer ones."""
    mixture = default_mixture()
    for steps in (100, 10):
        coarse = chain_gap(mixture, steps)
        fine = chain_gap(mixture, steps, x_points=81, grid_points=401)
        assert coarse.total_kl == pytest.approx(fine.total_kl, rel=1e-3)
    assert chain_gap(mixture, 1000, grid_points=41).total_kl == pytest.approx(chain_gap(mixture, 1000, x_points=61).total_kl,
                                                                              rel=2e-2)


def test_kl_by_the_entropy_identity_equals_direct_quadrature():
    mixture = default_mixture()
    schedule = chain_schedule(10)
    transition = reverse_transition(mixture, schedule, nearest_step(schedule, 0.5), [0.3, -0.8, 1.5])
    q, g = transition.density, transition.gaussian()
    direct = torch.trapezoid(q * (torch.log(q.clamp_min(1e-300)) - torch.log(g.clamp_min(1e-300))), transition.grid, dim=-1)
    assert transition.kl().tolist() == pytest.approx(direct.tolist(), rel=1e-6, abs=1e-12)
    tv = transition.total_variation()
    assert bool((tv > 0).all()) and bool((tv < 1).all())
