"""The training worker: one process per running job (`python -m core.training.worker`), started by the registry.

Only plain values cross into the worker (the job folder's path, ints and floats); it reads its TrainConfig
from the folder's job.json, which the server wrote, and unpickles nothing. It trains with a Trainer and
talks back through files in the folder (core.training.run_store), which cost it nothing measurable:

* progress.json: the Trainer's Snapshot as JSON (state, rate, and its ProgressRecord as "progress"), rewritten
  atomically every PUBLISH_SECONDS, plus `saved_step` (the step checkpoint.safetensors holds);
* preview.npz: the newest preview samples, rewritten when a new preview exists;
* checkpoint.safetensors: saved every RDL_CHECKPOINT_SECONDS (default 60), when the server asks (a `save`
  file appears), on stop and at the end, always atomically, so a killed worker leaves the last save usable.

The worker stops gracefully (saves, then exits) when a `stop` file appears, when its time budget is spent,
or when the server process that started it is gone. A NaN ends the job "failed" (the last save is kept).

CPU threads: a worker process runs one job, so its Trainer gets a core.runtime.ThreadPolicy (`thread_policy`):
before each step the training thread re-decides torch's thread count from the machine's load, between one and
the registry's share (`--threads`) plus one, so a job borrows the core kept for the web server while nothing else
wants it and gives it back when something does. $RDL_TORCH_THREADS pins the count instead. `run()` called in a
thread of another process (the registry's ThreadLauncher, for tests) leaves that process's thread count alone.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from core import checkpoints, runtime
from core.checks import check_int, check_number
from core.training import run_store
from core.training.stats import JobState, Snapshot
from core.training.trainer import Trainer

# a job's time budget counts the worker's start (interpreter, imports, data, model) too
STARTED = time.monotonic() - (runtime.process_age_seconds() or 0.0)
PUBLISH_SECONDS = 1.0
POLL_SECONDS = 0.2
DEFAULT_CHECKPOINT_SECONDS = 60.0
ROOT = Path(__file__).resolve().parents[2]  # the repository: where `python -m core.training.worker` runs


def checkpoint_seconds(env=None) -> float:
    text = (os.environ if env is None else env).get("RDL_CHECKPOINT_SECONDS")
    if not text:
        return DEFAULT_CHECKPOINT_SECONDS
    try:
        return check_number("RDL_CHECKPOINT_SECONDS", float(text), 0.0, open_low=True)
    except ValueError:
        raise ValueError(f"RDL_CHECKPOINT_SECONDS={text!r} is not allowed; expected a positive number of seconds") from None


def publish(folder: Path, snapshot: Snapshot, saved_step: int | None, last_preview_step: int | None) -> int | None:
    """Write progress.json (and preview.npz when the preview is new); returns the preview step written."""
    if snapshot.preview is not None and snapshot.preview.step != last_preview_step:
        tmp = folder / f".{run_store.PREVIEW}.tmp"
        tmp.write_bytes(snapshot.preview.to_npz())
        os.replace(tmp, folder / run_store.PREVIEW)
        last_preview_step = snapshot.preview.step
    data = snapshot.to_json()
    data["saved_step"] = saved_step
    data["checkpoint"] = str(folder / run_store.CHECKPOINT) if saved_step is not None else None
    run_store.write_json_atomically(folder / run_store.PROGRESS, data)
    return last_preview_step


def thread_policy_for(threads: int) -> runtime.ThreadPolicy:
    """The policy of a worker process whose registry share is `threads` CPU threads: at most one thread more
    (the web server's core, borrowed only while the load probe finds it free); $RDL_TORCH_THREADS pins it."""
    return runtime.ThreadPolicy(max_threads=check_int("threads", threads, 1, 1024) + 1)


def prepare_device(device) -> None:
    """Process-wide settings of a worker that trains on `device`: on CUDA, cuDNN benchmarks the convolution
    algorithms for the job's fixed shapes once and keeps the fastest (torch.backends.cudnn.benchmark)."""
    import torch

    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True


def run(job_dir: str, resume: bool, total_steps: int | None = None, max_seconds: float | None = None,
        threads: int = 1, parent_pid: int | None = None, checkpoint_every: float | None = None,
        thread_policy=None, device: str | None = None) -> int:
    """Train the job in `job_dir` until it ends; returns the exit code (0, or 1 when it could not start).

    resume: continue from the folder's checkpoint (else start from step 0); total_steps: a new total when
    resuming; threads: torch CPU threads; parent_pid: stop when this process is no longer our parent (None:
    do not watch, for in-process runs); thread_policy: re-decides the thread count between steps (a process
    of its own only: see the module docstring); device: "cpu" or "cuda", the device the registry launched the
    job on, which replaces the config's (an "auto" job trains where a slot was free; None keeps the config's)."""
    import torch

    folder = Path(job_dir)
    checkpoint = folder / run_store.CHECKPOINT
    every = checkpoint_seconds() if checkpoint_every is None else checkpoint_every
    saved_step = None
    try:
        record = run_store.JobRecord.from_json(run_store.read_json(folder / run_store.JOB_RECORD) or {})
        if parent_pid is not None:
            torch.set_num_threads(threads)
        if device is not None and device not in ("cpu", "cuda"):
            raise ValueError(f"device={device!r} is not allowed; a worker trains on 'cpu' or 'cuda'")
        if resume and checkpoint.exists():
            trainer = Trainer.from_checkpoint(checkpoint, device=device, max_seconds=max_seconds,
                                              thread_policy=thread_policy)
            saved_step = trainer.step
            if total_steps is not None and total_steps != trainer.config.total_steps:
                trainer.set_total_steps(total_steps)
        else:
            config = record.config if total_steps is None else dataclasses.replace(record.config, total_steps=total_steps)
            config = config if device is None else dataclasses.replace(config, device=device)
            trainer = Trainer(config, max_seconds=max_seconds, thread_policy=thread_policy)
        if parent_pid is not None:  # a process of its own: its start (imports, data, model) is part of the job's budget
            trainer.budget_head_start = time.monotonic() - STARTED
        prepare_device(trainer.device)
        trainer.start() if trainer.step == 0 else trainer.resume()
    except Exception as error:  # anything that prevents a start ends the job visibly, with the reason
        failed = {"state": JobState.FAILED, "error": f"the job could not start: {type(error).__name__}: {error}"}
        previous = run_store.read_json(folder / run_store.PROGRESS) or {}
        run_store.write_json_atomically(folder / run_store.PROGRESS, {**previous, **failed})
        return 1

    def save() -> int:
        trainer.save(checkpoint)
        return checkpoints.read_metadata(checkpoint)["steps"]  # the step saved (training goes on meanwhile)

    last_publish = last_save = time.monotonic()
    preview_step = publish(folder, trainer.snapshot(), saved_step, None)
    while trainer.state in (JobState.RUNNING, JobState.STOPPING):
        trainer.join(POLL_SECONDS)
        now = time.monotonic()
        if (folder / run_store.STOP_REQUEST).exists():
            reason = (folder / run_store.STOP_REQUEST).read_text(errors="replace")[:500].strip()
            trainer.stop(reason or None)
            (folder / run_store.STOP_REQUEST).unlink(missing_ok=True)
        elif parent_pid is not None and os.getppid() != parent_pid:
            trainer.stop("stopped because the server stopped; resume it to continue")
        if (folder / run_store.SAVE_REQUEST).exists() or now - last_save >= every:
            saved_step = save()
            (folder / run_store.SAVE_REQUEST).unlink(missing_ok=True)
            last_save = now
        if now - last_publish >= PUBLISH_SECONDS:
            preview_step = publish(folder, trainer.snapshot(), saved_step, preview_step)
            last_publish = now
    trainer.join()
    final = trainer.snapshot()
    if final.state in (JobState.STOPPED, JobState.FINISHED) and final.step != saved_step:
        saved_step = save()
    publish(folder, trainer.snapshot(), saved_step, preview_step)
    return 0


def main(argv=None) -> int:
    """`python -m core.training.worker JOB_DIR [--resume] [--total-steps N] [--max-seconds S] [--threads T]
    [--parent-pid P] [--device cpu|cuda]`: the process entry point. SIGTERM asks for a graceful stop, so the job
    still saves."""
    parser = argparse.ArgumentParser(prog="python -m core.training.worker")
    parser.add_argument("job_dir")
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--total-steps", type=int, default=None)
    parser.add_argument("--max-seconds", type=float, default=None)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--parent-pid", type=int, default=None)
    parser.add_argument("--device", choices=("cpu", "cuda"), default=None)
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda signum, frame: (Path(args.job_dir) / run_store.STOP_REQUEST).touch())
    threads = check_int("threads", args.threads, 1, 1024)
    return run(args.job_dir, args.resume, args.total_steps, args.max_seconds, threads, args.parent_pid,
               thread_policy=thread_policy_for(threads), device=args.device)


# ------------------------------------------------------------------------------------- launchers
class ProcessLauncher:
    """Starts each worker as a process of its own: a fresh interpreter (`python -m core.training.worker`), so
    no state of the web server is forked into it and the web server's __main__ is never re-imported (as
    multiprocessing's "spawn" would). Only the job folder's path and numbers cross, as command-line text;
    nothing comes back but the worker's files and its exit code. Its output goes to worker.log in the folder.
    `device` ("cpu" or "cuda", None = the config's) is the device the worker trains on."""

    def launch(self, folder, resume: bool, total_steps, max_seconds, threads: int, device: str | None = None):
        command = [sys.executable, "-m", "core.training.worker", str(folder), "--threads", str(threads),
                   "--parent-pid", str(os.getpid())]
        if device is not None:
            command += ["--device", device]
        if resume:
            command.append("--resume")
        if total_steps is not None:
            command += ["--total-steps", str(int(total_steps))]
        if max_seconds is not None:
            command += ["--max-seconds", repr(float(max_seconds))]
        env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE",  # idle OpenMP threads sleep instead of spinning
               "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
        with open(Path(folder) / "worker.log", "ab") as log:
            return _ProcessHandle(subprocess.Popen(command, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                                   stderr=subprocess.STDOUT, start_new_session=True))


class _ProcessHandle:
    """is_alive(), exitcode (negative: killed by that signal), pid and kill() of a worker process."""

    def __init__(self, popen: subprocess.Popen):
        self.popen = popen
        self.pid = popen.pid

    def is_alive(self) -> bool:
        return self.popen.poll() is None

    @property
    def exitcode(self) -> int | None:
        return self.popen.poll()

    def kill(self) -> None:
        self.popen.kill()


class ThreadLauncher:
    """Runs worker.run in a thread of this process (same files, same protocol): for tests and debugging only,
    since a thread shares the interpreter (and its speed) with the web server."""

    def launch(self, folder, resume: bool, total_steps, max_seconds, threads: int, device: str | None = None):
        handle = _ThreadHandle()
        handle.thread = threading.Thread(target=handle.run, args=(str(folder), resume, total_steps, max_seconds),
                                         kwargs={"device": device}, daemon=True)
        handle.thread.start()
        return handle


class _ThreadHandle:
    exitcode = None
    pid = None
    thread: threading.Thread

    def run(self, *args, **options):
        self.exitcode = run(*args, **options)

    def is_alive(self) -> bool:
        return self.thread.is_alive()


if __name__ == "__main__":
    sys.exit(main())
