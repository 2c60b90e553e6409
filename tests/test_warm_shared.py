"""A warm server does each shared piece of work once, not once per visitor (issue 18 item 7): the Sample page's
figures of a result are built once for the whole server (ui/cached.py), the model listing reads each checkpoint
file once (ui/catalog.py), and the first visit imports the heavy modules and freezes the heap before any visit goes
on (ui/warm.py)."""

import threading

from helpers import open_page

PAGE = "pages/sample.py"


def fresh_caches():
    from ui import cached, runs

    runs.result_cache().__init__(runs.CACHE_ENTRIES)
    cached.shared_cache().__init__(cached.ENTRIES)


def counting(monkeypatch, module, name: str) -> list:
    """Wrap module.name: returns the list of the positional arguments of each call."""
    calls, original = [], getattr(module, name)

    def counted(*args, **kwargs):
        calls.append(args)
        return original(*args, **kwargs)

    monkeypatch.setattr(module, name, counted)
    return calls


def test_a_second_session_draws_the_sample_pages_figures_without_building_them(monkeypatch, checkpoint_dir):
    from core import sampling
    from ui import figures

    fresh_caches()
    rows = counting(monkeypatch, figures, "picture_row")
    grids = counting(monkeypatch, sampling, "trajectory_pictures")
    first = open_page(monkeypatch, checkpoint_dir, PAGE)
    built = len(rows)
    second = open_page(monkeypatch, checkpoint_dir, PAGE)
    assert len(grids) == 1  # the trajectory's pictures too

    def titles(call):
        return list(call[0])

    samples = [call for call in rows if titles(call)[0].endswith(" samples")]
    strips = [call for call in rows if titles(call)[0].startswith("t = ")]
    assert len(samples) == 1 and len(strips) == 1, [titles(call) for call in rows]  # the first session built each once
    assert built == len(rows)  # ... and the second session built none
    for at in (first, second):
        assert not at.exception and not at.error
        keys = [chart.proto.id for chart in at.get("plotly_chart")]
        assert any("sample_grid" in key for key in keys) and any("sample_snapshots" in key for key in keys)
    specs = [[chart.proto.spec for chart in at.get("plotly_chart")] for at in (first, second)]
    assert specs[0] == specs[1]  # both sessions were sent the same figures


def test_the_model_listing_reads_each_checkpoint_file_once(monkeypatch, tmp_path, checkpoint_dir):
    import shutil

    import ui.catalog
    from core import checkpoints

    folder = tmp_path / "checkpoints"
    folder.mkdir()
    shutil.copy(checkpoint_dir / "mnist_eps.safetensors", folder)
    (folder / "not_a_model.safetensors").write_bytes(b"not a checkpoint")  # refused, like the metrics classifier
    monkeypatch.setattr(ui.catalog, "CHECKPOINT_DIR", folder)
    reads = counting(monkeypatch, checkpoints, "read_metadata")
    for _ in range(3):
        assert ui.catalog.shipped_models() == {
            "shipped:mnist_eps": ("mnist_eps (shipped)", str(folder / "mnist_eps.safetensors"))}
    assert sorted(call[0].rsplit("/", 1)[1] for call in reads) == ["mnist_eps.safetensors", "not_a_model.safetensors"]

    (folder / "mnist_eps.safetensors").unlink()  # a file taken off the server is gone from the next listing
    assert ui.catalog.shipped_models() == {}


def test_the_first_visit_imports_and_freezes_before_any_visit_goes_on(monkeypatch):
    from ui import warm

    events, done = [], threading.Event()
    monkeypatch.setattr(warm, "HEAVY_MODULES", ("json",))
    monkeypatch.setattr(warm.importlib, "import_module",
                        lambda name: events.append(("import", name, threading.current_thread().name)))
    monkeypatch.setattr(warm, "freeze_heap", lambda: events.append(("freeze", threading.current_thread().name)))
    monkeypatch.setattr(warm, "warm_up", lambda: (events.append(("warm-up", threading.current_thread().name)), done.set()))
    monkeypatch.setattr(warm, "_started", threading.Event())
    monkeypatch.setenv(warm.WARM_ENV, "1")
    here = threading.current_thread().name
    assert warm.start() is True
    mine = [event for event in events if event[0] != "warm-up"]
    assert mine == [("import", "json", here), ("freeze", here)]  # done by the visit itself, before it returns
    assert done.wait(20) and ("warm-up", "rdl-warm-up") in events
    assert warm.start() is False and len(events) == 3  # once per server


def test_freeze_heap_leaves_later_collections_only_what_is_new():
    import gc

    from ui import warm

    frozen_before = gc.get_freeze_count()
    try:
        warm.freeze_heap()
        assert gc.get_freeze_count() > frozen_before
        assert sum(gc.get_count()) < 100  # nothing tracked is left in the young generations
    finally:
        gc.unfreeze()  # the test process keeps collecting everything
