"""Sample quality of the shipped checkpoints under every sampler and step count.

    python bench/quality.py --quick                      # a few minutes on a 2-core CPU
    python bench/quality.py --out-json runs/quality.json --markdown

MNIST checkpoints (checkpoints/mnist_*.safetensors, the classifier excepted): DDPM with σ² = β, σ² = β̃
(and the learned σ² for learned-variance models), DDIM with η = 0 and η = 1, at 10, 20, 50, 100 and T
steps (--quick: 10 and 20), all from the same x_T (same seed). Metrics from core/metrics/mnist.py:
Fréchet distance of classifier features against the 500 held-out digits, inception score, fraction of
confident (p >= 0.9) predictions; plus the same numbers for as many real training digits (the floor).

2-D checkpoints (checkpoints/toy_*.safetensors): the same samplers, scored with MMD² (RBF, bandwidths
fixed from the reference's median distance) and sliced Wasserstein-1 against fresh samples of the true
distribution; also for the exact oracle denoiser of the same diffusion (core/diffusion/oracle.py: the true mixture
for "eight_gaussians"/"gaussian_mixture", an EmpiricalDistribution of --oracle-points training points for
the others, which can only reproduce those points) and for a second fresh sample of the truth (the floor).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
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
from core.data.toys import MIXTURE_TOY_NAMES, TOY_NAMES, sample_toy, toy_mixture_parameters
from core.diffusion.gaussian_diffusion import GaussianDiffusion
from core.diffusion.oracle import EmpiricalDistribution, GaussianMixture, OracleDenoiser
from core.diffusion.samplers import SPACINGS
from core.metrics.mnist import mnist_quality, mnist_real_floor
from core.metrics.points import median_bandwidth, sample_quality
from core.sampling import SamplerMethod, sample

FULL_STEPS = (10, 20, 50, 100, "T")
QUICK_STEPS = (10, 20)
SECTION = "quality"
CLASSIFIER_FILE = "mnist_classifier.safetensors"


@dataclass(frozen=True)
class Sampler:
    """One reverse process: DDPM with a given σ² ("fixed_large" = β, "fixed_small" = β̃, "learned_range"),
    or DDIM with a given η."""

    label: str
    kind: SamplerMethod
    variance: str | None = None
    eta: float = 0.0


def samplers_for(diffusion: GaussianDiffusion) -> list[Sampler]:
    samplers = [Sampler("DDPM σ²=β", "ddpm", "fixed_large"), Sampler("DDPM σ²=β̃", "ddpm", "fixed_small")]
    if diffusion.variance == "learned_range":
        samplers.append(Sampler("DDPM σ² learned", "ddpm", "learned_range"))
    return samplers + [Sampler("DDIM η=0", "ddim", eta=0.0), Sampler("DDIM η=1", "ddim", eta=1.0)]


def run_sampler(sampler: Sampler, model, diffusion: GaussianDiffusion, x_T: torch.Tensor, steps: int,
                seed: int, spacing: str, batch_size: int, clip_x0: bool) -> torch.Tensor:
    """Samples from x_T in batches; batch b draws its noise from torch.Generator().manual_seed(seed + 1 + b),
    so every sampler starts from the same x_T and sees the same noise stream."""
    outputs = []
    for b, start in enumerate(range(0, x_T.shape[0], batch_size)):
        chunk = x_T[start:start + batch_size]
        generator = torch.Generator().manual_seed(seed + 1 + b)
        out = sample(model, diffusion, sampler.kind, tuple(chunk.shape), steps, variance=sampler.variance, eta=sampler.eta,
                     spacing=spacing, generator=generator, clip_x0=clip_x0, x_T=chunk)
        outputs.append(out.float())
    return torch.cat(outputs)


def step_counts(requested, T: int) -> list[int]:
    """Requested step counts ("T" = all T steps) that are valid for this T, without duplicates, ascending."""
    counts = {T if s == "T" else int(s) for s in requested}
    return sorted(c for c in counts if 1 <= c <= T)


def find_checkpoints(folder: Path, prefix: str) -> list[Path]:
    return sorted(p for p in folder.glob(f"{prefix}*.safetensors") if p.name != CLASSIFIER_FILE)


# ----------------------------------------------------------------------------- MNIST

def describe(diffusion: GaussianDiffusion, metadata: dict) -> str:
    """e.g. "eps/fixed_small, 3000 steps": what the checkpoint predicts and how long it was trained."""
    trained = f", {metadata['steps']} steps" if metadata.get("steps") is not None else ""
    return f"{diffusion.prediction}/{diffusion.variance}{trained}"


def bench_mnist(path: Path, args, log) -> list[dict]:
    model, diffusion, metadata = checkpoints.load(path)
    shape = tuple(metadata["data"]["shape"] or (1, 28, 28))
    x_T = torch.randn((args.n_mnist, *shape), generator=torch.Generator().manual_seed(args.seed))
    rows = []
    for steps in step_counts(args.steps, diffusion.T):
        for sampler in samplers_for(diffusion):
            with Timer() as timer:
                samples = run_sampler(sampler, model, diffusion, x_T, steps, args.seed, args.spacing,
                                      args.batch_size, args.clip_x0)
            quality = mnist_quality(samples)
            rows.append({"checkpoint": path.name, "model": describe(diffusion, metadata),
                         "sampler": sampler.label, "steps": steps, "fd": quality["fd"], "inception_score": quality["inception_score"],
                         "confident_fraction": quality["confident_fraction"],
                         "class_histogram": quality["class_histogram"],
                         "sampling_wall_s": timer.wall, "sampling_cpu_s": timer.cpu})
            log(f"{path.name} {sampler.label} {steps} steps: fd {quality['fd']:.2f} "
                f"IS {quality['inception_score']:.2f} conf {quality['confident_fraction']:.2f} ({timer.wall:.1f} s)")
    return rows


# ----------------------------------------------------------------------------- 2-D toys

class ToyReference:
    """Fresh samples of a toy's true distribution, fixed MMD bandwidths and the floor (a second sample)."""

    def __init__(self, name: str, n: int, seed: int):
        self.points = sample_toy(name, n, torch.Generator().manual_seed(seed + 10_000))
        second = sample_toy(name, n, torch.Generator().manual_seed(seed + 20_000))
        self.bandwidths = [m * median_bandwidth(self.points, second) for m in (0.5, 1.0, 2.0)]
        self.floor = self.score(second)

    def score(self, samples: torch.Tensor) -> dict:
        quality = sample_quality(samples, self.points, self.bandwidths)  # the pages' MMD² and sliced W₁
        return {"mmd": quality["mmd2"], "sliced_wasserstein": quality["sw1"]}


def oracle_for(name: str, diffusion: GaussianDiffusion, oracle_points: int):
    """(exact denoiser, description) for the toy's distribution under `diffusion`'s schedule/prediction.
    The oracle has no learned variance, so it is paired with a fixed-variance copy of the diffusion."""
    fixed = GaussianDiffusion(diffusion.schedule, diffusion.prediction, "fixed_small")
    if name in MIXTURE_TOY_NAMES:
        return OracleDenoiser(GaussianMixture(*toy_mixture_parameters(name)), fixed), fixed, "exact mixture"
    points = load_dataset(name, split="train").data[:oracle_points]
    return (OracleDenoiser(EmpiricalDistribution(points), fixed), fixed,
            f"empirical: {len(points)} training points")


def bench_toy(path: Path, args, references: dict, log) -> list[dict]:
    model, diffusion, metadata = checkpoints.load(path)
    name = metadata["data"]["dataset"]
    if name not in TOY_NAMES:
        log(f"{path.name}: dataset {name!r} is not a 2-D toy; skipped")
        return []
    if name not in references:
        references[name] = ToyReference(name, args.n_toy, args.seed)
    reference = references[name]
    x_T = torch.randn((args.n_toy, 2), generator=torch.Generator().manual_seed(args.seed))
    oracle, oracle_diffusion, oracle_note = oracle_for(name, diffusion, args.oracle_points)
    runs = [("network", model, diffusion), (f"oracle ({oracle_note})", oracle, oracle_diffusion)]
    rows = [{"checkpoint": path.name, "model": describe(diffusion, metadata), "dataset": name,
             "denoiser": "real data (second fresh sample)",
             "sampler": "–", "steps": None, **reference.floor, "sampling_wall_s": None, "sampling_cpu_s": None}]
    for steps in step_counts(args.steps, diffusion.T):
        for denoiser, network, process in runs:
            for sampler in samplers_for(process):
                with Timer() as timer:
                    samples = run_sampler(sampler, network, process, x_T, steps, args.seed, args.spacing,
                                          args.n_toy, clip_x0=False)
                scores = reference.score(samples)
                rows.append({"checkpoint": path.name, "model": describe(diffusion, metadata), "dataset": name,
                             "denoiser": denoiser,
                             "sampler": sampler.label, "steps": steps, **scores,
                             "sampling_wall_s": timer.wall, "sampling_cpu_s": timer.cpu})
                log(f"{path.name} {denoiser} {sampler.label} {steps} steps: mmd {scores['mmd']:.2e} "
                    f"sw {scores['sliced_wasserstein']:.4f} ({timer.wall:.1f} s)")
    return rows


# ----------------------------------------------------------------------------- report

def markdown(document: dict) -> str:
    parts = ["## Sample quality (bench/quality.py)", "", run_header(document), "",
             f"Mode: {document['mode']}; spacing {document['settings']['spacing']!r}, "
             f"clip_x0={document['settings']['clip_x0']}, seed {document['settings']['seed']}."]
    if document["mnist"]:
        floor = document["mnist_floor"]
        parts += ["", f"### MNIST ({document['settings']['n_mnist']} samples per row)", "",
                  "FD = Fréchet distance of the classifier's 128-d features vs the 500 held-out digits (lower is "
                  "better; depends on n, so compare with the real-data row); IS = inception score with the MNIST "
                  "classifier (max 10); conf = share of samples with top class probability >= 0.9.", "",
                  markdown_table(["checkpoint", "model", "sampler", "steps", "FD", "IS", "conf", "wall s"],
                                 [[r["checkpoint"], r["model"], r["sampler"], r["steps"], r["fd"], r["inception_score"],
                                   r["confident_fraction"], r["sampling_wall_s"]] for r in document["mnist"]]
                                 + [["real training digits", "–", "–", "–", floor["fd"], floor["inception_score"],
                                     floor["confident_fraction"], None]])]
    if document["toy"]:
        parts += ["", f"### 2-D toys ({document['settings']['n_toy']} samples per row)", "",
                  "MMD² (unbiased, RBF with bandwidths 0.5/1/2 × the reference's median distance) and sliced "
                  "Wasserstein-1 (128 directions) against fresh samples of the true distribution.", "",
                  markdown_table(["checkpoint", "model", "denoiser", "sampler", "steps", "MMD²", "SW1", "wall s"],
                                 [[r["checkpoint"], r["model"], r["denoiser"], r["sampler"], r["steps"], r["mmd"],
                                   r["sliced_wasserstein"], r["sampling_wall_s"]] for r in document["toy"]])]
    if document["notes"]:
        parts += [""] + [f"- {note}" for note in document["notes"]]
    return "\n".join(parts)


def parse_steps(text: str) -> tuple:
    items = []
    for item in text.split(","):
        item = item.strip()
        if item == "T":
            items.append("T")
        elif item.isdigit() and int(item) >= 1:
            items.append(int(item))
        else:
            raise argparse.ArgumentTypeError(f"--steps must be positive integers or T, comma-separated; got {item!r}")
    return tuple(items)


def positive_int(text: str) -> int:
    value = int(text)
    if value < 2:
        raise argparse.ArgumentTypeError(f"must be an integer >= 2, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="few samples and step counts (a few minutes on 2 CPU cores)")
    parser.add_argument("--checkpoints-dir", type=Path, default=REPO_ROOT / "checkpoints")
    parser.add_argument("--steps", type=parse_steps, default=None, help="e.g. 10,20,50,100,T (default: by mode)")
    parser.add_argument("--n-mnist", type=positive_int, default=None, help="digits per row (default 500, quick 64)")
    parser.add_argument("--n-toy", type=positive_int, default=None, help="points per row (default 2000, quick 1000)")
    parser.add_argument("--oracle-points", type=positive_int, default=None,
                        help="training points of the empirical oracle (default 2000, quick 500)")
    parser.add_argument("--batch-size", type=positive_int, default=250, help="MNIST sampling batch")
    parser.add_argument("--spacing", choices=SPACINGS, default="leading")
    parser.add_argument("--clip-x0", action="store_true", help="clamp predicted x_0 to [-1, 1] (MNIST samplers)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: torch's choice); 1 is often faster on a busy machine")
    parser.add_argument("--skip-mnist", action="store_true")
    parser.add_argument("--skip-toy", action="store_true")
    parser.add_argument("--out-json", type=Path, default=None)
    parser.add_argument("--markdown", type=Path, nargs="?", const=BENCHMARKS_MD, default=None,
                        help=f"update the quality section of this file (default {BENCHMARKS_MD.relative_to(REPO_ROOT)})")
    return parser


def main(argv=None) -> dict:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.threads is not None and args.threads < 1:
        parser.error(f"--threads must be >= 1, got {args.threads}")
    set_threads(args.threads)
    quick = args.quick
    args.steps = args.steps or (QUICK_STEPS if quick else FULL_STEPS)
    args.n_mnist = args.n_mnist or (64 if quick else 500)
    args.n_toy = args.n_toy or (1000 if quick else 2000)
    args.oracle_points = args.oracle_points or (500 if quick else 2000)
    log = lambda message: print(message, flush=True)  # noqa: E731
    document = {"command": command_line("bench/quality.py", argv), "date": now_utc(), "hardware": hardware(),
                "mode": "quick" if quick else "full",
                "settings": {"steps": list(args.steps), "n_mnist": args.n_mnist, "n_toy": args.n_toy,
                             "oracle_points": args.oracle_points, "spacing": args.spacing,
                             "clip_x0": args.clip_x0, "seed": args.seed},
                "mnist": [], "mnist_floor": None, "toy": [], "notes": []}
    mnist_paths = [] if args.skip_mnist else find_checkpoints(args.checkpoints_dir, "mnist_")
    toy_paths = [] if args.skip_toy else find_checkpoints(args.checkpoints_dir, "toy_")
    for path in mnist_paths:
        document["mnist"] += bench_mnist(path, args, log)
    if mnist_paths:
        document["mnist_floor"] = {k: v for k, v in mnist_real_floor(args.n_mnist, args.seed).items()}
    references: dict = {}
    for path in toy_paths:
        document["toy"] += bench_toy(path, args, references, log)
    if not mnist_paths and not args.skip_mnist:
        document["notes"].append(f"no MNIST checkpoints (mnist_*.safetensors) in {args.checkpoints_dir}")
    if not toy_paths and not args.skip_toy:
        document["notes"].append(f"no 2-D checkpoints (toy_*.safetensors) in {args.checkpoints_dir}")
    if any(name not in MIXTURE_TOY_NAMES for name in references):
        document["notes"].append("the empirical oracle denoises towards its training points only, so its score "
                                 "is that of a finite sample, not of the true distribution")
    if args.out_json:
        write_json(args.out_json, document)
    if args.markdown:
        update_markdown_section(args.markdown, SECTION, markdown(document))
    return document


if __name__ == "__main__":
    main()
