"""The cost of a sampling run, estimated before it runs (core/checkpoints/cost.py), and the Sample page asking before
a long run and capping its steps (issue 21 item 7)."""

import pytest
import torch
from helpers import MODELS, TEST_T, open_page, save_tiny
from torch.utils.flop_counter import FlopCounterMode

from core.checkpoints import cost
from core.checkpoints.validate import MAX_SAMPLING_BYTES, SAMPLING_BATCH
from core.nets.build import build_model
from core.nets.config import MAX_PARAMETERS, config_from_dict

PAGE = "pages/sample.py"
# Within every bound of core.checkpoints.validate (11.4 M parameters, 45 MB, 0.43 GiB of activations at batch 64),
# yet ~72x the FLOPs per call of the shipped "tiny" MNIST UNet: wide channels at full resolution.
BIG_UNET = {"kind": "unet", "in_channels": 1, "image_size": 28, "channels": [192, 192], "num_res_blocks": [2, 2],
            "attention": False, "time_embed_dim": 64, "norm_groups": 8}


def counted_flops(config: dict, n: int) -> int:
    """FLOPs of one forward pass on n inputs as torch's own FLOP counter sees them (an independent count)."""
    model = build_model(config).eval()
    shape = (config["in_channels"], config["image_size"], config["image_size"]) if config["kind"] == "unet" else (config["data_dim"],)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.zeros((n, *shape)), torch.zeros(n, dtype=torch.long))
    return counter.get_total_flops()


@pytest.mark.parametrize("config", [{**MODELS["mnist_eps"][0], "out_channels": 1}, {**MODELS["moons_eps"][0], "out_dim": 2},
                                    cost.REFERENCE_CONFIG])
def test_call_flops_is_what_torch_counts(config):
    model = build_model(config)
    assert cost.call_flops(model, 3) == counted_flops(config, 3)
    # 20 calls at 1 GFLOP/s: the FLOPs of 20 calls, in seconds
    assert cost.sampling_seconds(model, 3, 20, 1e9) == pytest.approx(20 * counted_flops(config, 3) / 1e9)


def test_not_a_network_has_no_estimate():
    def oracle(x, t):
        return x

    assert cost.call_flops(oracle, 4) is None and cost.sampling_seconds(oracle, 4, 10, 1e9) is None
    assert cost.max_calls(oracle, 4, 10.0, 1e9) is None


def test_max_calls_is_the_step_cap():
    model = build_model({**MODELS["mnist_eps"][0], "out_channels": 1})
    per_call = counted_flops({**MODELS["mnist_eps"][0], "out_channels": 1}, 16)
    rate = 1e9
    assert cost.max_calls(model, 16, 60.0, rate) == int(60.0 * rate // per_call)
    assert cost.sampling_seconds(model, 16, cost.max_calls(model, 16, 60.0, rate), rate) <= 60.0
    assert cost.sampling_seconds(model, 16, cost.max_calls(model, 16, 60.0, rate) + 1, rate) > 60.0
    assert cost.max_calls(model, 16, 1e-9, rate) == 1  # never below one step


def test_the_rate_is_measured_once_per_process(monkeypatch):
    measured = []
    monkeypatch.setattr(cost, "_rate", [])
    monkeypatch.setattr(cost, "measure_flops_per_second", lambda: measured.append(1) or 2.5e10)
    assert cost.flops_per_second() == cost.flops_per_second() == 2.5e10 and len(measured) == 1


def test_the_reference_probe_gives_a_finite_rate():
    rate = cost.measure_flops_per_second()
    assert 1e6 < rate < 1e15  # FLOP/s: between a very slow machine and far beyond any CPU


def test_big_but_valid_config_passes_the_bounds_and_costs_many_times_the_reference():
    config = config_from_dict({**BIG_UNET, "out_channels": 1})
    assert config.parameter_count() < MAX_PARAMETERS and config.forward_bytes(SAMPLING_BATCH["unet"]) < MAX_SAMPLING_BYTES
    big, reference = build_model({**BIG_UNET, "out_channels": 1}), build_model(cost.REFERENCE_CONFIG)
    assert cost.call_flops(big, 1) > 60 * cost.call_flops(reference, 1)


@pytest.fixture(scope="module")
def big_checkpoint_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("big")
    save_tiny(folder / "mnist_eps.safetensors", *MODELS["mnist_eps"], seed=0)
    save_tiny(folder / "mnist_big.safetensors", BIG_UNET, "eps", "fixed_large", "mnist", [1, 28, 28], seed=1)
    return folder


def counting_sampler(monkeypatch):
    from core import sampling

    calls, original = [], sampling.run_sampler

    def counted(*args, **kwargs):
        calls.append(args[2])
        return original(*args, **kwargs)

    monkeypatch.setattr(sampling, "run_sampler", counted)
    return calls


def fresh_cache():
    from ui import runs

    runs.result_cache().__init__(runs.CACHE_ENTRIES)


def test_sample_page_asks_before_a_long_run_of_a_big_upload(monkeypatch, big_checkpoint_dir):
    fresh_cache()
    calls = counting_sampler(monkeypatch)
    at = open_page(monkeypatch, big_checkpoint_dir, PAGE, active="shipped:mnist_big")
    assert not at.exception and not calls  # nothing sampled on the first visit: the run waits for a yes
    warning = next(w.value for w in at.warning if "This run is estimated at about" in w.value)
    assert f"{TEST_T} calls of a network that costs" in warning and "on 16 samples" in warning
    assert at.button(key="sample_run_anyway").label == "Run anyway"


def test_run_anyway_runs_and_too_many_steps_are_refused_with_the_cap(monkeypatch, big_checkpoint_dir):
    fresh_cache()
    calls = counting_sampler(monkeypatch)
    tiny = build_model({**MODELS["mnist_eps"][0], "out_channels": 1})
    # A slow machine, fixed so the numbers do not depend on this one: the default run (16 samples, T steps) is
    # estimated at 300 s (it asks first, and is not refused); 64 samples would take 1200 s, over the 600 s cap.
    rate = cost.call_flops(tiny, 16) * TEST_T / 300.0
    monkeypatch.setattr(cost, "flops_per_second", lambda: rate)
    seconds = cost.sampling_seconds(tiny, 16, TEST_T, rate)
    assert seconds == pytest.approx(300.0)
    at = open_page(monkeypatch, big_checkpoint_dir, PAGE)
    assert not calls and any(f"about {seconds:.0f} s" in w.value for w in at.warning)
    at.button(key="sample_run_anyway").click().run()
    assert not at.exception and len(calls) == 1
    assert any("sampled in" in caption.value for caption in at.caption)
    assert not any("This run is estimated" in w.value for w in at.warning)  # the question is gone once it ran

    at.slider(key="sample_n").set_value(64).run()
    at.button(key="sample_run").click().run()
    cap = cost.max_calls(tiny, 64, 600.0, rate)
    assert cap < TEST_T and len(calls) == 1
    assert any(f"use at most {cap} steps" in error.value for error in at.error)
