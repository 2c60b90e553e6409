"""core.rng: seeded generators and noise, the seed range checked once."""

import pytest
import torch

from core.rng import MAX_SEED, seeded_generator, seeded_noise


def test_seeded_generator_reproduces_torch_manual_seed():
    for seed in (0, 7, MAX_SEED):
        expected = torch.rand(5, generator=torch.Generator().manual_seed(seed))
        assert torch.equal(torch.rand(5, generator=seeded_generator(seed)), expected)


@pytest.mark.parametrize("seed", [-1, MAX_SEED + 1, 1.5, True, "3", None])
def test_seeds_outside_the_range_are_named(seed):
    with pytest.raises(ValueError, match=r"seed=.*expected an integer in 0\.\.9007199254740991"):
        seeded_generator(seed)


def test_seeded_noise_is_reproducible_and_standard_normal():
    a, b = seeded_noise((20000,), 3), seeded_noise((20000,), 3)
    assert a.dtype == torch.float64 and torch.equal(a, b) and not torch.equal(a, seeded_noise((20000,), 4))
    assert abs(float(a.mean())) < 0.03 and float(a.var()) == pytest.approx(1.0, abs=0.03)
    assert seeded_noise((2, 3), 0, dtype=torch.float32).dtype == torch.float32
    with pytest.raises(ValueError, match="seed"):
        seeded_noise((3,), -1)
