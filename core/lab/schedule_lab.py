"""What the Schedule lab computes: the schedule's curves, how much signal x_T keeps, the forward process on one x_0.

Plain math on top of `core.diffusion.schedules`; the page lays out widgets and figures and words the numbers
(`ui.labels.terminal_noise_text`). Timesteps are 0-based indices t = 0..T-1 (index t is the paper's step t+1);
the page *displays* the paper's step t = 1..T, and `paper_steps(T)` gives that axis. All numbers are float64.

Papers: Ho et al. 2020 (eq. 4 forward process, eq. 7 posterior), Nichol & Dhariwal 2021 (§3.2 and Fig. 5 on
scaling β with T, eq. 17 cosine), Lin et al. 2024 (the signal left at t = T).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from core.checks import check_number
from core.diffusion.schedules import SCHEDULE_KINDS, NoiseSchedule, make_schedule

# x_T counts as "pure noise" when less than 5 % of x_0's amplitude is left in it (√ᾱ_T ≤ 0.05, i.e.
# terminal SNR ≤ 0.0025). Ho et al.'s linear 1e-4..0.02 with T = 1000 leaves 0.0064; Lin et al. 2024 show
# that even √ᾱ_T ≈ 0.07 (Stable Diffusion) visibly leaks signal, so the bar sits just below that.
TERMINAL_SIGNAL_THRESHOLD = 0.05
SNAPSHOT_FRACTIONS = (0, 1, 2, 3, 4)  # x_t at t = k·T/4 for these k
REFERENCE_T = 1000  # the T of Ho et al., for which their β range was chosen


def paper_steps(T: int) -> torch.Tensor:
    """The paper's steps 1..T (index t is step t+1): the x axis of every schedule plot."""
    return torch.arange(1, T + 1, dtype=torch.float64)


def schedule_curves(schedule: NoiseSchedule) -> dict:
    """Every curve of the schedule lab, as float64 tensors of length T, indexed by the paper's step 1..T.

    "beta" β_t, "posterior_variance" β̃_t (0 at t = 1), "alpha_bar" ᾱ_t, "signal" √ᾱ_t and "noise" √(1−ᾱ_t)
    (the weights of x_0 and ε in x_t, eq. 4), "log_snr" log(ᾱ_t/(1−ᾱ_t)), and the posterior-mean
    coefficients "coef_x0" and "coef_xt" of μ̃_t = coef_x0·x_0 + coef_xt·x_t (eq. 7); plus the x axes
    "t" (1..T) and "t_over_T" (t/T, to compare schedules with different T).
    """
    s = schedule
    return {
        "t": paper_steps(s.T),
        "t_over_T": paper_steps(s.T) / s.T,
        "beta": s.betas,
        "posterior_variance": s.posterior_variance,
        "alpha_bar": s.alpha_bars,
        "signal": s.alpha_bars.sqrt(),
        "noise": (1.0 - s.alpha_bars).sqrt(),
        "log_snr": s.snr.log(),
        "coef_x0": s.posterior_mean_coef_x0,
        "coef_xt": s.posterior_mean_coef_xt,
    }


@dataclass(frozen=True)
class TerminalNoise:
    """How far x_T = √ᾱ_T·x_0 + √(1−ᾱ_T)·ε is from the pure noise N(0, I) that sampling starts from, and
    the √ᾱ_T each fix would reach (None where a fix does not apply to this schedule)."""

    kind: str  # a ScheduleKind, or "custom" / "respaced" for hand-made schedules
    T: int
    beta_end: float | None
    signal: float  # √ᾱ_T, the share of x_0's amplitude left in x_T
    snr: float  # ᾱ_T/(1−ᾱ_T)
    threshold: float
    scale_with_T: bool
    scaled_signal: float | None  # with scale-with-T turned on (β range × 1000/T)
    scaling_impossible: bool  # scale-with-T would push β_end to 1 or beyond (T too small)
    reference_T_signal: float | None  # with T = REFERENCE_T (only offered when T is smaller)
    cosine_signal: float | None  # the cosine schedule with the same T

    @property
    def is_pure_noise(self) -> bool:
        return self.signal <= self.threshold


def _terminal_signal_or_none(kind, T: int, beta_start, beta_end, scale_with_T: bool) -> float | None:
    """√ᾱ_T of a schedule built with these settings, or None if those settings are not allowed."""
    try:
        return make_schedule(kind, T, beta_start, beta_end, scale_with_T).terminal_signal
    except ValueError:
        return None


def terminal_noise(schedule: NoiseSchedule, threshold: float = TERMINAL_SIGNAL_THRESHOLD) -> TerminalNoise:
    """The terminal-signal numbers of `schedule` and of the fixes: scale-with-T, a larger T, the cosine schedule.

    Sampling starts from pure noise N(0, I), but training only ever saw x_T = √ᾱ_T·x_0 + √(1−ᾱ_T)·ε; if √ᾱ_T
    is not small the model never learned what to do with pure noise (Lin et al. 2024).
    """
    threshold = check_number("threshold", threshold, 0.0, 1.0)
    s = schedule
    named = s.kind in SCHEDULE_KINDS and s.kind != "cosine"  # the kinds with a β range
    scaled = reference = None
    impossible = False
    if named and not s.scale_with_T and s.T != REFERENCE_T:
        scaled = _terminal_signal_or_none(s.kind, s.T, s.beta_start, s.beta_end, True)
        impossible = scaled is None
    if named and s.T < REFERENCE_T:
        reference = _terminal_signal_or_none(s.kind, REFERENCE_T, s.beta_start, s.beta_end, s.scale_with_T)
    return TerminalNoise(
        kind=s.kind, T=s.T, beta_end=s.beta_end if named else None, signal=s.terminal_signal, snr=s.terminal_snr,
        threshold=threshold, scale_with_T=s.scale_with_T, scaled_signal=scaled, scaling_impossible=impossible,
        reference_T_signal=reference,
        cosine_signal=None if s.kind == "cosine" else make_schedule("cosine", s.T).terminal_signal)


def snapshot_steps(T: int) -> list[int]:
    """The paper's steps 0, T/4, T/2, 3T/4, T (floored); step 0 means x_0 itself."""
    return [k * T // 4 for k in SNAPSHOT_FRACTIONS]


def forward_snapshots(schedule: NoiseSchedule, x0: torch.Tensor, noise: torch.Tensor):
    """x_t = √ᾱ_t·x_0 + √(1−ᾱ_t)·ε (eq. 4) at the paper's steps of `snapshot_steps`, ONE noise draw ε for all.

    x0 and noise have the same shape [C, H, W] (or any shape); returns (steps, tensor [5, *x0.shape] float64).
    Using one ε for every t shows the same digit sinking into the same noise.
    """
    if x0.shape != noise.shape:
        raise ValueError(f"x0 and noise must have the same shape, got {tuple(x0.shape)} and {tuple(noise.shape)}")
    steps = snapshot_steps(schedule.T)
    x0, noise = x0.to(torch.float64), noise.to(torch.float64)
    frames = []
    for step in steps:
        alpha_bar = 1.0 if step == 0 else float(schedule.alpha_bars[step - 1])  # ᾱ_0 = 1: x_0 itself
        frames.append(math.sqrt(alpha_bar) * x0 + math.sqrt(1.0 - alpha_bar) * noise)
    return steps, torch.stack(frames)
