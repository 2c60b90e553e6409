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
    from core.training.stats import ProgressRecord
    from ui.training_panel import profile_figure

    figure = profile_figure(ProgressRecord(step=0, seconds=0.0, loss_steps=(), losses=(), profile_edges=(0, 10, 20),
                                           profile=(0.5, 0.25)))
    assert list(figure.data[0].x) == [5.5, 15.5]
    assert figure.layout.xaxis.title.text == "t (paper's step)"


def test_the_replay_and_the_live_panel_draw_one_pair_of_figures():
    """The same bins give the same x (the paper's step), titles and colours in the replay and the live panel."""
    from types import SimpleNamespace

    from core.training.stats import ProgressRecord
    from ui import replay, training_panel

    record = ProgressRecord(step=3, seconds=1.0, loss_steps=(1, 2, 3), losses=(1.0, 0.5, 0.25), profile_edges=(0, 10, 20),
                            profile=(0.5, 0.25))
    live = training_panel.profile_figure(record)
    history = SimpleNamespace(progress=record, frames=[SimpleNamespace(profile=[0.5, 0.25])])
    recorded = replay.profile_figure(history, record)
    assert list(recorded.data[0].x) == list(live.data[0].x) == [5.5, 15.5]
    assert recorded.layout.xaxis.title.text == live.layout.xaxis.title.text
    assert recorded.data[0].marker.color == live.data[0].marker.color
    live_loss = training_panel.loss_figure(record)
    replayed_loss = replay.loss_figure(history, 2)
    assert live_loss.layout.title.text == replayed_loss.layout.title.text
    assert live_loss.data[0].line.color == replayed_loss.data[-1].line.color
    assert list(replayed_loss.data[-1].x) == [1, 2]
