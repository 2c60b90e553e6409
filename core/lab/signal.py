"""When does the forward process erase the signal? (the Schedule lab's "signal gone early" warning)

√ᾱ_t is the weight of x_0 in x_t = √ᾱ_t·x_0 + √(1−ᾱ_t)·ε (Ho et al. 2020, eq. 4). Once it is tiny every later
x_t is pure noise, and the steps after that point teach the model nothing about the data: with a large
β_end most of the T steps are spent there, which is what motivated the cosine schedule (Nichol & Dhariwal
2021, §3.2: "the end of the forward noising process is too noisy").
"""

from __future__ import annotations

from core.checks import check_number
from core.diffusion.schedules import NoiseSchedule

SIGNAL_GONE = 0.01  # √ᾱ_t at or below this: x_t keeps at most 1 % of x_0's amplitude


def signal_gone_step(schedule: NoiseSchedule, threshold: float = SIGNAL_GONE) -> int | None:
    """The first paper step t (1..T) with √ᾱ_t ≤ threshold, or None if the signal never gets that small."""
    threshold = check_number("threshold", threshold, 0.0, 1.0, open_low=True)
    below = (schedule.alpha_bars.sqrt() <= threshold).nonzero()
    return int(below[0]) + 1 if len(below) else None


def noise_only_fraction(schedule: NoiseSchedule, threshold: float = SIGNAL_GONE) -> float:
    """The fraction of the T steps that come after the signal is gone: (T − t_gone) / T (0 if never gone)."""
    step = signal_gone_step(schedule, threshold)
    return 0.0 if step is None else (schedule.T - step) / schedule.T
