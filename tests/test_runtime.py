"""core.runtime: the bf16 autocast decision, the thread policy's decision function (fed with injected load figures),
the cgroup quota reader and the load probe (fed with fake /proc files)."""

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
