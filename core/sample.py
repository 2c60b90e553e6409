"""Draw samples from a trained checkpoint and save them as a PNG.

    python -m core.sample --checkpoint mnist_eps --sampler ddim --steps 50 \\
        --eta 0 --n 64 --seed 0 --out grid.png [--clip]

Image models give a grid of the samples; 2-D models a scatter plot of the points (drawn with Pillow).
--steps defaults to 50 for DDIM and to all T steps for DDPM (fewer DDPM steps use a respaced process).
The network runs under bf16 autocast where core.runtime enables it (CUDA; CPUs with bf16 in hardware;
RDL_CPU_BF16=0 or 1 forces the choice), exactly as on the Sample page (core.sampling.autocast_network), so
the same settings give the same samples in both.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from core import checkpoints, paths
from core.checks import check_int, check_number
from core.data.images import make_grid, save_png
from core.diffusion.samplers import SPACINGS
from core.rng import MAX_SEED
from core.runtime import DEVICES, autocast_dtype, configure_cpu_threads, resolve_device
from core.sampling import SAMPLER_METHODS, autocast_network, sample

SAMPLERS = tuple(method.value for method in SAMPLER_METHODS)  # core.sampling.SamplerMethod
DEFAULT_DDIM_STEPS = 50
MAX_SAMPLES = 4096
SCATTER_PIXELS = 512
SCATTER_EXTENT = 1.5  # the toys live in [-1, 1]²; the plot shows [-1.5, 1.5]² (see core.data.datasets)


def build_parser(prog: str = "python -m core.sample") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, required=True,
                        help="a .safetensors checkpoint, or the name of a trained model in $RDL_HOME/models or of a shipped one "
                        "(e.g. toy_two_moons)")
    parser.add_argument("--sampler", choices=SAMPLERS, default="ddim")
    parser.add_argument("--steps", type=int, default=None, help=f"sampling steps (DDIM: {DEFAULT_DDIM_STEPS}, DDPM: T)")
    parser.add_argument("--eta", type=float, default=0.0, help="DDIM noise scale η (0 = deterministic)")
    parser.add_argument("--spacing", choices=SPACINGS, default="leading", help="which timesteps fewer steps visit")
    parser.add_argument("--n", type=int, default=64, help="number of samples")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--clip", action="store_true", help="clip the predicted x_0 to [-1, 1] at every step")
    parser.add_argument("--device", choices=DEVICES, default="auto")
    parser.add_argument("--out", type=Path, default=Path("samples.png"), help="PNG file to write")
    return parser


def scatter_png(points: np.ndarray, extent: float = SCATTER_EXTENT, size: int = SCATTER_PIXELS) -> np.ndarray:
    """A white square picture of 2-D points in [-extent, extent]² (y up), with the axes in light grey."""
    image = Image.new("RGB", (size, size), "white")
    draw = ImageDraw.Draw(image)
    to_pixel = (size - 1) / (2 * extent)
    centre = extent * to_pixel
    draw.line([(centre, 0), (centre, size - 1)], fill=(220, 220, 220))
    draw.line([(0, centre), (size - 1, centre)], fill=(220, 220, 220))
    for x, y in points:
        px, py = (x + extent) * to_pixel, (extent - y) * to_pixel
        draw.ellipse([px - 1.5, py - 1.5, px + 1.5, py + 1.5], fill=(31, 119, 180))
    draw.rectangle([0, 0, size - 1, size - 1], outline=(120, 120, 120))
    return np.asarray(image)


def _check_flags(args) -> None:
    """Everything that does not need the checkpoint, checked before it is read."""
    args.seed = check_int("--seed", args.seed, 0, MAX_SEED)
    args.n = check_int("--n", args.n, 1, MAX_SAMPLES)
    args.eta = check_number("--eta", args.eta, 0.0)
    if args.sampler == "ddpm" and args.eta != 0.0:
        raise ValueError("--eta applies to DDIM only; drop it or use --sampler ddim")
    _check_writable(args.out)
    _check_readable(args.checkpoint)


def _check_writable(out: Path) -> None:
    """--out must be a .png path we can create: its folder exists or can be made, and a file can be written there."""
    if out.is_dir():
        raise ValueError(f"--out {str(out)!r} is a folder; expected the path of a .png file")
    if out.suffix.lower() != ".png":
        raise ValueError(f"--out must end in .png, got {str(out)!r}")
    existing = out.parent
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ValueError(f"--out {str(out)!r} cannot be written: {str(existing)!r} is not a folder")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        if out.exists():
            open(out, "ab").close()  # opens for writing without changing the file
        else:
            with tempfile.NamedTemporaryFile(dir=out.parent, prefix=".rdl-write-test-", suffix=".png"):
                pass
    except OSError as error:
        raise ValueError(f"--out {str(out)!r} cannot be written ({error.strerror or error})") from None


def _check_readable(path: Path) -> None:
    try:
        with open(path, "rb") as f:
            f.read(8)
    except FileNotFoundError:
        raise ValueError(f"--checkpoint: no checkpoint file at {str(path)!r}") from None
    except IsADirectoryError:
        raise ValueError(f"--checkpoint {str(path)!r} is a folder; expected a .safetensors file") from None
    except OSError as error:
        raise ValueError(f"--checkpoint {str(path)!r} cannot be read ({error.strerror or error})") from None


def _fail(message: str, prog: str = "python -m core.sample") -> None:
    """One line on stderr and exit code 2 (bad input), never a traceback."""
    print(f"{prog}: error: {message}", file=sys.stderr)
    raise SystemExit(2)


def main(argv=None, prog: str = "python -m core.sample") -> int:
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    try:
        args.checkpoint = paths.resolve_checkpoint(args.checkpoint)
        _check_flags(args)
        device = resolve_device(args.device)
        if device.type == "cpu":
            configure_cpu_threads()
        model, diffusion, metadata = checkpoints.load(args.checkpoint, device=device)
        if args.steps is not None:
            check_int("--steps", args.steps, 1, diffusion.T)
    except (ValueError, OSError) as error:  # includes CheckpointError
        _fail(str(error), prog)

    config = model.config
    if config["kind"] == "unet":
        shape = (args.n, config["in_channels"], config["image_size"], config["image_size"])
    elif config["data_dim"] == 2:
        shape = (args.n, 2)
    else:
        _fail(f"this checkpoint models {config['data_dim']}-D points; only 2-D points can be plotted", prog)
    steps = args.steps if args.steps is not None else (DEFAULT_DDIM_STEPS if args.sampler == "ddim" else diffusion.T)
    steps = min(steps, diffusion.T)
    generator = torch.Generator(device=device).manual_seed(args.seed)
    network = autocast_network(model)

    started = time.monotonic()
    samples = sample(network, diffusion, args.sampler, shape, steps, eta=args.eta, spacing=args.spacing,
                     generator=generator, clip_x0=args.clip, device=device)
    seconds = time.monotonic() - started
    samples = samples.float().cpu()
    if not bool(torch.isfinite(samples).all()):
        print("error: the samples contain NaN or infinite values (is the checkpoint trained?)", file=sys.stderr)
        return 1

    if config["kind"] == "unet":
        nrow = math.isqrt(args.n - 1) + 1  # a square-ish grid
        pixels, picture = make_grid(samples.clamp(-1, 1), nrow=nrow), f"a {nrow}-column grid"
    else:
        outside = int((samples.abs() > SCATTER_EXTENT).any(dim=1).sum())
        pixels = scatter_png(samples.numpy())
        picture = f"a scatter plot of [-{SCATTER_EXTENT}, {SCATTER_EXTENT}]² ({outside} points fall outside)"
    try:
        save_png(pixels, args.out)
    except OSError as error:  # e.g. the disk filled up while sampling
        print(f"{prog}: error: could not write {args.out} ({error.strerror or error})", file=sys.stderr)
        return 1
    what = "images" if config["kind"] == "unet" else "points"
    sampler = f"DDIM, {steps} steps, eta {args.eta:g}" if args.sampler == "ddim" else f"DDPM, {steps} steps"
    trained = checkpoints.CheckpointInfo.from_document(metadata).steps
    print(f"sampled {args.n} {what} ({sampler}, {args.spacing} spacing, seed {args.seed}"
          f"{', clipped x0' if args.clip else ''}) in {seconds:.1f} s on {device.type}"
          f"{' (bf16 autocast)' if autocast_dtype(device) is not None else ''} "
          f"from {args.checkpoint} ({trained if trained is not None else '?'} training steps)")
    print(f"wrote {picture} to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
