"""Is the GPU path right, and how much does one GPU hold? Run it whenever a CUDA GPU is available.

    python bench/gpu_check.py --device cuda --out-json docs/results/gpu_check.json     # a few minutes on a GPU
    python bench/gpu_check.py --device cpu --quick                                    # the same checks, tiny, on a CPU

1. Agreement: the same model (seeded weights, random non-zero output layer) on the CPU and on --device, the same
   fixed batch (x_t, t): max |difference| of the fp32 outputs (TF32 off) must be below --tolerance times the
   outputs' scale; the autocast output of --device (bf16 where core.runtime uses it: compute capability >= 8.0 on
   CUDA) is reported against fp32 too (looser: bf16 keeps 8 bits).
2. Training: --warmup-steps untimed steps, then --steps timed ones, of the MNIST UNet (autocast and channels_last
   where the app uses them) from scratch; the mean loss of the last fifth of all steps must be below --loss-ratio
   times that of the first fifth. Then DDIM sampling (--sample-steps) of a batch, after one untimed warm-up run,
   which must be finite and in range.
3. Throughput: training and sampling images/s, timed after the warm-up (cuDNN's autotuning, CUDA's lazy kernel
   loading and the caching allocator's first allocations happen there, not in the timed part); and the app's own
   training step (core.training.step: `train_step`, one wait per step, and `queue_step`, which reads each step's
   summary one step late) at the same size.
4. Concurrency: k = 1, 2, 4, ... (up to --max-jobs) jobs of the app's training worker (`python -m
   core.training.worker`, started by core.training.worker.ProcessLauncher exactly as the job registry starts them,
   with --device) train at once for --job-seconds each. Throughput is read from the workers' progress files over
   the window in which every job is past its first --warmup-steps steps and none has ended: aggregate and per-job
   images/s, and the memory per job (CUDA: the device's used memory above what it was before the jobs, divided by
   k, which counts each worker's CUDA context; CPU: the largest peak resident memory of a worker). The knee (the
   smallest k whose successor adds less than 10% aggregate throughput, or where a job fails, e.g. out of memory)
   is the suggested RDL_GPU_JOBS (RDL_CPU_JOBS with --device cpu).
Exit status 1 when a check fails. Nothing is downloaded; the data are the shipped MNIST subset.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
import uuid
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

from bench.report import command_line, hardware, now_utc, write_json  # noqa: E402
from core.data.datasets import load_dataset  # noqa: E402
from core.diffusion.gaussian_diffusion import GaussianDiffusion  # noqa: E402
from core.diffusion.samplers import ddim_sample  # noqa: E402
from core.diffusion.schedules import make_schedule  # noqa: E402
from core.nets.build import build_model, model_config_for  # noqa: E402
from core.runtime import autocast, autocast_dtype, resolve_device  # noqa: E402
from core.training import run_store, worker  # noqa: E402
from core.training import step as app_step  # noqa: E402
from core.training.config import TrainConfig  # noqa: E402

QUICK_UNET = {"kind": "unet", "in_channels": 1, "out_channels": 1, "image_size": 28, "channels": [8, 16],
              "num_res_blocks": [1, 1], "attention": False, "time_embed_dim": 16, "norm_groups": 4}
POLL_SECONDS = 0.25  # how often the concurrency check reads the workers' progress and the memory
KNEE_GAIN = 1.1  # doubling the jobs must add at least this factor of aggregate throughput


def model_config(args) -> dict:
    return dict(QUICK_UNET) if args.quick else model_config_for("image", (1, 28, 28), args.size, 1)


def seeded_model(args, seed: int = 0) -> torch.nn.Module:
    """The model with seeded weights; every parameter perturbed so the zero-initialised output layer is not 0."""
    torch.manual_seed(seed)
    model = build_model(model_config(args))
    generator = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.02 * torch.randn(parameter.shape, generator=generator))
    return model


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.no_grad()
def check_agreement(args, device: torch.device) -> dict:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(16, 1, 28, 28, generator=generator)
    t = torch.randint(0, args.T, (16,), generator=generator)
    model = seeded_model(args).eval()
    reference = model(x, t)
    tf32 = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        on_device = model.to(device)(x.to(device), t.to(device)).float().cpu()
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = tf32
    with autocast(device):
        mixed = model(x.to(device), t.to(device)).float().cpu()
    scale = float(reference.abs().max())
    fp32_error = float((on_device - reference).abs().max())
    bf16_error = float((mixed - reference).abs().max())
    return {"output_scale": scale, "fp32_max_abs_diff": fp32_error, "bf16_max_abs_diff": bf16_error,
            "bf16_used": autocast_dtype(device) is not None, "same_device": device.type == "cpu",
            "ok": fp32_error <= args.tolerance * scale and bf16_error <= 0.1 * scale}


def train(args, device: torch.device) -> dict:
    """Train from scratch: args.warmup_steps untimed steps, then args.steps timed ones; the losses of all steps."""
    data = load_dataset("mnist").data.to(device)
    diffusion = GaussianDiffusion(make_schedule("linear", args.T, scale_with_T=args.T < 1000), "eps", "fixed_small")
    torch.manual_seed(0)
    model = build_model(model_config(args)).to(device)
    channels_last = device.type == "cuda"
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    generator = torch.Generator(device=device).manual_seed(0)
    losses = []

    def one_step():
        x0 = data[torch.randint(0, data.shape[0], (args.batch,), generator=generator, device=device)]
        if channels_last:
            x0 = x0.contiguous(memory_format=torch.channels_last)
        with autocast(device):
            loss = diffusion.training_losses(model, x0, generator=generator)["loss"].float().mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.detach())

    for _ in range(args.warmup_steps):
        one_step()
    synchronize(device)
    start = time.perf_counter()
    for _ in range(args.steps):
        one_step()
    synchronize(device)
    elapsed = time.perf_counter() - start
    result = {"steps": args.steps, "warmup_steps": args.warmup_steps, "seconds": elapsed,
              "images_per_second": args.steps * args.batch / elapsed,
              "losses": torch.stack(losses).float().cpu().tolist(), "model": model, "diffusion": diffusion}
    if device.type == "cuda":
        result["peak_memory_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
    return result


@torch.no_grad()
def check_sampling(args, model, diffusion, device: torch.device) -> dict:
    model.eval()
    n = args.sample_batch

    def sample(steps: int):
        with autocast(device):
            return ddim_sample(model, diffusion, (n, 1, 28, 28), steps, clip_x0=True, device=device,
                               generator=torch.Generator(device=device).manual_seed(0))

    sample(1)  # warm-up: the same shapes, untimed
    synchronize(device)
    start = time.perf_counter()
    x = sample(args.sample_steps)
    synchronize(device)
    elapsed = time.perf_counter() - start
    x = x.float().cpu()
    finite = bool(torch.isfinite(x).all())
    return {"n": n, "steps": args.sample_steps, "seconds": elapsed, "images_per_second": n / elapsed,
            "finite": finite, "ok": finite and float(x.abs().max()) <= 1.0 + 1e-3}


def worker_config(args) -> TrainConfig:
    """The TrainConfig of the app's jobs in this check: MNIST at --size, --batch, --T and --lr, no previews."""
    return TrainConfig(dataset="mnist", model_size=args.size, T=args.T, scale_with_T=args.T < 1000,
                       batch_size=args.batch, learning_rate=args.lr, warmup_steps=min(100, args.steps),
                       total_steps=10**8, preview_every=0, preview_count=4, preview_steps=2, device=args.device)


def app_step_rates(args, device: torch.device) -> dict:
    """images/s of core.training.step at worker_config's size: `train_step` (waits for every step's summary) and
    `queue_step` (reads it one step late; the same as train_step on the CPU), each after its warm-up."""
    rates = {}
    for name in ("train_step", "queue_step"):
        state = app_step.build_state(worker_config(args))
        run = getattr(app_step, name)
        for _ in range(args.warmup_steps):
            run(state)
        app_step.settle(state)
        synchronize(device)
        start = time.perf_counter()
        for _ in range(args.steps):
            run(state)
        app_step.settle(state)
        synchronize(device)
        rates[name] = args.steps * args.batch / (time.perf_counter() - start)
    return {"images_per_second": rates, "device_guard": device.type == "cuda"}


def used_memory_bytes(device: torch.device) -> int | None:
    """Memory in use on the whole GPU (every process), from the driver; None on the CPU."""
    if device.type != "cuda":
        return None
    free, total = torch.cuda.mem_get_info(device)
    return total - free


def peak_resident_bytes(pid) -> int | None:
    """A process's peak resident memory (VmHWM of /proc/<pid>/status), None when it cannot be read."""
    try:
        with open(f"/proc/{pid}/status") as status:
            line = next(line for line in status if line.startswith("VmHWM:"))
        return int(line.split()[1]) * 1024
    except (OSError, StopIteration, ValueError, IndexError):
        return None


def window_rate(samples: list, start: float, end: float, batch: int) -> float | None:
    """images/s of one job between poll times start and end, from its (poll time, step, elapsed) samples; None
    when fewer than two distinct readings fall inside."""
    inside = [(step, elapsed) for when, step, elapsed in samples if start <= when <= end]
    if len(inside) < 2 or inside[-1][1] <= inside[0][1]:
        return None
    return (inside[-1][0] - inside[0][0]) * batch / (inside[-1][1] - inside[0][1])


def launch_jobs(args, k: int, root: Path) -> list:
    """k jobs of worker_config in a run store under root, started by the registry's own launcher: (folder, handle)."""
    runs, launcher, jobs = run_store.RunStore(root), worker.ProcessLauncher(), []
    for i in range(k):
        record = run_store.JobRecord(job_id=uuid.uuid4().hex[:12], owner_key=run_store.owner_key(f"gpu-check-{i}"),
                                     created=time.time(), config=worker_config(args), max_seconds=args.job_seconds)
        folder = runs.create(record)
        jobs.append((folder, launcher.launch(folder, False, None, args.job_seconds, 1, device=args.device)))
    return jobs


def watch_jobs(args, jobs: list, device: torch.device) -> tuple[list, list, int | None]:
    """Poll the jobs' progress files until every worker has exited: per job its (poll time, step, elapsed)
    samples while it trained and the poll times at which it did; and the peak memory seen (GPU: used memory,
    CPU: the largest peak resident memory of a worker)."""
    samples, running_at = [[] for _ in jobs], [set() for _ in jobs]
    peak, deadline = None, time.monotonic() + args.job_seconds + 300
    while any(handle.is_alive() for _, handle in jobs):
        if time.monotonic() > deadline:
            for _, handle in jobs:
                if handle.is_alive():
                    handle.kill()
            break
        now = time.monotonic()
        memory = [used_memory_bytes(device)] if device.type == "cuda" else [peak_resident_bytes(h.pid) for _, h in jobs]
        peak = max([m for m in memory + [peak] if m is not None], default=None)
        for index, (folder, handle) in enumerate(jobs):
            progress = run_store.read_json(folder / run_store.PROGRESS) or {}
            record = progress.get("progress") or {}  # ProgressRecord.to_json()
            if handle.is_alive() and progress.get("state") == "running" and record.get("step", 0) > 0:
                samples[index].append((now, record["step"], record["seconds"]))
                running_at[index].add(now)
        time.sleep(POLL_SECONDS)
    return samples, running_at, peak


def run_workers(args, k: int, device: torch.device) -> dict:
    """k app workers training at once (see the module docstring, 4.): one row of the concurrency table."""
    root = Path(tempfile.mkdtemp(prefix="rdl-gpu-check-"))
    try:
        baseline = used_memory_bytes(device)
        jobs = launch_jobs(args, k, root)
        samples, running_at, peak = watch_jobs(args, jobs, device)
        finals = [run_store.read_json(folder / run_store.PROGRESS) or {} for folder, _ in jobs]
        failures = [(final.get("error") or f"ended {final.get('state')!r}, exit code {handle.exitcode}")[:300]
                    for (_, handle), final in zip(jobs, finals)
                    if handle.exitcode != 0 or final.get("state") not in ("stopped", "finished")]
    finally:
        shutil.rmtree(root, ignore_errors=True)
    warm = [next((when for when, step, _ in job if step >= args.warmup_steps), None) for job in samples]
    start = max(warm) if warm and None not in warm else None
    end = min((max(times) for times in running_at if times), default=None) if all(running_at) else None
    rates, windowed = [], start is not None and end is not None and end > start
    for job, final in zip(samples, finals):
        rate = window_rate(job, start, end, args.batch) if windowed else None
        if rate is None:  # no common window: the job's whole run (its warm-up included)
            windowed = False
            record = final.get("progress") or {}  # ProgressRecord.to_json()
            rate = record.get("step", 0) * args.batch / record["seconds"] if record.get("seconds") else 0.0
        rates.append(rate)
    used = None if peak is None else (peak - (baseline or 0)) / (k if device.type == "cuda" else 1)
    row = {"jobs": k, "failed": len(failures), "failure": failures[0] if failures else None,
           "aggregate_images_per_second": sum(rates), "per_job_images_per_second": [round(r, 1) for r in rates],
           "common_window": windowed, "window_seconds": round(end - start, 2) if windowed else None,
           "memory_mb_per_job": None if used is None else round(used / 2**20, 1)}
    print(json.dumps({"concurrency": row}), flush=True)
    return row


def concurrency(args, device: torch.device) -> dict:
    rows, k = [], 1
    while k <= args.max_jobs:
        rows.append(run_workers(args, k, device))
        if rows[-1]["failed"]:
            break
        k *= 2
    if not rows:
        return {"rows": [], "suggested_jobs": None, "suggested_setting": None}
    knee = rows[0]["jobs"]
    for previous, current in zip(rows, rows[1:]):
        if current["failed"] or current["aggregate_images_per_second"] < KNEE_GAIN * previous["aggregate_images_per_second"]:
            break
        knee = current["jobs"]
    variable = "RDL_GPU_JOBS" if device.type == "cuda" else "RDL_CPU_JOBS"
    return {"rows": rows, "suggested_jobs": knee, "suggested_setting": f"{variable}={knee}"}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    p.add_argument("--quick", action="store_true", help="a tiny UNet, T = 40 and few steps (for the test suite)")
    p.add_argument("--size", default="tiny", choices=("tiny", "small", "base"))
    p.add_argument("--steps", type=int, default=None, help="timed training steps (default 400, --quick 30)")
    p.add_argument("--warmup-steps", type=int, default=None, help="untimed steps first (default 20, --quick 3)")
    p.add_argument("--batch", type=int, default=None, help="batch size (default 128, --quick 16)")
    p.add_argument("--T", type=int, default=None, help="diffusion steps (default 1000, --quick 40)")
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--sample-steps", type=int, default=None, help="DDIM steps (default 50, --quick 5)")
    p.add_argument("--sample-batch", type=int, default=None, help="digits sampled (default 256, --quick 8)")
    p.add_argument("--tolerance", type=float, default=1e-3, help="fp32 CPU/device agreement, relative to output scale")
    p.add_argument("--loss-ratio", type=float, default=0.7, help="last-fifth / first-fifth mean loss must be below")
    p.add_argument("--max-jobs", type=int, default=None, help="largest concurrent job count tried (default 16, --quick 2; 0 = skip)")
    p.add_argument("--job-seconds", type=float, default=None, help="training seconds per worker (default 30, --quick 3)")
    p.add_argument("--out-json", default=None)
    args = p.parse_args(argv)
    defaults = dict(steps=(30, 400), warmup_steps=(3, 20), batch=(16, 128), T=(40, 1000), sample_steps=(5, 50),
                    sample_batch=(8, 256), max_jobs=(2, 16), job_seconds=(3.0, 30.0))
    for name, (quick, full) in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else full)
    for name in ("steps", "batch", "T", "sample_steps", "sample_batch"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    if args.warmup_steps < 0 or args.max_jobs < 0 or args.job_seconds <= 0:
        p.error("--warmup-steps and --max-jobs must be >= 0 and --job-seconds > 0")
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    device = resolve_device(args.device)  # a clear error when CUDA is asked for and absent
    if device.type == "cpu":
        torch.set_num_threads(1)
    else:
        worker.prepare_device(device)  # as the app's workers do (cudnn.benchmark)
    document = {"command": command_line("bench/gpu_check.py", argv), "date": now_utc(), "hardware": hardware(),
                "device": str(device), "quick": args.quick, "batch": args.batch, "T": args.T}
    document["agreement"] = check_agreement(args, device)
    print(json.dumps({"agreement": document["agreement"]}), flush=True)
    trained = train(args, device)
    fifth = max(1, len(trained["losses"]) // 5)
    first, last = sum(trained["losses"][:fifth]) / fifth, sum(trained["losses"][-fifth:]) / fifth
    document["training"] = {"steps": trained["steps"], "warmup_steps": trained["warmup_steps"],
                            "seconds": trained["seconds"], "images_per_second": trained["images_per_second"],
                            "loss_first_fifth": first, "loss_last_fifth": last, "ok": last < args.loss_ratio * first,
                            "peak_memory_mb": trained.get("peak_memory_mb")}
    print(json.dumps({"training": document["training"]}), flush=True)
    document["sampling"] = check_sampling(args, trained["model"], trained["diffusion"], device)
    print(json.dumps({"sampling": document["sampling"]}), flush=True)
    document["app_step"] = app_step_rates(args, device)
    print(json.dumps({"app_step": document["app_step"]}), flush=True)
    document["concurrency"] = concurrency(args, device)
    document["ok"] = all(document[part]["ok"] for part in ("agreement", "training", "sampling")) and \
        all(row["failed"] == 0 for row in document["concurrency"]["rows"][:1])
    print(json.dumps({"ok": document["ok"], "suggested": document["concurrency"]["suggested_setting"]}), flush=True)
    if args.out_json:
        write_json(args.out_json, document)
    return document


if __name__ == "__main__":
    raise SystemExit(0 if main()["ok"] else 1)
