"""bf16 autocast on every sampling path of the pages and the CLI (core.sampling.autocast_network).

- With bf16 off ($RDL_CPU_BF16=0) every path gives samples bit-identical to calling the network directly, the way
  the code sampled before autocast was added.
- With bf16 on (forced with $RDL_CPU_BF16=1 where oneDNN has bf16 kernels; this is the default on CPUs with bf16 in
  hardware), one forward pass of the shipped MNIST model stays within the error bf16's rounding allows, the samples
  stay close to the fp32 ones, and `python -m core.sample` writes exactly the Sample page's samples.
"""

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from core import checkpoints, runtime, sampling
from core import sample as sample_cli
from core.data.images import make_grid
from core.diffusion.gaussian_diffusion import GaussianDiffusion
from core.diffusion.samplers import ddim_sample, ddpm_sample
from core.diffusion.schedules import make_schedule
from core.lab import time_conditioning, variances
from core.nets.build import build_model

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "checkpoints" / "mnist_eps.safetensors"
ONEDNN_BF16 = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
needs_bf16 = pytest.mark.skipif(not ONEDNN_BF16, reason="oneDNN has no bf16 kernels on this CPU: bf16 autocast is never used here")
needs_shipped = pytest.mark.skipif(not SHIPPED.exists(), reason="no shipped MNIST checkpoint")
BF16_UNIT_ROUNDOFF = 2.0**-8  # bf16 keeps 8 significant bits: rounding changes a value by at most 2^-8 of itself


@pytest.fixture
def cpu_bf16(monkeypatch):
    """force("0" | "1"): set $RDL_CPU_BF16 for this test and re-decide; the cached decision is dropped afterwards."""
    def force(value: str):
        monkeypatch.setenv(runtime.BF16_ENV, value)
        runtime.cpu_bf16_supported.cache_clear()
        return runtime.autocast_dtype("cpu")

    yield force
    runtime.cpu_bf16_supported.cache_clear()


def tiny_unet(variance_channels: bool = False):
    config = {"kind": "unet", "in_channels": 1, "out_channels": 2 if variance_channels else 1, "image_size": 28,
              "channels": [8, 16], "num_res_blocks": [1, 1], "attention": False, "time_embed_dim": 16, "norm_groups": 4}
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = build_model(config)
        with torch.no_grad():  # the zero-initialised output layer would make every prediction 0
            for parameter in model.parameters():
                parameter.add_(0.05 * torch.randn(parameter.shape))
    return model.eval()


def old_run_sampler(model, diffusion, settings, shape, seed):
    """What run_sampler did before autocast: the plain network, x_T the first draw of the seeded generator."""
    generator = torch.Generator().manual_seed(seed)
    x_T = torch.randn(shape, generator=generator)
    common = dict(steps=settings.steps, spacing=settings.spacing, generator=generator, clip_x0=settings.clip_x0, x_T=x_T)
    if settings.method == "ddim":
        return ddim_sample(model, diffusion, shape, eta=settings.eta, **common)
    model, process = sampling.sampling_process(model, diffusion, settings.variance, shape[1])
    return ddpm_sample(model, process, shape, **common)


def test_without_bf16_every_sampling_path_is_bit_identical_to_the_plain_network(cpu_bf16, tmp_path):
    assert cpu_bf16("0") is None
    diffusion = GaussianDiffusion(make_schedule("linear", 40), "eps", "learned_range")
    model = tiny_unet(variance_channels=True)
    shape = (3, 1, 28, 28)
    for settings in (sampling.SamplerSettings("ddim", 6, eta=0.5), sampling.SamplerSettings("ddpm", 5, "fixed_small"),
                     sampling.SamplerSettings("ddpm", 4, "learned_range", clip_x0=False)):
        assert torch.equal(sampling.run_sampler(model, diffusion, settings, shape, seed=3),
                           old_run_sampler(model, diffusion, settings, shape, seed=3)), settings
    # the quality-vs-steps runs of the Sample and Variances pages
    row = variances.quality_run(model, diffusion, "ddim_eta1", 5, (1, 28, 28), 3, seed=2, quality=lambda s: {"x": s})
    expected = ddim_sample(model, diffusion, shape, 5, eta=1.0, generator=torch.Generator().manual_seed(2), clip_x0=True)
    assert torch.equal(row["x"], expected)
    # the CLI
    path = tmp_path / "m.safetensors"
    checkpoints.save(path, model, diffusion, {"data": {"dataset": "mnist", "shape": [1, 28, 28]}, "steps": 0})
    assert sample_cli.main(["--checkpoint", str(path), "--steps", "4", "--n", "4", "--seed", "5", "--clip",
                            "--device", "cpu", "--out", str(tmp_path / "s.png")]) == 0
    plain = ddim_sample(model, diffusion, (4, 1, 28, 28), 4, generator=torch.Generator().manual_seed(5), clip_x0=True)
    written = np.asarray(Image.open(tmp_path / "s.png"))
    assert np.array_equal(written.reshape(written.shape[0], written.shape[1], -1)[..., 0],
                          make_grid(plain.clamp(-1, 1), nrow=2).reshape(written.shape[0], written.shape[1], -1)[..., 0])
    # the Time conditioning page's samples (one training step is enough to compare the two paths)
    settings = time_conditioning.ExperimentSettings(steps=1, batch=8, n_samples=50)
    network = time_conditioning.train_variant("normal", settings)
    plain = ddpm_sample(network, time_conditioning.experiment_diffusion(), (50, 2), generator=torch.Generator().manual_seed(2))
    assert torch.equal(time_conditioning.train_and_sample("normal", settings), plain)


def test_the_oracle_is_never_wrapped_and_networks_are_wrapped_once():
    def oracle(x, t):
        return torch.zeros_like(x)

    assert sampling.autocast_network(oracle) is oracle
    wrapped = sampling.autocast_network(tiny_unet())
    assert isinstance(wrapped, sampling.AutocastNetwork) and sampling.autocast_network(wrapped) is wrapped


def relative_rms(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).pow(2).mean().sqrt() / b.double().pow(2).mean().sqrt())


@needs_bf16
@needs_shipped
def test_bf16_forward_pass_and_samples_stay_close_to_fp32(cpu_bf16):
    model, diffusion, _ = checkpoints.load(SHIPPED)
    layers = sum(isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)) for m in model.modules())
    # One forward pass: each conv/linear layer rounds its input and its weights to bf16 (a relative error of at most
    # 2^-8 each); independent errors add in quadrature over the layers, so the output's relative RMS error should
    # stay below √(2·layers)·2^-8; twice that is the bound (the shipped UNet: 51 layers, bound 0.079).
    bound = 2 * math.sqrt(2 * layers) * BF16_UNIT_ROUNDOFF
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(8, 1, 28, 28, generator=generator)
    cpu_bf16("0")
    with torch.no_grad():
        fp32 = {t: model(x, torch.full((8,), t)) for t in (diffusion.T - 1, diffusion.T // 2, 0)}
        settings = sampling.SamplerSettings("ddim", 10)
        samples_fp32 = sampling.run_sampler(model, diffusion, settings, (8, 1, 28, 28), seed=1)
        other_seed = sampling.run_sampler(model, diffusion, settings, (8, 1, 28, 28), seed=2)
        assert cpu_bf16("1") is torch.bfloat16
        network = sampling.autocast_network(model)
        for t, expected in fp32.items():
            output = network(x, torch.full((8,), t))
            assert output.dtype == torch.float32
            assert 0 < relative_rms(output, expected) < bound, (t, relative_rms(output, expected), bound)
        samples_bf16 = sampling.run_sampler(model, diffusion, settings, (8, 1, 28, 28), seed=1)
    assert samples_bf16.dtype == torch.float32 and not torch.equal(samples_bf16, samples_fp32)  # bf16 was really used
    # The samples: what bf16 changes is small next to what tells one sample from another (two seeds): a tenth of it.
    change = (samples_bf16 - samples_fp32).pow(2).mean().sqrt()
    between_samples = (other_seed - samples_fp32).pow(2).mean().sqrt()
    assert change < 0.1 * between_samples, (float(change), float(between_samples))


@needs_bf16
def test_the_cli_writes_the_sample_pages_samples_in_bf16(cpu_bf16, tmp_path):
    """`python -m core.sample` with the page's settings gives exactly run_sampler's samples, both in bf16."""
    assert cpu_bf16("1") is torch.bfloat16
    model, diffusion = tiny_unet(), GaussianDiffusion(make_schedule("linear", 40), "eps", "fixed_large")
    path = tmp_path / "m.safetensors"
    checkpoints.save(path, model, diffusion, {"data": {"dataset": "mnist", "shape": [1, 28, 28]}, "steps": 0})
    model, diffusion, _ = checkpoints.load(path)
    for method in ("ddim", "ddpm"):
        settings = sampling.SamplerSettings(method, 6, "fixed_large", clip_x0=True)
        page = sampling.run_sampler(model, diffusion, settings, (9, 1, 28, 28), seed=4)
        out = tmp_path / f"{method}.png"
        assert sample_cli.main(["--checkpoint", str(path), "--sampler", method, "--steps", "6", "--n", "9", "--seed", "4",
                                "--clip", "--device", "cpu", "--out", str(out)]) == 0
        written = np.asarray(Image.open(out))
        expected = make_grid(page.clamp(-1, 1), nrow=3)
        assert np.array_equal(written.reshape(*expected.shape[:2], -1)[..., 0], expected.reshape(*expected.shape[:2], -1)[..., 0])
        plain = old_run_sampler(model, diffusion, settings, (9, 1, 28, 28), seed=4)
        assert not torch.equal(page, plain)  # the page's samples are the bf16 ones


def test_the_samplers_update_in_the_precision_of_x_t_whatever_the_network_returns():
    """A network that answers in bf16 (as under autocast) is sampled exactly like one that answers the same
    values in float32: the loops cast the output before the update (this is what the training previews rely on)."""
    def in_bf16(x, t):
        return (0.3 * x + 0.01 * t.reshape(-1, 1)).to(torch.bfloat16)

    def same_values_in_fp32(x, t):
        return in_bf16(x, t).float()

    diffusion = GaussianDiffusion(make_schedule("linear", 30), "eps", "fixed_small")
    for sampler in (lambda m, g: ddim_sample(m, diffusion, (64, 2), 7, eta=0.5, generator=g),
                    lambda m, g: ddpm_sample(m, diffusion, (64, 2), steps=7, generator=g)):
        got = sampler(in_bf16, torch.Generator().manual_seed(0))
        assert got.dtype == torch.float32
        assert torch.equal(got, sampler(same_values_in_fp32, torch.Generator().manual_seed(0)))
