"""The pieces of the variational bound: Gaussian KL divergences and the discretized decoder likelihood.

Ho et al. 2020 write the bound as L = L_T + Σ_{t>1} L_{t-1} + L_0 (eq. 5): every L_{t-1} is a KL divergence
between two Gaussians, q(x_{t-1}|x_t, x_0) and p_θ(x_{t-1}|x_t), which has a closed form (`normal_kl`), and
L_0 = −log p_θ(x_0|x_1) is a Gaussian integrated over each pixel's 8-bit bin (eq. 13,
`discretized_gaussian_log_likelihood`). Nichol & Dhariwal 2021 (§2, eqs. 4-5) use the same terms for L_vlb
and (§3.1) add λ·L_vlb to the simple loss. Everything is element-wise in nats; `mean_over_data_dims`
averages per example (nats per dimension, the unit the Trainer and the pages report).
"""

from __future__ import annotations

import math

import torch

PIXEL_BIN_HALF_WIDTH = 1.0 / 255  # 8-bit data scaled to [-1, 1]: bins of width 2/255 around each level


def normal_kl(mean1, log_var1, mean2, log_var2):
    """KL(N(mean1, e^log_var1) ‖ N(mean2, e^log_var2)) element-wise, in nats:
    ½·(log σ₂² − log σ₁² + σ₁²/σ₂² + (μ₁ − μ₂)²/σ₂² − 1). Each L_{t-1} of Ho et al. eq. 5."""
    return 0.5 * (log_var2 - log_var1 + torch.exp(log_var1 - log_var2)
                  + (mean1 - mean2) ** 2 * torch.exp(-log_var2) - 1.0)


def standard_normal_cdf(x):
    """Φ(x) = ½·(1 + erf(x/√2)), exact (improved-diffusion uses a tanh approximation here)."""
    return 0.5 * (1.0 + torch.erf(x / math.sqrt(2.0)))


def discretized_gaussian_log_likelihood(x0, mean, log_variance):
    """log p(x_0) for 8-bit data in [-1, 1] under N(mean, σ²) integrated over each value's bin
    [x_0 − 1/255, x_0 + 1/255], with the edge bins extended to −∞ and +∞ (Ho et al. 2020 eq. 13, the decoder
    L_0; Nichol & Dhariwal 2021 §2). Element-wise; the probabilities of the 256 bins sum to 1."""
    centered = x0 - mean
    inv_std = torch.exp(-0.5 * log_variance)
    cdf_plus = standard_normal_cdf(inv_std * (centered + PIXEL_BIN_HALF_WIDTH))
    cdf_minus = standard_normal_cdf(inv_std * (centered - PIXEL_BIN_HALF_WIDTH))
    log_cdf_plus = torch.log(cdf_plus.clamp(min=1e-12))
    log_one_minus_cdf_minus = torch.log((1.0 - cdf_minus).clamp(min=1e-12))
    log_bin = torch.log((cdf_plus - cdf_minus).clamp(min=1e-12))
    return torch.where(x0 < -0.999, log_cdf_plus, torch.where(x0 > 0.999, log_one_minus_cdf_minus, log_bin))


def mean_over_data_dims(x):
    """[B, ...] -> [B]: the mean over every dimension but the batch (losses in nats per dimension)."""
    return x.reshape(x.shape[0], -1).mean(dim=1)
