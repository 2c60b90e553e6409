"""core/__init__.py loads its public API lazily (issue 19, item 6): importing one layer does not pull in the others."""

import subprocess
import sys
from pathlib import Path

import core

ROOT = Path(__file__).resolve().parents[1]


def _core_modules_after(statement: str) -> set[str]:
    """The core.* modules a fresh interpreter holds after running `statement` (a child process: this one has more)."""
    code = f"import sys\n{statement}\nprint('\\n'.join(m for m in sys.modules if m == 'core' or m.startswith('core.')))"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True, timeout=120)
    return set(result.stdout.split())


def test_importing_the_schedules_loads_no_training_metrics_or_checkpoints():
    loaded = _core_modules_after("import core.diffusion.schedules")
    assert "core.diffusion.schedules" in loaded
    heavy = sorted(m for m in loaded if m.split(".")[1:2] and m.split(".")[1] in {"training", "metrics", "checkpoints", "lab", "nets"})
    assert heavy == [], heavy
    assert len(loaded) <= 5, sorted(loaded)  # core, core.checks, core.diffusion, core.diffusion.schedules (+ at most one)


def test_a_public_name_loads_its_module_on_first_use():
    loaded = _core_modules_after("from core import Trainer, make_schedule\nassert Trainer.__module__ == 'core.training.trainer'")
    assert "core.training.trainer" in loaded


def test_every_public_name_resolves_to_the_object_of_its_module():
    import importlib

    for name in core.__all__:
        module = importlib.import_module(core._PUBLIC[name])
        assert getattr(core, name) is getattr(module, name), name
    assert set(core.__all__) == set(core._PUBLIC)
    try:
        core.not_a_name  # noqa: B018
    except AttributeError as error:
        assert "not_a_name" in str(error)
    else:
        raise AssertionError("core.not_a_name should raise AttributeError")
