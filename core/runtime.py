"""Where the math runs: the device choice, bf16 autocast, and the CPU thread policy (no Streamlit, no training logic).

GPUs and the web server: the server never runs a model on CUDA, so it never initialises CUDA either (a CUDA context
costs hundreds of MB of GPU memory and seconds of start-up, and a forked or threaded server must not hold one).
`cuda_inventory()` learns the GPUs (name, compute capability, total and free memory) once per process by running a
short child interpreter (`PROBE_TIMEOUT_S` at most; any failure counts as no GPU), never through
`torch.cuda.is_available()` in the calling process; `job_devices()` turns a TrainConfig's device into the devices a
job may train on from it. The processes that compute (training workers, the command-line tools, bench/) use
`resolve_device`, which asks torch itself.

bf16 autocast on CUDA (`autocast_dtype`, `autocast`): only where the GPU computes bf16 natively, compute capability
8.0 (Ampere) or newer (`BF16_MIN_CAPABILITY`), decided per device from `torch.cuda.get_device_capability` of that
device's index (the current device for a bare "cuda"). torch's `is_bf16_supported()` also says True on sm 7.x (T4,
V100), where bf16 is emulated and slower than fp32; there training and sampling run in plain fp32.

bf16 autocast on the CPU (`cpu_bf16_supported`): only when
oneDNN has bf16 kernels for this CPU (`torch.ops.mkldnn._is_mkldnn_bf16_supported()`) AND the CPU computes in
bf16 itself (the avx512_bf16 or amx_bf16 flag: `native_cpu_bf16`), since CPUs that emulate bf16 can be slower
than fp32. Where the flags cannot be read (no /proc/cpuinfo), a one-time micro-benchmark
(`measure_cpu_bf16_speedup`, ~0.5 s) must find bf16 convolutions at least `BF16_MIN_SPEEDUP` times faster.
The flags decide where they are known because the micro-benchmark is noisy on a shared machine: 1.02–2.14× in
six runs on this project's idle 2-core AMD EPYC, where a whole training run was 1.2× faster in bf16 with 2
threads (399 vs 325 images/s) and a training step 1.35–1.49× faster with 1 thread. `$RDL_CPU_BF16=1/0` forces it
on (where oneDNN supports it) or off. Measured: docs/benchmarks.md, "bf16 autocast on the CPU" and "Digits in
five minutes".

Thread count: on CPU torch's intra-op thread count is process-wide. `configure_cpu_threads()` sets it once
per process to the usable cores minus one (at least 1), or to $RDL_TORCH_THREADS; later calls leave it
alone. `ThreadPolicy` is for a training process of its own: it uses the second core while the other
processes leave one free and backs off to one thread when they do not (`choose_threads`), re-deciding every
`interval_s` seconds from the count of runnable tasks. Two OpenMP threads with a busy partner core are up to
9x slower than one (a thread waits for its descheduled partner), so the policy errs on the side of one
thread. Set OMP_WAIT_POLICY=PASSIVE before torch is imported in such a process (idle OpenMP threads then
sleep instead of spinning). Measured: docs/benchmarks.md, "CPU threads: when the second core helps".
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass

import torch

DEVICES = ("auto", "cpu", "cuda")
THREADS_ENV = "RDL_TORCH_THREADS"
BF16_ENV = "RDL_CPU_BF16"
BF16_MIN_SPEEDUP = 1.15  # bf16 must beat fp32 by this factor in the micro-benchmark to be used on the CPU
BF16_MIN_CAPABILITY = (8, 0)  # CUDA compute capability from which bf16 runs natively (Ampere and newer)
PROBE_TIMEOUT_S = 60.0  # the CUDA probe's child interpreter (import torch + CUDA init) must answer within this
NO_CUDA = "device='cuda' is not available on this machine (no CUDA GPU found); use 'auto' or 'cpu'"


def _check_device_name(name) -> str:
    if name not in DEVICES:
        raise ValueError(f"device={name!r} is not allowed; choose one of {', '.join(DEVICES)}")
    return name


def resolve_device(name: str) -> torch.device:
    """"auto" -> CUDA when available, else CPU; "cuda" without a GPU is an error. Asks torch, which initialises
    CUDA: for the processes that compute (workers, command line), never the web server (use `job_devices`)."""
    _check_device_name(name)
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError(NO_CUDA)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


# -------------------------------------------------------------------- GPUs, seen from the web server
@dataclass(frozen=True)
class GpuInfo:
    """One CUDA device as the probe saw it (memory in bytes; free = when the probe ran)."""

    index: int
    name: str
    capability: tuple[int, int]
    total_bytes: int
    free_bytes: int

    @property
    def native_bf16(self) -> bool:
        return self.capability >= BF16_MIN_CAPABILITY


# What the child interpreter runs: one JSON line, a list of the GPUs torch can use in this environment.
PROBE = """
import json, torch
gpus = []
if torch.cuda.is_available():
    for i in range(torch.cuda.device_count()):
        free, total = torch.cuda.mem_get_info(i)
        gpus.append({"index": i, "name": torch.cuda.get_device_name(i),
                     "capability": list(torch.cuda.get_device_capability(i)), "total_bytes": total, "free_bytes": free})
print(json.dumps(gpus))
"""


def parse_inventory(text: str) -> tuple[GpuInfo, ...]:
    """The probe's JSON line as GpuInfo records; ValueError (one line) for anything else."""
    try:
        items = json.loads(text)
        gpus = tuple(GpuInfo(index=item["index"], name=item["name"], capability=tuple(item["capability"]),
                             total_bytes=item["total_bytes"], free_bytes=item["free_bytes"]) for item in items)
    except (json.JSONDecodeError, TypeError, KeyError) as error:
        raise ValueError(f"the CUDA probe printed {text[:200]!r}, not a list of GPUs ({error})") from None
    for gpu in gpus:
        numbers = (gpu.index, *gpu.capability, gpu.total_bytes, gpu.free_bytes)
        if (not isinstance(gpu.name, str) or len(gpu.capability) != 2
                or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in numbers)):
            raise ValueError(f"the CUDA probe printed a malformed GPU entry: {gpu!r}")
    return gpus


def probe_cuda(run=subprocess.run, timeout: float = PROBE_TIMEOUT_S) -> tuple[GpuInfo, ...]:
    """The GPUs a training worker of this environment would see, learned in a child interpreter (`PROBE`) so
    that this process never initialises CUDA. A torch built without CUDA answers () at once; a probe that fails,
    times out or prints nonsense counts as no GPU and says why on stderr (the server log)."""
    if not torch.backends.cuda.is_built():
        return ()
    try:
        done = run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=timeout, check=False)
        if done.returncode != 0:
            raise ValueError(f"exit code {done.returncode}: {(done.stderr or '').strip()[-300:]}")
        lines = (done.stdout or "").strip().splitlines()
        return parse_inventory(lines[-1] if lines else "")
    except (OSError, subprocess.SubprocessError, ValueError) as error:
        print(f"core.runtime: no GPU used: the CUDA probe failed ({type(error).__name__}: {error})", file=sys.stderr)
        return ()


_inventory: tuple[GpuInfo, ...] | None = None
_inventory_lock = threading.Lock()


def cuda_inventory() -> tuple[GpuInfo, ...]:
    """The GPUs of this machine (`probe_cuda`), learned once per process, without initialising CUDA here: what the
    web server asks (sidebar, recipes, memory check, job routing). () without a usable GPU."""
    global _inventory
    with _inventory_lock:
        if _inventory is None:
            _inventory = probe_cuda()
        return _inventory


def job_devices(name: str) -> tuple[str, ...]:
    """The device types a training job of TrainConfig device `name` may train on, preferred first, as the web server
    sees the machine (`cuda_inventory`): "auto" -> ("cuda", "cpu") with a GPU, ("cpu",) without; "cpu" and "cuda"
    -> themselves (a "cuda" job on a machine without a GPU fails in its worker, with NO_CUDA)."""
    if _check_device_name(name) != "auto":
        return (name,)
    return ("cuda", "cpu") if cuda_inventory() else ("cpu",)


# ------------------------------------------------------------------------------------- bf16 autocast
def decide_cpu_bf16(env_value: str | None, onednn_bf16: bool, native_bf16: bool | None, measure) -> bool:
    """Whether CPU autocast should use bf16. env_value: $RDL_CPU_BF16 ("1"/"0", None = decide here);
    onednn_bf16: oneDNN has bf16 kernels here; native_bf16: the CPU executes bf16 itself (AVX512_BF16 or AMX
    flags; None where the flags cannot be read); measure: a callable returning the fp32/bf16 time ratio, called
    only when the flags are unknown. Without oneDNN bf16 support the answer is False even when forced."""
    if env_value is not None and env_value.strip() not in ("", "0", "1"):
        raise ValueError(f"{BF16_ENV}={env_value!r} is not allowed; expected 0, 1 or unset")
    if not onednn_bf16:
        return False
    if env_value is not None and env_value.strip() in ("0", "1"):
        return env_value.strip() == "1"
    if native_bf16 is not None:
        return native_bf16
    return measure() >= BF16_MIN_SPEEDUP


def native_cpu_bf16(cpuinfo: str | None = None) -> bool | None:
    """True when the CPU flags include avx512_bf16 or amx_bf16 (x86) or bf16 (ARM): bf16 in hardware; False when
    the flags are listed without them (oneDNN would emulate bf16, which can be slower than fp32), None when
    there is no /proc/cpuinfo to read (macOS, Windows). `cpuinfo`: the file's text, for tests."""
    if cpuinfo is None:
        try:
            with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as file:
                cpuinfo = file.read(1_000_000)
        except OSError:
            return None
    flags = set()
    for line in cpuinfo.splitlines():
        if line.startswith(("flags", "Features")):
            flags.update(line.split(":", 1)[-1].split())
    if not flags:
        return None
    return bool(flags & {"avx512_bf16", "amx_bf16", "bf16"})


def measure_cpu_bf16_speedup(repeats: int = 10) -> float:
    """fp32 time / bf16-autocast time of one convolution forward + backward at the size of the tiny UNet's first
    level with a training batch (64 × 32 channels × 28 × 28: the UNet's dominant cost), with the current thread
    count. Best of `repeats` for each, alternating; about 0.5 s on a free core. A smaller batch misleads: with
    2 threads, batch 16 measured 1.12× on this project's CPU, where a whole training run with bf16 is 1.2–1.4×
    faster (docs/benchmarks.md, "Digits in five minutes")."""
    generator = torch.Generator().manual_seed(0)
    conv = torch.nn.Conv2d(32, 32, 3, padding=1)
    x = torch.randn(64, 32, 28, 28, generator=generator)

    def run(enabled: bool) -> float:
        start = time.perf_counter()
        with torch.enable_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=enabled):
            out = conv(x)
            loss = out.float().square().mean()
        loss.backward()
        return time.perf_counter() - start

    run(False), run(True)  # warm-up: oneDNN builds its kernels on the first call
    fp32, bf16 = math.inf, math.inf
    for _ in range(repeats):
        fp32 = min(fp32, run(False))
        bf16 = min(bf16, run(True))
    return fp32 / bf16


def cuda_native_bf16(device: torch.device | str) -> bool:
    """Whether this CUDA device computes bf16 natively: compute capability >= BF16_MIN_CAPABILITY of THIS device
    (its index; the current device for a bare "cuda"), not torch.cuda.is_bf16_supported(), which counts emulation."""
    device = torch.device(device)
    index = torch.cuda.current_device() if device.index is None else device.index
    return tuple(torch.cuda.get_device_capability(index)) >= BF16_MIN_CAPABILITY


@functools.cache
def cpu_bf16_supported() -> bool:
    """bf16 autocast is available and faster on this CPU (see the module docstring); decided once per process."""
    return decide_cpu_bf16(os.environ.get(BF16_ENV), bool(torch.ops.mkldnn._is_mkldnn_bf16_supported()),
                           native_cpu_bf16(), measure_cpu_bf16_speedup)


def autocast_dtype(device: torch.device | str) -> torch.dtype | None:
    """torch.bfloat16 where bf16 autocast is supported and worthwhile on `device`, else None (plain fp32)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.bfloat16 if cuda_native_bf16(device) else None
    if device.type == "cpu":
        return torch.bfloat16 if cpu_bf16_supported() else None
    return None


def autocast(device: torch.device | str, enabled: bool = True):
    """A context manager: bf16 autocast on `device` when `autocast_dtype(device)` says so (and `enabled`),
    otherwise a no-op. Wrap the model's forward pass (training loss, sampling loops) in it."""
    device = torch.device(device)
    dtype = autocast_dtype(device) if enabled else None
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


# -------------------------------------------------------------------------------------- CPU threads
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


def choose_threads(usable_cores: float, other_runnable: float, max_threads: int = 2) -> int:
    """Threads for a CPU training process: one per core that the other runnable tasks leave free, at least 1,
    at most `max_threads`. other_runnable: the mean number of OTHER tasks ready to run. A core counts as free
    when less than a quarter of it is wanted by others (a half-busy partner core already costs more than
    it gives; see docs/benchmarks.md)."""
    free = math.floor(usable_cores - other_runnable + 0.25)
    return int(max(1, min(max_threads, free)))


def runnable_tasks(samples: int = 10, interval_s: float = 0.01, path: str = "/proc/loadavg") -> float | None:
    """Mean number of runnable tasks on the machine (the 4th field of /proc/loadavg, "running/total"),
    over `samples` readings `interval_s` apart, minus the reading thread itself. None where unavailable."""
    counts = []
    for i in range(samples):
        try:
            with open(path) as f:
                counts.append(int(f.read().split()[3].split("/")[0]))
        except (OSError, ValueError, IndexError):
            return None
        if i + 1 < samples:
            time.sleep(interval_s)
    return max(0.0, sum(counts) / len(counts) - 1.0)


class ThreadPolicy:
    """Re-decides torch's thread count at most every `interval_s` seconds from the machine's load.

    Call `update()` between training steps (never inside one), from the thread that runs the steps (OpenMP keeps
    the count per calling thread): it returns the thread count in force. Only for a process that runs one job:
    the training worker passes one to its Trainer (`Trainer(thread_policy=...)`, core/training/worker.py), which
    calls update() before every step. $RDL_TORCH_THREADS fixes the count instead.
    `probe` returns the other runnable tasks (default `runnable_tasks`); `clock` the time in seconds."""

    def __init__(self, interval_s: float = 10.0, max_threads: int = 2, probe=runnable_tasks, clock=time.monotonic,
                 usable_cores: float | None = None, set_threads=torch.set_num_threads):
        self.interval_s, self.max_threads, self.probe, self.clock = interval_s, max_threads, probe, clock
        self.usable_cores = usable_cpu_cores() if usable_cores is None else usable_cores
        self.set_threads = set_threads
        self.threads: int | None = None
        self._next_check = -math.inf
        self.fixed = pinned_threads()

    def update(self) -> int:
        now = self.clock()
        if now < self._next_check and self.threads is not None:
            return self.threads
        self._next_check = now + self.interval_s
        if self.fixed is not None:
            wanted = self.fixed
        else:
            others = self.probe()
            wanted = 1 if others is None else choose_threads(self.usable_cores, others, self.max_threads)
        if wanted != self.threads:
            self.set_threads(wanted)
            self.threads = wanted
        return wanted


def pinned_threads() -> int | None:
    """$RDL_TORCH_THREADS as a thread count, None when it is unset or empty; a ValueError with one line when it is
    not an integer in 1..1024 (a server setting that is wrong is said, not silently ignored)."""
    raw = os.environ.get(THREADS_ENV)
    if raw is None or not raw.strip():
        return None
    text = raw.strip()
    if not text.isdigit() or not 1 <= int(text) <= 1024:
        raise ValueError(f"{THREADS_ENV}={raw!r} is not allowed; expected an integer in 1..1024, or unset")
    return int(text)


_threads_configured = False
_threads_lock = threading.Lock()


def configure_cpu_threads(leave_core_free: bool = True) -> int:
    """Set torch's process-wide CPU thread count once (see the module docstring); returns the count.
    leave_core_free=False (a command-line run alone on its machine) uses every usable core."""
    global _threads_configured
    with _threads_lock:
        if not _threads_configured:
            threads = pinned_threads()
            if threads is None:  # one core stays free for the web server and the UI, unless told otherwise
                threads = math.floor(usable_cpu_cores()) - (1 if leave_core_free else 0)
            torch.set_num_threads(max(1, threads))
            _threads_configured = True
        return torch.get_num_threads()


def process_age_seconds() -> float | None:
    """Seconds since this process started (Linux: /proc/self/stat's start time against the boot clock), so a time
    budget can count the interpreter's and torch's start-up too; None where that cannot be read."""
    try:
        with open("/proc/self/stat") as file:
            start_ticks = int(file.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime") as file:
            uptime = float(file.read().split()[0])
        return max(0.0, uptime - start_ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return None


def describe_device(device: torch.device, autocast: bool = True) -> str:
    """"cuda: <name> (bf16 autocast)" / "cuda: <name> (fp32)" or "cpu (bf16 autocast, N threads)"; pass
    autocast=False for a run without mixed precision."""
    if device.type == "cuda":
        precision = "bf16 autocast" if autocast and autocast_dtype(device) is not None else "fp32"
        return f"cuda: {torch.cuda.get_device_name(device)} ({precision})"
    bf16 = "bf16 autocast, " if autocast and device.type == "cpu" and cpu_bf16_supported() else ""
    return f"cpu ({bf16}{torch.get_num_threads()} threads)"
