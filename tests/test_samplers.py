"""Samplers: documented timestep lists, DDIM/DDPM relations, respacing, reproducibility."""

import math

import pytest
import torch

from core.diffusion.gaussian_diffusion import GaussianDiffusion
from core.diffusion.samplers import ddim_sample, ddim_step, ddpm_sample, timesteps
from core.diffusion.schedules import make_schedule


class LinearModel:
    """A deterministic stand-in network: output = a·x_t + b·(t/T), recording the t values it was called with."""

    def __init__(self, T, channels_out=None):
        self.T, self.seen, self.channels_out = T, [], channels_out

    def __call__(self, x, t):
        self.seen.append(t.clone())
        out = 0.3 * x + 0.1 * (t.to(x.dtype) / self.T).reshape(-1, *([1] * (x.ndim - 1)))
        if self.channels_out:
            out = torch.cat([out, torch.full_like(out, 0.2)], dim=1)
        return out


def test_documented_timestep_lists():
    assert timesteps(1000, 10, "leading").tolist() == [900, 800, 700, 600, 500, 400, 300, 200, 100, 0]
    assert timesteps(1000, 10, "trailing").tolist() == [999, 899, 799, 699, 599, 499, 399, 299, 199, 99]
    assert timesteps(1000, 10, "linspace").tolist() == [999, 888, 777, 666, 555, 444, 333, 222, 111, 0]
    assert timesteps(10, 3, "leading").tolist() == [6, 3, 0]
    assert timesteps(10, 3, "trailing").tolist() == [9, 6, 2]
    for spacing in ["leading", "trailing", "linspace"]:
        assert timesteps(50, 50, spacing).tolist() == list(range(49, -1, -1))
        visited = timesteps(1000, 333, spacing)
        assert len(set(visited.tolist())) == 333 and bool((visited[:-1] > visited[1:]).all())


@pytest.mark.parametrize("args, words", [
    ((100, 101, "leading"), ["steps", "101", "1..100"]),
    ((100, 0, "leading"), ["steps", "0"]),
    ((100, 10, "uniform"), ["spacing", "uniform", "trailing"]),
])
def test_timesteps_bad_input(args, words):
    with pytest.raises(ValueError) as info:
        timesteps(*args)
    for word in words:
        assert word in str(info.value)


def test_ddim_eta0_is_deterministic():
    diffusion = GaussianDiffusion(make_schedule("cosine", 100))
    x_T = torch.randn(4, 2, generator=torch.Generator().manual_seed(0))
    a = ddim_sample(LinearModel(100), diffusion, (4, 2), 20, eta=0.0, x_T=x_T, generator=torch.Generator().manual_seed(1))
    b = ddim_sample(LinearModel(100), diffusion, (4, 2), 20, eta=0.0, x_T=x_T, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    c = ddim_sample(LinearModel(100), diffusion, (4, 2), 20, eta=1.0, x_T=x_T, generator=torch.Generator().manual_seed(2))
    assert not torch.allclose(a, c)


def test_ddim_eta1_single_steps_have_ddpm_fixed_small_variance():
    s = make_schedule("linear", 1000)
    diffusion = GaussianDiffusion(s, "eps", "fixed_small")
    gen = torch.Generator().manual_seed(3)
    x_t = torch.randn(5, 3, dtype=torch.float64, generator=gen)
    eps = torch.randn(5, 3, dtype=torch.float64, generator=gen)
    z = torch.randn(5, 3, dtype=torch.float64, generator=gen)
    ts = torch.tensor([1, 2, 300, 700, 999])
    ddpm = diffusion.p_mean_variance(eps, x_t, ts)
    x_no_noise, _, _ = ddim_step(diffusion, eps, x_t, ts, ts - 1, 1.0, torch.zeros_like(z))
    x_noise, _, _ = ddim_step(diffusion, eps, x_t, ts, ts - 1, 1.0, z)
    torch.testing.assert_close(x_no_noise, ddpm.mean, rtol=1e-9, atol=1e-10)
    sigma = (x_noise - x_no_noise) / z
    torch.testing.assert_close(sigma ** 2, ddpm.variance, rtol=1e-9, atol=1e-14)
    # whole loops: DDIM(η=1, steps=T) and DDPM(fixed_small) are the same sampler given the same random stream
    model = LinearModel(1000)
    a = ddim_sample(model, diffusion, (3, 2), 1000, eta=1.0, generator=torch.Generator().manual_seed(9))
    b = ddpm_sample(model, diffusion, (3, 2), generator=torch.Generator().manual_seed(9))
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


def test_ddim_last_step_goes_to_pred_x0():
    diffusion = GaussianDiffusion(make_schedule("linear", 100), "x0")
    x_t = torch.randn(2, 3)
    pred = torch.randn(2, 3)
    x_prev, pred_x0, _ = ddim_step(diffusion, pred, x_t, 5, -1, 0.0, torch.zeros_like(x_t))
    torch.testing.assert_close(x_prev, pred, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(pred_x0, pred)
    with pytest.raises(ValueError, match="t_prev"):
        ddim_step(diffusion, pred, x_t, 5, 5, 0.0, torch.zeros_like(x_t))
    with pytest.raises(ValueError, match="eta"):
        ddim_step(diffusion, pred, x_t, 5, 4, -0.5, torch.zeros_like(x_t))


def test_respaced_ddpm_uses_recomputed_betas_and_original_timesteps():
    """A second implementation of respaced ancestral sampling, written from the formulas by hand."""
    s = make_schedule("linear", 1000)
    diffusion = GaussianDiffusion(s, "eps", "fixed_large")
    steps, shape = 10, (3, 2)
    model = LinearModel(1000)
    result = ddpm_sample(model, diffusion, shape, steps=steps, spacing="linspace",
                         generator=torch.Generator().manual_seed(5))
    kept = [0, 111, 222, 333, 444, 555, 666, 777, 888, 999]
    assert [int(t[0]) for t in model.seen] == kept[::-1]  # the model sees original timesteps
    ab = s.alpha_bars.tolist()
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(shape, generator=gen)
    for i in reversed(range(steps)):
        ab_t = ab[kept[i]]
        ab_prev = ab[kept[i - 1]] if i > 0 else 1.0
        beta = 1 - ab_t / ab_prev
        eps = LinearModel(1000)(x, torch.full((shape[0],), kept[i]))
        mean = (x - beta / math.sqrt(1 - ab_t) * eps) / math.sqrt(1 - beta)
        z = torch.randn(shape, generator=gen)
        x = mean + (math.sqrt(beta) * z if i > 0 else 0)
    torch.testing.assert_close(result, x, rtol=1e-4, atol=1e-4)


def test_learned_variance_and_clip_run_through_samplers():
    diffusion = GaussianDiffusion(make_schedule("cosine", 50), "v", "learned_range")
    model = LinearModel(50, channels_out=True)
    out = ddpm_sample(model, diffusion, (2, 1, 4, 4), steps=7, clip_x0=True, generator=torch.Generator().manual_seed(0))
    assert out.shape == (2, 1, 4, 4) and torch.isfinite(out).all()
    out = ddim_sample(model, diffusion, (2, 1, 4, 4), 7, eta=0.5, clip_x0=True, generator=torch.Generator().manual_seed(0))
    assert out.shape == (2, 1, 4, 4) and torch.isfinite(out).all()


@pytest.mark.parametrize("sampler", ["ddpm", "ddim"])
def test_same_seed_same_samples_and_recording(sampler):
    diffusion = GaussianDiffusion(make_schedule("linear", 100))

    def run(seed, record=False):
        gen = torch.Generator().manual_seed(seed)
        if sampler == "ddpm":
            return ddpm_sample(LinearModel(100), diffusion, (4, 2), steps=20, generator=gen, record=record)
        return ddim_sample(LinearModel(100), diffusion, (4, 2), 20, eta=0.5, generator=gen, record=record)

    torch.testing.assert_close(run(1), run(1), rtol=0, atol=0)
    assert not torch.allclose(run(1), run(2))
    final, trajectory = run(1, record=True)
    torch.testing.assert_close(final, run(1), rtol=0, atol=0)
    assert len(trajectory.t) == 20 and torch.stack(trajectory.x_t).shape == (20, 4, 2)
    assert trajectory.t == sorted(trajectory.t, reverse=True)
    _, sparse = run(1, record=6)
    assert sparse.t == [trajectory.t[i] for i in (0, 6, 12, 18, 19)]
    torch.testing.assert_close(sparse.final, final)
    with pytest.raises(ValueError, match="record"):
        run(1, record=-2)


def test_progress_callback_and_bad_arguments():
    diffusion = GaussianDiffusion(make_schedule("linear", 30))
    calls = []
    ddim_sample(LinearModel(30), diffusion, (2, 2), 5, progress=lambda i, n: calls.append((i, n)))
    assert calls == [(i, 5) for i in range(1, 6)]
    with pytest.raises(ValueError, match="steps"):
        ddpm_sample(LinearModel(30), diffusion, (2, 2), steps=31)
    with pytest.raises(ValueError, match="x_T must have shape"):
        ddim_sample(LinearModel(30), diffusion, (2, 2), 5, x_T=torch.zeros(3, 2))
    with pytest.raises(ValueError, match="diffusion must be a GaussianDiffusion"):
        ddim_sample(LinearModel(30), "cosine", (2, 2), 5)
