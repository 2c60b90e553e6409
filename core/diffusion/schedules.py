"""Noise schedules: the β_t sequence and every array derived from it.

One frozen object owns the schedule-derived arrays (as in Improved DDPM's `gaussian_diffusion.py`), so
samplers and losses never recompute them. Timesteps are 0-based: index t is the paper's step t+1, so
`alpha_bars[0]` is ᾱ_1 and `alpha_bars[T-1]` is ᾱ_T. All arrays are float64 1-D tensors of length T.

Kinds (all from the literature; the defaults are Ho et al.'s β_1 = 1e-4, β_T = 0.02):
- "linear":    β_t = linspace(β_start, β_end, T)                               (Ho et al. 2020)
- "quadratic": β_t = linspace(√β_start, √β_end, T)²                            ("quad" in Ho et al.'s code)
- "sigmoid":   β_t = sigmoid(linspace(-6, 6, T))·(β_end − β_start) + β_start
- "cosine":    ᾱ(t) = f(t)/f(0), f(t) = cos²(((t/T) + s)/(1 + s)·π/2), s = 0.008,
               β_t = min(1 − ᾱ(t)/ᾱ(t−1), 0.999)                               (Nichol & Dhariwal 2021, eq. 17)
`scale_with_T=True` multiplies β_start and β_end by 1000/T (Nichol & Dhariwal's rule that keeps x_T close
to pure noise when T ≠ 1000); the cosine schedule ignores β_start/β_end.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal, get_args

import torch

from core.checks import check_bool, check_choice, check_int, check_number

ScheduleKind = Literal["linear", "quadratic", "sigmoid", "cosine"]
SCHEDULE_KINDS: tuple[ScheduleKind, ...] = get_args(ScheduleKind)
MAX_T = 10_000  # more steps than this only makes the app slow; no paper uses more
# The least ᾱ_T a model's schedule may reach (numerical_problem): x̂_0 = (x_t − √(1−ᾱ_t)·ε̂)/√ᾱ_t multiplies the
# network's error by up to 1/√ᾱ_T = 1e15 and the losses square it, which must stay far below float32's 3.4e38.
# Ho et al.'s schedule reaches 4e-5, cosine with T = 10,000 2.4e-11; a β_end near 1 drives ᾱ_T to exactly 0.
MIN_ALPHA_BAR = 1e-30
# The least β_t a model's schedule may hold (numerical_problem): 1 − (1 − β) in float64 is off by up to 1.1e-16, so a
# β of 1e-12 keeps 4 significant digits through ᾱ and the posterior's weights; below 1.1e-16, 1 − β is exactly 1
# and the posterior divides 0 by 0. Ho et al. start at 1e-4, the Train page at 1e-6, cosine with T = 10,000 at 3.9e-6.
MIN_BETA = 1e-12
COSINE_OFFSET = 0.008  # s in Nichol & Dhariwal eq. 17
COSINE_MAX_BETA = 0.999  # their clipping, which avoids a singularity at t = T


def cosine_alpha_bar(t_over_T: torch.Tensor, s: float = COSINE_OFFSET) -> torch.Tensor:
    """ᾱ(t) of Nichol & Dhariwal eq. 17, normalised so that ᾱ(0) = 1 (t given as the fraction t/T)."""
    f = torch.cos((t_over_T + s) / (1 + s) * math.pi / 2) ** 2
    f0 = math.cos(s / (1 + s) * math.pi / 2) ** 2
    return f / f0


def _betas_for(kind: ScheduleKind, T: int, beta_start: float, beta_end: float) -> torch.Tensor:
    if kind == "linear":
        return torch.linspace(beta_start, beta_end, T, dtype=torch.float64)
    if kind == "quadratic":
        return torch.linspace(beta_start**0.5, beta_end**0.5, T, dtype=torch.float64) ** 2
    if kind == "sigmoid":
        return torch.sigmoid(torch.linspace(-6, 6, T, dtype=torch.float64)) * (beta_end - beta_start) + beta_start
    # cosine: β_t = 1 − ᾱ(t)/ᾱ(t−1) for the paper's t = 1..T
    steps = torch.arange(T + 1, dtype=torch.float64) / T
    alpha_bar = cosine_alpha_bar(steps)
    return (1 - alpha_bar[1:] / alpha_bar[:-1]).clamp(max=COSINE_MAX_BETA)


@dataclass(frozen=True, eq=False)
class NoiseSchedule:
    """β_1..β_T and the arrays every formula needs (Ho et al. 2020, eqs. 4, 6, 7).

    Build one with `make_schedule`; `from_betas` is for respaced or hand-made schedules.
    """

    kind: ScheduleKind | Literal["custom", "respaced"]
    T: int
    beta_start: float | None
    beta_end: float | None
    scale_with_T: bool
    betas: torch.Tensor
    alphas: torch.Tensor = field(init=False)
    alpha_bars: torch.Tensor = field(init=False)
    alpha_bars_prev: torch.Tensor = field(init=False)
    posterior_variance: torch.Tensor = field(init=False)
    posterior_log_variance_clipped: torch.Tensor = field(init=False)
    posterior_mean_coef_x0: torch.Tensor = field(init=False)
    posterior_mean_coef_xt: torch.Tensor = field(init=False)
    snr: torch.Tensor = field(init=False)

    def __post_init__(self):
        betas = self.betas.to(torch.float64)
        if betas.ndim != 1 or len(betas) != self.T:
            raise ValueError(f"betas must be a 1-D tensor of length T={self.T}, got shape {tuple(betas.shape)}")
        if not bool(((betas > 0) & (betas < 1)).all()):
            raise ValueError("every beta must lie strictly between 0 and 1")
        alphas = 1.0 - betas
        alpha_bars = torch.cumprod(alphas, dim=0)
        alpha_bars_prev = torch.cat([torch.ones(1, dtype=torch.float64), alpha_bars[:-1]])
        # β̃_t = (1 − ᾱ_{t−1}) / (1 − ᾱ_t) · β_t  (Ho et al. eq. 7)
        posterior_variance = betas * (1.0 - alpha_bars_prev) / (1.0 - alpha_bars)
        # β̃ at the first step is 0, so its log is replaced by the next step's value (as in Improved DDPM);
        # with T = 1 there is no next step and β_1 stands in.
        first = posterior_variance[1:2] if self.T > 1 else betas[:1]
        log_var_clipped = torch.log(torch.cat([first, posterior_variance[1:]]))
        set_ = object.__setattr__  # frozen dataclass: derived fields are set once, here
        set_(self, "betas", betas)
        set_(self, "alphas", alphas)
        set_(self, "alpha_bars", alpha_bars)
        set_(self, "alpha_bars_prev", alpha_bars_prev)
        set_(self, "posterior_variance", posterior_variance)
        set_(self, "posterior_log_variance_clipped", log_var_clipped)
        # μ̃_t(x_t, x_0) = coef_x0·x_0 + coef_xt·x_t  (Ho et al. eq. 7)
        set_(self, "posterior_mean_coef_x0", betas * alpha_bars_prev.sqrt() / (1.0 - alpha_bars))
        set_(self, "posterior_mean_coef_xt", (1.0 - alpha_bars_prev) * alphas.sqrt() / (1.0 - alpha_bars))
        set_(self, "snr", alpha_bars / (1.0 - alpha_bars))

    @classmethod
    def from_betas(cls, betas: torch.Tensor, kind: Literal["custom", "respaced"] = "custom") -> NoiseSchedule:
        betas = torch.as_tensor(betas, dtype=torch.float64)
        return cls(kind=kind, T=len(betas), beta_start=None, beta_end=None, scale_with_T=False, betas=betas)

    @property
    def terminal_snr(self) -> float:
        """ᾱ_T/(1 − ᾱ_T): how much signal is left in x_T. Near 0 means x_T is (almost) pure noise."""
        return float(self.snr[-1])

    @property
    def terminal_signal(self) -> float:
        """√ᾱ_T, the weight of x_0 in x_T."""
        return float(self.alpha_bars[-1].sqrt())

    def respaced(self, kept_timesteps) -> NoiseSchedule:
        """A shorter schedule visiting only `kept_timesteps` (Nichol & Dhariwal §4).

        The new betas are recomputed from ᾱ so that each kept step has the same ᾱ as in the full
        schedule: β'_i = 1 − ᾱ_{k_i}/ᾱ_{k_{i−1}} (with ᾱ before the first kept step = 1).
        """
        kept = torch.as_tensor(kept_timesteps, dtype=torch.long).sort().values
        if len(kept) == 0 or len(torch.unique(kept)) != len(kept):
            raise ValueError("kept_timesteps must be a non-empty list of distinct timesteps")
        if int(kept[0]) < 0 or int(kept[-1]) >= self.T:
            raise ValueError(f"kept_timesteps must lie in 0..{self.T - 1}, got {kept.tolist()}")
        alpha_bars = self.alpha_bars[kept]
        previous = torch.cat([torch.ones(1, dtype=torch.float64), alpha_bars[:-1]])
        return NoiseSchedule.from_betas(1.0 - alpha_bars / previous, kind="respaced")

    def to_config(self) -> dict:
        """The settings that built this schedule, as plain JSON-able values."""
        if self.kind in SCHEDULE_KINDS:
            return {"kind": self.kind, "T": self.T, "beta_start": self.beta_start,
                    "beta_end": self.beta_end, "scale_with_T": self.scale_with_T}
        return {"kind": self.kind, "T": self.T, "betas": self.betas.tolist()}


def numerical_problem(schedule: NoiseSchedule) -> str | None:
    """Why a model's sampler and losses would meet NaN, infinity or meaningless numbers with this schedule (one
    line), or None.

    The Schedule lab may show any schedule; a model's (an uploaded checkpoint's) must keep every derived array finite
    and accurate where the samplers compute, in float32: every β_t at least MIN_BETA (else 1 − ᾱ_1 rounds to 0 and
    the posterior is 0/0, or a repeated ᾱ respaces to β = 0) and ᾱ_T at least MIN_ALPHA_BAR. Together these bound
    every array of the schedule and of GaussianDiffusion: 1/√ᾱ_t ≤ 1e15, SNR_t ≤ 1/β_1 ≤ 1e12, β̃_t > 0 after the
    first step (so its clipped log is finite), the posterior mean's weights in [0, 1] to 4 digits
    (tests/test_hostile_schedules.py checks each array, the samplers and the losses at these edges)."""
    betas, alpha_bars = schedule.betas, schedule.alpha_bars
    small = torch.nonzero(betas < MIN_BETA)
    if small.numel():
        i = int(small[0])
        return (f"β_{i + 1}={float(betas[i]):.3g} is below {MIN_BETA:g}, too small for float64 to hold 1 − β accurately "
                f"(ᾱ_{i + 1} = {float(alpha_bars[i]):.17g}), and the posterior and fewer-step sampling divide by ᾱ's change")
    last = float(alpha_bars[-1])
    if not last >= MIN_ALPHA_BAR:
        factor = f"{last ** -0.5:.3g}" if last > 0 else "infinity"
        return (f"ᾱ_T={last:.3g} is below {MIN_ALPHA_BAR:g}: x̂_0 = (x_t − √(1−ᾱ_t)·ε̂)/√ᾱ_t would multiply the "
                f"network's error by {factor}; use a smaller β_end or T, or the cosine schedule")
    return None


def make_schedule(kind: ScheduleKind, T: int, beta_start: float = 1e-4, beta_end: float = 0.02,
                  scale_with_T: bool = False) -> NoiseSchedule:
    """Build a named schedule (see the module docstring for the exact definitions); every argument is checked here."""
    check_choice("kind", kind, SCHEDULE_KINDS)
    T = check_int("T", T, 1, MAX_T)
    check_bool("scale_with_T", scale_with_T)
    if kind != "cosine":
        beta_start = check_number("beta_start", beta_start, 0.0, 1.0, open_low=True, open_high=True)
        beta_end = check_number("beta_end", beta_end, 0.0, 1.0, open_low=True, open_high=True)
        if beta_start > beta_end:
            raise ValueError(f"beta_start={beta_start} is not allowed; expected at most beta_end={beta_end}")
    effective_start, effective_end = beta_start, beta_end
    if scale_with_T and kind != "cosine":
        effective_start, effective_end = beta_start * 1000 / T, beta_end * 1000 / T
        if effective_end >= 1.0:
            raise ValueError(
                f"scale_with_T with T={T} turns beta_end={beta_end} into {effective_end:.4g}, which is not below 1; "
                f"use a larger T (at least {math.floor(1000 * beta_end) + 1}) or a smaller beta_end")
    betas = _betas_for(kind, T, effective_start, effective_end)
    return NoiseSchedule(kind=kind, T=T, beta_start=beta_start, beta_end=beta_end,
                         scale_with_T=scale_with_T, betas=betas)


def schedule_from_config(config: dict) -> NoiseSchedule:
    """Inverse of `NoiseSchedule.to_config` (validated: the config may come from an uploaded file)."""
    if not isinstance(config, dict) or "kind" not in config:
        raise ValueError(f"a schedule config must be a dict with a 'kind' entry, got {config!r}")
    kind = config["kind"]
    if kind in SCHEDULE_KINDS:
        allowed = {"kind", "T", "beta_start", "beta_end", "scale_with_T"}
        unknown = set(config) - allowed
        if unknown:
            raise ValueError(f"unknown schedule config entries {sorted(unknown)}; allowed: {sorted(allowed)}")
        return make_schedule(kind, config.get("T"), config.get("beta_start", 1e-4),
                             config.get("beta_end", 0.02), config.get("scale_with_T", False))
    if kind in ("custom", "respaced"):
        betas = config.get("betas")
        if not isinstance(betas, list) or not betas or not all(isinstance(b, (int, float)) for b in betas):
            raise ValueError("a custom schedule config needs 'betas': a non-empty list of numbers")
        check_int("number of betas", len(betas), 1, MAX_T)
        return NoiseSchedule.from_betas(torch.tensor(betas, dtype=torch.float64), kind=kind)
    raise ValueError(f"schedule kind must be one of {', '.join(SCHEDULE_KINDS + ('custom', 'respaced'))}; got {kind!r}")
