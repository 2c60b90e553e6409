"""Warm-up: the default views of the heavy pages computed once per server, before the first class arrives.

A fresh server has nothing in its caches: when a class opens the Sample page at the same moment, every session
would wait for the same default sampling run (issue 18 item 7). `start()` (called by app.py on every visit,
acting on the first) starts one background thread that

1. computes the Sample page's default run (the default model, DDIM with the page's default settings, seed 0)
   into the server-wide result cache (ui/runs.py) under the very key the page asks for, first, so that the
   sessions of a class find it already in flight;
2. measures this machine's FLOP/s once, for the Sample page's cost estimates (core/checkpoints/cost.py); and
3. freezes the heap again (below), now with the model, the run and the pages' modules in it.

Sessions arriving while it runs find that run in flight and wait for it (single flight, ui/runs.py) instead of
starting their own. The page's first view and this warm-up build their run with the same functions
(`sample_defaults`, `sample_job`), so the keys match by construction.

While that thread starts sampling, the first visit itself (the others wait for it on a lock) does two things:

- imports the heavy modules the pages import lazily (pandas: ~0.5 CPU-s on an idle machine, ~3 s on a busy one),
  not on a thread beside the visits: plotly looks pandas up in sys.modules without importing it
  (`_plotly_utils.optional_imports.get_module(..., should_load=False)`), so a figure built while another thread is
  half-way through `import pandas` fails with "partially initialized module 'pandas' has no attribute 'Series'" (4
  of 10 sessions of a cold bench/burst.py run did). The warm-up thread builds no figure.
- freezes the heap (`freeze_heap`: gc.freeze after one full collection). Streamlit runs a full garbage collection
  after every script run (`runner.postScriptGC`); with torch, plotly and pandas loaded that walks ~260,000 objects,
  ~0.13 CPU-s per run on this 2-core machine, two runs (Home, Sample) per visitor: more than half of a warm visit's
  server CPU, all of it under the one interpreter lock. Frozen objects (the modules, the loaded models, the cached
  results) are skipped by every later collection, so the collection after a run walks only what was made since
  (~10,000 objects on a warm server).

$RDL_WARM=0 turns the warm-up off (the test suite does, so that every test computes what it checks); any other
value, or none, leaves it on.
"""

from __future__ import annotations

import gc
import importlib
import logging
import os
import threading
import time

from core import sampling
from core.checkpoints import cost
from ui import runs
from ui.labels import sampler_label

WARM_ENV = "RDL_WARM"
HEAVY_MODULES = ("pandas",)  # imported on the warm-up thread, so no visitor waits for them
SAMPLE_SEED = 0
SAMPLE_IMAGES = 16  # the Sample page's default number of samples for an image model
SAMPLE_POINTS = 1000  # ... and of points for a 2-D model
TRAJECTORY_SAMPLES = 4  # samples followed in the Sample page's trajectory scrubber
MAX_RECORDS = 60  # trajectory entries kept, whatever the number of steps (memory stays bounded)

_log = logging.getLogger(__name__)
_started = threading.Event()
_start_lock = threading.Lock()


def enabled() -> bool:
    """False when $RDL_WARM is 0 (or "off", "false", "no")."""
    return os.environ.get(WARM_ENV, "1").strip().lower() not in ("0", "off", "false", "no")


def sample_defaults(loaded) -> tuple[sampling.SamplerSettings, int, int]:
    """(settings, number of samples, seed) of the Sample page's first view for `loaded` (a catalog.LoadedModel)."""
    settings = sampling.SamplerSettings(method="ddim", steps=min(loaded.diffusion.T, 50), variance=loaded.diffusion.variance,
                                        eta=0.0, spacing="leading", clip_x0=loaded.is_image_model)
    return settings, SAMPLE_IMAGES if loaded.is_image_model else SAMPLE_POINTS, SAMPLE_SEED


def sample_key(loaded, settings: sampling.SamplerSettings, n: int, seed: int) -> tuple:
    """The result cache's key of a Sample page run."""
    return ("sample", loaded.token, settings, n, seed)


def sample_job(loaded, settings: sampling.SamplerSettings, n: int, seed: int) -> tuple:
    """(key, label, work(progress) -> (samples, trajectory)) of a Sample page run, for ui.runs."""
    def work(progress):
        record = sampling.record_every(settings.steps, MAX_RECORDS)
        samples, trajectory = sampling.run_sampler(loaded.model, loaded.diffusion, settings, (n, *loaded.data_shape),
                                                  seed, record=record, progress=progress)
        if loaded.is_image_model:  # only the first few are shown along the way: keep the cache small
            trajectory = sampling.keep_first(trajectory, TRAJECTORY_SAMPLES)
        return samples, trajectory

    return sample_key(loaded, settings, n, seed), sampler_label(settings), work


def default_sample_job() -> tuple | None:
    """The Sample page's default run for the default model, or None when the server has no such model."""
    from ui import catalog  # the catalogue needs Streamlit's caches, which exist once the server runs

    if catalog.DEFAULT_MODEL not in catalog.shipped_models():
        return None
    loaded = catalog.load_model(catalog.DEFAULT_MODEL)
    return sample_job(loaded, *sample_defaults(loaded))


def import_heavy_modules() -> list[str]:
    """Import HEAVY_MODULES (on the first visit, before any figure is built: see the module's docstring)."""
    for name in HEAVY_MODULES:
        importlib.import_module(name)
    return [f"import {name}" for name in HEAVY_MODULES]


def freeze_heap() -> None:
    """One full collection, then every object still alive moves to the collector's permanent generation (gc.freeze),
    which later collections, Streamlit's one after every script run included, do not walk. Only objects alive now are
    frozen (garbage was collected first); a frozen object that dies later is still freed by its reference count, only
    a reference cycle among frozen objects would stay (the modules, models and results frozen here live on anyway)."""
    gc.collect()
    gc.freeze()


def warm_up() -> list[str]:
    """Compute the default views into the result cache first (so the first sessions find them in flight), then measure
    this machine's FLOP/s and freeze the heap with all that in it; the names of what was done. A failure of the views
    is logged and skipped: the pages then compute (and report) it themselves."""
    done = []
    try:
        job = default_sample_job()
        if job is not None:
            key, label, work = job

            def timed(progress):
                started = time.perf_counter()
                result = work(progress)
                return result, time.perf_counter() - started

            runs.result_cache().get_or_compute(key, timed)
            done.append(f"Sample: {label}")
    except Exception:  # noqa: BLE001 - a warm-up must never take the server down
        _log.exception("warm-up of the Sample page's default run failed")
    cost.flops_per_second()  # the Sample page's cost estimate measures this machine once (core/checkpoints/cost.py)
    done.append("measure FLOP/s")
    freeze_heap()
    done.append("freeze the heap")
    return done


def start() -> bool:
    """Once per server process (no-op afterwards, or when $RDL_WARM=0): start the warm-up thread, then import the heavy
    modules and freeze the heap here, on the first visit, while the visits arriving with it wait on the lock; True if
    it started now."""
    if _started.is_set() or not enabled():
        return False
    with _start_lock:
        if _started.is_set():
            return False
        threading.Thread(target=warm_up, name="rdl-warm-up", daemon=True).start()  # first: its run starts at once
        import_heavy_modules()  # (the thread uses no plotly, so it cannot see pandas half-imported)
        freeze_heap()
        _started.set()
        return True
