"""Why many small steps: the true reverse transition q(x_{t-1}|x_t) of a 1-D mixture, against the best Gaussian.

Ho et al. 2020 (§2, after Sohl-Dickstein et al. 2015) model each reverse step as a Gaussian because for small
β_t the true reverse transition is close to one. Here it is computed exactly, by Bayes' rule on a grid:

    q(x_{t-1}|x_t) ∝ q(x_t|x_{t-1}) · q_{t-1}(x_{t-1}),   q(x_t|x_{t-1}) = N(√α_t·x_{t-1}, β_t)   (eq. 2)

with q_{t-1} the data distribution noised to step t−1 (exact for a Gaussian mixture: each component stays
Gaussian, N(√ᾱ·μ_k, ᾱ·σ_k² + 1 − ᾱ)). The best Gaussian in KL(q ‖ N) is the one with q's mean and variance (moment matching).

The three chains share the linear schedule of T = 1000 steps and visit 1000, 100 or 10 of its timesteps
(respaced as Nichol & Dhariwal §4: same ᾱ at every visited step, β recomputed), so they start from the same
noise and end at the same data: only the size of each step differs. By the chain rule of KL,
KL(q(x_{0:T}) ‖ p(x_{0:T})) = KL(q(x_T) ‖ p(x_T)) + Σ_t E_{x_t~q}[KL(q(x_{t-1}|x_t) ‖ p(x_{t-1}|x_t))],
so the sum over the chain of the expected per-step gap is exactly what the Gaussian assumption costs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from core.checks import check_int, check_number
from core.diffusion.oracle import GaussianMixture
from core.diffusion.samplers import timesteps
from core.diffusion.schedules import NoiseSchedule, make_schedule

STEP_COUNTS = (1000, 100, 10)
MIXTURE_1D = {"means": [[-1.0], [1.0]], "stds": [0.15, 0.15], "weights": [0.35, 0.65]}
GRID_POINTS = 801
GRID_HALF_WIDTH = 10.0  # kernel standard deviations on each side of x_t/√α_t


def default_mixture() -> GaussianMixture:
    """A two-bump 1-D data distribution: 0.35·N(−1, 0.15²) + 0.65·N(1, 0.15²)."""
    return GaussianMixture(MIXTURE_1D["means"], MIXTURE_1D["stds"], MIXTURE_1D["weights"])


def chain_schedule(steps: int) -> NoiseSchedule:
    """The linear schedule (β 1e-4..0.02, T = 1000) visiting `steps` of its timesteps, both ends included."""
    steps = check_int("steps", steps, 1, 1000)
    base = make_schedule("linear", 1000)
    return base if steps == 1000 else base.respaced(timesteps(1000, steps, "linspace"))


def _log_marginal(mixture: GaussianMixture, x: torch.Tensor, alpha_bar: torch.Tensor) -> torch.Tensor:
    """log q_s(x) of the data noised to ᾱ_s: Σ_k w_k N(x; √ᾱ_s μ_k, ᾱ_s σ_k² + 1 − ᾱ_s), for x [R, G] and one
    ᾱ_s per row (alpha_bar [R]), with logsumexp over the components."""
    ab = alpha_bar[:, None, None]
    means = ab.sqrt() * mixture.means[:, 0]  # [R, 1, K]
    variances = ab * mixture.variances + (1 - ab)
    log_components = (mixture.log_weights - 0.5 * (x[..., None] - means) ** 2 / variances
                      - 0.5 * torch.log(2 * math.pi * variances))
    return torch.logsumexp(log_components, dim=-1)


@dataclass(frozen=True)
class ReverseTransition:
    """q(x_{t-1}|x_t) on a grid for a batch of x_t values: grid and density are [M, G]."""

    grid: torch.Tensor
    density: torch.Tensor
    mean: torch.Tensor  # [M] moments of the exact density (the moment-matched Gaussian)
    variance: torch.Tensor  # [M]

    def gaussian(self) -> torch.Tensor:
        """[M, G] the moment-matched Gaussian density on the same grid."""
        var = self.variance[:, None]
        return torch.exp(-(self.grid - self.mean[:, None]) ** 2 / (2 * var)) / torch.sqrt(2 * math.pi * var)

    def kl(self) -> torch.Tensor:
        """[M] KL(q(x_{t-1}|x_t) ‖ best Gaussian) in nats: the Gaussian N has q's mean and variance σ², so
        −∫q log N = ½ log(2πe σ²) exactly, and KL = ∫q log q + ½ log(2πe σ²) (the entropy by quadrature)."""
        q = self.density
        q_log_q = torch.where(q > 0, q * torch.log(q.clamp_min(1e-300)), torch.zeros_like(q))
        return _integrate(q_log_q, self.grid) + 0.5 * torch.log(2 * math.pi * math.e * self.variance)

    def total_variation(self) -> torch.Tensor:
        """[M] ½∫|q − N| in [0, 1]."""
        return 0.5 * _integrate((self.density - self.gaussian()).abs(), self.grid)


def _integrate(values: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    return torch.trapezoid(values, grid, dim=-1)


def reverse_transition(mixture: GaussianMixture, schedule: NoiseSchedule, i, x_t,
                       points: int = GRID_POINTS) -> ReverseTransition:
    """The exact q(x_{t-1}|x_t) at 0-based step index i of `schedule` (an int, or a LongTensor [M], one step per
    x_t) for each value in x_t ([M] or a float), on a grid of `points` values per x_t spanning x_t/√α_t ± 10·√(β_t/α_t)
    (the likelihood's width: outside it the kernel factor is below e^-50)."""
    points = check_int("points", points, 11, 20_001)
    x_t = torch.as_tensor(x_t, dtype=torch.float64).reshape(-1)
    if isinstance(i, torch.Tensor):
        if i.dtype != torch.long or i.shape != x_t.shape or int(i.min()) < 0 or int(i.max()) >= schedule.T:
            raise ValueError(f"i must be a LongTensor of {x_t.shape[0]} steps in 0..{schedule.T - 1}")
        steps = i
    else:
        steps = torch.full(x_t.shape, check_int("i", i, 0, schedule.T - 1), dtype=torch.long)
    alpha, beta = schedule.alphas[steps], schedule.betas[steps]
    centre, width = x_t / alpha.sqrt(), (beta / alpha).sqrt()
    offsets = torch.linspace(-GRID_HALF_WIDTH, GRID_HALF_WIDTH, points, dtype=torch.float64)
    grid = centre[:, None] + offsets[None, :] * width[:, None]  # [M, G] values of x_{t-1}
    # Bayes: log q(x_t|x_{t-1}) + log q_{t-1}(x_{t-1}), then normalise over the grid
    log_kernel = -(x_t[:, None] - alpha.sqrt()[:, None] * grid) ** 2 / (2 * beta[:, None])
    log_unnormalised = log_kernel + _log_marginal(mixture, grid, schedule.alpha_bars_prev[steps])
    unnormalised = torch.exp(log_unnormalised - log_unnormalised.max(dim=1, keepdim=True).values)
    density = unnormalised / _integrate(unnormalised, grid)[:, None]
    mean = _integrate(density * grid, grid)
    variance = _integrate(density * (grid - mean[:, None]) ** 2, grid)
    return ReverseTransition(grid=grid, density=density, mean=mean, variance=variance)


def typical_range(mixture: GaussianMixture, alpha_bar: torch.Tensor, width: float = 4.0) -> tuple[torch.Tensor, torch.Tensor]:
    """(low, high) [R] for each ᾱ in alpha_bar [R]: an interval holding essentially all of q_t's mass, the
    component means ± width component standard deviations."""
    ab = alpha_bar[:, None]
    means = ab.sqrt() * mixture.means[:, 0]
    stds = torch.sqrt(ab * mixture.variances + 1 - ab)
    return (means - width * stds).min(1).values, (means + width * stds).max(1).values


@dataclass(frozen=True)
class ChainGap:
    steps: int
    paper_steps: torch.Tensor  # [S] the original (T = 1000) paper step t of each visited step
    alpha_bars: torch.Tensor  # [S]
    expected_kl: torch.Tensor  # [S] E_{x_t~q_t}[KL(q(x_{t-1}|x_t) ‖ best Gaussian)], nats

    @property
    def total_kl(self) -> float:
        return float(self.expected_kl.sum())


def chain_gap(mixture: GaussianMixture, steps: int, x_points: int = 41, grid_points: int = 101) -> ChainGap:
    """The expected gap at every step of a `steps`-step chain, averaging over x_t ~ q_t by quadrature on
    x_points values of x_t per step (weights q_t(x_t), normalised); all steps at once, in chunks."""
    schedule = chain_schedule(steps)
    x_points = check_int("x_points", x_points, 5, 2001)
    kept = torch.arange(1000) if steps == 1000 else timesteps(1000, steps, "linspace").flip(0)
    kls = []
    chunk = max(1, 4096 // x_points)
    for start in range(0, schedule.T, chunk):
        rows = torch.arange(start, min(start + chunk, schedule.T))
        alpha_bar = schedule.alpha_bars[rows]
        low, high = typical_range(mixture, alpha_bar)
        x_t = low[:, None] + (high - low)[:, None] * torch.linspace(0, 1, x_points, dtype=torch.float64)  # [R, X]
        weights = torch.exp(_log_marginal(mixture, x_t, alpha_bar))
        weights = weights / weights.sum(1, keepdim=True)
        transition = reverse_transition(mixture, schedule, rows.repeat_interleave(x_points), x_t.reshape(-1), grid_points)
        kls.append((weights * transition.kl().reshape(len(rows), x_points)).sum(1))
    return ChainGap(steps=steps, paper_steps=kept + 1, alpha_bars=schedule.alpha_bars.clone(),
                    expected_kl=torch.cat(kls))


def nearest_step(schedule: NoiseSchedule, alpha_bar: float) -> int:
    """The 0-based step of `schedule` whose ᾱ is closest to alpha_bar in log-SNR."""
    alpha_bar = check_number("alpha_bar", alpha_bar, 0.0, 1.0, open_low=True, open_high=True)
    target = math.log(alpha_bar / (1 - alpha_bar))
    return int((schedule.snr.log() - target).abs().argmin())
