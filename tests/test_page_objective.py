"""AppTests of the Training objective page (pages/objective.py) through app.py, with tiny throwaway checkpoints."""

import math
import re

import pytest
from helpers import TEST_T, chart, open_page

PAGE = "pages/objective.py"


def metric(at, label: str) -> str:
    return next(m.value for m in at.metric if m.label.startswith(label))


def test_algorithm1_weights_and_hybrid_text(monkeypatch, checkpoint_dir):
    at = open_page(monkeypatch, checkpoint_dir, PAGE)
    assert not at.error
    assert float(metric(at, "loss")) > 0
    pictures = chart(at, 0)
    assert [a["text"] for a in pictures["layout"]["annotations"]][:3] == ["x₀", "ε", "x_t"]
    weights = chart(at, 1)
    beta_tilde = weights["data"][0]
    assert beta_tilde["x"][0] == 2 and len(beta_tilde["x"]) == TEST_T - 1
    assert float(metric(at, "λ at t = 2")) > float(metric(at, f"λ at t = {TEST_T}"))
    check = next(c.value for c in at.caption if c.value.startswith("Check"))
    numbers = [float(x.rstrip(".")) for x in re.findall(r"(?:is|=) ([0-9.]+(?:e[-+][0-9]+)?)", check)]
    assert numbers[0] == TEST_T and numbers[-2] == pytest.approx(numbers[-1], rel=1e-4)  # KL through normal_kl = λ_t·δ²
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
