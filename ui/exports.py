"""Taking results out of the app: PNG of picture grids, CSV of plotted curves, .npz of samples, and a
"Reproduce this" box with the equivalent command or Python snippet.

Every file is built in memory only when its button is clicked (`st.download_button` with a callable), so a
page pays nothing for exports nobody asks for and no file is ever written on the server.
"""

from __future__ import annotations

import csv
import io
import shlex
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path

import numpy as np
import streamlit as st

from core import paths
from core.data.images import png_bytes

ROOT = paths.app_root()  # the checkout, or the installed package's app files (core/paths.py)


def png_button(label: str, picture: Callable[[], np.ndarray] | np.ndarray, file_name: str, key: str) -> None:
    """A uint8 picture [H, W] or [H, W, 3] (or a function returning one) as a PNG download."""
    make = picture if callable(picture) else (lambda: picture)
    st.download_button(label, lambda: png_bytes(make()), file_name=file_name, mime="image/png", key=key,
                       icon=":material/image:", on_click="ignore")


def csv_text(columns: dict) -> str:
    """Columns name -> 1-D values (equal lengths; None for a gap) as CSV text with a header row."""
    lengths = {len(values) for values in columns.values()}
    if len(lengths) != 1:
        raise ValueError(f"CSV columns must have equal lengths, got {sorted(lengths)}")
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(list(columns))
    for row in zip(*[list(values) for values in columns.values()]):
        writer.writerow(["" if value is None else repr(float(value)) if isinstance(value, float | np.floating)
                         else value for value in row])
    return out.getvalue()


def csv_button(label: str, columns: Callable[[], dict] | dict, file_name: str, key: str) -> None:
    """The curves of a figure as CSV (one column per curve, the x values first)."""
    make = columns if callable(columns) else (lambda: columns)
    st.download_button(label, lambda: csv_text(make()), file_name=file_name, mime="text/csv", key=key,
                       icon=":material/table:", on_click="ignore")


def npz_bytes(arrays: dict) -> bytes:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **{name: np.asarray(value) for name, value in arrays.items()})
    return buffer.getvalue()


def npz_button(label: str, arrays: Callable[[], dict] | dict, file_name: str, key: str) -> None:
    """Arrays (samples, timesteps, settings as 0-d arrays) as a compressed .npz (np.load reads it, no pickle)."""
    make = arrays if callable(arrays) else (lambda: arrays)
    st.download_button(label, lambda: npz_bytes(make()), file_name=file_name, mime="application/octet-stream",
                       key=key, icon=":material/data_array:", on_click="ignore")


def command_line(module: str, options: dict) -> str:
    """`python -m module --flag value ...`; True adds a bare flag, False/None leaves it out."""
    parts = ["python", "-m", module]
    for flag, value in options.items():
        if value is None or value is False:
            continue
        parts.append(f"--{flag}")
        if value is not True:
            parts.append(str(value))
    return shlex.join(parts)


def train_command(config, out: str = "model.safetensors") -> str:
    """`python -m core.train ...` for a TrainConfig: a flag for every field that differs from the default
    (booleans as --flag / --no-flag), so the command trains exactly this configuration."""
    default = type(config)()
    options = {}
    for f in fields(config):
        value = getattr(config, f.name)
        if value == getattr(default, f.name):
            continue
        flag = f.name.replace("_", "-")
        if isinstance(value, bool):
            options[flag if value else f"no-{flag}"] = True
        else:
            options[flag] = value
    options["out"] = out
    return command_line("core.train", options)


def reproduce_box(command: str | None, snippet: str, note: str = "") -> None:
    """An expander with the equivalent command (when the CLI can express the settings) and a Python snippet."""
    with st.expander("Reproduce this (command line / Python)", icon=":material/terminal:"):
        if note:
            st.caption(note)
        if command:
            st.code(command, language="bash", wrap_lines=True)
        st.code(snippet, language="python")


def relative_to_root(path: str | Path) -> str:
    """A checkpoint path as the user would type it from the repository root; a file outside the repository (a
    server's own model folder, $RDL_CHECKPOINT_DIR) by its file name only: pages never show server paths."""
    path = Path(path).resolve()
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return path.name
