"""The training objective: Algorithm 1 on one example, the ELBO's per-t terms, its weights, and bits/dim.

Read next to Ho et al. 2020 (DDPM): the variational bound L = L_T + Σ_{t>1} L_{t-1} + L_0 (eq. 5), the
ε-form term L_{t-1} = β_t²/(2σ_t²α_t(1−ᾱ_t))·‖ε − ε_θ‖² + C (eq. 12), the simple loss ‖ε − ε_θ‖² (eq. 14)
and Algorithm 1; and Nichol & Dhariwal 2021: L_hybrid = L_simple + λ·L_vlb with λ = 0.001 (eq. 16).

Steps are the paper's t = 1..T in docstrings; arrays are indexed by core's 0-based index (index i is step i+1).
Every per-dimension quantity is the mean over the data dimensions, so nats/dim ÷ ln 2 = bits/dim.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from core.checks import check_finite_output, check_generator, check_int
from core.diffusion.gaussian_diffusion import HYBRID_VB_WEIGHT, GaussianDiffusion
from core.diffusion.schedules import NoiseSchedule

LN2 = math.log(2.0)


@dataclass(frozen=True)
class TrainingStep:
    """One pass of Algorithm 1 (Ho et al.) on a batch: every intermediate the loss is built from."""

    t: torch.Tensor  # 0-based indices [B] (paper's step t+1)
    noise: torch.Tensor  # ε ~ N(0, I)
    x_t: torch.Tensor  # √ᾱ_t·x_0 + √(1−ᾱ_t)·ε
    target: torch.Tensor  # ε, x_0 or v, whichever the model predicts
    prediction: torch.Tensor  # the network's output (prediction channels only)
    loss: torch.Tensor  # ‖target − prediction‖² averaged over dimensions, [B]
    pred_x0: torch.Tensor  # x̂_0 implied by the prediction


@torch.no_grad()
def algorithm1_step(model, diffusion: GaussianDiffusion, x0: torch.Tensor, generator: torch.Generator,
                    t: torch.Tensor | None = None) -> TrainingStep:
    """Algorithm 1 of Ho et al. without the gradient step: 2. x_0 given; 3. t ~ Uniform{1..T} (unless given);
    4. ε ~ N(0, I); 5. the loss ‖ε − ε_θ(√ᾱ_t x_0 + √(1−ᾱ_t) ε, t)‖² (eq. 14; the target is x_0 or v for those
    models)."""
    check_generator("generator", generator)
    # 3. sample the timestep
    if t is None:
        t = torch.randint(0, diffusion.T, (x0.shape[0],), generator=generator)
    # 4. sample the noise
    noise = torch.randn(x0.shape, generator=generator, dtype=x0.dtype)
    # 5. form x_t, predict, compare with the target
    x_t = diffusion.q_sample(x0, t, noise)
    prediction, _ = diffusion.split_model_output(check_finite_output("the network's output", model(x_t, t), t), x_t)
    target = diffusion.training_target(x0, noise, t)
    loss = ((target - prediction) ** 2).reshape(x0.shape[0], -1).mean(1)
    pred_x0, _ = diffusion.pred_x0_eps(prediction, x_t, t)
    return TrainingStep(t=t, noise=noise, x_t=x_t, target=target, prediction=prediction, loss=loss, pred_x0=pred_x0)


def elbo_eps_weights(schedule: NoiseSchedule, variance: str = "fixed_small") -> torch.Tensor:
    """The weight λ_t that the ELBO puts on the per-dimension ‖ε − ε_θ‖² at each step (Ho et al. eq. 12):

    L_{t-1} = λ_t·‖ε − ε_θ‖²/D,  λ_t = β_t² / (2σ_t²·α_t·(1−ᾱ_t)),  in nats per dimension.
    σ_t² = β̃_t ("fixed_small") gives λ_t = β_t/(2α_t(1−ᾱ_{t−1})); σ_t² = β_t ("fixed_large") gives
    β_t/(2α_t(1−ᾱ_t)). L_simple (eq. 14) sets every λ_t to 1. Index 0 (step 1) is the decoder L_0, not
    a KL; with β̃_1 = 0 its weight would be infinite, so it is NaN here.
    """
    if variance == "fixed_small":
        sigma2 = schedule.posterior_variance
    elif variance == "fixed_large":
        sigma2 = schedule.betas
    else:
        raise ValueError(f"variance={variance!r} is not allowed; expected one of fixed_small, fixed_large")
    weights = schedule.betas**2 / (2.0 * sigma2 * schedule.alphas * (1.0 - schedule.alpha_bars))
    weights[0] = float("nan")
    return weights


@dataclass(frozen=True)
class BoundTerms:
    """The variational bound of n examples, term by term, in nats per dimension."""

    per_t: torch.Tensor  # [n, T]: column 0 is the decoder L_0 = −log p_θ(x_0|x_1), column i ≥ 1 is L_i (KL)
    prior: torch.Tensor  # [n] L_T = KL(q(x_T|x_0) ‖ N(0, I))
    n: int

    @property
    def total(self) -> torch.Tensor:
        """[n] the bound −log p(x_0) ≤ L_T + Σ_t L_{t-1} + L_0, nats/dim."""
        return self.prior + self.per_t.sum(1)

    def bits_per_dim(self) -> tuple[float, float]:
        """(mean, standard error over the n examples) of the bound in bits/dim."""
        bits = self.total / LN2
        se = float(bits.std() / math.sqrt(self.n)) if self.n > 1 else float("nan")
        return float(bits.mean()), se


@torch.no_grad()
def bound_terms(model, diffusion: GaussianDiffusion, x0: torch.Tensor, generator: torch.Generator,
                batch_timesteps: int = 64, progress: Callable[[int, int], None] | None = None) -> BoundTerms:
    """Every term of the bound (Ho et al. eq. 5) for each example of x0, with one ε per (example, t):
    L_{t-1} = KL(q(x_{t-1}|x_t,x_0) ‖ p_θ(x_{t-1}|x_t)) for t = 2..T, the decoder L_0 and the prior L_T
    (core's `GaussianDiffusion.elbo_term` and `prior_kl`). Costs T·n network evaluations, in chunks of
    batch_timesteps timesteps; progress(done, T) after each chunk."""
    check_generator("generator", generator)
    batch_timesteps = check_int("batch_timesteps", batch_timesteps, 1)
    n, T = x0.shape[0], diffusion.T
    per_t = torch.empty(n, T, dtype=torch.float64)
    for start in range(0, T, batch_timesteps):
        ts = torch.arange(start, min(start + batch_timesteps, T))
        t = ts.repeat_interleave(n)  # [chunk·n]: every example at every timestep of the chunk
        x0_rep = x0.repeat(len(ts), *([1] * (x0.ndim - 1)))
        noise = torch.randn(x0_rep.shape, generator=generator, dtype=x0.dtype)
        x_t = diffusion.q_sample(x0_rep, t, noise)
        terms = diffusion.elbo_term(check_finite_output("the network's output", model(x_t, t), t), x0_rep, x_t, t)
        per_t[:, start:start + len(ts)] = terms.reshape(len(ts), n).T.double()
        if progress is not None:
            progress(min(start + batch_timesteps, T), T)
    return BoundTerms(per_t=per_t, prior=diffusion.prior_kl(x0).double(), n=n)


def hybrid_weight_in_bits(weight_in_nats: float = HYBRID_VB_WEIGHT) -> float:
    """The λ that core's L_hybrid = L_simple + λ·L_vlb[nats] amounts to when L_vlb is measured in bits, as in
    Nichol & Dhariwal's reference code (which adds L_vlb in bits/dim with λ = 0.001): λ_bits = λ·ln 2."""
    return weight_in_nats * LN2
