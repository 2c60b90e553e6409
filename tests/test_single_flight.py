"""ui.runs.ResultCache computes each key once while simultaneous callers wait (issue 18 item 7, issue 21 item 1)."""

import threading
import time

import pytest

from ui.runs import ResultCache, progress_text

CALLERS = 12


def burst(cache, key, compute, callers=CALLERS, waiting=None):
    """`callers` threads released together, each asking the cache for `key`; [(value or None, error or None)]."""
    barrier = threading.Barrier(callers)
    out = [None] * callers

    def ask(i):
        barrier.wait()
        try:
            out[i] = (cache.get_or_compute(key, compute, waiting=waiting), None)
        except Exception as error:  # noqa: BLE001 - the test inspects what each caller got
            out[i] = (None, error)

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(callers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not any(thread.is_alive() for thread in threads)
    return out


class Arrivals:
    """A `waiting` callback that records which threads are waiting; `wait(k)` blocks until k of them are."""

    def __init__(self):
        self.threads, self.changed = set(), threading.Condition()

    def __call__(self, i, n, seconds):
        with self.changed:
            self.threads.add(threading.get_ident())
            self.changed.notify_all()

    def wait(self, count: int) -> None:
        with self.changed:
            assert self.changed.wait_for(lambda: len(self.threads) >= count, timeout=20)


def slow_counter(calls, seconds=0.3, result=None, error=None, arrivals=None, callers=CALLERS):
    """A computation that counts its calls, reports 3 steps and takes `seconds`; with `arrivals`, it first waits until
    every other caller is waiting for it (so no caller can come after it has ended, however busy the machine)."""
    lock = threading.Lock()

    def compute(progress):
        with lock:
            calls.append(threading.get_ident())
        if arrivals is not None:
            arrivals.wait(callers - 1)
        for i in range(1, 4):
            time.sleep(seconds / 3)
            progress(i, 3)
        if error is not None:
            raise error
        return result if result is not None else object()
    return compute


def test_simultaneous_misses_compute_once_and_share_the_object():
    cache, calls, arrivals = ResultCache(4), [], Arrivals()
    out = burst(cache, ("sample", 1), slow_counter(calls, arrivals=arrivals), waiting=arrivals)
    assert len(calls) == 1
    values = [value for value, error in out]
    assert all(error is None for _, error in out)
    assert all(value is values[0] for value in values) and values[0] is not None
    assert cache.get(("sample", 1)) is values[0] and not cache.in_flight(("sample", 1))
    # a later caller gets the cached object without computing
    assert cache.get_or_compute(("sample", 1), slow_counter(calls)) is values[0] and len(calls) == 1


def test_waiters_see_the_computing_callers_progress():
    cache, calls, seen, lock = ResultCache(4), [], [], threading.Lock()
    step_seen = threading.Event()

    def waiting(i, n, seconds):
        with lock:
            seen.append((i, n, seconds))
        if i >= 1:
            step_seen.set()

    def compute(progress):
        calls.append(1)
        progress(1, 3)
        assert step_seen.wait(20)  # the computation goes on once a waiter has shown its first step
        progress(3, 3)
        return "done"

    out = burst(cache, "k", compute, callers=3, waiting=waiting)
    assert len(calls) == 1 and [value for value, _ in out] == ["done"] * 3
    assert seen and all(n in (0, 3) and 0 <= i <= 3 and seconds >= 0 for i, n, seconds in seen)
    assert (1, 3) in [(i, n) for i, n, _ in seen]  # the owner's step reached the waiters


def test_an_error_reaches_every_waiter_and_is_not_cached():
    cache, calls, arrivals = ResultCache(4), [], Arrivals()
    out = burst(cache, "bad", slow_counter(calls, error=ValueError("bad model output"), arrivals=arrivals), waiting=arrivals)
    assert len(calls) == 1
    assert all(value is None and isinstance(error, ValueError) and str(error) == "bad model output" for value, error in out)
    assert cache.get("bad") is None and not cache.in_flight("bad")
    value = cache.get_or_compute("bad", slow_counter(calls, seconds=0.0, result="fixed"))
    assert value == "fixed" and len(calls) == 2


class Stopped(BaseException):
    """Like Streamlit's StopException: a script stopped by its own session (Cancel)."""


def test_a_stopped_computation_is_taken_over_by_a_waiter():
    cache, calls, lock = ResultCache(4), [], threading.Lock()
    first = threading.Event()

    def compute(progress):
        with lock:
            calls.append(1)
            number = len(calls)
        time.sleep(0.3)
        if number == 1:
            first.set()
            raise Stopped()
        return "second"

    results, errors = [], []

    def ask():
        try:
            results.append(cache.get_or_compute("k", compute))
        except Stopped:
            errors.append("stopped")

    threads = [threading.Thread(target=ask) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == ["stopped"] and results == ["second"] * 3 and len(calls) == 2


def test_different_keys_do_not_wait_for_each_other_and_memory_stays_bounded():
    cache, calls = ResultCache(3), []
    together = threading.Barrier(6, timeout=20)  # broken (an error) if one key waited for another to finish

    def compute(progress):
        calls.append(1)
        together.wait()
        return object()

    threads = [threading.Thread(target=cache.get_or_compute, args=(key, compute)) for key in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(calls) == 6 and not together.broken
    assert len(cache._items) == 3 and not cache._flights


@pytest.mark.parametrize("i, n, seconds, expected", [
    (0, 100, 0.5, "run: starting… 0.5 s"),
    (25, 100, 10.0, "run: step 25 of 100, about 30 s left (10.0 s so far)"),  # 10 s / 25 steps · 75 steps
    (100, 100, 40.0, "run: step 100 of 100, about 0 s left (40.0 s so far)"),
])
def test_progress_text_extrapolates_the_time_left(i, n, seconds, expected):
    assert progress_text("run", i, n, seconds) == expected


# ------------------------------------------------------------------ the live training panel's shared view (issue 21 item 2)
class FakeJob:
    """A job as the panel sees it: an id, a folder with the worker's progress file, and snapshot() (counted)."""

    def __init__(self, folder, job_id="job1"):
        from core.training import run_store

        self.job_id, self.folder, self.calls, self.step = job_id, folder, 0, 10
        self.progress = folder / run_store.PROGRESS
        self.progress.write_text("{}")

    def snapshot(self):
        from types import SimpleNamespace

        self.calls += 1
        time.sleep(0.05)  # a file read: long enough for every waiting panel to arrive meanwhile
        from core.training.stats import ProgressRecord

        progress = ProgressRecord(step=self.step, seconds=1.0, loss_steps=(1, 2), losses=(1.0, 0.5), profile_edges=(0, 5, 10),
                                  profile=(0.4, 0.2))
        return SimpleNamespace(state="running", step=self.step, queue_position=None, starts_in_seconds=None,
                               checkpoint=None, saved_step=None, progress=progress, preview=None)


def test_panels_of_one_job_share_one_read_per_interval(tmp_path):
    import os

    from ui.training_panel import PanelViews

    now = [100.0]
    views, job = PanelViews(interval=1.0, clock=lambda: now[0]), FakeJob(tmp_path)
    barrier, seen = threading.Barrier(20), []

    def panel():
        barrier.wait()
        seen.append(views.get(job))

    threads = [threading.Thread(target=panel) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert job.calls == 1 and views.reads == 1 and views.builds == 1 and len(seen) == 20
    assert all(view is seen[0] for view in seen)

    now[0] += 0.5  # within the interval: no read at all
    assert views.get(job) is seen[0] and job.calls == 1
    now[0] += 1.0  # a new interval, nothing new from the worker: the snapshot is read again, the figures kept
    view = views.get(job)
    assert job.calls == 2 and views.builds == 1 and view.loss is seen[0].loss
    job.step = 11
    stat = job.progress.stat()
    os.utime(job.progress, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # the worker published a new step
    now[0] += 1.0
    view = views.get(job)
    assert job.calls == 3 and views.builds == 2 and view.loss is not seen[0].loss and view.snapshot.step == 11


def test_a_stale_view_is_dropped_when_the_page_read_another_state(tmp_path):
    from ui.training_panel import PanelViews

    views, job = PanelViews(interval=60.0, clock=lambda: 0.0), FakeJob(tmp_path)
    views.get(job)
    views.forget_unless(job, "running")
    views.get(job)
    assert job.calls == 1  # same state: kept
    views.forget_unless(job, "stopping")
    views.get(job)
    assert job.calls == 2


def test_panel_views_keep_at_most_their_entries(tmp_path):
    from ui.training_panel import PanelViews

    views = PanelViews(interval=60.0, entries=3)
    for i in range(5):
        folder = tmp_path / str(i)
        folder.mkdir()
        views.get(FakeJob(folder, job_id=f"job{i}"))
    assert len(views._views) == 3 and len(views._key_locks) == 3
