"""A real local Ray cluster of separate processes (`ray start ... --block`, started and stopped by their PIDs), for
tests/cluster/ and bench/cluster_latency.py. Importing this module sets this process's Ray token variables (Ray
reads them when it is imported): every node started here and this process use the same token."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

os.environ["RAY_AUTH_MODE"] = "token"  # Ray 2.60 clusters require a token (docs/cluster.md: RAY_AUTH_MODE, RAY_AUTH_TOKEN)
os.environ.setdefault("RAY_AUTH_TOKEN", secrets.token_hex(32))

import ray  # noqa: E402

from tests.browser.streamlit_harness import free_port  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
RAY = str(Path(sys.executable).with_name("ray"))
START_TIMEOUT = 120.0


class LocalCluster:
    """A head and worker nodes, each a `ray start --block` process group of ours."""

    def __init__(self, runs_dir: Path, temp_dir: Path):
        self.runs_dir, self.temp_dir = runs_dir, temp_dir
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
                    "RDL_RUNS_DIR": str(runs_dir), "RDL_CHECKPOINT_SECONDS": "1", "RDL_JOBS_PER_SESSION": "1",
                    "RAY_health_check_period_ms": "500", "RAY_health_check_failure_threshold": "4",
                    "RAY_health_check_initial_delay_ms": "1000", "RAY_USAGE_STATS_ENABLED": "0",
                    "RAY_raylet_start_wait_time_s": "120",  # a busy 2-core machine starts a node slowly
                    "OMP_NUM_THREADS": "1", "RAY_DEDUP_LOGS": "0",
                    "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": os.environ["RAY_AUTH_TOKEN"]}
        self.nodes: dict[str, subprocess.Popen] = {}

    def _start(self, name: str, arguments: list[str]) -> subprocess.Popen:
        log = open(self.temp_dir / f"{name}.log", "wb")
        process = subprocess.Popen([RAY, "start", "--block", "--disable-usage-stats", *arguments], cwd=ROOT, env=self.env,
                                   stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        self.nodes[name] = process
        return process

    def start_head(self) -> None:
        self._start("head", ["--head", f"--port={self.port}", "--num-cpus=0",
                             "--num-gpus=0", "--object-store-memory=100000000", "--include-dashboard=false", f"--temp-dir={self.temp_dir}"])

    def add_worker(self, name: str) -> None:
        self._start(name, [f"--address={self.address}", "--num-cpus=1", "--num-gpus=0", "--object-store-memory=100000000",
                           f"--resources={{\"{name}\": 1}}"])

    def kill(self, name: str) -> None:
        """A node failure: SIGKILL to the node's whole process group (raylet, workers), by the PID we started."""
        process = self.nodes.pop(name)
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait(30)

    def wait_for_nodes(self, count: int, timeout: float = START_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len([node for node in ray.nodes() if node.get("Alive")]) >= count:
                return
            time.sleep(0.5)
        logs = "\n".join(f"--- {log.name}:\n" + log.read_text(errors="replace")[-1500:] for log in self.temp_dir.glob("*.log"))
        raise TimeoutError(f"the local Ray cluster did not reach {count} nodes in {timeout:.0f} s\n{logs}")

    def stop(self) -> None:
        """Every node's process group, by the PIDs we started (SIGKILL: a graceful drain takes 30 s a node, and the
        whole cluster, its temporary folder included, goes away)."""
        for name in [name for name in self.nodes if name != "head"] + ["head"] * ("head" in self.nodes):
            self.kill(name)
