"""The cluster side of the Ray job backend: a detached named actor that holds the one JobRegistry of a course, and
the Ray task that trains one job. Imported only where Ray is installed (core.training.ray_backend, the tests).

The actor (RegistryService, named SERVICE_NAME in NAMESPACE, `lifetime="detached"`, pinned to the head node) runs
an ordinary core.training.registry.JobRegistry: jobs, owners, queue, fairness and limits are exactly the local
server's, decided in one process, so every app replica that asks it sees the same thing. Its run store
($RDL_RUNS_DIR) must be a path every node mounts (NFS, a shared volume): workers write progress, previews and
checkpoints there, replicas read previews there, and the actor rescans it when it is started again, so an actor
(or head) restart offers every job again as a local server restart does.

Placement (RayLauncher, the registry's launcher seam): each worker is a Ray task (`train_task`) with
`num_cpus` = the registry's threads per job, and for a CUDA job `num_gpus` = RDL_RAY_GPU_FRACTION (default
1 / RDL_GPU_JOBS, the jobs-per-GPU figure that bench/gpu_check.py measures and suggests), so several small
jobs share a card. The registry's slots are the cluster's: unless RDL_CPU_JOBS / RDL_GPU_JOBS are set, they come
from ray.cluster_resources() (`cluster_limits`).

Faults: a task is retried by Ray when its node or worker process dies (`max_retries`, RDL_RAY_RETRIES, default 3;
exceptions are not retried). A retry finds the job folder's checkpoint and resumes from it (`train_task`), and
records the loss in `node_losses.json`, which the actor turns into the job's message, so the page says honestly
that the job lost its node and where it went on from. While the lost node's task waits for its retry the
message says so too (`node_lost_message`).

Only plain values cross the actor's boundary (strings, numbers, dicts of JSON values); no TrainConfig or Job
object is sent to a replica, and none is received: configs travel as TrainConfig.to_json() and are validated.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path

import ray

from core.checks import check_number
from core.training import run_store, worker
from core.training.config import TrainConfig
from core.training.limits import DEFAULT_GPU_JOBS, JobLimits
from core.training.registry import JobRegistry
from core.training.run_store import RunStore

NAMESPACE = "reverse-diffusion-lab"
SERVICE_NAME = "rdl-job-registry"
GPU_FRACTION_ENV = "RDL_RAY_GPU_FRACTION"
RETRIES_ENV = "RDL_RAY_RETRIES"
DEFAULT_RETRIES = 3
NODE_LOSSES = "node_losses.json"  # in a job folder: {"losses": [{"at_step": saved step, "lost_node", "node", "time"}]}
NODE_FILE = "node.json"  # in a job folder: the node the current attempt runs on
NODES_CACHE_SECONDS = 2.0


def gpu_fraction(env=None) -> float:
    """The share of one GPU a CUDA job asks Ray for: $RDL_RAY_GPU_FRACTION in (0, 1], else 1 / $RDL_GPU_JOBS
    (default 1 / limits.DEFAULT_GPU_JOBS): the number of jobs per GPU that bench/gpu_check.py suggests."""
    env = os.environ if env is None else env
    text = (env.get(GPU_FRACTION_ENV) or "").strip()
    if text:
        try:
            return check_number(GPU_FRACTION_ENV, float(text), 0.0, 1.0, open_low=True)
        except ValueError:
            raise ValueError(f"{GPU_FRACTION_ENV}={text!r} is not allowed; expected a number in (0, 1], "
                             f"e.g. 0.25 for four jobs per GPU") from None
    jobs = (env.get("RDL_GPU_JOBS") or "").strip()
    per_gpu = int(jobs) if jobs.isdigit() and int(jobs) >= 1 else DEFAULT_GPU_JOBS
    return 1.0 / per_gpu


def retries(env=None) -> int:
    text = ((os.environ if env is None else env).get(RETRIES_ENV) or "").strip()
    if not text:
        return DEFAULT_RETRIES
    if not text.isdigit() or int(text) > 100:
        raise ValueError(f"{RETRIES_ENV}={text!r} is not allowed; expected a whole number from 0 to 100")
    return int(text)


def cluster_limits(resources: dict, env=None) -> JobLimits:
    """The registry's limits on a cluster with these total resources (ray.cluster_resources()): the environment's
    variables as on one machine (core.training.limits), with the cluster's CPUs as the usable cores and, unless
    RDL_GPU_JOBS is set, one CUDA slot per GPU fraction (floor(GPUs / gpu_fraction)); a cluster without GPUs keeps
    one CUDA slot, which a "cuda" job waits for (Ray places it when a GPU node joins)."""
    env = dict(os.environ if env is None else env)
    cpus = float(resources.get("CPU", 0.0))
    gpus = float(resources.get("GPU", 0.0))
    if not (env.get("RDL_GPU_JOBS") or "").strip():
        env["RDL_GPU_JOBS"] = str(max(1, math.floor(gpus / gpu_fraction(env) + 1e-9)))
    # every cluster CPU may train (the web servers run elsewhere): usable cores + 1, since from_env keeps one back
    return JobLimits.from_env(env, usable_cores=max(1.0, cpus) + 1.0)


def task_options(device: str, threads: int, env=None) -> dict:
    """The Ray resources of one worker task: its CPU threads, and for a CUDA job its share of a GPU."""
    options = {"num_cpus": threads, "max_retries": retries(env), "retry_exceptions": False}
    if device == "cuda":
        options["num_gpus"] = gpu_fraction(env)
    return options


def node_lost_message(losses: list, current_node: str | None, alive_nodes: set[str] | None) -> str | None:
    """What a running job's page says about lost nodes: None when it never lost one; while the node recorded for the
    current attempt is not alive, that it is waiting for Ray to start it again; after a retry, where it resumed."""
    if current_node is not None and alive_nodes is not None and current_node not in alive_nodes:
        return "the node training this job was lost; Ray is starting it again on another node, from its last checkpoint"
    if not losses:
        return None
    last = losses[-1]
    where = f"from its checkpoint at step {last['at_step']:,}" if last.get("at_step") else "from the start (no checkpoint yet)"
    times = "once" if len(losses) == 1 else f"{len(losses)} times"
    return f"its node was lost ({times}); it continues on another node {where}"


def read_losses(folder: Path) -> list:
    """The node losses recorded in a job folder (NODE_LOSSES), oldest first; [] when none (or unreadable)."""
    losses = (run_store.read_json(Path(folder) / NODE_LOSSES) or {}).get("losses")
    return [loss for loss in losses if isinstance(loss, dict)] if isinstance(losses, list) else []


@ray.remote
def train_task(job_dir: str, resume: bool, total_steps, max_seconds, threads: int, device: str | None, attempt_id: str) -> int:
    """One worker on some node (core.training.worker.run with the job folder on the shared run store). A second
    execution with the same attempt_id is a Ray retry after a node or process loss: it resumes from the checkpoint
    the first one saved and records the loss (NODE_LOSSES)."""
    import torch

    folder = Path(job_dir)
    node = ray.get_runtime_context().get_node_id()
    previous = run_store.read_json(folder / NODE_FILE) or {}
    if previous.get("attempt_id") == attempt_id:  # this launch ran before: its node or process died
        saved = (run_store.read_json(folder / run_store.PROGRESS) or {}).get("saved_step")
        losses = read_losses(folder)[-20:]
        losses.append({"at_step": saved if (folder / run_store.CHECKPOINT).exists() else None, "lost_node": previous.get("node"),
                       "node": node, "time": time.time()})
        run_store.write_json_atomically(folder / NODE_LOSSES, {"losses": losses})
        resume = resume or (folder / run_store.CHECKPOINT).exists()
    run_store.write_json_atomically(folder / NODE_FILE, {"attempt_id": attempt_id, "node": node})
    torch.set_num_threads(threads)
    return worker.run(job_dir, resume, total_steps, max_seconds, threads, device=device)


class RayHandle:
    """is_alive(), exitcode and pid of a worker task, as core.training.job.Job reads a process handle."""

    pid = None

    def __init__(self, ref):
        self.ref = ref
        self._exitcode = None

    def is_alive(self) -> bool:
        ready, _ = ray.wait([self.ref], timeout=0)
        return not ready

    @property
    def exitcode(self) -> int | None:
        if self._exitcode is None and not self.is_alive():
            try:
                self._exitcode = int(ray.get(self.ref, timeout=0))
            except Exception:  # the task failed for good (retries spent, cancelled): a crash, resumable
                self._exitcode = 1
        return self._exitcode


class RayLauncher:
    """The registry's launcher on a cluster: each worker a Ray task with the job's CPUs (and GPU share)."""

    def __init__(self, env=None):
        self.env = dict(os.environ if env is None else env)

    def launch(self, folder, resume: bool, total_steps, max_seconds, threads: int, device: str | None = None):
        device = device or "cpu"
        options = task_options(device, threads, self.env)
        attempt_id = os.urandom(8).hex()
        (Path(folder) / NODE_FILE).unlink(missing_ok=True)
        ref = train_task.options(**options).remote(str(folder), bool(resume), total_steps, max_seconds, int(threads),
                                                   device, attempt_id)
        return RayHandle(ref)


class RegistryService:
    """The actor: a JobRegistry whose workers are Ray tasks. Its methods take and return plain values only."""

    def __init__(self, heartbeat_timeout: float = 180.0, monitor_interval: float = 0.5):
        limits = cluster_limits(ray.cluster_resources())
        self.registry = JobRegistry(limits=limits, run_store=RunStore.from_env(), launcher=RayLauncher(),
                                    heartbeat_timeout=heartbeat_timeout, monitor_interval=monitor_interval)
        self._nodes = (0.0, None)

    # ------------------------------------------------------------------------------------ requests
    def call(self, method: str, *args):
        """Run one registry request; returns ("ok", value) or ("error", kind, message) for the refusals and bad
        input the registry raises (JobRefused, ValueError, KeyError), so a replica re-raises them as one line."""
        from core.training.registry import JobRefused

        if method not in ALLOWED:
            return ("error", "ValueError", f"unknown request {method!r}")
        try:
            return ("ok", getattr(self, "_" + method)(*args))
        except JobRefused as error:
            return ("error", "JobRefused", str(error))
        except KeyError as error:
            return ("error", "KeyError", str(error.args[0]) if error.args else "no such job")
        except ValueError as error:
            return ("error", "ValueError", str(error))

    def _submit(self, owner, config_json, max_seconds):
        return self.registry.submit(owner, TrainConfig.from_json(config_json), max_seconds=max_seconds)

    def _get(self, job_id):
        job = self.registry.get(job_id)
        return None if job is None else self._view(job)

    def _jobs_for(self, owner):
        return [self._view(job) for job in self.registry.jobs_for(owner)]

    def _stop(self, job_id, message=None):
        self.registry.stop(job_id, message)

    def _request_save(self, job_id):
        self.registry.request_save(job_id)

    def _resume(self, job_id, total_steps=None, max_seconds=None):
        self.registry.resume(job_id, total_steps=total_steps, max_seconds=max_seconds)

    def _discard(self, job_id):
        self.registry.discard(job_id)

    def _heartbeat(self, owner):
        self.registry.heartbeat(owner)

    def _mark_used(self, owner, job_id):
        self.registry.mark_used(owner, job_id)

    def _evictions_for(self, owner):
        return [eviction.to_json() for eviction in self.registry.evictions_for(owner)]

    def _kept_until(self, job_id):
        return self.registry.kept_until(job_id)

    def _snapshot(self, job_id):
        job = self.registry.get(job_id)
        if job is None:
            raise KeyError(f"no job with id {job_id!r} (it may have been discarded)")
        return self._view(job)["progress"]

    def _limits(self):
        limits = self.registry.limits
        return {name: getattr(limits, name) for name in limits.__dataclass_fields__}

    # ------------------------------------------------------------------------------------- helpers
    def _view(self, job) -> dict:
        """A job as plain values: id, config (TrainConfig.to_json), folder, and its progress (Snapshot.to_json form,
        with the registry's fields and the node-loss message)."""
        data = job.progress_data()
        data["kept_until"] = job.kept_until()
        if data["state"] in ("running", "stopping"):
            node = (run_store.read_json(job.folder / NODE_FILE) or {}).get("node")
            note = node_lost_message(read_losses(job.folder), node, self._alive_nodes())
            if note:
                data["message"] = note if not data.get("message") else f"{data['message']}; {note}"
        data["state"] = str(data["state"])
        return {"job_id": job.job_id, "config": job.config.to_json(), "folder": str(job.folder), "progress": data}

    def _alive_nodes(self) -> set[str] | None:
        stamp, nodes = self._nodes
        if nodes is None or time.monotonic() - stamp > NODES_CACHE_SECONDS:
            try:
                nodes = {node["NodeID"] for node in ray.nodes() if node.get("Alive")}
            except Exception:  # the GCS is briefly unreachable: say nothing about nodes
                nodes = None
            self._nodes = (time.monotonic(), nodes)
        return nodes


ALLOWED = frozenset(name[1:] for name in vars(RegistryService) if name.startswith("_") and not name.startswith("__")
                    and name not in ("_view", "_alive_nodes"))


def service_actor(heartbeat_timeout: float = 180.0):
    """The course's registry actor: the running one, or a new one pinned to the head node (detached: it outlives
    the replica that created it). Call after ray.init."""
    actor_class = ray.remote(RegistryService)
    return actor_class.options(name=SERVICE_NAME, namespace=NAMESPACE, lifetime="detached", get_if_exists=True,
                               num_cpus=0, max_concurrency=16, max_restarts=-1,
                               resources={"node:__internal_head__": 0.001}).remote(heartbeat_timeout=heartbeat_timeout)
