"""Slide pictures (ui/export.py, issue 18.6): at least 1,200 px on the long side, every tile enlarged by a whole
factor without smoothing, a label under each tile and a title band, all found by reading the pixels back."""

import numpy as np
import pytest
import torch

from ui.export import SLIDE_LONG_SIDE, grid_tiles, labelled_tiles, slide_title

WHITE = 255


def solid_tiles(count: int, size=(28, 28)) -> list[np.ndarray]:
    """Tiles of distinct solid grey levels (none white, none the text colour), so each can be found by its value."""
    return [np.full(size, 60 + 10 * i, np.uint8) for i in range(count)]


def tile_box(picture: np.ndarray, value: int) -> tuple[int, int, int, int]:
    """(top, bottom, left, right), exclusive ends, of the pixels that have exactly this grey value."""
    rows, cols = np.nonzero(np.all(picture == value, axis=2))
    return rows.min(), rows.max() + 1, cols.min(), cols.max() + 1


def ink(region: np.ndarray) -> int:
    """Pixels that are not white background."""
    return int(np.any(region != WHITE, axis=2).sum())


def test_denoise_strip_is_slide_sized_with_a_label_under_every_tile():
    tiles = solid_tiles(6)
    labels = ["x_t", "noise eps", "predicted eps", "|eps - predicted eps|", "predicted x_0", "x_0"]
    picture = labelled_tiles(tiles, labels, slide_title("mnist_eps", "eps", "t = 304 of 1000"))
    assert picture.dtype == np.uint8 and picture.ndim == 3 and picture.shape[2] == 3
    assert max(picture.shape[:2]) >= SLIDE_LONG_SIDE
    boxes = [tile_box(picture, 60 + 10 * i) for i in range(6)]
    tops = {box[0] for box in boxes}
    assert len(tops) == 1  # one row
    top = tops.pop()
    assert ink(picture[:top]) > 200  # the title band holds text
    for (t, bottom, left, right), tile in zip(boxes, tiles):
        scale_h, scale_w = (bottom - t) / tile.shape[0], (right - left) / tile.shape[1]
        assert scale_h == scale_w and scale_h == int(scale_h) and scale_h >= 2  # a whole enlargement factor
        band = picture[bottom: picture.shape[0], left:right]
        assert ink(band) > 30, "no label under a tile"


def test_enlargement_is_nearest_neighbour():
    """Every source pixel becomes an s×s block of exactly its value (checked with np.kron, not with Pillow)."""
    rng = np.random.default_rng(0)
    tile = rng.integers(0, 256, size=(8, 8), dtype=np.uint8)
    marker = np.full((8, 8), 7, np.uint8)
    marker[0, 0] = 3  # a unique corner value locates the marker tile
    picture = labelled_tiles([marker, tile], ["a", "b"], "title")
    rows, cols = np.nonzero(np.all(picture == 3, axis=2))
    scale = rows.max() - rows.min() + 1
    marker_left = cols.min()
    top = rows.min()
    _, _, _, marker_right = tile_box(picture, 7)
    assert (marker_right - marker_left) == 8 * scale
    # the second tile starts after the marker and the gap; find it as the first non-white column after the marker
    after = picture[top, marker_right:, 0]
    left = marker_right + int(np.argmax(after != WHITE))
    expected = np.kron(tile, np.ones((scale, scale), np.uint8))
    assert np.array_equal(picture[top: top + 8 * scale, left: left + 8 * scale, 0], expected)


def test_sample_grid_in_columns_and_empty_labels_leave_no_ink():
    tiles = solid_tiles(16)
    picture = labelled_tiles(tiles, [""] * 16, "moons", columns=4)
    assert max(picture.shape[:2]) >= SLIDE_LONG_SIDE
    boxes = [tile_box(picture, 60 + 10 * i) for i in range(16)]
    assert len({box[0] for box in boxes}) == 4 and len({box[2] for box in boxes}) == 4  # 4 rows, 4 columns
    first, below = boxes[0], boxes[4]
    assert ink(picture[first[1]: below[0], first[2]: first[3]]) == 0  # no label: nothing drawn between the rows


def test_grid_tiles_maps_minus_one_to_one_onto_pixels():
    batch = torch.tensor([-2.0, -1.0, 0.0, 1.0, 3.0]).reshape(1, 1, 1, 5)
    assert grid_tiles(batch)[0].tolist() == [[0, 0, 128, 255, 255]]  # round((x + 1) * 127.5), clipped
    colour = grid_tiles(np.zeros((2, 3, 4, 5), np.float32))
    assert len(colour) == 2 and colour[0].shape == (4, 5, 3)


def test_bad_input_is_refused_with_a_message():
    with pytest.raises(ValueError, match="labels"):
        labelled_tiles(solid_tiles(2), ["one"], "t")
    with pytest.raises(ValueError, match="same size"):
        labelled_tiles([np.zeros((4, 4), np.uint8), np.zeros((5, 4), np.uint8)], ["a", "b"], "t")
    with pytest.raises(ValueError, match="uint8"):
        labelled_tiles([np.zeros((4, 4), np.float32)], ["a"], "t")
    with pytest.raises(ValueError, match="at least one"):
        labelled_tiles([], [], "t")


def test_title_names_model_prediction_and_detail():
    assert slide_title("mnist_v", "v", "t = 5 of 40") == "mnist_v (predicts v) · t = 5 of 40"
    assert "predicts the noise eps" in slide_title("m", "eps", "")
