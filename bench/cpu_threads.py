"""When does the second core help? Training-step time with 1 and 2 torch threads, with the other core free and with a
competing busy process, under OpenMP's default (spinning) and PASSIVE wait policies; and what the thread policy of
core.runtime (`runnable_tasks` -> `choose_threads`) decides in each situation.

    python bench/cpu_threads.py --steps 6 --repeats 2 --out-json docs/results/cpu_threads.json

Each measurement is a fresh child process (OMP_WAIT_POLICY is read when torch loads) that times --steps training
steps of the tiny MNIST UNet (batch 64, random data, Adam; bf16 autocast where core.runtime enables it) after 2
warm-up steps and reports seconds per step (median) and CPU seconds per step. "contended" runs start a
competitor first: --competitors processes each spinning a pure-Python loop (like another student's job or a
web server busy rendering). Conditions alternate so that all see the same background load; the machine's
load average is printed with every row, because other work on a shared machine is a competitor too.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

CHILD_FLAG = "--child-threads"


def child(threads: int, steps: int) -> dict:
    """Runs in the child process: time `steps` training steps with `threads` threads."""
    import torch

    from core.diffusion.gaussian_diffusion import GaussianDiffusion
    from core.diffusion.schedules import make_schedule
    from core.nets.build import build_model, model_config_for
    from core.runtime import autocast

    torch.set_num_threads(threads)
    generator = torch.Generator().manual_seed(0)
    diffusion = GaussianDiffusion(make_schedule("linear", 1000), "eps", "fixed_small")
    torch.manual_seed(0)
    model = build_model(model_config_for("image", (1, 28, 28), "tiny", 1))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    data = torch.rand(64, 1, 28, 28, generator=generator) * 2 - 1
    times, cpu_times = [], []
    for i in range(2 + steps):
        wall0, cpu0 = time.perf_counter(), time.process_time()
        with autocast("cpu"):
            loss = diffusion.training_losses(model, data, generator=generator)["loss"].float().mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if i >= 2:
            times.append(time.perf_counter() - wall0)
            cpu_times.append(time.process_time() - cpu0)
    return {"step_s": statistics.median(times), "cpu_s_per_step": sum(cpu_times) / len(cpu_times)}


def measure(threads: int, steps: int, wait_policy: str) -> dict:
    env = dict(os.environ, PYTHONPATH=os.getcwd())
    env.pop("OMP_WAIT_POLICY", None)
    if wait_policy != "default":
        env["OMP_WAIT_POLICY"] = wait_policy
    out = subprocess.run([sys.executable, __file__, CHILD_FLAG, str(threads), "--steps", str(steps)], env=env,
                         capture_output=True, text=True, timeout=600, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def start_competitors(count: int) -> list[subprocess.Popen]:
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]


def stop(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        process.kill()
        process.wait()


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--competitors", type=int, default=1)
    parser.add_argument("--policies", default="default,PASSIVE")
    parser.add_argument("--out-json", default=None)
    args = parser.parse_args(argv)

    from bench.report import command_line, hardware, load_average, now_utc, write_json
    from core.runtime import choose_threads, runnable_tasks, usable_cpu_cores

    rows = []
    for repeat in range(args.repeats):
        for condition in ("free", "contended"):
            competitors = start_competitors(args.competitors) if condition == "contended" else []
            try:
                time.sleep(0.3)
                others = runnable_tasks(samples=20, interval_s=0.02)
                decided = choose_threads(usable_cpu_cores(), others) if others is not None else None
                for policy in args.policies.split(","):
                    for threads in (1, 2):
                        load = load_average()
                        result = measure(threads, args.steps, policy)
                        row = {"repeat": repeat, "condition": condition, "wait_policy": policy, "threads": threads,
                               **result, "load_average": load, "other_runnable": others, "policy_decides": decided}
                        rows.append(row)
                        print(json.dumps(row), flush=True)
            finally:
                stop(competitors)
    summary = []
    for condition in ("free", "contended"):
        for policy in args.policies.split(","):
            best = {th: min(r["step_s"] for r in rows if r["condition"] == condition and r["wait_policy"] == policy
                            and r["threads"] == th) for th in (1, 2)}
            summary.append({"condition": condition, "wait_policy": policy, "step_s_1_thread": round(best[1], 4),
                            "step_s_2_threads": round(best[2], 4), "speedup_2_threads": round(best[1] / best[2], 2)})
    document = {"command": command_line("bench/cpu_threads.py", argv), "date": now_utc(), "hardware": hardware(),
                "rows": rows, "summary": summary}
    print(json.dumps(summary, indent=1))
    if args.out_json:
        write_json(args.out_json, document)
    return document


if __name__ == "__main__":
    if CHILD_FLAG in sys.argv:
        parsed = argparse.ArgumentParser()
        parsed.add_argument(CHILD_FLAG, type=int)
        parsed.add_argument("--steps", type=int)
        child_args = parsed.parse_args()
        print(json.dumps(child(child_args.child_threads, child_args.steps)))
    else:
        main()
