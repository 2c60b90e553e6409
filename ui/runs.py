"""Long work on a page: a progress bar with the elapsed time, a Cancel button, and a server-wide cache.

Cancel: the button is drawn next to the progress bar before the work starts. Clicking it makes Streamlit
rerun the page, and Streamlit stops the running script at its next call, which is the progress update
between two sampler steps: the run stops there and nothing half-done is kept. The rerun sees the button
pressed and says what was cancelled and after how long (`cancelled_notice`).

Cache: results are keyed by the model's token (it changes when the weights change), the settings and the
seed, so the same run asked for twice, by any session, is computed once. A small LRU keeps memory bounded.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Hashable

import streamlit as st

CACHE_ENTRIES = 24  # results kept by the whole server (a 64-sample MNIST run with its trajectory is ~2 MB)
_STARTED = "_run_started"  # session_state: cancel key -> (label, start time) of the run in progress


class ResultCache:
    """A thread-safe LRU dict shared by every session of the server."""

    def __init__(self, entries: int):
        self.entries = entries
        self._items: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable):
        with self._lock:
            if key not in self._items:
                return None
            self._items.move_to_end(key)
            return self._items[key]

    def put(self, key: Hashable, value) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.entries:
                self._items.popitem(last=False)


@st.cache_resource(show_spinner=False)
def result_cache() -> ResultCache:
    return ResultCache(CACHE_ENTRIES)


def cancelled_notice(cancel_key: str) -> bool:
    """True (after saying so) if the last run behind this Cancel button was cancelled."""
    started = st.session_state.get(_STARTED, {}).pop(cancel_key, None)
    if started is not None and st.session_state.get(cancel_key):
        label, start = started
        st.warning(f"Cancelled {label} after {time.perf_counter() - start:.1f} s; nothing was kept.",
                   icon=":material/cancel:")
        return True
    return False


class ProgressBox:
    """A bordered box with a progress bar (step i/n, elapsed seconds) and a Cancel button; one per page
    action, however many runs the action makes."""

    def __init__(self, label: str, cancel_key: str):
        self.placeholder = st.empty()  # emptied when the work is done (a container's own empty() leaves it drawn)
        self.box = self.placeholder.container(border=True)
        self.bar = self.box.progress(0.0, text=f"{label}: starting…")
        self.box.button("Cancel", key=cancel_key, icon=":material/stop:", help="Stops between two sampler steps.")
        self.cancel_key = cancel_key
        self.start = time.perf_counter()
        st.session_state.setdefault(_STARTED, {})[cancel_key] = (label, self.start)
        self._last = (-1, 0.0)

    def callback(self, label: str):
        """A progress(i, n) for the sampler: updates at most every 0.1 s or when the percentage changes;
        that update is where a click on Cancel stops the run."""
        def progress(i: int, n: int) -> None:
            now = time.perf_counter()
            percent = int(100 * i / max(n, 1))
            if percent != self._last[0] or now - self._last[1] >= 0.1:
                self._last = (percent, now)
                self.bar.progress(min(i / max(n, 1), 1.0), text=f"{label}: step {i}/{n} · {now - self.start:.1f} s")
        return progress

    def close(self) -> None:
        st.session_state[_STARTED].pop(self.cancel_key, None)
        self.placeholder.empty()


def cached_runs(jobs: list, cancel_key: str, title: str) -> list:
    """[(result, seconds)] for jobs (key, label, work(progress)): each from the server-wide cache, or
    computed under one progress box and kept. `seconds` is the measured time of the run that computed it."""
    cache = result_cache()
    out = [cache.get(key) for key, _, _ in jobs]
    missing = [i for i, hit in enumerate(out) if hit is None]
    if not missing:
        return out
    box = ProgressBox(title, cancel_key)
    for count, i in enumerate(missing, start=1):
        key, label, work = jobs[i]
        started = time.perf_counter()
        result = work(box.callback(f"{label} (run {count}/{len(missing)})"))
        out[i] = (result, time.perf_counter() - started)
        cache.put(key, out[i])
    box.close()
    return out


def cached_run(key: Hashable, label: str, work, cancel_key: str):
    """(result, seconds) for one run: from the cache, or computed under a progress box with Cancel."""
    return cached_runs([(key, label, work)], cancel_key, label)[0]
