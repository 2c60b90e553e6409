"""The Bayes-optimal x̂₀ = E[x₀ | x_t] when the data distribution is a finite training set.

If x₀ is drawn uniformly from N training examples x₀¹..x₀ᴺ and x_t = √ᾱ x₀ + √(1−ᾱ) ε (Ho et al. 2020, eq. 4),
Bayes' rule gives posterior weights over the examples

    wᵢ(x_t) = softmax_i( −‖x_t − √ᾱ x₀ⁱ‖² / (2(1−ᾱ)) ),        E[x₀ | x_t] = Σᵢ wᵢ x₀ⁱ,

the minimiser of E‖x₀ − x̂₀(x_t)‖² over all functions x̂₀: no network can have a smaller x₀-error on that
distribution. At large t the weights spread over many examples and this x̂₀ is a blur (an average of digits);
an ε-network's x̂₀ = (x_t − √(1−ᾱ) ε̂)/√ᾱ instead multiplies its ε error by √(1/ᾱ − 1) (see `noise_amplification`).

The softmax is evaluated in float64 in log space, in chunks over the training set with a running maximum
(an online logsumexp), so memory is bounded by rows × chunk + rows × D whatever N is.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

from core.checks import check_int

# Upper bound on the float64 elements of one [rows, chunk] logits block (and of one [rows, D] row block).
_BLOCK_ELEMENTS = 1 << 22


class BayesX0(NamedTuple):
    """E[x₀ | x_t] for a batch: `mean` has x_t's shape; `effective_count` [B] = 1/Σwᵢ², how many training
    examples the average effectively mixes (1 = the posterior is sure which example it was)."""

    mean: torch.Tensor
    effective_count: torch.Tensor


def noise_amplification(alpha_bar: float) -> float:
    """√(1/ᾱ − 1): the factor by which an ε-model's ε error enters its x̂₀ = (x_t − √(1−ᾱ) ε̂)/√ᾱ, since
    x̂₀ − x₀ = −√(1−ᾱ)/√ᾱ · (ε̂ − ε)."""
    if not 0.0 < alpha_bar <= 1.0:
        raise ValueError(f"alpha_bar must be in (0, 1], got {alpha_bar}")
    return math.sqrt(1.0 / alpha_bar - 1.0)


def _check_inputs(x_t: torch.Tensor, alpha_bars: torch.Tensor, data: torch.Tensor) -> None:
    if x_t.ndim < 2 or data.ndim < 2 or tuple(x_t.shape[1:]) != tuple(data.shape[1:]):
        raise ValueError(f"x_t [B, *shape] and data [N, *shape] must share the example shape, "
                         f"got {tuple(x_t.shape)} and {tuple(data.shape)}")
    if len(data) == 0:
        raise ValueError("the training set is empty")
    if alpha_bars.shape != (len(x_t),):
        raise ValueError(f"alpha_bars must have one value per x_t ({len(x_t)}), got shape {tuple(alpha_bars.shape)}")
    if not ((alpha_bars > 0) & (alpha_bars < 1)).all():
        raise ValueError("every alpha_bar must lie strictly between 0 and 1")
    for name, tensor in (("x_t", x_t), ("data", data)):
        if not torch.isfinite(tensor).all():
            raise ValueError(f"{name} must contain only finite values")


@torch.no_grad()
def bayes_x0(x_t: torch.Tensor, alpha_bars, data: torch.Tensor, chunk: int | None = None) -> BayesX0:
    """E[x₀ | x_t] under the uniform distribution on `data` [N, *shape], for x_t [B, *shape] with ᾱ per row.

    alpha_bars: one ᾱ (float) for all rows, or a [B] tensor. chunk: training examples per block (default: as
    many as fit in a bounded block). Log-weights use ‖x_t − √ᾱ x₀ⁱ‖² = ‖x_t‖² − 2√ᾱ x_t·x₀ⁱ + ᾱ‖x₀ⁱ‖², where
    ‖x_t‖² is the same for every i and cancels in the softmax.
    """
    x_t = torch.as_tensor(x_t)
    data = torch.as_tensor(data)
    alpha_bars = torch.as_tensor(alpha_bars, dtype=torch.float64)
    if alpha_bars.ndim == 0:
        alpha_bars = alpha_bars.expand(len(x_t)).clone()
    _check_inputs(x_t, alpha_bars, data)
    shape = x_t.shape
    queries = x_t.reshape(len(x_t), -1).to(torch.float64)
    points = data.reshape(len(data), -1).to(torch.float64)
    B, D = queries.shape
    N = len(points)
    rows = max(1, min(B, _BLOCK_ELEMENTS // max(D, 1)))
    if chunk is None:
        chunk = max(1, min(N, _BLOCK_ELEMENTS // rows))
    chunk = check_int("chunk", chunk, 1)
    norms = (points**2).sum(dim=1)  # ‖x₀ⁱ‖² [N]
    mean = torch.empty(B, D, dtype=torch.float64)
    effective = torch.empty(B, dtype=torch.float64)
    for r0 in range(0, B, rows):
        q = queries[r0 : r0 + rows]
        ab = alpha_bars[r0 : r0 + rows].unsqueeze(1)  # [r, 1]
        scale, inv_var = ab.sqrt(), 1.0 / (2.0 * (1.0 - ab))
        running_max = torch.full((len(q), 1), -math.inf, dtype=torch.float64)
        total = torch.zeros(len(q), 1, dtype=torch.float64)  # Σ exp(l − max)
        total_sq = torch.zeros(len(q), 1, dtype=torch.float64)  # Σ exp(2(l − max))
        weighted = torch.zeros(len(q), D, dtype=torch.float64)  # Σ exp(l − max) x₀ⁱ
        for c0 in range(0, N, chunk):
            block = points[c0 : c0 + chunk]
            logits = (2.0 * scale * (q @ block.T) - ab * norms[c0 : c0 + chunk].unsqueeze(0)) * inv_var  # [r, c]
            new_max = torch.maximum(running_max, logits.max(dim=1, keepdim=True).values)
            rescale = torch.exp(running_max - new_max)
            weights = torch.exp(logits - new_max)
            total = total * rescale + weights.sum(dim=1, keepdim=True)
            total_sq = total_sq * rescale**2 + (weights**2).sum(dim=1, keepdim=True)
            weighted = weighted * rescale + weights @ block
            running_max = new_max
        mean[r0 : r0 + rows] = weighted / total
        effective[r0 : r0 + rows] = (total**2 / total_sq).squeeze(1)
    return BayesX0(mean.reshape(shape).to(x_t.dtype if x_t.is_floating_point() else torch.float64), effective)
