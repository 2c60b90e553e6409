"""A job's state (core.training.job: JobState, its transitions) and the registry's queue: a class at the default limits
queues instead of being refused, the ETAs grow with the position and match the starts that follow, and a server
restart keeps every queued job in its place. Workers here are fakes that end when their time budget is spent, on a
fake clock, so the starts are exact and the tests take no training time."""

import json

import pytest

from core.training import run_store
from core.training.job import Job, JobStateError
from core.training.limits import JobLimits, estimate_device_starts
from core.training.stats import JobState, Snapshot, blank_progress
from tests.test_jobs import FakeClock, RecordingLauncher, make_registry, toy_config  # noqa: F401 (a fixture)
from ui.training_panel import status_line

BIG = dict(total_steps=100_000)


class BudgetHandle:
    """A worker that trains for exactly its time budget on the test's clock, then finishes (or stops on request)."""

    pid = None

    def __init__(self, folder, clock, max_seconds):
        self.folder, self.clock, self.ends_at, self.alive = folder, clock, clock() + max_seconds, True

    def is_alive(self):
        if self.alive and ((self.folder / run_store.STOP_REQUEST).exists() or self.clock() >= self.ends_at):
            progress = run_store.read_json(self.folder / run_store.PROGRESS)
            run_store.write_json_atomically(self.folder / run_store.PROGRESS, {**progress, "state": "finished"})
            self.alive = False
        return self.alive

    exitcode = 0


class BudgetLauncher:
    """Records when (on the clock) each job was launched; its workers are BudgetHandles."""

    def __init__(self, clock):
        self.clock, self.started = clock, {}

    def launch(self, folder, resume, total_steps, max_seconds, threads, device=None):
        self.started[folder.name] = self.clock()
        return BudgetHandle(folder, self.clock, max_seconds)


# -------------------------------------------------------------------------------------------- state
def test_job_state_is_plain_text_on_disk_and_old_records_load(tmp_path):
    assert json.dumps({"state": JobState.RUNNING}) == '{"state": "running"}' and JobState("crashed") == "crashed"
    config = toy_config()
    old = {**blank_progress(config), "state": "finished", "step": 40, "saved_step": 40}  # written before JobState
    snapshot = Snapshot.from_json(old)
    assert snapshot.state is JobState.FINISHED and snapshot.state.resumable and not snapshot.state.active
    with pytest.raises(ValueError, match="'paused' is not a valid JobState"):
        Snapshot.from_json({**old, "state": "paused"})

    store = run_store.RunStore(tmp_path)
    record = run_store.JobRecord(job_id="0123456789ab", owner_key=run_store.owner_key("alice"), created=1.0, config=config)
    folder = store.create(record)
    run_store.write_json_atomically(folder / run_store.PROGRESS, old)
    job = Job.from_disk(record, folder, store.max_age_seconds)
    assert job.state is JobState.FINISHED and job.snapshot().step == 40


def test_transitions_are_checked(tmp_path):
    store = run_store.RunStore(tmp_path)
    record = run_store.JobRecord(job_id="0123456789ab", owner_key=run_store.owner_key("alice"), created=1.0,
                                 config=toy_config())
    job = Job(record, store.create(record))
    with pytest.raises(JobStateError, match="idle → stopping is not a legal state change"):
        job.request_stop()
    with pytest.raises(JobStateError, match="only a running job can save"):
        job.request_save()
    job.enqueue(run_store.QueueEntry(enqueued_at=5.0, resume=False))
    assert job.state == "queued" and run_store.QueueEntry.read(job.folder).enqueued_at == 5.0
    job.leave_queue("stopped by its owner")
    assert job.state == "stopped" and not (job.folder / run_store.QUEUE_ENTRY).exists()
    assert job.snapshot().message == "stopped by its owner"
    with pytest.raises(JobStateError, match="stopped → running"):
        job.launch("cpu", 0.0, lambda *args: None)
    assert job.state == "stopped"  # a refused change changes nothing


# -------------------------------------------------------------------------------------------- queue
def test_a_class_of_ten_on_a_two_core_server_all_train_or_queue_with_a_position(make_registry):  # noqa: F811 (the fixture imported above)
    launcher = RecordingLauncher()
    registry = make_registry(JobLimits.from_env({}, usable_cores=2), launcher=launcher)
    jobs = [registry.submit(f"student{i}", toy_config(**BIG), max_seconds=300.0) for i in range(10)]  # none refused
    snapshots = [registry.get(job_id).snapshot() for job_id in jobs]
    assert [s.state for s in snapshots] == ["running"] + ["queued"] * 9 and len(launcher.launches) == 1
    assert [s.queue_position for s in snapshots[1:]] == list(range(1, 10))
    # each job's budget bounds its run, so every wait is known: the n-th waits n budgets, less what has run
    assert [s.starts_in_seconds for s in snapshots[1:]] == pytest.approx([300.0 * n for n in range(1, 10)], abs=1.0)
    assert "position 9 in the queue · starts in ≈ 4" in status_line(snapshots[-1])  # what the 10th student reads


def test_etas_follow_the_position_and_match_the_starts(make_registry):  # noqa: F811 (the fixture imported above)
    """Two slots, one job training per session. By hand: alice's 120 s and bob's 60 s jobs start at 0; at 60 bob's
    slot frees but alice's second job must wait for her first, so carol's starts (60); at 120 alice's second starts;
    dave's waits for the first of those two to end (150). Positions follow those starts, not the order of arrival."""
    clock = FakeClock()
    launcher = BudgetLauncher(clock)
    registry = make_registry(JobLimits(cpu_slots=2, running_per_session=1, queued_per_session=1),
                             launcher=launcher, clock=clock)
    budgets = [("alice", 120.0), ("bob", 60.0), ("alice", 30.0), ("carol", 90.0), ("dave", 45.0)]
    ids = [registry.submit(owner, toy_config(**BIG), max_seconds=seconds) for owner, seconds in budgets]
    queued = {name: registry.get(job_id).snapshot() for name, job_id in zip(["alice 2", "carol", "dave"], ids[2:])}
    assert {name: (s.queue_position, s.starts_in_seconds) for name, s in queued.items()} == {
        "alice 2": (2, 120.0), "carol": (1, 60.0), "dave": (3, 150.0)}
    while clock.now < 200:  # the world goes on: the fake workers end at their budgets, the registry polls each second
        clock.now += 1.0
        registry.poll()
    started = [launcher.started[job_id] for job_id in ids[2:]]
    assert started == [120.0, 60.0, 150.0]  # exactly as estimated (the estimates are within 1.5x of the starts)


def test_estimate_with_a_per_session_limit_by_hand():
    # one slot; alice runs (10 s left); queued: alice (5 s), bob (7 s). Without the session limit alice's second job
    # would start at 10; with it (1 per session) it still does, since hers ended: the slot goes to the oldest
    assert estimate_device_starts({"cpu": 1}, {"cpu": [10.0]}, [(("cpu",), {"cpu": 5.0}), (("cpu",), {"cpu": 7.0})],
                                  running_owners={"cpu": ["alice"]}, queued_owners=["alice", "bob"],
                                  per_owner=1) == [10.0, 15.0]
    # two slots, alice runs 10 s and one slot is free: her second job waits for her first, bob's takes the free slot
    assert estimate_device_starts({"cpu": 2}, {"cpu": [10.0]}, [(("cpu",), {"cpu": 5.0}), (("cpu",), {"cpu": 7.0})],
                                  running_owners={"cpu": ["alice"]}, queued_owners=["alice", "bob"],
                                  per_owner=1) == [10.0, 0.0]


def test_a_restart_keeps_the_queue_in_its_order(make_registry, tmp_path):  # noqa: F811 (the fixture imported above)
    launcher = RecordingLauncher()
    registry = make_registry(JobLimits(cpu_slots=1), launcher=launcher)
    ids = [registry.submit(owner, toy_config(**BIG), max_seconds=60.0) for owner in ("ann", "ben", "cat", "dan")]
    assert [registry.get(j).snapshot().queue_position for j in ids[1:]] == [1, 2, 3]

    relaunched = RecordingLauncher()  # the server restarts (its worker lost with it)
    restarted = make_registry(JobLimits(cpu_slots=1), launcher=relaunched)
    first = restarted.get(ids[0]).snapshot()
    assert first.state == "stopped" and "server restarted" in first.message
    assert [name for name, _, _ in relaunched.launches] == [ids[1]]  # the free slot goes to the first in the queue
    assert [restarted.get(j).snapshot().state for j in ids[1:]] == ["running", "queued", "queued"]
    assert [restarted.get(j).snapshot().queue_position for j in ids[2:]] == [1, 2]
    assert restarted.get(ids[3]).snapshot().starts_in_seconds == pytest.approx(120.0, abs=1.0)  # two budgets
    relaunched.end(restarted.get(ids[1]))
    restarted.poll()
    assert relaunched.launches[-1][0] == ids[2] and restarted.get(ids[3]).snapshot().queue_position == 1
    restarted.stop(ids[3])  # stopping a queued job takes it out for good: a restart does not queue it again
    again = make_registry(JobLimits(cpu_slots=1), launcher=RecordingLauncher())
    assert again.get(ids[3]).state == "stopped"


def test_a_restart_with_a_tiny_cap_keeps_the_queue_and_tells_whom_it_removed(make_registry, tmp_path):  # noqa: F811
    launcher = RecordingLauncher()
    registry = make_registry(JobLimits(cpu_slots=1), launcher=launcher)
    training = registry.submit("ann", toy_config(**BIG), max_seconds=60.0)
    waiting = registry.submit("ben", toy_config(**BIG), max_seconds=60.0)
    registry.get(training).write_progress(saved_step=12)
    launcher.handles[training].alive = False  # the server dies, its worker with it (the record still says running)

    relaunched = RecordingLauncher()  # restarted with RDL_RUNS_MAX_MB far below what the two folders hold
    restarted = make_registry(JobLimits(cpu_slots=1), launcher=relaunched,
                              store=run_store.RunStore(tmp_path / "runs", max_bytes=1))
    assert restarted.get(training) is None and restarted.jobs_for("ann") == []  # ann's job was stopped by the restart
    (told,) = restarted.evictions_for("ann")  # ... and then removed for space: ann is told, it was resumable
    assert told.job_id == training and told.resumable and "could have been resumed" in told.message()
    assert relaunched.launches[0][0] == waiting and restarted.evictions_for("ben") == []  # a queued job is kept
