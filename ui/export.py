"""Pictures a teacher can put on a slide: a row or grid of small pictures (28×28 digits, a Denoise strip)
enlarged to at least SLIDE_LONG_SIDE pixels on the long side, each tile with its label under it and a title
band naming the model, its prediction and the step t, drawn with Pillow (no browser, no kaleido).

Tiles are enlarged by a whole factor with nearest-neighbour sampling, so every pixel of the model's output
stays a crisp square block (nothing is smoothed or invented). The text is the Pillow default font (FreeType,
shipped inside Pillow), so the same PNG comes out on any server; it has Latin letters only, so labels spell
Greek letters out (eps, x_0).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from core.data.images import to_uint8

SLIDE_LONG_SIDE = 1200  # pixels: a 1280×720 projector or a 16:9 slide shows it without upscaling
BACKGROUND = 255  # white
INK = (20, 24, 32)  # near-black text
GAP_FRACTION = 0.06  # white space between tiles, as a fraction of a tile's side


def _rgb(picture: np.ndarray) -> np.ndarray:
    picture = np.asarray(picture)
    if picture.dtype != np.uint8 or picture.ndim not in (2, 3) or (picture.ndim == 3 and picture.shape[2] != 3):
        raise ValueError(f"a tile must be a uint8 picture [H, W] or [H, W, 3], got {picture.dtype} {picture.shape}")
    return np.repeat(picture[..., None], 3, axis=2) if picture.ndim == 2 else picture


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def labelled_tiles(tiles: Sequence[np.ndarray], labels: Sequence[str], title: str, columns: int | None = None,
                   min_long_side: int = SLIDE_LONG_SIDE) -> np.ndarray:
    """Tiles (uint8 [H, W] or [H, W, 3], all the same size) in a grid of `columns` (default: one row), each
    enlarged by the smallest whole factor that makes the whole picture at least `min_long_side` pixels on its
    long side, with its label centred in a band under it and `title` in a band at the top.

    Returns the picture as uint8 [height, width, 3] on white.
    """
    if not tiles:
        raise ValueError("labelled_tiles needs at least one tile")
    if len(labels) != len(tiles):
        raise ValueError(f"{len(tiles)} tiles but {len(labels)} labels")
    rgb = [_rgb(tile) for tile in tiles]
    height, width = rgb[0].shape[:2]
    if any(tile.shape[:2] != (height, width) for tile in rgb):
        raise ValueError("all tiles must have the same size")
    columns = len(rgb) if columns is None else max(1, min(int(columns), len(rgb)))
    rows = math.ceil(len(rgb) / columns)

    def layout(scale: int) -> tuple[int, int, int, int, int, int, int]:
        tile_h, tile_w = height * scale, width * scale
        gap = max(4, round(GAP_FRACTION * max(tile_h, tile_w)))
        label_band = max(24, round(0.16 * tile_h)) if any(labels) else 0
        title_band = max(36, round(0.05 * min_long_side))
        total_w = columns * tile_w + (columns + 1) * gap
        total_h = title_band + rows * (tile_h + label_band) + (rows + 1) * gap
        return tile_w, tile_h, gap, label_band, title_band, total_w, total_h

    scale = 1
    while max(layout(scale)[5:]) < min_long_side:
        scale += 1
    tile_w, tile_h, gap, label_band, title_band, total_w, total_h = layout(scale)

    canvas = Image.new("RGB", (total_w, total_h), (BACKGROUND,) * 3)
    draw = ImageDraw.Draw(canvas)
    _centred_text(draw, title, (0, 0, total_w, title_band + gap), _fitting_font(draw, title, total_w - 2 * gap, title_band))
    label_font = _font(max(12, round(0.6 * label_band))) if label_band else None
    for index, (tile, label) in enumerate(zip(rgb, labels)):
        row, column = divmod(index, columns)
        x = gap + column * (tile_w + gap)
        y = title_band + gap + row * (tile_h + label_band + gap)
        enlarged = Image.fromarray(tile).resize((tile_w, tile_h), Image.Resampling.NEAREST)
        canvas.paste(enlarged, (x, y))
        if label and label_font is not None:
            font = _fitting_font(draw, label, tile_w + gap, label_band, label_font.size)
            _centred_text(draw, label, (x - gap // 2, y + tile_h, x + tile_w + gap // 2, y + tile_h + label_band), font)
    return np.asarray(canvas)


def _fitting_font(draw: ImageDraw.ImageDraw, text: str, max_width: int, band: int, start: int | None = None):
    """The default font at the largest size (from `start`, or 60 % of the band) whose `text` fits `max_width`."""
    size = start or max(12, round(0.6 * band))
    font = _font(size)
    while size > 10 and draw.textlength(text, font=font) > max_width:
        size -= 1
        font = _font(size)
    return font


def _centred_text(draw: ImageDraw.ImageDraw, text: str, box: tuple[int, int, int, int], font) -> None:
    left, top, right, bottom = box
    draw.text(((left + right) / 2, (top + bottom) / 2), text, fill=INK, font=font, anchor="mm")


def grid_tiles(batch) -> list[np.ndarray]:
    """A batch of pictures [N, C, H, W] (C = 1 or 3; floats on [−1, 1], values outside clipped, or uint8) as a list
    of uint8 tiles [H, W] or [H, W, 3], mapped to pixels exactly as the app's own grids (core.data.images.to_uint8)."""
    pixels = to_uint8(batch)
    pixels = pixels.detach().cpu().numpy() if hasattr(pixels, "detach") else np.asarray(pixels)
    if pixels.ndim != 4 or pixels.shape[1] not in (1, 3):
        raise ValueError(f"expected pictures [N, 1 or 3, H, W], got shape {tuple(pixels.shape)}")
    return [tile[0] if tile.shape[0] == 1 else np.transpose(tile, (1, 2, 0)) for tile in pixels]


# what the model predicts, in the Latin letters the slide font has
PREDICTION_WORDS = {"eps": "predicts the noise eps", "x0": "predicts x_0", "v": "predicts v"}


def slide_title(model: str, prediction: str, detail: str) -> str:
    """The title band of a slide picture: the model's name, what it predicts, then `detail` (the step t, the sampler)."""
    return f"{model} ({PREDICTION_WORDS.get(prediction, f'predicts {prediction}')}) · {detail}"
