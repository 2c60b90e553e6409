"""Hostile checkpoint files: each is rejected with a one-line message, in bounded memory and bounded work.

Every case is a complete file (bytes) as an attacker could upload it. For each, core.checkpoints.load_bytes must
raise CheckpointError with the expected message, and while it runs:

* Python-level allocations (tracemalloc peak) stay below PYTHON_PEAK_BYTES,
* the process's peak resident memory grows by less than RSS_GROWTH_BYTES (Linux: the peak is reset through
  /proc/self/clear_refs before each case, then read from VmHWM),
* no network module is constructed at all when the config is out of bounds (counted by wrapping
  torch.nn.Module.__init__), and at most the file's own small model otherwise,
* a generous time guard (TIME_GUARD_S) only catches hangs; the bounds above are what is asserted.

The files the issue lists (#13) are all here: MLP depth 1e5 and 1e6, UNet with 1e5 blocks, hidden 2^62, data
shape 1x100000x100000, 3e38 weights, deeply nested JSON, a huge header, wrong dtypes, NaN, Markdown/HTML strings.
So are those of #21: β = 1e-300 (posterior 0/0), ᾱ_T = 0, a network infinite at 499 of 1,000 timesteps (none of them
among the 4 an older probe tried), a lone surrogate in the model-size text, "mnist" on an 8x8 or 3x32x32 UNet.
What the pages show for these files: tests/test_hostile_pages.py.
"""

from __future__ import annotations

import json
import pickle
import re
import struct
import tempfile
import time
import tracemalloc
from pathlib import Path

import pytest
import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from core import checkpoints as ck
from core.checkpoints import CheckpointError
from core.diffusion.gaussian_diffusion import GaussianDiffusion
from core.diffusion.schedules import make_schedule
from core.nets.build import build_model

PYTHON_PEAK_BYTES = 48 * 2**20  # tracemalloc peak while loading one hostile file (the largest is ~5 MB)
RSS_GROWTH_BYTES = 256 * 2**20  # growth of the process's peak resident memory during one load
TIME_GUARD_S = 5.0  # only a guard against hangs (a depth-1e6 MLP used to run for minutes)
MLP = {"kind": "mlp", "data_dim": 2, "out_dim": 2, "hidden": 16, "depth": 2, "time_embed_dim": 8, "fourier_frequencies": 0}
UNET = {"kind": "unet", "in_channels": 1, "out_channels": 1, "image_size": 8, "channels": [8, 16],
        "num_res_blocks": [1, 1], "attention": False, "num_heads": 4, "time_embed_dim": 16, "norm_groups": 4,
        "dropout": 0.0}


def good_file(config=MLP, shape=(2,), dataset="two_moons", scale=0.1, T=20, edit_weights=None) -> bytes:
    model = build_model(config)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.copy_(scale * torch.randn(parameter.shape, generator=generator))
        if edit_weights is not None:
            edit_weights(model)
    diffusion = GaussianDiffusion(make_schedule("linear", T), "eps", "fixed_large")
    info = ck.CheckpointInfo.describe(model, diffusion, data={"dataset": dataset, "shape": list(shape)}, steps=1)
    with tempfile.TemporaryDirectory() as folder:
        return ck.save(Path(folder) / "base.safetensors", model.eval(), diffusion, info).read_bytes()


def parts(data: bytes):
    """(rdl document, other metadata, tensors), parsed independently of core.checkpoints."""
    (n,) = struct.unpack("<Q", data[:8])
    metadata = json.loads(data[8:8 + n])["__metadata__"]
    return json.loads(metadata.pop("rdl")), metadata, st_load(data)


def with_doc(edit, base=None) -> bytes:
    doc, metadata, tensors = parts(base or good_file())
    edit(doc)
    return st_save(tensors, metadata={"rdl": json.dumps(doc), **metadata})


def with_raw_doc(text: str) -> bytes:
    _, metadata, tensors = parts(good_file())
    return st_save(tensors, metadata={"rdl": text, **metadata})


def with_optimizer_skeleton(text: str) -> bytes:
    doc, metadata, tensors = parts(good_file())
    doc["has_optimizer"] = True
    return st_save(tensors, metadata={"rdl": json.dumps(doc), "rdl_optimizer": text, **metadata})


def with_tensors(edit) -> bytes:
    doc, metadata, tensors = parts(good_file())
    edit(tensors)
    return st_save(tensors, metadata={"rdl": json.dumps(doc), **metadata})


def raw_header(header: str, payload: bytes = b"") -> bytes:
    encoded = header.encode()
    return struct.pack("<Q", len(encoded)) + encoded + payload


def model_edit(**fields):
    return lambda doc: doc["model"].update(fields)


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def fill(tensors, value):
    for name in tensors:
        tensors[name] = torch.full_like(tensors[name], value)


def first_weight(value):
    def edit(tensors):
        name = next(n for n in tensors if n.endswith("weight"))
        tensors[name] = tensors[name].clone()
        tensors[name].view(-1)[0] = value
    return edit


def many_tensors(tensors):
    tensors.update({f"ema.extra{i}": torch.zeros(1) for i in range(ck.MAX_TENSORS + 10)})


def doc_with_unet_config(config, shape):
    return lambda doc: doc.update(model={**UNET, **config}, data={"dataset": None, "shape": shape})


def schedule_edit(**fields):
    return lambda doc: doc["diffusion"]["schedule"].update(fields)


def custom_betas(betas):
    return lambda doc: doc["diffusion"].update(schedule={"kind": "custom", "betas": betas})


def infinite_when_sin_t_is_positive(model):
    """The time MLP's first unit reads sin(t) (the sinusoidal embedding's fastest frequency) times 1e30, the second
    layer multiplies again: the embedding overflows to infinity exactly where sin(t) > 0, at 499 of the timesteps
    0..999, and none of 0, 333, 666, 999 (sin ≤ 0 there), the 4 the probe used to try. Every weight is finite."""
    first, second = model.time_mlp[0], model.time_mlp[2]
    first.weight.zero_()
    first.bias.zero_()
    first.weight[0, 0] = 1e30
    second.weight.zero_()
    second.weight[:, 0] = 1e30


def timestep_bomb(config=MLP, shape=(2,), dataset="two_moons") -> bytes:
    return good_file(config, shape, dataset, T=1000, edit_weights=infinite_when_sin_t_is_positive)


UNET_3X32 = {**UNET, "in_channels": 3, "out_channels": 3, "image_size": 32}


def named_dataset(dataset, config=MLP, shape=(2,)) -> bytes:
    """A valid file of this model and data shape (no dataset named), then labelled `dataset`."""
    return with_doc(lambda doc: doc["data"].update(dataset=dataset), good_file(config, shape, None))


def with_training(training):
    return with_doc(lambda doc: doc.update(training=training))


# name -> (file bytes factory, expected message regex, whether the file's own small model may be built before the
# rejection: its "meta" skeleton (shapes, no memory) to compare the weights with, or the real one for the probe)
CASES = {
    "mlp depth 1e5": (lambda: with_doc(model_edit(depth=100_000)), r"depth=100000 is not allowed; expected an integer in 1\.\.32", False),
    "mlp depth 1e6": (lambda: with_doc(model_edit(depth=10**6)), r"depth=1000000 is not allowed", False),
    "unet 1e5 blocks": (lambda: with_doc(doc_with_unet_config({"num_res_blocks": [100_000, 100_000]}, [1, 8, 8])),
                        r"num_res_blocks\[0\]=100000 is not allowed; expected an integer in 1\.\.4", False),
    "hidden 2^62": (lambda: with_doc(model_edit(hidden=2**62)), r"hidden=4611686018427387904 is not allowed", False),
    "channels 2^40": (lambda: with_doc(doc_with_unet_config({"channels": [8, 2**40]}, [1, 8, 8])),
                      r"channels\[1\]=1099511627776 is not allowed", False),
    "data shape 1x100000x100000": (lambda: with_doc(lambda d: d.update(data={"dataset": "mnist", "shape": [1, 100000, 100000]})),
                                   r"data\['shape'\]=\[1, 100000, 100000\] is not allowed", False),
    "data shape other than the model's input": (lambda: with_doc(lambda d: d.update(data={"dataset": "mnist", "shape": [1, 28, 28]})),
                                                r"data shape \[1, 28, 28\] does not match the model's input \[2\]", False),
    "image side 4096 (too large for sampling memory)": (
        lambda: with_doc(doc_with_unet_config({"in_channels": 4, "out_channels": 4, "image_size": 64, "channels": [256, 256],
                                               "norm_groups": 8}, [4, 64, 64])),
        r"sampling 64 examples at once would need about \d+\.\d GiB .* more than the limit of 1 GiB", False),
    "too many parameters": (lambda: with_doc(model_edit(hidden=2048, depth=32)), r"parameters, more than the limit of 50,000,000", False),
    "T = 10^9": (lambda: with_doc(lambda d: d["diffusion"]["schedule"].update(T=10**9)),
                 r"invalid diffusion config in checkpoint \(T=1000000000 is not allowed; expected an integer in 1\.\.10000", False),
    "weights of 3e38": (lambda: with_tensors(lambda t: fill(t, 3e38)), r"output on a probe batch is not finite", True),
    "NaN weight": (lambda: with_tensors(first_weight(float("nan"))), r"contains NaN or infinite values", True),
    "infinite weight": (lambda: with_tensors(first_weight(float("inf"))), r"contains NaN or infinite values", True),
    "float64 weights": (lambda: with_tensors(lambda t: t.update({k: v.double() for k, v in t.items()})), r"torch\.float64", True),
    "int32 weights": (lambda: with_tensors(lambda t: t.update({k: v.int() for k, v in t.items()})), r"torch\.int32", True),
    "too many tensors": (lambda: with_tensors(many_tensors), rf"more than the limit of {ck.MAX_TENSORS:,}", False),
    "deeply nested rdl JSON": (lambda: with_raw_doc(nested(100_000)), r"nests 100000 levels deep, more than the limit of 32", False),
    "deeply nested header": (lambda: raw_header('{"a":' + nested(50_000) + "}"), r"nests 50001 levels deep", False),
    "deeply nested optimizer state": (lambda: with_optimizer_skeleton(nested(20_000)),
                                      r"'rdl_optimizer' metadata nests 20000 levels deep", True),
    "huge header length": (lambda: struct.pack("<Q", 2**40) + b"{}", r"header length 1099511627776 bytes is absurd", False),
    "header just over the limit": (lambda: raw_header(" " * (ck.MAX_HEADER_BYTES + 1)), r"is absurd; the limit is", False),
    "rdl document over its size limit": (lambda: with_doc(lambda d: d.update(notes="x" * (3 * 2**20))),
                                         r"'rdl' metadata is \d[\d,]* characters long, more than the limit", False),
    "integer with 5000 digits": (lambda: with_raw_doc('{"format_version": ' + "9" * 5000 + "}"), r"is not valid JSON .*digits", False),
    "NaN in the JSON": (lambda: with_raw_doc(json.dumps({**parts(good_file())[0], "final_loss": float("nan")})),
                        r"'final_loss'=nan is not allowed", False),
    "HTML and Markdown as the dataset name": (
        lambda: with_doc(lambda d: d["data"].update(dataset="<img src=x onerror=alert(1)>**bold**[link](http://x)")),
        r"data\['dataset'\]='<img src=x onerror=alert\(1\)>\*\*bold.* is not allowed; expected one of mnist", False),
    "notes over their limit": (lambda: with_doc(lambda d: d.update(notes="n" * 30_000)), r"'notes' must be a string of at most", False),
    "wrong type for a config field": (lambda: with_doc(model_edit(depth="2")), r"depth='2' is not allowed", False),
    "not UTF-8": (lambda: struct.pack("<Q", 10) + b'{"a": "\xff"}', r"not UTF-8 text", False),
    "a pickle": (lambda: pickle.dumps({"ema.w": [1, 2, 3]}), r"not a safetensors checkpoint", False),
    "truncated file": (lambda: good_file()[:-100], r"corrupted or truncated", False),
    # issue #21: schedules and outputs that are not finite
    "β = 1e-300 (ᾱ_1 = 1: the posterior is 0/0)": (
        lambda: with_doc(schedule_edit(beta_start=1e-300)),
        r"invalid diffusion config in checkpoint \(the schedule's β_1=1e-300 is below 1e-12, too small for float64 to "
        r"hold 1 − β accurately \(ᾱ_1 = 1\), and the posterior and fewer-step sampling divide by ᾱ's change\)", False),
    "a custom β of 1e-300 after 0.5 (ᾱ repeats: a respaced β is 0)": (
        lambda: with_doc(custom_betas([0.5, 1e-300] + [0.02] * 18)), r"the schedule's β_2=1e-300 is below 1e-12", False),
    "ᾱ_T = 0 (β_end = 0.999 over 1,000 steps)": (
        lambda: with_doc(schedule_edit(T=1000, beta_end=0.999)),
        r"the schedule's ᾱ_T=0 is below 1e-30: .* multiply the network's error by infinity", False),
    "ᾱ_T = 1e-44 (T = 10,000 without scaling β)": (
        lambda: with_doc(schedule_edit(T=10_000)), r"the schedule's ᾱ_T=1\.15e-44 is below 1e-30", False),
    "output infinite at 499 of 1,000 timesteps": (
        timestep_bomb, r"output on a probe batch is not finite \(NaN or infinite\) at 499 of the 1000 timesteps "
                       r"probed \(the first: t=1\)", True),
    "UNet output infinite at 499 of 1,000 timesteps": (
        lambda: timestep_bomb(UNET, (1, 8, 8), None), r"not finite \(NaN or infinite\) at \d+ of the \d+ timesteps", True),
    # issue #21: text that cannot be encoded
    "lone surrogate in the model-size text": (
        lambda: with_training({"config": {"model_size": "\ud800"}}),
        r"'rdl' metadata holds text that is not valid Unicode: training\.config\.model_size='\\ud800' "
        r"\(a lone UTF-16 surrogate", False),
    "lone surrogate in the notes": (lambda: with_doc(lambda d: d.update(notes="ok " + "\udfff")),
                                    r"not valid Unicode: notes='ok \\udfff'", False),
    "lone surrogate in a key": (lambda: with_training({"loss": [1.0], "\udc80x": 2}),
                                r"not valid Unicode: a key of training, '\\udc80x'", False),
    # issue 19: the training record's new layout (progress = ProgressRecord.to_json()) and the old one it is read from
    "a loss curve longer than its averaging allows (150,000 points)": (
        lambda: with_training({"config": {}, "progress": {"step": 150_000, "seconds": 1.0, "loss_steps": list(range(1, 150_001)),
                                                           "losses": [0.5] * 150_000, "profile_edges": [0, 10], "profile": [0.5]},
                               "loss_averaging": {"max_points": 500, "bucket": 1, "pending_sum": 0.0, "pending_count": 0}}),
        r"'loss_averaging' cannot be read back \(loss averaging: a curve of 150000 points", False),
    "profile edges up to 10^400": (
        lambda: with_training({"config": {}, "progress": {"step": 1, "seconds": 1.0, "loss_steps": [], "losses": [],
                                                           "profile_edges": [0, 10**400], "profile": [0.5]},
                               "profile_averaging": {"window": 512, "counts": [1]}}),
        r"'profile_averaging' cannot be read back \(T \(the last profile edge\)=10000000000", False),
    "profile edges up to 10^15": (
        lambda: with_training({"config": {}, "progress": {"step": 1, "seconds": 1.0, "loss_steps": [], "losses": [],
                                                           "profile_edges": [0, 10**15], "profile": [0.5]},
                               "profile_averaging": {"window": 512, "counts": [1]}}),
        r"'profile_averaging' cannot be read back \(T \(the last profile edge\)=1000000000000000 is not allowed", False),
    "old layout: a profile of 10^9 bins": (
        lambda: with_training({"config": {}, "step": 1, "loss_history": {"max_points": 500, "bucket": 1, "steps": [], "losses": [],
                                                                         "pending_sum": 0.0, "pending_count": 0},
                               "profile": {"T": 10**9, "bins": 10**9, "window": 512, "averages": [0.5], "counts": [1]}}),
        r"training: the old layout's profile must hold T \(at most 10\^9\), bins \(at most T\) and one average per bin", False),
    "a progress entry that is not a record": (
        lambda: with_training({"config": {}, "progress": "<b>x</b>"}),
        r"training: 'progress'='<b>x</b>' is not allowed; expected a ProgressRecord, its JSON or None", False),
    # issue #21: a dataset name that does not fit the model
    "'mnist' on an 8x8 UNet": (
        lambda: named_dataset("mnist", UNET, (1, 8, 8)),
        r"data\['dataset'\]='mnist' holds 1x28x28 images, but the model's input is \[1, 8, 8\]", False),
    "'mnist' on a 3x32x32 UNet": (
        lambda: named_dataset("mnist", UNET_3X32, (3, 32, 32)),
        r"data\['dataset'\]='mnist' holds 1x28x28 images, but the model's input is \[3, 32, 32\]", False),
    "'fashion_mnist' on points": (lambda: named_dataset("fashion_mnist"),
                                  r"'fashion_mnist' holds 1x28x28 images, but the model's input is \[2\]", False),
    "'two_moons' on a UNet": (lambda: named_dataset("two_moons", UNET, (1, 8, 8)),
                              r"data\['dataset'\]='two_moons' holds 2-D points, but the model's input is \[1, 8, 8\]", False),
    "'swiss_roll' on 3-D points": (lambda: named_dataset("swiss_roll", {**MLP, "data_dim": 3, "out_dim": 3}, (3,)),
                                   r"'swiss_roll' holds 2-D points, but the model's input is \[3\]", False),
}


class ModuleCounter:
    """Counts torch.nn.Module constructions while active."""

    def __init__(self, monkeypatch):
        self.count = 0
        original = torch.nn.Module.__init__

        def counting(module, *args, **kwargs):
            self.count += 1
            original(module, *args, **kwargs)

        monkeypatch.setattr(torch.nn.Module, "__init__", counting)


def _peak_rss_bytes() -> int | None:
    try:
        status = Path("/proc/self/status").read_text()
        return int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1)) * 1024
    except (OSError, AttributeError):
        return None


def _reset_peak_rss() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def test_there_are_at_least_twenty_hostile_files():
    assert len(CASES) >= 20


@pytest.mark.parametrize("name", list(CASES))
def test_hostile_file_is_rejected_in_bounded_memory_and_work(name, monkeypatch):
    make, message, may_build = CASES[name]
    data = make()
    small_model_modules = sum(1 for _ in build_model(UNET).modules())  # the largest model a valid base file holds
    counter = ModuleCounter(monkeypatch)
    rss_measured = _reset_peak_rss()
    rss_before = _peak_rss_bytes()
    tracemalloc.start()
    started = time.process_time()
    try:
        with pytest.raises(CheckpointError, match=message) as raised:
            ck.load_bytes(data, name="hostile.safetensors")
    finally:
        cpu_seconds = time.process_time() - started
        _, python_peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    rss_growth = _peak_rss_bytes() - rss_before if rss_measured and rss_before else 0

    assert "\n" not in str(raised.value) and len(str(raised.value)) < 600  # one line, never a dump of the file
    assert python_peak < PYTHON_PEAK_BYTES, f"{python_peak / 2**20:.1f} MB of Python allocations"
    assert rss_growth < RSS_GROWTH_BYTES, f"peak resident memory grew by {rss_growth / 2**20:.0f} MB"
    assert counter.count <= (2 * small_model_modules if may_build else 0), f"{counter.count} modules built"
    assert cpu_seconds < TIME_GUARD_S


def test_the_base_files_are_valid():
    """The hostile files are small edits of these: they must load, so each case tests only its own edit."""
    for data in (good_file(), good_file(UNET, (1, 8, 8), None)):
        model, _, metadata = ck.load_bytes(data)
        assert metadata["steps"] == 1 and not model.training


def test_json_depth_ignores_brackets_inside_strings_and_escapes():
    from core.checkpoints.info import json_depth

    cases = {'{"a": "[[[[{{"}': 1, '["\\"[[", [1]]': 2, '["\\\\", [[2]]]': 3, "": 0, nested(7): 7}
    for text, depth in cases.items():
        assert json_depth(text) == depth, text
        assert json_depth(text, chunk=1) == depth, text  # chunk borders carry the string and escape state
        if text:
            json.loads(text)  # each is valid JSON, so the depths above are those json.loads meets


def test_markdown_and_html_from_a_file_are_shown_as_text():
    from ui.text import ZERO_WIDTH_SPACE, escape_markdown, safe_name

    hostile = "<img src=x onerror=alert(1)>**bold** [link](http://x) ![i](http://x/i.png) :red[x] $x$"
    shown = escape_markdown(hostile)
    for piece in ("<", "*", "[", "]", "(", ")", "!", ":", "$"):
        assert all(shown[i - 1] == "\\" for i, c in enumerate(shown) if c == piece), piece  # every one escaped
    assert shown.replace("\\", "").replace(ZERO_WIDTH_SPACE, "") == hostile
    assert "http://\u200bx" in shown.replace("\\", "") and escape_markdown("a@b.c www.x").count(ZERO_WIDTH_SPACE) == 2
    assert safe_name("[click](http://evil)**x**.safetensors") == "click--http---evil---x--.safetensors"
    assert safe_name("mnist_eps.safetensors") == "mnist_eps.safetensors"  # intraword underscores are kept
    assert safe_name("_x_.safetensors") == "x-.safetensors"


def test_the_known_datasets_have_the_shapes_the_check_expects():
    """info.DATASET_SHAPES (what a named dataset's model must take) against the data itself, and against the
    training side's shapes (core.training.fits.DATA_SHAPES), so the two never disagree."""
    from core.checkpoints.info import DATASET_SHAPES
    from core.data.datasets import DATASET_NAMES, IMAGE_DATASET_NAMES, load_dataset
    from core.data.idx import DatasetFileNotFoundError
    from core.training.fits import DATA_SHAPES

    assert set(DATASET_SHAPES) == set(DATASET_NAMES)
    checked = 0
    for name in DATASET_NAMES:
        try:
            data = load_dataset(name, "test", n_points=16).data
        except DatasetFileNotFoundError:  # mnist_full and fashion_mnist are IDX files this machine may not hold
            continue
        assert tuple(data.shape[1:]) == DATASET_SHAPES[name], name
        checked += 1
    assert checked >= 6  # the MNIST subset and the five toys at least
    for name, shape in DATASET_SHAPES.items():
        assert shape == DATA_SHAPES["image" if name in IMAGE_DATASET_NAMES else "points"], name


def test_save_refuses_text_no_load_would_accept(tmp_path):
    """A lone surrogate reaches a producer too (Python decodes undecodable command-line bytes to surrogates):
    save() refuses it with the same words, instead of writing a file that no load accepts."""
    model = build_model(MLP)
    diffusion = GaussianDiffusion(make_schedule("linear", 20), "eps", "fixed_large")
    with pytest.raises(ValueError, match=r"not valid Unicode: notes='run \\udcff'"):
        ck.save(tmp_path / "m.safetensors", model, diffusion, {"notes": "run \udcff"})
    assert not list(tmp_path.iterdir())
    emoji = ck.save(tmp_path / "e.safetensors", model, diffusion, {"notes": "ok \U0001f600"})  # a real pair is fine
    assert ck.load(emoji)[2]["notes"] == "ok \U0001f600"


def test_a_surrogate_shown_anyway_is_written_as_its_escape():
    """The display side: text that never passed the checks (any source) still reaches the page as valid UTF-8."""
    from ui.text import encodable, escape_markdown

    shown = escape_markdown("size \ud800 **x**")
    shown.encode("utf-8")  # what Streamlit does with every string it sends
    assert shown == "size \\\\ud800 \\*\\*x\\*\\*"
    assert encodable("a\udcffb") == "a\\udcffb" and encodable("ünï \U0001f600") == "ünï \U0001f600"


@pytest.mark.parametrize("config, shape", [(MLP, (2,)), (UNET, (1, 8, 8))], ids=["mlp", "unet"])
def test_the_probe_that_finds_the_timestep_bomb_does_the_work_its_budget_allows(config, shape):
    """Issue #21, item 3, its work counted in FLOPs (torch's own counter, not a clock): refusing the network infinite at
    499 of 1,000 timesteps costs exactly one forward pass per probed timestep, and never more than PROBE_FLOPS."""
    from torch.utils.flop_counter import FlopCounterMode

    from core.checkpoints.validate import forward_flops, probe_timesteps
    from core.nets.config import config_from_dict

    data = timestep_bomb(config, shape, None)
    net_config = config_from_dict(config)
    probed = len(probe_timesteps(net_config, 1000))
    with FlopCounterMode(display=False) as counter, pytest.raises(CheckpointError, match=rf"of the {probed} timesteps probed"):
        ck.load_bytes(data, name="hostile.safetensors")
    assert counter.get_total_flops() == probed * forward_flops(net_config)
    assert counter.get_total_flops() <= max(ck.PROBE_FLOPS, ck.PROBE_BATCH * forward_flops(net_config))
