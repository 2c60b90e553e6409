"""Does an open training panel slow the job it shows? Steps/s of a worker-process job with the panel polling vs
not, alternating, in one run.

    python bench/panel_overhead.py [--phase-seconds 10] [--pairs 6] [--dataset mnist] [--batch-size 32]
    python bench/panel_overhead.py --watchers 1,5,10,20 [--phase-seconds 20] [--json docs/results/panel_watchers.json]

One job (the tiny UNet on MNIST by default) trains in a worker process started by the app's JobRegistry, with
the slot and thread settings the app would use on this machine. The run alternates "closed" phases (nothing
reads the job) and "open" phases, in which this process does once per second what one refresh of the Train
page's panel does on the server (ui/training_panel.py): read the job's snapshot and preview, build the loss and
per-timestep figures and serialise them to JSON, and encode the preview image as PNG. The browser's drawing
happens on the student's machine and is not measured. The rate of each phase comes from the worker's own
progress file: Δstep / Δ(training seconds) between the first and last report inside the phase, and also per
second of the worker's own CPU time (/proc: insensitive to how much CPU other processes take, it shows whether
the panel slows the worker's steps themselves). The CPU time of each panel refresh is measured too: it bounds
what an open panel can take from the machine.

--watchers N,M,...: what N open panels watching the one training job cost the web server (issue 21 item 2). For each
N, a phase of --phase-seconds in which N threads of this process (standing for N browser sessions, their refreshes
spread evenly over the interval) each do, every ui.training_panel.REFRESH_SECONDS, the server side of one refresh:
the heartbeat, the job's view, and the figures' serialisation as ui.figures.chart does it (typeset with honest
axes unless the figure is already prepared, then plotly.io.to_json as st.plotly_chart does). Two ways,
alternating per N: "shared" takes the view from one ui.training_panel.PanelViews (read once per interval for all
panels, as the app does now) and "per-panel" reads the snapshot and builds the figures and preview in every panel
(as the app did before). Reported: this process's CPU seconds per wall second (all its
threads; the worker is another process) minus an idle phase's, per N and way. Streamlit's own per-rerun work
(script context, protobuf, websocket) is not included: it is the same for both ways.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from bench.report import cpu_flags_summary, write_json  # noqa: E402
from core.data.images import png_bytes, upscale  # noqa: E402
from core.training import run_store  # noqa: E402
from core.training.config import TrainConfig  # noqa: E402
from core.training.registry import JobRegistry  # noqa: E402
from ui.figures import prepared  # noqa: E402
from ui.training_panel import REFRESH_SECONDS, PanelViews, loss_figure, preview_picture, profile_figure  # noqa: E402


def panel_refresh(job) -> None:
    """The server-side work of one refresh of the live panel."""
    snapshot = job.snapshot()
    loss_figure(snapshot.progress).to_json()
    profile_figure(snapshot.progress).to_json()
    if snapshot.preview is not None and snapshot.preview.grid is not None:
        png_bytes(upscale(snapshot.preview.grid, 2))


def worker_cpu_seconds(pid: int) -> float:
    """user + system CPU time of a process (Linux /proc), in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def phase(job, seconds: float, panel_open: bool, refresh_cpu: list) -> tuple[float, float]:
    """Run one phase; returns the job's steps per second of training time, and per second of the worker's own
    CPU time, during it (and appends the CPU seconds of each panel refresh to refresh_cpu)."""
    reports, cpu_start = [], worker_cpu_seconds(job.handle.pid)
    step_start = ((run_store.read_json(job.folder / run_store.PROGRESS) or {}).get("progress") or {}).get("step", 0)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if panel_open:
            started = time.process_time()
            panel_refresh(job)
            refresh_cpu.append(time.process_time() - started)
        progress = run_store.read_json(job.folder / run_store.PROGRESS) or {}
        record = progress.get("progress") or {}  # ProgressRecord.to_json()
        if progress.get("state") == "running" and record.get("step"):
            report = (record["step"], record["seconds"])
            if not reports or report != reports[-1]:
                reports.append(report)
        time.sleep(1.0)
    (s0, e0), (s1, e1) = reports[0], reports[-1]
    cpu = worker_cpu_seconds(job.handle.pid) - cpu_start
    step_end = ((run_store.read_json(job.folder / run_store.PROGRESS) or {}).get("progress") or {}).get("step", 0)
    return (s1 - s0) / (e1 - e0), (step_end - step_start) / cpu


def draw(figures) -> None:
    """The server side of chart() for each figure: typeset with honest axes unless already prepared (ui.figures),
    then Plotly's JSON as st.plotly_chart makes it."""
    import plotly.io

    for fig in figures:
        plotly.io.to_json(fig if getattr(fig, "_rdl_prepared", False) else prepared(fig), validate=False)


def watchers_phase(registry, job, watchers: int, seconds: float, shared: bool) -> float:
    """CPU seconds of this process per wall second while `watchers` panels refresh the job (0: idle)."""
    views, stop = PanelViews(), threading.Event()

    def panel(offset: float) -> None:
        stop.wait(offset)
        while not stop.is_set():
            started = time.monotonic()
            registry.heartbeat("bench")
            if shared:
                view = views.get(job)
                draw((view.loss, view.profile))
            else:
                snapshot = job.snapshot()
                draw((loss_figure(snapshot.progress), profile_figure(snapshot.progress)))
                preview_picture(snapshot.preview)
            stop.wait(max(0.0, REFRESH_SECONDS - (time.monotonic() - started)))

    threads = [threading.Thread(target=panel, args=(REFRESH_SECONDS * i / max(watchers, 1),)) for i in range(watchers)]
    cpu, wall = time.process_time(), time.monotonic()
    for thread in threads:
        thread.start()
    stop.wait(seconds)
    stop.set()
    for thread in threads:
        thread.join()
    return (time.process_time() - cpu) / (time.monotonic() - wall)


def watchers_mode(args) -> int:
    counts = [int(n) for n in args.watchers.split(",")]
    if not counts or any(not 1 <= n <= 200 for n in counts):
        raise SystemExit("--watchers takes panel counts between 1 and 200, e.g. 1,5,10,20")
    load_start = os.getloadavg()
    with tempfile.TemporaryDirectory() as root:
        registry = JobRegistry(run_store=run_store.RunStore(root))
        config = TrainConfig(dataset=args.dataset, model_size="tiny", batch_size=args.batch_size, total_steps=10_000_000,
                             preview_every=50, device="cpu")
        job = registry.get(registry.submit("bench", config))
        while ((run_store.read_json(job.folder / run_store.PROGRESS) or {}).get("progress") or {}).get("step", 0) < 5:  # warm up
            time.sleep(0.5)
        watchers_phase(registry, job, max(counts), 3.0, False)  # untimed: imports and first figures
        idle = watchers_phase(registry, job, 0, args.phase_seconds, True)
        rows = []
        for n in counts:
            for shared in (True, False):
                busy = watchers_phase(registry, job, n, args.phase_seconds, shared)
                rows.append({"watchers": n, "way": "shared" if shared else "per-panel", "cpu_s_per_s": busy - idle})
                print(f"{n:3d} panels, {rows[-1]['way']:9s}: {busy - idle:.3f} CPU-s/s", flush=True)
        registry.close(stop_jobs_within=120)
    summary = {"benchmark": "panel_watchers", "command": "python bench/panel_overhead.py " + " ".join(sys.argv[1:]),
               "dataset": args.dataset, "batch_size": args.batch_size, "phase_seconds": args.phase_seconds,
               "refresh_seconds": REFRESH_SECONDS, "idle_cpu_s_per_s": idle, "rows": rows, "loadavg_start": load_start,
               "loadavg_end": os.getloadavg(), "cpu": platform.processor() or platform.machine(),
               "cpu_flags": cpu_flags_summary(), "cpu_cores": os.cpu_count()}
    print(json.dumps(summary, indent=2))
    if args.json:
        write_json(args.json, summary)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--phase-seconds", type=float, default=10.0)
    parser.add_argument("--pairs", type=int, default=6)
    parser.add_argument("--dataset", default="mnist")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--watchers", help="panel counts, e.g. 1,5,10,20: the web server's cost of N open panels")
    parser.add_argument("--json", help="with --watchers: write the results here")
    args = parser.parse_args()
    if args.watchers:
        return watchers_mode(args)

    load_start = os.getloadavg()
    with tempfile.TemporaryDirectory() as root:
        registry = JobRegistry(run_store=run_store.RunStore(root))
        config = TrainConfig(dataset=args.dataset, model_size="tiny", batch_size=args.batch_size, total_steps=10_000_000,
                             preview_every=50, device="cpu")
        job_id = registry.submit("bench", config)
        job = registry.get(job_id)
        while ((run_store.read_json(job.folder / run_store.PROGRESS) or {}).get("progress") or {}).get("step", 0) < 5:  # warm up
            time.sleep(0.5)
        rows, refresh_cpu = [], []
        for pair in range(args.pairs):
            for panel_open in (False, True):
                rate, per_cpu = phase(job, args.phase_seconds, panel_open, refresh_cpu)
                rows.append({"pair": pair, "panel": "open" if panel_open else "closed", "steps_per_s": rate,
                             "steps_per_worker_cpu_s": per_cpu})
                print(f"pair {pair}: panel {'open  ' if panel_open else 'closed'} {rate:.3f} steps/s, "
                      f"{per_cpu:.3f} steps per worker CPU second", flush=True)
        registry.close(stop_jobs_within=120)

    closed = [r["steps_per_s"] for r in rows if r["panel"] == "closed"]
    opened = [r["steps_per_s"] for r in rows if r["panel"] == "open"]
    ratios = [o / c for o, c in zip(opened, closed)]
    cpu_ratios = [o["steps_per_worker_cpu_s"] / c["steps_per_worker_cpu_s"]
                  for o, c in zip(rows[1::2], rows[0::2])]
    summary = {"dataset": args.dataset, "batch_size": args.batch_size, "phase_seconds": args.phase_seconds,
               "closed_mean": statistics.mean(closed), "open_mean": statistics.mean(opened),
               "open_over_closed_per_pair": ratios, "open_over_closed_mean": statistics.mean(ratios),
               "open_over_closed_median": statistics.median(ratios),
               "per_worker_cpu_open_over_closed_median": statistics.median(cpu_ratios),
               "panel_refresh_cpu_ms_median": 1000 * statistics.median(refresh_cpu), "loadavg_start": load_start,
               "worker_threads": registry.limits.threads_per_job, "cpu_slots": registry.limits.cpu_slots,
               "cpu": platform.processor() or platform.machine(), "loadavg_end": os.getloadavg()}
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
