"""Schedules against their published definitions, recomputed independently with numpy/math."""

import json
import math

import numpy as np
import pytest
import torch

from core.diffusion.schedules import MAX_T, NoiseSchedule, make_schedule, schedule_from_config


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


@pytest.mark.parametrize("T", [1, 10, 1000])
def test_linear_quadratic_sigmoid_definitions(T):
    b0, b1 = 1e-4, 0.02
    expected = {
        "linear": np.linspace(b0, b1, T),
        "quadratic": np.linspace(math.sqrt(b0), math.sqrt(b1), T) ** 2,
        "sigmoid": _sigmoid(np.linspace(-6, 6, T)) * (b1 - b0) + b0,
    }
    for kind, betas in expected.items():
        schedule = make_schedule(kind, T, b0, b1)
        assert schedule.betas.dtype == torch.float64 and schedule.betas.shape == (T,)
        np.testing.assert_allclose(schedule.betas.numpy(), betas, rtol=1e-12, atol=0)


def test_cosine_matches_nichol_dhariwal_eq17():
    T, s = 1000, 0.008
    f = lambda t: math.cos((t / T + s) / (1 + s) * math.pi / 2) ** 2
    betas = [min(1 - f(t) / f(t - 1), 0.999) for t in range(1, T + 1)]
    schedule = make_schedule("cosine", T)
    np.testing.assert_allclose(schedule.betas.numpy(), betas, rtol=1e-10)
    # where no clipping happened, ᾱ_t is exactly f(t)/f(0)
    alpha_bars = np.array([f(t) / f(0) for t in range(1, T + 1)])
    np.testing.assert_allclose(schedule.alpha_bars.numpy()[:-1], alpha_bars[:-1], rtol=1e-9)
    assert schedule.betas[-1] == pytest.approx(0.999)


@pytest.mark.parametrize("kind", ["linear", "quadratic", "sigmoid", "cosine"])
def test_monotonicity_and_derived_arrays(kind):
    schedule = make_schedule(kind, 200)
    assert bool((schedule.betas[1:] >= schedule.betas[:-1]).all())
    assert bool((schedule.alpha_bars[1:] < schedule.alpha_bars[:-1]).all())
    assert schedule.alpha_bars_prev[0] == 1.0
    torch.testing.assert_close(schedule.alpha_bars_prev[1:], schedule.alpha_bars[:-1])
    b, ab = schedule.betas.numpy(), schedule.alpha_bars.numpy()
    abp = np.concatenate([[1.0], ab[:-1]])
    for t in [0, 1, 57, 199]:
        assert schedule.alphas[t] == pytest.approx(1 - b[t], rel=1e-14)
        assert schedule.alpha_bars[t] == pytest.approx(np.prod(1 - b[: t + 1]), rel=1e-12)
        assert schedule.posterior_variance[t] == pytest.approx(b[t] * (1 - abp[t]) / (1 - ab[t]), rel=1e-12, abs=0)
        assert schedule.snr[t] == pytest.approx(ab[t] / (1 - ab[t]), rel=1e-12)
    assert schedule.posterior_variance[0] == 0.0
    assert schedule.posterior_log_variance_clipped[0] == pytest.approx(math.log(schedule.posterior_variance[1]))
    assert schedule.posterior_log_variance_clipped[5] == pytest.approx(math.log(schedule.posterior_variance[5]))


def test_scale_with_T_rule():
    scaled = make_schedule("linear", 100, 1e-4, 0.02, scale_with_T=True)
    assert scaled.betas[0] == pytest.approx(1e-3) and scaled.betas[-1] == pytest.approx(0.2)
    unscaled_1000 = make_schedule("linear", 1000, 1e-4, 0.02, scale_with_T=True)
    torch.testing.assert_close(unscaled_1000.betas, make_schedule("linear", 1000).betas)
    # the point of the rule: with T = 100 the unscaled schedule leaves a lot of signal in x_T, the scaled one doesn't
    plain = make_schedule("linear", 100)
    assert plain.terminal_signal > 0.5 and scaled.terminal_signal < 0.01
    assert plain.terminal_snr == pytest.approx(float(plain.alpha_bars[-1] / (1 - plain.alpha_bars[-1])))
    # cosine ignores the beta range entirely
    torch.testing.assert_close(make_schedule("cosine", 100, scale_with_T=True).betas, make_schedule("cosine", 100).betas)


def test_config_round_trip_through_json():
    for schedule in [make_schedule("sigmoid", 50, 2e-4, 0.03, scale_with_T=True), make_schedule("cosine", 30),
                     make_schedule("linear", 1000).respaced([0, 10, 500, 999])]:
        rebuilt = schedule_from_config(json.loads(json.dumps(schedule.to_config())))
        assert rebuilt.kind == schedule.kind and rebuilt.T == schedule.T
        torch.testing.assert_close(rebuilt.betas, schedule.betas, rtol=1e-15, atol=0)


def test_respaced_keeps_alpha_bars():
    schedule = make_schedule("linear", 1000)
    kept = [0, 99, 199, 999]
    respaced = schedule.respaced(kept)
    torch.testing.assert_close(respaced.alpha_bars, schedule.alpha_bars[kept], rtol=1e-12, atol=0)
    ab = schedule.alpha_bars.numpy()
    assert respaced.betas[0] == pytest.approx(1 - ab[0])
    assert respaced.betas[2] == pytest.approx(1 - ab[199] / ab[99])


@pytest.mark.parametrize("kwargs, words", [
    (dict(kind="linear", T=0), ["T", "0"]),
    (dict(kind="linear", T=MAX_T + 1), ["T", str(MAX_T + 1)]),
    (dict(kind="linear", T=10.5), ["T", "10.5"]),
    (dict(kind="linear", T=100, beta_start=0.0), ["beta_start", "0.0", "(0.0, 1.0)"]),
    (dict(kind="linear", T=100, beta_end=1.5), ["beta_end", "1.5"]),
    (dict(kind="linear", T=100, beta_start=0.1, beta_end=0.01), ["beta_start", "0.1", "beta_end"]),
    (dict(kind="exponential", T=100), ["kind", "exponential", "linear", "cosine"]),
    (dict(kind="linear", T=10, beta_end=0.02, scale_with_T=True), ["scale_with_T", "T=10"]),
    (dict(kind="linear", T=10, scale_with_T="yes"), ["scale_with_T", "yes"]),
])
def test_bad_input_messages(kwargs, words):
    with pytest.raises(ValueError) as info:
        make_schedule(**kwargs)
    for word in words:
        assert word in str(info.value)


def test_bad_configs_and_betas():
    with pytest.raises(ValueError, match="unknown schedule config"):
        schedule_from_config({"kind": "linear", "T": 10, "evil": 1})
    with pytest.raises(ValueError, match="betas"):
        schedule_from_config({"kind": "custom", "betas": "nope"})
    with pytest.raises(ValueError, match="between 0 and 1"):
        NoiseSchedule.from_betas(torch.tensor([0.1, 1.2]))
    with pytest.raises(ValueError, match="distinct"):
        make_schedule("linear", 10).respaced([3, 3])
