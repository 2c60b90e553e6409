"""core/lab/drawing.py: brushes checked against their geometry, the bounds of a drawing, the event parser, and a short
training run whose exact-denoiser samples land on the drawn points."""

import math

import pytest
import torch

from core.lab import drawing


def test_line_circle_and_blob_have_their_geometry_and_repeat_with_the_seed():
    line = drawing.brush("line", 400, 3, (0.2, -0.1), 0.6, 30)
    direction = torch.tensor([math.cos(math.radians(30)), math.sin(math.radians(30))])
    relative = line - torch.tensor([0.2, -0.1])
    across = relative @ torch.tensor([-direction[1], direction[0]])  # distance from the line
    assert across.std().item() == pytest.approx(drawing.JITTER, rel=0.2)
    assert (relative @ direction).abs().max().item() <= 0.6 + 4 * drawing.JITTER
    circle = drawing.brush("circle", 400, 3, (0.0, 0.5), 0.7)
    radii = (circle - torch.tensor([0.0, 0.5])).norm(dim=1)
    assert radii.mean().item() == pytest.approx(0.7, abs=0.01)
    blob = drawing.brush("blob", 400, 3, (-0.5, 0.5), 0.4)
    assert blob.mean(0).tolist() == pytest.approx([-0.5, 0.5], abs=0.04) and blob.std(0).mean().item() == pytest.approx(0.2, rel=0.15)
    assert torch.equal(drawing.brush("blob", 50, 9), drawing.brush("blob", 50, 9))
    assert not torch.equal(drawing.brush("blob", 50, 9), drawing.brush("blob", 50, 10))


def test_a_drawing_is_bounded_finite_and_clipped():
    points, left_out = drawing.add_points(None, [[0.0, 0.0], [float("nan"), 1.0], [5.0, -9.0], [float("inf"), 0.0]])
    assert points.tolist() == [[0.0, 0.0], [drawing.LIMIT, -drawing.LIMIT]] and left_out == 0
    big = torch.zeros(drawing.MAX_POINTS - 1, 2)
    points, left_out = drawing.add_points(big, torch.ones(5, 2))
    assert len(points) == drawing.MAX_POINTS and left_out == 4
    with pytest.raises(ValueError):
        drawing.brush("square", 10, 0)
    with pytest.raises(ValueError):
        drawing.brush("line", drawing.MAX_BRUSH + 1, 0)
    with pytest.raises(ValueError):
        drawing.clip_points(torch.zeros(3, 3))


def test_selection_events_are_read_defensively():
    event = {"selection": {"points": [{"x": 0.5, "y": -0.25}, {"x": "a", "y": 1}, {"y": 2}, {"x": 9, "y": 0}]}}
    assert drawing.selected_points(event).tolist() == [[0.5, -0.25], [drawing.LIMIT, 0.0]]
    for bad in (None, {}, {"selection": None}, {"selection": {"points": "x"}}, []):
        assert drawing.selected_points(bad).shape == (0, 2)
    on_canvas = {"selection": {"points": [{"x": 0.1, "y": 0.2, "curve_number": 0}, {"x": 0.3, "y": 0.4, "curve_number": 1}]}}
    assert drawing.selected_points(on_canvas, curve=0).tolist()[0] == pytest.approx([0.1, 0.2])
    assert len(drawing.selected_points(on_canvas, curve=0)) == 1
    grid = drawing.canvas(5)
    assert grid.shape == (25, 2) and grid.min().item() == -drawing.LIMIT and grid.max().item() == drawing.LIMIT


def test_training_and_the_exact_denoiser_on_a_drawing():
    points = drawing.brush("circle", 200, 0, (0.0, 0.0), 0.8)
    trained = drawing.train_on_points(points, 40, 0)
    assert len(trained.losses) == 40 and all(math.isfinite(loss) for loss in trained.losses)
    result = drawing.compare_with_exact(trained, points, 200, 0)
    # the exact denoiser of a finite set ends on (or next to) the drawn points: its last step is E[x₀ | x₁]
    nearest = torch.cdist(result.exact.double(), points.double()).min(dim=1).values
    assert nearest.median().item() < 0.05
    assert result.distance_exact < result.distance_network  # 40 steps of training are far from the exact denoiser
    with pytest.raises(ValueError, match="at least 2 points"):
        drawing.train_on_points(points[:1], 40, 0)
