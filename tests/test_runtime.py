"""core.runtime: the bf16 autocast decision (CPU, and CUDA with torch.cuda's queries mocked), the CUDA inventory (its
child interpreter mocked), the thread policy's decision function (fed with injected load figures), the cgroup quota
reader and the load probe (fed with fake /proc files)."""

import subprocess
import sys

import pytest
import torch

from core import runtime
from core.runtime import (
    BF16_MIN_SPEEDUP,
    ThreadPolicy,
    autocast,
    autocast_dtype,
    choose_threads,
    decide_cpu_bf16,
    native_cpu_bf16,
    runnable_tasks,
    usable_cpu_cores,
)


def never(*_):
    raise AssertionError("the micro-benchmark must not run here")


@pytest.mark.parametrize("env, onednn, native, speedup, expected", [
    (None, True, True, 0.5, True),                        # bf16 in hardware: used, no measurement
    (None, True, False, 5.0, False),                      # flags listed without bf16 (emulated): not used
    (None, True, None, BF16_MIN_SPEEDUP + 0.5, True),     # flags unknown: measured faster
    (None, True, None, BF16_MIN_SPEEDUP - 0.01, False),   # flags unknown: measured not fast enough
    (None, False, True, 5.0, False),                      # no oneDNN bf16 kernels: never
    ("1", False, True, 5.0, False),                       # even when forced
])
def test_bf16_decision(env, onednn, native, speedup, expected):
    calls = []

    def measure():
        calls.append(1)
        return speedup

    assert decide_cpu_bf16(env, onednn, native, measure) is expected
    assert len(calls) == (1 if env is None and onednn and native is None else 0)  # measured only when it decides


@pytest.mark.parametrize("env, expected", [("1", True), ("0", False), (" 1 ", True)])
def test_bf16_env_override_skips_the_measurement(env, expected):
    assert decide_cpu_bf16(env, True, None, never) is expected
    assert decide_cpu_bf16(env, True, not expected, never) is expected  # and wins over the flags


@pytest.mark.parametrize("cpuinfo, expected", [
    ("processor\t: 0\nflags\t\t: fpu sse avx512f avx512_bf16 avx512_vnni\n", True),
    ("processor\t: 0\nflags\t\t: fpu sse avx512f amx_tile amx_bf16\n", True),
    ("processor\t: 0\nflags\t\t: fpu sse avx2 avx512f avx512bw\n", False),   # AVX-512 without bf16: emulated
    ("processor\t: 0\nFeatures\t: fp asimd bf16 i8mm\n", True),              # an ARMv8.6 core
    ("processor\t: 0\nFeatures\t: fp asimd evtstrm\n", False),               # an older ARM core
    ("processor\t: 0\nmodel name\t: something\n", None),                     # no flags line at all
])
def test_native_bf16_is_read_from_the_cpu_flags(cpuinfo, expected):
    assert native_cpu_bf16(cpuinfo) is expected


def test_bf16_env_bad_value_is_a_clear_error():
    with pytest.raises(ValueError, match="RDL_CPU_BF16='yes' is not allowed"):
        decide_cpu_bf16("yes", True, True, never)


def test_autocast_follows_the_decision(monkeypatch):
    layer = torch.nn.Linear(4, 4)
    x = torch.ones(2, 4)
    monkeypatch.setattr(runtime, "cpu_bf16_supported", lambda: True)
    assert autocast_dtype("cpu") is torch.bfloat16
    with autocast("cpu"):
        assert layer(x).dtype == torch.bfloat16
    with autocast("cpu", enabled=False):
        assert layer(x).dtype == torch.float32
    monkeypatch.setattr(runtime, "cpu_bf16_supported", lambda: False)
    assert autocast_dtype(torch.device("cpu")) is None
    with autocast("cpu"):
        assert layer(x).dtype == torch.float32


def test_micro_benchmark_returns_a_positive_ratio():
    ratio = runtime.measure_cpu_bf16_speedup(repeats=1)
    assert 0 < ratio < 100
    with torch.no_grad():  # the first autocast() may come from inside a sampling loop
        assert runtime.measure_cpu_bf16_speedup(repeats=1) > 0


@pytest.mark.parametrize("cores, others, expected", [
    (2, 0.0, 2),    # idle 2-core machine: use both
    (2, 0.2, 2),    # a little background work
    (2, 0.3, 1),    # the other core is partly wanted: back off
    (2, 1.0, 1),    # another process keeps one core busy
    (2, 5.0, 1),    # overloaded: never fewer than 1
    (1, 0.0, 1),    # one core
    (1.5, 0.0, 1),  # cgroup quota of 1.5 cores
    (8, 0.0, 2),    # capped at max_threads
    (8, 3.0, 2),
])
def test_choose_threads(cores, others, expected):
    assert choose_threads(cores, others) == expected


def test_choose_threads_more_than_two():
    assert choose_threads(8, 3.0, max_threads=8) == 5


def test_thread_policy_rechecks_only_after_the_interval(monkeypatch):
    monkeypatch.delenv(runtime.THREADS_ENV, raising=False)
    now, load, set_calls = [0.0], [0.0], []
    policy = ThreadPolicy(interval_s=10, probe=lambda: load[0], clock=lambda: now[0], usable_cores=2,
                          set_threads=set_calls.append)
    assert policy.update() == 2
    load[0] = 1.0  # another process starts
    now[0] = 5.0
    assert policy.update() == 2  # not re-checked yet
    now[0] = 10.0
    assert policy.update() == 1
    now[0] = 25.0
    assert policy.update() == 1
    assert set_calls == [2, 1]  # torch.set_num_threads only when the count changes


def test_thread_policy_env_and_missing_probe(monkeypatch):
    monkeypatch.setenv(runtime.THREADS_ENV, "3")
    calls = []
    assert ThreadPolicy(probe=never, usable_cores=2, set_threads=calls.append).update() == 3
    monkeypatch.delenv(runtime.THREADS_ENV)
    assert ThreadPolicy(probe=lambda: None, usable_cores=2, set_threads=calls.append).update() == 1
    assert calls == [3, 1]


def test_runnable_tasks_reads_the_running_count(tmp_path):
    loadavg = tmp_path / "loadavg"
    loadavg.write_text("0.50 0.40 0.30 3/250 12345\n")
    assert runnable_tasks(samples=3, interval_s=0, path=str(loadavg)) == 2.0  # 3 running minus the reader itself
    loadavg.write_text("garbage\n")
    assert runnable_tasks(samples=1, path=str(loadavg)) is None
    assert runnable_tasks(samples=1, path=str(tmp_path / "missing")) is None


@pytest.mark.parametrize("files, expected_quota", [
    ({"cpu.max": "150000 100000\n"}, 1.5),
    ({"cpu.max": "max 100000\n"}, None),
    ({"cpu/cpu.cfs_quota_us": "50000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 0.5),
    ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, None),
    ({}, None),
])
def test_usable_cores_respects_the_cgroup_quota(tmp_path, files, expected_quota):
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    affinity = usable_cpu_cores(str(tmp_path / "nowhere"))
    expected = affinity if expected_quota is None else min(affinity, expected_quota)
    assert usable_cpu_cores(str(tmp_path)) == expected


def test_describe_device_names_bf16_only_when_used(monkeypatch):
    monkeypatch.setattr(runtime, "cpu_bf16_supported", lambda: True)
    threads = torch.get_num_threads()
    assert runtime.describe_device(torch.device("cpu")) == f"cpu (bf16 autocast, {threads} threads)"
    assert runtime.describe_device(torch.device("cpu"), autocast=False) == f"cpu ({threads} threads)"
    monkeypatch.setattr(runtime, "cpu_bf16_supported", lambda: False)
    assert runtime.describe_device(torch.device("cpu")) == f"cpu ({threads} threads)"


@pytest.mark.parametrize("raw, expected", [(None, None), ("", None), ("  ", None), ("3", 3), (" 2 ", 2), ("1024", 1024)])
def test_pinned_threads_reads_the_setting(monkeypatch, raw, expected):
    if raw is None:
        monkeypatch.delenv(runtime.THREADS_ENV, raising=False)
    else:
        monkeypatch.setenv(runtime.THREADS_ENV, raw)
    assert runtime.pinned_threads() == expected


@pytest.mark.parametrize("raw", ["0", "-1", "two", "1.5", "1025", "1e3"])
def test_a_bad_thread_setting_is_refused_in_one_line_not_ignored(monkeypatch, raw):
    monkeypatch.setenv(runtime.THREADS_ENV, raw)
    with pytest.raises(ValueError, match=r"RDL_TORCH_THREADS=.* is not allowed; expected an integer in 1\.\.1024"):
        runtime.pinned_threads()
    with pytest.raises(ValueError, match="RDL_TORCH_THREADS"):
        ThreadPolicy(probe=never, usable_cores=2, set_threads=never)


# ------------------------------------------------------------------------------ CUDA, with mocked queries
def fake_capabilities(monkeypatch, capabilities: dict, current: int = 0) -> list:
    """torch.cuda's capability and current-device queries answer from `capabilities` (index -> (major, minor));
    returns the list of indices asked for. is_bf16_supported says True everywhere (it counts emulation)."""
    asked = []
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda index: asked.append(index) or capabilities[index])
    monkeypatch.setattr(torch.cuda, "current_device", lambda: current)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: {0: "Tesla T4", 1: "NVIDIA A100"}[
        current if device is None or torch.device(device).index is None else torch.device(device).index])
    return asked


def test_cuda_bf16_only_from_compute_capability_8_and_per_device(monkeypatch):
    asked = fake_capabilities(monkeypatch, {0: (7, 5), 1: (8, 0)}, current=1)
    assert autocast_dtype("cuda:0") is None  # a T4 (sm 7.5): emulated bf16, although is_bf16_supported() says True
    assert autocast_dtype(torch.device("cuda", 1)) is torch.bfloat16  # an A100 (sm 8.0) in the same machine
    assert autocast_dtype("cuda") is torch.bfloat16  # a bare "cuda" is the current device, here 1
    assert asked == [0, 1, 1]  # the device's own index every time, never None
    fake_capabilities(monkeypatch, {0: (7, 0), 1: (9, 0)}, current=0)
    assert autocast_dtype("cuda") is None and runtime.cuda_native_bf16("cuda:1")  # V100 current; an H100 beside it


def test_describe_cuda_names_the_precision_it_trains_in(monkeypatch):
    fake_capabilities(monkeypatch, {0: (7, 5), 1: (8, 6)}, current=0)
    assert runtime.describe_device(torch.device("cuda", 0)) == "cuda: Tesla T4 (fp32)"
    assert runtime.describe_device(torch.device("cuda", 1)) == "cuda: NVIDIA A100 (bf16 autocast)"
    assert runtime.describe_device(torch.device("cuda", 1), autocast=False) == "cuda: NVIDIA A100 (fp32)"


GPU_JSON = ('[{"index": 0, "name": "NVIDIA H100 80GB HBM3", "capability": [9, 0], "total_bytes": 85520809984, '
            '"free_bytes": 84929413120}, {"index": 1, "name": "Tesla T4", "capability": [7, 5], '
            '"total_bytes": 15828320256, "free_bytes": 15655829504}]')


def fake_run(stdout="", returncode=0, stderr="", raises=None, calls=None):
    def run(command, **options):
        if calls is not None:
            calls.append((command, options))
        if raises is not None:
            raise raises
        return subprocess.CompletedProcess(command, returncode, stdout, stderr)
    return run


def test_the_cuda_probe_reads_the_child_interpreters_answer(monkeypatch):
    monkeypatch.setattr(torch.backends.cuda, "is_built", lambda: True)
    calls = []
    gpus = runtime.probe_cuda(run=fake_run("some warning\n" + GPU_JSON + "\n", calls=calls))
    assert gpus == (runtime.GpuInfo(0, "NVIDIA H100 80GB HBM3", (9, 0), 85520809984, 84929413120),
                    runtime.GpuInfo(1, "Tesla T4", (7, 5), 15828320256, 15655829504))
    assert [gpu.native_bf16 for gpu in gpus] == [True, False]
    (command, options), = calls
    assert command == [sys.executable, "-c", runtime.PROBE] and options["timeout"] == runtime.PROBE_TIMEOUT_S


@pytest.mark.parametrize("run, why", [
    (fake_run(returncode=1, stderr="Traceback ...\nRuntimeError: CUDA driver too old"), "CUDA driver too old"),
    (fake_run(raises=subprocess.TimeoutExpired(["python"], 60.0)), "TimeoutExpired"),
    (fake_run(raises=FileNotFoundError("no python")), "no python"),
    (fake_run("not json"), "not a list of GPUs"),
    (fake_run('[{"index": 0, "name": "x", "capability": [8], "total_bytes": 1, "free_bytes": 1}]'), "malformed"),
    (fake_run('[{"index": 0, "name": "x", "capability": [8, 0], "total_bytes": -1, "free_bytes": 1}]'), "malformed"),
    (fake_run(""), "not a list of GPUs"),
])
def test_a_failing_cuda_probe_means_no_gpu_and_says_why(monkeypatch, capsys, run, why):
    monkeypatch.setattr(torch.backends.cuda, "is_built", lambda: True)
    assert runtime.probe_cuda(run=run) == ()
    assert why in capsys.readouterr().err


def test_a_torch_without_cuda_is_not_probed(monkeypatch):
    monkeypatch.setattr(torch.backends.cuda, "is_built", lambda: False)
    assert runtime.probe_cuda(run=fake_run(raises=AssertionError("probed"))) == ()


def test_the_probe_program_runs_and_prints_what_parse_reads():
    done = subprocess.run([sys.executable, "-c", runtime.PROBE], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    expected = runtime.probe_cuda() if torch.backends.cuda.is_built() else ()
    assert runtime.parse_inventory(done.stdout.strip().splitlines()[-1]) == expected  # () on a CPU build of torch


def test_the_inventory_is_learned_once_per_process_and_routes_auto(monkeypatch):
    probes = []
    monkeypatch.setattr(runtime, "_inventory", None)
    monkeypatch.setattr(runtime, "probe_cuda", lambda: probes.append(1) or runtime.parse_inventory(GPU_JSON))
    assert runtime.cuda_inventory()[0].name == "NVIDIA H100 80GB HBM3"
    assert runtime.job_devices("auto") == ("cuda", "cpu") and runtime.job_devices("cpu") == ("cpu",)
    assert runtime.job_devices("cuda") == ("cuda",) and len(probes) == 1  # asked once, whatever is called
    monkeypatch.setattr(runtime, "_inventory", ())
    assert runtime.job_devices("auto") == ("cpu",) and runtime.job_devices("cuda") == ("cuda",)
    with pytest.raises(ValueError, match="device='gpu' is not allowed"):
        runtime.job_devices("gpu")
