"""The run store's eviction (core.training.run_store.RunStore.cleanup): per-session share first, never a model in use
or an active job, and every removal written down for its owner, who is told what, when and why."""

import os
import re
import time

import pytest

from core.training import run_store
from tests.test_jobs import FakeClock, RecordingLauncher, make_registry, toy_config  # noqa: F401 (a fixture)

KB = 1024


def add_model(store, owner, job_id, checkpoint_bytes, age_seconds, state="finished", saved_step=40):
    """A job folder as a finished (or stopped) job leaves it, its files last changed age_seconds ago."""
    record = run_store.JobRecord(job_id=job_id, owner_key=run_store.owner_key(owner), created=time.time() - age_seconds,
                                 config=toy_config())
    folder = store.create(record)
    (folder / run_store.CHECKPOINT).write_bytes(b"\0" * checkpoint_bytes)
    run_store.write_json_atomically(folder / run_store.PROGRESS, {"state": state, "saved_step": saved_step,
                                                                   "total_steps": 40})
    then = time.time() - age_seconds
    for path in folder.iterdir():
        os.utime(path, (then, then))
    return folder


def usage(store):
    sizes = {}
    for record in store.scan():
        sizes[record.owner_key] = sizes.get(record.owner_key, 0) + store.size(store.job_dir(record))
    return sizes


def test_the_session_over_its_share_loses_its_own_oldest_and_a_model_in_use_stays(tmp_path):
    clock = FakeClock()
    clock.now = time.time()
    store = run_store.RunStore(tmp_path, max_bytes=105 * KB, clock=clock)
    ann_used = add_model(store, "ann", "a00000000001", 30 * KB, 5000)  # the oldest folder of all, but ann uses it
    add_model(store, "ben", "b00000000001", 40 * KB, 4000, state="stopped", saved_step=12)  # resumable
    add_model(store, "ben", "b00000000002", 40 * KB, 3000)
    add_model(store, "ann", "a00000000002", 20 * KB, 2000)
    add_model(store, "ben", "b00000000003", 40 * KB, 1000)
    store.mark_used(ann_used)
    ann, ben = run_store.owner_key("ann"), run_store.owner_key("ben")
    assert usage(store)[ben] > 105 * KB / 2 > 40 * KB and sum(usage(store).values()) > 105 * KB

    # ben holds more than his half (52.5 KB): his two oldest go; ann, within her share, loses nothing
    assert store.cleanup() == ["b00000000001", "b00000000002"]
    assert sum(usage(store).values()) <= 105 * KB
    assert store.evictions(ann) == []
    first, second = store.evictions(ben)
    assert (first.job_id, first.reason, first.resumable, first.saved_step) == ("b00000000001", "space", True, 12)
    assert not second.resumable and "could have been resumed" in first.message() and "resumed" not in second.message()

    # a smaller cap (share 22.5 KB): ann is now furthest over and loses her unused model, never the one she uses; an
    # active job (protected) stays too, so the store may stay over its cap rather than take what is in use
    store.max_bytes = 45 * KB
    assert store.cleanup(protected={"b00000000003"}) == ["a00000000002"]
    assert store.cleanup() == ["b00000000003"]
    assert [record.job_id for record in store.scan()] == ["a00000000001"]
    (removed,) = store.evictions(ann)
    assert re.fullmatch(r"Your model two_moons · tiny \(step 40\) was removed at \d\d:\d\d to free space "
                        r"\(server limit 0\.0439\d* MB\)\.", removed.message())

    clock.now += store.in_use_seconds + 1  # nobody has loaded it for an hour: it may go like any other
    store.max_bytes = 1
    assert store.cleanup() == ["a00000000001"] and len(store.evictions(ann)) == 2


def test_age_expiry_spares_a_model_in_use_and_tells_the_owner(tmp_path):
    clock = FakeClock()
    clock.now = time.time()
    store = run_store.RunStore(tmp_path, max_age_seconds=3600, clock=clock)
    used = add_model(store, "ann", "a00000000001", KB, 7200)
    add_model(store, "ann", "a00000000002", KB, 7200)
    store.mark_used(used)
    assert store.cleanup() == ["a00000000002"]
    (removed,) = store.evictions(run_store.owner_key("ann"))
    assert removed.reason == "age" and "unchanged and unused for 0.0417 days" in removed.message()


def test_the_eviction_log_is_bounded_and_a_damaged_one_is_ignored(tmp_path):
    store = run_store.RunStore(tmp_path, max_bytes=1)
    for index in range(run_store.MAX_EVICTIONS_KEPT + 3):
        add_model(store, "ann", f"{index:012x}", KB, 100)
        store.cleanup()
    entries = store.evictions(run_store.owner_key("ann"))
    assert len(entries) == run_store.MAX_EVICTIONS_KEPT and entries[-1].job_id == f"{run_store.MAX_EVICTIONS_KEPT + 2:012x}"
    (tmp_path / run_store.owner_key("ann") / run_store.EVICTIONS).write_text("{not json")
    assert store.evictions(run_store.owner_key("ann")) == []
    with pytest.raises(ValueError, match="bad owner key"):
        store.evictions("../../etc")


def test_a_registry_keeps_the_model_its_owner_uses_and_tells_the_owner_what_went(make_registry, tmp_path):  # noqa: F811
    clock = FakeClock()
    launcher = RecordingLauncher()
    store = run_store.RunStore(tmp_path / "runs")
    registry = make_registry(launcher=launcher, store=store, clock=clock)

    def trained(owner, checkpoint_bytes):
        job_id = registry.submit(owner, toy_config())
        job = registry.get(job_id)
        launcher.end(job)
        registry.poll()
        job.write_progress(saved_step=40)
        job.checkpoint.write_bytes(b"\0" * checkpoint_bytes)
        return job_id

    ann_old, ann_used = trained("ann", 30 * KB), trained("ann", 30 * KB)
    bens = [trained("ben", 40 * KB) for _ in range(3)]
    registry.mark_used("ann", ann_used)  # the sidebar loaded it
    registry.mark_used("ben", ann_old)  # another session cannot mark ann's model (nothing happens)
    assert not (registry.get(ann_old).folder / run_store.USED).exists()

    # a server limit the five models (about 185 KB) exceed; a share is 40 KB: ben (about 123 KB) loses his two
    # oldest, then ann (about 62 KB) her unused one, and the store fits
    store.max_bytes = 80 * KB
    clock.now += 601  # poll lets the store clean up every ten minutes
    registry.poll()
    assert registry.get(ann_used) is not None and registry.get(ann_old) is None
    assert [j.job_id for j in registry.jobs_for("ben")] == bens[2:]  # ben kept his newest, within his share
    (told,) = registry.evictions_for("ann")
    assert re.fullmatch(r"Your model two_moons · tiny \(step 40\) was removed at \d\d:\d\d to free space "
                        r"\(server limit 0\.078\d* MB\)\.", told.message())
    assert [entry.job_id for entry in registry.evictions_for("ben")] == bens[:2]
