"""The Docker image can be built for a GPU and can run bench/gpu_check.py (Docker itself cannot run here: these
read the Dockerfile, .dockerignore and the README's commands)."""

import fnmatch
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def dockerfile_lines() -> list[str]:
    """The Dockerfile's instructions, continuation lines joined, comments dropped."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def test_the_torch_index_is_a_build_arg_defaulting_to_the_cpu_wheels():
    lines = dockerfile_lines()
    assert "ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu" in lines
    (install,) = [line for line in lines if line.startswith("RUN") and "--index-url" in line]
    assert '--index-url "$TORCH_INDEX_URL"' in install and "^torch==" in install


def test_the_project_itself_is_installed_after_it_is_copied():
    lines = dockerfile_lines()
    copy_all = lines.index("COPY --chown=user . .")
    installs = [i for i, line in enumerate(lines) if re.fullmatch(r"RUN pip install .*--user .*(-e )?\.", line)]
    assert installs and installs[0] > copy_all, "pip install -e . must follow COPY . ."
    assert "--no-deps" in lines[installs[0]]  # the pinned requirements (and the chosen torch build) stay as installed


def ignored(path: str, patterns: list[str]) -> bool:
    """Whether Docker's build context leaves `path` out (the patterns used here: names, globs, ! exceptions)."""
    result = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").rstrip("/")
        parts = path.split("/")
        if any(fnmatch.fnmatch("/".join(parts[:i]), pattern) for i in range(1, len(parts) + 1)) or \
                fnmatch.fnmatch(path, pattern.replace("**/", "*/")):
            result = not negate
    return result


def test_the_build_context_keeps_what_gpu_check_imports():
    patterns = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    for path in ("bench/gpu_check.py", "bench/report.py", "bench/__init__.py", "core/training/worker.py",
                 "pyproject.toml", "data/mnist_subset.npz"):
        assert not ignored(path, patterns), f"{path} is left out of the image by .dockerignore"
    assert ignored("tests/test_gpu_docker.py", patterns) and ignored(".venv/bin/python", patterns)  # the check works


def test_the_readme_says_how_to_build_and_run_the_gpu_image():
    readme = (ROOT / "README.md").read_text()
    assert "docker build --build-arg TORCH_INDEX_URL=https://pypi.org/simple -t reverse-diffusion-lab:gpu ." in readme
    assert "docker run --rm --gpus all -p 8501:8501 reverse-diffusion-lab:gpu" in readme
    assert re.search(r"--gpus all .*reverse-diffusion-lab:gpu \\\n\s+python bench/gpu_check.py --device cuda", readme)
