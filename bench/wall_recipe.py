"""Wall-clock test of a training recipe as a user runs it: `python -m core.train ... --max-seconds S`, timed
from the command's start to its exit, then scored like bench/cpu_recipe.py.

    python bench/wall_recipe.py --threads 2 --bf16 auto --max-seconds 300 --out-dir runs/wall/fast -- \
        --dataset mnist --T 200 --scale-with-T --lr-schedule cosine --steps 1800
    python bench/wall_recipe.py --eval-only runs/wall/fast/model.safetensors   # score an existing checkpoint
    python bench/wall_recipe.py --page-job --cpu-class avx2 --max-seconds 120 --out-dir runs/wall/page  # as the Train page

Everything after `--` goes to `python -m core.train` unchanged (its own flags, checked there). The training
process gets $RDL_TORCH_THREADS = --threads and $RDL_CPU_BF16 = --bf16 (auto: unset, so core.runtime decides
as it does for the app), OMP_WAIT_POLICY=PASSIVE like the app's workers (--omp-wait default: OpenMP's spinning),
and with --cpu-class avx2 the instruction-set caps that emulate an AVX2 CPU without bf16 (bench/report.py). The whole command is timed
(interpreter start, data loading, the previews the trainer draws, saving), since that is what a teacher waits
for. Scoring (not timed): 256 digits from the saved EMA weights, DDIM 50 steps, η = 0, x̂₀ clipped, seed
1234, in fp32, with `core.metrics.mnist.mnist_quality`, and the real-data floor at the same n. The load average
before and after, the CPU model and the printed training lines go into --out-json with the numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch

from bench.report import CPU_CLASSES, cpu_class_env, cpu_flags_summary, cpu_model
from core.checkpoints.files import load
from core.checks import check_int, check_number
from core.data.images import make_grid, save_png
from core.diffusion.samplers import ddim_sample
from core.metrics.mnist import mnist_quality, mnist_real_floor

EVAL_N, EVAL_STEPS, EVAL_SEED = 256, 50, 1234


def train(args, train_flags: list[str], out: Path) -> dict:
    """Run core.train once; (wall seconds, load averages, its output lines)."""
    env = {**os.environ, **cpu_class_env(args.cpu_class), "RDL_TORCH_THREADS": str(args.threads)}
    env.pop("RDL_CPU_BF16", None)
    env.pop("OMP_WAIT_POLICY", None)
    if args.omp_wait != "default":
        env["OMP_WAIT_POLICY"] = args.omp_wait.upper()
    if args.bf16 != "auto":
        env["RDL_CPU_BF16"] = args.bf16
    command = [sys.executable, "-m", "core.train", *train_flags, "--max-seconds", str(args.max_seconds), "--out", str(out)]
    load_before = os.getloadavg()
    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"core.train failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return {"command": " ".join(command), "threads": args.threads, "bf16_env": args.bf16, "cpu_class": args.cpu_class,
            "omp_wait_policy": args.omp_wait, "wall_seconds": round(wall, 1),
            "load_before": load_before, "load_after": os.getloadavg(),
            "train_stdout": done.stdout.strip().splitlines(), "train_stderr_tail": done.stderr.strip().splitlines()[-4:]}


def train_as_page_job(args, out_dir: Path) -> tuple[dict, Path]:
    """Train the Train page's default recipe for the dataset as the page does: a job submitted to the app's
    JobRegistry (a worker process with the app's slot and thread settings for this machine) with a time budget
    of --max-seconds, while this process does one refresh of the open live panel per second
    (bench/panel_overhead.py). Timed from the submission to the job's end (the worker's start, data loading,
    previews and saves included)."""
    from bench.panel_overhead import panel_refresh
    from core.data.datasets import TOY_NAMES
    from core.training import run_store
    from core.training.config import recipe_for
    from core.training.registry import JobRegistry
    from ui.training_panel import fast_recipe_for_this_machine

    os.environ.update(cpu_class_env(args.cpu_class))  # read by the worker processes the registry starts
    if args.threads_env:
        os.environ["RDL_TORCH_THREADS"] = str(args.threads)
    registry = JobRegistry(run_store=run_store.RunStore(out_dir / "runs"), heartbeat_timeout=86_400.0)
    config = recipe_for(args.dataset, on_gpu=False)
    if args.dataset not in TOY_NAMES:  # the MNIST recipe the page picks for this machine and budget
        config = fast_recipe_for_this_machine(args.max_seconds)
    load_before = os.getloadavg()
    start = time.perf_counter()
    job_id = registry.submit("bench", config, max_seconds=args.max_seconds)
    job = registry.get(job_id)
    refreshes = 0
    while registry.wait(job_id, timeout=1.0) in ("queued", "running", "stopping"):
        panel_refresh(job)
        refreshes += 1
    wall = time.perf_counter() - start
    snapshot = job.snapshot()
    registry.close()
    return ({"mode": "Train page job (worker process, panel open)", "config": config.to_json(),
             "budget_seconds": args.max_seconds, "cpu_class": args.cpu_class, "wall_seconds": round(wall, 1),
             "state": snapshot.state, "steps": snapshot.step, "total_steps": snapshot.total_steps,
             "device": snapshot.device, "panel_refreshes": refreshes, "load_before": load_before,
             "load_after": os.getloadavg()}, job.checkpoint)


def score(checkpoint: Path) -> dict:
    """The classifier metrics of EVAL_N digits from the checkpoint's EMA weights (and the floor)."""
    model, diffusion, metadata = load(checkpoint)
    with torch.no_grad():  # fp32, so every run is scored the same way whatever it trained in
        x = ddim_sample(model, diffusion, (EVAL_N, 1, 28, 28), EVAL_STEPS, clip_x0=True,
                        generator=torch.Generator().manual_seed(EVAL_SEED))
    x = x.float().clamp(-1, 1)
    save_png(make_grid(x[:64], nrow=8), checkpoint.with_suffix(".png"))
    quality = mnist_quality(x)
    floor = mnist_real_floor(EVAL_N)["fd"]
    return {"steps_trained": metadata.get("steps"), "training_seconds": metadata.get("training_seconds"), "device": metadata.get("device"),
            "fd": round(quality["fd"], 2), "fd_floor_same_n": round(floor, 2),
            "fd_over_floor": round(quality["fd"] / floor, 2), "inception_score": round(quality["inception_score"], 3),
            "classes_present": sum(1 for count in quality["class_histogram"] if count > 0),
            "class_histogram": quality["class_histogram"], "grid": str(checkpoint.with_suffix(".png"))}


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    ours, train_flags = (argv[:argv.index("--")], argv[argv.index("--") + 1:]) if "--" in argv else (argv, [])
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--bf16", choices=("auto", "0", "1"), default="auto")
    parser.add_argument("--max-seconds", type=float, default=300.0)
    parser.add_argument("--cpu-class", choices=tuple(CPU_CLASSES), default="native",
                        help="emulate this CPU class in the training process (bench/report.py CPU_CLASSES)")
    parser.add_argument("--omp-wait", choices=("passive", "default"), default="passive",
                        help="OMP_WAIT_POLICY of the training process (default: OpenMP's own, spinning)")
    parser.add_argument("--out-dir", default="runs/wall_recipe")
    parser.add_argument("--out-json", default=None, help="default: <out-dir>/result.json")
    parser.add_argument("--eval-only", default=None, help="score this checkpoint; no training")
    parser.add_argument("--page-job", action="store_true",
                        help="train as the Train page does (its default recipe, a worker job, panel open) instead of "
                             "running core.train; --threads then applies only with --threads-env")
    parser.add_argument("--threads-env", action="store_true", help="with --page-job: pin the worker's threads")
    parser.add_argument("--dataset", default="mnist", help="with --page-job: the dataset of the page's recipe")
    args = parser.parse_args(ours)
    try:
        check_int("--threads", args.threads, 1, 256)
        check_number("--max-seconds", args.max_seconds, 1.0, 86_400.0)
    except ValueError as error:
        parser.error(str(error))
    result = {"cpu": cpu_model(), "cpu_flags": cpu_flags_summary(), "cores": os.cpu_count(), "torch": torch.__version__,
              "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    if args.eval_only:
        checkpoint = Path(args.eval_only)
    else:
        out_dir = Path(args.out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        if args.page_job:
            result["training"], checkpoint = train_as_page_job(args, out_dir)
        else:
            checkpoint = out_dir / "model.safetensors"
            result["training"] = train(args, train_flags, checkpoint)
    result["quality"] = score(checkpoint)
    text = json.dumps(result, indent=1)
    print(text)
    out_json = Path(args.out_json) if args.out_json else checkpoint.parent / "result.json"
    out_json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
