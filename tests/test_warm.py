"""The warm-up (ui/warm.py) and single flight on the Sample page: the default run is computed once per server,
whoever asks first, and sessions arriving together share it (issue 18 item 7, issue 21 item 1)."""

import threading
import time

import pytest
from helpers import APP, open_page
from streamlit.testing.v1 import AppTest

PAGE = "pages/sample.py"


def counting_sampler(monkeypatch, delay: float = 0.0):
    """Wrap core.sampling.run_sampler: returns the list of sample counts it was called with (one per run)."""
    from core import sampling

    calls, original, lock = [], sampling.run_sampler, threading.Lock()

    def counted(model, diffusion, settings, shape, seed, record=False, progress=None):
        with lock:
            calls.append((settings, shape, seed))
        if delay:
            time.sleep(delay)  # long enough for every session to arrive while it runs
        return original(model, diffusion, settings, shape, seed, record=record, progress=progress)

    monkeypatch.setattr(sampling, "run_sampler", counted)
    return calls


def fresh_cache():
    from ui import runs

    runs.result_cache().__init__(runs.CACHE_ENTRIES)
    return runs.result_cache()


def test_the_suite_runs_without_warm_up(monkeypatch):
    from ui import warm

    assert not warm.enabled() and warm.start() is False
    for value, on in (("0", False), ("off", False), ("1", True), ("", True)):
        monkeypatch.setenv(warm.WARM_ENV, value)
        assert warm.enabled() is on


def test_the_warm_up_starts_once_per_server(monkeypatch):
    from ui import warm

    ran, done = [], threading.Event()
    monkeypatch.setattr(warm, "warm_up", lambda: (ran.append(threading.current_thread().name), done.set()))
    monkeypatch.setattr(warm, "freeze_heap", lambda: None)  # the test process is not frozen
    monkeypatch.setattr(warm, "_started", threading.Event())
    monkeypatch.setenv(warm.WARM_ENV, "1")
    started = [warm.start() for _ in range(5)]
    assert started == [True, False, False, False, False]
    assert done.wait(20) and ran == ["rdl-warm-up"]


def test_warm_up_computes_the_sample_pages_first_view(monkeypatch, checkpoint_dir):
    import ui.catalog
    from ui import warm

    monkeypatch.setattr(ui.catalog, "CHECKPOINT_DIR", checkpoint_dir)
    cache, calls = fresh_cache(), counting_sampler(monkeypatch)
    frozen = []
    monkeypatch.setattr(warm, "freeze_heap", lambda: frozen.append(len(calls)))  # the test process is not frozen
    done = warm.warm_up()
    assert done[0].startswith("Sample: DDIM η=0") and done[1:] == ["measure FLOP/s", "freeze the heap"]
    assert frozen == [1]  # once, after the run
    assert len(calls) == 1 and calls[0][1] == (16, 1, 28, 28) and calls[0][2] == 0
    (warmed, _), _ = next(value for key, value in cache._items.items() if key[0] == "sample")

    at = open_page(monkeypatch, checkpoint_dir, PAGE)
    assert not at.error and len(calls) == 1  # the page's first view is the warmed run: nothing sampled again
    from ui import runs
    (shown, _), _ = next(value for key, value in runs.result_cache()._items.items() if key[0] == "sample")
    assert shown is warmed


def test_two_simultaneous_sessions_compute_the_first_view_once(monkeypatch, checkpoint_dir):
    import ui.catalog

    monkeypatch.setattr(ui.catalog, "CHECKPOINT_DIR", checkpoint_dir)
    fresh_cache()
    sessions = [AppTest.from_file(APP, default_timeout=120) for _ in range(2)]
    for at in sessions:
        at.run()
        at.switch_page(PAGE)
    calls = counting_sampler(monkeypatch, delay=1.5)
    threads = [threading.Thread(target=at.run) for at in sessions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=240)
    assert len(calls) == 1, calls
    for at in sessions:
        assert not at.exception and not at.error
        assert any("sampled in" in caption.value for caption in at.caption)


@pytest.mark.parametrize("fails", [False, True])
def test_the_progress_box_is_removed_after_success_and_after_an_error(monkeypatch, checkpoint_dir, fails):
    from core import sampling

    fresh_cache()
    if fails:
        def refuse(model, diffusion, settings, shape, seed, record=False, progress=None):
            progress(1, settings.steps)  # the box has drawn a step before the error
            raise ValueError("the network's output is not finite at t=3")

        monkeypatch.setattr(sampling, "run_sampler", refuse)
    at = open_page(monkeypatch, checkpoint_dir, PAGE)
    assert not at.exception
    assert not at.get("progress")
    assert not [button for button in at.button if button.key == "sample_cancel"]
    if fails:
        assert any("not finite at t=3" in error.value for error in at.error)
    else:
        assert any("sampled in" in caption.value for caption in at.caption)
