"""The variational bound (bits/dim) of the shipped MNIST models, term by term, on held-out digits.

Every term of Ho et al.'s eq. 5 is evaluated (core.lab.objective.bound_terms: T network calls per digit, one ε
per (digit, t)); the bound is averaged over the first n digits of the held-out split, with the standard error
over the digits. The Training objective page runs the same computation on demand.

    python bench/bits_per_dim.py --n 16 --threads 1

Writes docs/results/bits_per_dim.json and the "bits_per_dim" section of docs/benchmarks.md (unless --no-write).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from bench.report import (
    BENCHMARKS_MD,
    REPO_ROOT,
    Timer,
    command_line,
    hardware,
    markdown_table,
    now_utc,
    run_header,
    set_threads,
    update_markdown_section,
    write_json,
)
from core import checkpoints
from core.data.datasets import load_dataset
from core.lab.objective import LN2, bound_terms

MODELS = ("mnist_eps", "mnist_x0", "mnist_v", "mnist_eps_learned")


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=16, help="held-out digits (the first n)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--checkpoint-dir", default=str(REPO_ROOT / "checkpoints"))
    parser.add_argument("--models", nargs="*", default=list(MODELS))
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    if not 2 <= args.n <= 500:
        parser.error("--n must be between 2 and 500")
    set_threads(args.threads)
    x0 = load_dataset("mnist", split="test").data[: args.n]
    document = {"command": command_line("bench/bits_per_dim.py", argv), "date": now_utc(), "hardware": hardware(),
                "n": args.n, "seed": args.seed, "models": {}}
    for name in args.models:
        model, diffusion, _ = checkpoints.load(Path(args.checkpoint_dir) / f"{name}.safetensors")
        with Timer() as timer:
            terms = bound_terms(model, diffusion, x0, torch.Generator().manual_seed(args.seed))
        mean, se = terms.bits_per_dim()
        document["models"][name] = {
            "bits_per_dim": mean, "standard_error": se, "prior_bits": float(terms.prior.mean()) / LN2,
            "kl_bits": float(terms.per_t[:, 1:].sum(1).mean()) / LN2, "decoder_bits": float(terms.per_t[:, 0].mean()) / LN2,
            "seconds": timer.wall, "variance": diffusion.variance, "prediction": diffusion.prediction}
        print(f"{name}: {mean:.3f} ± {se:.3f} bits/dim ({timer.wall:.1f} s)", file=sys.stderr)
    if not args.no_write:
        write_json(REPO_ROOT / "docs" / "results" / "bits_per_dim.json", document)
        rows = [(name, f"{r['prediction']}/{r['variance']}", f"{r['bits_per_dim']:.3f} ± {r['standard_error']:.3f}",
                 r["kl_bits"], r["decoder_bits"], r["prior_bits"], r["seconds"]) for name, r in document["models"].items()]
        update_markdown_section(BENCHMARKS_MD, "bits_per_dim", "## Bits/dim of the shipped models (bench/bits_per_dim.py)\n\n"
                                + run_header(document) + "\n\n"
                                + f"The bound L_T + Σ L_(t−1) + L_0 of Ho et al. eq. 5 on the first {args.n} held-out digits "
                                f"(8-bit pixels scaled to [−1, 1]), all T terms per digit with one ε each (seed {args.seed}); "
                                "± is the standard error over the digits. Lower is better; it is an upper bound on "
                                "−log₂ p(x₀) per pixel.\n\n"
                                + markdown_table(["model", "prediction/variance", "bits/dim", "Σ L_(t−1) [bits/dim]",
                                                  "L_0 [bits/dim]", "L_T [bits/dim]", "seconds"], rows))
    return document


if __name__ == "__main__":
    main()
