"""channels_last in the sampling loops (core/diffusion/samplers.py): used for image batches on CUDA (decided with a
fake CUDA device; the loops themselves run here on the CPU with the decision forced), returned contiguous, and the
CPU path bit-identical to the loops as they were before (copied below as the reference)."""

import pytest
import torch

from core.diffusion import samplers
from core.diffusion.gaussian_diffusion import GaussianDiffusion
from core.diffusion.samplers import Trajectory, ddim_sample, ddpm_sample, timesteps
from core.diffusion.schedules import make_schedule
from core.nets.build import build_model, model_config_for


@pytest.mark.parametrize("shape, device, expected", [
    ((8, 1, 28, 28), torch.device("cuda"), True),
    ((8, 1, 28, 28), torch.device("cuda", 1), True),
    ("cuda:0", None, None),
    ((512, 2), torch.device("cuda"), False),  # 2-D points: no memory format to choose
    ((8, 1, 28, 28), torch.device("cpu"), False),
])
def test_channels_last_is_for_image_batches_on_cuda(shape, device, expected):
    if expected is None:
        assert samplers.uses_channels_last((8, 3, 4, 4), shape)  # a device given by name
        return
    assert samplers.uses_channels_last(shape, device) is expected


def seeded_unet(seed=0):
    torch.manual_seed(seed)
    model = build_model(model_config_for("image", (1, 28, 28), "tiny", 1)).eval()
    generator = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for parameter in model.parameters():  # the output layer starts at zero: make every output non-trivial
            parameter.add_(0.02 * torch.randn(parameter.shape, generator=generator))
    return model


class Spy(torch.nn.Module):
    """The model, recording whether each input arrived with channels_last strides (N, C, H, W) -> (HWC, 1, WC, C):
    with one channel the two formats hold the same bytes, and the strides are what tells convolutions which to use."""

    def __init__(self, model):
        super().__init__()
        self.model, self.formats = model, []

    def forward(self, x, t):
        _, c, h, w = x.shape
        self.formats.append(x.stride() == (h * w * c, 1, w * c, c))
        return self.model(x, t)


DIFFUSION = GaussianDiffusion(make_schedule("linear", 40, scale_with_T=True), "eps", "fixed_small")
SHAPE = (3, 1, 28, 28)


@pytest.mark.parametrize("sample", [
    lambda model, forced: ddim_sample(model, DIFFUSION, SHAPE, 4, eta=0.5, generator=torch.Generator().manual_seed(0),
                                      record=True),
    lambda model, forced: ddpm_sample(model, DIFFUSION, SHAPE, steps=4, generator=torch.Generator().manual_seed(0),
                                      record=True),
], ids=["ddim", "ddpm"])
def test_channels_last_loops_return_contiguous_samples_of_the_same_numbers(monkeypatch, sample):
    plain_model, forced_model = Spy(seeded_unet()), Spy(seeded_unet())
    x_plain, plain = sample(plain_model, False)
    monkeypatch.setattr(samplers, "uses_channels_last", lambda shape, device: len(shape) == 4)  # as on CUDA
    x_forced, forced = sample(forced_model, True)
    assert not any(plain_model.formats) and all(forced_model.formats) and len(forced_model.formats) == 4
    assert x_forced.is_contiguous() and forced.final.is_contiguous()
    assert all(x.is_contiguous() for x in forced.x_t + forced.pred_x0 + forced.pred_eps)
    torch.testing.assert_close(x_forced, x_plain, rtol=1e-4, atol=1e-5)  # same noise draws; kernels may round apart
    for a, b in zip(forced.x_t, plain.x_t):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


# The loops before channels_last (commit ecc2eea), copied: the CPU path must still give exactly their numbers.
@torch.no_grad()
def old_ddim(model, diffusion, shape, steps, eta, generator):
    visited = timesteps(diffusion.T, steps, "leading")
    alpha_bars = diffusion.schedule.alpha_bars.to(torch.float64)
    alpha_bar = alpha_bars[visited]
    alpha_bar_prev = torch.cat([alpha_bars[visited[1:]], torch.ones(1, dtype=torch.float64)])
    coef_x0, coef_eps, sigma = (c.tolist() for c in samplers.ddim_coefficients(alpha_bar, alpha_bar_prev, eta))
    x = torch.randn(shape, generator=generator)
    for step, t in enumerate(visited.tolist()):
        t_model = torch.full((shape[0],), t, dtype=torch.long)
        pred_x0, pred_eps = diffusion.predictions(samplers._model_output(model, x, t_model), x, t_model, False)
        x = coef_x0[step] * pred_x0 + coef_eps[step] * pred_eps
        if sigma[step] > 0:
            x = x + sigma[step] * torch.randn(x.shape, generator=generator, dtype=x.dtype)
    return x


@torch.no_grad()
def old_ddpm(model, diffusion, shape, steps, generator):
    kept = timesteps(diffusion.T, steps, "leading").flip(0)
    process = diffusion if len(kept) == diffusion.T else diffusion.respaced(kept)
    trajectory = Trajectory()
    x = torch.randn(shape, generator=generator)
    for i in reversed(range(len(kept))):
        t_model = torch.full((shape[0],), int(kept[i]), dtype=torch.long)
        t_process = torch.full((shape[0],), i, dtype=torch.long)
        model_output = samplers._model_output(model, x, t_model)
        noise = torch.randn(x.shape, generator=generator, dtype=x.dtype)
        x_prev, out = process.p_sample(model_output, x, t_process, noise, clip_x0=False)
        trajectory.add(int(kept[i]), x, out.pred_x0, out.pred_eps)
        x = x_prev
    return x, trajectory


def test_the_cpu_loops_give_exactly_the_numbers_they_gave_before():
    model = seeded_unet()
    new = ddim_sample(model, DIFFUSION, SHAPE, 5, eta=0.3, generator=torch.Generator().manual_seed(3))
    assert torch.equal(new, old_ddim(model, DIFFUSION, SHAPE, 5, 0.3, torch.Generator().manual_seed(3)))
    new, trajectory = ddpm_sample(model, DIFFUSION, SHAPE, steps=5, generator=torch.Generator().manual_seed(4),
                                  record=True)
    old, old_trajectory = old_ddpm(model, DIFFUSION, SHAPE, 5, torch.Generator().manual_seed(4))
    assert torch.equal(new, old)
    assert all(torch.equal(a, b) for a, b in zip(trajectory.x_t + trajectory.pred_x0, old_trajectory.x_t + old_trajectory.pred_x0))
