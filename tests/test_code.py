"""ui/code.py (the "show the code" expander) and the per-t loss axis of ui/training_panel.py."""

import inspect

from streamlit.testing.v1 import AppTest


def page():
    from core.lab.objective import elbo_eps_weights
    from ui.code import show_code

    show_code(elbo_eps_weights)


def test_show_code_renders_the_source_in_an_expander():
    from core.lab.objective import elbo_eps_weights

    at = AppTest.from_function(page).run()
    assert not at.exception
    assert at.expander[0].label == "Show the code"
    assert at.code[0].language == "python"
    assert at.code[0].value.strip() == inspect.getsource(elbo_eps_weights).strip()
    assert "core.lab.objective.elbo_eps_weights" in at.caption[0].value


def test_per_t_loss_axis_counts_the_paper_steps():
    """Bins of core's 0-based indices [0, 10) and [10, 20) are drawn at the paper's steps 5.5 and 15.5."""
    from types import SimpleNamespace

    from ui.training_panel import profile_figure

    figure = profile_figure(SimpleNamespace(profile_edges=[0, 10, 20], profile=[0.5, 0.25]))
    assert list(figure.data[0].x) == [5.5, 15.5]
    assert figure.layout.xaxis.title.text == "t (paper's step)"
