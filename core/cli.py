"""The `reverse-diffusion-lab` command (installed by `pip install`): one entry point, four subcommands.

    reverse-diffusion-lab app [streamlit flags]      the teaching app (streamlit run on the installed app.py)
    reverse-diffusion-lab train [flags]              train a model (core.train; --help lists the flags)
    reverse-diffusion-lab sample [flags]             draw samples from a model as a PNG (core.sample)
    reverse-diffusion-lab paths                      where the shipped files are and where yours go

Trained models go to $RDL_HOME/models unless --out says otherwise; the app's runs to $RDL_RUNS_DIR or
$RDL_HOME/runs (core/paths.py); nothing is written into the installed package or its checkpoints/.
"""

from __future__ import annotations

import subprocess
import sys

from core import paths

USAGE = __doc__.split("\n\n")[1]
COMMANDS = ("app", "train", "sample", "paths")
PROG = "reverse-diffusion-lab"


def run_app(extra: list[str]) -> int:
    """Streamlit on the shipped app.py, started in the app's folder so its .streamlit/config.toml applies; extra
    arguments go to `streamlit run` (e.g. --server.port 8600)."""
    root = paths.app_root()
    command = [sys.executable, "-m", "streamlit", "run", str(root / "app.py"), *extra]
    try:
        return subprocess.call(command, cwd=root)
    except KeyboardInterrupt:  # Ctrl-C reaches streamlit too, which stops; no traceback here
        return 130


def show_paths() -> int:
    """Every folder the app and the tools use, and the variable that moves it."""
    data = paths.data_dir()
    rows = [
        ("app files (read-only)", paths.app_root(), ""),
        ("shipped models the app lists", paths.checkpoint_dir(), paths.CHECKPOINT_DIR_ENV),
        ("user folder", paths.user_home(), paths.HOME_ENV),
        ("trained models (train's default --out)", paths.models_dir(), paths.HOME_ENV),
        ("the app's training runs", paths.runs_dir(), paths.RUNS_DIR_ENV),
        ("MNIST/Fashion-MNIST IDX files", data if data is not None else "(not set)", paths.DATA_DIR_ENV),
    ]
    width = max(len(label) for label, _, _ in rows)
    for label, folder, variable in rows:
        print(f"{label:<{width}}  {folder}{f'  (${variable})' if variable else ''}")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(f"usage: {PROG} {{{','.join(COMMANDS)}}} ...\n\n{USAGE}")
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command == "app":
        return run_app(rest)
    if command == "train":
        from core import train  # imported here: `paths` and `app` need no torch in this process

        return train.main(rest, prog=f"{PROG} train")
    if command == "sample":
        from core import sample

        return sample.main(rest, prog=f"{PROG} sample")
    if command == "paths":
        if rest:
            print(f"{PROG} paths: error: takes no arguments, got {' '.join(rest)!r}", file=sys.stderr)
            return 2
        return show_paths()
    print(f"{PROG}: error: unknown command {command!r}; expected one of {', '.join(COMMANDS)}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
