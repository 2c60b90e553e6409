"""Tests for the job registry (core/training/registry.py), its limits (limits.py), the run store (run_store.py) and the
worker protocol (worker.py).

Most tests run the real worker code in threads of this process (worker.ThreadLauncher: same files, same
protocol) on tiny two-moons runs; a gate (a patched train_step that waits for the test) decides which job is
training, so queue and fairness tests depend on no timing. Two tests start real worker processes: one is
killed with SIGKILL, one is resumed across a "server restart". Waits are polls with generous bounds.
"""

import math
import os
import signal
import subprocess
import sys
import threading
import time

import pytest
import torch

from core import checkpoints, runtime
from core.training import fits, run_store, worker
from core.training import trainer as trainer_module
from core.training.config import TrainConfig
from core.training.limits import JobLimits, cpu_slots_for, estimate_device_starts, estimate_starts
from core.training.registry import JobRefused, JobRegistry
from core.training.trainer import Trainer

WAIT = 90.0


def toy_config(**overrides):
    settings = dict(dataset="two_moons", model_size="tiny", T=50, batch_size=16, total_steps=40, warmup_steps=2,
                    preview_every=0, preview_count=8, preview_steps=2, toy_points=256, device="cpu")
    settings.update(overrides)
    return TrainConfig(**settings)


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


@pytest.fixture
def gate(monkeypatch):
    """While closed, every training step waits (jobs stay 'running' at their current step)."""
    opened = threading.Event()
    real_step = trainer_module.queue_step

    def gated_step(state, loss_hook=None):
        if not opened.wait(WAIT):
            raise RuntimeError("gate never opened")
        return real_step(state, loss_hook)

    monkeypatch.setattr(trainer_module, "queue_step", gated_step)
    yield opened
    opened.set()


@pytest.fixture
def make_registry(tmp_path):
    """Registries on a run store in tmp_path, thread workers; every job is stopped and waited for at the end."""
    made = []

    def make(limits=None, launcher=None, store=None, **options):
        registry = JobRegistry(limits=limits or JobLimits(cpu_slots=1),
                               run_store=store or run_store.RunStore(tmp_path / "runs"),
                               launcher=launcher or worker.ThreadLauncher(), **options)
        made.append(registry)
        return registry

    yield make
    for registry in made:
        registry.close(stop_jobs_within=WAIT)


def wait_until(condition, what):
    deadline = time.monotonic() + WAIT
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


# ----------------------------------------------------------------------------------------- limits
@pytest.mark.parametrize("files, expected", [
    ({"cpu.max": "150000 100000\n"}, 1.5),  # cgroup v2 quota: 1.5 cores
    ({"cpu.max": "max 100000\n"}, None),  # v2, no quota
    ({"cpu/cpu.cfs_quota_us": "200000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 2.0),  # v1
    ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, None),  # v1, no quota
    ({"cpu.max": "garbage"}, None),
    ({}, None),
])
def test_usable_cores_read_the_cgroup_quota(tmp_path, files, expected):
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    affinity = len(os.sched_getaffinity(0))
    assert runtime.usable_cpu_cores(str(tmp_path)) == (affinity if expected is None else min(affinity, expected))


def test_limits_from_the_environment():
    limits = JobLimits.from_env({}, usable_cores=8)
    assert limits.cpu_slots == cpu_slots_for(8) == 7 and limits.threads_per_job == 1
    assert limits.running_per_session == 1 and limits.queued_per_session == 1 and limits.max_active == 56
    two_cores = JobLimits.from_env({}, usable_cores=2)  # a class on a 2-core server: one slot, the rest queue
    assert two_cores.cpu_slots == 1 and two_cores.max_active == 32
    assert JobLimits.from_env({}, usable_cores=1.5).cpu_slots == 1  # a fractional quota still runs one job
    custom = JobLimits.from_env({"RDL_CPU_JOBS": "2", "RDL_GPU_JOBS": "3", "RDL_MAX_JOBS": "5",
                                 "RDL_QUEUED_PER_SESSION": "0"}, usable_cores=8)
    assert (custom.cpu_slots, custom.cuda_slots, custom.max_active, custom.queued_per_session) == (2, 3, 5, 0)
    assert custom.threads_per_job == 3  # (8 − 1 cores) // 2 jobs
    for variable, value in (("RDL_CPU_JOBS", "0"), ("RDL_MAX_JOBS", "lots"), ("RDL_JOBS_PER_SESSION", "-1")):
        with pytest.raises(ValueError, match=f"{variable}='{value}' is not allowed"):
            JobLimits.from_env({variable: value}, usable_cores=4)


def test_queue_eta_by_hand():
    # two slots, running jobs end in 10 s and 30 s; queued jobs of 5 s, 20 s, 1 s
    assert estimate_starts(2, [10.0, 30.0], [5.0, 20.0, 1.0]) == [10.0, 15.0, 30.0]
    assert estimate_starts(1, [], [7.0, 3.0]) == [0.0, 7.0]  # a free slot: the first starts now
    assert estimate_starts(1, [None], [5.0]) == [None]  # the running job's rate is not measured yet
    assert estimate_starts(2, [4.0], [None, 2.0, 1.0]) == [0.0, 4.0, 6.0]  # an unknown job holds its slot for good
    assert estimate_starts(1, [3.0], [None, 1.0]) == [3.0, None]


# ------------------------------------------------------------------------------------- the queue
def test_fairness_queue_position_and_refusals(make_registry, gate):
    registry = make_registry(JobLimits(cpu_slots=2, running_per_session=1, queued_per_session=1, max_active=4))
    big = toy_config(total_steps=100_000)
    a1 = registry.submit("alice", big)
    a2 = registry.submit("alice", big)
    assert registry.get(a1).state == "running"
    assert registry.get(a2).state == "queued"  # a slot is free, but alice already has one training
    with pytest.raises(JobRefused, match="1 job\\(s\\) training and 1 waiting"):
        registry.submit("alice", big)
    b1 = registry.submit("bob", big)
    assert registry.get(b1).state == "running"  # fairness: bob gets the second slot before alice's second job
    snapshot = registry.get(a2).snapshot()
    assert snapshot.queue_position == 1 and snapshot.starts_in_seconds is None  # no rate measured yet: no guess
    carol = registry.submit("carol", big)  # waits behind alice's second job
    assert registry.get(carol).snapshot().queue_position == 2
    with pytest.raises(JobRefused, match="server is busy.*RDL_MAX_JOBS = 4"):
        registry.submit("dave", big)

    registry.stop(a1)
    gate.set()
    wait_until(lambda: registry.get(a1).snapshot().state == "stopped", "alice's first job to stop")
    registry.poll()
    assert registry.get(a2).state == "running" and registry.get(carol).state == "queued"
    wait_until(lambda: all(registry.get(j).snapshot().images_per_second > 0 for j in (a2, b1)), "measured rates")
    registry.poll()  # (the monitor thread's work: the queue's estimates follow the measured rates)
    etas = [registry.get(j).snapshot().eta_seconds for j in (a2, b1)]
    starts = registry.get(carol).snapshot().starts_in_seconds  # when the first of the two running jobs ends
    assert starts is not None and 0.5 * min(etas) < starts < 2 * min(etas)


def test_queue_eta_from_the_measured_rate_and_the_time_budget(make_registry, gate):
    registry = make_registry(JobLimits(cpu_slots=1))
    first = registry.submit("alice", toy_config(total_steps=100_000), max_seconds=30.0)
    second = registry.submit("bob", toy_config(total_steps=100_000))
    gate.set()
    wait_until(lambda: registry.get(first).snapshot().step > 0, "the first job to train")
    wait_until(lambda: registry.get(first).snapshot().images_per_second > 0, "its rate")
    registry.poll()
    waiting = registry.get(second).snapshot()
    assert waiting.queue_position == 1 and 0 < waiting.starts_in_seconds <= 30.0  # bounded by the first's budget


def test_kept_models_per_session(make_registry):
    registry = make_registry(JobLimits(cpu_slots=1, models_per_session=2))
    for _ in range(2):
        job_id = registry.submit("alice", toy_config(total_steps=3))
        assert registry.wait(job_id, WAIT) == "finished"
    with pytest.raises(JobRefused, match="keep 2 trained models"):
        registry.submit("alice", toy_config())
    registry.discard(registry.jobs_for("alice")[0].job_id)
    registry.submit("alice", toy_config(total_steps=3))


def test_stop_resume_continue_bit_identically_and_discard(make_registry, gate):
    reference = Trainer(toy_config())
    gate.set()
    reference.start()
    reference.join(WAIT)
    gate.clear()

    registry = make_registry()
    job_id = registry.submit("alice", toy_config())
    job = registry.get(job_id)
    registry.stop(job_id)
    assert job.state == "stopping"
    wait_until(lambda: not (job.folder / run_store.STOP_REQUEST).exists(), "the worker to take the stop request")
    gate.set()
    assert registry.wait(job_id, WAIT) == "stopped"
    stopped = job.snapshot()
    assert stopped.step == stopped.saved_step and stopped.checkpoint  # a graceful stop saves
    with pytest.raises(JobRefused, match="larger total"):
        registry.resume(job_id, total_steps=stopped.step)
    registry.resume(job_id)
    assert registry.wait(job_id, WAIT) == "finished"
    model, _, metadata = checkpoints.load(job.checkpoint)
    assert metadata["steps"] == 40
    for name, value in reference.ema.state_dict().items():
        assert torch.equal(model.state_dict()[name], value)  # the stop changed nothing
    with pytest.raises(JobRefused, match="larger total"):
        registry.resume(job_id)
    registry.resume(job_id, total_steps=45)  # a finished job can be extended
    assert registry.wait(job_id, WAIT) == "finished" and job.snapshot().step == 45

    folder = job.folder
    registry.discard(job_id)
    assert not folder.exists() and registry.jobs_for("alice") == []


def test_save_now_writes_a_checkpoint_while_the_job_trains(make_registry):
    registry = make_registry()
    job_id = registry.submit("alice", toy_config(total_steps=10_000_000))
    job = registry.get(job_id)
    wait_until(lambda: job.snapshot().step > 0, "the job to train")
    assert job.snapshot().saved_step is None and not job.checkpoint.exists()
    registry.request_save(job_id)
    wait_until(lambda: (job.snapshot().saved_step or 0) > 0, "the requested save")
    assert job.state == "running" and checkpoints.read_metadata(job.checkpoint)["steps"] > 0


def test_nan_ends_the_job_failed_and_keeps_the_last_save(make_registry, monkeypatch):
    real_step = trainer_module.queue_step
    monkeypatch.setattr(trainer_module, "queue_step", lambda state, loss_hook=None: real_step(
        state, lambda k, loss: loss * math.nan if k == 25 else loss))
    registry = make_registry()
    job_id = registry.submit("alice", toy_config())
    registry.request_save(job_id)
    assert registry.wait(job_id, WAIT) == "failed"
    snapshot = registry.get(job_id).snapshot()
    assert "NaN" in snapshot.error and "step 26" in snapshot.error and snapshot.step == 25
    with pytest.raises(JobRefused, match="only a stopped, crashed or finished job"):
        registry.resume(job_id)


def test_reaper_stops_silent_sessions_but_keeps_their_work(make_registry, gate):
    clock = FakeClock()
    registry = make_registry(JobLimits(cpu_slots=1), heartbeat_timeout=60.0, clock=clock)
    silent = registry.submit("alice", toy_config(total_steps=100_000))
    waiting = registry.submit("bob", toy_config(total_steps=100_000))
    clock.now = 50.0
    registry.heartbeat("bob")
    clock.now = 100.0
    assert registry.reap() == [silent]
    gate.set()
    assert registry.wait(silent, WAIT) == "stopped"
    snapshot = registry.get(silent).snapshot()
    assert "no heartbeat" in snapshot.message and snapshot.saved_step == snapshot.step
    registry.poll()
    assert registry.get(waiting).state == "running"


def test_run_store_survives_a_restart_and_cleans_up(make_registry, tmp_path):
    registry = make_registry()
    done = registry.submit("alice", toy_config(total_steps=5))
    assert registry.wait(done, WAIT) == "finished"
    interrupted = registry.submit("alice", toy_config(total_steps=5))
    assert registry.wait(interrupted, WAIT) == "finished"
    registry.get(interrupted).write_progress(state="running")  # as if the server died while it trained

    restarted = make_registry()
    jobs = {job.job_id: job for job in restarted.jobs_for("alice")}
    assert set(jobs) == {done, interrupted} and restarted.jobs_for("bob") == []
    assert jobs[done].state == "finished" and jobs[done].snapshot().checkpoint
    again = jobs[interrupted].snapshot()
    assert again.state == "stopped" and "server restarted" in again.message
    assert again.kept_until == pytest.approx(restarted.store.last_change(jobs[done].folder) + 7 * 86400, abs=5)

    clock = FakeClock()
    clock.now = time.time() + 8 * 86400  # a week and a day later: both are past their age limit
    aged = run_store.RunStore(tmp_path / "runs", clock=clock)
    assert aged.cleanup(protected={done}) == [interrupted]
    small = run_store.RunStore(tmp_path / "runs", max_bytes=1)
    assert small.cleanup() == [done] and small.scan() == []


def test_poll_lets_the_run_store_delete_old_jobs_every_ten_minutes(make_registry, tmp_path):
    clock = FakeClock()
    registry = make_registry(store=run_store.RunStore(tmp_path / "runs", max_age_seconds=3600), clock=clock)
    job_id = registry.submit("alice", toy_config(total_steps=3))
    assert registry.wait(job_id, WAIT) == "finished"
    folder = registry.get(job_id).folder
    two_hours_ago = time.time() - 7200
    for path in folder.iterdir():
        os.utime(path, (two_hours_ago, two_hours_ago))
    registry.poll()
    assert registry.get(job_id) is not None  # the last cleanup ran at submit, less than 10 minutes ago
    clock.now += 601
    registry.poll()
    assert registry.get(job_id) is None and not folder.exists()


# ------------------------------------------------------------------------------- real processes
def test_a_killed_worker_ends_crashed_with_its_last_checkpoint_usable(tmp_path, monkeypatch, make_registry):
    monkeypatch.setenv("RDL_CHECKPOINT_SECONDS", "0.2")  # inherited by the worker process
    registry = make_registry(launcher=worker.ProcessLauncher())
    job_id = registry.submit("alice", toy_config(total_steps=10_000_000, preview_every=0))
    job = registry.get(job_id)
    wait_until(lambda: (job.snapshot().saved_step or 0) > 0, "the worker's first checkpoint")
    os.kill(job.handle.pid, signal.SIGKILL)
    wait_until(lambda: job.snapshot().state not in ("running", "stopping"), "the worker to die")
    snapshot = job.snapshot()
    assert snapshot.state == "crashed" and "SIGKILL" in snapshot.error and "resume" in snapshot.error
    model, diffusion, metadata = checkpoints.load(job.checkpoint)  # the last save is whole and loads
    saved = metadata["steps"]
    assert saved > 0 and torch.isfinite(model(torch.zeros(2, 2), torch.zeros(2, dtype=torch.long))).all()

    registry.resume(job_id)  # continues from the checkpoint, in a new process
    wait_until(lambda: job.snapshot().step > saved and job.snapshot().state == "running", "the resumed worker")
    registry.stop(job_id)
    assert registry.wait(job_id, WAIT) == "stopped"
    final = job.snapshot()
    assert final.saved_step == final.step > saved


def test_sigterm_stops_a_worker_gracefully_and_it_saves(make_registry):
    registry = make_registry(launcher=worker.ProcessLauncher())
    job_id = registry.submit("alice", toy_config(total_steps=10_000_000))
    job = registry.get(job_id)
    wait_until(lambda: job.snapshot().step > 0, "the worker to train")
    os.kill(job.handle.pid, signal.SIGTERM)
    assert registry.wait(job_id, WAIT) == "stopped"
    snapshot = job.snapshot()
    assert snapshot.saved_step == snapshot.step > 0 and snapshot.error is None


SERVER = """
import os, sys, time
from core.training import run_store
from core.training.registry import JobRegistry
from core.training.limits import JobLimits
from core.training.config import TrainConfig
registry = JobRegistry(limits=JobLimits(cpu_slots=1), run_store=run_store.RunStore(sys.argv[1]))
job = registry.get(registry.submit("alice", TrainConfig(dataset="two_moons", model_size="tiny", T=50, batch_size=16,
    total_steps=10_000_000, preview_every=0, toy_points=256, device="cpu")))
while ((run_store.read_json(job.folder / run_store.PROGRESS) or {}).get("progress") or {}).get("step", 0) < 10:
    time.sleep(0.05)
os._exit(0)  # the server dies without stopping its job
"""


def test_a_server_that_dies_loses_nothing(tmp_path, make_registry):
    runs = tmp_path / "runs"  # the folder make_registry's stores use
    subprocess.run([sys.executable, "-c", SERVER, str(runs)], check=True, timeout=WAIT,
                   env={**os.environ, "PYTHONPATH": str(worker.ROOT)})
    folder = next(runs.glob("*/*"))
    # the orphaned worker notices that its server is gone, stops and saves
    wait_until(lambda: (run_store.read_json(folder / run_store.PROGRESS) or {}).get("state") == "stopped", "the orphan to stop")
    restarted = make_registry()
    (job,) = restarted.jobs_for("alice")
    snapshot = job.snapshot()
    assert snapshot.state == "stopped" and snapshot.saved_step == snapshot.step >= 10
    assert "server stopped" in snapshot.message
    restarted.resume(job.job_id, total_steps=snapshot.step + 5)
    assert restarted.wait(job.job_id, WAIT) == "finished" and job.snapshot().step == snapshot.step + 5


# ------------------------------------------------------------------------------------ thread policy
def test_the_worker_process_trains_under_a_thread_policy(monkeypatch, tmp_path):
    """`python -m core.training.worker` (one job per process) hands its Trainer a ThreadPolicy that may borrow one
    core beyond the registry's share; run() called in a thread of another process (ThreadLauncher) gets none."""
    seen = {}
    monkeypatch.setattr(worker.signal, "signal", lambda *args: None)  # main() would install its SIGTERM handler
    monkeypatch.setattr(worker, "run", lambda *args, **options: seen.update(args=args, **options) or 0)
    monkeypatch.delenv(runtime.THREADS_ENV, raising=False)
    assert worker.main([str(tmp_path), "--threads", "3", "--parent-pid", "1"]) == 0
    policy = seen["thread_policy"]
    assert isinstance(policy, runtime.ThreadPolicy) and policy.max_threads == 4 and policy.fixed is None
    assert seen["args"][4] == 3  # the share itself still sets the main thread's count
    monkeypatch.setenv(runtime.THREADS_ENV, "1")
    assert worker.thread_policy_for(3).fixed == 1  # $RDL_TORCH_THREADS pins it


def test_a_worker_process_respects_a_pinned_thread_count(make_registry, monkeypatch):
    monkeypatch.setenv(runtime.THREADS_ENV, "2")  # inherited by the worker process; the registry's share is 1
    registry = make_registry(limits=JobLimits(cpu_slots=1, threads_per_job=1), launcher=worker.ProcessLauncher())
    job_id = registry.submit("alice", toy_config(total_steps=10_000_000))
    job = registry.get(job_id)
    wait_until(lambda: job.snapshot().step > 0 and "threads" in (job.snapshot().device or ""), "the worker to train")
    assert job.snapshot().device.endswith("2 threads)")
    registry.stop(job_id)
    assert registry.wait(job_id, WAIT) == "stopped"


# ----------------------------------------------------------------------------- devices: CPU and GPU slots
class FakeHandle:
    """A worker that trains until the test ends it, or until the registry asks it to stop."""

    pid = None

    def __init__(self, folder):
        self.folder, self.alive = folder, True

    def is_alive(self):
        if self.alive and (self.folder / run_store.STOP_REQUEST).exists():
            run_store.write_json_atomically(self.folder / run_store.PROGRESS, {
                **run_store.read_json(self.folder / run_store.PROGRESS), "state": "stopped"})
            self.alive = False
        return self.alive

    @property
    def exitcode(self):
        return None if self.alive else 0


class RecordingLauncher:
    """Starts no worker: records (job folder name, device, threads) of every launch and hands out FakeHandles."""

    def __init__(self):
        self.launches, self.handles = [], {}

    def launch(self, folder, resume, total_steps, max_seconds, threads, device=None):
        self.launches.append((folder.name, device, threads))
        self.handles[folder.name] = FakeHandle(folder)
        return self.handles[folder.name]

    def end(self, job):
        """The job's worker finishes."""
        job.write_progress(state="finished")
        self.handles[job.job_id].alive = False


@pytest.fixture
def one_gpu(monkeypatch):
    """The server sees one GPU (core.runtime.cuda_inventory mocked) with plenty of free memory; torch.cuda itself
    must never be asked."""
    gpu = runtime.GpuInfo(0, "NVIDIA H100 80GB HBM3", (9, 0), 80 * 2**30, 79 * 2**30)
    monkeypatch.setattr(runtime, "_inventory", (gpu,))

    def no_cuda_here(*args, **kwargs):
        raise AssertionError("the web server asked torch.cuda")

    for name in ("is_available", "device_count", "mem_get_info", "get_device_name", "get_device_capability", "init"):
        monkeypatch.setattr(torch.cuda, name, no_cuda_here)
    return gpu


def test_auto_jobs_take_a_free_slot_on_either_device_gpu_first(make_registry, one_gpu):
    launcher = RecordingLauncher()
    registry = make_registry(JobLimits(cpu_slots=1, cuda_slots=2, threads_per_job=3), launcher=launcher)
    owners = [f"student{i}" for i in range(6)]
    auto = [registry.submit(owner, toy_config(device="auto")) for owner in owners[:4]]
    assert launcher.launches == [(auto[0], "cuda", 1), (auto[1], "cuda", 1), (auto[2], "cpu", 3)]  # GPU first
    assert [registry.get(j).device for j in auto] == ["cuda", "cuda", "cpu", None]  # the 4th waits, undecided
    explicit_cpu = registry.submit(owners[4], toy_config(device="cpu"))
    explicit_cuda = registry.submit(owners[5], toy_config(device="cuda"))
    assert registry.get(auto[3]).state == registry.get(explicit_cpu).state == "queued"
    launcher.end(registry.get(auto[0]))  # a GPU slot frees: the oldest job that may use it takes it
    registry.poll()
    assert launcher.launches[-1] == (auto[3], "cuda", 1) and registry.get(explicit_cuda).state == "queued"
    launcher.end(registry.get(auto[2]))  # the CPU slot frees: the explicit CPU job, not the CUDA one
    registry.poll()
    assert launcher.launches[-1] == (explicit_cpu, "cpu", 3) and registry.get(explicit_cuda).state == "queued"
    launcher.end(registry.get(auto[1]))
    registry.poll()
    assert launcher.launches[-1] == (explicit_cuda, "cuda", 1) and len(launcher.launches) == 6


def test_an_auto_job_goes_only_where_its_step_fits(make_registry, one_gpu, monkeypatch):
    monkeypatch.setattr(fits, "available_memory_bytes", lambda device: 2**20 if device.type == "cuda" else 2**34)
    launcher = RecordingLauncher()
    registry = make_registry(JobLimits(cpu_slots=1, cuda_slots=2), launcher=launcher)
    first = registry.submit("alice", toy_config(device="auto", batch_size=512))  # too big for 1 MiB of GPU memory
    second = registry.submit("bob", toy_config(device="auto", batch_size=512))
    assert launcher.launches == [(first, "cpu", 1)]  # the GPU is idle, but the job does not fit there
    assert registry.get(second).devices == ("cpu",) and registry.get(second).state == "queued"
    with pytest.raises(ValueError, match="only 0.0 GiB is available on cuda"):
        registry.submit("carol", toy_config(device="cuda", batch_size=512))


def test_queue_eta_across_devices_by_hand():
    # one GPU slot (running job ends in 10 s), one CPU slot (ends in 4 s); queue: auto (5 s on the GPU, 20 s on the
    # CPU), a CUDA job of 3 s, another auto job
    slots, running = {"cuda": 1, "cpu": 1}, {"cuda": [10.0], "cpu": [4.0]}
    queued = [(("cuda", "cpu"), {"cuda": 5.0, "cpu": 20.0}), (("cuda",), {"cuda": 3.0}),
              (("cuda", "cpu"), {"cuda": 5.0, "cpu": 20.0})]
    # at 4 the CPU frees and the first takes it (the GPU is busy until 10); at 10 the CUDA job takes the GPU
    # until 13, when the third takes it (the CPU is busy until 24)
    assert estimate_device_starts(slots, running, queued) == [4.0, 10.0, 13.0]
    # a GPU job of unknown length holds the GPU for good: the CUDA job's start is unknown, the auto job behind it
    # still starts on the CPU when the first auto job is done there (4 + 20 s)
    assert estimate_device_starts(slots, {"cuda": [None], "cpu": [4.0]}, queued) == [4.0, None, 24.0]
    assert estimate_device_starts({"cuda": 2, "cpu": 1}, {}, queued) == [0.0, 0.0, 0.0]  # free slots on both
    assert estimate_device_starts({"cpu": 1}, {"cpu": [3.0, 5.0]}, [(("cpu",), {"cpu": 1.0})]) == [5.0]  # over-full


def test_queue_view_of_an_auto_job_counts_both_devices(make_registry, one_gpu):
    launcher = RecordingLauncher()
    registry = make_registry(JobLimits(cpu_slots=1, cuda_slots=1, max_active=10), launcher=launcher)
    on_gpu = registry.get(registry.submit("alice", toy_config(device="auto")))
    on_cpu = registry.get(registry.submit("bob", toy_config(device="auto")))
    assert (on_gpu.device, on_cpu.device) == ("cuda", "cpu")
    on_gpu.write_progress(state="running", eta_seconds=30.0, images_per_second=64.0)
    on_cpu.write_progress(state="running", eta_seconds=10.0, images_per_second=16.0)
    waiting = registry.submit("carol", toy_config(device="auto"))  # 40 steps of 16 = 640 images
    cpu_only = registry.submit("dave", toy_config(device="cpu"))
    # carol starts when the CPU frees (10 s, before the GPU at 30 s); dave needs the CPU after her 640 / 16 = 40 s
    assert registry.queue_view(waiting) == (1, 10.0)
    assert registry.queue_view(cpu_only) == (2, 50.0)
    gpu_only = registry.submit("erin", toy_config(device="cuda"))
    assert registry.queue_view(gpu_only) == (2, 30.0)  # behind carol in the queue, but carol takes the CPU at 10 s


def test_the_worker_trains_on_the_device_it_was_given(tmp_path, monkeypatch):
    commands, real_run = [], worker.run
    monkeypatch.setattr(worker.subprocess, "Popen", lambda command, **options: commands.append(command) or FakeHandle(tmp_path))
    worker.ProcessLauncher().launch(tmp_path, False, None, None, 1, device="cuda")
    command = commands[0]
    assert command[command.index("--device") + 1] == "cuda"
    seen = {}
    monkeypatch.setattr(worker.signal, "signal", lambda *args: None)
    monkeypatch.setattr(worker, "run", lambda *args, **options: seen.update(options) or 0)
    assert worker.main([str(tmp_path), "--device", "cpu"]) == 0 and seen["device"] == "cpu"

    # an "auto" job told to train on CUDA builds its model there (on this machine without a GPU: a visible failure)
    runs = run_store.RunStore(tmp_path / "runs")
    record = run_store.JobRecord(job_id="0123456789ab", owner_key=run_store.owner_key("alice"), created=0.0,
                                 config=toy_config(device="auto"))
    folder = runs.create(record)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert real_run(str(folder), resume=False, device="cuda") == 1
    assert "device='cuda' is not available" in run_store.read_json(folder / run_store.PROGRESS)["error"]
    assert real_run(str(folder), resume=False, device="cpu", total_steps=2) == 0
    progress = run_store.read_json(folder / run_store.PROGRESS)
    assert progress["state"] == "finished" and progress["config"]["device"] == "cpu"
