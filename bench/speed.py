"""Speed on this machine: training throughput, sampling time, time to recognisable digits, and our
sampling loops against diffusers' schedulers on the same network.

    python bench/speed.py --quick                  # a few minutes on a 2-core CPU
    python bench/speed.py --out-json runs/speed.json --markdown

1. Training: images/s of core.training.trainer.Trainer (the app's engine: Adam, EMA, gradient clipping) for every
   UNet size on MNIST and every MLP size on a 2-D toy, over a few timed steps after warm-up steps.
2. Sampling: wall time for 64 MNIST samples with DDPM at T steps and DDIM at 50 steps per UNet size
   (--quick: 20 and 10 steps; ms/step is the comparable number). Untrained weights: the cost does not
   depend on their values.
3. Time to recognisable digits: train the default recipe from scratch, every --eval-every steps draw 128
   digits with DDIM (20 steps, clipped x_0) from the EMA model and stop when mnist_fd <= --fd-threshold;
   training time only (evaluation excluded), capped at --recognizable-cap-s (reported honestly if missed).
4. diffusers (optional, bench/requirements.txt): the same network sampled by our ddim_sample/ddpm_sample
   and by a diffusers DDIMScheduler/DDPMScheduler loop configured with the same betas and timesteps, at
   several step counts and batch sizes (ratio = ours / diffusers wall time, < 1 means we are faster); the
   same with a trivial "network" (0.1·x) to isolate the loops' own overhead; and, as a sanity check, the
   max |difference| of DDIM η=0 outputs from the same x_T.
Times are the best of --repeats runs (the cores may be shared). No GPU is used unless --device cuda.
Threads: the app's policy (core.runtime.configure_cpu_threads: $RDL_TORCH_THREADS or cores − 1) unless
--threads is given; the count used is in the report.
"""

from __future__ import annotations

import argparse
import math
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
from core.diffusion.gaussian_diffusion import GaussianDiffusion
from core.diffusion.samplers import ddim_sample, ddpm_sample
from core.diffusion.schedules import make_schedule
from core.metrics.mnist import mnist_quality
from core.nets.build import SIZE_NAMES, build_model, model_config_for
from core.runtime import configure_cpu_threads
from core.training.trainer import TrainConfig, Trainer

SECTION = "speed"
TOY_DATASET = "two_moons"
DIFFUSERS_PREDICTION = {"eps": "epsilon", "x0": "sample", "v": "v_prediction"}


def seconds_per_run(function, runs: int) -> float:
    """Wall seconds of one call, averaged over `runs` back-to-back calls (short calls are timed in bulk)."""
    with Timer() as timer:
        for _ in range(runs):
            function()
    return timer.wall / runs


# ----------------------------------------------------------------------------- 1. training throughput

def training_config(dataset: str, size: str, batch_size: int, steps: int, device: str) -> TrainConfig:
    # No previews while timing: preview_every=0; the end-of-run preview is one DDIM step on one sample.
    return TrainConfig(dataset=dataset, model_size=size, batch_size=batch_size, total_steps=steps,
                       warmup_steps=0, preview_every=0, preview_count=1, preview_steps=1, device=device)


def run_trainer(trainer: Trainer, total_steps: int) -> None:
    if trainer.step == 0:
        trainer.set_total_steps(total_steps)
        trainer.start()
    else:
        trainer.resume(total_steps=total_steps)
    trainer.join()
    if trainer.state != "finished":
        raise RuntimeError(f"training did not finish: {trainer.snapshot().error}")


def bench_training(args, datasets: dict, log) -> list[dict]:
    rows = []
    for dataset, batch_size in (("mnist", args.batch_size), (TOY_DATASET, args.toy_batch_size)):
        for size in args.sizes:
            trainer = Trainer(training_config(dataset, size, batch_size, args.warmup_steps, args.device),
                              dataset=datasets[dataset])
            run_trainer(trainer, args.warmup_steps)
            with Timer() as timer:
                run_trainer(trainer, args.warmup_steps + args.timed_steps)
            images = args.timed_steps * batch_size
            rows.append({"dataset": dataset, "size": size, "parameters": trainer.parameters, "batch_size": batch_size,
                         "timed_steps": args.timed_steps, "wall_s": timer.wall, "cpu_s": timer.cpu,
                         "images_per_s": images / timer.wall, "images_per_cpu_s": images / max(timer.cpu, 1e-9)})
            log(f"train {dataset} {size}: {images / timer.wall:.1f} images/s")
    return rows


# ----------------------------------------------------------------------------- 2. sampling time

def bench_sampling(args, log) -> list[dict]:
    diffusion = GaussianDiffusion(make_schedule("linear", 1000), "eps", "fixed_small")
    shape = (args.sample_count, 1, 28, 28)
    rows = []
    for size in args.sizes:
        model = build_model(model_config_for("image", (1, 28, 28), size, 1)).eval().to(args.device)
        for label, steps, function in (
                ("DDPM", args.ddpm_steps, lambda g, s: ddpm_sample(model, diffusion, shape, steps=s, generator=g)),
                ("DDIM η=0", args.ddim_steps, lambda g, s: ddim_sample(model, diffusion, shape, s, generator=g))):
            generator = torch.Generator(device=args.device).manual_seed(0)
            with Timer() as timer:
                function(generator, steps)
            rows.append({"size": size, "sampler": label, "steps": steps, "samples": args.sample_count,
                         "wall_s": timer.wall, "cpu_s": timer.cpu, "ms_per_step": 1000 * timer.wall / steps})
            log(f"sample {size} {label} {steps} steps: {timer.wall:.1f} s")
    return rows


# ----------------------------------------------------------------------------- 3. recognisable digits

def bench_recognizable(args, dataset, log) -> dict:
    config = TrainConfig(dataset="mnist", total_steps=args.eval_every, preview_every=0, preview_count=1,
                         preview_steps=1, device=args.device)
    trainer = Trainer(config, dataset=dataset)
    history, reached = [], None
    while True:
        run_trainer(trainer, trainer.step + args.eval_every)
        seconds = trainer.snapshot().progress.seconds
        model = trainer.export_model(args.device)
        samples = ddim_sample(model, trainer.diffusion, (args.eval_samples, 1, 28, 28), 20, clip_x0=True,
                              generator=torch.Generator(device=args.device).manual_seed(1)).cpu()
        quality = mnist_quality(samples)
        history.append({"step": trainer.step, "training_s": seconds, "fd": quality["fd"],
                        "inception_score": quality["inception_score"],
                        "confident_fraction": quality["confident_fraction"]})
        log(f"recognisable: step {trainer.step} ({seconds:.0f} s): fd {quality['fd']:.1f}")
        if quality["fd"] <= args.fd_threshold:
            reached = history[-1]
            break
        if seconds >= args.recognizable_cap_s:
            break
    return {"recipe": {k: v for k, v in config.to_json().items() if k in ("model_size", "T", "batch_size",
                                                                          "learning_rate", "ema_decay")},
            "fd_threshold": args.fd_threshold, "eval_samples": args.eval_samples, "cap_s": args.recognizable_cap_s,
            "reached": reached is not None, "training_s": None if reached is None else reached["training_s"],
            "steps": None if reached is None else reached["step"], "history": history}


# ----------------------------------------------------------------------------- 4. diffusers

def diffusers_available() -> str | None:
    """None if diffusers imports, else the reason it cannot be used."""
    try:
        import diffusers  # noqa: F401
    except Exception as error:  # ImportError, or a broken install
        return f"diffusers is not installed ({type(error).__name__}: {error}); pip install -r bench/requirements.txt"
    return None


def network_for_comparison(args):
    """A trained MNIST checkpoint if one is shipped, else the tiny UNet with randomly perturbed weights
    (the zero-initialised output layer would otherwise make the network output exactly 0)."""
    found = sorted(p for p in args.checkpoints_dir.glob("mnist_*.safetensors") if p.name != "mnist_classifier.safetensors")
    for path in found:
        model, diffusion, _ = checkpoints.load(path, device=args.device)
        if diffusion.variance != "learned_range":
            return model, diffusion, path.name
    diffusion = GaussianDiffusion(make_schedule("linear", 1000), "eps", "fixed_small")
    model = build_model(model_config_for("image", (1, 28, 28), "tiny", 1)).eval()
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.05 * torch.randn(parameter.shape, generator=generator))
    return model.to(args.device), diffusion, "tiny UNet, random weights"


def diffusers_scheduler(kind: str, diffusion: GaussianDiffusion):
    from diffusers import DDIMScheduler, DDPMScheduler

    common = dict(num_train_timesteps=diffusion.T, trained_betas=diffusion.schedule.betas.numpy(), clip_sample=False,
                  prediction_type=DIFFUSERS_PREDICTION[diffusion.prediction], timestep_spacing="leading", steps_offset=0)
    if kind == "ddim":
        return DDIMScheduler(set_alpha_to_one=True, **common)  # ᾱ_prev = 1 at the last step, as in ddim_step
    return DDPMScheduler(variance_type=diffusion.variance, **common)


@torch.no_grad()
def diffusers_loop(scheduler, model, x_T, steps, generator):
    """The standard diffusers sampling loop (as in their DDPMPipeline/DDIMPipeline, without the pipeline)."""
    scheduler.set_timesteps(steps, device=x_T.device)
    x = x_T
    batch = torch.ones(x.shape[0], dtype=torch.long, device=x.device)
    for t in scheduler.timesteps:
        model_output = model(x, t * batch)
        x = scheduler.step(model_output, t, x, generator=generator).prev_sample
    return x


def bench_diffusers(args, log) -> dict:
    reason = diffusers_available()
    if reason:
        return {"skipped": reason}
    import diffusers

    model, diffusion, network = network_for_comparison(args)
    if diffusion.variance not in ("fixed_small", "fixed_large"):
        diffusion = GaussianDiffusion(diffusion.schedule, diffusion.prediction, "fixed_small")
    null_model = lambda x, t: 0.1 * x  # noqa: E731  (isolates the loops' own cost)
    schedulers = {kind: diffusers_scheduler(kind, diffusion) for kind in ("ddim", "ddpm")}
    ours = {
        "ddim": lambda m, x, s, g: ddim_sample(m, diffusion, tuple(x.shape), s, eta=0.0, generator=g, x_T=x),
        "ddpm": lambda m, x, s, g: ddpm_sample(m, diffusion, tuple(x.shape), steps=s, generator=g, x_T=x),
    }
    rows = []
    for label, net in (("network", model), ("loop only (0.1·x)", null_model)):
        for kind in ("ddim", "ddpm"):
            for steps in args.compare_steps:
                # The loop alone takes well under a millisecond per step: time >= --loop-steps steps in bulk.
                runs = 1 if label == "network" else math.ceil(args.loop_steps / steps)
                for batch in args.compare_batches:
                    x_T = torch.randn((batch, 1, 28, 28), generator=torch.Generator().manual_seed(0)).to(args.device)
                    gen = lambda: torch.Generator(device=args.device).manual_seed(1)  # noqa: E731
                    run_ours = lambda: ours[kind](net, x_T, steps, gen())  # noqa: E731
                    run_theirs = lambda: diffusers_loop(schedulers[kind], net, x_T, steps, gen())  # noqa: E731
                    run_ours(), run_theirs()  # warm-up
                    ours_s = theirs_s = math.inf
                    for _ in range(args.repeats):  # alternate, so both see the same background load; keep the best
                        ours_s = min(ours_s, seconds_per_run(run_ours, runs))
                        theirs_s = min(theirs_s, seconds_per_run(run_theirs, runs))
                    rows.append({"model": label, "sampler": kind.upper(), "steps": steps, "batch": batch,
                                 "runs_per_timing": runs, "ours_s": ours_s, "diffusers_s": theirs_s,
                                 "ratio": ours_s / theirs_s})
                    log(f"diffusers {label} {kind} {steps} steps batch {batch}: ours {ours_s:.4f} s, "
                        f"diffusers {theirs_s:.4f} s")
    # Sanity check: DDIM η = 0 is deterministic, so both must map the same x_T to (nearly) the same x_0.
    x_T = torch.randn((16, 1, 28, 28), generator=torch.Generator().manual_seed(2)).to(args.device)
    steps = max(args.compare_steps)
    ours_x0 = ours["ddim"](model, x_T, steps, None)
    theirs_x0 = diffusers_loop(schedulers["ddim"], model, x_T, steps, None)
    max_difference = float((ours_x0 - theirs_x0).abs().max())
    log(f"DDIM eta=0 max |ours - diffusers| = {max_difference:.2e}")
    return {"diffusers_version": diffusers.__version__, "network": network, "rows": rows,
            "ddim_eta0_check": {"steps": steps, "batch": 16, "max_abs_difference": max_difference,
                                "output_range": [float(ours_x0.min()), float(ours_x0.max())]}}


# ----------------------------------------------------------------------------- report

def markdown(document: dict) -> str:
    parts = ["## Speed (bench/speed.py)", "", run_header(document), "", f"Mode: {document['mode']}."]
    if document["training"]:
        parts += ["", "### Training throughput (core.training.trainer.Trainer, CPU)", "",
                  markdown_table(["dataset", "size", "parameters", "batch", "timed steps", "images/s",
                                  "images per CPU-second"],
                                 [[r["dataset"], r["size"], r["parameters"], r["batch_size"], r["timed_steps"],
                                   r["images_per_s"], r["images_per_cpu_s"]] for r in document["training"]])]
    if document["sampling"]:
        parts += ["", f"### Sampling {document['sampling'][0]['samples']} MNIST digits (T = 1000)", "",
                  markdown_table(["size", "sampler", "steps", "wall s", "ms/step"],
                                 [[r["size"], r["sampler"], r["steps"], r["wall_s"], r["ms_per_step"]]
                                  for r in document["sampling"]])]
    rec = document["recognizable"]
    if rec is not None:
        parts += ["", "### Time to recognisable digits", ""]
        if "skipped" in rec:
            parts.append(f"Skipped: {rec['skipped']}")
        else:
            outcome = (f"reached after {rec['steps']} steps, {rec['training_s']:.0f} s of training" if rec["reached"]
                       else f"NOT reached within the cap of {rec['cap_s']:.0f} s of training")
            recipe = ", ".join(f"{key} {value}" for key, value in rec["recipe"].items())
            parts += [f"Threshold: mnist_fd <= {rec['fd_threshold']} with {rec['eval_samples']} DDIM-20 samples "
                      f"(clipped x_0) from the EMA model; the app's default recipe ({recipe}): {outcome}.", "",
                      markdown_table(["step", "training s", "FD", "IS", "conf"],
                                     [[h["step"], h["training_s"], h["fd"], h["inception_score"],
                                       h["confident_fraction"]] for h in rec["history"]])]
    comparison = document["diffusers"]
    if comparison is not None:
        parts += ["", "### Our samplers vs diffusers' schedulers (same network, same betas and timesteps)", ""]
        if "skipped" in comparison:
            parts.append(f"Skipped: {comparison['skipped']}")
        else:
            check = comparison["ddim_eta0_check"]
            parts += [f"diffusers {comparison['diffusers_version']}; network: {comparison['network']}. "
                      "ratio = our wall time / diffusers' (best of the repeats; < 1: ours is faster). "
                      "\"loop only\" replaces the network by 0.1·x, so only the samplers' own work is timed "
                      "(seconds per run, from runs timed back to back).", "",
                      markdown_table(["model", "sampler", "steps", "batch", "ours s", "diffusers s", "ratio"],
                                     [[r["model"], r["sampler"], r["steps"], r["batch"], r["ours_s"],
                                       r["diffusers_s"], r["ratio"]] for r in comparison["rows"]]), "",
                      f"Sanity check: DDIM η=0, {check['steps']} steps, batch {check['batch']}, same x_T: "
                      f"max |ours − diffusers| = {check['max_abs_difference']:.2e} "
                      f"(outputs in [{check['output_range'][0]:.2f}, {check['output_range'][1]:.2f}])."]
    if document["notes"]:
        parts += [""] + [f"- {note}" for note in document["notes"]]
    return "\n".join(parts)


def int_list(text: str) -> list[int]:
    try:
        values = [int(item) for item in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def size_list(text: str) -> list[str]:
    sizes = text.split(",")
    bad = [s for s in sizes if s not in SIZE_NAMES]
    if bad:
        raise argparse.ArgumentTypeError(f"sizes must be among {', '.join(SIZE_NAMES)}; got {bad}")
    return sizes


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="fewer steps and repeats; time-to-recognisable capped at 60 s")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (default: the app's policy, cores − 1 or $RDL_TORCH_THREADS)")
    p.add_argument("--sizes", type=size_list, default=list(SIZE_NAMES))
    p.add_argument("--batch-size", type=int, default=64, help="MNIST training batch")
    p.add_argument("--toy-batch-size", type=int, default=256)
    p.add_argument("--warmup-steps", type=int, default=None, help="untimed training steps (default 3, quick 1)")
    p.add_argument("--timed-steps", type=int, default=None, help="timed training steps (default 10, quick 3)")
    p.add_argument("--sample-count", type=int, default=64)
    p.add_argument("--ddpm-steps", type=int, default=None, help="default T = 1000, quick 20")
    p.add_argument("--ddim-steps", type=int, default=None, help="default 50, quick 10")
    p.add_argument("--fd-threshold", type=float, default=150.0)
    p.add_argument("--eval-every", type=int, default=None, help="training steps between FD checks (default 500, quick 100)")
    p.add_argument("--eval-samples", type=int, default=128)
    p.add_argument("--recognizable-cap-s", type=float, default=None, help="training-seconds cap (default 1800, quick 60)")
    p.add_argument("--compare-steps", type=int_list, default=None, help="default 10,50,200; quick 10,20")
    p.add_argument("--compare-batches", type=int_list, default=None, help="default 1,16,64; quick 1,16")
    p.add_argument("--repeats", type=int, default=None, help="timing repeats, best kept (default 3, quick 2)")
    p.add_argument("--loop-steps", type=int, default=None,
                   help="loop-only timings run at least this many steps in bulk (default 2000, quick 500)")
    p.add_argument("--checkpoints-dir", type=Path, default=REPO_ROOT / "checkpoints")
    for part in ("training", "sampling", "recognizable", "diffusers"):
        p.add_argument(f"--skip-{part}", action="store_true")
    p.add_argument("--out-json", type=Path, default=None)
    p.add_argument("--markdown", type=Path, nargs="?", const=BENCHMARKS_MD, default=None,
                   help=f"update the speed section of this file (default {BENCHMARKS_MD.relative_to(REPO_ROOT)})")
    return p


def main(argv=None) -> dict:
    parser = build_parser()
    args = parser.parse_args(argv)
    quick = args.quick
    defaults = {"warmup_steps": (3, 1), "timed_steps": (10, 3), "ddpm_steps": (1000, 20), "ddim_steps": (50, 10),
                "eval_every": (500, 100), "recognizable_cap_s": (1800.0, 60.0),
                "compare_steps": ([10, 50, 200], [10, 20]), "compare_batches": ([1, 16, 64], [1, 16]),
                "repeats": (3, 2), "loop_steps": (2000, 500)}
    for name, (full, fast) in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, fast if quick else full)
    for name in ("batch_size", "toy_batch_size", "warmup_steps", "timed_steps", "sample_count", "ddpm_steps",
                 "ddim_steps", "eval_every", "eval_samples", "repeats", "loop_steps"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.eval_samples < 2:
        parser.error("--eval-samples must be >= 2 (a covariance needs two samples)")
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA GPU is available")
    if args.threads is not None and args.threads < 1:
        parser.error(f"--threads must be >= 1, got {args.threads}")
    # The app's thread policy first (core.training.trainer applies it once per process, on the first Trainer), so
    # that every section below runs with the same thread count: the one recorded in the report.
    configure_cpu_threads()
    set_threads(args.threads)
    log = lambda message: print(message, flush=True)  # noqa: E731
    datasets = {"mnist": load_dataset("mnist", split="train")}
    datasets[TOY_DATASET] = load_dataset(TOY_DATASET, split="train")
    document = {"command": command_line("bench/speed.py", argv), "date": now_utc(), "hardware": hardware(),
                "mode": "quick" if quick else "full", "device": args.device,
                "training": [], "sampling": [], "recognizable": None, "diffusers": None, "notes": []}
    if not args.skip_training:
        document["training"] = bench_training(args, datasets, log)
    if not args.skip_sampling:
        document["sampling"] = bench_sampling(args, log)
    if not args.skip_recognizable:
        document["recognizable"] = bench_recognizable(args, datasets["mnist"], log)
    if not args.skip_diffusers:
        document["diffusers"] = bench_diffusers(args, log)
    if args.device == "cpu":
        document["notes"].append("CPU only: no GPU was used for these numbers.")
    if args.out_json:
        write_json(args.out_json, document)
    if args.markdown:
        update_markdown_section(args.markdown, SECTION, markdown(document))
    return document


if __name__ == "__main__":
    main()
