"""AppTests of the Training objective page (pages/objective.py) through app.py, with tiny throwaway checkpoints."""

import math
import re

import pytest
from helpers import TEST_T, alpha_bars_by_hand, chart, check_link_and_reset, linear_betas, open_page, plain_scripts, presets

PAGE = "pages/objective.py"


def metric(at, label: str) -> str:
    return next(m.value for m in at.metric if m.label.startswith(label))


def test_algorithm1_weights_and_hybrid_text(monkeypatch, checkpoint_dir):
    at = open_page(monkeypatch, checkpoint_dir, PAGE)
    assert not at.error
    assert float(metric(at, "loss")) > 0
    pictures = chart(at, 0)
    assert [a["text"] for a in pictures["layout"]["annotations"]][:3] == ["x₀", "ε", "x<sub>t</sub>"]  # typeset by ui.figures.chart
    weights = chart(at, 1)
    beta_tilde = weights["data"][0]
    assert beta_tilde["x"][0] == 2 and len(beta_tilde["x"]) == TEST_T - 1
    assert float(metric(at, "$w_t$ at $t = 2$")) > float(metric(at, f"$w_t$ at $t = {TEST_T}$"))
    check = next(c.value for c in at.caption if c.value.startswith("Check"))
    numbers = [float(x.rstrip(".")) for x in re.findall(r"(?:is|=) ([0-9.]+(?:e[-+][0-9]+)?)", check)]
    assert numbers[0] == TEST_T and numbers[-2] == pytest.approx(numbers[-1], rel=1e-4)  # KL through normal_kl = w_t·δ²
    assert any("0.69× the reference weight" in m.value for m in at.markdown)
    assert len(at.expander) >= 3  # "show the code" beside each figure
    # choosing t moves the step
    at.checkbox(key="objective_fix_t").check().run()
    at.slider(key="objective_t").set_value(TEST_T).run()
    assert not at.exception and any(f"t = {TEST_T}" in m.value for m in at.markdown)


def test_bits_per_dim_button(monkeypatch, checkpoint_dir):
    at = open_page(monkeypatch, checkpoint_dir, PAGE)
    at.number_input(key="objective_bound_n").set_value(2).run()
    at.button(key="objective_bound_run").click().run()
    assert not at.exception and not at.error
    table = at.table[0].value
    assert set(table["model"]) == {"mnist_eps (shipped)", "mnist_x0 (shipped)", "mnist_v (shipped)"}
    for cell in table["bits/dim"]:
        mean, se = (float(x) for x in cell.split(" ± "))
        assert mean > 0 and se >= 0 and math.isfinite(mean)
    terms = chart(at, 2)
    assert len(terms["data"]) == 3 and len(terms["data"][0]["x"]) == TEST_T
    assert plain_scripts(at) == []  # the bound's table and captions too


def x0_weight(at) -> float:
    """The weight of x₀ in x_t that the page states ("so x_t = 0.8168 x₀ + …")."""
    text = next(m.value for m in at.markdown if "so $x_t$ =" in m.value)
    return float(re.search(r"so \$x_t\$ = ([0-9.]+)", text)[1])


def test_link_reset_presets_and_latex(monkeypatch, checkpoint_dir):
    at = open_page(monkeypatch, checkpoint_dir, PAGE)
    assert plain_scripts(at) == []
    at = check_link_and_reset(at, "objective", {"objective_fix_t": "true", "objective_t": "5", "objective_digit": "3"},
                              {"objective_fix_t": True, "objective_t": 5, "objective_digit": 3}, ("objective_bound_n", "99"))
    assert len(presets(at, "objective")) == 2
    alpha_bars = alpha_bars_by_hand(linear_betas(TEST_T))
    at.button(key="objective_preset_0").click().run()  # t = 1: x_t is the digit with √β₁ = 0.01 of noise
    assert at.slider(key="objective_t").value == 1 and x0_weight(at) == pytest.approx(alpha_bars[0] ** 0.5, abs=1e-4)
    assert (1 - alpha_bars[0]) ** 0.5 == pytest.approx(0.01, abs=1e-6)
    at.button(key="objective_preset_1").click().run()  # t = T: weight √ᾱ_T (0.006 for the shipped T = 1000)
    assert at.slider(key="objective_t").value == TEST_T
    assert x0_weight(at) == pytest.approx(alpha_bars[-1] ** 0.5, abs=1e-4)
    assert round(alpha_bars_by_hand(linear_betas(1000))[-1] ** 0.5, 3) == 0.006
