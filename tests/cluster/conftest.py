"""One real local Ray cluster for every test in tests/cluster/ (module-scoped per file would start it twice; it is
session-scoped and started lazily by the first test that asks for it): a head (the registry actor; no CPUs for
tasks) and two worker nodes of one CPU each, every one a `ray start ... --block` process of its own on loopback,
started and stopped by its PID (its process group). The run store is a temporary folder all of them share, as a
cluster's shared mount would be. Skipped, with the reason, where Ray is not installed."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

import pytest

# (sets this process's Ray token before Ray is imported; skips where Ray is not installed)
local_cluster = pytest.importorskip("tests.cluster.local_cluster", reason="Ray is not installed (pip install .[cluster])")
LocalCluster, ray = local_cluster.LocalCluster, local_cluster.ray


@pytest.fixture(scope="session")
def cluster():
    temp_dir = Path(tempfile.mkdtemp(prefix="rdl-ray-", dir="/tmp"))
    runs_dir = temp_dir / "runs"
    runs_dir.mkdir()
    local = LocalCluster(runs_dir, temp_dir)
    started = time.monotonic()
    try:
        local.start_head()
        os.environ["RDL_RUNS_DIR"] = str(runs_dir)  # this process is a replica: the same shared run store
        ray.init(address=local.address, namespace="reverse-diffusion-lab", log_to_driver=False, configure_logging=False)
        for count, name in enumerate(("worker1", "worker2"), start=2):  # once the head answers, one at a time
            local.add_worker(name)
            local.wait_for_nodes(count)
        local.started_seconds = time.monotonic() - started
        yield local
    finally:
        if ray.is_initialized():
            ray.shutdown()
        local.stop()
        if not os.environ.get("RDL_KEEP_RAY_TEMP"):
            shutil.rmtree(temp_dir, ignore_errors=True)
