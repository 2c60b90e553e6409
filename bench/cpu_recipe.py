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
"""

import argparse
import copy
import json
import math
import os
import time
from pathlib import Path

# Idle OpenMP threads must sleep, not spin: on a shared 2-core machine spinning threads of several
# processes steal each other's cores, which made a training step ~10x slower in CPU time here.
# (Must be set before torch loads its OpenMP runtime.)
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch

from core.data.datasets import load_dataset
from core.data.images import make_grid, save_png
from core.diffusion.gaussian_diffusion import GaussianDiffusion
from core.diffusion.samplers import ddim_sample
from core.diffusion.schedules import make_schedule
from core.metrics.mnist import mnist_quality, mnist_real_floor
from core.nets.build import build_model, count_parameters, model_config_for


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


def sample_grid(ema_model, diffusion, args, path: Path, n: int = 64) -> dict:
    """Draw n digits from the EMA model, save the first 64 as a grid, return the MNIST classifier metrics."""
    generator = torch.Generator().manual_seed(1234)
    ema_model.eval()
    x = ddim_sample(ema_model, diffusion, (n, 1, 28, 28), args.sample_steps, generator=generator).clamp(-1, 1)
    save_png(make_grid(x[:64], nrow=8), path)
    quality = mnist_quality(x)
    quality["fd_floor_same_n"] = mnist_real_floor(n)["fd"]
    print(json.dumps({"grid": str(path), **quality}), flush=True)
    return quality


def main(argv=None):
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)

    data = load_dataset("mnist").data  # [N, 1, 28, 28] in [-1, 1]
    diffusion = GaussianDiffusion(make_schedule(args.schedule, args.T), args.prediction, args.variance)
    config = model_config_for("image", tuple(data.shape[1:]), args.size, diffusion.out_channels(data.shape[1]))
    if args.channels:
        config["channels"] = [int(c) for c in args.channels.split(",")]
    if args.blocks:
        config["num_res_blocks"] = [int(b) for b in args.blocks.split(",")]
    if args.time_embed_dim:
        config["time_embed_dim"] = args.time_embed_dim
    if args.no_attention:
        config["attention"] = False

    torch.manual_seed(args.seed)  # parameter initialisation only; training noise uses `generator`
    model = build_model(config)
    ema_model = copy.deepcopy(model)
    generator = torch.Generator().manual_seed(args.seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    sample_at = {int(s) for s in args.sample_at.split(",") if s}
    print(json.dumps({"args": vars(args), "model": config, "parameters": count_parameters(model)}), flush=True)

    wall0, cpu0 = time.perf_counter(), time.process_time()
    sampling_wall = 0.0
    running = None
    for step in range(args.steps):
        # uniform minibatch with replacement, as in core.training.trainer
        x0 = data[torch.randint(0, data.shape[0], (args.batch,), generator=generator)]
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, args)
        model.train()
        loss = diffusion.training_losses(model, x0, generator=generator)["loss"].mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if args.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), args.grad_clip)
        optimizer.step()
        ema_update(ema_model, model, step, args.ema)

        running = loss.item() if running is None else 0.98 * running + 0.02 * loss.item()
        done = step + 1
        if done % 100 == 0 or done == args.steps:
            wall = time.perf_counter() - wall0 - sampling_wall
            cpu = time.process_time() - cpu0
            print(f"step {done} loss {running:.4f} lr {learning_rate(step, args):.2e} "
                  f"wall {wall:.0f}s img/s {done * args.batch / wall:.0f} "
                  f"img/cpu-s {done * args.batch / cpu:.0f}", flush=True)
        if done in sample_at and done != args.steps:
            s0 = time.perf_counter()
            sample_grid(ema_model, diffusion, args, out.with_name(f"{out.stem}_step{done}{out.suffix}"))
            sampling_wall += time.perf_counter() - s0

    train_wall = time.perf_counter() - wall0 - sampling_wall
    s0 = time.perf_counter()
    sample_grid(ema_model, diffusion, args, out, n=args.final_samples)
    print(json.dumps({"train_wall_s": round(train_wall, 1), "train_img_per_s": round(args.steps * args.batch / train_wall, 1),
                      "final_sampling_s": round(time.perf_counter() - s0, 1), "grid": str(out),
                      "final_loss_ema": running, "pid": os.getpid()}), flush=True)


if __name__ == "__main__":
    main()
