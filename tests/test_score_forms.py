"""core.lab.score_forms (the score from ε, x₀ and v predictions) and the notes' wrong v formula of core.lab.mistakes.

Checked against a single Gaussian worked by hand, against autograd of the exact mixture density, and the wrong
formula's factor against ᾱ multiplied out by hand."""

import math

import pytest
import torch

from core.data.toys import toy_mixture_parameters
from core.diffusion.gaussian_diffusion import GaussianDiffusion
from core.diffusion.oracle import GaussianMixture
from core.diffusion.schedules import make_schedule
from core.lab.mistakes import score_from_v_factor, score_from_v_notes
from core.lab.score_forms import score_forms, score_from_eps, score_from_v, score_from_x0


def alpha_bar_linear(T, step):
    p = 1.0
    for i in range(step):
        p *= 1 - (1e-4 + (0.02 - 1e-4) * i / (T - 1))
    return p


def test_one_gaussian_by_hand():
    # x₀ ~ N(μ, s²) per coordinate: q_t = N(√ᾱ μ, c), c = ᾱ s² + 1 − ᾱ, score −(x − √ᾱ μ)/c;
    # E[x₀|x] = μ + √ᾱ s²/c (x − √ᾱ μ), E[ε|x] = (x − √ᾱ E[x₀|x])/√(1−ᾱ), E[v|x] = √ᾱ E[ε|x] − √(1−ᾱ) E[x₀|x]
    mu, s2, ab, x = 0.7, 0.3, 0.2, 1.1
    c = ab * s2 + 1 - ab
    expected = -(x - math.sqrt(ab) * mu) / c
    x0 = mu + math.sqrt(ab) * s2 / c * (x - math.sqrt(ab) * mu)
    eps = (x - math.sqrt(ab) * x0) / math.sqrt(1 - ab)
    v = math.sqrt(ab) * eps - math.sqrt(1 - ab) * x0
    t = torch.tensor([x], dtype=torch.float64)
    for got in (score_from_eps(torch.tensor([eps], dtype=t.dtype), ab), score_from_x0(t, torch.tensor([x0], dtype=t.dtype), ab),
                score_from_v(t, torch.tensor([v], dtype=t.dtype), ab)):
        assert got.item() == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("t", [10, 300, 900])
def test_all_three_forms_match_autograd_on_the_mixture(t):
    mixture = GaussianMixture(*toy_mixture_parameters("gaussian_mixture"))
    diffusion = GaussianDiffusion(make_schedule("linear", 1000), "eps")
    x_t = torch.randn(64, 2, generator=torch.Generator().manual_seed(t), dtype=torch.float64)
    forms = score_forms(mixture, diffusion, x_t, t)
    scale = float(forms.autograd.abs().max())
    assert all(difference < 1e-8 * max(scale, 1.0) for difference in forms.max_difference().values())


def test_notes_v_formula_is_too_large_by_one_over_sqrt_one_minus_alpha_bar():
    ab = alpha_bar_linear(1000, 11)
    assert score_from_v_factor(11) == pytest.approx(1 / math.sqrt(1 - ab), rel=1e-9)
    assert score_from_v_factor(11) == pytest.approx(21.35, abs=0.01)  # the "21× too large at t = 11"
    generator = torch.Generator().manual_seed(3)
    x_t, v = torch.randn(5, generator=generator, dtype=torch.float64), torch.randn(5, generator=generator, dtype=torch.float64)
    ratio = score_from_v_notes(x_t, v, ab) / score_from_v(x_t, v, ab)
    assert torch.allclose(ratio, torch.full_like(ratio, 1 / math.sqrt(1 - ab)))
    with pytest.raises(ValueError):
        score_from_v_notes(x_t, v, 1.0)
