"""Where Reverse Diffusion Lab finds its shipped files and keeps the user's: the one owner of every folder.

Two kinds of folder, never mixed:

* shipped (read-only): app.py, pages/, the shipped models in checkpoints/, data/mnist_subset.npz, .streamlit/.
  In a repository checkout they are the checkout itself; in an installed wheel they are package data of the
  `reverse_diffusion_lab` package (found through the import system, never the current folder).
* the user's (written): models the command-line tools train and the app's training runs, under RDL_HOME.
  Nothing is ever written into checkpoints/ or into the installed package.

Environment (README, "Folders and environment variables"):
    RDL_HOME            the user folder (default: the platform's user-data folder, see user_home())
    RDL_RUNS_DIR        the app's training runs (default: $RDL_HOME/runs)
    RDL_CHECKPOINT_DIR  the models the app lists as shipped (default: the shipped checkpoints/)
    RDL_DATA_DIR        the root holding mnist/ or fashion_mnist/ IDX files (no default; core.data.idx)
An empty variable counts as unset. Each function reads the environment when it is called (`env` for tests).
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Mapping
from pathlib import Path

APP_NAME = "reverse-diffusion-lab"
ASSET_PACKAGE = "reverse_diffusion_lab"  # the installed package holding app.py, pages/, checkpoints/, data/
HOME_ENV = "RDL_HOME"
RUNS_DIR_ENV = "RDL_RUNS_DIR"
CHECKPOINT_DIR_ENV = "RDL_CHECKPOINT_DIR"
DATA_DIR_ENV = "RDL_DATA_DIR"


def _is_app_root(folder: Path) -> bool:
    return (folder / "app.py").is_file() and (folder / "pages").is_dir()


def app_root() -> Path:
    """The folder with app.py, pages/, checkpoints/ and data/: the repository checkout when core/ sits in one
    (also an editable install), else the installed `reverse_diffusion_lab` package."""
    checkout = Path(__file__).resolve().parents[1]
    if _is_app_root(checkout):
        return checkout
    spec = importlib.util.find_spec(ASSET_PACKAGE)
    if spec is not None and spec.submodule_search_locations:
        for location in spec.submodule_search_locations:
            if _is_app_root(Path(location)):
                return Path(location).resolve()
    raise FileNotFoundError(f"the app's files (app.py, pages/) are neither next to {checkout / 'core'} nor in an installed "
                            f"{ASSET_PACKAGE} package; reinstall reverse-diffusion-lab")


def _env_path(env: Mapping[str, str] | None, name: str) -> Path | None:
    value = (os.environ if env is None else env).get(name, "").strip()
    return Path(value).expanduser() if value else None


def user_home(env: Mapping[str, str] | None = None) -> Path:
    """$RDL_HOME, else the platform's user-data folder: $XDG_DATA_HOME or ~/.local/share on Linux,
    ~/Library/Application Support on macOS, %LOCALAPPDATA% on Windows; each + /reverse-diffusion-lab."""
    explicit = _env_path(env, HOME_ENV)
    if explicit is not None:
        return explicit
    env = os.environ if env is None else env
    if sys.platform == "win32":
        base = Path(env.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        base = Path(env.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / APP_NAME


def runs_dir(env: Mapping[str, str] | None = None) -> Path:
    """The app's run store (core.training.run_store): $RDL_RUNS_DIR, else $RDL_HOME/runs."""
    return _env_path(env, RUNS_DIR_ENV) or user_home(env) / "runs"


def models_dir(env: Mapping[str, str] | None = None) -> Path:
    """Where `reverse-diffusion-lab train` writes a model when --out is not given: $RDL_HOME/models."""
    return user_home(env) / "models"


def shipped_checkpoint_dir() -> Path:
    """The shipped models (read-only)."""
    return app_root() / "checkpoints"


def checkpoint_dir(env: Mapping[str, str] | None = None) -> Path:
    """The models the app lists as shipped: $RDL_CHECKPOINT_DIR, else the shipped checkpoints/."""
    return _env_path(env, CHECKPOINT_DIR_ENV) or shipped_checkpoint_dir()


def classifier_path() -> Path:
    """The shipped MNIST classifier (core.metrics.classifier); always the shipped one."""
    return shipped_checkpoint_dir() / "mnist_classifier.safetensors"


def mnist_subset_path() -> Path:
    """The shipped 12,000-digit MNIST subset (core.data.datasets)."""
    return app_root() / "data" / "mnist_subset.npz"


def data_dir(env: Mapping[str, str] | None = None) -> Path | None:
    """$RDL_DATA_DIR (the IDX files' root), None when unset."""
    return _env_path(env, DATA_DIR_ENV)


def streamlit_config() -> Path:
    """The app's Streamlit settings (.streamlit/config.toml), shipped with the app."""
    return app_root() / ".streamlit" / "config.toml"


def resolve_checkpoint(value: str | os.PathLike, env: Mapping[str, str] | None = None) -> Path:
    """A --checkpoint value as a file: an existing path as given; a bare name (no folder, no suffix) as the trained
    model $RDL_HOME/models/<name>.safetensors, else the shipped checkpoints/<name>.safetensors. Anything else comes
    back unchanged, for the caller's own "no such file" message."""
    path = Path(value).expanduser()
    if path.exists() or path.suffix or len(path.parts) != 1:
        return path
    for folder in (models_dir(env), shipped_checkpoint_dir()):
        candidate = folder / f"{path.name}.safetensors"
        if candidate.is_file():
            return candidate
    return path
