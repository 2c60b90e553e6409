"""Tests for core/data/images.py."""

import io

import numpy as np
import pytest
import torch
from PIL import Image

from core.data.images import make_grid, png_bytes, save_png, to_uint8, upscale


def test_to_uint8_values_by_hand():
    x = np.array([-1.0, 1.0, 0.0, -2.0, 2.0, 0.5, -0.5, 10.49 / 127.5 - 1, 10.51 / 127.5 - 1])
    # (x + 1) * 127.5 = 0, 255, 127.5 -> 128 (halves up), clamp, clamp, 191.25, 63.75, 10.49, 10.51
    assert to_uint8(x).tolist() == [0, 255, 128, 0, 255, 191, 64, 10, 11]
    assert to_uint8(x).dtype == np.uint8


def test_to_uint8_inverts_dataset_scaling():
    pixels = torch.arange(256, dtype=torch.uint8)
    floats = pixels.float() / 127.5 - 1.0  # exactly what core/data/datasets.py does, in float32
    back = to_uint8(floats)
    assert isinstance(back, torch.Tensor) and back.dtype == torch.uint8
    assert torch.equal(back, pixels)
    assert torch.equal(to_uint8(pixels), pixels)  # uint8 passes through


def test_to_uint8_rejects_nan():
    with pytest.raises(ValueError, match="NaN"):
        to_uint8(torch.tensor([0.0, float("nan")]))


def test_make_grid_layout_by_hand():
    batch = np.array([[[[1, 2, 3], [4, 5, 6]]],
                      [[[11, 12, 13], [14, 15, 16]]],
                      [[[21, 22, 23], [24, 25, 26]]]], dtype=np.uint8)  # [3, 1, 2, 3]
    expected = np.array([
        [7, 7, 7, 7, 7, 7, 7, 7, 7],
        [7, 1, 2, 3, 7, 11, 12, 13, 7],
        [7, 4, 5, 6, 7, 14, 15, 16, 7],
        [7, 7, 7, 7, 7, 7, 7, 7, 7],
        [7, 21, 22, 23, 7, 7, 7, 7, 7],
        [7, 24, 25, 26, 7, 7, 7, 7, 7],
        [7, 7, 7, 7, 7, 7, 7, 7, 7],
    ], dtype=np.uint8)
    grid = make_grid(batch, nrow=2, padding=1, pad_value=7)
    assert grid.dtype == np.uint8
    np.testing.assert_array_equal(grid, expected)
    # One row when nrow exceeds the batch size; no padding at all with padding=0.
    np.testing.assert_array_equal(make_grid(batch, nrow=8, padding=0),
                                  np.concatenate([batch[0, 0], batch[1, 0], batch[2, 0]], axis=1))


def test_make_grid_rgb_and_float_input():
    rgb = torch.tensor([[[[-1.0]], [[0.0]], [[1.0]]]] * 2)  # [2, 3, 1, 1]: pixel (0, 128, 255)
    grid = make_grid(rgb, nrow=1, padding=1, pad_value=9)
    assert grid.shape == (5, 3, 3)
    np.testing.assert_array_equal(grid[1, 1], [0, 128, 255])
    np.testing.assert_array_equal(grid[3, 1], [0, 128, 255])
    assert (grid[0] == 9).all() and (grid[2] == 9).all() and (grid[:, 0] == 9).all()


@pytest.mark.parametrize("kwargs, pattern", [
    (dict(batch=np.zeros((2, 2, 4, 4))), r"expected \[N, C, H, W\] with N >= 1, C in \(1, 3\)"),
    (dict(batch=np.zeros((4, 4))), r"expected \[N, C, H, W\]"),
    (dict(batch=np.zeros((1, 1, 2, 2)), nrow=0), r"nrow=0 is not allowed"),
    (dict(batch=np.zeros((1, 1, 2, 2)), padding=-1), r"padding=-1 is not allowed"),
    (dict(batch=np.zeros((1, 1, 2, 2)), pad_value=300), r"pad_value=300 is not allowed; expected an integer in 0..255"),
])
def test_make_grid_bad_input(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        make_grid(**kwargs)


def test_upscale_nearest():
    picture = np.array([[1, 2], [3, 4]], dtype=np.uint8)
    np.testing.assert_array_equal(upscale(picture, 2), [[1, 1, 2, 2], [1, 1, 2, 2], [3, 3, 4, 4], [3, 3, 4, 4]])
    assert upscale(np.zeros((2, 3, 3), dtype=np.uint8), 3).shape == (6, 9, 3)
    with pytest.raises(ValueError, match="factor=0 is not allowed"):
        upscale(picture, 0)


@pytest.mark.parametrize("shape", [(5, 7), (5, 7, 3)])
def test_png_round_trip(tmp_path, shape):
    picture = np.random.default_rng(0).integers(0, 256, size=shape, dtype=np.uint8)
    decoded = np.array(Image.open(io.BytesIO(png_bytes(picture))))
    np.testing.assert_array_equal(decoded, picture)
    path = save_png(picture, tmp_path / "grid.png")
    with Image.open(path) as image:
        assert image.format == "PNG"
        np.testing.assert_array_equal(np.array(image), picture)


def test_png_rejects_non_uint8():
    with pytest.raises(ValueError, match="expected uint8"):
        png_bytes(np.zeros((4, 4), dtype=np.float32))
