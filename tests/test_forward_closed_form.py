"""core/lab/forward_closed_form.py: the one-step recursion and the simulated chain against eq. 4, whose ᾱ is
multiplied out by hand here."""

import math

import pytest
import torch

from core.diffusion.schedules import make_schedule
from core.lab.forward_closed_form import composed_moments, run_chain


def hand_alpha_bars(T, start=1e-4, end=0.02):
    out, p = [], 1.0
    for i in range(T):
        p *= 1 - (start + (end - start) * i / (T - 1))
        out.append(p)
    return out


@pytest.mark.parametrize("kind", ["linear", "cosine"])
def test_recursion_equals_the_closed_form(kind):
    schedule = make_schedule(kind, 1000)
    means, variances = composed_moments(schedule)
    alpha_bars = schedule.alpha_bars.double()
    assert torch.allclose(means, alpha_bars.sqrt(), rtol=1e-9) and torch.allclose(variances, 1 - alpha_bars, atol=1e-12)
    if kind == "linear":
        assert means[499].item() == pytest.approx(math.sqrt(hand_alpha_bars(1000)[499]), rel=1e-9)


def test_simulated_chain_has_the_closed_form_moments():
    schedule = make_schedule("linear", 1000)
    result = run_chain(schedule, 0.8, [10, 250, 1000], 40_000, torch.Generator().manual_seed(0))
    alpha_bars = hand_alpha_bars(1000)
    for step, mean, variance in zip(result.steps, result.mean, result.variance):
        ab = alpha_bars[step - 1]
        standard_error = math.sqrt((1 - ab) / result.n)
        assert abs(mean - 0.8 * math.sqrt(ab)) < 5 * standard_error + 1e-12
        assert variance == pytest.approx(1 - ab, rel=0.05)  # sample variance of 40,000 Gaussians: ±0.7 % per σ


def test_bad_input():
    schedule = make_schedule("linear", 100)
    with pytest.raises(ValueError):
        run_chain(schedule, 0.0, [0], 10, torch.Generator())
    with pytest.raises(ValueError):
        run_chain(schedule, float("inf"), [5], 10, torch.Generator())
