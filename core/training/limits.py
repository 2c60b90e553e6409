"""How many training jobs a server runs at once, and for whom: the limits, from the machine and the environment.

A classroom server sets them with environment variables (README, "Running a classroom server"):

    RDL_CPU_JOBS            jobs training at once on the CPU. Default: the cores this container may really use
                            (cgroup CPU quota and affinity, core.runtime.usable_cpu_cores) minus one for the web
                            server, at least 1; each job then gets (cores − 1) // RDL_CPU_JOBS torch threads.
    RDL_GPU_JOBS            small jobs sharing one CUDA GPU at once. Default 2 (not yet measured on a GPU:
                            bench/gpu_check.py suggests a value). A job of device "auto" takes a free slot of
                            either device when it is launched, the GPU's first.
    RDL_JOBS_PER_SESSION    jobs one browser session may have training at once (default 1)
    RDL_QUEUED_PER_SESSION  jobs one session may have waiting for a slot (default 1)
    RDL_MAX_JOBS            jobs running or waiting on the whole server (default 8 per slot, at least 32:
                            a class queues, each job told its position and ETA, instead of being refused)
    RDL_MODELS_PER_SESSION  trained models one session keeps (default 4; discard one to train another)

`estimate_starts` (one device) and `estimate_device_starts` turn measured job durations into an honest queue ETA.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

from core import runtime
from core.checks import check_int

ENV = {"cpu_slots": "RDL_CPU_JOBS", "cuda_slots": "RDL_GPU_JOBS", "running_per_session": "RDL_JOBS_PER_SESSION",
       "queued_per_session": "RDL_QUEUED_PER_SESSION", "max_active": "RDL_MAX_JOBS",
       "models_per_session": "RDL_MODELS_PER_SESSION"}
DEFAULT_GPU_JOBS = 2
ACTIVE_PER_SLOT = 8  # default server-wide cap: this many running-or-waiting jobs per slot
MIN_MAX_ACTIVE = 32  # but at least a class: the rest wait in the queue (with their position and ETA), never refused


def cpu_slots_for(usable_cores: float) -> int:
    """Default CPU slots: one job per usable core, keeping one core for the web server (at least one job)."""
    return max(1, math.floor(usable_cores) - 1)


@dataclass(frozen=True)
class JobLimits:
    """The registry's policy numbers (see the module docstring for their meaning and environment variables)."""

    cpu_slots: int = 1
    cuda_slots: int = DEFAULT_GPU_JOBS
    running_per_session: int = 1
    queued_per_session: int = 1
    max_active: int = MIN_MAX_ACTIVE
    models_per_session: int = 4
    threads_per_job: int = 1

    def __post_init__(self):
        for name in ("cpu_slots", "cuda_slots", "running_per_session", "max_active", "models_per_session",
                     "threads_per_job"):
            check_int(name, getattr(self, name), 1, 10_000)
        check_int("queued_per_session", self.queued_per_session, 0, 10_000)

    def slots(self, device: str) -> int:
        return self.cuda_slots if device == "cuda" else self.cpu_slots

    @classmethod
    def from_env(cls, env=None, usable_cores: float | None = None) -> JobLimits:
        """The limits for this machine, each overridable by its environment variable. A bad value is a
        ValueError naming the variable, so a misconfigured server says so at start instead of misbehaving."""
        env = os.environ if env is None else env
        cores = runtime.usable_cpu_cores() if usable_cores is None else usable_cores
        values = {}
        for name, variable in ENV.items():
            text = env.get(variable)
            if text is None or text.strip() == "":
                continue
            try:
                values[name] = check_int(variable, int(text.strip()), 0 if name == "queued_per_session" else 1, 10_000)
            except ValueError:
                raise ValueError(f"{variable}={text!r} is not allowed; expected a whole number "
                                 f"{'>= 0' if name == 'queued_per_session' else '>= 1'}") from None
        cpu_slots = values.get("cpu_slots", cpu_slots_for(cores))
        values.setdefault("cpu_slots", cpu_slots)
        values.setdefault("max_active", max(MIN_MAX_ACTIVE, ACTIVE_PER_SLOT * cpu_slots))
        values["threads_per_job"] = max(1, math.floor(max(1.0, cores - 1)) // cpu_slots)
        return cls(**values)


def estimate_starts(slots: int, running_left: list, queued_durations: list) -> list:
    """Seconds until each queued job starts, in queue order, or None where it cannot be known: one device.

    running_left: seconds each running job still needs (None = not measured yet); queued_durations: the
    estimated run time of each queued job, oldest first (None = unknown). Slots are handed out first come
    first served as jobs end. An unknown time makes every later start unknown: no guess is shown as a number.
    """
    return estimate_device_starts({"device": slots}, {"device": running_left},
                                  [(("device",), {"device": duration}) for duration in queued_durations])


def estimate_device_starts(slots: dict, running_left: dict, queued: list, running_owners: dict | None = None,
                           queued_owners: list | None = None, per_owner: int | None = None) -> list:
    """`estimate_starts` for several devices, as the registry hands out slots: whenever a slot frees, the queued
    jobs are scanned oldest first and each takes a free slot on the first of its devices that has one, unless its
    owner already has `per_owner` jobs training (then it waits and later jobs go first, as the registry does).

    slots: device -> slot count; running_left: device -> seconds each running job there still needs (None =
    unknown); queued: (devices, durations) per queued job, oldest first, with its devices preferred first and
    its estimated run time on each (device -> seconds or None). running_owners (device -> the owner of each running
    job, in running_left's order) and queued_owners (one per queued job) are needed only with per_owner. A slot held
    by a job of unknown length never frees.
    """
    if per_owner is not None:
        check_int("per_owner", per_owner, 1)
    slot_ends = {}  # device -> [end time, owner] of each slot (free: end 0)
    for device, count in slots.items():
        check_int("slots", count, 1)
        owners = (running_owners or {}).get(device) or [None] * len(running_left.get(device, []))
        ends = [[math.inf if left is None else float(left), owner]
                for left, owner in zip(running_left.get(device, []), owners, strict=True)]
        ends = [[0.0, None]] * max(0, count - len(ends)) + ends
        slot_ends[device] = [list(item) for item in sorted(ends, key=lambda item: item[0])[-count:]]
    owners = queued_owners or [None] * len(queued)
    starts, waiting, now = [None] * len(queued), list(range(len(queued))), 0.0
    while waiting and not math.isinf(now):
        for index in list(waiting):
            devices, durations = queued[index]
            owner = owners[index]
            if per_owner is not None and owner is not None and sum(
                    1 for ends in slot_ends.values() for end, who in ends if who == owner and end > now) >= per_owner:
                continue
            device = next((d for d in devices if min(end for end, _ in slot_ends[d]) <= now), None)
            if device is not None:
                slot = min(slot_ends[device], key=lambda item: item[0])
                duration = durations.get(device)
                slot[0], slot[1] = (math.inf if duration is None else now + duration), owner
                starts[index] = now
                waiting.remove(index)
        now = min((end for ends in slot_ends.values() for end, _ in ends if end > now), default=math.inf)
    return starts
