"""Exact, Bayes-optimal denoisers for distributions we know completely.

A trained network can only approximate E[target | x_t]; for a Gaussian mixture (or a finite set of
points) that conditional expectation has a closed form, so we can compute the *perfect* denoiser and
the *smallest possible* training loss. The app uses them to separate "the model is imperfect" from
"the sampler is imperfect".

Math (forward process, Ho et al. 2020 eq. 4): x_t = sqrt(ab) x0 + sqrt(1 - ab) eps, ab = alpha_bar_t.
For a mixture component k with mean mu_k and per-dimension variance s_k^2, per dimension

    x_t | k          ~ N(sqrt(ab) mu_k, c_k),         c_k = ab s_k^2 + 1 - ab
    E[x0 | x_t, k]   = mu_k + sqrt(ab) s_k^2 / c_k (x_t - sqrt(ab) mu_k)
    Var[x0 | x_t, k] = s_k^2 (1 - ab) / c_k
    r_k(x_t)         = w_k N(x_t; sqrt(ab) mu_k, c_k) / sum_j (...)     (responsibilities)
    E[x0 | x_t]      = sum_k r_k E[x0 | x_t, k]
    Var[x0 | x_t]    = sum_k r_k (Var[x0 | x_t, k] + (E[x0 | x_t, k] - E[x0 | x_t])^2)

eps and v are affine in x0 given x_t (eps = (x_t - sqrt(ab) x0) / sqrt(1 - ab),
v = sqrt(ab) eps - sqrt(1 - ab) x0 = sqrt(ab)/sqrt(1-ab) x_t - x0 / sqrt(1 - ab)), so their posterior
means follow from E[x0 | x_t] and their posterior variances are Var[x0 | x_t] times
ab / (1 - ab) (eps) or 1 / (1 - ab) (v). A finite point set is the same mixture with s_k = 0.
Everything is computed in float64 with logsumexp, in chunks over x_t so thousands of components fit.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

from core.checks import check_generator, check_int, check_number
from core.diffusion.gaussian_diffusion import GaussianDiffusion, Prediction

# Upper bound on the number of float64 elements of one [rows, K(, D)] intermediate tensor.
_CHUNK_ELEMENTS = 1 << 21


class Posterior(NamedTuple):
    """Posterior of x0 given x_t for a batch, flattened to [B, D], float64."""

    mean: torch.Tensor  # E[x0 | x_t], [B, D]
    variance_sum: torch.Tensor | None  # trace of Cov[x0 | x_t] (sum over dims), [B]


def _as_float64(value, name: str) -> torch.Tensor:
    try:
        # python numbers go straight to float64 (a float32 detour would round 0.4 to 0.4000000059...)
        tensor = value.detach().to(torch.float64) if isinstance(value, torch.Tensor) else torch.as_tensor(value, dtype=torch.float64)
    except (TypeError, ValueError, RuntimeError) as error:
        raise ValueError(f"{name} must be a numeric tensor or array, got {type(value).__name__}") from error
    if not torch.isfinite(tensor).all():
        raise ValueError(f"{name} must contain only finite values")
    return tensor


class _MixtureOfGaussians:
    """Shared machinery: components with means [K, D], variances [K] or [K, D] (0 allowed), weights [K].

    Two exact code paths: when every component has the same isotropic variance (always true for point
    sets) everything is a [B, K] matrix built by matrix products; otherwise [B, K, D] tensors are
    broadcast directly (mixtures with different variances have few components).
    """

    def __init__(self, means: torch.Tensor, variances: torch.Tensor, weights: torch.Tensor, event_shape):
        self.means = means  # [K, D] float64
        self.variances = variances  # [K] (isotropic) or [K, D] (diagonal), float64
        self.weights = weights  # [K] float64, sums to 1
        self.log_weights = torch.log(weights)  # -inf for zero weights: those components never win
        self.event_shape = tuple(event_shape)
        shared = variances.dim() == 1 and bool((variances == variances[0]).all())
        self._shared_variance = float(variances[0]) if shared else None
        self._variances_kd = variances[:, None].expand_as(means) if variances.dim() == 1 else variances
        self._means_sq = (means * means).sum(1)  # ||mu_k||^2, [K]
        self._means_and_sq = torch.cat([means, self._means_sq[:, None]], dim=1)  # [K, D + 1]

    @property
    def num_components(self) -> int:
        return self.means.shape[0]

    @property
    def dim(self) -> int:
        return self.means.shape[1]

    def sample(self, n: int, generator: torch.Generator, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """Draw n samples [n, *event_shape]: pick a component by weight, then add its Gaussian noise."""
        n = check_int("n", n, 1)
        check_generator("generator", generator)
        component = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        noise = torch.randn(n, self.dim, generator=generator, dtype=torch.float64)
        samples = self.means[component] + self._variances_kd.sqrt()[component] * noise
        return samples.reshape(n, *self.event_shape).to(dtype)

    def flatten(self, x: torch.Tensor, name: str = "x") -> torch.Tensor:
        """Check x is [B, *event_shape] and return it as float64 [B, D] (keeping autograd)."""
        if not isinstance(x, torch.Tensor) or not x.is_floating_point():
            raise ValueError(f"{name} must be a floating-point torch.Tensor")
        if x.dim() < 1 or tuple(x.shape[1:]) != self.event_shape:
            raise ValueError(
                f"{name} must have shape [B, {', '.join(map(str, self.event_shape))}] to match the "
                f"distribution, got {list(x.shape)}"
            )
        return x.reshape(x.shape[0], -1).to(torch.float64)

    def _chunks(self, x: torch.Tensor, alpha_bar: torch.Tensor):
        """Pieces (x [b, D], ab [b, 1]) of the batch, small enough for the [b, K(, D)] intermediates."""
        per_row = self.num_components * (1 if self._shared_variance is not None else self.dim)
        rows = max(1, _CHUNK_ELEMENTS // per_row)
        for start in range(0, x.shape[0], rows):
            yield x[start : start + rows], alpha_bar[start : start + rows, None]

    def _log_likelihoods(self, x: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
        """[b, K] log(w_k N(x_t; sqrt(ab) mu_k, c_k)) for x_t [b, D] and ab [b, 1]; c_k = ab s_k^2 + 1 - ab."""
        if self._shared_variance is not None:
            # -||x - sqrt(ab) mu_k||^2 / (2c) expanded: the only [b, K] work is one matrix product.
            c = ab * self._shared_variance + (1.0 - ab)  # [b, 1]
            features = torch.cat([x * (ab.sqrt() / c), -ab / (2.0 * c)], dim=1)  # [b, D + 1]
            row_terms = -(x * x).sum(1, keepdim=True) / (2.0 * c) - 0.5 * self.dim * torch.log(2.0 * math.pi * c)
            return torch.addmm(self.log_weights[None, :], features, self._means_and_sq.T) + row_terms
        c = ab[:, :, None] * self._variances_kd[None] + (1.0 - ab[:, :, None])  # [b, K, D]
        diff = x[:, None, :] - ab.sqrt()[:, :, None] * self.means[None]
        return self.log_weights[None, :] - 0.5 * (diff * diff / c + torch.log(2.0 * math.pi * c)).sum(2)

    def posterior(self, x_t: torch.Tensor, alpha_bar: torch.Tensor, with_variance: bool = False) -> Posterior:
        """Posterior of x0 given x_t = sqrt(ab) x0 + sqrt(1-ab) eps, for x_t [B, D] and ab [B] (float64).

        variance_sum (the trace of Cov[x0 | x_t]) is only computed when with_variance is True.
        """
        means, variance_sums = [], []
        for x, ab in self._chunks(x_t, alpha_bar):
            resp = torch.softmax(self._log_likelihoods(x, ab), dim=1)  # r_k(x_t), [b, K]
            step = self._posterior_shared if self._shared_variance is not None else self._posterior_general
            mean, variance_sum = step(x, ab, resp, with_variance)
            means.append(mean)
            variance_sums.append(variance_sum)
        if not means:  # empty batch
            return Posterior(x_t.clone(), x_t.new_zeros(0) if with_variance else None)
        return Posterior(torch.cat(means), torch.cat(variance_sums) if with_variance else None)

    def _posterior_shared(self, x, ab, resp, with_variance):
        """E[x0 | x_t, k] = g mu_k + h x_t with g = (1 - ab) / c and h = sqrt(ab) s^2 / c, the same for all k."""
        s2 = self._shared_variance
        c = ab * s2 + (1.0 - ab)
        g, h = (1.0 - ab) / c, ab.sqrt() * s2 / c  # [b, 1]
        resp_mean = resp @ self.means  # sum_k r_k mu_k
        mean = g * resp_mean + h * x
        if not with_variance:
            return mean, None
        within = self.dim * s2 * g[:, 0]  # tr Var[x0 | x_t, k] = D s^2 (1 - ab) / c
        # the component means differ only through g mu_k: spread = g^2 (sum_k r_k ||mu_k||^2 - ||sum_k r_k mu_k||^2)
        spread = (resp @ self._means_sq - (resp_mean * resp_mean).sum(1)).clamp_min(0.0)
        return mean, within + g[:, 0] ** 2 * spread

    def _posterior_general(self, x, ab, resp, with_variance):
        """Per-component, per-dimension variances: [b, K, D] tensors, exact, no cancellation."""
        ab, resp, s2 = ab[:, :, None], resp[:, :, None], self._variances_kd[None]
        c = ab * s2 + (1.0 - ab)
        component_mean = self.means[None] + ab.sqrt() * s2 / c * (x[:, None, :] - ab.sqrt() * self.means[None])
        mean = (resp * component_mean).sum(1)
        if not with_variance:
            return mean, None
        spread = (component_mean - mean[:, None, :]) ** 2
        return mean, (resp * (s2 * (1.0 - ab) / c + spread)).sum((1, 2))

    def marginal_log_prob(self, x_t: torch.Tensor, alpha_bar: float) -> torch.Tensor:
        """log q(x_t) [B] (float64) of x_t = sqrt(ab) x0 + sqrt(1 - ab) eps with x0 from this distribution.

        Differentiable in x_t (autograd gives the score). alpha_bar is a float in [0, 1] (1 only when
        every component has positive variance).
        """
        x = self.flatten(x_t, "x_t")
        alpha_bar = check_number("alpha_bar", alpha_bar, 0.0, 1.0)
        if alpha_bar == 1.0 and bool((self.variances == 0).any()):
            raise ValueError("alpha_bar = 1 has no density for point masses (variance-0 components); use alpha_bar < 1")
        ab = torch.full((x.shape[0],), float(alpha_bar), dtype=torch.float64)
        parts = [torch.logsumexp(self._log_likelihoods(xc, abc), dim=1) for xc, abc in self._chunks(x, ab)]
        return torch.cat(parts) if parts else x.new_zeros(0)


class GaussianMixture(_MixtureOfGaussians):
    """sum_k w_k N(mu_k, diag(s_k^2)): means [K, D], stds [K] (isotropic) or [K, D] (diagonal), weights [K].

    Weights must be >= 0 with a positive sum; they are normalised to sum to 1. stds must be > 0
    (point masses belong in EmpiricalDistribution).
    """

    def __init__(self, means, stds, weights):
        means = _as_float64(means, "means")
        stds = _as_float64(stds, "stds")
        weights = _as_float64(weights, "weights")
        if means.dim() != 2 or means.shape[0] < 1 or means.shape[1] < 1:
            raise ValueError(f"means must have shape [K, D] with K, D >= 1, got {list(means.shape)}")
        k, d = means.shape
        if tuple(stds.shape) not in ((k,), (k, d)):
            raise ValueError(f"stds must have shape [K]=[{k}] or [K, D]=[{k}, {d}], got {list(stds.shape)}")
        if not bool((stds > 0).all()):
            raise ValueError(f"stds must all be > 0, got minimum {stds.min().item():g}")
        if tuple(weights.shape) != (k,):
            raise ValueError(f"weights must have shape [K]=[{k}], got {list(weights.shape)}")
        if not bool((weights >= 0).all()) or weights.sum() <= 0:
            raise ValueError(f"weights must be >= 0 with a positive sum, got {weights.tolist()}")
        super().__init__(means, stds * stds, weights / weights.sum(), event_shape=(d,))
        self.stds = stds

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Log density log p(x) [N] (float64) of points x [N, D]."""
        return self.marginal_log_prob(x, 1.0)


class EmpiricalDistribution(_MixtureOfGaussians):
    """Uniform distribution over a finite set of points [N, D] (or [N, *shape], e.g. images).

    Its optimal denoiser is the "memorising" denoiser of a training set: E[x0 | x_t] is a softmax-weighted
    average of the training points, which collapses onto the nearest point as t -> 0.
    """

    def __init__(self, points):
        points = _as_float64(points, "points")
        if points.dim() < 2 or points.shape[0] < 1 or points[0].numel() < 1:
            raise ValueError(f"points must have shape [N, D] (or [N, *shape]) with N >= 1, got {list(points.shape)}")
        n = points.shape[0]
        flat = points.reshape(n, -1)
        weights = torch.full((n,), 1.0 / n, dtype=torch.float64)
        super().__init__(flat, torch.zeros(n, dtype=torch.float64), weights, event_shape=points.shape[1:])
        self.points = points


def _timestep_batch(t, batch: int) -> torch.Tensor:
    """t as a CPU LongTensor [B]: an int or 0-d tensor is repeated over the batch. A dtype and shape assertion
    only: the samplers pass valid timesteps, and the public functions below check a caller's t themselves."""
    t = torch.as_tensor(t)
    if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
        raise ValueError(f"t must be an integer timestep or an integer (Long) tensor, got {t!r}")
    t = t.expand(batch) if t.dim() == 0 else t
    if tuple(t.shape) != (batch,):
        raise ValueError(f"t must have shape [B]=[{batch}] (or be a scalar), got {list(t.shape)}")
    return t.long().cpu()


class OracleDenoiser:
    """The exact E[target | x_t] of a known distribution, with the model signature (x_t, t) -> output.

    The output matches diffusion.prediction ("eps", "x0" or "v"). For variance "learned_range" the
    variance channels are -1, concatenated along dim 1, i.e. sigma_t^2 = clipped posterior variance
    beta-tilde_t (Nichol & Dhariwal 2021 eq. 15 with v = 0), so every sampler can run on it.
    x_t has shape [B, *distribution.event_shape] ([B, D] for points); t is a LongTensor [B] (or an int).
    The arithmetic runs on the CPU in float64; results come back in x_t's dtype and on x_t's device.
    """

    def __init__(self, distribution, diffusion):
        if not isinstance(distribution, _MixtureOfGaussians):
            raise ValueError(f"distribution must be a GaussianMixture or EmpiricalDistribution, got {type(distribution).__name__}")
        if not isinstance(diffusion, GaussianDiffusion):
            raise ValueError(f"diffusion must be a GaussianDiffusion, got {type(diffusion).__name__}")
        self.distribution = distribution
        self.diffusion = diffusion

    def _posterior(self, x_t: torch.Tensor, t) -> tuple[torch.Tensor, torch.Tensor, Posterior]:
        x = self.distribution.flatten(x_t, "x_t").cpu()
        t = _timestep_batch(t, x.shape[0])
        alpha_bar = self.diffusion.schedule.alpha_bars.to(torch.float64)[t]
        return x, t, self.distribution.posterior(x, alpha_bar)

    def expected_x0(self, x_t: torch.Tensor, t) -> torch.Tensor:
        """E[x0 | x_t], same shape and dtype as x_t."""
        _, _, post = self._posterior(x_t, t)
        return post.mean.reshape(x_t.shape).to(device=x_t.device, dtype=x_t.dtype)

    def _expected_x0_eps(self, x_t: torch.Tensor, t):
        x, t, post = self._posterior(x_t, t)
        eps = self.diffusion.predict_eps_from_x0(x, t, post.mean)  # eps is affine in x0 given x_t
        return x, t, post.mean, eps

    def score(self, x_t: torch.Tensor, t) -> torch.Tensor:
        """grad_x log q_t(x_t) = -E[eps | x_t] / sqrt(1 - ab) (Tweedie), same shape and dtype as x_t."""
        _, t, _, eps = self._expected_x0_eps(x_t, t)
        sigma = (1.0 - self.diffusion.schedule.alpha_bars.to(torch.float64)[t]).sqrt()
        return (-eps / sigma[:, None]).reshape(x_t.shape).to(device=x_t.device, dtype=x_t.dtype)

    def log_density(self, x_t: torch.Tensor, t: int) -> torch.Tensor:
        """log q_t(x_t) [B] (float64) for one integer timestep t (e.g. for density contours)."""
        t = check_int("t", t, 0, self.diffusion.T - 1)
        return self.distribution.marginal_log_prob(x_t.cpu(), float(self.diffusion.schedule.alpha_bars[t]))

    def __call__(self, x_t: torch.Tensor, t) -> torch.Tensor:
        _, t, x0, eps = self._expected_x0_eps(x_t, t)
        if self.diffusion.prediction == "x0":
            output = x0
        elif self.diffusion.prediction == "eps":
            output = eps
        else:  # v is linear in (x0, eps), so E[v | x_t] = v(E[x0 | x_t], E[eps | x_t])
            output = self.diffusion.v_from_x0_eps(x0, eps, t)
        output = output.reshape(x_t.shape).to(device=x_t.device, dtype=x_t.dtype)
        if self.diffusion.variance == "learned_range":
            output = torch.cat([output, -torch.ones_like(output)], dim=1)
        return output


def _target_variance_factor(prediction: Prediction, alpha_bar: torch.Tensor) -> torch.Tensor:
    """Var[target | x_t] / Var[x0 | x_t]: the squared coefficient of x0 in the target given x_t."""
    if prediction == "x0":
        return torch.ones_like(alpha_bar)
    if prediction == "eps":  # eps = (x_t - sqrt(ab) x0) / sqrt(1 - ab)
        return alpha_bar / (1.0 - alpha_bar)
    return 1.0 / (1.0 - alpha_bar)  # v = sqrt(ab)/sqrt(1-ab) x_t - x0 / sqrt(1 - ab)


def loss_floor_curve(distribution, diffusion, ts, n: int, generator: torch.Generator):
    """Minimal achievable "mse" loss at each timestep of ts, by Monte Carlo with n draws per timestep.

    The Bayes-optimal predictor is E[target | x_t]; its expected per-example MSE (mean over dims) is
    E_{x_t}[tr Var(target | x_t)] / D. We draw x0 ~ distribution, eps ~ N(0, I), x_t = q_sample(x0, t, eps)
    and average the exact posterior variance at each x_t (a Rao-Blackwellised estimate of
    E||target - E[target | x_t]||^2 / D: same expectation, smaller variance).

    Returns (means, standard_errors), float64 tensors [len(ts)]; standard error = sample std / sqrt(n).
    """
    n = check_int("n", n, 2)
    check_generator("generator", generator)
    ts = torch.as_tensor(ts)
    if ts.dim() != 1 or ts.numel() < 1 or ts.is_floating_point():
        raise ValueError(f"ts must be a non-empty 1-D sequence of integer timesteps, got {ts.tolist()!r}")
    t = diffusion.check_timesteps(ts.long(), ts).repeat_interleave(n)
    x0 = distribution.sample(t.numel(), generator, dtype=torch.float64)
    noise = torch.randn(x0.shape, generator=generator, dtype=torch.float64)
    x_t = diffusion.q_sample(x0, t, noise)
    alpha_bar = diffusion.schedule.alpha_bars.to(torch.float64)[t]
    post = distribution.posterior(distribution.flatten(x_t, "x_t"), alpha_bar, with_variance=True)
    per_example = post.variance_sum * _target_variance_factor(diffusion.prediction, alpha_bar) / distribution.dim
    per_example = per_example.reshape(ts.numel(), n)
    return per_example.mean(1), per_example.std(1) / math.sqrt(n)

