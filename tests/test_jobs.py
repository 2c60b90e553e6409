"""Tests for core/training/jobs.py: the slot limit and queue, refusals, stop/resume/discard and the heartbeat reaper.

Jobs are tiny two-moons runs. A "gate" loss hook holds every training step until the test opens it, so
which job is running or queued is decided by the test, not by timing. Time for the reaper is a fake clock.
"""

import threading
import time

import pytest

from core.training.jobs import JobRefused, JobRegistry
from core.training.trainer import TrainConfig, Trainer

WAIT = 60.0


def toy_config(**overrides):
    settings = dict(dataset="two_moons", model_size="tiny", T=50, batch_size=16, total_steps=20, warmup_steps=2,
                    preview_every=0, preview_count=8, preview_steps=2, toy_points=256, device="cpu")
    settings.update(overrides)
    return TrainConfig(**settings)


class Gate:
    """A trainer factory whose jobs take a step only while the gate is open."""

    def __init__(self):
        self.open = threading.Event()

    def hook(self, step, loss):
        if not self.open.wait(WAIT):
            raise RuntimeError("gate never opened")
        return loss

    def factory(self, config, on_exit=None):
        return Trainer(config, loss_hook=self.hook, on_exit=on_exit)


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def wait_for_state(registry, job_id, *states):
    deadline = time.monotonic() + WAIT
    while registry.get(job_id).trainer.state not in states:
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} is {registry.get(job_id).trainer.state}, expected one of {states}")
        time.sleep(0.01)


@pytest.fixture
def gate():
    g = Gate()
    yield g
    g.open.set()  # never leave a job blocked behind the gate


def test_second_job_waits_for_the_slot_and_starts_when_the_first_finishes(gate):
    registry = JobRegistry(max_running_per_device=1, trainer_factory=gate.factory)
    first = registry.submit("alice", toy_config())
    second = registry.submit("bob", toy_config(seed=1))
    assert registry.get(first).trainer.state == "running"
    assert registry.get(second).snapshot().state == "queued"
    assert registry.get(second).trainer.step == 0
    gate.open.set()
    wait_for_state(registry, first, "finished")
    wait_for_state(registry, second, "finished")
    assert registry.get(second).trainer.step == 20
    assert [job.job_id for job in registry.jobs_for("alice")] == [first]


def test_two_slots_run_two_jobs(gate):
    registry = JobRegistry(max_running_per_device=2, trainer_factory=gate.factory)
    ids = [registry.submit(owner, toy_config()) for owner in ("a", "b", "c")]
    assert [registry.get(i).trainer.state for i in ids] == ["running", "running", "queued"]


def test_refusals_have_clear_messages(gate):
    registry = JobRegistry(max_running_per_device=1, max_queued=1, max_jobs_per_owner=2, trainer_factory=gate.factory)
    registry.submit("alice", toy_config())
    with pytest.raises(JobRefused, match="already have a training job that is running"):
        registry.submit("alice", toy_config())
    registry.submit("bob", toy_config())  # waits in the queue
    with pytest.raises(JobRefused, match="queue holds at most 1"):
        registry.submit("carol", toy_config())
    assert len(registry.jobs_for("carol")) == 0  # a refused job leaves nothing behind
    with pytest.raises(ValueError, match="total_steps"):  # an invalid config is a plain ValueError
        registry.submit("dave", toy_config(total_steps=0))


def test_per_owner_limit_on_kept_models():
    registry = JobRegistry(max_jobs_per_owner=1)
    job = registry.submit("alice", toy_config(total_steps=3))
    wait_for_state(registry, job, "finished")
    with pytest.raises(JobRefused, match="discard one"):
        registry.submit("alice", toy_config())
    registry.discard(job)
    registry.submit("alice", toy_config(total_steps=3))


def test_stop_resume_and_discard(gate):
    registry = JobRegistry(trainer_factory=gate.factory)
    running = registry.submit("alice", toy_config(total_steps=10_000))
    queued = registry.submit("bob", toy_config())
    registry.stop(queued)
    assert registry.get(queued).trainer.state == "stopped"
    with pytest.raises(JobRefused, match="stop it"):
        registry.discard(running)
    registry.stop(running)
    gate.open.set()
    wait_for_state(registry, running, "stopped")
    steps_at_stop = registry.get(running).trainer.step
    assert 1 <= steps_at_stop < 10_000
    assert registry.get(queued).trainer.step == 0  # a stopped queued job never started

    registry.resume(queued)
    wait_for_state(registry, queued, "finished")
    registry.resume(running, total_steps=steps_at_stop + 5)
    wait_for_state(registry, running, "finished")
    assert registry.get(running).trainer.step == steps_at_stop + 5
    with pytest.raises(JobRefused, match="all .* steps"):
        registry.resume(running)

    registry.discard(running)
    assert registry.get(running) is None and registry.jobs_for("alice") == []
    with pytest.raises(KeyError, match="no job"):
        registry.stop(running)


def test_resume_waits_in_the_queue_when_the_slot_is_taken(gate):
    registry = JobRegistry(trainer_factory=gate.factory)
    first = registry.submit("alice", toy_config(total_steps=10_000))
    registry.stop(first)
    gate.open.set()
    wait_for_state(registry, first, "stopped")
    gate.open.clear()
    second = registry.submit("bob", toy_config(total_steps=10_000))
    registry.resume(first)
    assert registry.get(first).trainer.state == "queued"
    registry.stop(second)
    gate.open.set()
    wait_for_state(registry, first, "running", "finished")
    registry.stop(first)
    wait_for_state(registry, first, "stopped")


def test_reaper_stops_silent_owners_but_keeps_their_weights(gate):
    clock = FakeClock()
    registry = JobRegistry(max_running_per_device=1, heartbeat_timeout=180.0, clock=clock, trainer_factory=gate.factory)
    silent = registry.submit("alice", toy_config(total_steps=10_000))
    alive = registry.submit("bob", toy_config(total_steps=10_000))
    assert registry.get(alive).trainer.state == "queued"
    gate.open.set()
    clock.now = 100.0
    registry.heartbeat("bob")
    assert registry.reap() == []  # alice has been silent for 100 s only
    clock.now = 181.0
    assert registry.reap() == [silent]
    wait_for_state(registry, silent, "stopped")
    snapshot = registry.get(silent).snapshot()
    assert "heartbeat" in snapshot.message and snapshot.step > 0  # stopped, not discarded
    wait_for_state(registry, alive, "running")  # the freed slot went to the queued job

    for now in (250.0, 400.0, 550.0):  # bob keeps sending heartbeats: his job keeps running
        clock.now = now
        registry.heartbeat("bob")
        assert registry.get(alive).trainer.state == "running"
    step = registry.get(alive).trainer.step
    wait = time.monotonic() + WAIT
    while registry.get(alive).trainer.step == step and time.monotonic() < wait:
        time.sleep(0.01)
    assert registry.get(alive).trainer.step > step

    clock.now = 1000.0  # now bob goes silent too
    registry.reap()
    wait_for_state(registry, alive, "stopped")
    registry.resume(silent)  # alice comes back: her job continues from where it was stopped
    wait_for_state(registry, silent, "running")
    registry.stop(silent)
    wait_for_state(registry, silent, "stopped")


def test_reaper_thread_and_queued_jobs_of_silent_owners(gate):
    clock = FakeClock()
    registry = JobRegistry(heartbeat_timeout=10.0, clock=clock, reaper_interval=0.01, trainer_factory=gate.factory)
    try:
        running = registry.submit("alice", toy_config(total_steps=10_000))
        queued = registry.submit("bob", toy_config())
        clock.now = 5.0
        registry.heartbeat("alice")
        clock.now = 12.0  # bob silent for 12 s > 10 s; alice for 7 s
        wait_for_state(registry, queued, "stopped")  # taken out of the queue by the reaper thread
        assert registry.get(running).trainer.state == "running"
        assert "heartbeat" in registry.get(queued).snapshot().message
    finally:
        registry.close()
        gate.open.set()
        registry.stop(running)
        wait_for_state(registry, running, "stopped")


def test_adopt_a_trainer_loaded_from_a_checkpoint(tmp_path):
    trainer = Trainer(toy_config(total_steps=4))
    trainer.start()
    trainer.join(WAIT)
    path = trainer.save(tmp_path / "run.safetensors")
    registry = JobRegistry()
    job = registry.adopt("alice", Trainer.from_checkpoint(path))
    assert registry.get(job).trainer.state == "finished" and registry.get(job).trainer.step == 4
    registry.resume(job, total_steps=8)
    wait_for_state(registry, job, "finished")
    assert registry.get(job).trainer.step == 8


def test_constructor_validation():
    with pytest.raises(ValueError, match="max_running_per_device=0"):
        JobRegistry(max_running_per_device=0)
    with pytest.raises(ValueError, match="heartbeat_timeout=-1"):
        JobRegistry(heartbeat_timeout=-1)
    with pytest.raises(ValueError, match="owner"):
        JobRegistry().submit("", toy_config())
