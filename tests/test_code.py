"""ui/code.py: the "show the code" expander shows the real source of the functions it is given."""

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
