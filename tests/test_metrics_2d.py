"""Tests for the 2-D metrics of core/metrics/points.py (MMD^2 and sliced Wasserstein) against closed forms,
brute-force sums and independent 1-D Wasserstein formulas."""

import math

import pytest
import torch

from core.metrics.points import median_bandwidth, mmd_rbf, sliced_wasserstein


def gen(seed):
    return torch.Generator().manual_seed(seed)


def gaussian(n, seed, shift=(0.0, 0.0)):
    return torch.randn(n, len(shift), generator=gen(seed)) + torch.tensor(shift)


# ------------------------------------------------------------------------------------------ MMD
def brute_force_mmd(x, y, bandwidths):
    """Gretton et al.'s unbiased MMD^2_u with explicit double loops over pairs."""
    x, y = x.double(), y.double()
    def k(a, b):
        return sum(math.exp(-float(((a - b) ** 2).sum()) / (2 * h * h)) for h in bandwidths) / len(bandwidths)
    n, m = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(n) for j in range(m)) / (n * m)
    return xx + yy - 2 * xy


def test_mmd_matches_brute_force_sum():
    x, y = gaussian(7, 0), gaussian(9, 1, (0.5, -0.2))
    for bandwidths in ([0.7], [0.3, 1.0, 2.5]):
        assert mmd_rbf(x, y, bandwidths) == pytest.approx(brute_force_mmd(x, y, bandwidths), rel=1e-10, abs=1e-12)
    h = median_bandwidth(x, y)
    assert mmd_rbf(x, y) == pytest.approx(brute_force_mmd(x, y, [0.5 * h, h, 2 * h]), rel=1e-10)


def test_mmd_matches_population_value_for_shifted_gaussians():
    """For N(0, I_2) vs N(d, I_2) and bandwidth h: MMD^2 = 2 r (1 - exp(-|d|^2 / (2(h^2 + 2)))), r = h^2 / (h^2 + 2)."""
    bandwidths = [0.5, 1.0, 2.0]
    d = 1.0
    expected = sum(2 * h * h / (h * h + 2) * (1 - math.exp(-d * d / (2 * (h * h + 2)))) for h in bandwidths) / 3
    value = mmd_rbf(gaussian(2000, 2), gaussian(2000, 3, (0.6, 0.8)), bandwidths)
    assert value == pytest.approx(expected, abs=0.025)  # ~4 standard deviations of the estimator at n = 2000
    assert expected == pytest.approx(0.0844, abs=1e-3)


def test_mmd_is_near_zero_for_the_same_distribution():
    x, y = gaussian(1500, 4), gaussian(1500, 5)
    assert abs(mmd_rbf(x, y)) < 2e-3  # the null spread at n = 1500 is ~3e-4
    assert abs(mmd_rbf(x, x)) < 2 / len(x)  # a set against itself: only the O(1/n) diagonal terms remain


def test_mmd_grows_with_the_shift():
    x, y = gaussian(800, 6), gaussian(800, 7)
    for bandwidths in (None, [0.5, 1.0, 2.0]):
        values = [mmd_rbf(x, y + torch.tensor([s, 0.0]), bandwidths) for s in (0.0, 0.25, 0.5, 1.0, 2.0, 4.0)]
        assert all(a < b for a, b in zip(values, values[1:])), values


def test_median_bandwidth_of_standard_gaussians():
    """The distance between two N(0, I_2) points is Rayleigh with scale sqrt(2): median 2 sqrt(ln 2)."""
    assert median_bandwidth(gaussian(1000, 8), gaussian(1000, 9)) == pytest.approx(2 * math.sqrt(math.log(2)), rel=0.03)


# ------------------------------------------------------------------------------ sliced Wasserstein
def w1_by_cdfs(a, b):
    """1-D W1 = integral of |F_a(z) - F_b(z)| dz for two empirical measures (a different formula from quantiles)."""
    z = torch.cat([a, b]).double().sort().values
    f_a = torch.searchsorted(a.double().sort().values, z[:-1], right=True).double() / len(a)
    f_b = torch.searchsorted(b.double().sort().values, z[:-1], right=True).double() / len(b)
    return float(((f_a - f_b).abs() * (z[1:] - z[:-1])).sum())


def test_sliced_wasserstein_of_a_set_with_itself_is_zero():
    x = gaussian(500, 10)
    assert sliced_wasserstein(x, x, generator=gen(0)) == 0.0
    # the same empirical measure with every point twice (unequal sizes)
    assert sliced_wasserstein(x, torch.cat([x, x]), generator=gen(0)) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("p, constant", [(1, 2 / math.pi), (2, 1 / math.sqrt(2))])
def test_sliced_wasserstein_of_an_exact_shift(p, constant):
    """y = x + d: each projection is shifted by <theta, d>, so SW_1 = E|cos| |d| = (2/pi)|d|, SW_2 = |d|/sqrt(2)."""
    x = gaussian(1000, 11)
    d = torch.tensor([0.9, 1.2])  # |d| = 1.5
    value = sliced_wasserstein(x, x + d, n_projections=4000, generator=gen(1), p=p)
    assert value == pytest.approx(constant * 1.5, rel=0.03)  # Monte Carlo over 4000 directions: ~4 standard errors


def test_sliced_wasserstein_of_independent_shifted_gaussians():
    value = sliced_wasserstein(gaussian(4000, 12), gaussian(4000, 13, (0.9, 1.2)), n_projections=1000, generator=gen(2))
    # plus the small positive finite-sample bias of W1 between two independent samples (~0.02 here)
    assert 2 / math.pi * 1.5 - 0.03 < value < 2 / math.pi * 1.5 + 0.06


def test_sliced_wasserstein_in_1d_is_the_wasserstein_distance():
    x, y = gaussian(37, 14, (0.0,)), gaussian(53, 15, (0.4,)) * 2.0
    expected = w1_by_cdfs(x[:, 0], y[:, 0])  # unequal sizes, against the CDF formula
    assert sliced_wasserstein(x, y, n_projections=3, generator=gen(3)) == pytest.approx(expected, rel=1e-10)
    hand = sliced_wasserstein(torch.tensor([[0.0], [1.0]]), torch.tensor([[0.0], [0.5], [1.0]]), generator=gen(4))
    assert hand == pytest.approx(1 / 6, rel=1e-12)  # quantiles differ by 0.5 on u in (1/3, 2/3)
    shift = sliced_wasserstein(x, x + 0.75, generator=gen(5))
    assert shift == pytest.approx(0.75, rel=1e-6)


@pytest.mark.parametrize("p", [1, 2, 3])
def test_unequal_sizes_match_replicated_equal_sizes(p):
    """n vs m points equals the equal-size problem with every x repeated m times and every y n times."""
    x, y = gaussian(6, 16), gaussian(4, 17, (0.5, 0.0))
    unequal = sliced_wasserstein(x, y, n_projections=50, generator=gen(6), p=p)
    replicated = sliced_wasserstein(x.repeat(4, 1), y.repeat(6, 1), n_projections=50, generator=gen(6), p=p)
    assert unequal == pytest.approx(replicated, rel=1e-10)


def test_sliced_wasserstein_generator_reproducibility():
    x, y = gaussian(300, 18), gaussian(300, 19, (0.3, 0.0))
    first = sliced_wasserstein(x, y, n_projections=20, generator=gen(7))
    assert sliced_wasserstein(x, y, n_projections=20, generator=gen(7)) == first
    assert sliced_wasserstein(x, y, n_projections=20, generator=gen(8)) != first
    assert sliced_wasserstein(x, y, n_projections=20) == sliced_wasserstein(x, y, n_projections=20, generator=gen(0))


# -------------------------------------------------------------------------------------- validation
@pytest.mark.parametrize("call, message", [
    (lambda: mmd_rbf(torch.zeros(5, 2), torch.zeros(5, 3)), "same dimension"),
    (lambda: mmd_rbf(torch.zeros(1, 2), torch.zeros(5, 2)), r"N >= 2"),
    (lambda: mmd_rbf(torch.zeros(5), torch.zeros(5, 2)), r"shape \[N, D\]"),
    (lambda: mmd_rbf([[0.0, 1.0]] * 3, torch.zeros(5, 2)), "torch.Tensor"),
    (lambda: mmd_rbf(torch.full((5, 2), float("nan")), torch.zeros(5, 2)), "finite"),
    (lambda: mmd_rbf(torch.randn(5, 2), torch.randn(5, 2), bandwidths=[1.0, -1.0]), "bandwidths"),
    (lambda: mmd_rbf(torch.randn(5, 2), torch.randn(5, 2), bandwidths=[]), "bandwidths"),
    (lambda: mmd_rbf(torch.zeros(5, 2), torch.zeros(5, 2)), "median pairwise distance is 0"),
    (lambda: sliced_wasserstein(torch.zeros(5, 2), torch.zeros(5, 3)), "same dimension"),
    (lambda: sliced_wasserstein(torch.zeros(5, 2), torch.zeros(5, 2), n_projections=0), "n_projections"),
    (lambda: sliced_wasserstein(torch.zeros(5, 2), torch.zeros(5, 2), p=0.5), "p=0.5 is not allowed"),
    (lambda: sliced_wasserstein(torch.zeros(5, 2), torch.zeros(5, 2), generator=0), "generator"),
])
def test_bad_inputs_raise_value_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call()
