"""Measure the 2-D playground's default training recipe (core.lab.playground.PLAYGROUND_RECIPE) on every toy.

For each toy: train with the playground's defaults on the CPU with ONE torch thread (as the app does on a
2-core server), report the training time (wall clock and CPU seconds of this process; on a shared machine
the CPU time is the fairer number), then score DDPM-100 and DDIM-50 samples of the model and of the oracle
against fresh data (MMD² RBF and sliced W₁, core.lab.playground.sample_quality), next to the score of other fresh
data (the metrics' own noise).

    .venv/bin/python bench/playground_recipe.py                  # all toys
    .venv/bin/python bench/playground_recipe.py --toys two_moons --steps 2000 --size small
"""

import argparse
import os
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # idle OpenMP threads sleep instead of spinning

import torch

from core import sampling
from core.data.toys import TOY_NAMES
from core.diffusion.oracle import OracleDenoiser
from core.lab import playground
from core.training.trainer import Trainer

SAMPLES, REFERENCE = 1000, 2000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--toys", nargs="+", default=list(TOY_NAMES), choices=TOY_NAMES)
    parser.add_argument("--steps", type=int, default=playground.PLAYGROUND_RECIPE["total_steps"])
    parser.add_argument("--size", default=playground.PLAYGROUND_RECIPE["model_size"])
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"recipe: {playground.PLAYGROUND_RECIPE} (steps={args.steps}, size={args.size}), 1 torch thread")
    for toy in args.toys:
        config = playground.playground_config(toy, model_size=args.size, total_steps=args.steps)
        trainer = Trainer(config)
        wall, cpu = time.perf_counter(), time.process_time()
        trainer.start()
        trainer.join()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        model = trainer.export_model()
        points = playground.fresh_data(toy, REFERENCE + SAMPLES, config.seed, config.toy_points)
        reference, other = points[:REFERENCE], points[REFERENCE:]
        bandwidths = playground.reference_bandwidths(reference)
        noise = playground.sample_quality(other, reference, bandwidths)
        oracle = OracleDenoiser(playground.oracle_distribution(toy, config.seed, config.toy_points), trainer.diffusion)
        print(f"\n{toy}: {trainer.snapshot().state} in {wall:.1f} s wall, {cpu:.1f} s CPU "
              f"(final loss {trainer.snapshot().last_loss:.4f}); fresh data: MMD² {noise['mmd2']:.2e}, SW₁ {noise['sw1']:.4f}")
        for method, steps in (("ddpm", 100), ("ddim", 50)):
            settings = sampling.SamplerSettings(method=method, steps=steps, variance=trainer.diffusion.variance,
                                               spacing="trailing", clip_x0=False)
            line = f"  {method.upper()}-{steps}:"
            for name, denoiser in (("model", model), ("oracle", oracle)):
                samples = sampling.run_sampler(denoiser, trainer.diffusion, settings, (SAMPLES, 2), seed=1)
                quality = playground.sample_quality(samples.float(), reference, bandwidths)
                line += f"  {name} MMD² {quality['mmd2']:.2e} SW₁ {quality['sw1']:.4f}"
            print(line, flush=True)


if __name__ == "__main__":
    main()
