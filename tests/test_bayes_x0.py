"""core/lab/bayes_x0.py: E[x₀ | x_t] over a finite training set.

Checked against a hand-derived two-point case in 1-D (the posterior mean is a logistic function of x_t), a Monte
Carlo estimate of E[x₀ | x_t ≈ value] from joint samples of (x₀, x_t), and the brute-force softmax over all points.
"""

import math

import pytest
import torch

from core.lab.bayes_x0 import bayes_x0, noise_amplification


def test_two_points_in_one_dimension_match_the_hand_derivation():
    # x₀ ∈ {−1, +1} equally likely: the log-odds of +1 are [−(x−s)² + (x+s)²]/(2(1−ᾱ)) = 2 s x/(1−ᾱ), s = √ᾱ,
    # so E[x₀ | x_t] = tanh(s x_t / (1 − ᾱ)).
    data = torch.tensor([[-1.0], [1.0]])
    for alpha_bar in (0.9, 0.5, 0.01):
        x_t = torch.linspace(-3, 3, 13).unsqueeze(1)
        got = bayes_x0(x_t, alpha_bar, data).mean.squeeze(1)
        s = math.sqrt(alpha_bar)
        expected = torch.tanh(s * x_t.squeeze(1) / (1 - alpha_bar))
        assert torch.allclose(got, expected, atol=1e-6)


def test_two_unequal_points_with_one_duplicated_weight_by_count():
    # data {0, 0, 2}: P(x₀ = 2 | x) = 1/(1 + 2 exp(−[(x−0)² − (x−2s)²]/(2(1−ᾱ)))) by hand
    data = torch.tensor([[0.0], [0.0], [2.0]])
    alpha_bar, x = 0.6, 0.7
    s = math.sqrt(alpha_bar)
    log_ratio = (-(x - 2 * s) ** 2 + x**2) / (2 * (1 - alpha_bar))  # log p(x|2) − log p(x|0)
    p_two = 1.0 / (1.0 + 2.0 * math.exp(-log_ratio))
    result = bayes_x0(torch.tensor([[x]]), alpha_bar, data)
    assert result.mean.item() == pytest.approx(2 * p_two, abs=1e-6)
    weights = torch.tensor([(1 - p_two) / 2, (1 - p_two) / 2, p_two])
    assert result.effective_count.item() == pytest.approx(1 / (weights**2).sum().item(), rel=1e-6)


def test_monte_carlo_conditional_mean_agrees():
    generator = torch.Generator().manual_seed(0)
    data = torch.tensor([[-1.0], [0.3], [1.2]])
    alpha_bar = 0.4
    n = 2_000_000
    x0 = data[torch.randint(0, 3, (n,), generator=generator)].squeeze(1)
    x_t = math.sqrt(alpha_bar) * x0 + math.sqrt(1 - alpha_bar) * torch.randn(n, generator=generator)
    for value in (-0.8, 0.0, 0.9):
        near = (x_t - value).abs() < 0.01
        monte_carlo = x0[near].mean().item()
        exact = bayes_x0(torch.tensor([[value]]), alpha_bar, data).mean.item()
        assert near.sum() > 5000
        assert exact == pytest.approx(monte_carlo, abs=0.03)


def test_chunked_online_softmax_equals_the_brute_force_softmax_even_far_from_the_data():
    generator = torch.Generator().manual_seed(1)
    data = torch.randn(257, 5, generator=generator, dtype=torch.float64)
    x_t = 40 * torch.randn(9, 5, generator=generator, dtype=torch.float64)  # huge distances: naive exp underflows
    alpha_bars = torch.linspace(0.001, 0.999, 9, dtype=torch.float64)
    logits = -((x_t.unsqueeze(1) - alpha_bars.sqrt()[:, None, None] * data.unsqueeze(0)) ** 2).sum(-1) / (2 * (1 - alpha_bars[:, None]))
    expected = torch.softmax(logits, dim=1) @ data
    for chunk in (1, 10, 257, None):
        got = bayes_x0(x_t, alpha_bars, data, chunk=chunk).mean
        assert torch.isfinite(got).all()
        assert torch.allclose(got, expected, atol=1e-9)


def test_large_t_is_an_average_and_small_t_recovers_the_example():
    generator = torch.Generator().manual_seed(2)
    data = torch.rand(50, 1, 4, 4, generator=generator) * 2 - 1
    noise = torch.randn(1, 1, 4, 4, generator=generator)
    x0 = data[7:8]
    small = bayes_x0(math.sqrt(0.999) * x0 + math.sqrt(0.001) * noise, 0.999, data)
    assert torch.allclose(small.mean, x0, atol=1e-4) and small.effective_count.item() == pytest.approx(1.0, abs=1e-3)
    large = bayes_x0(math.sqrt(1e-6) * x0 + math.sqrt(1 - 1e-6) * noise, 1e-6, data)
    assert torch.allclose(large.mean, data.mean(dim=0, keepdim=True), atol=1e-2)
    assert large.effective_count.item() > 49


def test_noise_amplification_and_bad_input():
    assert noise_amplification(0.5) == pytest.approx(1.0)
    assert noise_amplification(1 / 101) == pytest.approx(10.0)
    with pytest.raises(ValueError):
        noise_amplification(0.0)
    with pytest.raises(ValueError, match="share the example shape"):
        bayes_x0(torch.zeros(2, 3), 0.5, torch.zeros(4, 2))
    with pytest.raises(ValueError, match="strictly between"):
        bayes_x0(torch.zeros(2, 3), 1.0, torch.zeros(4, 3))
    with pytest.raises(ValueError, match="finite"):
        bayes_x0(torch.full((1, 3), float("nan")), 0.5, torch.zeros(4, 3))
