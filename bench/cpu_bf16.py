"""bf16 autocast on the CPU against fp32, side by side in one run: speed (training step, forward pass, DDIM sampling)
and sample quality (the shipped ε model sampled in fp32 and in bf16 from the same noise, scored with the project's
classifier FD).

    python bench/cpu_bf16.py --threads 1 --out-json docs/results/cpu_bf16.json

Speed: the tiny MNIST UNet (the shipped models' architecture), batch --batch, random inputs; each timing is the best
of --repeats runs, fp32 and bf16 alternating so both see the same background load; CPU seconds of this process
are reported too. Quality: --n digits with DDIM (--sample-steps steps, η = 0, x̂₀ clipped, seed 0) from
checkpoints/mnist_eps.safetensors, once in fp32 and once under bf16 autocast, with mnist_quality (FD against the
500 held-out digits, IS, class histogram) and the real-data floor for the same n. Also prints what
core.runtime decides on this CPU (oneDNN bf16 support, the micro-benchmark ratio, the decision).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads OpenMP (see bench/cpu_recipe.py)

import torch  # noqa: E402

from bench.report import REPO_ROOT, Timer, command_line, hardware, now_utc, set_threads, write_json  # noqa: E402
from core import checkpoints  # noqa: E402
from core.diffusion.gaussian_diffusion import GaussianDiffusion  # noqa: E402
from core.diffusion.samplers import ddim_sample  # noqa: E402
from core.diffusion.schedules import make_schedule  # noqa: E402
from core.metrics.mnist import mnist_quality, mnist_real_floor  # noqa: E402
from core.nets.build import build_model, model_config_for  # noqa: E402
from core.runtime import cpu_bf16_supported, measure_cpu_bf16_speedup  # noqa: E402

MODES = ("fp32", "bf16")


def precision(mode: str):
    return torch.autocast("cpu", dtype=torch.bfloat16) if mode == "bf16" else contextlib.nullcontext()


def best_of(function, repeats: int) -> dict:
    """{"fp32": {"wall", "cpu"}, "bf16": {...}}: the best of `repeats` alternating runs of function(mode)."""
    best = {mode: {"wall": float("inf"), "cpu": float("inf")} for mode in MODES}
    for mode in MODES:  # warm-up (oneDNN kernel creation)
        function(mode)
    for _ in range(repeats):
        for mode in MODES:
            with Timer() as timer:
                function(mode)
            best[mode]["wall"] = min(best[mode]["wall"], timer.wall)
            best[mode]["cpu"] = min(best[mode]["cpu"], timer.cpu)
    return best


def speed_rows(args) -> list[dict]:
    generator = torch.Generator().manual_seed(0)
    diffusion = GaussianDiffusion(make_schedule("linear", 1000), "eps", "fixed_small")
    torch.manual_seed(0)
    model = build_model(model_config_for("image", (1, 28, 28), "tiny", 1))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    data = torch.rand(args.batch, 1, 28, 28, generator=generator) * 2 - 1
    t = torch.randint(0, 1000, (args.batch,), generator=generator)

    def train_step(mode):
        with precision(mode):
            loss = diffusion.training_losses(model, data, generator=generator)["loss"].float().mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    @torch.no_grad()
    def forward(mode):
        with precision(mode):
            model(data, t)

    @torch.no_grad()
    def sample(mode):
        with precision(mode):
            ddim_sample(model, diffusion, (args.batch, 1, 28, 28), args.speed_sample_steps,
                        generator=torch.Generator().manual_seed(0), clip_x0=True)

    rows = []
    for name, function, per in (("training step", train_step, 1), ("forward pass", forward, 1),
                                (f"DDIM sampling, {args.speed_sample_steps} steps", sample, args.speed_sample_steps)):
        best = best_of(function, args.repeats)
        rows.append({"what": name, "batch": args.batch, "fp32_ms": 1000 * best["fp32"]["wall"] / per,
                     "bf16_ms": 1000 * best["bf16"]["wall"] / per, "fp32_cpu_ms": 1000 * best["fp32"]["cpu"] / per,
                     "bf16_cpu_ms": 1000 * best["bf16"]["cpu"] / per,
                     "speedup": best["fp32"]["wall"] / best["bf16"]["wall"]})
        print(json.dumps(rows[-1]), flush=True)
    return rows


@torch.no_grad()
def quality_rows(args) -> list[dict]:
    model, diffusion, _ = checkpoints.load(REPO_ROOT / "checkpoints" / "mnist_eps.safetensors")
    model.eval()
    rows = []
    for mode in MODES:
        with Timer() as timer, precision(mode):
            x = ddim_sample(model, diffusion, (args.n, 1, 28, 28), args.sample_steps,
                            generator=torch.Generator().manual_seed(0), clip_x0=True)
        x = x.float().clamp(-1, 1)
        quality = mnist_quality(x)
        rows.append({"mode": mode, "n": args.n, "sample_steps": args.sample_steps, "wall_s": timer.wall,
                     "cpu_s": timer.cpu, "fd": quality["fd"], "inception_score": quality["inception_score"],
                     "confident_fraction": quality["confident_fraction"], "class_histogram": quality["class_histogram"]})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--speed-sample-steps", type=int, default=10)
    parser.add_argument("--n", type=int, default=256, help="digits per precision for the quality comparison")
    parser.add_argument("--sample-steps", type=int, default=50)
    parser.add_argument("--skip-quality", action="store_true")
    parser.add_argument("--out-json", default=None)
    args = parser.parse_args(argv)
    set_threads(args.threads)
    document = {"command": command_line("bench/cpu_bf16.py", argv), "date": now_utc(), "hardware": hardware(),
                "onednn_bf16": bool(torch.ops.mkldnn._is_mkldnn_bf16_supported()),
                "micro_benchmark_speedup": measure_cpu_bf16_speedup(), "runtime_uses_bf16": cpu_bf16_supported()}
    print(json.dumps(document), flush=True)
    document["speed"] = speed_rows(args)
    if not args.skip_quality:
        document["quality"] = quality_rows(args)
        floor = mnist_real_floor(args.n)
        document["real_floor"] = {"n": args.n, "fd": floor["fd"], "inception_score": floor["inception_score"]}
    if args.out_json:
        write_json(args.out_json, document)
    return document


if __name__ == "__main__":
    main()
