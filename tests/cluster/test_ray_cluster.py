"""The Ray job backend on a real local cluster (tests/cluster/conftest.py): two replicas share one registry, and a
killed node's job goes on from its checkpoint on the other node. Marked `cluster` (deselect with -m "not cluster")."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

pytest.importorskip("tests.cluster.local_cluster", reason="Ray is not installed (pip install .[cluster])")
from core.training import run_store
from core.training.config import TrainConfig
from core.training.ray_backend import RayBackend
from core.training.ray_service import NODE_FILE, read_losses
from tests.cluster.local_cluster import ROOT

pytestmark = pytest.mark.cluster
WAIT = 120.0
ALICE, BOB = "a" * 32, "b" * 32  # owner ids (ui.session.owner_of of two browsers' cookies)

REPLICA_B = """
import json, sys
from core.training.ray_backend import RayBackend
backend = RayBackend(sys.argv[1])
owner, action = sys.argv[2], sys.argv[3]
jobs = backend.jobs_for(owner)
if action == "stop":
    for job in jobs:
        backend.stop(job.job_id, "stopped from replica B")
print(json.dumps([{"job_id": job.job_id, "state": str(job.state)} for job in jobs]))
"""


def long_config(**overrides) -> TrainConfig:
    settings = dict(dataset="two_moons", model_size="tiny", T=50, batch_size=16, total_steps=5_000_000, warmup_steps=2,
                    preview_every=0, preview_count=8, preview_steps=2, toy_points=256, device="cpu")
    return TrainConfig(**{**settings, **overrides})


def replica_b(cluster, owner: str, action: str) -> list[dict]:
    """Another app replica: a process of its own that connects to the cluster and asks for `owner`'s jobs."""
    result = subprocess.run([sys.executable, "-c", REPLICA_B, cluster.address, owner, action], cwd=ROOT, env=cluster.env,
                            capture_output=True, text=True, timeout=WAIT)
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def wait_until(predicate, what: str, timeout: float = WAIT, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


@pytest.fixture(scope="module")
def backend(cluster):
    return RayBackend(cluster.address, heartbeat_timeout=600.0)


def test_a_job_started_on_replica_a_is_seen_and_stopped_on_replica_b_by_its_owner_only(cluster, backend):
    job_id = backend.submit(ALICE, long_config())
    job = backend.get(job_id)
    wait_until(lambda: job.snapshot().step > 0, "the job to train")
    assert replica_b(cluster, BOB, "list") == []  # another browser sees nothing
    seen = replica_b(cluster, ALICE, "list")
    assert [entry["job_id"] for entry in seen] == [job_id] and seen[0]["state"] == "running"
    stopped = replica_b(cluster, ALICE, "stop")
    assert [entry["job_id"] for entry in stopped] == [job_id]
    assert backend.wait(job_id, WAIT) == "stopped"
    snapshot = job.snapshot()
    assert snapshot.message == "stopped from replica B"
    assert snapshot.saved_step == snapshot.step > 0 and job.checkpoint.exists()
    assert backend.jobs_for(BOB) == []
    backend.discard(job_id)
    assert backend.get(job_id) is None and not job.folder.exists()


def test_a_killed_nodes_job_resumes_from_its_checkpoint_on_the_other_node(cluster, backend):
    job_id = backend.submit(ALICE, long_config())
    job = backend.get(job_id)
    wait_until(lambda: (job.snapshot().saved_step or 0) >= 50, "a checkpoint")
    first = run_store.read_json(job.folder / NODE_FILE)["node"]
    names = {node["NodeID"]: name for node in ray_nodes() for name in ("worker1", "worker2") if name in node["Resources"]}
    victim = names[first]
    cluster.kill(victim)
    killed_at = time.monotonic()
    losses = wait_until(lambda: read_losses(job.folder), "the task to run again")
    restarted_after = time.monotonic() - killed_at
    assert len(losses) == 1 and losses[0]["lost_node"] == first and losses[0]["node"] != first
    assert names[losses[0]["node"]] != victim
    resumed_from = losses[0]["at_step"]
    assert resumed_from >= 50  # the checkpoint that existed when the node died, not step 0
    # the page says what happened, and the job trains on past its checkpoint on the surviving node
    snapshot = wait_until(lambda: (s := job.snapshot()).state == "running" and s.step > resumed_from and s, "progress after the retry")
    assert "its node was lost (once)" in snapshot.message and f"step {resumed_from:,}" in snapshot.message
    assert snapshot.step > resumed_from
    backend.stop(job_id)
    assert backend.wait(job_id, WAIT) == "stopped"
    assert job.snapshot().saved_step > resumed_from
    print(f"\nnode killed -> task running again after {restarted_after:.1f} s")
    backend.discard(job_id)


def ray_nodes():
    import ray

    return [node for node in ray.nodes() if node.get("Alive")]


def test_the_command_line_trains_on_the_cluster_and_writes_the_checkpoint(cluster, tmp_path):
    from core import checkpoints

    out = tmp_path / "toy.safetensors"
    command = [sys.executable, "-m", "core.train", "--ray-address", cluster.address, "--recipe", "toy", "--steps", "60",
               "--warmup-steps", "5", "--size", "tiny", "--batch-size", "16", "--preview-every", "0", "--out", str(out)]
    result = subprocess.run(command, cwd=ROOT, env=cluster.env, capture_output=True, text=True, timeout=WAIT)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "submitted job" in result.stderr and f"finished at step 60/60; saved {out}" in result.stderr
    assert checkpoints.read_metadata(out)["steps"] == 60
