"""The web server never initialises CUDA: on a machine with a GPU (core.runtime.cuda_inventory mocked) the sidebar,
the Train page's recipe, the memory check and the job registry learn about the GPU without one torch.cuda query
in the server process (every query is replaced by one that fails the test)."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from streamlit.testing.v1 import AppTest

from core import runtime
from core.training import config as training_config
from core.training import fits, run_store
from core.training.config import TrainConfig
from core.training.limits import JobLimits
from core.training.registry import JobRegistry

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "app.py")
GPU = runtime.GpuInfo(0, "NVIDIA H100 80GB HBM3", (9, 0), 80 * 2**30, 79 * 2**30)
CUDA_QUERIES = ("is_available", "device_count", "mem_get_info", "get_device_name", "get_device_capability",
                "get_device_properties", "current_device", "is_bf16_supported", "init", "synchronize")


@pytest.fixture
def gpu_server(monkeypatch):
    """One GPU as the inventory reports it; any torch.cuda query in this process raises."""
    monkeypatch.setattr(runtime, "_inventory", (GPU,))

    def forbidden(*args, **kwargs):
        raise AssertionError("torch.cuda was queried in the web server process")

    for name in CUDA_QUERIES:
        monkeypatch.setattr(torch.cuda, name, forbidden)
    yield GPU
    assert not torch.cuda.is_initialized()


class Launcher:
    def __init__(self):
        self.devices = []

    def launch(self, folder, resume, total_steps, max_seconds, threads, device=None):
        self.devices.append(device)
        return None  # no worker: the job stays queued-then-launched as far as this test looks


def test_server_paths_know_the_gpu_without_asking_torch(gpu_server, tmp_path):
    from ui import session

    assert session.device_label() == "GPU: NVIDIA H100 80GB HBM3"
    config = TrainConfig(dataset="two_moons", model_size="tiny", T=50, batch_size=16, device="auto")
    assert fits.check_fits(config) == ("cuda", "cpu")
    assert fits.available_memory_bytes(torch.device("cuda")) == GPU.free_bytes
    assert fits.available_memory_bytes(torch.device("cuda", 1)) is None  # no such GPU: unknown, nothing refused
    launcher = Launcher()
    registry = JobRegistry(limits=JobLimits(cpu_slots=1), run_store=run_store.RunStore(tmp_path / "runs"), launcher=launcher)
    job = registry.get(registry.submit("alice", config))
    assert launcher.devices == ["cuda"] and job.device == "cuda" and job.devices == ("cuda", "cpu")


def test_a_cuda_job_without_a_gpu_is_refused_in_one_line(monkeypatch):
    monkeypatch.setattr(runtime, "_inventory", ())
    monkeypatch.setattr(torch.cuda, "is_available", lambda: pytest.fail("torch.cuda was queried"))
    with pytest.raises(ValueError, match=r"^device='cuda' is not available on this machine \(no CUDA GPU found\)"):
        fits.check_fits(TrainConfig(dataset="two_moons", device="cuda"))
    assert fits.check_fits(TrainConfig(dataset="two_moons", device="auto")) == ("cpu",)


def test_the_app_shows_the_gpu_and_starts_from_its_recipe_without_cuda(gpu_server, monkeypatch, tmp_path):
    from ui import session

    asked = []
    real_recipe_for = training_config.recipe_for
    monkeypatch.setattr(training_config, "recipe_for", lambda dataset, on_gpu: asked.append((dataset, on_gpu)) or
                        real_recipe_for(dataset, on_gpu))
    monkeypatch.setenv("RDL_RUNS_DIR", str(tmp_path / "runs"))
    session.get_registry.clear()
    try:
        at = AppTest.from_file(APP, default_timeout=60)
        at.run()
        at.switch_page("pages/train.py").run()
        assert not at.exception, at.exception
        assert any("GPU: NVIDIA H100 80GB HBM3" in caption.value for caption in at.sidebar.caption)
        assert ("mnist", True) in asked and ("mnist", False) not in asked  # the settings start from the GPU recipe
    finally:
        session.get_registry().close()
        session.get_registry.clear()


IMPORTS = """
import torch
def forbidden(*args, **kwargs):
    raise SystemExit("torch.cuda was queried while importing the server's modules")
for name in {queries!r}:
    setattr(torch.cuda, name, forbidden)
import app_modules
""".replace("import app_modules", "import ui.session, ui.sidebar, ui.catalog, ui.training_panel, core.training.registry\n"
            "print(torch.cuda.is_initialized())")


def test_importing_the_servers_modules_asks_no_cuda():
    done = subprocess.run([sys.executable, "-c", IMPORTS.format(queries=CUDA_QUERIES)], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "False"
