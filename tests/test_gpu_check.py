"""bench/gpu_check.py end to end in its CPU mode (--device cpu --quick): the same code path the CUDA run takes,
minus the GPU, including the app's own training workers for the concurrency rows. The CUDA numbers themselves need
a GPU (docs/benchmarks.md says when they were last measured)."""

import json

import pytest
import torch

from bench import gpu_check
from core.training import worker


def test_gpu_check_quick_on_cpu(tmp_path, monkeypatch):
    launches = []
    real_launch = worker.ProcessLauncher.launch

    def spy(self, folder, resume, total_steps, max_seconds, threads, device=None):
        launches.append((resume, total_steps, max_seconds, threads, device))
        return real_launch(self, folder, resume, total_steps, max_seconds, threads, device=device)

    monkeypatch.setattr(worker.ProcessLauncher, "launch", spy)
    out = tmp_path / "gpu_check.json"
    document = gpu_check.main(["--device", "cpu", "--quick", "--out-json", str(out)])
    assert document["ok"], document
    assert document["agreement"]["same_device"] and document["agreement"]["fp32_max_abs_diff"] == 0.0
    training = document["training"]
    assert (training["steps"], training["warmup_steps"]) == (30, 3)
    assert training["loss_last_fifth"] < 0.7 * training["loss_first_fifth"]
    assert document["sampling"]["finite"] and document["sampling"]["n"] == 8
    rates = document["app_step"]["images_per_second"]
    assert set(rates) == {"train_step", "queue_step"} and min(rates.values()) > 0
    assert not document["app_step"]["device_guard"]
    rows = document["concurrency"]["rows"]
    assert [row["jobs"] for row in rows] == [1, 2] and all(row["failed"] == 0 for row in rows)
    assert [len(row["per_job_images_per_second"]) for row in rows] == [1, 2]
    assert all(row["aggregate_images_per_second"] > 0 and row["memory_mb_per_job"] > 50 for row in rows)
    # the app's worker, started by the registry's launcher: 1 + 2 fresh jobs on the CPU, each with its time budget
    assert launches == [(False, None, 3.0, 1, "cpu")] * 3
    suggested = document["concurrency"]["suggested_jobs"]
    assert suggested in (1, 2) and document["concurrency"]["suggested_setting"] == f"RDL_CPU_JOBS={suggested}"
    assert json.loads(out.read_text())["device"] == "cpu"


def test_gpu_check_refuses_cuda_without_a_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="device='cuda' is not available"):
        gpu_check.main(["--device", "cuda", "--quick"])


def test_training_fails_the_check_when_the_loss_does_not_fall(tmp_path):
    document = gpu_check.main(["--device", "cpu", "--quick", "--lr", "1e-9", "--max-jobs", "0"])
    assert not document["training"]["ok"] and not document["ok"]
    assert document["concurrency"] == {"rows": [], "suggested_jobs": None, "suggested_setting": None}


@pytest.mark.parametrize("aggregates, failed_at, expected", [
    ([100.0, 190.0, 200.0, 400.0], None, 2),  # 4 jobs add only 5%: the knee is 2, whatever comes after
    ([100.0, 105.0], None, 1),  # a second job adds nothing
    ([100.0, 180.0, 350.0], 4, 2),  # 4 jobs: one ran out of memory
    ([100.0, 180.0, 350.0, 700.0, 1400.0], None, 16),
])
def test_the_suggested_gpu_job_count_is_the_knee(monkeypatch, aggregates, failed_at, expected):
    def fake_rows(args, k, device):
        index = k.bit_length() - 1
        return {"jobs": k, "failed": int(k == failed_at), "aggregate_images_per_second": aggregates[index]}

    monkeypatch.setattr(gpu_check, "run_workers", fake_rows)
    args = gpu_check.parse_args(["--max-jobs", str(2 ** (len(aggregates) - 1))])
    result = gpu_check.concurrency(args, torch.device("cuda"))
    assert result["suggested_jobs"] == expected and result["suggested_setting"] == f"RDL_GPU_JOBS={expected}"
    assert [row["jobs"] for row in result["rows"]][-1] == (failed_at or 2 ** (len(aggregates) - 1))


def test_the_window_rate_reads_the_workers_own_clock():
    # (poll time, step, training seconds): 40 steps of batch 16 in 2 s of training between polls 1.0 and 3.0
    samples = [(0.5, 2, 0.2), (1.0, 10, 0.5), (2.0, 30, 1.5), (3.0, 50, 2.5), (4.0, 60, 3.0)]
    assert gpu_check.window_rate(samples, 1.0, 3.0, 16) == 40 * 16 / 2.0
    assert gpu_check.window_rate(samples, 1.5, 2.5, 16) is None  # one reading inside: no rate


@pytest.mark.parametrize("argv, words", [(["--steps", "0"], "--steps must be at least 1"),
                                         (["--job-seconds", "0"], "--job-seconds > 0")])
def test_bad_arguments_are_one_line(argv, words, capsys):
    with pytest.raises(SystemExit):
        gpu_check.parse_args(argv)
    assert words in capsys.readouterr().err


def test_it_starts_as_documented_from_any_folder():
    """README and docs/benchmarks.md run it as `python bench/gpu_check.py` (in the GPU image too): from any folder,
    with the project installed."""
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parent.parent / "bench" / "gpu_check.py"
    result = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True, timeout=120, cwd="/")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "RDL_GPU_JOBS" in result.stdout and "--warmup-steps" in result.stdout
