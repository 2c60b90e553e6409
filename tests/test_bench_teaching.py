"""bench/page_load.py and bench/bits_per_dim.py run end to end (light pages, tiny checkpoints) without errors."""

from bench import page_load


def test_page_load_measures_pages_without_errors():
    document = page_load.main(["--pages", "pages/home.py", "pages/posterior.py", "--no-write"])
    assert set(document["pages"]) == {"pages/home.py", "pages/posterior.py"}
    for result in document["pages"].values():
        assert result["first"] > 0 and result["rerun"] > 0 and result["problems"] == []
    assert document["hardware"]["cpu_cores"] >= 1


def test_bits_per_dim_runs_on_tiny_checkpoints(checkpoint_dir):
    from bench import bits_per_dim

    document = bits_per_dim.main(["--n", "2", "--checkpoint-dir", str(checkpoint_dir), "--models", "mnist_eps", "mnist_v",
                                  "--no-write"])
    for result in document["models"].values():
        assert result["bits_per_dim"] > 0 and result["standard_error"] >= 0
        assert abs(result["bits_per_dim"] - (result["prior_bits"] + result["kl_bits"] + result["decoder_bits"])) < 1e-9
