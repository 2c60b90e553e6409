"""core/lab/time_inputs.py against the identity emb(t)·emb(s) = Σᵢ cos((t − s) fᵢ) summed by hand."""

import math

import pytest
import torch

from core.lab.time_inputs import first_last_similarity, raw_linear_scales
from core.nets.embedding import timestep_embedding


def hand_similarity(delta, dim):
    half = dim // 2
    return sum(math.cos(delta * 10000 ** (-i / (half - 1))) for i in range(half)) / half  # |emb|² = half


@pytest.mark.parametrize("T,dim", [(1000, 64), (50, 16)])
def test_similarities_match_the_cosine_identity(T, dim):
    result = first_last_similarity(T, dim)
    assert result["integer"] == pytest.approx(hand_similarity(T - 1, dim), abs=1e-9)
    assert result["fraction"] == pytest.approx(hand_similarity((T - 1) / T, dim), abs=1e-9)
    assert result["fraction"] > 0.9 > result["integer"]  # t/T squeezes every step into (almost) one vector


def test_integer_formula_is_the_network_embedding():
    e = timestep_embedding(torch.tensor([0, 999]), 64).double()
    expected = float(e[0] @ e[1] / (e[0].norm() * e[1].norm()))
    assert first_last_similarity(1000, 64)["integer"] == pytest.approx(expected, abs=1e-5)


def test_raw_linear_grows_with_t_and_normalising_fixes_it():
    result = raw_linear_scales(1000, 64, torch.Generator().manual_seed(0))
    assert result["raw_last"] / result["raw_first"] > 100
    assert result["normalised_last"] < 2 and result["normalised_first"] < 2
    with pytest.raises(ValueError):
        first_last_similarity(1000, 63)
