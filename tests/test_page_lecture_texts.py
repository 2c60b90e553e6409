"""AppTests of the lecture texts of issue 18 item 1: the captions say what the figures show, with numbers computed
independently here (linear β's by hand, eq. 4's ᾱ), never copied from the page."""

import math
from pathlib import Path

import pytest
from helpers import TEST_T, alpha_bars_by_hand, linear_betas, open_page
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parent.parent


def all_text(at) -> str:
    return " ".join([m.value for m in at.markdown] + [c.value for c in at.caption])


def test_sample_caption_says_eps_x0_is_amplified_noise(monkeypatch, checkpoint_dir):
    at = open_page(monkeypatch, checkpoint_dir, "pages/sample.py")
    assert not at.exception
    alpha_bar_T = alpha_bars_by_hand(linear_betas(TEST_T))[-1]
    text = all_text(at)
    assert f"({math.sqrt(1 / alpha_bar_T - 1):.0f} at $t = T$ here)" in text
    assert "**amplified noise**" in text and "blurry average; the details" not in text


def test_home_separates_nu_from_iddpm_v(monkeypatch, checkpoint_dir):
    at = open_page(monkeypatch, checkpoint_dir, "pages/home.py")
    text = all_text(at)
    assert "the paper's $v$" not in text and "that weight is $(\\nu+1)/2$, not $\\nu$" in text


def test_objective_names_two_weights_differently(monkeypatch, checkpoint_dir):
    at = open_page(monkeypatch, checkpoint_dir, "pages/objective.py")
    assert not at.exception
    labels = [m.label for m in at.metric]
    assert any(label.startswith("$w_t$ at $t = 2$") for label in labels)
    assert not any("lambda" in label for label in labels)  # λ is kept for Improved DDPM's hybrid weight only
    assert "This $w_t$ is the bound's weight of one step; $\\lambda$ in the next section" in all_text(at)


def test_reverse_step_finishes_the_collapse_argument():
    at = AppTest.from_file(str(ROOT / "pages" / "reverse_step.py"), default_timeout=90).run()
    assert not at.exception
    T = 100  # the ablation's default: linear β scaled with T, σ² = β (fixed_large)
    betas = [b * 1000 / T for b in linear_betas(T)]
    missing = sum(betas[1:])  # every step but the last adds σ² = β
    text = all_text(at)
    assert "law of total variance" in text
    assert f"= **{missing:.3g}** per coordinate" in text
    assert missing == pytest.approx(10.05, rel=0.01)  # T·(β_start + β_end)/2 · 1000/T, minus the first β


def test_reverse_step_shows_later_steps_correcting_an_error():
    at = AppTest.from_file(str(ROOT / "pages" / "reverse_step.py"), default_timeout=90).run()
    metrics = {m.label: float(m.value.rstrip("%")) / 100 for m in at.metric if m.label.startswith("left at x₀")}
    assert metrics["left at x₀ · DDPM"] < metrics["left at x₀ · DDIM η = 0"]
    at.slider(key="reverse_fix_step").set_value(5).run()  # perturbed late: little time left to correct
    assert not at.exception
    late = {m.label: float(m.value.rstrip("%")) / 100 for m in at.metric if m.label.startswith("left at x₀")}
    assert late["left at x₀ · DDPM"] > metrics["left at x₀ · DDPM"]


def test_schedules_derives_the_closed_form_and_checks_it(monkeypatch, checkpoint_dir):
    at = open_page(monkeypatch, checkpoint_dir, "pages/schedules.py")
    assert not at.exception
    table = next(t.value for t in at.table if "chain variance" in t.value.columns)
    alpha_bars = alpha_bars_by_hand(linear_betas(1000))  # the page's default schedule: linear, T = 1000
    assert [int(t) for t in table["t"]] == [250, 500, 1000]
    for _, row in table.iterrows():
        ab = alpha_bars[int(row["t"]) - 1]
        assert float(row["√ᾱₜ (eq. 4)"]) == pytest.approx(math.sqrt(ab), abs=1e-4)
        assert float(row["mₜ (recursion)"]) == pytest.approx(math.sqrt(ab), abs=1e-4)
        assert float(row["vₜ (recursion)"]) == pytest.approx(1 - ab, abs=1e-4)
        assert float(row["chain variance"]) == pytest.approx(1 - ab, rel=0.05)
    assert any("by induction" in m.value for m in at.markdown)


def test_score_page_checks_all_three_forms(monkeypatch, checkpoint_dir):
    at = open_page(monkeypatch, checkpoint_dir, "pages/score.py")
    assert not at.exception
    table = next(t.value for t in at.table if "v form: max error" in t.value.columns)
    assert [int(t) for t in table["t"]] == [11, 100, 500, 900]
    for _, row in table.iterrows():
        for column in ("ε form: max error", "x₀ form: max error", "v form: max error"):
            assert float(row[column]) < 1e-6 * max(1.0, float(row["largest |score|"]))


def test_mistakes_names_the_notes_score_from_v(monkeypatch, checkpoint_dir):
    at = open_page(monkeypatch, checkpoint_dir, "pages/mistakes.py")
    at.selectbox(key="mistakes_show").set_value("score_from_v").run()
    assert not at.exception
    alpha_bar = alpha_bars_by_hand(linear_betas(1000))[10]  # t = 11
    factor = 1 / math.sqrt(1 - alpha_bar)
    assert f"**{factor:.1f}×** at $t = 11$" in all_text(at)
    assert factor == pytest.approx(21.35, abs=0.01)


def test_time_conditioning_compares_integer_fraction_and_raw_linear(monkeypatch, checkpoint_dir):
    at = open_page(monkeypatch, checkpoint_dir, "pages/time_conditioning.py")
    assert not at.exception
    table = next(t.value for t in at.table if "verdict" in t.value.columns)
    half = 32
    integer = sum(math.cos(999 * 10000 ** (-i / (half - 1))) for i in range(half)) / half
    fraction = sum(math.cos(0.999 * 10000 ** (-i / (half - 1))) for i in range(half)) / half
    cells = list(table["first vs last step"])
    assert f"cosine similarity {integer:+.3f}" == cells[0] and f"cosine similarity {fraction:+.3f}" == cells[1]
    assert "harmful" in table["verdict"][1] and "needs normalising" in table["verdict"][2]


def test_objective_says_what_table_two_compares(monkeypatch, checkpoint_dir):
    at = open_page(monkeypatch, checkpoint_dir, "pages/objective.py")
    text = all_text(at)
    assert "5. What DDPM's Table 2 compares" in [s.value for s in at.subheader]
    assert "there is no $x_0$-prediction row" in text and "https://intuitivepapers.ai/ddpm/" in text


def test_pros_and_cons_tables_and_where_this_leads(monkeypatch, checkpoint_dir):
    at = open_page(monkeypatch, checkpoint_dir, "pages/denoise.py")
    predictions = next(t.value for t in at.table if "predict" in t.value.columns)
    assert [p.split(" ")[0] for p in predictions["predict"]] == ["ε", "x₀", "v"]
    at = open_page(monkeypatch, checkpoint_dir, "pages/variances.py")
    variances = next(t.value for t in at.table if "σₜ²" in t.value.columns)
    assert len(variances) == 3 and set(variances.columns) == {"σₜ²", "for", "against"}
    at = open_page(monkeypatch, checkpoint_dir, "pages/home.py")
    text = all_text(at)
    assert all(name in text for name in ("**The SDE view**", "**Predictor–corrector**", "**Distillation**"))
