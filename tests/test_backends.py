"""The job backends (core.training.backends): the choice by $RDL_RAY_ADDRESS, no Ray import for the classroom
default, the protocol both answer, and the Ray backend's pieces that need no cluster (placement options, limits from
the cluster's resources, the node-loss message, the plain-value boundary of the registry actor). The real cluster
is tests/cluster/."""

from __future__ import annotations

import json
import subprocess
import sys
import types

import pytest

from core.training import backends, run_store, worker
from core.training.backends import JobBackend, JobView, LocalBackend, backend_from_env, ray_address
from core.training.config import TrainConfig
from core.training.limits import JobLimits
from core.training.registry import JobRefused, JobRegistry


def toy_config(**overrides) -> TrainConfig:
    settings = dict(dataset="two_moons", model_size="tiny", T=50, batch_size=16, total_steps=30, warmup_steps=2,
                    preview_every=0, preview_count=8, preview_steps=2, toy_points=256, device="cpu")
    return TrainConfig(**{**settings, **overrides})


def test_without_an_address_the_backend_is_the_local_registry_and_ray_is_never_imported(tmp_path):
    script = ("import sys; from core.training.backends import backend_from_env, LocalBackend\n"
              "backend = backend_from_env({})\n"
              "assert type(backend) is LocalBackend\n"
              "print('ray' in sys.modules, any(name.startswith('ray.') for name in sys.modules))")
    result = subprocess.run([sys.executable, "-c", script], cwd=backends.__file__.rsplit("/core/", 1)[0], capture_output=True,
                            text=True, timeout=120, env={"RDL_RUNS_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["False", "False"]


def test_an_address_selects_the_ray_backend(monkeypatch):
    made = []
    fake = types.ModuleType("core.training.ray_backend")
    fake.RayBackend = lambda address, heartbeat_timeout=None: made.append((address, heartbeat_timeout)) or "ray backend"
    monkeypatch.setitem(sys.modules, "core.training.ray_backend", fake)
    assert backend_from_env({"RDL_RAY_ADDRESS": " ray-head:6379 "}, heartbeat_timeout=90.0) == "ray backend"
    assert made == [("ray-head:6379", 90.0)]


@pytest.mark.parametrize("value, expected", [("", None), ("   ", None), ("ray://head:10001", "ray://head:10001")])
def test_ray_address_values(value, expected):
    assert ray_address({"RDL_RAY_ADDRESS": value}) == expected
    assert ray_address({}) is None


@pytest.mark.parametrize("value", ["head 6379", "a\x00b", "h" * 301])
def test_a_bad_ray_address_is_one_clear_line(value):
    with pytest.raises(ValueError, match="RDL_RAY_ADDRESS=.* is not allowed"):
        ray_address({"RDL_RAY_ADDRESS": value})


@pytest.mark.parametrize("argv, message", [
    (["--ray-address", "head 6379"], "--ray-address='head 6379' is not allowed"),
    (["--ray-address", " "], "--ray-address is empty"),
    (["--ray-address", "head:6379", "--resume", "x.safetensors"], "--resume trains on this machine"),
])
def test_the_command_lines_ray_address_is_checked_before_anything_connects(argv, message, capsys):
    from core import train

    with pytest.raises(SystemExit):
        train.main(argv)
    assert message in capsys.readouterr().err


def test_the_local_backend_is_todays_registry_and_answers_the_protocol(tmp_path):
    backend = LocalBackend(limits=JobLimits(cpu_slots=1), run_store=run_store.RunStore(tmp_path),
                           launcher=worker.ThreadLauncher())
    assert isinstance(backend, JobRegistry) and isinstance(backend, JobBackend)
    job = backend.get(backend.submit("alice", toy_config()))
    assert isinstance(job, JobView)
    assert backend.wait(job.job_id, 60.0) == "finished"
    assert job.snapshot().step == 30 and job.checkpoint.exists()


# ------------------------------------------------------------------ the Ray backend without a cluster
# (through tests.cluster.local_cluster, which sets the Ray token variables before Ray is imported, so that the
# cluster tests of the same pytest run can still connect)
pytest.importorskip("tests.cluster.local_cluster", reason="Ray is not installed (pip install .[cluster])")
from core.training import ray_backend, ray_service  # noqa: E402


def protocol_members(protocol) -> set[str]:
    return {name for name in vars(protocol) if not name.startswith("_")} | set(getattr(protocol, "__annotations__", {}))


def test_the_ray_backend_and_its_jobs_have_every_member_of_the_protocols():
    assert protocol_members(JobBackend) - set(dir(ray_backend.RayBackend)) == set()
    assert protocol_members(JobView) - set(dir(ray_backend.RemoteJob)) - {"job_id", "config", "data_kind"} == set()


@pytest.mark.parametrize("env, fraction", [({}, 0.5), ({"RDL_GPU_JOBS": "4"}, 0.25),
                                           ({"RDL_GPU_JOBS": "4", "RDL_RAY_GPU_FRACTION": "0.125"}, 0.125),
                                           ({"RDL_RAY_GPU_FRACTION": "1"}, 1.0)])
def test_the_gpu_fraction_is_one_over_the_jobs_per_gpu_unless_set(env, fraction):
    assert ray_service.gpu_fraction(env) == fraction


@pytest.mark.parametrize("value", ["0", "1.5", "-0.25", "a quarter", "nan"])
def test_a_bad_gpu_fraction_is_refused(value):
    with pytest.raises(ValueError, match="RDL_RAY_GPU_FRACTION="):
        ray_service.gpu_fraction({"RDL_RAY_GPU_FRACTION": value})


def test_placement_options_ask_for_cpus_and_a_share_of_a_gpu():
    env = {"RDL_GPU_JOBS": "4"}
    assert ray_service.task_options("cpu", 3, env) == {"num_cpus": 3, "max_retries": 3, "retry_exceptions": False}
    assert ray_service.task_options("cuda", 1, {**env, "RDL_RAY_RETRIES": "5"}) == {
        "num_cpus": 1, "num_gpus": 0.25, "max_retries": 5, "retry_exceptions": False}
    with pytest.raises(ValueError, match="RDL_RAY_RETRIES"):
        ray_service.retries({"RDL_RAY_RETRIES": "many"})


def test_the_launcher_submits_a_cuda_job_with_its_gpu_share(monkeypatch, tmp_path):
    """A mocked cluster: what RayLauncher hands to Ray for a CUDA job (the GPU path was not run on a GPU here)."""
    calls = []

    class FakeTask:
        def options(self, **options):
            calls.append(options)
            return types.SimpleNamespace(remote=lambda *args: calls.append(args) or "object ref")

    monkeypatch.setattr(ray_service, "train_task", FakeTask())
    handle = ray_service.RayLauncher({"RDL_RAY_GPU_FRACTION": "0.25"}).launch(tmp_path, False, 100, 60.0, 1, device="cuda")
    assert handle.ref == "object ref"
    assert calls[0] == {"num_cpus": 1, "num_gpus": 0.25, "max_retries": 3, "retry_exceptions": False}
    assert calls[1][:6] == (str(tmp_path), False, 100, 60.0, 1, "cuda") and len(calls[1][6]) == 16


@pytest.mark.parametrize("resources, env, cpu_slots, cuda_slots", [
    ({"CPU": 4.0, "GPU": 2.0}, {"RDL_RAY_GPU_FRACTION": "0.25"}, 4, 8),  # every CPU a slot; 2 GPUs / 0.25
    ({"CPU": 3.0}, {}, 3, 1),  # no GPU yet: one CUDA slot, which a "cuda" job waits for
    ({"CPU": 16.0, "GPU": 3.0}, {"RDL_GPU_JOBS": "2", "RDL_CPU_JOBS": "5"}, 5, 2),  # the variables win
])
def test_cluster_limits_come_from_the_clusters_resources(resources, env, cpu_slots, cuda_slots):
    limits = ray_service.cluster_limits(resources, env)
    assert (limits.cpu_slots, limits.cuda_slots) == (cpu_slots, cuda_slots)


def test_the_node_loss_message_is_honest_at_each_moment():
    assert ray_service.node_lost_message([], "n1", {"n1", "n2"}) is None
    assert "was lost; Ray is starting it again" in ray_service.node_lost_message([], "n1", {"n2"})
    one = [{"at_step": 1200, "lost_node": "n1", "node": "n2"}]
    assert ray_service.node_lost_message(one, "n2", {"n2"}) == \
        "its node was lost (once); it continues on another node from its checkpoint at step 1,200"
    two = [*one, {"at_step": None, "lost_node": "n2", "node": "n3"}]
    assert ray_service.node_lost_message(two, "n3", None).endswith("lost (2 times); it continues on another node "
                                                                   "from the start (no checkpoint yet)")


@pytest.fixture
def local_service(tmp_path, monkeypatch):
    """The registry actor's class run in this process (no cluster), its workers threads, and a RayBackend whose
    requests go straight to it: the plain-value boundary both ways."""
    service = ray_service.RegistryService.__new__(ray_service.RegistryService)
    service.registry = JobRegistry(limits=JobLimits(cpu_slots=1, models_per_session=1), run_store=run_store.RunStore(tmp_path),
                                   launcher=worker.ThreadLauncher())
    service._nodes = (0.0, set())
    sent = []

    def call(method, *args):
        json.dumps(args)  # only plain values cross
        answer = service.call(method, *args)
        json.dumps(answer)
        sent.append(method)
        return answer

    monkeypatch.setattr(ray_backend.ray, "get", lambda value, timeout=None: value)
    backend = ray_backend.RayBackend.__new__(ray_backend.RayBackend)
    backend.actor = types.SimpleNamespace(call=types.SimpleNamespace(remote=call))
    yield backend, service
    service.registry.close()


def test_the_ray_backend_round_trip_trains_a_job_and_reraises_refusals(local_service):
    backend, service = local_service
    job_id = backend.submit("alice", toy_config())
    assert backend.wait(job_id, 60.0) == "finished"
    [job] = backend.jobs_for("alice")
    snapshot = job.snapshot()
    assert (job.job_id, snapshot.step, snapshot.state) == (job_id, 30, "finished")
    assert job.config == toy_config() and job.checkpoint == service.registry.get(job_id).checkpoint and job.checkpoint.exists()
    assert backend.jobs_for("bob") == []
    with pytest.raises(JobRefused, match="you already keep 1 trained models"):
        backend.submit("alice", toy_config())
    with pytest.raises(KeyError, match="no job with id"):
        backend.stop("000000000000")
    with pytest.raises(ValueError, match="config must be a TrainConfig"):
        backend.submit("alice", {"dataset": "two_moons"})
    assert service.call("__init__") == ("error", "ValueError", "unknown request '__init__'")
    backend.discard(job_id)
    assert backend.get(job_id) is None and not job.folder.exists()
