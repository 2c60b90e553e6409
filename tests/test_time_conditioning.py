"""core.lab.time_conditioning: the embedding's similarity (closed form), the three training variants."""

import math

import pytest
import torch

from core.lab.time_conditioning import (
    VARIANTS,
    ExperimentSettings,
    WithoutTime,
    cosine_similarity,
    embedding_matrix,
    run_experiment,
    train_variant,
)
from core.metrics.points import sliced_wasserstein


def test_similarity_depends_only_on_the_distance():
    """emb(t)·emb(s) = Σ_i cos((t − s) f_i) with f_i = 10000^(−i/(h−1)) and ‖emb‖² = h (h = d/2), by hand."""
    T, dim = 60, 16
    half = dim // 2
    similarity = cosine_similarity(embedding_matrix(T, dim))
    frequencies = [10000 ** (-i / (half - 1)) for i in range(half)]
    for t, s in ((0, 0), (3, 7), (10, 50), (59, 1)):
        expected = sum(math.cos((t - s) * f) for f in frequencies) / half
        assert float(similarity[t, s]) == pytest.approx(expected, abs=1e-5)
    assert float(similarity[5, 9]) == pytest.approx(float(similarity[30, 34]), abs=1e-5)
    assert float(similarity[10, 11]) > float(similarity[10, 40])  # near steps look alike


def test_without_time_always_passes_zero():
    seen = []
    wrapped = WithoutTime(lambda x, t: seen.append(t.clone()) or x)
    wrapped(torch.zeros(3, 2), torch.tensor([5, 6, 7]))
    assert seen[0].tolist() == [0, 0, 0]


def test_training_is_reproducible_and_reports_progress():
    settings = ExperimentSettings(steps=5, batch=16)
    calls = []
    first = train_variant("normal", settings, lambda done, total: calls.append((done, total)))
    second = train_variant("normal", settings)
    assert calls == [(k, 5) for k in range(1, 6)]
    for a, b in zip(first.parameters(), second.parameters()):
        assert torch.equal(a, b)
    assert isinstance(train_variant("no_time", settings), WithoutTime)
    with pytest.raises(ValueError, match="single_t"):
        ExperimentSettings(single_t=100).checked()
    with pytest.raises(ValueError, match="variant"):
        train_variant("later", settings)


def test_only_the_normal_model_reproduces_the_data():
    """Seeded, so deterministic: with 400 steps on the eight Gaussians, taking t away costs sample quality."""
    settings = ExperimentSettings(steps=400, n_samples=600)
    fractions = []
    results = run_experiment(settings, fractions.append)
    assert fractions[-1] == pytest.approx(1.0) and fractions == sorted(fractions)
    distance = {v: sliced_wasserstein(results[v], results["data"], generator=torch.Generator().manual_seed(0)) for v in VARIANTS}
    assert distance["normal"] < 0.7 * distance["single_t"]
    assert distance["normal"] < 0.9 * distance["no_time"]
