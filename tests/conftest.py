"""Suite-wide settings for 2-core machines shared with the app's own background threads.

- Idle OpenMP threads sleep instead of spinning: spinning threads of several torch processes steal each
  other's cores (measured here: ~10x more CPU time per training step). Set before torch is imported,
  since its OpenMP runtime reads it once at start.
- One torch thread: many small tensor ops are far slower when OpenMP threads contend for two cores.
"""

import os
import tempfile

import pytest

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
# The Train page's CPU recipe is fixed (ui.training_panel.forced_fast_recipe) instead of measured once per server,
# so page tests do not depend on this machine's speed; tests/test_budget.py tests the measured choice.
os.environ.setdefault("RDL_FAST_RECIPE", "light")
# Training jobs of page tests keep their folders in a temporary run store, not in the repository's runs/.
os.environ.setdefault("RDL_RUNS_DIR", tempfile.mkdtemp(prefix="rdl-runs-"))
# No warm-up thread (ui/warm.py): every test computes what it checks, so the suite is deterministic; tests/test_warm.py
# runs the warm-up itself.
os.environ["RDL_WARM"] = "0"

import torch  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Pages under test call the app's thread policy: put the suite's single thread back after each module."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def checkpoint_dir(tmp_path_factory):
    """A folder of tiny seeded checkpoints (tests/helpers.py MODELS) that the app offers as its shipped models."""
    from helpers import make_checkpoints

    return make_checkpoints(tmp_path_factory.mktemp("checkpoints"))


OPT_IN_MARKERS = ("cluster", "pipx")


def pytest_collection_modifyitems(config, items):
    """Tests marked `cluster` (tests/cluster/: a real local Ray cluster, several minutes on 2 cores) or `pipx` (a full
    `pipx install` with its own torch, minutes) run only when asked for by marker, `pytest -m cluster` / `-m pipx` (what
    .ci/run does after the default suite), so `pytest -q` stays under 10 minutes."""
    wanted = config.getoption("markexpr") or ""
    opt_out = [marker for marker in OPT_IN_MARKERS if marker not in wanted]
    deselected = [item for item in items if any(item.get_closest_marker(marker) for marker in opt_out)]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = [item for item in items if item not in deselected]
