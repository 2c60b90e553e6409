"""The export and long-work helpers the pages share: ui/exports.py (CSV, .npz, commands), ui/runs.py (cache),
ui/figures.py (honest axes, side-by-side PNG rows)."""

import csv
import io
import json
import shlex
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import pytest
from streamlit.testing.v1 import AppTest

from ui.exports import command_line, csv_text, npz_bytes
from ui.figures import OKABE_ITO, honest_axes, side_by_side
from ui.runs import ResultCache

ROOT = Path(__file__).resolve().parent.parent


def test_csv_keeps_exact_floats_and_gaps():
    text = csv_text({"t": [1, 2, 3], "beta": [1e-06, 0.02, None]})
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == ["t", "beta"] and rows[1] == ["1", "1e-06"] and rows[3] == ["3", ""]
    assert float(rows[2][1]) == 0.02  # repr round-trips the float exactly
    with pytest.raises(ValueError, match="equal lengths"):
        csv_text({"a": [1], "b": [1, 2]})


def test_npz_round_trip_without_pickle():
    samples = np.random.default_rng(0).normal(size=(4, 1, 28, 28)).astype(np.float32)
    data = np.load(io.BytesIO(npz_bytes({"samples": samples, "seed": 3, "method": "ddim"})), allow_pickle=False)
    assert np.array_equal(data["samples"], samples) and int(data["seed"]) == 3 and str(data["method"]) == "ddim"


def test_command_line_quotes_and_flags():
    command = command_line("core.sample", {"checkpoint": "my models/a.safetensors", "steps": 10, "eta": None,
                                           "clip": True, "n": 16, "verbose": False})
    assert shlex.split(command) == ["python", "-m", "core.sample", "--checkpoint", "my models/a.safetensors",
                                    "--steps", "10", "--clip", "--n", "16"]


def test_result_cache_is_a_bounded_lru():
    cache = ResultCache(2)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1  # "a" is now the most recent
    cache.put("c", 3)
    assert cache.get("b") is None and cache.get("a") == 1 and cache.get("c") == 3


def test_honest_axes_power_exponents_and_decades():
    fig = honest_axes(go.Figure(go.Scatter(x=[1, 2], y=[1e-9, 1e-3])).update_layout(yaxis_type="log"))
    assert fig.layout.yaxis.exponentformat == "power" and fig.layout.yaxis.dtick == 1  # 10⁻⁹ … 10⁻³, every decade
    assert fig.layout.xaxis.exponentformat == "power" and fig.layout.xaxis.dtick is None  # linear axes keep auto ticks


def test_side_by_side_rows_of_pictures():
    grey, rgb = np.zeros((3, 2), np.uint8), np.full((2, 4, 3), 7, np.uint8)
    row = side_by_side([grey, rgb], gap=1)
    assert row.shape == (3, 7, 3) and row[0, 2].tolist() == [255, 255, 255] and row[0, 3].tolist() == [7, 7, 7]


def test_paired_colours_are_okabe_ito_and_the_schedule_lab_uses_them():
    at = AppTest.from_file(str(ROOT / "pages" / "schedules.py"), default_timeout=60).run()
    beta = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert [trace["line"]["color"] for trace in beta["data"]] == list(OKABE_ITO[:2])
    assert beta["layout"]["yaxis"]["type"] == "log" and beta["layout"]["yaxis"]["dtick"] == 1
    assert beta["layout"]["yaxis"]["exponentformat"] == "power"
    assert at.number_input(key="schedules_a_beta_start").proto.format == "%.2e"  # 1e-06 reads 1.00e-06, not 0.00000


def test_train_command_reproduces_the_playground_config():
    from core.lab import playground
    from core.train import _config_from, build_parser
    from ui.exports import train_command

    config = playground.playground_config("two_moons", "cosine", 200, "v", "learned_range", "small", 1500, False)
    words = shlex.split(train_command(config, "moons.safetensors"))
    assert words[:3] == ["python", "-m", "core.train"] and words[-2:] == ["--out", "moons.safetensors"]
    assert _config_from(build_parser().parse_args(words[3:])) == config  # the CLI builds exactly this config


def _snippet(at, start: str) -> str:
    return next(code.value for code in at.code if code.value.startswith(start))


def test_python_snippets_run_and_give_what_the_pages_show(monkeypatch, checkpoint_dir):
    """Each page's "Reproduce this" Python snippet runs as printed (from the repository root) and computes the
    numbers the page shows."""
    import contextlib
    import os

    import torch
    from helpers import open_page

    from core import runtime, sampling
    from ui import runs

    monkeypatch.chdir(checkpoint_dir)  # models outside the repository are named by file name: run beside them
    runs.result_cache().__init__(runs.CACHE_ENTRIES)
    at = open_page(monkeypatch, checkpoint_dir, "pages/sample.py")
    scope: dict = {}
    exec(_snippet(at, "from core import checkpoints"), scope)
    shown = next(value[0][0] for key, value in runs.result_cache()._items.items() if key[0] == "sample")
    assert torch.equal(scope["samples"], shown)
    if runtime.autocast_dtype("cpu") is not None:  # both are the bf16 samples, not one bf16 and one fp32
        with monkeypatch.context() as fp32:
            fp32.setattr(runtime, "cpu_bf16_supported", lambda: False)
            plain = sampling.run_sampler(scope["model"], scope["diffusion"], scope["settings"], tuple(shown.shape), seed=0)
        assert not torch.equal(plain, shown)

    at.switch_page("pages/denoise.py").run()
    scope = {}
    with open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet):
        exec(_snippet(at, "import torch"), scope)
    assert scope["sweep"].eps_mse.shape == (40,)  # T = 40 timesteps, the page's default grid

    at.switch_page("pages/schedules.py").run()
    scope = {}
    exec(_snippet(at, "from core.diffusion.schedules import make_schedule"), scope)
    beta = json.loads(at.get("plotly_chart")[0].proto.spec)["data"][0]["y"]
    assert scope["curves_A"]["beta"].tolist() == pytest.approx(beta)

    at.switch_page("pages/reverse_step.py").run()
    scope = {}
    with open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet):
        exec(_snippet(at, "from core.diffusion.schedules import make_schedule"), scope)
    table = {row["KL(q ‖ p) [nats]"] for _, row in at.table[0].value.iterrows()}
    assert {f"{kl:.3e}" for kl in scope["step"].kls.values()} == table

    at.switch_page("pages/playground_2d.py").run()
    scope = {}
    exec(_snippet(at, "from core import TrainConfig"), scope)
    assert scope["config"].dataset == at.selectbox(key="pg_toy").value
