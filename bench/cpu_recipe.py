"""CPU training recipe experiment: train a small UNet on the MNIST subset, sample with DDIM, save grids.

Example (see docs in the models helper's report for the measured results):
    .venv/bin/python bench/cpu_recipe.py --steps 3000 --out runs/recipe.png

It trains like core.training.trainer does (uniform minibatches with replacement, Adam with linear warm-up and
optional cosine decay to min_lr_ratio * lr, grad-norm clipping, EMA of the weights with the warm-up
decay min(target, (1 + step) / (10 + step))). At the --sample-at steps and at the end it draws digits
with DDIM-50 (eta = 0) from the EMA model, saves the first 64 as a grid PNG (<out>_step<N>.png, the
final one at <out>) and prints the MNIST classifier metrics of core.metrics.mnist (FD, inception score,
confident fraction, class histogram) with the FD of as many real digits for reference.
Throughput is reported per wall-clock second and per CPU second of this process (the cores are shared,
so wall time alone can mislead).

Recipe search (docs/benchmarks.md, "A faster MNIST recipe"): --precision (bf16 autocast, default: what
core.runtime decides), --min-snr GAMMA (Hang et al. 2023 loss weighting), --scale-with-T (β range scaled by
1000/T), and a budget in training CPU seconds: --max-cpu-s stops training, --eval-every-cpu-s draws --eval-n
digits (DDIM --sample-steps, x̂₀ clipped, seed 1234) and prints the classifier FD each time that much training
CPU time has passed, so the FD-vs-seconds curve does not depend on how busy the shared machine is. Evaluation
time is excluded from the training seconds. --out-json keeps the curve. --history DIR records the run for the
Train page's replay (core/training/history.py): loss curve, per-t loss profile and a 16-digit preview grid (DDIM 20,
fixed seed) every --preview-every steps and at every evaluation, each with the training CPU seconds so far.
"""

import argparse
import copy
import json
import math
import os
import sys
import time
from pathlib import Path

# Idle OpenMP threads must sleep, not spin: on a shared 2-core machine spinning threads of several
# processes steal each other's cores, which made a training step ~10x slower in CPU time here.
# (Must be set before torch loads its OpenMP runtime.)
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import torch

from core.data.datasets import load_dataset
from core.data.images import make_grid, save_png
from core.diffusion.gaussian_diffusion import GaussianDiffusion
from core.diffusion.samplers import ddim_sample
from core.diffusion.schedules import make_schedule
from core.metrics.mnist import mnist_quality, mnist_real_floor
from core.nets.build import build_model, count_parameters, model_config_for
from core.runtime import cpu_bf16_supported
from core.training.history import HistoryRecorder
from core.training.stats import TimestepProfile

PROFILE_BINS = 20


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--warmup", type=int, default=200, help="linear learning-rate warm-up steps")
    p.add_argument("--decay", choices=("none", "cosine"), default="cosine", help="learning-rate decay after warm-up")
    p.add_argument("--min-lr-ratio", type=float, default=0.0, help="final lr / peak lr for cosine decay")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--size", default="tiny", choices=("tiny", "small", "base"))
    p.add_argument("--channels", default=None, help="override the size's channels, e.g. 16,32,64")
    p.add_argument("--blocks", default=None, help="override the size's num_res_blocks, e.g. 1,1,1")
    p.add_argument("--time-embed-dim", type=int, default=None)
    p.add_argument("--no-attention", action="store_true")
    p.add_argument("--ema", type=float, default=0.999, help="target EMA decay")
    p.add_argument("--beta2", type=float, default=0.999, help="Adam's second-moment decay")
    p.add_argument("--grad-clip", type=float, default=1.0, help="max gradient norm (0 = off)")
    p.add_argument("--schedule", default="linear", choices=("linear", "cosine", "quadratic", "sigmoid"))
    p.add_argument("--T", type=int, default=1000)
    p.add_argument("--prediction", default="eps", choices=("eps", "x0", "v"))
    p.add_argument("--variance", default="fixed_small", choices=("fixed_large", "fixed_small", "learned_range"))
    p.add_argument("--sample-steps", type=int, default=50)
    p.add_argument("--final-samples", type=int, default=256, help="digits drawn at the end for the metrics")
    p.add_argument("--sample-at", default="", help="comma-separated training steps at which to also sample")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs/cpu_recipe.png")
    p.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto",
                   help="bf16 autocast for training and sampling (auto: core.runtime.cpu_bf16_supported())")
    p.add_argument("--t-lognormal", default=None, help="MEAN,STD: draw t so that ln σ_t = ½ ln((1−ᾱ)/ᾱ) is about "
                   "N(MEAN, STD²) (Karras et al. 2022's training noise levels) instead of uniformly")
    p.add_argument("--min-snr", type=float, default=0.0, help="min-SNR-γ loss weighting (Hang et al. 2023); 0 = off")
    p.add_argument("--scale-with-T", action="store_true", help="scale the β range by 1000/T (for T < 1000)")
    p.add_argument("--max-cpu-s", type=float, default=0.0, help="stop after this many training CPU seconds (0 = off)")
    p.add_argument("--eval-every-cpu-s", type=float, default=0.0, help="classifier FD every this many training CPU s")
    p.add_argument("--eval-n", type=int, default=256)
    p.add_argument("--preview-every", type=int, default=0, help="history frame every N steps (0 = only at evaluations)")
    p.add_argument("--history", default=None, help="folder to record the run's history in (core/training/history.py)")
    p.add_argument("--title", default="", help="title of the recorded history")
    p.add_argument("--out-json", default=None)
    p.add_argument("--clip", dest="clip_eval", action="store_true", help="clip x̂₀ to [-1, 1] when sampling for the metrics")
    return p.parse_args(argv)


def learning_rate(step: int, args) -> float:
    """Linear warm-up to args.lr, then constant or cosine decay down to min_lr_ratio * lr."""
    if step < args.warmup:
        return args.lr * (step + 1) / args.warmup
    if args.decay == "none":
        return args.lr
    progress = (step - args.warmup) / max(1, args.steps - args.warmup)
    ratio = args.min_lr_ratio + (1 - args.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
    return args.lr * ratio


@torch.no_grad()
def ema_update(ema_model, model, step: int, target: float) -> None:
    """EMA with warm-up: early on the average forgets the random initialisation quickly."""
    decay = min(target, (1 + step) / (10 + step))
    for ema_p, p in zip(ema_model.parameters(), model.parameters()):
        ema_p.lerp_(p, 1 - decay)


def precision_context(use_bf16: bool):
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=use_bf16)


def preview_grid(ema_model, diffusion, use_bf16: bool, n: int = 16) -> np.ndarray:
    """16 digits from the EMA model, DDIM 20 steps with clipped x̂₀, always the same noise (seed 1)."""
    ema_model.eval()
    with torch.no_grad(), precision_context(use_bf16):
        x = ddim_sample(ema_model, diffusion, (n, 1, 28, 28), min(20, diffusion.T), clip_x0=True,
                        generator=torch.Generator().manual_seed(1))
    return make_grid(x.float().clamp(-1, 1), nrow=4)


def sample_grid(ema_model, diffusion, args, path: Path, n: int = 64) -> dict:
    """Draw n digits from the EMA model, save the first 64 as a grid, return the MNIST classifier metrics."""
    generator = torch.Generator().manual_seed(1234)
    ema_model.eval()
    with torch.no_grad(), precision_context(args.use_bf16):
        x = ddim_sample(ema_model, diffusion, (n, 1, 28, 28), args.sample_steps, generator=generator,
                        clip_x0=args.clip_eval)
    x = x.float().clamp(-1, 1)
    save_png(make_grid(x[:64], nrow=8), path)
    quality = mnist_quality(x)
    quality["fd_floor_same_n"] = mnist_real_floor(n)["fd"]
    print(json.dumps({"grid": str(path), **quality}), flush=True)
    return quality


def build(args, data):
    schedule = make_schedule(args.schedule, args.T, scale_with_T=args.scale_with_T)
    diffusion = GaussianDiffusion(schedule, args.prediction, args.variance)
    config = model_config_for("image", tuple(data.shape[1:]), args.size, diffusion.out_channels(data.shape[1]))
    if args.channels:
        config["channels"] = [int(c) for c in args.channels.split(",")]
    if args.blocks:
        config["num_res_blocks"] = [int(b) for b in args.blocks.split(",")]
    if args.time_embed_dim:
        config["time_embed_dim"] = args.time_embed_dim
    if args.no_attention:
        config["attention"] = False
    return diffusion, config


def main(argv=None):
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    args.use_bf16 = {"auto": cpu_bf16_supported(), "fp32": False, "bf16": True}[args.precision]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)

    data = load_dataset("mnist").data  # [N, 1, 28, 28] in [-1, 1]
    diffusion, config = build(args, data)
    torch.manual_seed(args.seed)  # parameter initialisation only; training noise uses `generator`
    model = build_model(config)
    ema_model = copy.deepcopy(model)
    generator = torch.Generator().manual_seed(args.seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr, betas=(0.9, args.beta2))
    sample_at = {int(s) for s in args.sample_at.split(",") if s}
    print(json.dumps({"args": vars(args), "model": config, "parameters": count_parameters(model),
                      "load_average": list(os.getloadavg())}), flush=True)
    profile = TimestepProfile(diffusion.T, bins=PROFILE_BINS)  # the app trainer's per-t loss statistics
    recorder = None
    if args.history:
        recipe = {k: v for k, v in vars(args).items() if k in (
            "steps", "lr", "warmup", "decay", "min_lr_ratio", "batch", "size", "ema", "grad_clip", "schedule", "T",
            "prediction", "variance", "min_snr", "scale_with_T", "seed", "threads", "use_bf16")}
        recorder = HistoryRecorder(args.history, args.title or f"MNIST, {args.prediction}, T = {args.T}",
                                   "Recorded with bench/cpu_recipe.py on a shared 2-core CPU. The loss curve is the plain "
                                   "mean squared error of the prediction (before any loss weighting); previews are 16 "
                                   "digits from the EMA weights, DDIM 20 steps, the same noise at every step.",
                                   recipe, diffusion.T, profile.bin_edges())
    curve = []

    wall0, cpu0 = time.perf_counter(), time.process_time()
    excluded_wall, excluded_cpu = 0.0, 0.0  # time spent evaluating, not training
    next_eval = args.eval_every_cpu_s if args.eval_every_cpu_s > 0 else math.inf
    running = None
    done = 0
    t_probabilities = None
    if args.t_lognormal:  # core's distribution (the runs of docs/benchmarks.md "Digits within a lesson" used an
        # earlier density × bin-width form of it, within 0.005 in total variation of this one)
        mean, std = (float(v) for v in args.t_lognormal.split(","))
        t_probabilities = diffusion.lognormal_timestep_probabilities(mean, std)
    for step in range(args.steps):
        # uniform minibatch with replacement, as in core.training.trainer
        x0 = data[torch.randint(0, data.shape[0], (args.batch,), generator=generator)]
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, args)
        model.train()
        with precision_context(args.use_bf16):
            losses = diffusion.training_losses(model, x0, generator=generator, t_probabilities=t_probabilities,
                                               min_snr_gamma=args.min_snr if args.min_snr > 0 else None)
        mse = losses["mse"].float()
        loss = losses["loss"].float().mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if args.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), args.grad_clip)
        optimizer.step()
        ema_update(ema_model, model, step, args.ema)

        mse_value = mse.mean().item()
        running = mse_value if running is None else 0.98 * running + 0.02 * mse_value
        profile.add(losses["t"], mse.detach())
        done = step + 1
        if recorder is not None:
            recorder.add_loss(done, mse_value)
        train_wall = time.perf_counter() - wall0 - excluded_wall
        train_cpu = time.process_time() - cpu0 - excluded_cpu
        if done % 100 == 0 or done == args.steps:
            print(f"step {done} loss {running:.4f} lr {learning_rate(step, args):.2e} "
                  f"wall {train_wall:.0f}s img/s {done * args.batch / train_wall:.0f} "
                  f"img/cpu-s {done * args.batch / train_cpu:.0f}", flush=True)
        budget_spent = args.max_cpu_s > 0 and train_cpu >= args.max_cpu_s
        evaluate = train_cpu >= next_eval or (budget_spent and args.eval_every_cpu_s > 0)
        preview = recorder is not None and (evaluate or (args.preview_every and done % args.preview_every == 0))
        if evaluate or preview or (done in sample_at and done != args.steps):
            s_wall, s_cpu = time.perf_counter(), time.process_time()
            quality = None
            if evaluate:
                while next_eval <= train_cpu:
                    next_eval += args.eval_every_cpu_s
                quality = sample_grid(ema_model, diffusion, args, out.with_name(f"{out.stem}_step{done}{out.suffix}"),
                                      n=args.eval_n)
                curve.append({"step": done, "train_cpu_s": round(train_cpu, 1), "train_wall_s": round(train_wall, 1),
                              "load_average_1min": os.getloadavg()[0], "fd": quality["fd"],
                              "fd_floor_same_n": quality["fd_floor_same_n"],
                              "classes_present": sum(1 for c in quality["class_histogram"] if c > 0),
                              "inception_score": quality["inception_score"]})
                print(json.dumps({"curve": curve[-1]}), flush=True)
            elif done in sample_at:
                sample_grid(ema_model, diffusion, args, out.with_name(f"{out.stem}_step{done}{out.suffix}"))
            if preview:
                recorder.add_frame(done, train_cpu, profile.averages, preview_grid(ema_model, diffusion, args.use_bf16),
                                   fd=None if quality is None else quality["fd"],
                                   classes=None if quality is None else sum(1 for c in quality["class_histogram"] if c > 0))
            excluded_wall += time.perf_counter() - s_wall
            excluded_cpu += time.process_time() - s_cpu
        if budget_spent:
            break

    train_wall = time.perf_counter() - wall0 - excluded_wall
    train_cpu = time.process_time() - cpu0 - excluded_cpu
    if recorder is not None:
        recorder.save()
    summary = {"steps_done": done, "train_wall_s": round(train_wall, 1), "train_cpu_s": round(train_cpu, 1),
               "train_img_per_s": round(done * args.batch / train_wall, 1), "final_loss_ema": running,
               "load_average_end": list(os.getloadavg()), "pid": os.getpid()}
    if not curve or curve[-1]["step"] != done:
        s0 = time.perf_counter()
        quality = sample_grid(ema_model, diffusion, args, out, n=args.final_samples)
        summary.update(final_sampling_s=round(time.perf_counter() - s0, 1), final_fd=quality["fd"], grid=str(out))
    print(json.dumps(summary), flush=True)
    if args.out_json:
        Path(args.out_json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out_json).write_text(json.dumps({"command": "python bench/cpu_recipe.py " + " ".join(argv or sys.argv[1:]),
                                                   "args": {k: v for k, v in vars(args).items()}, "curve": curve,
                                                   "summary": summary}, indent=1) + "\n")
    return {"curve": curve, "summary": summary}


if __name__ == "__main__":
    main()
