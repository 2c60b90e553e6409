"""core/sampling.py: the sampler settings, seeded runs, trajectories and snapshot strips behind the Sample page.

Expected values are derived by hand in numpy (the DDPM update from Algorithm 2, ᾱ from the linear β's), never
by calling the code under test.
"""

import numpy as np
import pytest
import torch

from core import sampling
from core.diffusion.gaussian_diffusion import GaussianDiffusion
from core.diffusion.schedules import make_schedule
from core.lab.denoise import same_forward_process

T = 50
BETA_START, BETA_END = 1e-4, 0.02


def diffusion(prediction="eps", variance="fixed_large", T=T):
    return GaussianDiffusion(make_schedule("linear", T, BETA_START, BETA_END), prediction, variance)


def zero_eps_model(x, t):
    return torch.zeros_like(x)


def test_check_settings_rejects_bad_choices():
    d = diffusion()
    good = sampling.SamplerSettings("ddpm", 10)
    assert sampling.check_settings(good, d) is good
    cases = [(dict(method="euler"), "method"), (dict(steps=51), "steps"), (dict(steps=0), "steps"),
             (dict(spacing="random"), "spacing"), (dict(variance="learned_range"), "learned variances"),
             (dict(variance="big"), "variance"), (dict(eta=-0.1), "eta"), (dict(clip_x0="yes"), "clip_x0")]
    for change, message in cases:
        with pytest.raises(ValueError, match=message):
            sampling.check_settings(sampling.SamplerSettings(**{**good.__dict__, **change}), d)


def test_all_runs_with_one_seed_start_from_the_same_noise():
    shape = (3, 1, 4, 4)
    expected = torch.randn(shape, generator=torch.Generator().manual_seed(11))
    for settings in (sampling.SamplerSettings("ddpm", 5, spacing="trailing"), sampling.SamplerSettings("ddim", 10, eta=0.5)):
        _, trajectory = sampling.run_sampler(zero_eps_model, diffusion(), settings, shape, 11, record=True)
        assert torch.equal(trajectory.x_t[0], expected)


def test_ddim_one_step_returns_the_predicted_x0():
    target = torch.full((2, 2), 0.3)
    settings = sampling.SamplerSettings("ddim", 1, clip_x0=False)
    result = sampling.run_sampler(lambda x, t: target.expand_as(x), diffusion("x0"), settings, (2, 2), 0)
    assert torch.allclose(result, target)


@pytest.mark.parametrize("variance", ["fixed_large", "fixed_small"])
def test_ddpm_two_steps_by_hand(variance):
    """ε̂ = 0, T = 2: x_1 = x_2/√α_2 + σ_2·z, x_0 = x_1/√α_1 (Algorithm 2, no noise at the last step)."""
    betas = np.array([0.1, 0.3])
    d = GaussianDiffusion(make_schedule("linear", 2, 0.1, 0.3), "eps", "fixed_large")
    settings = sampling.SamplerSettings("ddpm", 2, variance=variance, clip_x0=False)
    result = sampling.run_sampler(zero_eps_model, d, settings, (4, 2), 5)
    g = torch.Generator().manual_seed(5)
    x2, z = torch.randn(4, 2, generator=g).double().numpy(), torch.randn(4, 2, generator=g).double().numpy()
    alpha_bar = np.cumprod(1 - betas)
    sigma2 = betas[1] if variance == "fixed_large" else (1 - alpha_bar[0]) / (1 - alpha_bar[1]) * betas[1]
    x1 = x2 / np.sqrt(1 - betas[1]) + np.sqrt(sigma2) * z
    np.testing.assert_allclose(result.numpy(), x1 / np.sqrt(1 - betas[0]), rtol=1e-5, atol=1e-6)


def test_learned_variance_model_can_sample_with_fixed_or_learned_variance():
    """Variance channel v = −1 means σ² = β̃ (Nichol & Dhariwal eq. 15), so 'learned' must equal fixed_small."""
    learned = diffusion("eps", "learned_range")

    def model(x, t):
        return torch.cat([torch.zeros_like(x), -torch.ones_like(x)], dim=1)

    shape = (3, 2)
    run = {v: sampling.run_sampler(model, learned, sampling.SamplerSettings("ddpm", 20, variance=v, clip_x0=False), shape, 2)
           for v in ("learned_range", "fixed_small", "fixed_large")}
    assert torch.allclose(run["learned_range"], run["fixed_small"], atol=1e-6)
    assert not torch.allclose(run["fixed_large"], run["fixed_small"], atol=1e-3)
    wrapped, process = sampling.sampling_process(model, learned, "fixed_large", 2)
    assert process.variance == "fixed_large" and same_forward_process(process, learned)
    assert wrapped(torch.zeros(5, 2), torch.zeros(5, dtype=torch.long)).shape == (5, 2)
    # learned variances on a fixed-variance model are refused where the page's settings come in
    with pytest.raises(ValueError, match="learned variances"):
        sampling.run_sampler(zero_eps_model, diffusion(), sampling.SamplerSettings("ddpm", 5, variance="learned_range"), shape, 2)


def test_record_every_and_snapshots():
    assert sampling.record_every(1000, 60) == 17 and sampling.record_every(50, 60) == 1 and sampling.record_every(60, 60) == 1
    recorded = list(range(999, -1, -17))  # 999, 982, ..., 14
    positions = sampling.snapshot_positions(recorded, 1000)
    targets = [999, 749.25, 499.5, 249.75]
    assert positions == [int(np.argmin([abs(r - x) for r in recorded])) for x in targets]
    assert sampling.snapshot_positions(recorded, 1000, fractions=(0.0,)) == [len(recorded) - 1]  # nearest to t = 0: 14


def test_trajectory_pictures_and_snapshots_of_a_real_run():
    settings = sampling.SamplerSettings("ddim", 10)
    final, trajectory = sampling.run_sampler(zero_eps_model, diffusion(), settings, (5, 1, 4, 4), 0, record=3)
    assert trajectory.t == [45, 30, 15, 0]  # leading spacing 45, 40, ..., 0, every 3rd step plus the last
    pictures = sampling.trajectory_pictures(trajectory, count=2, nrow=2)
    assert pictures["t"] == [45, 30, 15, 0, -1]
    assert pictures["x_t"].shape == (5, 4 + 4, 2 * 6 + 2) and pictures["pred_x0"].shape == pictures["x_t"].shape
    np.testing.assert_array_equal(pictures["x_t"][-1], pictures["pred_x0"][-1])
    strip = sampling.snapshots(trajectory, T)
    assert [t for t, _ in strip] == [45, 30, 30, 15, -1] and torch.equal(strip[-1][1], final)


def test_keep_first_trims_every_recorded_tensor():
    final, trajectory = sampling.run_sampler(zero_eps_model, diffusion(), sampling.SamplerSettings("ddim", 5), (6, 2), 0, record=True)
    small = sampling.keep_first(trajectory, 2)
    assert small.t == trajectory.t and torch.equal(small.final, final[:2])
    assert all(torch.equal(a, b[:2]) for a, b in zip(small.x_t, trajectory.x_t))
    assert all(x.shape == (2, 2) for x in small.pred_x0 + small.pred_eps)
