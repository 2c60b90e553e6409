"""How fast this machine trains a config: a few real training steps, timed (for the fast recipe's rule,
core.training.config.pick_fast_recipe).

`steps_per_second(config)` builds the config's model and data in this process and times `steps` training steps
after one untimed step (kernels and caches warm up there), on the device and thread count in force. The command
line (`python -m core.train --recipe fast`) calls it directly: it trains in this process anyway. The web server
never trains, so it asks a fresh process instead (`probe_in_subprocess`, which runs `python -m core.training.probe`
with a time limit and reads one line of JSON back); any failure there is None ("unknown"), never an error page.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from core.checks import check_int
from core.training.config import TrainConfig

PROBE_STEPS = 4
PROBE_TIMEOUT_SECONDS = 120.0
ROOT = Path(__file__).resolve().parents[2]


def steps_per_second(config: TrainConfig, steps: int = PROBE_STEPS) -> float:
    """Training steps per second of `config` here and now (median of `steps` timed steps after a warm-up step).
    The steps change a throwaway model only; nothing is saved."""
    from core.training.step import build_state, train_step

    check_int("steps", steps, 1, 1000)
    state = build_state(config)
    train_step(state)  # untimed: oneDNN builds its kernels, the allocator grows
    times = []
    for _ in range(steps):
        started = time.perf_counter()
        train_step(state)
        times.append(time.perf_counter() - started)
    times.sort()
    return 1.0 / times[len(times) // 2]


def probe_in_subprocess(config: TrainConfig, threads: int, timeout: float = PROBE_TIMEOUT_SECONDS) -> float | None:
    """steps_per_second(config) measured in a fresh process with `threads` torch threads (as a training worker
    would get), so the calling process (the web server) computes nothing. None when it fails or times out."""
    command = [sys.executable, "-m", "core.training.probe", json.dumps(config.to_json()), str(threads)]
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    try:
        done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)
        value = float(json.loads(done.stdout.strip().splitlines()[-1])["steps_per_second"])
    except (OSError, subprocess.SubprocessError, ValueError, KeyError, IndexError, TypeError):
        return None
    return value if value > 0 else None


def main(argv=None) -> int:
    """`python -m core.training.probe CONFIG_JSON THREADS`: prints {"steps_per_second": x} on one line."""
    import torch

    argv = sys.argv[1:] if argv is None else argv
    config = TrainConfig.from_json(json.loads(argv[0]))
    torch.set_num_threads(check_int("threads", int(argv[1]), 1, 1024))
    print(json.dumps({"steps_per_second": steps_per_second(config)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
