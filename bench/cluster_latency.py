"""What the Ray job backend costs over the local one: job start latency and the cost of one progress update.

    python bench/cluster_latency.py [--jobs 3] [--reads 50] [--out docs/results/cluster_latency.json]

Local: the app's LocalBackend (core/training/backends.py: the JobRegistry with its ProcessLauncher, one CPU slot,
a temporary run store). Ray: a real local cluster on this machine (tests/cluster/local_cluster.py: a head holding
the registry actor, one worker node of one CPU, each a `ray start --block` process), driven through RayBackend as
an app replica would. For each backend, `--jobs` 2-D toy jobs one after the other: the start latency is from
just before submit() to the first snapshot() showing a trained step (so it
includes the worker's start: interpreter or Ray worker, torch import, data, model); then `--reads` snapshot() calls
are timed (what a page pays per progress update: locally the job's files, with Ray one actor round trip plus the
preview file); then the job is stopped and discarded. Ray keeps idle worker processes, so its later jobs may start
in an already warm worker: every job is reported.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.cluster import local_cluster  # noqa: E402,I001  (sets the Ray token variables before Ray is imported)
from bench.report import command_line, cpu_flags_summary, hardware, now_utc, write_json  # noqa: E402
from core.training import run_store, worker  # noqa: E402
from core.training.backends import LocalBackend  # noqa: E402
from core.training.config import TrainConfig  # noqa: E402
from core.training.limits import JobLimits  # noqa: E402

CONFIG = TrainConfig(dataset="two_moons", model_size="tiny", T=50, batch_size=16, total_steps=5_000_000, warmup_steps=2,
                     preview_every=0, toy_points=256, device="cpu")


def measure(backend, jobs: int, reads: int) -> list[dict]:
    rows = []
    for index in range(jobs):
        owner = f"bench-{index}"
        started = time.monotonic()
        job_id = backend.submit(owner, CONFIG)
        job = backend.get(job_id)
        while job.snapshot().step == 0:
            if time.monotonic() - started > 300:
                raise TimeoutError("a job did not start within 300 s")
            time.sleep(0.02)
        latency = time.monotonic() - started
        times = []
        for _ in range(reads):
            begin = time.perf_counter()
            job.snapshot()
            times.append(time.perf_counter() - begin)
        backend.stop(job_id)
        backend.wait(job_id, 120.0)
        backend.discard(job_id)
        rows.append({"job": index + 1, "start_latency_seconds": round(latency, 3),
                     "snapshot_ms_median": round(1000 * statistics.median(times), 3),
                     "snapshot_ms_p90": round(1000 * sorted(times)[int(0.9 * (len(times) - 1))], 3)})
        print(rows[-1], flush=True)
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=3)
    parser.add_argument("--reads", type=int, default=50)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    at_start = hardware()
    with tempfile.TemporaryDirectory(prefix="rdl-bench-local-") as folder:
        local = LocalBackend(limits=JobLimits(cpu_slots=1), run_store=run_store.RunStore(folder),
                             launcher=worker.ProcessLauncher(), monitor_interval=1.0)
        print("local backend", flush=True)
        local_rows = measure(local, args.jobs, args.reads)
        local.close()
    with tempfile.TemporaryDirectory(prefix="rdl-bench-ray-", dir="/tmp") as folder:
        temp_dir = Path(folder)
        (temp_dir / "runs").mkdir()
        cluster = local_cluster.LocalCluster(temp_dir / "runs", temp_dir)
        try:
            begin = time.monotonic()
            cluster.start_head()
            os.environ["RDL_RUNS_DIR"] = str(temp_dir / "runs")
            local_cluster.ray.init(address=cluster.address, namespace="reverse-diffusion-lab", log_to_driver=False,
                                   configure_logging=False)
            cluster.add_worker("worker1")
            cluster.wait_for_nodes(2)
            cluster_seconds = time.monotonic() - begin
            from core.training.ray_backend import RayBackend

            print(f"ray backend (cluster up in {cluster_seconds:.1f} s)", flush=True)
            ray_rows = measure(RayBackend(cluster.address, heartbeat_timeout=600.0), args.jobs, args.reads)
        finally:
            local_cluster.ray.shutdown()
            cluster.stop()
    document = {"command": command_line("bench/cluster_latency.py", argv if argv is not None else sys.argv[1:]),
                "when": now_utc(), "hardware": at_start, "cpu_flags": cpu_flags_summary(),
                "load_average_at_end": hardware().get("load_average_at_start"),
                "config": CONFIG.to_json(), "cluster_start_seconds": round(cluster_seconds, 1),
                "local": local_rows, "ray": ray_rows}
    if args.out:
        write_json(args.out, document)
    return 0


if __name__ == "__main__":
    sys.exit(main())
