"""Turning image batches into pictures: [-1, 1] floats -> uint8, grids, nearest upscaling, PNG.

Only numpy and Pillow (no torchvision). Conventions:
* model-space images are floats in [-1, 1] (pixel p <-> p / 127.5 - 1, see core/data/datasets.py);
* display-space images are numpy uint8 arrays [H, W] (grey) or [H, W, 3] (RGB).
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from core.checks import check_int


def to_uint8(x):
    """Map floats in [-1, 1] to uint8 0..255: round((x + 1) * 127.5), clamped to [0, 255].

    Exact inverse of p -> p / 127.5 - 1 for every p in 0..255. Values outside [-1, 1] are clamped;
    halves round up (127.5 -> 128). Accepts a torch tensor or a numpy array and returns the same
    kind, same shape. uint8 input is returned unchanged (as a copy). NaN raises ValueError.
    """
    is_torch = isinstance(x, torch.Tensor)
    array = x.detach().cpu().numpy() if is_torch else np.asarray(x)
    if array.dtype == np.uint8:
        result = array.copy()
    else:
        if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
            raise ValueError(f"x has dtype {array.dtype}; expected floats in [-1, 1] or uint8")
        # float64 so that e.g. float32 round-off never moves a value across a .5 boundary.
        scaled = (array.astype(np.float64) + 1.0) * 127.5
        if np.isnan(scaled).any():
            raise ValueError("x contains NaN; expected floats in [-1, 1]")
        result = np.floor(np.clip(scaled, 0.0, 255.0) + 0.5).astype(np.uint8)
    return torch.from_numpy(result) if is_torch else result


def make_grid(batch, nrow: int = 8, padding: int = 2, pad_value: int = 128) -> np.ndarray:
    """Tile a batch [N, C, H, W] (C = 1 or 3; floats in [-1, 1] or uint8) into one uint8 picture.

    Images fill rows of `ncol = min(nrow, N)` left to right, top to bottom. Every image is
    surrounded by `padding` pixels of `pad_value` (0..255), also at the outer border, and unused
    cells in the last row are pad_value too, so the result has
        height = rows * (H + padding) + padding,  width = ncol * (W + padding) + padding,
    with rows = ceil(N / ncol). Returns [height, width] for C = 1 and [height, width, 3] for C = 3.
    """
    pixels = to_uint8(batch.detach().cpu().numpy() if isinstance(batch, torch.Tensor) else batch)
    if pixels.ndim != 4 or pixels.shape[1] not in (1, 3) or pixels.shape[0] == 0:
        raise ValueError(f"batch has shape {pixels.shape}; expected [N, C, H, W] with N >= 1, C in (1, 3)")
    nrow, padding = check_int("nrow", nrow, 1), check_int("padding", padding, 0)
    pad_value = check_int("pad_value", pad_value, 0, 255)

    n, channels, height, width = pixels.shape
    ncol = min(nrow, n)
    rows = -(-n // ncol)  # ceil division
    grid = np.full((rows * (height + padding) + padding, ncol * (width + padding) + padding, channels),
                   pad_value, dtype=np.uint8)
    for index in range(n):
        top = padding + (index // ncol) * (height + padding)
        left = padding + (index % ncol) * (width + padding)
        grid[top:top + height, left:left + width] = pixels[index].transpose(1, 2, 0)  # CHW -> HWC
    return grid[:, :, 0] if channels == 1 else grid


def upscale(array: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour enlargement: every pixel becomes a factor x factor block.

    Small digits (28x28) stay crisp on screen, where browser smoothing would blur them.
    """
    factor = check_int("factor", factor, 1)
    array = _as_picture(array)
    return np.repeat(np.repeat(array, factor, axis=0), factor, axis=1)


def png_bytes(array: np.ndarray) -> bytes:
    """Encode a uint8 picture [H, W] or [H, W, 3] as PNG bytes (lossless)."""
    buffer = io.BytesIO()
    Image.fromarray(_as_picture(array)).save(buffer, format="PNG")
    return buffer.getvalue()


def save_png(array: np.ndarray, path: str | os.PathLike) -> Path:
    """Write a uint8 picture [H, W] or [H, W, 3] to `path` as PNG; returns the path."""
    path = Path(path)
    path.write_bytes(png_bytes(array))
    return path


def _as_picture(array) -> np.ndarray:
    """array as a contiguous uint8 [H, W] or [H, W, 3] numpy array (anything else is refused)."""
    array = np.asarray(array)
    if array.dtype != np.uint8 or not (array.ndim == 2 or (array.ndim == 3 and array.shape[2] == 3)):
        raise ValueError(f"array has dtype {array.dtype} and shape {array.shape}; expected uint8 "
                         f"[H, W] or [H, W, 3] (use to_uint8 / make_grid first)")
    return np.ascontiguousarray(array)
