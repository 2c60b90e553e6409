"""core.lab.score: Tweedie's formula (autograd vs the oracle) and the per-sample score, by Monte Carlo."""

import math

import pytest
import torch

from core.data.toys import toy_mixture_parameters
from core.diffusion.gaussian_diffusion import GaussianDiffusion
from core.diffusion.oracle import GaussianMixture
from core.diffusion.schedules import make_schedule
from core.lab.score import autograd_score, per_sample_scores, tweedie_check


def setting():
    return GaussianMixture(*toy_mixture_parameters("gaussian_mixture")), GaussianDiffusion(make_schedule("linear", 1000), "v")


def test_autograd_score_of_one_gaussian_by_hand():
    mixture = GaussianMixture([[1.0, -2.0]], [0.5], [1.0])
    x = torch.tensor([[0.3, 0.4]], dtype=torch.float64)
    ab = 0.36
    c = ab * 0.25 + 1 - ab
    expected = [-(0.3 - 0.6 * 1.0) / c, -(0.4 - 0.6 * -2.0) / c]
    assert autograd_score(mixture, x, ab)[0].tolist() == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("t", [0, 99, 499, 999])
def test_tweedie_holds_at_every_noise_level(t):
    mixture, diffusion = setting()
    x = torch.randn(50, 2, generator=torch.Generator().manual_seed(t), dtype=torch.float64) * 2
    check = tweedie_check(mixture, diffusion, x, t)
    assert check.max_difference < 1e-9 * max(1.0, float(check.expected_eps.abs().max()))


def test_per_sample_scores_average_to_the_true_score():
    mixture, diffusion = setting()
    t = 299
    sigma2 = 1 - float(diffusion.schedule.alpha_bars[t])
    s = per_sample_scores(mixture, diffusion, t, 100_000, torch.Generator().manual_seed(0))
    # E‖ε/σ‖²/D = 1/σ²
    assert s.mean_squared_one_sample == pytest.approx(1 / sigma2, rel=0.01)
    # the per-sample target = true score + noise orthogonal to every function of x_t:
    # E‖target‖² = E‖true‖² + E‖target − true‖²
    assert s.mean_squared_one_sample == pytest.approx(s.mean_squared_true + s.mean_squared_gap, rel=0.01)
    # E[target − true | x_t] = 0: its correlation with the true score (a function of x_t) vanishes
    correlation = float(((s.one_sample - s.true) * s.true).sum(1).mean())
    assert abs(correlation) < 5 * float(((s.one_sample - s.true) * s.true).sum(1).std()) / math.sqrt(100_000)
    with pytest.raises(ValueError, match="generator"):
        per_sample_scores(mixture, diffusion, t, 10, None)
