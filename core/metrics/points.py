"""Sample-quality metrics.

2-D / point clouds: mmd_rbf (kernel two-sample statistic) and sliced_wasserstein. Both compare two
sets of samples x [N, D] and y [M, D] and are 0 in expectation when they come from the same distribution.
sample_quality is the one "MMD² and sliced W₁ against reference data" that the Sample page, the 2-D playground
and bench/quality.py report: fixed kernel widths from the reference (reference_bandwidths) and fixed projections.
"""

from __future__ import annotations

import torch

from core.checks import check_generator, check_int, check_number
from core.rng import seeded_generator

# Upper bound on the number of elements of one [rows, M] block of pairwise distances.
_BLOCK_ELEMENTS = 1 << 22
# The median heuristic looks at most at this many points of each set (the first ones).
_MEDIAN_POINTS = 1000
DEFAULT_BANDWIDTH_MULTIPLIERS = (0.5, 1.0, 2.0)


def _as_point_sets(x, y) -> tuple[torch.Tensor, torch.Tensor]:
    """(x, y) as float64 [N, D] and [M, D] with N, M >= 2, the same D and finite values (anything else is refused)."""
    for name, value in (("x", x), ("y", y)):
        if not isinstance(value, torch.Tensor) or not value.is_floating_point():
            raise ValueError(f"{name} must be a floating-point torch.Tensor of shape [N, D]")
        if value.dim() != 2 or value.shape[0] < 2 or value.shape[1] < 1:
            raise ValueError(f"{name} must have shape [N, D] with N >= 2, got {list(value.shape)}")
        if not bool(torch.isfinite(value).all()):
            raise ValueError(f"{name} must contain only finite values")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"x and y must have the same dimension D, got {x.shape[1]} and {y.shape[1]}")
    return x.detach().to(torch.float64), y.detach().to(torch.float64)


def _squared_distances(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return ((a * a).sum(1)[:, None] - 2.0 * a @ b.T + (b * b).sum(1)[None, :]).clamp_min(0.0)


def median_bandwidth(x: torch.Tensor, y: torch.Tensor) -> float:
    """Median pairwise Euclidean distance of the pooled samples (first 1000 points of each set)."""
    x, y = _as_point_sets(x, y)
    pooled = torch.cat([x[:_MEDIAN_POINTS], y[:_MEDIAN_POINTS]])
    distances = _squared_distances(pooled, pooled).sqrt()
    off_diagonal = distances[~torch.eye(len(pooled), dtype=torch.bool)]
    return float(off_diagonal.median())


def _kernel_sum(a: torch.Tensor, b: torch.Tensor, bandwidths: torch.Tensor, exclude_diagonal: bool) -> float:
    """sum_{i, j} k(a_i, b_j) (i != j if exclude_diagonal, for a is b) with k = mean over bandwidths of RBFs."""
    rows = max(1, _BLOCK_ELEMENTS // (b.shape[0] * len(bandwidths)))
    total = 0.0
    for start in range(0, a.shape[0], rows):
        sq = _squared_distances(a[start : start + rows], b)
        kernel = torch.exp(-sq[None] / (2.0 * bandwidths[:, None, None] ** 2)).mean(0)
        total += float(kernel.sum())
    if exclude_diagonal:
        total -= a.shape[0]  # k(a_i, a_i) = 1 for every RBF
    return total


def mmd_rbf(x: torch.Tensor, y: torch.Tensor, bandwidths=None) -> float:
    """Unbiased estimate of MMD^2 (Gretton et al. 2012, eq. 3) with an RBF kernel.

    k(a, b) = mean over h in bandwidths of exp(-||a - b||^2 / (2 h^2)).
    MMD^2_u = 1/(n(n-1)) sum_{i!=j} k(x_i, x_j) + 1/(m(m-1)) sum_{i!=j} k(y_i, y_j) - 2/(nm) sum_{i,j} k(x_i, y_j).
    It is unbiased, so it fluctuates around 0 (and can be slightly negative) when x and y come from the
    same distribution. Default bandwidths: the median heuristic h_med = median pairwise distance of
    the pooled samples (first 1000 points of each), times (0.5, 1, 2). Pass fixed bandwidths to compare
    values across runs. Computed in float64, in blocks (memory O(block), time O((n + m)^2 D)).
    """
    x, y = _as_point_sets(x, y)
    if bandwidths is None:
        h_med = median_bandwidth(x, y)
        if h_med <= 0:
            raise ValueError("the median pairwise distance is 0 (samples are mostly identical); pass bandwidths")
        bandwidths = [h_med * m for m in DEFAULT_BANDWIDTH_MULTIPLIERS]
    bandwidths = torch.as_tensor(bandwidths, dtype=torch.float64).reshape(-1)
    if bandwidths.numel() < 1 or not bool(torch.isfinite(bandwidths).all()) or not bool((bandwidths > 0).all()):
        raise ValueError(f"bandwidths must be a non-empty list of finite values > 0, got {bandwidths.tolist()}")
    n, m = x.shape[0], y.shape[0]
    k_xx = _kernel_sum(x, x, bandwidths, exclude_diagonal=True) / (n * (n - 1))
    k_yy = _kernel_sum(y, y, bandwidths, exclude_diagonal=True) / (m * (m - 1))
    k_xy = _kernel_sum(x, y, bandwidths, exclude_diagonal=False) / (n * m)
    return k_xx + k_yy - 2.0 * k_xy


def _wasserstein_1d_power(x_sorted: torch.Tensor, y_sorted: torch.Tensor, p: float) -> torch.Tensor:
    """W_p^p between the empirical measures of sorted rows x [P, n] and y [P, m] (one value per row).

    W_p^p = int_0^1 |F^-1(u) - G^-1(u)|^p du with the empirical quantile functions, which are piecewise
    constant with jumps at i/n and j/m: we integrate exactly over the merged breakpoints. For n = m this
    is the usual mean of |x_(i) - y_(i)|^p over matched order statistics.
    """
    n, m = x_sorted.shape[1], y_sorted.shape[1]
    breaks = torch.cat([torch.arange(1, n + 1, dtype=torch.float64) / n, torch.arange(1, m + 1, dtype=torch.float64) / m])
    breaks = torch.unique(torch.cat([torch.zeros(1, dtype=torch.float64), breaks]))  # sorted, from 0 to 1
    widths = breaks[1:] - breaks[:-1]
    midpoints = 0.5 * (breaks[1:] + breaks[:-1])
    x_index = (midpoints * n).floor().long().clamp_max(n - 1)  # F^-1(u) = x_(ceil(u n)) (1-based)
    y_index = (midpoints * m).floor().long().clamp_max(m - 1)
    gaps = (x_sorted[:, x_index] - y_sorted[:, y_index]).abs() ** p
    return (gaps * widths).sum(1)


def sliced_wasserstein(x: torch.Tensor, y: torch.Tensor, n_projections: int = 128, generator=None, p: float = 1.0) -> float:
    """Monte Carlo sliced Wasserstein distance SW_p = (E_theta W_p^p(<theta, x>, <theta, y>))^(1/p).

    theta is uniform on the unit sphere (n_projections random directions drawn with generator; None
    means a fresh torch.Generator seeded with 0, so the value is reproducible). Each 1-D W_p is exact for
    the two empirical measures: equal sizes match sorted projections one to one; unequal sizes integrate
    the difference of the two empirical quantile functions over [0, 1] (no subsampling).
    For a pure shift y = x + d in 2-D, SW_1 = E|<theta, d>| = (2 / pi) |d| and SW_2 = |d| / sqrt(2).
    """
    x, y = _as_point_sets(x, y)
    n_projections = check_int("n_projections", n_projections, 1)
    p = check_number("p", p, 1.0)
    generator = check_generator("generator", generator, optional=True) or seeded_generator(0)
    directions = torch.randn(n_projections, x.shape[1], generator=generator, dtype=torch.float64)
    directions = directions / directions.norm(dim=1, keepdim=True)
    x_proj = (x @ directions.T).T.sort(dim=1).values  # [P, n]
    y_proj = (y @ directions.T).T.sort(dim=1).values  # [P, m]
    return float(_wasserstein_1d_power(x_proj, y_proj, float(p)).mean() ** (1.0 / p))


SW_PROJECTIONS = 256  # sample_quality's projections, drawn from seed 0: every sample set is projected on the same ones


def reference_bandwidths(reference: torch.Tensor) -> list[float]:
    """Fixed RBF bandwidths for mmd_rbf: the median pairwise distance within the reference data (its first half
    against its second) times (0.5, 1, 2), so that MMD² values of different sample sets use the same kernel."""
    reference = torch.as_tensor(reference)
    half = reference.shape[0] // 2
    if half < 2:
        raise ValueError(f"reference must hold at least 4 points, got {reference.shape[0]}")
    median = median_bandwidth(reference[:half], reference[half:])
    return [median * m for m in DEFAULT_BANDWIDTH_MULTIPLIERS]


def sample_quality(samples: torch.Tensor, reference: torch.Tensor, bandwidths=None) -> dict:
    """{"mmd2": MMD² (RBF, unbiased; mmd_rbf), "sw1": sliced Wasserstein-1 (sliced_wasserstein, SW_PROJECTIONS
    directions from seed 0)} of samples against reference data. bandwidths: None = reference_bandwidths(reference);
    pass them to score many sample sets with one kernel without recomputing it."""
    bandwidths = reference_bandwidths(reference) if bandwidths is None else bandwidths
    return {"mmd2": mmd_rbf(samples, reference, bandwidths),
            "sw1": sliced_wasserstein(samples, reference, SW_PROJECTIONS, generator=seeded_generator(0))}
