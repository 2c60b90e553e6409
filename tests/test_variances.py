"""core.lab.variances: v at both ends, the error identities, the best σ², β/β̃ ratios, DDIM's σ, quality runs."""

import math

import pytest
import torch
from helpers import TINY_UNET

from core.diffusion.gaussian_diffusion import GaussianDiffusion
from core.diffusion.losses import normal_kl
from core.diffusion.schedules import make_schedule
from core.lab.variances import (
    beta_ratio,
    beta_ratio_reach,
    ddim_sigma_squared,
    ddim_step_table,
    learned_variance_outputs,
    optimal_variance,
    prediction_errors,
    quality_run,
    quality_vs_steps,
    v_similarity,
    x0_error_curve,
)
from core.nets.build import build_model


def test_v_is_eps_at_small_t_and_minus_x0_at_large_t():
    schedule = make_schedule("linear", 1000)
    generator = torch.Generator().manual_seed(0)
    x0, noise = torch.rand(1, 64, generator=generator) * 2 - 1, torch.randn(1, 64, generator=generator)
    similarity = v_similarity(schedule, x0, noise)
    assert float(similarity["eps"][0]) > 0.999 and float(similarity["minus_x0"][-1]) > 0.999
    assert float(similarity["eps"][-1]) < 0.2


@pytest.mark.parametrize("prediction", ["eps", "x0", "v"])
def test_error_identities_for_any_prediction(prediction):
    diffusion = GaussianDiffusion(make_schedule("linear", 200), prediction)
    generator = torch.Generator().manual_seed(1)
    x0 = torch.rand(3, 8, generator=generator, dtype=torch.float64) * 2 - 1
    noise = torch.randn(x0.shape, generator=generator, dtype=torch.float64)

    def model(x, t):
        return 0.7 * x + 0.1
    for t in (0, 60, 199):
        e = prediction_errors(model, diffusion, x0, t, noise)
        assert e.v == pytest.approx(e.eps / e.alpha_bar, rel=1e-9)
        assert e.x0 == pytest.approx(e.eps * (1 - e.alpha_bar) / e.alpha_bar, rel=1e-9)
        assert e.v == pytest.approx(e.x0 / (1 - e.alpha_bar), rel=1e-9)


def test_optimal_variance_minimises_the_expected_kl():
    """Grid search over σ² of the mean KL(q(x_{t-1}|x_t, x_0) ‖ N(μ̃(x̂_0), σ²)) over x̂_0 errors."""
    schedule = make_schedule("linear", 100, scale_with_T=True)
    t = 40
    errors = torch.randn(20_000, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 0.3
    error2 = float((errors**2).mean())
    c = float(schedule.posterior_mean_coef_x0[t])
    beta_tilde = float(schedule.posterior_variance[t])
    grid = torch.linspace(0.5 * beta_tilde, 3 * beta_tilde + 3 * c * c * error2, 4001, dtype=torch.float64)
    kls = torch.stack([normal_kl(torch.zeros(()), torch.tensor(beta_tilde).log(), c * errors, s.log()).mean() for s in grid])
    best = float(grid[kls.argmin()])
    formula = float(optimal_variance(schedule, torch.full((100,), error2, dtype=torch.float64))[t])
    assert formula == pytest.approx(beta_tilde + c * c * error2, rel=1e-12)
    assert best == pytest.approx(formula, rel=2e-3)


def test_beta_ratio_by_hand_and_with_few_steps():
    betas = [1e-4 + (0.02 - 1e-4) * i / 999 for i in range(1000)]
    bars, p = [], 1.0
    for b in betas:
        p *= 1 - b
        bars.append(p)
    ratio = beta_ratio(1000)
    assert float(ratio[0]) == pytest.approx((1 - bars[1]) / (1 - bars[0]), rel=1e-9)
    assert float(ratio[-1]) == pytest.approx((1 - bars[999]) / (1 - bars[998]), rel=1e-9)
    ten = beta_ratio(10)  # leading steps 0, 100, ..., 900
    assert float(ten[0]) == pytest.approx((1 - bars[100]) / (1 - bars[0]), rel=1e-9)
    assert float(ten[4]) > 1.1 > float(ratio[100:].max())
    many, few = beta_ratio_reach(1000), beta_ratio_reach(10)
    assert few["count"] / few["of"] > 10 * many["count"] / many["of"]
    assert many["count"] == int(sum(1 for k in range(1, 1000) if (1 - bars[k]) / (1 - bars[k - 1]) > 1.1))
    assert few["lowest_alpha_bar"] < 0.9 < many["lowest_alpha_bar"]


def test_ddim_sigma_at_eta_one_is_the_respaced_beta_tilde():
    schedule = make_schedule("linear", 1000)
    kept = [0, 250, 500, 750]
    respaced = schedule.respaced(kept)
    for i in (1, 2, 3):
        ab, ab_prev = float(schedule.alpha_bars[kept[i]]), float(schedule.alpha_bars[kept[i - 1]])
        assert ddim_sigma_squared(ab, ab_prev, 1.0) == pytest.approx(float(respaced.posterior_variance[i]), rel=1e-9)
        assert ddim_sigma_squared(ab, ab_prev, 0.0) == 0.0
    with pytest.raises(ValueError, match="eta"):
        ddim_sigma_squared(0.3, 0.5, -1)


def test_quality_vs_steps_rows_and_bounds():
    diffusion = GaussianDiffusion(make_schedule("linear", 30, scale_with_T=True), "eps", "learned_range")
    torch.manual_seed(0)
    model = build_model({**TINY_UNET, "out_channels": 2}).eval()
    calls = []
    rows = quality_vs_steps(model, diffusion, [2, 5], ["ddpm_beta", "ddim_eta0"], (1, 28, 28), 3, 0,
                            progress=lambda done, total: calls.append((done, total)),
                            quality=lambda samples: {"shape": tuple(samples.shape)})
    assert [(r["sampler"], r["steps"]) for r in rows] == [("DDPM, σ² = β", 2), ("DDPM, σ² = β", 5),
                                                         ("DDIM, η = 0", 2), ("DDIM, η = 0", 5)]
    assert all(r["shape"] == (3, 1, 28, 28) and r["seconds"] > 0 for r in rows)
    assert calls[-1] == (4, 4)
    with pytest.raises(ValueError, match="n="):
        quality_vs_steps(model, diffusion, [2], ["ddim_eta0"], (1, 28, 28), 10_000, 0)
    with pytest.raises(ValueError, match="sampler"):
        quality_vs_steps(model, diffusion, [2], ["euler"], (1, 28, 28), 3, 0)
    steps_seen = []
    row = quality_run(model, diffusion, "ddim_eta1", 4, (1, 28, 28), 2, 0, progress=lambda i, n: steps_seen.append((i, n)))
    assert steps_seen == [(1, 4), (2, 4), (3, 4), (4, 4)] and row["sampler"] == "DDIM, η = 1"
    # the same seed gives the same samples: a second run's quality function sees identical tensors
    first, second = [], []
    quality_run(model, diffusion, "ddpm_beta_tilde", 3, (1, 28, 28), 2, 7, quality=lambda x: first.append(x) or {})
    quality_run(model, diffusion, "ddpm_beta_tilde", 3, (1, 28, 28), 2, 7, quality=lambda x: second.append(x) or {})
    assert torch.equal(first[0], second[0])
    assert math.isfinite(rows[0]["seconds"])


def test_learned_variance_outside_the_range_extrapolates():
    """ν = 2 everywhere: f = 1.5, log σ² = 1.5·log β − 0.5·log β̃, i.e. σ²/β = (β/β̃)^0.5 > 1; ν = −2: σ²/β̃ = (β̃/β)^0.5."""
    schedule = make_schedule("linear", 100, scale_with_T=True)
    diffusion = GaussianDiffusion(schedule, "eps", "learned_range")
    x0 = torch.zeros(2, 3, dtype=torch.float64)
    for nu, t in ((2.0, 10), (-2.0, 50)):
        def model(x, t_batch, nu=nu):
            return torch.cat([torch.zeros_like(x), torch.full_like(x, nu)], dim=1)
        result = learned_variance_outputs(model, diffusion, x0, [t], torch.Generator().manual_seed(0))
        beta, beta_tilde = float(schedule.betas[t]), float(schedule.posterior_variance[t])
        assert result.nu_min == [nu] and result.outside == [1.0] and result.steps == [t + 1]
        if nu > 0:
            assert result.log_ratio_max[0] == pytest.approx(0.5 * math.log(beta / beta_tilde), rel=1e-9)
        else:
            assert result.log_ratio_min[0] == pytest.approx(0.5 * math.log(beta_tilde / beta), rel=1e-9)
    with pytest.raises(ValueError, match="learned_range"):
        learned_variance_outputs(model, GaussianDiffusion(schedule, "eps"), x0, [1], torch.Generator())


def test_ddim_step_table_weights():
    """x_prev has variance ᾱ_prev·1 + (1 − ᾱ_prev − σ²) + σ² when x̂_0, ε̂, z are exact: the squared ε and z
    weights add to 1 − ᾱ_prev; η = 1 makes σ² the β̃ of the jump; the last step goes to x_0 with no noise."""
    schedule = make_schedule("linear", 1000)
    for eta in (0.0, 0.5, 1.0):
        rows = ddim_step_table(schedule, 10, eta)
        assert [r["t"] for r in rows] == [901, 801, 701, 601, 501, 401, 301, 201, 101, 1]
        assert rows[-1]["t_prev"] == 0 and rows[-1]["alpha_bar_prev"] == 1.0 and rows[-1]["sigma"] == 0.0
        for r in rows:
            assert r["eps_weight"] ** 2 + r["sigma"] ** 2 == pytest.approx(1 - r["alpha_bar_prev"], abs=1e-12)
            assert r["x0_weight"] == pytest.approx(math.sqrt(r["alpha_bar_prev"]), rel=1e-12)
            assert r["sigma"] ** 2 == pytest.approx(eta**2 * r["jump_beta_tilde"], rel=1e-9, abs=1e-15)
        assert rows[0]["alpha_bar"] == pytest.approx(float(schedule.alpha_bars[900]), rel=1e-12)


def test_x0_error_curve_by_hand():
    """An x_0-model that always outputs 0 has error mean(x_0²) per example at every step; the standard error is
    the examples' standard deviation over √n."""
    diffusion = GaussianDiffusion(make_schedule("linear", 50, scale_with_T=True), "x0")
    x0 = torch.tensor([[0.5, -0.5], [1.0, 0.0], [0.2, 0.4]], dtype=torch.float64)
    per_example = [(0.25 + 0.25) / 2, 0.5, (0.04 + 0.16) / 2]
    mean = sum(per_example) / 3
    se = math.sqrt(sum((v - mean) ** 2 for v in per_example) / 2) / math.sqrt(3)
    means, errors = x0_error_curve(lambda x, t: torch.zeros_like(x), diffusion, x0, torch.tensor([0, 25, 49]),
                                   torch.Generator().manual_seed(0))
    assert means.tolist() == pytest.approx([mean] * 3, rel=1e-12)
    assert errors.tolist() == pytest.approx([se] * 3, rel=1e-9)
