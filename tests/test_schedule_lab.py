"""core/lab/schedule_lab.py: the schedule curves, the terminal-noise numbers and the forward snapshots.

Expected values are derived independently, by hand with plain Python floats (schedules rebuilt from their
definition). The words the pages show for these numbers are tested in tests/test_labels.py.
"""

import math

import pytest
import torch
from helpers import alpha_bars_by_hand, linear_betas

from core.diffusion.schedules import NoiseSchedule, make_schedule
from core.lab.schedule_lab import (
    TERMINAL_SIGNAL_THRESHOLD,
    forward_snapshots,
    schedule_curves,
    snapshot_steps,
    terminal_noise,
)
from core.rng import seeded_noise


# ------------------------------------------------------------------------------------ schedule lab
def test_schedule_curves_match_hand_formulas():
    T = 50
    betas = linear_betas(T)
    alpha_bars = alpha_bars_by_hand(betas)
    curves = schedule_curves(make_schedule("linear", T))
    assert curves["t"].tolist() == list(range(1, T + 1))
    assert float(curves["t_over_T"][-1]) == 1.0
    for i in (0, 1, 17, T - 1):
        prev = alpha_bars[i - 1] if i > 0 else 1.0
        assert float(curves["beta"][i]) == pytest.approx(betas[i], rel=1e-12)
        assert float(curves["alpha_bar"][i]) == pytest.approx(alpha_bars[i], rel=1e-12)
        assert float(curves["signal"][i]) ** 2 + float(curves["noise"][i]) ** 2 == pytest.approx(1.0)
        assert float(curves["log_snr"][i]) == pytest.approx(math.log(alpha_bars[i] / (1 - alpha_bars[i])), rel=1e-10)
        assert float(curves["posterior_variance"][i]) == pytest.approx(betas[i] * (1 - prev) / (1 - alpha_bars[i]), abs=1e-15)
        assert float(curves["coef_x0"][i]) == pytest.approx(math.sqrt(prev) * betas[i] / (1 - alpha_bars[i]), rel=1e-10)
        assert float(curves["coef_xt"][i]) == pytest.approx(math.sqrt(1 - betas[i]) * (1 - prev) / (1 - alpha_bars[i]), abs=1e-15)
    assert float(curves["posterior_variance"][0]) == 0.0  # β̃_1 = 0: q(x_0|x_1, x_0) is a point mass


def test_snapshot_steps_and_forward_snapshots():
    assert snapshot_steps(1000) == [0, 250, 500, 750, 1000]
    assert snapshot_steps(10) == [0, 2, 5, 7, 10]
    T = 40
    alpha_bars = alpha_bars_by_hand(linear_betas(T))
    x0 = torch.linspace(-1, 1, 12).reshape(1, 3, 4)
    noise = seeded_noise(x0.shape, 0)
    steps, frames = forward_snapshots(make_schedule("linear", T), x0, noise)
    assert steps == [0, 10, 20, 30, 40] and frames.shape == (5, 1, 3, 4)
    assert torch.allclose(frames[0], x0.double())
    for k, step in enumerate(steps[1:], start=1):
        a = alpha_bars[step - 1]
        assert torch.allclose(frames[k], math.sqrt(a) * x0.double() + math.sqrt(1 - a) * noise, atol=1e-7)
    with pytest.raises(ValueError, match="same shape"):
        forward_snapshots(make_schedule("linear", T), x0, noise[..., :2])



def test_terminal_noise_numbers_for_linear_T100():
    report = terminal_noise(make_schedule("linear", 100))
    assert report.signal == pytest.approx(math.sqrt(alpha_bars_by_hand(linear_betas(100))[-1]), rel=1e-12)
    ab = alpha_bars_by_hand(linear_betas(100))[-1]
    assert report.snr == pytest.approx(ab / (1 - ab), rel=1e-10) and not report.is_pure_noise
    assert report.scaled_signal == pytest.approx(math.sqrt(alpha_bars_by_hand(linear_betas(100, 1e-3, 0.2))[-1]), rel=1e-10)
    assert report.reference_T_signal == pytest.approx(math.sqrt(alpha_bars_by_hand(linear_betas(1000))[-1]), rel=1e-10)
    assert report.beta_end == 0.02 and not report.scaling_impossible
    assert report.cosine_signal == pytest.approx(make_schedule("cosine", 100).terminal_signal)


def test_terminal_noise_fixes_that_do_not_apply_are_none():
    short = terminal_noise(make_schedule("linear", 10))  # β_end·1000/10 = 2: scaling is impossible
    assert short.scaled_signal is None and short.scaling_impossible and short.reference_T_signal is not None
    cosine = terminal_noise(make_schedule("cosine", 10))
    assert cosine.is_pure_noise and cosine.cosine_signal is None and cosine.beta_end is None and cosine.scaled_signal is None
    scaled = terminal_noise(make_schedule("linear", 100, scale_with_T=True))
    assert scaled.scaled_signal is None and not scaled.scaling_impossible  # already scaled
    # threshold: one-step hand-made schedules with √ᾱ_T = 0.06 and 0.04 on either side of the 0.05 bar
    assert TERMINAL_SIGNAL_THRESHOLD == 0.05
    assert not terminal_noise(NoiseSchedule.from_betas(torch.tensor([1 - 0.06**2]))).is_pure_noise
    assert terminal_noise(NoiseSchedule.from_betas(torch.tensor([1 - 0.04**2]))).is_pure_noise
    with pytest.raises(ValueError, match="threshold=2.0 is not allowed"):
        terminal_noise(make_schedule("linear", 10), threshold=2.0)
