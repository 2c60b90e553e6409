"""Is the GPU path right, and how much does one GPU hold? Run it whenever a CUDA GPU is available.

    python bench/gpu_check.py --device cuda --out-json docs/results/gpu_check.json     # a few minutes on a GPU
    python bench/gpu_check.py --device cpu --quick                                    # the same checks, tiny, on a CPU

1. Agreement: the same model (seeded weights, random non-zero output layer) on the CPU and on --device, the same
   fixed batch (x_t, t): max |difference| of the fp32 outputs (TF32 off) must be below --tolerance times the
   outputs' scale; the bf16-autocast output of --device is reported against fp32 too (looser: bf16 keeps 8 bits).
2. Training: --steps steps of the MNIST UNet (bf16 autocast and channels_last where the app uses them,
   core.runtime.autocast) from scratch; the mean loss of the last fifth must be below --loss-ratio times that of
   the first fifth. Then DDIM sampling (--sample-steps) of a batch, which must be finite and in range.
3. Throughput: training images/s at --batch, and sampling images/s.
4. Concurrency: k = 1, 2, 4, ... (up to --max-jobs) worker processes train at once for --job-seconds each;
   aggregate images/s, per-job images/s and peak GPU memory per job. The knee (the smallest k whose successor adds
   less than 10% aggregate throughput, or where a job fails, e.g. out of memory) is the suggested job limit.
Exit status 1 when a check fails. Nothing is downloaded; the data are the shipped MNIST subset.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

from bench.report import command_line, hardware, now_utc, write_json  # noqa: E402
from core.data.datasets import load_dataset  # noqa: E402
from core.diffusion.gaussian_diffusion import GaussianDiffusion  # noqa: E402
from core.diffusion.samplers import ddim_sample  # noqa: E402
from core.diffusion.schedules import make_schedule  # noqa: E402
from core.nets.build import build_model, model_config_for  # noqa: E402
from core.runtime import autocast, autocast_dtype, resolve_device  # noqa: E402

WORKER_FLAG = "--worker-seconds"
QUICK_UNET = {"kind": "unet", "in_channels": 1, "out_channels": 1, "image_size": 28, "channels": [8, 16],
              "num_res_blocks": [1, 1], "attention": False, "time_embed_dim": 16, "norm_groups": 4}


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


def train(args, device: torch.device, steps: int | None = None, seconds: float | None = None) -> dict:
    """Train from scratch for `steps` steps or `seconds` seconds; losses per step and images/s."""
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
    synchronize(device)
    start = time.perf_counter()
    while (steps is not None and len(losses) < steps) or (seconds is not None and time.perf_counter() - start < seconds):
        x0 = data[torch.randint(0, data.shape[0], (args.batch,), generator=generator, device=device)]
        if channels_last:
            x0 = x0.contiguous(memory_format=torch.channels_last)
        with autocast(device):
            loss = diffusion.training_losses(model, x0, generator=generator)["loss"].float().mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.detach())
    synchronize(device)
    elapsed = time.perf_counter() - start
    losses = torch.stack(losses).float().cpu().tolist()
    result = {"steps": len(losses), "seconds": elapsed, "images_per_second": len(losses) * args.batch / elapsed,
              "losses": losses, "model": model, "diffusion": diffusion}
    if device.type == "cuda":
        result["peak_memory_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
    return result


@torch.no_grad()
def check_sampling(args, model, diffusion, device: torch.device) -> dict:
    model.eval()
    n = args.sample_batch
    synchronize(device)
    start = time.perf_counter()
    with autocast(device):
        x = ddim_sample(model, diffusion, (n, 1, 28, 28), args.sample_steps, clip_x0=True, device=device,
                        generator=torch.Generator(device=device).manual_seed(0))
    synchronize(device)
    elapsed = time.perf_counter() - start
    x = x.float().cpu()
    finite = bool(torch.isfinite(x).all())
    return {"n": n, "steps": args.sample_steps, "seconds": elapsed, "images_per_second": n / elapsed,
            "finite": finite, "ok": finite and float(x.abs().max()) <= 1.0 + 1e-3}


def run_workers(args, k: int) -> dict:
    """k worker processes (this script, WORKER_FLAG) training at once; aggregate throughput."""
    command = [sys.executable, os.path.abspath(__file__), WORKER_FLAG, str(args.job_seconds), "--device", args.device,
               "--batch", str(args.batch), "--T", str(args.T), "--size", args.size] + (["--quick"] if args.quick else [])
    env = dict(os.environ, PYTHONPATH=os.getcwd() + os.pathsep + os.environ.get("PYTHONPATH", ""))
    workers = [subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for _ in range(k)]
    results, failures = [], []
    for worker in workers:
        try:
            out, err = worker.communicate(timeout=args.job_seconds + 300)
        except subprocess.TimeoutExpired:
            worker.kill()
            out, err = worker.communicate()
        if worker.returncode == 0:
            results.append(json.loads(out.strip().splitlines()[-1]))
        else:
            failures.append((err.strip().splitlines() or ["no output"])[-1][:300])
    row = {"jobs": k, "failed": len(failures), "failure": failures[0] if failures else None,
           "aggregate_images_per_second": sum(r["images_per_second"] for r in results),
           "per_job_images_per_second": [round(r["images_per_second"], 1) for r in results],
           "peak_memory_mb_per_job": max((r["peak_memory_mb"] for r in results if r.get("peak_memory_mb") is not None),
                                         default=None)}
    print(json.dumps({"concurrency": row}), flush=True)
    return row


def concurrency(args) -> dict:
    rows, k = [], 1
    while k <= args.max_jobs:
        rows.append(run_workers(args, k))
        if rows[-1]["failed"]:
            break
        k *= 2
    if not rows:
        return {"rows": [], "suggested_jobs": None}
    knee = rows[0]["jobs"]
    for previous, current in zip(rows, rows[1:]):
        if current["failed"] or current["aggregate_images_per_second"] < 1.1 * previous["aggregate_images_per_second"]:
            break
        knee = current["jobs"]
    return {"rows": rows, "suggested_jobs": knee}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    p.add_argument("--quick", action="store_true", help="a tiny UNet, T = 40 and few steps (for the test suite)")
    p.add_argument("--size", default="tiny", choices=("tiny", "small", "base"))
    p.add_argument("--steps", type=int, default=None, help="training steps (default 400, --quick 40)")
    p.add_argument("--batch", type=int, default=None, help="batch size (default 128, --quick 16)")
    p.add_argument("--T", type=int, default=None, help="diffusion steps (default 1000, --quick 40)")
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--sample-steps", type=int, default=None, help="DDIM steps (default 50, --quick 5)")
    p.add_argument("--sample-batch", type=int, default=None, help="digits sampled (default 256, --quick 8)")
    p.add_argument("--tolerance", type=float, default=1e-3, help="fp32 CPU/device agreement, relative to output scale")
    p.add_argument("--loss-ratio", type=float, default=0.7, help="last-fifth / first-fifth mean loss must be below")
    p.add_argument("--max-jobs", type=int, default=None, help="largest concurrent job count tried (default 16, --quick 2; 0 = skip)")
    p.add_argument("--job-seconds", type=float, default=None, help="training seconds per worker (default 30, --quick 2)")
    p.add_argument("--out-json", default=None)
    args = p.parse_args(argv)
    defaults = dict(steps=(30, 400), batch=(16, 128), T=(40, 1000), sample_steps=(5, 50), sample_batch=(8, 256),
                    max_jobs=(2, 16), job_seconds=(1.0, 30.0))
    for name, (quick, full) in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else full)
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    device = resolve_device(args.device)  # a clear error when CUDA is asked for and absent
    if device.type == "cpu":
        torch.set_num_threads(1)
    document = {"command": command_line("bench/gpu_check.py", argv), "date": now_utc(), "hardware": hardware(),
                "device": str(device), "quick": args.quick, "batch": args.batch, "T": args.T}
    document["agreement"] = check_agreement(args, device)
    print(json.dumps({"agreement": document["agreement"]}), flush=True)
    trained = train(args, device, steps=args.steps)
    fifth = max(1, len(trained["losses"]) // 5)
    first, last = sum(trained["losses"][:fifth]) / fifth, sum(trained["losses"][-fifth:]) / fifth
    document["training"] = {"steps": trained["steps"], "seconds": trained["seconds"],
                            "images_per_second": trained["images_per_second"], "loss_first_fifth": first,
                            "loss_last_fifth": last, "ok": last < args.loss_ratio * first,
                            "peak_memory_mb": trained.get("peak_memory_mb")}
    print(json.dumps({"training": document["training"]}), flush=True)
    document["sampling"] = check_sampling(args, trained["model"], trained["diffusion"], device)
    print(json.dumps({"sampling": document["sampling"]}), flush=True)
    document["concurrency"] = concurrency(args)
    document["ok"] = all(document[part]["ok"] for part in ("agreement", "training", "sampling")) and \
        all(row["failed"] == 0 for row in document["concurrency"]["rows"][:1])
    print(json.dumps({"ok": document["ok"], "suggested_jobs": document["concurrency"]["suggested_jobs"]}), flush=True)
    if args.out_json:
        write_json(args.out_json, document)
    return document


def worker(argv) -> None:
    """One concurrent training job: train for the given seconds, print its throughput as JSON."""
    seconds = float(argv[argv.index(WORKER_FLAG) + 1])
    args = parse_args([a for i, a in enumerate(argv) if a != WORKER_FLAG and (i == 0 or argv[i - 1] != WORKER_FLAG)])
    device = resolve_device(args.device)
    if device.type == "cpu":
        torch.set_num_threads(1)
    with contextlib.redirect_stdout(sys.stderr):
        result = train(args, device, seconds=seconds)
    print(json.dumps({"images_per_second": result["images_per_second"], "steps": result["steps"],
                      "peak_memory_mb": result.get("peak_memory_mb")}))


if __name__ == "__main__":
    if WORKER_FLAG in sys.argv:
        worker(sys.argv[1:])
    else:
        sys.exit(0 if main()["ok"] else 1)
