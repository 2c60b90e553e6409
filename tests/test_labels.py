"""ui/labels.py: every option of core has a label, and the terminal-noise warning words the numbers of
core.lab.schedule_lab.terminal_noise (values rebuilt by hand from the schedule's definition)."""

import math

import pytest
import torch
from helpers import alpha_bars_by_hand, has_plain_scripts, linear_betas

from core.data.datasets import DATASET_NAMES
from core.data.toys import TOY_NAMES
from core.diffusion.gaussian_diffusion import PREDICTIONS, VARIANCES
from core.diffusion.schedules import SCHEDULE_KINDS, NoiseSchedule, make_schedule
from core.lab.playground import FIELD_KINDS
from core.lab.schedule_lab import TERMINAL_SIGNAL_THRESHOLD, terminal_noise
from core.sampling import SamplerSettings
from ui.labels import (
    DATASET_LABELS,
    FIELD_LABELS,
    PREDICTION_LABELS,
    PREDICTION_SYMBOLS,
    SCHEDULE_LABELS,
    TOY_LABELS,
    VARIANCE_LABELS,
    sampler_label,
    terminal_noise_text,
)


def test_every_option_has_exactly_one_label():
    for table, options in ((PREDICTION_LABELS, PREDICTIONS), (PREDICTION_SYMBOLS, PREDICTIONS), (VARIANCE_LABELS, VARIANCES),
                           (SCHEDULE_LABELS, SCHEDULE_KINDS), (TOY_LABELS, TOY_NAMES), (DATASET_LABELS, DATASET_NAMES),
                           (FIELD_LABELS, FIELD_KINDS)):
        assert list(table) == list(options)
        assert len(set(table.values())) == len(table)  # no two options read the same


def test_sampler_label_names_the_run():
    assert sampler_label(SamplerSettings("ddim", 50, eta=0.0)) == "DDIM η=0, 50 steps"
    assert sampler_label(SamplerSettings("ddpm", 1000, variance="fixed_small")) == "DDPM fixed_small, 1000 steps"


def terminal_noise_warning(schedule, threshold=TERMINAL_SIGNAL_THRESHOLD):
    return terminal_noise_text(terminal_noise(schedule, threshold))



def test_warning_for_linear_T100_has_the_numbers_and_the_fixes():
    signal = math.sqrt(alpha_bars_by_hand(linear_betas(100))[-1])
    assert signal == pytest.approx(0.60, abs=0.01)  # the brief's example: ≈ 0.6 of the signal is left
    message = terminal_noise_warning(make_schedule("linear", 100))
    assert message is not None
    assert f"{signal:.3g}" in message and "60.3 %" in message
    scaled = math.sqrt(alpha_bars_by_hand(linear_betas(100, 1e-3, 0.2))[-1])  # β range × 1000/100
    longer = math.sqrt(alpha_bars_by_hand(linear_betas(1000))[-1])
    root = "$\\sqrt{\\bar\\alpha_T}$"  # LaTeX: the warning is Markdown
    assert f"scale-with-T** (β range × 1000/T): {root} = {scaled:.3g}" in message
    assert f"T = 1000, {root} = {longer:.3g}" in message
    assert not has_plain_scripts(message) and "$x_T$" in message  # math in LaTeX, never a plain-text x_T
    assert "cosine" in message


@pytest.mark.parametrize("kind, T, scale", [("linear", 100, True), ("linear", 1000, False), ("cosine", 10, False),
                                            ("cosine", 1000, False), ("sigmoid", 1000, False), ("quadratic", 1000, False)])
def test_no_warning_when_x_T_is_pure_noise(kind, T, scale):
    schedule = make_schedule(kind, T, scale_with_T=scale)
    assert schedule.terminal_signal <= TERMINAL_SIGNAL_THRESHOLD
    assert terminal_noise_warning(schedule) is None


def test_warning_threshold_is_on_the_terminal_signal():
    # One-step hand-made schedules with √ᾱ_T = 0.06 and 0.04 on either side of the 0.05 bar.
    above = NoiseSchedule.from_betas(torch.tensor([1 - 0.06**2]))
    below = NoiseSchedule.from_betas(torch.tensor([1 - 0.04**2]))
    assert "0.06" in terminal_noise_warning(above)
    assert terminal_noise_warning(below) is None
    assert terminal_noise_warning(below, threshold=0.03) is not None
    with pytest.raises(ValueError, match="threshold"):
        terminal_noise_warning(below, threshold=2.0)


def test_warning_says_when_scaling_is_impossible():
    message = terminal_noise_warning(make_schedule("linear", 10))
    assert "scale-with-T is impossible" in message and "T = 1000" in message




def test_option_labels_use_real_subscripts_not_underscores():
    """Option labels show in select boxes and table cells, where Streamlit renders no LaTeX."""
    for table in (PREDICTION_LABELS, VARIANCE_LABELS, FIELD_LABELS):
        for label in table.values():
            assert not has_plain_scripts(label.replace("fixed_large", "").replace("fixed_small", "").replace("learned_range", "")), label
    assert VARIANCE_LABELS["fixed_small"].startswith("σ² = β̃ₜ")
