"""Where the math runs: the device choice and the CPU thread policy (no Streamlit, no training logic).

Thread count: on CPU torch's intra-op thread count is process-wide. `configure_cpu_threads()` sets it once
per process, when the first CPU Trainer is built, to the usable cores minus one (at least 1), or to
$RDL_TORCH_THREADS; later calls leave it alone. The free core keeps the web server responsive, and on a
busy 2-core machine one thread is also much faster than two (OpenMP threads that wait for a descheduled
partner spin instead of working).
"""

from __future__ import annotations

import contextlib
import os
import threading

import torch

DEVICES = ("auto", "cpu", "cuda")
THREADS_ENV = "RDL_TORCH_THREADS"


def resolve_device(name: str) -> torch.device:
    """"auto" -> CUDA when available, else CPU; "cuda" without a GPU is an error."""
    if name not in DEVICES:
        raise ValueError(f"device={name!r} is not allowed; choose one of {', '.join(DEVICES)}")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' is not available on this machine (no CUDA GPU found); use 'auto' or 'cpu'")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def autocast_dtype(device: torch.device | str) -> torch.dtype | None:
    """torch.bfloat16 where bf16 autocast is supported on `device` (CUDA cards with bf16), else None (fp32)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else None
    return None


def autocast(device: torch.device | str, enabled: bool = True):
    """A context manager: bf16 autocast on `device` when `autocast_dtype(device)` says so (and `enabled`),
    otherwise a no-op. Wrap the model's forward pass (training loss, sampling loops) in it."""
    device = torch.device(device)
    dtype = autocast_dtype(device) if enabled else None
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def usable_cpu_cores(cgroup_root: str = "/sys/fs/cgroup") -> float:
    """Cores this process may really use: the CPU affinity, capped by the cgroup CPU quota (v2 `cpu.max`
    or v1 `cpu.cfs_quota_us` / `cpu.cfs_period_us`) when one is set. May be fractional (quota 1.5 cores)."""
    cores = float(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))
    quota = _cgroup_quota(cgroup_root)
    return min(cores, quota) if quota is not None else cores


def _cgroup_quota(root: str) -> float | None:
    """The cgroup CPU quota in cores, or None when there is none (or it cannot be read)."""
    try:
        with open(os.path.join(root, "cpu.max")) as f:
            quota, period = f.read().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        with open(os.path.join(root, "cpu", "cpu.cfs_quota_us")) as f:
            quota_us = int(f.read())
        with open(os.path.join(root, "cpu", "cpu.cfs_period_us")) as f:
            period_us = int(f.read())
        return None if quota_us <= 0 else quota_us / period_us
    except (OSError, ValueError):
        return None


_threads_configured = False
_threads_lock = threading.Lock()


def configure_cpu_threads() -> int:
    """Set torch's process-wide CPU thread count once (see the module docstring); returns the count."""
    global _threads_configured
    with _threads_lock:
        if not _threads_configured:
            requested = os.environ.get(THREADS_ENV)
            if requested is not None and requested.isdigit() and int(requested) > 0:
                threads = int(requested)
            else:
                cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
                threads = cores - 1  # one core stays free for the web server and the UI
            torch.set_num_threads(max(1, threads))
            _threads_configured = True
        return torch.get_num_threads()


def describe_device(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(device)}"
    return f"cpu ({torch.get_num_threads()} threads)"
