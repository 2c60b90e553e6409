"""Shared helpers of the bench scripts: hardware description, timers, JSON and markdown output.

docs/benchmarks.md holds one marked section per script, between the lines
`<!-- BEGIN <name> -->` and `<!-- END <name> -->`; `update_markdown_section` replaces only that part.
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import torch

REPO_ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS_MD = REPO_ROOT / "docs" / "benchmarks.md"


def cpu_model() -> str:
    """The CPU's "model name" from /proc/cpuinfo (Linux), else platform.processor()."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


# A CPU class, emulated on a newer CPU by capping the instruction sets of torch's three kernel libraries (ATen's
# own kernels, oneDNN's convolutions, MKL's matrix products). "avx2" is the class of most laptops and many cloud
# machines: AVX2 + FMA, no AVX-512, no bf16 (oneDNN then reports no bf16 support, so autocast stays off). On this
# project's Sapphire Rapids it gives a tiny-UNet batch-64 training step of 548-564 ms on one core, against the
# 511-537 ms measured on a real AMD Zen 3 (issue 17): within 10 % of the real class.
CPU_CLASSES = {
    "native": {},
    "avx2": {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"},
}


def cpu_class_env(name: str) -> dict:
    """The environment variables that emulate CPU class `name` in a child process (see CPU_CLASSES)."""
    if name not in CPU_CLASSES:
        raise ValueError(f"CPU class {name!r} is not known; choose one of {', '.join(CPU_CLASSES)}")
    return dict(CPU_CLASSES[name])


def cpu_flags_summary() -> str:
    """The CPU's vector and bf16 flags that decide its class (from /proc/cpuinfo), e.g. "avx2 avx512f avx512_bf16"."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                flags = set(line.split(":", 1)[1].split())
                wanted = ("avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16", "bf16")
                return " ".join(flag for flag in wanted if flag in flags) or "none of avx2/avx512/bf16"
    except OSError:
        pass
    return "unknown"


def load_average() -> list[float] | None:
    """The 1/5/15-minute load averages when the run started: above the core count means shared cores."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def hardware() -> dict:
    """Where the numbers were measured: CPU model, core count, torch threads and version, GPU (if used),
    and the load average at the start (other processes competing for the cores)."""
    return {
        "cpu": cpu_model(),
        "cpu_cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch_version": torch.__version__,
        "python": platform.python_version(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "load_average_at_start": load_average(),
    }


def set_threads(threads) -> None:
    """torch.set_num_threads(threads) unless threads is None (then torch's choice stays)."""
    if threads is None:
        return
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads must be a positive integer or None, got {threads!r}")
    torch.set_num_threads(threads)


def now_utc() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def command_line(script: str, argv) -> str:
    """The command as a user would type it from the repository root."""
    args = sys.argv[1:] if argv is None else list(argv)
    return " ".join(["python", script, *(shlex.quote(str(a)) for a in args)])


class Timer:
    """Wall-clock and process-CPU seconds of a `with` block. The machine's cores may be shared with other
    work, so wall time alone can mislead: CPU seconds count only this process (all its threads)."""

    def __enter__(self):
        self._wall, self._cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self._wall
        self.cpu = time.process_time() - self._cpu
        return False


def write_json(path, document: dict) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2, allow_nan=False) + "\n")


def format_value(value) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def markdown_table(headers, rows) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(format_value(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def run_header(document: dict) -> str:
    """Markdown lines naming the command, date and hardware of one run."""
    hw = document["hardware"]
    gpu = hw["gpu"] or "none used (CPU only)"
    return (f"Command: `{document['command']}`  \n"
            f"Date: {document['date']}  \n"
            f"Hardware: {hw['cpu']}, {hw['cpu_cores']} cores, torch {hw['torch_version']} "
            f"({hw['torch_threads']} threads), GPU: {gpu}; load average at start "
            f"{hw['load_average_at_start']} (1/5/15 min; above {hw['cpu_cores']} = cores shared with other work)")


def update_markdown_section(path, name: str, content: str) -> None:
    """Replace the text between `<!-- BEGIN name -->` and `<!-- END name -->` in `path` (the section is
    appended if the markers are missing; the file is created if needed)."""
    path = Path(path)
    begin, end = f"<!-- BEGIN {name} -->", f"<!-- END {name} -->"
    block = f"{begin}\n{content.strip()}\n{end}"
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    if begin in text and end in text and text.index(begin) < text.index(end):
        text = text[: text.index(begin)] + block + text[text.index(end) + len(end):]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
