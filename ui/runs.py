"""Long work on a page: a progress bar with the elapsed time, a Cancel button, and a server-wide cache.

Cancel: the button is drawn next to the progress bar before the work starts. Clicking it makes Streamlit
rerun the page, and Streamlit stops the running script at its next call, which is the progress update
between two sampler steps: the run stops there and nothing half-done is kept. The rerun sees the button
pressed and says what was cancelled and after how long (`cancelled_notice`).

Cache: results are keyed by the model's token (it changes when the weights change), the settings and the
seed, so the same run asked for twice, by any session, is computed once. A small LRU keeps memory bounded.

Single flight: when several sessions miss the same key at the same moment (a class opening the Sample page
together), the first one computes it and the others wait for that result instead of computing it again
(`ResultCache.get_or_compute`). The waiters' progress bars follow the computing session's steps. An error
reaches every waiter and is not cached; a computation stopped by its own session (Cancel, a rerun) hands the
key to one of the waiters, which computes it. Only keys being computed have an entry besides the LRU, so
memory stays bounded by the LRU and the number of sessions waiting.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable

import streamlit as st

CACHE_ENTRIES = 24  # results kept by the whole server (a 64-sample MNIST run with its trajectory is ~2 MB)
WAIT_POLL_SECONDS = 0.2  # how often a waiting session updates its progress bar (and can be cancelled)
_STARTED = "_run_started"  # session_state: cancel key -> (label, start time) of the run in progress

Progress = Callable[[int, int], None]


class _Flight:
    """One computation in progress: its steps so far, then its value or its error."""

    def __init__(self):
        self.done = threading.Event()
        self.value = None
        self.error: Exception | None = None
        self.abandoned = False  # stopped by its own session without a result: a waiter takes over
        self.step = (0, 0)  # (i, n) as the computing session last reported it
        self.started = time.perf_counter()


class ResultCache:
    """A thread-safe LRU dict shared by every session of the server, computing each key once (single flight)."""

    def __init__(self, entries: int):
        self.entries = entries
        self._items: OrderedDict = OrderedDict()
        self._flights: dict[Hashable, _Flight] = {}
        self._lock = threading.Lock()

    def get(self, key: Hashable):
        with self._lock:
            if key not in self._items:
                return None
            self._items.move_to_end(key)
            return self._items[key]

    def put(self, key: Hashable, value) -> None:
        with self._lock:
            self._put(key, value)

    def _put(self, key: Hashable, value) -> None:
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self.entries:
            self._items.popitem(last=False)

    def in_flight(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._flights

    def get_or_compute(self, key: Hashable, compute: Callable[[Progress], object], progress: Progress | None = None,
                       waiting: Callable[[int, int, float], None] | None = None):
        """The cached value of `key`, or compute(progress) run by the first caller while later callers wait for it.

        `progress(i, n)` is passed to compute (the computing caller's own progress bar). A waiter calls
        `waiting(i, n, seconds since the computation started)` every WAIT_POLL_SECONDS with the computing
        caller's progress; that call is where a waiter's own Cancel stops it. An Exception raised by compute
        reaches every waiter and nothing is cached; a BaseException (Streamlit stopping the computing script)
        leaves the key to the next caller.
        """
        while True:
            with self._lock:
                if key in self._items:
                    self._items.move_to_end(key)
                    return self._items[key]
                flight = self._flights.get(key)
                owner = flight is None
                if owner:
                    flight = self._flights[key] = _Flight()
            if owner:
                return self._compute(key, flight, compute, progress)
            while not flight.done.wait(WAIT_POLL_SECONDS):
                if waiting is not None:
                    waiting(*flight.step, time.perf_counter() - flight.started)
            if flight.error is not None:
                raise flight.error
            if not flight.abandoned:
                return flight.value
            # the computing session was stopped: try again (this caller may become the one that computes)

    def _compute(self, key: Hashable, flight: _Flight, compute, progress: Progress | None):
        def report(i: int, n: int) -> None:
            flight.step = (i, n)
            if progress is not None:
                progress(i, n)

        try:
            value = compute(report)
        except Exception as error:
            flight.error = error
            raise
        except BaseException:
            flight.abandoned = True
            raise
        else:
            with self._lock:
                self._put(key, value)
            flight.value = value
            return value
        finally:
            with self._lock:
                self._flights.pop(key, None)
            flight.done.set()


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


def progress_text(label: str, i: int, n: int, seconds: float) -> str:
    """'label: step i of n, about S s left' (the remaining time extrapolated from the steps so far)."""
    if i <= 0 or n <= 0:
        return f"{label}: starting… {seconds:.1f} s"
    left = seconds / i * max(n - i, 0)
    return f"{label}: step {i} of {n}, about {left:.0f} s left ({seconds:.1f} s so far)"


class ProgressBox:
    """A bordered box with a progress bar (step i of n, seconds left) and a Cancel button; one per page
    action, however many runs the action makes. Use it in a `with` block: the box is removed when the work
    ends, whether it succeeded, failed or was cancelled."""

    def __init__(self, label: str, cancel_key: str):
        self.placeholder = st.empty()  # emptied when the work is done (a container's own empty() leaves it drawn)
        self.box = self.placeholder.container(border=True)
        self.bar = self.box.progress(0.0, text=f"{label}: starting…")
        self.box.button("Cancel", key=cancel_key, icon=":material/stop:", help="Stops between two sampler steps.")
        self.cancel_key = cancel_key
        self.start = time.perf_counter()
        st.session_state.setdefault(_STARTED, {})[cancel_key] = (label, self.start)
        self._last = (-1, 0.0)

    def __enter__(self) -> ProgressBox:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _show(self, text: str, i: int, n: int) -> None:
        now = time.perf_counter()
        percent = int(100 * i / max(n, 1))
        if percent != self._last[0] or now - self._last[1] >= 0.1:
            self._last = (percent, now)
            self.bar.progress(min(i / max(n, 1), 1.0), text=text)

    def callback(self, label: str) -> Progress:
        """A progress(i, n) for the sampler: updates at most every 0.1 s or when the percentage changes;
        that update is where a click on Cancel stops the run."""
        run_start = time.perf_counter()

        def progress(i: int, n: int) -> None:
            self._show(progress_text(label, i, n, time.perf_counter() - run_start), i, n)
        return progress

    def waiting(self, label: str) -> Callable[[int, int, float], None]:
        """The progress of a run another session is computing (ResultCache.get_or_compute's `waiting`)."""
        def waiting(i: int, n: int, seconds: float) -> None:
            self._show(progress_text(f"{label}, already running for another visitor", i, n, seconds), i, n)
        return waiting

    def close(self) -> None:
        st.session_state.get(_STARTED, {}).pop(self.cancel_key, None)
        self.placeholder.empty()


def cached_runs(jobs: list, cancel_key: str, title: str) -> list:
    """[(result, seconds)] for jobs (key, label, work(progress)): each from the server-wide cache, or
    computed under one progress box and kept (once for the whole server: a run another session is computing
    is waited for). `seconds` is the measured time of the run that computed it."""
    cache = result_cache()
    out = [cache.get(key) for key, _, _ in jobs]
    missing = [i for i, hit in enumerate(out) if hit is None]
    if not missing:
        return out
    with ProgressBox(title, cancel_key) as box:
        for count, i in enumerate(missing, start=1):
            key, label, work = jobs[i]
            label = f"{label} (run {count}/{len(missing)})" if len(missing) > 1 else label

            def timed(progress, work=work):
                started = time.perf_counter()
                result = work(progress)
                return result, time.perf_counter() - started

            out[i] = cache.get_or_compute(key, timed, progress=box.callback(label), waiting=box.waiting(label))
    return out


def cached_run(key: Hashable, label: str, work, cancel_key: str):
    """(result, seconds) for one run: from the cache, or computed under a progress box with Cancel."""
    return cached_runs([(key, label, work)], cancel_key, label)[0]
