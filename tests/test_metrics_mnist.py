"""MNIST metrics: Fréchet distance against closed forms, IS / confident fraction on hand-made
probabilities, and the shipped classifier on real data."""

import math

import numpy as np
import pytest
import torch

from core.data.datasets import load_dataset
from core.metrics.classifier import CLASSIFIER_PATH, FEATURE_DIM, load_classifier_file, read_classifier_metadata
from core.metrics.mnist import (
    class_histogram,
    classifier_features_and_probs,
    confident_fraction,
    feature_statistics,
    frechet_distance,
    held_out_statistics,
    inception_score,
    mnist_fd,
    mnist_quality,
    mnist_real_floor,
)

# The held-out accuracy measured when the shipped classifier was trained (see checkpoints/README.md).
MIN_HELD_OUT_ACCURACY = 0.95


def random_spd(d, generator, rank=None):
    a = torch.randn(d, rank or d, generator=generator, dtype=torch.float64)
    return a @ a.T + (0.0 if rank else 0.1) * torch.eye(d, dtype=torch.float64)


def trace_sqrt_denman_beavers(a: np.ndarray, iterations: int = 60) -> float:
    """tr A^½ for a matrix with positive real eigenvalues (A = C1 C2 need not be symmetric),
    by the Denman–Beavers iteration Y <- (Y + Z^-1)/2, Z <- (Z + Y^-1)/2, which converges to (A^½, A^-½)."""
    y, z = a.copy(), np.eye(len(a))
    for _ in range(iterations):
        y, z = 0.5 * (y + np.linalg.inv(z)), 0.5 * (z + np.linalg.inv(y))
    return float(np.trace(y))


# ----------------------------------------------------------------------------- Fréchet distance

def test_identical_gaussians_have_distance_zero():
    g = torch.Generator().manual_seed(0)
    mu, cov = torch.randn(6, generator=g, dtype=torch.float64), random_spd(6, g)
    assert frechet_distance(mu, cov, mu, cov) == pytest.approx(0.0, abs=1e-9)


def test_same_covariance_shifted_means_gives_squared_shift():
    g = torch.Generator().manual_seed(1)
    cov = random_spd(5, g)
    mu1 = torch.randn(5, generator=g, dtype=torch.float64)
    shift = torch.tensor([1.0, -2.0, 0.5, 0.0, 3.0], dtype=torch.float64)
    assert frechet_distance(mu1, cov, mu1 + shift, cov) == pytest.approx(1 + 4 + 0.25 + 9, rel=1e-9)


def test_diagonal_covariances_closed_form():
    a = torch.tensor([1.0, 4.0, 0.25, 9.0], dtype=torch.float64)
    b = torch.tensor([4.0, 1.0, 1.0, 0.0], dtype=torch.float64)  # one zero variance: a singular covariance
    mu1, mu2 = torch.zeros(4, dtype=torch.float64), torch.tensor([0.0, 1.0, 0.0, 0.0], dtype=torch.float64)
    expected = 1.0 + ((a.sqrt() - b.sqrt()) ** 2).sum().item()  # |Δμ|² + Σ(√a − √b)² = 1 + (1 + 1 + 0.25 + 9)
    assert expected == pytest.approx(12.25)
    assert frechet_distance(mu1, torch.diag(a), mu2, torch.diag(b)) == pytest.approx(expected, rel=1e-12)


def test_commuting_covariances_share_eigenvectors():
    # C1 = Q diag(a) Qᵀ, C2 = Q diag(b) Qᵀ commute, so tr(C1 C2)^½ = Σ √(a b) and d² = Σ (√a − √b)².
    q, _ = torch.linalg.qr(torch.randn(4, 4, generator=torch.Generator().manual_seed(2), dtype=torch.float64))
    a = torch.tensor([0.5, 2.0, 3.0, 7.0], dtype=torch.float64)
    b = torch.tensor([1.5, 2.0, 0.1, 1.0], dtype=torch.float64)
    cov1, cov2 = q @ torch.diag(a) @ q.T, q @ torch.diag(b) @ q.T
    zero = torch.zeros(4, dtype=torch.float64)
    assert frechet_distance(zero, cov1, zero, cov2) == pytest.approx(((a.sqrt() - b.sqrt()) ** 2).sum().item(), rel=1e-10)


def test_non_commuting_2x2_against_the_trace_formula():
    # For a 2x2 matrix with eigenvalues λ1, λ2 >= 0: (tr A^½)² = λ1 + λ2 + 2√(λ1 λ2) = tr A + 2√det A.
    cov1 = torch.tensor([[2.0, 0.9], [0.9, 1.0]], dtype=torch.float64)
    cov2 = torch.tensor([[1.0, -0.5], [-0.5, 3.0]], dtype=torch.float64)
    assert not torch.allclose(cov1 @ cov2, cov2 @ cov1)
    product = cov1 @ cov2
    trace_sqrt = math.sqrt(product.trace().item() + 2 * math.sqrt(torch.linalg.det(product).item()))
    mu1, mu2 = torch.tensor([0.0, 1.0], dtype=torch.float64), torch.tensor([2.0, -1.0], dtype=torch.float64)
    expected = 8.0 + 3.0 + 4.0 - 2 * trace_sqrt
    assert frechet_distance(mu1, cov1, mu2, cov2) == pytest.approx(expected, rel=1e-10)


def expected_distance(mu1, cov1, mu2, cov2, trace_sqrt):
    return ((mu1 - mu2) ** 2).sum().item() + cov1.trace().item() + cov2.trace().item() - 2 * trace_sqrt


def test_non_commuting_high_dimension_against_denman_beavers():
    g = torch.Generator().manual_seed(3)
    d = 12
    cov1, cov2 = random_spd(d, g), random_spd(d, g)
    mu1, mu2 = torch.randn(d, generator=g, dtype=torch.float64), torch.randn(d, generator=g, dtype=torch.float64)
    expected = expected_distance(mu1, cov1, mu2, cov2, trace_sqrt_denman_beavers((cov1 @ cov2).numpy()))
    assert frechet_distance(mu1, cov1, mu2, cov2) == pytest.approx(expected, rel=1e-9)


def test_non_commuting_singular_against_eigenvalues_of_the_product():
    # C1 C2 is similar to C1^½ C2 C1^½, so tr (C1 C2)^½ = Σ √λ_i over the (real, >= 0) eigenvalues of C1 C2.
    g = torch.Generator().manual_seed(7)
    d = 10
    cov1, cov2 = random_spd(d, g, rank=6), random_spd(d, g, rank=8)  # both singular, like ReLU features
    mu1, mu2 = torch.randn(d, generator=g, dtype=torch.float64), torch.zeros(d, dtype=torch.float64)
    eigenvalues = np.linalg.eigvals((cov1 @ cov2).numpy())
    trace_sqrt = np.sqrt(np.clip(eigenvalues.real, 0, None)).sum()
    expected = expected_distance(mu1, cov1, mu2, cov2, trace_sqrt)
    assert frechet_distance(mu1, cov1, mu2, cov2) == pytest.approx(expected, rel=1e-6)


def test_frechet_distance_is_symmetric_and_accepts_numpy():
    g = torch.Generator().manual_seed(4)
    cov1, cov2 = random_spd(7, g), random_spd(7, g)
    mu1, mu2 = torch.randn(7, generator=g, dtype=torch.float64), torch.zeros(7, dtype=torch.float64)
    forward = frechet_distance(mu1, cov1, mu2, cov2)
    assert frechet_distance(mu2.numpy(), cov2.numpy(), mu1.numpy(), cov1.numpy()) == pytest.approx(forward, rel=1e-9)


def test_frechet_distance_rejects_bad_inputs():
    eye = torch.eye(3, dtype=torch.float64)
    zero = torch.zeros(3, dtype=torch.float64)
    with pytest.raises(ValueError, match="cov2"):
        frechet_distance(zero, eye, zero, torch.eye(4, dtype=torch.float64))
    with pytest.raises(ValueError, match="symmetric"):
        frechet_distance(zero, eye, zero, torch.tensor([[1.0, 0.5, 0], [0, 1.0, 0], [0, 0, 1.0]]))
    with pytest.raises(ValueError, match="mu1 and mu2"):
        frechet_distance(zero, eye, torch.zeros(2), eye)
    with pytest.raises(ValueError, match="finite"):
        frechet_distance(torch.tensor([0.0, math.nan, 0.0]), eye, zero, eye)


def test_feature_statistics_matches_numpy():
    x = torch.randn(50, 4, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    mean, cov = feature_statistics(x)
    np.testing.assert_allclose(mean.numpy(), x.numpy().mean(0), rtol=1e-12)
    np.testing.assert_allclose(cov.numpy(), np.cov(x.numpy(), rowvar=False), rtol=1e-10)


# ----------------------------------------------------------------------------- IS, confidence, histogram

def test_inception_score_limits():
    one_class = torch.zeros(20, 10)
    one_class[:, 3] = 1.0
    assert inception_score(one_class) == pytest.approx(1.0)
    uniform_confident = torch.eye(10).repeat(3, 1)  # one-hot, each class equally often
    assert inception_score(uniform_confident) == pytest.approx(10.0)
    assert inception_score(torch.full((8, 10), 0.1)) == pytest.approx(1.0)  # unsure about everything


def test_inception_score_hand_computed_two_classes():
    # rows (1, 0) and (0.5, 0.5): p(y) = (0.75, 0.25);
    # KL1 = log(1/0.75); KL2 = 0.5 log(0.5/0.75) + 0.5 log(0.5/0.25)
    probs = torch.tensor([[1.0, 0.0], [0.5, 0.5]])
    kl1 = math.log(1 / 0.75)
    kl2 = 0.5 * math.log(0.5 / 0.75) + 0.5 * math.log(2.0)
    assert inception_score(probs) == pytest.approx(math.exp((kl1 + kl2) / 2), rel=1e-12)


def test_inception_score_splits_average_per_group_scores():
    # first half all class 0 (IS 1), second half two classes balanced (IS 2) -> mean 1.5 with 2 splits
    probs = torch.zeros(8, 10)
    probs[:4, 0] = 1.0
    probs[4:6, 1] = 1.0
    probs[6:, 2] = 1.0
    assert inception_score(probs, splits=2) == pytest.approx(1.5)
    assert inception_score(probs, splits=1) == pytest.approx(math.exp(-(0.5 * math.log(0.5) + 2 * 0.25 * math.log(0.25))))


def test_confident_fraction_and_histogram():
    probs = torch.tensor([[0.95, 0.05, 0.0], [0.9, 0.1, 0.0], [0.2, 0.3, 0.5], [0.0, 0.0, 1.0]], dtype=torch.float64)
    assert confident_fraction(probs, 0.9) == pytest.approx(0.75)  # >= threshold counts
    assert confident_fraction(probs, 0.96) == pytest.approx(0.25)
    assert class_histogram(probs) == [2, 0, 2]


@pytest.mark.parametrize("bad", [torch.tensor([[0.5, 0.6]]), torch.tensor([[1.5, -0.5]]), torch.ones(3)])
def test_probability_validation(bad):
    with pytest.raises(ValueError, match="probs"):
        inception_score(bad)
    with pytest.raises(ValueError, match="threshold"):
        confident_fraction(torch.tensor([[1.0, 0.0]]), threshold=1.5)
    with pytest.raises(ValueError, match="splits"):
        inception_score(torch.tensor([[1.0, 0.0]]), splits=2)


# ----------------------------------------------------------------------------- the shipped classifier

def test_shipped_classifier_loads_validated_and_reaches_its_accuracy():
    metadata = read_classifier_metadata()
    assert metadata["held_out_accuracy"] >= MIN_HELD_OUT_ACCURACY
    for key in ("command", "seed", "architecture"):
        assert key in metadata
    test_set = load_dataset("mnist", split="test")
    _, probs = classifier_features_and_probs(test_set.data)
    measured = (probs.argmax(1) == test_set.labels).double().mean().item()
    assert measured >= MIN_HELD_OUT_ACCURACY
    assert measured == pytest.approx(metadata["held_out_accuracy"], abs=1e-6)


def test_classifier_file_with_wrong_tensors_is_rejected(tmp_path):
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    with safe_open(str(CLASSIFIER_PATH), framework="pt") as handle:
        header = handle.metadata()
    tensors = load_file(str(CLASSIFIER_PATH))
    tensors["head.weight"] = tensors["head.weight"][:5]
    bad = tmp_path / "bad.safetensors"
    save_file(tensors, str(bad), metadata=header)
    with pytest.raises(ValueError, match="head.weight"):
        load_classifier_file(bad)
    save_file({"x": torch.zeros(1)}, str(tmp_path / "plain.safetensors"))
    with pytest.raises(ValueError, match="metadata"):
        load_classifier_file(tmp_path / "plain.safetensors")


def test_real_digits_score_far_better_than_noise():
    floor = mnist_real_floor(500)
    noise = torch.randn(500, 1, 28, 28, generator=torch.Generator().manual_seed(6)).clamp(-1, 1)
    noise_quality = mnist_quality(noise)
    assert floor["fd"] * 10 < noise_quality["fd"]
    assert floor["confident_fraction"] > 0.9 and floor["held_out_confident_fraction"] > 0.9
    # The classifier calls all noise images the same digit (often confidently: it has never seen noise),
    # so noise gets an inception score near 1; real digits are diverse and recognisable.
    assert floor["inception_score"] > 8.0 and floor["held_out_inception_score"] > 8.0
    assert noise_quality["inception_score"] < 2.0
    assert sum(floor["class_histogram"]) == 500 and min(floor["class_histogram"]) > 30


def test_mnist_fd_accepts_images_or_statistics_and_is_zero_on_itself():
    test_images = load_dataset("mnist", split="test").data
    assert mnist_fd(test_images, held_out_statistics()) == pytest.approx(0.0, abs=1e-6)
    mean, cov = held_out_statistics()
    assert mean.shape == (FEATURE_DIM,) and cov.shape == (FEATURE_DIM, FEATURE_DIM)
    train_images = load_dataset("mnist", split="train").data[:300]
    assert mnist_fd(train_images, test_images) == pytest.approx(mnist_fd(train_images, (mean, cov)), rel=1e-9)
    with pytest.raises(ValueError, match="samples"):
        mnist_fd(torch.zeros(3, 1, 32, 32), test_images)


def test_core_reexports_the_metrics_a_user_calls():
    import core

    for name in ("frechet_distance", "mnist_fd", "inception_score", "confident_fraction", "mnist_quality",
                 "mnist_real_floor"):
        assert getattr(core, name) is globals()[name]
