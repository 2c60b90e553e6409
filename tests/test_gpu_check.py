"""bench/gpu_check.py end to end in its CPU mode (--device cpu --quick): the same code path the CUDA run takes,
minus the GPU. The CUDA numbers themselves need a GPU (docs/benchmarks.md says when they were last measured)."""

import json

import pytest

from bench import gpu_check


def test_gpu_check_quick_on_cpu(tmp_path):
    out = tmp_path / "gpu_check.json"
    document = gpu_check.main(["--device", "cpu", "--quick", "--out-json", str(out)])
    assert document["ok"], document
    assert document["agreement"]["same_device"] and document["agreement"]["fp32_max_abs_diff"] == 0.0
    training = document["training"]
    assert training["steps"] == 30 and training["loss_last_fifth"] < 0.7 * training["loss_first_fifth"]
    assert document["sampling"]["finite"] and document["sampling"]["n"] == 8
    rows = document["concurrency"]["rows"]
    assert [row["jobs"] for row in rows] == [1, 2] and all(row["failed"] == 0 for row in rows)
    assert len(rows[1]["per_job_images_per_second"]) == 2 and rows[1]["aggregate_images_per_second"] > 0
    assert document["concurrency"]["suggested_jobs"] in (1, 2)
    assert json.loads(out.read_text())["device"] == "cpu"


def test_gpu_check_refuses_cuda_without_a_gpu():
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(ValueError, match="device='cuda' is not available"):
        gpu_check.main(["--device", "cuda", "--quick"])


def test_training_fails_the_check_when_the_loss_does_not_fall(tmp_path):
    document = gpu_check.main(["--device", "cpu", "--quick", "--lr", "1e-9", "--max-jobs", "0"])
    assert not document["training"]["ok"] and not document["ok"]
    assert document["concurrency"] == {"rows": [], "suggested_jobs": None}
