"""The bench scripts run end to end in a tiny mode on throwaway checkpoints and write valid JSON/markdown.

Also checks the fast DDIM loop of core.diffusion.samplers.ddim_sample (precomputed coefficients, introduced for
the speed benchmark) against chained public ddim_step calls.
"""

import json
from pathlib import Path

import pytest
import torch

from bench import quality, speed
from bench.report import update_markdown_section
from core import checkpoints
from core.diffusion.gaussian_diffusion import GaussianDiffusion
from core.diffusion.samplers import ddim_sample, ddim_step, timesteps
from core.diffusion.schedules import make_schedule
from core.nets.build import build_model, model_config_for

T_TINY = 10  # short processes keep the test fast; betas up to 0.6 make x_T (nearly) pure noise


def perturbed(model, seed):
    """Random non-zero weights (the UNet's zero-initialised output layer would make it output 0)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.05 * torch.randn(parameter.shape, generator=generator))
    return model


@pytest.fixture(scope="module")
def checkpoint_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("checkpoints")
    schedule = make_schedule("linear", T_TINY, beta_start=0.05, beta_end=0.6)
    for name, kind, shape, size, prediction, variance, dataset in (
        ("mnist_throwaway.safetensors", "image", (1, 28, 28), "tiny", "eps", "fixed_large", "mnist"),
        ("toy_moons_learned.safetensors", "points", (2,), "tiny", "eps", "learned_range", "two_moons"),
        ("toy_eight_v.safetensors", "points", (2,), "tiny", "v", "fixed_small", "eight_gaussians"),
    ):
        diffusion = GaussianDiffusion(schedule, prediction, variance)
        model = perturbed(build_model(model_config_for(kind, shape, size, diffusion.out_channels(shape[0]))), 0)
        checkpoints.save(folder / name, model, diffusion, {"data": {"dataset": dataset, "shape": list(shape)}})
    return folder


def test_quality_bench_end_to_end(checkpoint_dir, tmp_path):
    out_json, out_md = tmp_path / "quality.json", tmp_path / "benchmarks.md"
    out_md.write_text("# Benchmarks\n\nIntro kept.\n\n<!-- BEGIN quality -->\nold table\n<!-- END quality -->\n\nOutro kept.\n")
    document = quality.main(["--checkpoints-dir", str(checkpoint_dir), "--steps", "2,T", "--n-mnist", "4",
                             "--n-toy", "64", "--oracle-points", "32", "--out-json", str(out_json),
                             "--markdown", str(out_md)])
    assert json.loads(out_json.read_text()) == json.loads(json.dumps(document))

    mnist = document["mnist"]
    assert {(r["sampler"], r["steps"]) for r in mnist} == {
        (s, n) for s in ("DDPM σ²=β", "DDPM σ²=β̃", "DDIM η=0", "DDIM η=1") for n in (2, T_TINY)}
    for row in mnist:
        assert row["fd"] >= 0 and 1.0 <= row["inception_score"] <= 10.0 and sum(row["class_histogram"]) == 4
    assert document["mnist_floor"]["n"] == 4

    toy = document["toy"]
    learned = [r for r in toy if r["checkpoint"] == "toy_moons_learned.safetensors" and r["denoiser"] == "network"]
    assert "DDPM σ² learned" in {r["sampler"] for r in learned}
    assert all("learned" not in r["sampler"] for r in toy if r["checkpoint"] == "toy_eight_v.safetensors")
    assert any(r["denoiser"].startswith("oracle (exact mixture)") for r in toy)
    assert any(r["denoiser"].startswith("oracle (empirical: 32 training points)") for r in toy)

    # Every sampler starts from the same x_T with the same noise stream: DDIM with η = 1 over all T steps
    # is DDPM with σ² = β̃ (Song et al. §4.1), so the two rows must agree.
    def pick(rows, sampler):
        return next(r for r in rows if r["sampler"] == sampler and r["steps"] == T_TINY)
    assert pick(mnist, "DDIM η=1")["fd"] == pytest.approx(pick(mnist, "DDPM σ²=β̃")["fd"], rel=1e-3)

    # The exact mixture oracle at T steps is as close to the truth as a second real sample, up to noise;
    # the random network is far off.
    eight = [r for r in toy if r["checkpoint"] == "toy_eight_v.safetensors"]
    floor = next(r for r in eight if r["denoiser"].startswith("real data"))
    oracle = next(r for r in eight if r["denoiser"].startswith("oracle") and r["sampler"] == "DDPM σ²=β̃"
                  and r["steps"] == T_TINY)
    assert oracle["sliced_wasserstein"] < 2 * floor["sliced_wasserstein"] + 0.05

    text = out_md.read_text()
    assert text.count("<!-- BEGIN quality -->") == 1 and "old table" not in text
    assert "Intro kept." in text and "Outro kept." in text
    assert "| checkpoint | model | sampler | steps | FD | IS | conf | wall s |" in text
    assert mnist[0]["model"] == "eps/fixed_large"  # the throwaway checkpoint records no training steps
    assert "AMD" in text or "Hardware:" in text


def test_quality_bench_without_checkpoints_says_so(tmp_path):
    document = quality.main(["--checkpoints-dir", str(tmp_path), "--quick", "--out-json", str(tmp_path / "q.json")])
    assert document["mnist"] == [] and document["toy"] == []
    assert any("no MNIST checkpoints" in note for note in document["notes"])
    json.loads((tmp_path / "q.json").read_text())


def tiny_speed_args(tmp_path, *extra):
    return ["--sizes", "tiny", "--batch-size", "4", "--toy-batch-size", "8", "--warmup-steps", "1",
            "--timed-steps", "1", "--sample-count", "2", "--ddpm-steps", "2", "--ddim-steps", "2",
            "--eval-every", "1", "--eval-samples", "4", "--recognizable-cap-s", "0", "--fd-threshold", "1",
            "--compare-steps", "3", "--compare-batches", "2", "--repeats", "1", "--loop-steps", "10",
            "--checkpoints-dir", str(tmp_path), "--out-json", str(tmp_path / "speed.json"),
            "--markdown", str(tmp_path / "benchmarks.md"), *extra]


def test_speed_bench_end_to_end_without_diffusers(tmp_path):
    document = speed.main(tiny_speed_args(tmp_path, "--skip-diffusers"))
    assert json.loads((tmp_path / "speed.json").read_text()) == json.loads(json.dumps(document))
    assert {(r["dataset"], r["size"]) for r in document["training"]} == {("mnist", "tiny"), ("two_moons", "tiny")}
    assert all(r["images_per_s"] > 0 and r["parameters"] > 0 for r in document["training"])
    assert {(r["sampler"], r["steps"]) for r in document["sampling"]} == {("DDPM", 2), ("DDIM η=0", 2)}
    recognizable = document["recognizable"]
    assert recognizable["reached"] is False and recognizable["training_s"] is None  # FD <= 1 is out of reach
    assert len(recognizable["history"]) == 1 and recognizable["history"][0]["fd"] > 1
    assert document["diffusers"] is None
    text = (tmp_path / "benchmarks.md").read_text()
    assert "<!-- BEGIN speed -->" in text and "NOT reached within the cap" in text
    assert "no GPU was used" in text


def test_speed_bench_against_diffusers(tmp_path):
    pytest.importorskip("diffusers", reason="diffusers is a bench-only dependency (bench/requirements.txt)")
    document = speed.main(tiny_speed_args(tmp_path, "--skip-training", "--skip-sampling", "--skip-recognizable"))
    comparison = document["diffusers"]
    assert {(r["model"], r["sampler"]) for r in comparison["rows"]} == {
        (m, s) for m in ("network", "loop only (0.1·x)") for s in ("DDIM", "DDPM")}
    assert all(r["ratio"] > 0 for r in comparison["rows"])
    # Same betas, same timesteps, same x_T: DDIM η = 0 must agree up to float32 round-off.
    assert comparison["ddim_eta0_check"]["max_abs_difference"] < 1e-3
    assert comparison["network"] == "tiny UNet, random weights"


def test_fast_ddim_loop_matches_chained_ddim_steps():
    diffusion = GaussianDiffusion(make_schedule("cosine", 60), "v", "fixed_small")
    model = perturbed(build_model(model_config_for("points", (2,), "tiny", 2)), 1)
    double_model = lambda x, t: model(x.float(), t).double()  # noqa: E731
    for eta in (0.0, 0.7):
        x_T = torch.randn(50, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
        fast = ddim_sample(double_model, diffusion, (50, 2), 9, eta=eta, spacing="trailing", x_T=x_T,
                           generator=torch.Generator().manual_seed(4), clip_x0=True)
        generator = torch.Generator().manual_seed(4)
        visited = timesteps(60, 9, "trailing").tolist()
        x = x_T
        with torch.no_grad():
            for i, t in enumerate(visited):
                t_prev = visited[i + 1] if i + 1 < len(visited) else -1
                t_batch = torch.full((50,), t, dtype=torch.long)
                # ddim_sample draws noise only where σ > 0: never for η = 0, never at the last step.
                noise = (torch.randn(x.shape, generator=generator, dtype=x.dtype) if eta > 0 and t_prev >= 0
                         else torch.zeros_like(x))
                x, _, _ = ddim_step(diffusion, double_model(x, t_batch), x, t_batch, t_prev, eta, noise, clip_x0=True)
        torch.testing.assert_close(fast, x, rtol=1e-12, atol=1e-12)


def test_update_markdown_section_appends_then_replaces(tmp_path):
    path = tmp_path / "doc.md"
    update_markdown_section(path, "speed", "first")
    update_markdown_section(path, "quality", "second")
    update_markdown_section(path, "speed", "third")
    text = path.read_text()
    assert "first" not in text and text.count("<!-- BEGIN speed -->") == 1
    assert text.index("third") < text.index("second")  # replaced in place, not appended again


@pytest.mark.parametrize("script", ["quality.py", "page_load.py", "cpu_recipe.py", "wall_recipe.py"])
def test_bench_scripts_start_as_documented(script):
    """docs/benchmarks.md runs them as `python bench/NAME.py`: from any folder, with the project installed."""
    import subprocess
    import sys

    result = subprocess.run([sys.executable, str(Path(__file__).resolve().parent.parent / "bench" / script), "--help"],
                            capture_output=True, text=True, timeout=120, cwd="/")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "usage:" in result.stdout


def test_wall_recipe_times_the_training_command_with_the_threads_and_precision_asked(tmp_path):
    """bench/wall_recipe.py runs `python -m core.train` with its flags, pins threads and bf16 for it, and
    reports the wall time of the whole command and what the run did."""
    import argparse

    from bench import wall_recipe

    out = tmp_path / "toy.safetensors"
    args = argparse.Namespace(threads=1, bf16="0", max_seconds=60.0, cpu_class="avx2", omp_wait="passive")
    result = wall_recipe.train(args, ["--recipe", "toy", "--steps", "4", "--T", "20", "--toy-points", "256",
                                      "--preview-every", "0", "--device", "cpu"], out)
    assert out.is_file() and result["wall_seconds"] > 0
    assert "--max-seconds 60.0" in result["command"] and result["threads"] == 1
    assert any("finished at step 4/4" in line for line in result["train_stdout"])
    from core import checkpoints
    assert checkpoints.read_metadata(out)["device"] == "cpu (1 threads)"  # RDL_TORCH_THREADS=1, RDL_CPU_BF16=0 reached it
    assert result["cpu_class"] == "avx2" and result["omp_wait_policy"] == "passive"


def test_wall_recipe_trains_as_the_train_page_does(tmp_path, monkeypatch):
    """--page-job: the page's recipe as a registry job in a worker process, with a budget, the panel refreshed."""
    import argparse

    from bench import wall_recipe

    monkeypatch.setenv("RDL_FAST_RECIPE", "light")
    args = argparse.Namespace(threads=1, threads_env=True, max_seconds=3.0, cpu_class="native", dataset="two_moons")
    result, checkpoint = wall_recipe.train_as_page_job(args, tmp_path)
    assert checkpoint.is_file() and result["state"] in ("finished", "stopped") and result["panel_refreshes"] >= 1
    assert result["budget_seconds"] == 3.0 and 0 < result["steps"] <= result["total_steps"]
    assert result["config"]["dataset"] == "two_moons"
