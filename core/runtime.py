"""Where the math runs: the device choice and the CPU thread policy (no Streamlit, no training logic).

Thread count: on CPU torch's intra-op thread count is process-wide. `configure_cpu_threads()` sets it once
per process, when the first CPU Trainer is built, to the usable cores minus one (at least 1), or to
$RDL_TORCH_THREADS; later calls leave it alone. The free core keeps the web server responsive, and on a
busy 2-core machine one thread is also much faster than two (OpenMP threads that wait for a descheduled
partner spin instead of working).
"""

from __future__ import annotations

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
