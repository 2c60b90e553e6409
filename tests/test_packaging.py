"""The installed package: what `pipx install <wheel>` (or `pip install <repo>`) gives a new user (issue 19).

The fast checks read pyproject.toml. The `packaging` test (pytest -m packaging; deselect with -m "not packaging")
builds the wheel from a copy of the checkout and installs it with pipx (requirements-dev.txt), as a user would, with
PIPX_HOME, PIPX_BIN_DIR and PIPX_MAN_DIR in a temporary folder: pipx makes its own venv and pip resolves the wheel's
dependencies there as pip is configured on the machine (pip.conf, $PIP_INDEX_URL, $PIP_EXTRA_INDEX_URL; offline,
a local index or wheel folder serves them). On Linux against plain PyPI that is the CUDA torch (about 2.6 GB): point
$PIP_INDEX_URL or $PIP_EXTRA_INDEX_URL at https://download.pytorch.org/whl/cpu first, as README's install does.
The venv (about 1.5 GB with the CPU torch) is deleted afterwards. Then the console script that pipx put in
PIPX_BIN_DIR runs from a temporary folder outside the repository with a fresh $RDL_HOME: `paths`, `train` (a 2-D
toy, a few steps) and `sample` (from that model and from a shipped one, by name). The code must come from the
installed wheel: the repository is on no path, and a file it writes must land in $RDL_HOME, never in the package.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def _requirements() -> list[str]:
    lines = (line.split("#")[0].strip() for line in (ROOT / "requirements.txt").read_text().splitlines())
    return [line.replace(" ", "") for line in lines if line]


def test_dependencies_match_requirements_txt():
    assert [d.replace(" ", "") for d in PYPROJECT["project"]["dependencies"]] == _requirements()


def test_every_code_folder_is_a_listed_package():
    listed = set(PYPROJECT["tool"]["setuptools"]["packages"])
    found = {".".join(folder.relative_to(ROOT).parts) for top in ("core", "ui", "bench")
             for folder in [ROOT / top, *(ROOT / top).rglob("*")]
             if folder.is_dir() and "__pycache__" not in folder.parts and any(folder.glob("*.py"))}
    assert found <= listed, f"folders with Python files missing from [tool.setuptools] packages: {sorted(found - listed)}"


def test_license_is_an_spdx_string_and_the_script_is_declared():
    assert PYPROJECT["project"]["license"] == "MIT"
    assert PYPROJECT["project"]["scripts"] == {"reverse-diffusion-lab": "core.cli:main"}
    build_requires = PYPROJECT["build-system"]["requires"]
    assert any(re.fullmatch(r"setuptools>=(\d+)", req) and int(req.split(">=")[1]) >= 77 for req in build_requires)


def _copy_checkout(dest: Path) -> Path:
    ignore = shutil.ignore_patterns(".git", ".venv", "build", "*.egg-info", "__pycache__", "runs", "test-artifacts",
                                    ".pytest_cache", "tests", "docs", "scripts")
    shutil.copytree(ROOT, dest, ignore=ignore)
    return dest


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(PIPX_BIN_DIR, the pipx venv's bin folder, its site-packages) after `pipx install` of the built wheel."""
    work = tmp_path_factory.mktemp("packaging")
    source = _copy_checkout(work / "source")
    dist = work / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(dist), str(source)],
                   check=True, cwd=work, capture_output=True, text=True)
    wheels = list(dist.glob("reverse_diffusion_lab-*.whl"))
    assert len(wheels) == 1
    pipx_home, bin_dir = work / "pipx", work / "bin"
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("RDL_", "PIPX_", "VIRTUAL_ENV")) and key != "PYTHONPATH"}
    env.update(PIPX_HOME=str(pipx_home), PIPX_BIN_DIR=str(bin_dir), PIPX_MAN_DIR=str(work / "man"))
    result = subprocess.run([sys.executable, "-m", "pipx", "install", "--python", sys.executable, str(wheels[0])],
                            cwd=work, env=env, capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, f"pipx install failed (is pipx installed? requirements-dev.txt):\n{result.stdout}\n{result.stderr}"
    venv_bin = pipx_home / "venvs" / "reverse-diffusion-lab" / "bin"
    site = Path(subprocess.run([str(venv_bin / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    yield bin_dir, venv_bin, site
    shutil.rmtree(pipx_home, ignore_errors=True)  # the venv with its own torch: about 1.5 GB


def _run(bin_dir: Path, args: list[str], cwd: Path, home: Path) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if not key.startswith("RDL_") and key != "PYTHONPATH"}
    env.update(RDL_HOME=str(home), PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', '')}")
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"{args} failed:\n{result.stdout}\n{result.stderr}"
    return result


def _files(folder: Path) -> set[Path]:
    return {path for path in folder.rglob("*") if path.is_file() and "__pycache__" not in path.parts}


@pytest.mark.packaging
def test_installed_console_script_trains_and_samples_outside_the_repo(installed, tmp_path):
    bin_dir, venv_bin, site = installed
    command = bin_dir / "reverse-diffusion-lab"
    assert command.exists() and Path(shutil.which("reverse-diffusion-lab", path=str(bin_dir))) == command
    elsewhere, home = tmp_path / "elsewhere", tmp_path / "home"
    elsewhere.mkdir()
    package_before = _files(site / "reverse_diffusion_lab")

    where = _run(bin_dir, [str(venv_bin / "python"), "-c", "import core, ui; print(core.__file__); print(ui.__file__)"], elsewhere, home)
    assert all(Path(line).is_relative_to(site) for line in where.stdout.split()), where.stdout

    shown = _run(bin_dir, ["reverse-diffusion-lab", "paths"], elsewhere, home).stdout
    assert str(site / "reverse_diffusion_lab") in shown and str(home / "models") in shown and str(home / "runs") in shown

    trained = _run(bin_dir, ["reverse-diffusion-lab", "train", "--recipe", "toy", "--dataset", "two_moons", "--steps", "30",
                             "--batch-size", "64", "--quiet", "--device", "cpu"], elsewhere, home)
    models = sorted((home / "models").glob("two_moons-*.safetensors"))
    assert len(models) == 1, trained.stdout + trained.stderr
    model = models[0]

    _run(bin_dir, ["reverse-diffusion-lab", "sample", "--checkpoint", model.stem, "--n", "16", "--steps", "5",
                   "--device", "cpu", "--out", "mine.png"], elsewhere, home)
    _run(bin_dir, ["reverse-diffusion-lab", "sample", "--checkpoint", "toy_two_moons", "--n", "16", "--steps", "5",
                   "--device", "cpu", "--out", "shipped.png"], elsewhere, home)
    for picture in ("mine.png", "shipped.png"):
        assert (elsewhere / picture).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # the shipped MNIST subset and classifier are found as package data
    _run(bin_dir, [str(venv_bin / "python"), "-c", "from core.data.datasets import load_dataset; from core.metrics.classifier import "
                   "load_classifier; assert load_dataset('mnist').data.shape[1:] == (1, 28, 28); load_classifier()"], elsewhere, home)

    assert _files(site / "reverse_diffusion_lab") == package_before  # nothing written into the package
    assert sorted(p.name for p in _files(elsewhere)) == ["mine.png", "shipped.png"]
