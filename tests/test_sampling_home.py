"""core/sampling.py as sampling's one home (issue 19, item 1): the DDPM-or-DDIM choice and the variance-channel drop
give exactly (bit for bit) the samples of calling core.diffusion.samplers directly with the process written out by
hand here; the command line offers the same methods."""

import pytest
import torch

from core import sample as cli
from core import sampling
from core.diffusion.gaussian_diffusion import GaussianDiffusion
from core.diffusion.samplers import ddim_sample, ddpm_sample
from core.diffusion.schedules import make_schedule

SCHEDULE = make_schedule("linear", 40, 1e-4, 0.02)


class LearnedVarianceNet(torch.nn.Module):
    """A fixed random map R² -> R⁴ (prediction, then 2 variance channels) that depends on t."""

    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.randn(3, 4, generator=torch.Generator().manual_seed(3)) * 0.3)

    def forward(self, x, t):
        features = torch.cat([x, t.float()[:, None] / 40.0], dim=1)
        return torch.tanh(features @ self.weight)


def _seeded(seed=5):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("variance", ["fixed_small", "fixed_large"])
def test_ddpm_with_a_fixed_variance_on_a_learned_model_equals_the_hand_written_process(variance):
    model, learned = LearnedVarianceNet(), GaussianDiffusion(SCHEDULE, "eps", "learned_range")
    with torch.no_grad():
        ours = sampling.sample(model, learned, sampling.SamplerMethod.DDPM, (32, 2), 8, variance=variance, generator=_seeded())
        by_hand = ddpm_sample(lambda x, t: model(x, t)[:, :2], GaussianDiffusion(SCHEDULE, "eps", variance), (32, 2), steps=8,
                              generator=_seeded())
    assert torch.equal(ours, by_hand)


def test_ddim_and_the_trained_variance_pass_straight_to_the_sampler():
    model, learned = LearnedVarianceNet(), GaussianDiffusion(SCHEDULE, "eps", "learned_range")
    with torch.no_grad():
        assert torch.equal(sampling.sample(model, learned, "ddim", (16, 2), 6, eta=0.7, generator=_seeded()),
                           ddim_sample(model, learned, (16, 2), 6, eta=0.7, generator=_seeded()))
        assert torch.equal(sampling.sample(model, learned, "ddpm", (16, 2), 6, generator=_seeded()),
                           ddpm_sample(model, learned, (16, 2), steps=6, generator=_seeded()))


def test_the_one_wrapper_drops_only_learned_variance_channels():
    model = LearnedVarianceNet()
    x, t = torch.randn(5, 2, generator=_seeded()), torch.arange(5)
    wrapped = sampling.drop_variance_channels(model, GaussianDiffusion(SCHEDULE, "eps", "learned_range"), 2)
    assert torch.equal(wrapped(x, t), model(x, t)[:, :2])
    assert sampling.drop_variance_channels(model, GaussianDiffusion(SCHEDULE, "eps", "fixed_small"), 2) is model


def test_one_method_type_everywhere():
    assert [m.value for m in sampling.SamplerMethod] == ["ddpm", "ddim"]
    assert cli.SAMPLERS == ("ddpm", "ddim")
    assert sampling.SamplerSettings().method == "ddim"  # a str: settings and links keep the plain word
    with pytest.raises(ValueError, match="method"):
        sampling.sample(LearnedVarianceNet(), GaussianDiffusion(SCHEDULE, "eps", "learned_range"), "euler", (2, 2), 2)
    with pytest.raises(ValueError, match="DDIM only"):
        sampling.sample(LearnedVarianceNet(), GaussianDiffusion(SCHEDULE, "eps", "learned_range"), "ddpm", (2, 2), 2, eta=0.5)


def test_one_two_d_quality_for_the_pages_the_playground_and_bench():
    from bench import quality as bench_quality
    from core.lab import playground
    from core.metrics import points

    assert playground.sample_quality is points.sample_quality and bench_quality.sample_quality is points.sample_quality
    reference = torch.randn(400, 2, generator=_seeded(1)) * 0.4
    shift = torch.tensor([0.3, 0.0])
    moved = points.sample_quality(reference + shift, reference)
    # a pure shift d: SW₁ = E|<θ, d>| = (2/π)|d| for θ uniform on the circle; 256 fixed directions: MC error ≈ 0.006
    assert moved["sw1"] == pytest.approx(2 / torch.pi * 0.3, abs=0.02)
    assert moved["mmd2"] > 10 * abs(points.sample_quality(torch.randn(400, 2, generator=_seeded(2)) * 0.4, reference)["mmd2"])
    assert points.sample_quality(reference, reference) == points.sample_quality(reference, reference)  # fixed projections
