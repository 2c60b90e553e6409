"""Train a diffusion model from the command line.

    python -m core.train --dataset mnist --size tiny --prediction eps --variance fixed_small \\
        --steps 3000 --out ~/models/mnist-tiny.safetensors
    python -m core.train --resume ~/models/mnist-tiny.safetensors --steps 6000
    python -m core.train --recipe fast --max-seconds 300       # the Train page's CPU recipe, 5 minutes

Every TrainConfig field is a flag (--batch-size, --learning-rate, --ema-decay, ...; see --help); flags left
out take the values of --recipe (core/training/config.py): "shipped" (the default, TrainConfig's defaults: the
shipped MNIST models' recipe, T = 1000 as in Ho et al.), "fast" (what the Train page starts from on a CPU: the
light or the standard fast recipe, picked by the measured speed of a few light steps and the budget), "light",
"standard", or "toy" (TOY_RECIPE, the 2-D toys' recipe). --max-seconds S is a time budget: the run measures its
speed and plans its step count (and so its learning-rate decay) to end within S seconds. The command uses every
core of the machine ($RDL_TORCH_THREADS overrides). Progress goes to stderr, the summary to stdout. Ctrl-C stops
after the current step and still saves the checkpoint, which --resume continues. --out is checked (suffix,
writable folder) before training starts.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import types
import typing
from dataclasses import fields
from pathlib import Path

from core import paths, runtime
from core.checkpoints import CheckpointError
from core.checks import check_number
from core.data.datasets import DATASET_NAMES
from core.diffusion.gaussian_diffusion import PREDICTIONS, VARIANCES
from core.diffusion.schedules import SCHEDULE_KINDS
from core.nets.build import SIZE_NAMES
from core.runtime import DEVICES
from core.training import probe
from core.training.config import (
    LR_SCHEDULES,
    MNIST_CPU_RECIPE,
    MNIST_LIGHT_RECIPE,
    MNIST_STANDARD_RECIPE,
    NOISE_LEVELS,
    TOY_RECIPE,
    TrainConfig,
    pick_fast_recipe,
)
from core.training.fits import check_fits
from core.training.trainer import Trainer

CHOICES = {"dataset": DATASET_NAMES, "model_size": SIZE_NAMES, "schedule": SCHEDULE_KINDS,
           "prediction": PREDICTIONS, "variance": VARIANCES, "lr_schedule": LR_SCHEDULES, "device": DEVICES,
           "noise_levels": NOISE_LEVELS}
ALIASES = {"model_size": ["--size"], "total_steps": ["--steps"], "learning_rate": ["--lr"]}
FIELD_TYPES = typing.get_type_hints(TrainConfig)
RECIPES = {"shipped": MNIST_CPU_RECIPE, "light": MNIST_LIGHT_RECIPE, "standard": MNIST_STANDARD_RECIPE, "toy": TOY_RECIPE}
RECIPE_NAMES = ("shipped", "fast", *tuple(RECIPES)[1:])  # "fast": light or standard by pick_fast_recipe
# Alone on a machine the command line uses every core (measured: docs/benchmarks.md, "Digits within a lesson");
# $RDL_TORCH_THREADS overrides. The app's workers instead keep a core for the web server (core.runtime.ThreadPolicy).
CLI_LEAVES_A_CORE_FREE = False
# when the process started (or, where that cannot be read, this module was loaded): --max-seconds counts from there
STARTED = time.monotonic() - (runtime.process_age_seconds() or 0.0)
BAR_WIDTH = 30
REFRESH_SECONDS = 0.5


def _value_type(name: str):
    """int/float/str/bool for a TrainConfig field (`int | None` -> int)."""
    hint = FIELD_TYPES[name]
    if isinstance(hint, types.UnionType):
        hint = next(arg for arg in typing.get_args(hint) if arg is not type(None))
    return hint


def build_parser(prog: str = "python -m core.train") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    defaults = TrainConfig()
    group = parser.add_argument_group("training settings (TrainConfig fields)")
    for f in fields(TrainConfig):
        flags = [f"--{f.name.replace('_', '-')}"] + ALIASES.get(f.name, [])
        kind = _value_type(f.name)
        help_text = f"default: {getattr(defaults, f.name)!r}"
        if kind is bool:
            group.add_argument(*flags, dest=f.name, action=argparse.BooleanOptionalAction, default=None, help=help_text)
        else:
            group.add_argument(*flags, dest=f.name, type=kind, choices=CHOICES.get(f.name), default=None,
                               metavar=None if f.name in CHOICES else kind.__name__.upper(), help=help_text)
    parser.add_argument("--recipe", choices=RECIPE_NAMES, default=None,
                        help="the settings flags left out take: shipped (default: TrainConfig's defaults), fast "
                             "(the Train page's CPU recipe for this machine: light or standard, picked by the "
                             "measured speed of a few light steps and --max-seconds), light, standard, or toy "
                             "(2-D toys)")
    parser.add_argument("--out", type=Path, default=None,
                        help="checkpoint to write (.safetensors); default $RDL_HOME/models/<dataset>-<size>-<prediction>.safetensors "
                             "(reverse-diffusion-lab paths), "
                             "or the --resume file")
    parser.add_argument("--resume", type=Path, default=None, metavar="CHECKPOINT",
                        help="continue the run saved in CHECKPOINT with its own settings (--steps may raise the total, "
                             "--device may move it)")
    parser.add_argument("--max-seconds", type=float, default=None, metavar="S",
                        help="a time budget: the run measures its speed over its first steps and plans its step "
                             "count (at most --steps), and so its learning-rate decay, to end within S seconds; "
                             "then it saves")
    parser.add_argument("--cut-off", action="store_true",
                        help="with --max-seconds: plan nothing, just stop when the time is spent (the learning rate "
                             "is then wherever the step count left it; for comparisons)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--ray-address", default=None, metavar="ADDRESS",
                        help="train on a Ray cluster instead (docs/cluster.md): submit the run to its job registry, "
                             "print its progress, copy its checkpoint from the shared run store to --out")
    return parser


def _recipe(args) -> TrainConfig:
    """The named recipe; "fast" applies core.training.config.pick_fast_recipe to the light recipe's speed here
    (a few steps, timed) and the time budget, and says what it picked."""
    if args.recipe != "fast":
        return RECIPES[args.recipe or "shipped"]
    speed = None
    if args.max_seconds is not None:
        device = args.device or MNIST_LIGHT_RECIPE.device
        speed = probe.steps_per_second(TrainConfig(**{**MNIST_LIGHT_RECIPE.to_json(), "device": device}))
    picked = pick_fast_recipe(speed, args.max_seconds)
    name = "light" if picked is MNIST_LIGHT_RECIPE else "standard"
    why = ("no time budget: a full run" if speed is None else
           f"the light recipe runs {speed:.1f} steps/s here, {speed * args.max_seconds:,.0f} steps in the budget")
    print(f"fast recipe: {name} ({why}; the rule is in core/training/config.py)", file=sys.stderr)
    return picked


def _config_from(args) -> TrainConfig:
    """The --recipe's settings (the shipped models' by default) with every flag given replacing its value."""
    given = {f.name: getattr(args, f.name) for f in fields(TrainConfig) if getattr(args, f.name) is not None}
    base = _recipe(args)
    return TrainConfig(**{**base.to_json(), **given}) if given else base


def check_output_path(out: Path) -> Path:
    """Refuse, before any training, a checkpoint path that could not be written at the end: a wrong suffix,
    a folder that does not exist or is not writable, or an existing folder in its place."""
    if out.suffix != ".safetensors":
        raise ValueError(f"--out must end in .safetensors, got {str(out)!r}")
    folder = out.parent
    if not folder.is_dir():
        raise ValueError(f"--out {str(out)!r}: the folder {str(folder)!r} does not exist (or is not a folder)")
    if out.exists() and not out.is_file():
        raise ValueError(f"--out {str(out)!r} exists and is not a file")
    try:  # a real write, since permissions alone do not tell (read-only mounts, /proc, quotas)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".rdl-write-check-"):
            pass
    except OSError as error:
        raise ValueError(f"--out {str(out)!r}: cannot write in {str(folder)!r} ({error.strerror or error})") from None
    return out


def _train_on_cluster(args, parser) -> int:
    """--ray-address: the run goes to the cluster (core.training.ray_backend.run_on_cluster)."""
    from core.training.backends import ray_address

    if args.resume is not None:
        parser.error("--resume trains on this machine; drop --ray-address (on a cluster, resume the job in the app)")
    try:
        address = ray_address({"RDL_RAY_ADDRESS": args.ray_address}, name="--ray-address")
        if address is None:
            raise ValueError("--ray-address is empty; expected an address like ray-head:6379")
        max_seconds = None if args.max_seconds is None else check_number("--max-seconds", args.max_seconds, 0.0, open_low=True)
        config = _config_from(args)  # (the cluster's registry checks that it fits, as for the app's jobs)
        out = check_output_path(args.out or Path("checkpoints") / f"{config.dataset}-{config.model_size}-{config.prediction}.safetensors")
    except (ValueError, FileNotFoundError) as error:
        parser.error(str(error))
    try:
        from core.training.ray_backend import run_on_cluster
    except ImportError:
        parser.error("--ray-address needs Ray: pip install .[cluster]")
    say = lambda line: print(line, file=sys.stderr, flush=True)  # noqa: E731
    return run_on_cluster(address, config, out, max_seconds, print_line=say, progress_line=None if args.quiet else progress_line)


def _trainer_from(args, parser) -> Trainer:
    max_seconds = None if args.max_seconds is None else check_number("--max-seconds", args.max_seconds, 0.0, open_low=True)
    if args.resume is None:
        config = _config_from(args)
        check_fits(config)  # before the data is loaded and the model built
        return Trainer(config, max_seconds=max_seconds, plan_budget=not args.cut_off)
    ignored = [f.name for f in fields(TrainConfig)
               if getattr(args, f.name) is not None and f.name not in ("total_steps", "device")]
    ignored += ["recipe"] if args.recipe is not None else []
    if ignored:
        parser.error(f"with --resume the run keeps its saved settings; drop {', '.join('--' + n.replace('_', '-') for n in ignored)}")
    trainer = Trainer.from_checkpoint(args.resume, device=args.device, max_seconds=max_seconds,
                                      plan_budget=not args.cut_off)
    if args.total_steps is not None:
        trainer.set_total_steps(args.total_steps)
    if trainer.step >= trainer.config.total_steps:
        parser.error(f"{args.resume} already did all {trainer.config.total_steps} steps; "
                     f"pass a larger --steps to train further")
    check_fits(trainer.config, trainer.device)
    return trainer


def format_seconds(seconds) -> str:
    if seconds is None:
        return "?"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def progress_line(snapshot) -> str:
    done = snapshot.step / snapshot.total_steps
    filled = int(BAR_WIDTH * done)
    loss = "-" if snapshot.last_loss is None else f"{snapshot.last_loss:.4f}"
    budget = "" if snapshot.budget_seconds is None else f" (budget {format_seconds(snapshot.budget_seconds)})"
    return (f"[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {snapshot.step}/{snapshot.total_steps} "
            f"loss {loss}  {snapshot.images_per_second:.0f} img/s  ETA {format_seconds(snapshot.eta_seconds)}{budget}")


def _watch(trainer: Trainer, quiet: bool) -> None:
    """Poll the trainer until its thread ends, drawing the progress bar on stderr."""
    interactive = sys.stderr.isatty()
    last_printed_percent = -10
    while trainer.state in ("running", "stopping"):
        time.sleep(REFRESH_SECONDS)
        if quiet:
            continue
        snapshot = trainer.snapshot()
        percent = 100 * snapshot.step // snapshot.total_steps
        if interactive:
            print("\r" + progress_line(snapshot), end="", file=sys.stderr, flush=True)
        elif percent >= last_printed_percent + 10:  # logs and pipes: a line every 10 %
            print(progress_line(snapshot), file=sys.stderr, flush=True)
            last_printed_percent = percent
    trainer.join()
    if quiet:
        return
    final = trainer.snapshot()
    if interactive:
        print("\r" + progress_line(final), file=sys.stderr, flush=True)
    elif 100 * final.step // final.total_steps > last_printed_percent:
        print(progress_line(final), file=sys.stderr, flush=True)


def main(argv=None, started: float | None = None, prog: str = "python -m core.train") -> int:
    """The command; `started` (time.monotonic() clock) is when the budget of --max-seconds began: the process's
    start when run as `python -m core.train`, this call's otherwise."""
    started = time.monotonic() if started is None else started
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    if args.ray_address is not None:
        return _train_on_cluster(args, parser)
    try:
        runtime.configure_cpu_threads(leave_core_free=CLI_LEAVES_A_CORE_FREE)
        trainer = _trainer_from(args, parser)
    except (ValueError, FileNotFoundError) as error:  # includes CheckpointError
        parser.error(str(error))
    config = trainer.config
    out = args.out or args.resume
    if out is None:  # the user folder (core/paths.py), made on first use; never checkpoints/ or the package
        out = paths.models_dir() / f"{config.dataset}-{config.model_size}-{config.prediction}.safetensors"
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            parser.error(f"cannot create the models folder {out.parent} ({error.strerror or error}); set RDL_HOME or pass --out")
    try:
        check_output_path(out)
    except ValueError as error:
        parser.error(str(error))

    first_step, elapsed_before = trainer.step, trainer.snapshot().progress.seconds
    print(f"training {config.dataset} with a {config.model_size} {trainer.model.config['kind']} "
          f"({trainer.parameters:,} parameters) on {trainer.snapshot().device}, steps {first_step}..{config.total_steps}",
          file=sys.stderr)
    trainer.budget_head_start = time.monotonic() - started  # a budget is the command's: loading and probing count
    interrupted = False
    try:
        trainer.start() if first_step == 0 else trainer.resume()
        _watch(trainer, args.quiet)
    except KeyboardInterrupt:
        interrupted = True
        print("\ninterrupted: stopping after the current step ...", file=sys.stderr)
        trainer.stop("interrupted from the keyboard")
        trainer.join()

    snapshot = trainer.snapshot()
    if snapshot.state == "failed":
        print(f"error: {snapshot.error}", file=sys.stderr)
        return 1
    try:
        path = trainer.save(out)
    except (OSError, ValueError, CheckpointError) as error:
        print(f"error: could not write the checkpoint {str(out)!r}: {error}", file=sys.stderr)
        return 1
    seconds = snapshot.progress.seconds - elapsed_before
    images = (snapshot.step - first_step) * config.batch_size
    losses = snapshot.progress.losses
    final = "-" if not losses else f"{losses[-1]:.4f} (mean of the last {snapshot.loss_bucket} steps)"
    ended = "stopped" if interrupted else snapshot.state
    print(f"{ended} at step {snapshot.step}/{snapshot.total_steps}" + (f" ({snapshot.message})" if snapshot.message else ""))
    print(f"time {format_seconds(seconds)}, {images / max(seconds, 1e-9):.0f} images/s, final loss {final}")
    if trainer.budget_plan is not None:
        print(f"time budget: {trainer.budget_plan.describe()}")
    print(f"saved {path}")
    return 130 if interrupted else 0


if __name__ == "__main__":
    sys.exit(main(started=STARTED))
