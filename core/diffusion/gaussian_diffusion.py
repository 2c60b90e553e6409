"""The Gaussian diffusion process: forward noising, its posterior, and the learned reverse step.

Read this next to the papers:
- Ho et al. 2020 (DDPM): q(x_t|x_0) (eq. 4), the posterior q(x_{t-1}|x_t, x_0) (eqs. 6-7), the ε-form
  mean (eq. 11) and the simple loss (eq. 14).
- Nichol & Dhariwal 2021 (Improved DDPM): learned interpolated variances (eq. 15) and the hybrid loss (eq. 16).
  The KL and decoder terms of the bound are free functions in `core.diffusion.losses`.
- Salimans & Ho 2022: the v-parameterization v = √ᾱ·ε − √(1−ᾱ)·x_0.
- Hang et al. 2023 (Min-SNR): the loss weight min(SNR_t, γ) on the x_0 error (eq. 8), optional.
- Karras et al. 2022 (EDM): training noise levels with ln σ ~ N(P_mean, P_std²) (Table 1, p_train) instead of
  t ~ U{1..T}, optional (`lognormal_timestep_probabilities`).

Timesteps are 0-based indices (index t is the paper's step t+1). The model is kept outside: methods take
its output, so the sampling loops in `core.diffusion.samplers` stay readable.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

import torch

from core.checks import check_choice, check_finite_output, check_int
from core.diffusion.losses import discretized_gaussian_log_likelihood, mean_over_data_dims, normal_kl
from core.diffusion.schedules import NoiseSchedule, schedule_from_config

Prediction = Literal["eps", "x0", "v"]  # what the network outputs
VarianceType = Literal["fixed_large", "fixed_small", "learned_range"]  # σ_t² of the reverse step
PREDICTIONS: tuple[Prediction, ...] = get_args(Prediction)
VARIANCES: tuple[VarianceType, ...] = get_args(VarianceType)
# λ of Nichol & Dhariwal's L_hybrid = L_simple + λ·L_vlb, applied here to L_vlb in nats/dim; their code adds L_vlb in
# bits/dim, so this is ln 2 ≈ 0.69× their weight (kept: the shipped learned-variance model was trained with it)
HYBRID_VB_WEIGHT = 0.001


@dataclass
class MeanVariance:
    """The reverse-step Gaussian p_θ(x_{t-1}|x_t) and the predictions it was built from."""

    mean: torch.Tensor
    variance: torch.Tensor
    log_variance: torch.Tensor
    pred_x0: torch.Tensor
    pred_eps: torch.Tensor


class GaussianDiffusion:
    """Forward process, posterior and reverse-step formulas for one schedule and one model type.

    prediction: what the network outputs — "eps" (ε, Ho et al.), "x0" (x_0 directly) or "v" (Salimans & Ho).
    variance:   σ_t² of the reverse step — "fixed_large" (β_t), "fixed_small" (β̃_t) or "learned_range"
                (Nichol & Dhariwal eq. 15: the network outputs extra channels ν (their v, not v-prediction's)
                interpolating log σ² between log β̃_t (ν = −1) and log β_t (ν = +1); ν is not clipped, so values
                outside [−1, 1] extrapolate beyond that range).
    """

    def __init__(self, schedule: NoiseSchedule, prediction: Prediction = "eps", variance: VarianceType = "fixed_large"):
        if not isinstance(schedule, NoiseSchedule):
            raise ValueError("schedule must be a NoiseSchedule (see core.diffusion.schedules.make_schedule), "
                             f"got {type(schedule).__name__}")
        self.schedule = schedule
        self.prediction = check_choice("prediction", prediction, PREDICTIONS)
        self.variance = check_choice("variance", variance, VARIANCES)
        self.T = schedule.T
        s = schedule
        self._arrays = {
            "sqrt_alpha_bars": s.alpha_bars.sqrt(),
            "sqrt_one_minus_alpha_bars": (1.0 - s.alpha_bars).sqrt(),
            "sqrt_recip_alpha_bars": (1.0 / s.alpha_bars).sqrt(),
            "sqrt_recip_alpha_bars_minus_one": (1.0 / s.alpha_bars - 1.0).sqrt(),
            "betas": s.betas,
            "log_betas": s.betas.log(),
            "alpha_bars": s.alpha_bars,
            "posterior_variance": s.posterior_variance,
            "posterior_log_variance_clipped": s.posterior_log_variance_clipped,
            "posterior_mean_coef_x0": s.posterior_mean_coef_x0,
            "posterior_mean_coef_xt": s.posterior_mean_coef_xt,
        }
        self._device_cache: dict = {}  # copies of _arrays per device, so GPU steps don't re-upload them

    # ----------------------------------------------------------------------------------------- config
    def to_config(self) -> dict:
        return {"schedule": self.schedule.to_config(), "prediction": self.prediction, "variance": self.variance}

    @classmethod
    def from_config(cls, config: dict) -> GaussianDiffusion:
        if not isinstance(config, dict) or set(config) != {"schedule", "prediction", "variance"}:
            raise ValueError("a diffusion config must be a dict with exactly 'schedule', 'prediction' and 'variance'")
        return cls(schedule_from_config(config["schedule"]), config["prediction"], config["variance"])

    def out_channels(self, data_channels: int) -> int:
        """Channels the network must output: the prediction, plus as many variance channels if learned."""
        data_channels = check_int("data_channels", data_channels, 1)
        return 2 * data_channels if self.variance == "learned_range" else data_channels

    def respaced(self, kept_timesteps) -> GaussianDiffusion:
        """The same process visiting only `kept_timesteps`, with betas recomputed from ᾱ
        (Nichol & Dhariwal §4). Index i of the result corresponds to original timestep kept_timesteps[i]."""
        return GaussianDiffusion(self.schedule.respaced(kept_timesteps), self.prediction, self.variance)

    # -------------------------------------------------------------------------------------- helpers
    def _extract(self, name: str, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """arrays[name][t] reshaped to broadcast over x ([B] -> [B, 1, 1, ...]) in x's dtype and device."""
        arrays = self._device_cache.get(x.device)
        if arrays is None:
            arrays = {k: v.to(x.device) for k, v in self._arrays.items()}
            self._device_cache[x.device] = arrays
        values = arrays[name][t].to(x.dtype)
        return values.reshape(t.shape[0], *([1] * (x.ndim - 1)))

    def check_timesteps(self, t, x: torch.Tensor) -> torch.Tensor:
        """Validate t at a boundary (a user's t, not a sampler's): an integer tensor [B] with B = x.shape[0]
        and values in 0..T-1. The formulas below do not re-check t."""
        if not isinstance(t, torch.Tensor) or t.dtype not in (torch.int64, torch.int32):
            raise ValueError(f"t must be an integer (Long) tensor of shape [batch], got {t!r}")
        if t.ndim != 1 or t.shape[0] != x.shape[0]:
            raise ValueError(f"t must have shape [{x.shape[0]}] to match the batch of x, got {tuple(t.shape)}")
        if t.numel() and t.device.type == "cpu":  # on an accelerator a range check would wait for the device
            low, high = int(t.min()), int(t.max())
            if low < 0 or high >= self.T:
                raise ValueError(f"t must lie in 0..{self.T - 1} (0-based timestep indices), got values {low}..{high}")
        return t

    def split_model_output(self, model_output: torch.Tensor, x_t: torch.Tensor):
        """(prediction channels, variance channels or None); a shape assertion on the channel count."""
        data_channels = x_t.shape[1]
        expected = 2 * data_channels if self.variance == "learned_range" else data_channels
        if model_output.ndim != x_t.ndim or model_output.shape[0] != x_t.shape[0] or model_output.shape[1] != expected:
            raise ValueError(
                f"model_output must have shape [{x_t.shape[0]}, {expected}, ...] for {data_channels} data channels "
                f"with variance={self.variance!r}; got {tuple(model_output.shape)}")
        if self.variance == "learned_range":
            return model_output[:, :data_channels], model_output[:, data_channels:]
        return model_output, None

    # ------------------------------------------------------------------------------ forward process
    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """x_t = √ᾱ_t·x_0 + √(1−ᾱ_t)·ε, a draw from q(x_t|x_0) (Ho et al. eq. 4)."""
        return self._extract("sqrt_alpha_bars", t, x0) * x0 + self._extract("sqrt_one_minus_alpha_bars", t, x0) * noise

    def q_posterior(self, x0: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor):
        """Mean, variance and clipped log-variance of q(x_{t-1}|x_t, x_0) (Ho et al. eqs. 6-7):
        μ̃_t = √ᾱ_{t-1}·β_t/(1−ᾱ_t)·x_0 + √α_t·(1−ᾱ_{t-1})/(1−ᾱ_t)·x_t,  β̃_t = (1−ᾱ_{t-1})/(1−ᾱ_t)·β_t."""
        mean = self._extract("posterior_mean_coef_x0", t, x_t) * x0 + self._extract("posterior_mean_coef_xt", t, x_t) * x_t
        variance = self._extract("posterior_variance", t, x_t).expand_as(x_t)
        log_variance = self._extract("posterior_log_variance_clipped", t, x_t).expand_as(x_t)
        return mean, variance, log_variance

    # ------------------------------------------------------------------ ε ↔ x_0 ↔ v conversions
    def predict_x0_from_eps(self, x_t, t, eps):
        """x_0 = (x_t − √(1−ᾱ_t)·ε)/√ᾱ_t (eq. 4 solved for x_0)."""
        return self._extract("sqrt_recip_alpha_bars", t, x_t) * x_t - self._extract("sqrt_recip_alpha_bars_minus_one", t, x_t) * eps

    def predict_eps_from_x0(self, x_t, t, x0):
        """ε = (x_t − √ᾱ_t·x_0)/√(1−ᾱ_t)."""
        return (x_t - self._extract("sqrt_alpha_bars", t, x_t) * x0) / self._extract("sqrt_one_minus_alpha_bars", t, x_t)

    def v_from_x0_eps(self, x0, eps, t):
        """v = √ᾱ_t·ε − √(1−ᾱ_t)·x_0 (Salimans & Ho 2022)."""
        return self._extract("sqrt_alpha_bars", t, x0) * eps - self._extract("sqrt_one_minus_alpha_bars", t, x0) * x0

    def predict_x0_from_v(self, x_t, t, v):
        """x_0 = √ᾱ_t·x_t − √(1−ᾱ_t)·v (because (√ᾱ)² + (√(1−ᾱ))² = 1)."""
        return self._extract("sqrt_alpha_bars", t, x_t) * x_t - self._extract("sqrt_one_minus_alpha_bars", t, x_t) * v

    def predict_eps_from_v(self, x_t, t, v):
        """ε = √(1−ᾱ_t)·x_t + √ᾱ_t·v."""
        return self._extract("sqrt_one_minus_alpha_bars", t, x_t) * x_t + self._extract("sqrt_alpha_bars", t, x_t) * v

    def training_target(self, x0, noise, t):
        """What the network regresses onto for this prediction type."""
        if self.prediction == "eps":
            return noise
        if self.prediction == "x0":
            return x0
        return self.v_from_x0_eps(x0, noise, t)

    def pred_x0_eps(self, prediction, x_t, t):
        """(pred_x0, pred_eps) from the prediction channels of the model output."""
        if self.prediction == "eps":
            return self.predict_x0_from_eps(x_t, t, prediction), prediction
        if self.prediction == "x0":
            return prediction, self.predict_eps_from_x0(x_t, t, prediction)
        return self.predict_x0_from_v(x_t, t, prediction), self.predict_eps_from_v(x_t, t, prediction)

    def predictions(self, model_output, x_t, t, clip_x0: bool = False):
        """(x̂_0, ε̂) from a model output (variance channels dropped), whatever the model predicts. clip_x0
        clamps x̂_0 to [-1, 1] and recomputes ε̂ from it, so the pair still reproduces x_t. Every sampler and
        page converts model outputs here, so a network's output that is not finite stops here (NonFiniteOutputError,
        one line for the page) instead of turning into NaN pictures or a traceback further on."""
        check_finite_output("the network's output", model_output, t)
        prediction, _ = self.split_model_output(model_output, x_t)
        pred_x0, pred_eps = self.pred_x0_eps(prediction, x_t, t)
        if clip_x0:
            pred_x0 = pred_x0.clamp(-1.0, 1.0)
            pred_eps = self.predict_eps_from_x0(x_t, t, pred_x0)
        return pred_x0, pred_eps

    # -------------------------------------------------------------------------------- reverse step
    def p_mean_variance(self, model_output, x_t, t, clip_x0: bool = False) -> MeanVariance:
        """p_θ(x_{t-1}|x_t) = N(μ̃_t(x_t, x̂_0), σ_t²): the posterior mean evaluated at the predicted x_0
        (equal to Ho et al.'s ε-form mean (1/√α_t)(x_t − β_t/√(1−ᾱ_t)·ε̂), eq. 11), with σ_t² = β_t
        ("fixed_large"), β̃_t ("fixed_small") or exp(frac·log β_t + (1−frac)·log β̃_t), frac = (ν+1)/2
        ("learned_range", Nichol & Dhariwal eq. 15; ν unclipped). clip_x0 clamps x̂_0 to [-1, 1] first (and ε̂ follows)."""
        pred_x0, pred_eps = self.predictions(model_output, x_t, t, clip_x0)
        mean, _, _ = self.q_posterior(pred_x0, x_t, t)
        if self.variance == "fixed_large":
            log_variance = self._extract("log_betas", t, x_t).expand_as(x_t)
        elif self.variance == "fixed_small":
            log_variance = self._extract("posterior_log_variance_clipped", t, x_t).expand_as(x_t)
        else:
            frac = (model_output[:, x_t.shape[1]:] + 1.0) / 2.0  # the variance channels v
            log_variance = (frac * self._extract("log_betas", t, x_t)
                            + (1.0 - frac) * self._extract("posterior_log_variance_clipped", t, x_t))
        return MeanVariance(mean=mean, variance=torch.exp(log_variance), log_variance=log_variance,
                            pred_x0=pred_x0, pred_eps=pred_eps)

    def p_sample(self, model_output, x_t, t, noise, clip_x0: bool = False) -> tuple[torch.Tensor, MeanVariance]:
        """One reverse step of Ho et al.'s Algorithm 2 (line 4): x_{t-1} = μ_θ(x_t, t) + σ_t·z, z = `noise`,
        with no noise at the last step (index t = 0, the paper's t = 1). Returns (x_{t-1}, the Gaussian
        p_θ(x_{t-1}|x_t) it was drawn from, with the predictions x̂_0 and ε̂)."""
        out = self.p_mean_variance(model_output, x_t, t, clip_x0=clip_x0)
        not_last = (t != 0).to(x_t.dtype).reshape(t.shape[0], *([1] * (x_t.ndim - 1)))
        return out.mean + not_last * torch.exp(0.5 * out.log_variance) * noise, out

    # ------------------------------------------------------------------------------------ losses
    def elbo_term(self, model_output, x0, x_t, t) -> torch.Tensor:
        """The variational bound term L_t per example, in nats per dimension (Ho et al. eq. 5):
        KL(q(x_{t-1}|x_t, x_0) ‖ p_θ(x_{t-1}|x_t)) for t > 0, and the discretized decoder NLL
        −log p_θ(x_0|x_1) at t = 0 (meaningful for 8-bit images scaled to [-1, 1])."""
        true_mean, _, true_log_variance = self.q_posterior(x0, x_t, t)
        out = self.p_mean_variance(model_output, x_t, t)
        kl = mean_over_data_dims(normal_kl(true_mean, true_log_variance, out.mean, out.log_variance))
        decoder_nll = -mean_over_data_dims(discretized_gaussian_log_likelihood(x0, out.mean, out.log_variance))
        return torch.where(t == 0, decoder_nll, kl)

    def prior_kl(self, x0) -> torch.Tensor:
        """KL(q(x_T|x_0) ‖ N(0, I)) per example in nats/dim: the L_T term, which has no parameters."""
        t_last = torch.full((x0.shape[0],), self.T - 1, dtype=torch.long, device=x0.device)
        mean = self._extract("sqrt_alpha_bars", t_last, x0) * x0
        log_variance = torch.log1p(-self._extract("alpha_bars", t_last, x0)).expand_as(x0)
        return mean_over_data_dims(normal_kl(mean, log_variance, torch.zeros_like(x0), torch.zeros_like(x0)))

    def min_snr_weight(self, t: torch.Tensor, gamma: float) -> torch.Tensor:
        """Per-example min-SNR-γ weight of this prediction's mse (Hang et al. 2023, eq. 8: min(SNR_t, γ) times the
        x_0 error, where ‖x_0 error‖² = ‖ε error‖²/SNR = ‖v error‖²/(SNR + 1)): min(SNR, γ)/SNR for ε,
        min(SNR, γ)/(SNR + 1) for v, min(SNR, γ) for x_0."""
        snr = self.schedule.snr.to(t.device, torch.float64)[t]
        per_x0_error = {"eps": snr, "v": snr + 1.0, "x0": torch.ones_like(snr)}[self.prediction]
        return (snr.clamp(max=gamma) / per_x0_error).float()

    def lognormal_timestep_probabilities(self, mean: float, std: float) -> torch.Tensor:
        """P(t) over the T timesteps (float64) when training noise levels follow Karras et al. 2022's p_train,
        ln σ ~ N(mean, std²) (Table 1; they use mean −1.2, std 1.2 for CIFAR-10), with σ_t = √((1 − ᾱ_t)/ᾱ_t) the
        noise-to-signal ratio of x_t (x_t/√ᾱ_t = x_0 + σ_t·ε). A continuous ln σ is rounded to the nearest
        discrete level: P(t) = Φ((u_t − mean)/std) − Φ((u_{t−1} − mean)/std), with u_t the midpoints between
        consecutive ln σ_t (−∞ and +∞ at the ends), so the probabilities sum to 1 for any schedule.
        Uniform t (Ho et al.) spends most steps where x_t is almost pure noise for a linear schedule."""
        log_sigma = 0.5 * torch.log((1.0 - self.schedule.alpha_bars) / self.schedule.alpha_bars)
        inf = torch.tensor([torch.inf], dtype=torch.float64)
        edges = torch.cat([-inf, 0.5 * (log_sigma[1:] + log_sigma[:-1]), inf])
        cdf = torch.special.ndtr((edges - mean) / std)
        return (cdf[1:] - cdf[:-1]).clamp(min=0.0)

    def training_losses(self, model, x0, t=None, noise=None, generator=None, min_snr_gamma: float | None = None,
                        t_probabilities: torch.Tensor | None = None) -> dict:
        """Per-example losses for a batch x0.

        "mse": the simple loss ‖target − prediction‖² averaged over dimensions (Ho et al. eq. 14).
        With learned_range variance also "vb" = T·L_t, the one-sample estimate of L_vlb = Σ_t L_t in
        nats/dim, computed with the predicted mean stop-gradiented so that it trains only the variance,
        and "loss" = mse + 0.001·vb (Nichol & Dhariwal's L_hybrid, eq. 16, with vb in nats rather than their bits: see
        HYBRID_VB_WEIGHT). Otherwise "loss" = mse.
        min_snr_gamma: weight the mse term by `min_snr_weight(t, γ)` in "loss" (not the paper default: None = off).
        t_probabilities: draw t from these probabilities over the T steps (e.g. `lognormal_timestep_probabilities`)
        instead of uniformly (Ho et al.'s Algorithm 1, the default).
        """
        if t is None and t_probabilities is not None:
            t = torch.multinomial(t_probabilities.to(x0.device, torch.float32), x0.shape[0], replacement=True,
                                  generator=generator)
        if t is None:
            t = torch.randint(0, self.T, (x0.shape[0],), generator=generator, device=x0.device)
        if noise is None:
            noise = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
        x_t = self.q_sample(x0, t, noise)
        model_output = model(x_t, t)
        prediction, variance_channels = self.split_model_output(model_output, x_t)
        target = self.training_target(x0, noise, t)
        losses = {"mse": mean_over_data_dims((target.float() - prediction.float()) ** 2)}
        simple = losses["mse"] if min_snr_gamma is None else self.min_snr_weight(t, min_snr_gamma) * losses["mse"]
        if self.variance == "learned_range":
            frozen_output = torch.cat([prediction.detach(), variance_channels], dim=1)
            losses["vb"] = self.T * self.elbo_term(frozen_output.float(), x0.float(), x_t.float(), t)
            losses["loss"] = simple + HYBRID_VB_WEIGHT * losses["vb"]
        else:
            losses["loss"] = simple
        losses["t"] = t
        return losses
