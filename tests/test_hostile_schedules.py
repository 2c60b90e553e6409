"""A checkpoint's schedule and network must give finite numbers everywhere a page computes (issue #21, item 3).

* core.diffusion.schedules.numerical_problem: the schedules it accepts keep every derived array finite in float32 and
  the samplers and losses finite, right at its edges; those just past the edges are refused with one line.
* core.checkpoints.validate: the probe's cost from the config (forward_flops, checked against torch's own FLOP
  counter) and the timesteps it visits within its budget (PROBE_FLOPS), on the shipped checkpoints too.
The hostile files themselves (β = 1e-300, ᾱ_T = 0, a network infinite at 499 timesteps): tests/test_hostile_files.py.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from core import checkpoints as ck
from core.checkpoints.validate import (
    PROBE_BATCH,
    PROBE_FLOPS,
    array_problem,
    check_model_schedule,
    forward_flops,
    probe_timesteps,
    schedule_arrays,
)
from core.diffusion.gaussian_diffusion import PREDICTIONS, GaussianDiffusion
from core.diffusion.samplers import ddim_sample, ddpm_sample
from core.diffusion.schedules import MAX_T, MIN_ALPHA_BAR, MIN_BETA, NoiseSchedule, make_schedule, numerical_problem
from core.nets.build import build_model
from core.nets.config import UNetConfig, config_from_dict

ROOT = Path(__file__).resolve().parent.parent
FLOAT32_MAX = torch.finfo(torch.float32).max


def constant_betas(T: int, alpha_bar_T: float) -> NoiseSchedule:
    """T equal betas whose ᾱ_T is alpha_bar_T (up to rounding)."""
    beta = -math.expm1(math.log(alpha_bar_T) / T)
    return NoiseSchedule.from_betas(torch.full((T,), beta, dtype=torch.float64))


def smallest_first_beta() -> NoiseSchedule:
    """β_1 = MIN_BETA, then Ho et al.'s betas."""
    betas = make_schedule("linear", 100).betas.clone()
    betas[0] = MIN_BETA
    return NoiseSchedule.from_betas(betas)


# Accepted schedules at the edges of numerical_problem, and the extremes the app's own pages and the CLI produce.
EDGES = {
    "ᾱ_T just above MIN_ALPHA_BAR": lambda: constant_betas(100, 1.05 * MIN_ALPHA_BAR),
    "β_1 = MIN_BETA": smallest_first_beta,
    "every β = MIN_BETA": lambda: make_schedule("linear", 50, MIN_BETA, MIN_BETA),
    "T = 1": lambda: make_schedule("linear", 1, 0.5, 0.5),
    "cosine, T = 10,000": lambda: make_schedule("cosine", MAX_T),
    "linear, T = 4,000 (the Train page's largest T)": lambda: make_schedule("linear", 4000),
    "linear, T = 6,000": lambda: make_schedule("linear", 6000),
    "scaled linear, T = 10,000": lambda: make_schedule("linear", MAX_T, scale_with_T=True),
    "β from 1e-6 (the Train page's smallest) to 0.02": lambda: make_schedule("quadratic", 1000, 1e-6, 0.02),
}


def all_arrays(schedule: NoiseSchedule) -> dict:
    """Every derived array of the schedule and of the diffusion built on it (what samplers and losses index)."""
    arrays = {name: getattr(schedule, name) for name in ("betas", "alphas", "alpha_bars", "alpha_bars_prev",
                                                         "posterior_variance", "posterior_log_variance_clipped",
                                                         "posterior_mean_coef_x0", "posterior_mean_coef_xt", "snr")}
    arrays.update(GaussianDiffusion(schedule)._arrays)
    return arrays


@pytest.mark.parametrize("name", list(EDGES))
def test_an_accepted_schedule_keeps_every_array_finite_in_float32(name):
    schedule = EDGES[name]()
    assert numerical_problem(schedule) is None
    for array, values in all_arrays(schedule).items():
        assert bool(torch.isfinite(values.float()).all()), (name, array)
    assert float(schedule.alpha_bars.rsqrt().max()) <= 1 / math.sqrt(MIN_ALPHA_BAR) * 1.0001  # the documented bound
    assert float(schedule.snr.max()) <= 1.001 / MIN_BETA  # up to the rounding of 1 − ᾱ_1
    for weights in (schedule.posterior_mean_coef_x0, schedule.posterior_mean_coef_xt):  # in [0, 1] to 4 digits
        assert bool(((weights >= 0) & (weights <= 1 + 1e-4)).all()), name
    first = schedule.posterior_mean_coef_x0[0]  # μ̃_1 = x_0 exactly in the math: the weight must be 1 to 4 digits
    assert abs(float(first) - 1) < 1e-4, name


def random_network(channels: int, seed: int = 0):
    """Outputs like an untrained network's: standard normal, 2 x channels for learned variances."""
    generator = torch.Generator().manual_seed(seed)

    def network(x, t):
        return torch.randn((x.shape[0], channels, *x.shape[2:]), generator=generator)

    return network


@pytest.mark.parametrize("name", list(EDGES))
@pytest.mark.parametrize("variance", ["fixed_large", "fixed_small", "learned_range"])
def test_an_accepted_schedule_samples_and_scores_finite_numbers(name, variance):
    """Every prediction type and variance, DDPM with all T steps and with fewer (respaced), DDIM with η = 0 and 1,
    the training loss and every term of the bound: finite, with network outputs as large as an untrained one's."""
    schedule = EDGES[name]()
    shape = (8, 1, 4, 4)
    for prediction in PREDICTIONS:
        diffusion = GaussianDiffusion(schedule, prediction, variance)
        network = random_network(diffusion.out_channels(1))
        steps = schedule.T if schedule.T <= 100 else 50  # every step of the short schedules, respaced long ones
        samples = [ddpm_sample(network, diffusion, shape, steps=steps, generator=torch.Generator().manual_seed(1)),
                   ddpm_sample(network, diffusion, shape, steps=min(schedule.T, 7),
                               generator=torch.Generator().manual_seed(2))]
        for eta in (0.0, 1.0):
            samples.append(ddim_sample(network, diffusion, shape, steps=steps, eta=eta,
                                       generator=torch.Generator().manual_seed(3)))
        for x in samples:
            assert bool(torch.isfinite(x).all()), (name, prediction, variance)
        x0 = torch.rand(shape, generator=torch.Generator().manual_seed(4)) * 2 - 1
        t = torch.linspace(0, schedule.T - 1, shape[0]).round().long()
        losses = diffusion.training_losses(network, x0, t=t, generator=torch.Generator().manual_seed(5))
        x_t = diffusion.q_sample(x0, t, torch.randn(shape, generator=torch.Generator().manual_seed(6)))
        terms = [losses["loss"], diffusion.elbo_term(network(x_t, t), x0, x_t, t)]
        # L_T = KL(q(x_T|x_0) ‖ N(0, I)) is computed in the data's float32, where an ᾱ_T within 6e-8 of 1 (x_T keeps
        # all its signal: every β = 1e-12) rounds to 1 and log(1 − ᾱ_T) to -inf; no page computes it for an upload
        # (the bits/dim table covers the shipped models), so such schedules are only flagged by the Schedule lab.
        if float(schedule.alpha_bars[-1].float()) < 1.0:
            terms.append(diffusion.prior_kl(x0))
        for values in terms:
            assert bool(torch.isfinite(values).all()), (name, prediction, variance)


@pytest.mark.parametrize("schedule, words", [
    (lambda: constant_betas(100, 0.95 * MIN_ALPHA_BAR), r"ᾱ_T=9\.5e-31 is below 1e-30: .* by 1\.03e\+15"),
    (lambda: make_schedule("linear", 1000, 1e-4, 0.999), r"ᾱ_T=0 is below 1e-30: .* by infinity; use a smaller β_end"),
    (lambda: make_schedule("linear", 20, 1e-300, 0.02), r"^β_1=1e-300 is below 1e-12, .* \(ᾱ_1 = 1\), and the posterior"),
    (lambda: NoiseSchedule.from_betas(torch.tensor([0.5, 4e-17, 0.5], dtype=torch.float64)),
     r"^β_2=4e-17 is below 1e-12, too small for float64 to hold 1 − β accurately \(ᾱ_2 = 0\.5\)"),
    (lambda: make_schedule("linear", 10, 0.5 * MIN_BETA, 0.02), r"^β_1=5e-13 is below 1e-12"),
])
def test_a_schedule_past_the_edges_is_refused_with_one_line(schedule, words):
    problem = numerical_problem(schedule())
    assert problem is not None and "\n" not in problem
    assert re.search(words, problem), problem


def test_what_a_refused_schedule_would_have_done():
    """The reasons in the messages are real: with ᾱ_1 = 1 the posterior is 0/0 (and its x_0 weight β/0), a repeated ᾱ
    respaces to β = 0, and ᾱ_T = 0 makes 1/√ᾱ_T infinite."""
    stuck = make_schedule("linear", 20, 1e-300, 0.02)
    assert math.isnan(float(stuck.posterior_variance[0])) and math.isinf(float(stuck.posterior_mean_coef_x0[0]))
    repeated = NoiseSchedule.from_betas(torch.tensor([0.5, 1e-300, 0.5], dtype=torch.float64))
    with pytest.raises(ValueError, match="every beta must lie strictly between 0 and 1"):
        repeated.respaced([0, 1])  # ᾱ at index 0 and 1 are both 0.5
    gone = make_schedule("linear", 1000, 1e-4, 0.999)
    assert float(gone.alpha_bars[-1]) == 0.0 and math.isinf(float(gone.alpha_bars.rsqrt()[-1]))


# ------------------------------------------------------------------------------------------------ the probe
CONFIGS = [
    {"kind": "unet", "in_channels": 1, "out_channels": 1, "image_size": 28},  # the shipped MNIST models' "tiny"
    {"kind": "unet", "in_channels": 3, "out_channels": 6, "image_size": 32, "channels": [64, 128, 128],
     "num_res_blocks": [2, 2, 2], "time_embed_dim": 256},
    {"kind": "unet", "in_channels": 4, "out_channels": 8, "image_size": 16, "channels": [8, 16, 32, 64, 128],
     "num_res_blocks": [1, 2, 3, 4, 1], "attention": False, "time_embed_dim": 32},
    {"kind": "mlp", "data_dim": 2, "out_dim": 2, "hidden": 128, "depth": 3, "time_embed_dim": 64, "fourier_frequencies": 6},
    {"kind": "mlp", "data_dim": 16, "out_dim": 32, "hidden": 64, "depth": 1, "time_embed_dim": 8},
]


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: f"{c['kind']}-{c.get('image_size', c.get('data_dim'))}")
def test_forward_flops_is_what_torch_counts(config):
    net_config = config_from_dict(config)
    with torch.device("meta"):  # shapes only: nothing is allocated or computed
        model = build_model(config)
        shape = (net_config.in_channels, net_config.image_size, net_config.image_size) \
            if net_config.kind == "unet" else (net_config.data_dim,)
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            model(torch.empty(1, *shape), torch.zeros(1, dtype=torch.long))
    assert forward_flops(net_config) == counter.get_total_flops()


def test_the_probe_covers_what_its_budget_allows_and_no_more():
    tiny, toy = config_from_dict(CONFIGS[0]), config_from_dict(CONFIGS[3])
    costliest = UNetConfig(in_channels=4, out_channels=8, image_size=54, channels=(8, 512), num_res_blocks=(2, 2),
                           attention=False, time_embed_dim=1024, norm_groups=8)
    assert costliest.forward_bytes(ck.SAMPLING_BATCH["unet"]) <= ck.MAX_SAMPLING_BYTES  # an allowed config
    assert forward_flops(costliest) > 60 * 10**9  # the costliest found: 67.7 GFLOP per input (README)
    for config, T, count in [(toy, 1000, 1000), (toy, MAX_T, MAX_T), (tiny, 1000, 71), (tiny, 3, 3),
                             (costliest, 1000, PROBE_BATCH), (costliest, 1, 1)]:
        timesteps = probe_timesteps(config, T)
        assert len(timesteps) == count, (config.kind, T, len(timesteps))
        assert int(timesteps[0]) == 0 and int(timesteps[-1]) == T - 1
        assert bool((timesteps[1:] > timesteps[:-1]).all())  # distinct, in order
        assert len(timesteps) * forward_flops(config) <= max(PROBE_FLOPS, PROBE_BATCH * forward_flops(config))
    gaps = probe_timesteps(tiny, 1000).diff()
    assert int(gaps.max()) - int(gaps.min()) <= 1  # evenly spread: every 14th or 15th timestep


@pytest.mark.parametrize("name", ["mnist_eps", "mnist_eps_learned", "toy_two_moons"])
def test_the_shipped_checkpoints_pass_the_probe_at_every_probed_timestep(name):
    model, diffusion, _ = ck.load(ROOT / "checkpoints" / f"{name}.safetensors")
    net_config = model.net_config
    timesteps = probe_timesteps(net_config, diffusion.T)
    assert len(timesteps) == (1000 if net_config.kind == "mlp" else 71)
    assert numerical_problem(diffusion.schedule) is None


# ------------------------------------------------------------------------------------- check_model_schedule
@pytest.mark.parametrize("name", list(EDGES))
def test_check_model_schedule_accepts_the_edges(name):
    schedule = EDGES[name]()
    assert check_model_schedule(schedule) is schedule
    assert array_problem(schedule_arrays(GaussianDiffusion(schedule))) is None


def test_check_model_schedule_refuses_what_numerical_problem_refuses_in_the_same_words():
    for schedule in (make_schedule("linear", 20, 1e-300, 0.02), make_schedule("linear", 1000, 1e-4, 0.999)):
        with pytest.raises(ValueError) as raised:
            check_model_schedule(GaussianDiffusion(schedule))
        assert str(raised.value) == f"the schedule's {numerical_problem(schedule)}"


@pytest.mark.parametrize("name, index, value, words", [
    ("posterior_mean_coef_x0", 5, math.inf,
     r"^posterior_mean_coef_x0\[5\]=inf \(t=6\) in float32, where it must be finite and in \[0, 1\]"),
    ("posterior_variance", 0, math.nan, r"^posterior_variance\[0\]=nan \(t=1\)"),
    ("sqrt_recip_alpha_bars", 9, 1e39, r"^sqrt_recip_alpha_bars\[9\]=inf \(t=10\) in float32, where it must be finite and >= 1$"),
    ("posterior_mean_coef_xt", 3, 1.5, r"^posterior_mean_coef_xt\[3\]=1\.5 \(t=4\) .* in \[0, 1\]$"),
    ("alpha_bars", 2, -1e-3, r"^alpha_bars\[2\]=-0\.001 \(t=3\)"),
    ("log_betas", 7, 0.5, r"^log_betas\[7\]=0\.5 \(t=8\) in float32, where it must be finite and <= 0$"),
])
def test_array_problem_names_the_first_array_a_sampler_would_misread(name, index, value, words):
    """The direct check behind numerical_problem's bounds: one entry of one array changed by hand (1e39 overflows
    float32, the precision the samplers use); the untouched arrays pass."""
    arrays = {k: v.clone() for k, v in schedule_arrays(GaussianDiffusion(make_schedule("linear", 20))).items()}
    assert array_problem(arrays) is None
    arrays[name][index] = value
    problem = array_problem(arrays)
    assert problem is not None and re.search(words, problem), problem


def test_the_train_page_refuses_a_schedule_no_upload_would_accept():
    """T = 4,000 with β from 0.5 to 0.999 unscaled: ᾱ_T underflows to 0. The Train page says why in one line and
    offers no Start, instead of training a model that its own upload check would refuse."""
    from helpers import APP
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    at.switch_page("pages/train.py").run()
    labelled = {w.label: w for w in [*at.number_input, *at.checkbox]}
    labelled["Scale β range with T (× 1000/T)"].uncheck()
    labelled["T (diffusion steps)"].set_value(4000)
    labelled["β start"].set_value(0.5)
    labelled["β end"].set_value(0.999)
    at.run()
    assert not at.exception, at.exception
    (error,) = [e.value for e in at.error if "This schedule is not valid" in e.value]
    assert error.startswith("This schedule is not valid: the schedule's ᾱ_T=0 is below 1e-30") and "\n" not in error
    assert next(b for b in at.button if b.key == "train_start").disabled


# ---------------------------------------------------------------------------- a network infinite at some timesteps
class InfiniteBelow:
    """A stand-in network: output 0 at timesteps >= `first_finite`, infinite below; counts its calls (the work)."""

    def __init__(self, first_finite: int):
        self.first_finite, self.calls = first_finite, 0

    def __call__(self, x, t):
        self.calls += 1
        bad = (t < self.first_finite).reshape(-1, *([1] * (x.ndim - 1)))
        return torch.where(bad, torch.full_like(x, math.inf), torch.zeros_like(x))


@pytest.mark.parametrize("method", ["ddpm", "ddim"])
def test_a_network_infinite_at_some_timesteps_stops_the_sampler_at_the_first_such_step(method):
    """T = 100, infinite below t = 40: the sampler runs the 60 finite steps (t = 99..40), calls the network once more
    at t = 39 and stops there with one line, instead of carrying NaN into pictures (issue #21: a traceback on Sample)."""
    from core.checks import NonFiniteOutputError

    diffusion = GaussianDiffusion(make_schedule("linear", 100))
    network = InfiniteBelow(40)
    generator = torch.Generator().manual_seed(0)
    with pytest.raises(NonFiniteOutputError, match=r"^the network's output is not finite \(NaN or infinite\) at "
                                                   r"timestep index 39: its weights overflow there"):
        if method == "ddpm":
            ddpm_sample(network, diffusion, (3, 2), generator=generator)
        else:
            ddim_sample(network, diffusion, (3, 2), steps=100, generator=generator)
    assert network.calls == 61


def test_a_training_config_refuses_a_schedule_no_upload_would_accept():
    """The same check where training starts (core.training.config.build_diffusion: the Train page's Start and
    `python -m core.train`), so no run can save a checkpoint that load() would then refuse."""
    from core.training.config import TrainConfig

    with pytest.raises(ValueError, match=r"^the schedule's ᾱ_T=0 is below 1e-30"):
        TrainConfig(dataset="two_moons", T=1000, beta_end=0.999)
    assert TrainConfig(dataset="two_moons", T=1000, beta_end=0.02).T == 1000
