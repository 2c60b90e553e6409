"""Sample-quality metrics for generated MNIST digits, measured with the small classifier of core/metrics/classifier.py.

* `frechet_distance`: the Fréchet (2-Wasserstein) distance between two Gaussians (Dowson & Landau 1982),
      d² = |μ1 − μ2|² + tr C1 + tr C2 − 2 tr (C1^½ C2 C1^½)^½.
* `mnist_fd`: that distance between Gaussians fitted to the classifier's 128-d penultimate features of
  generated and of real digits: "FID" (Heusel et al. 2017) with an MNIST network instead of Inception.
  Values are NOT comparable with published FIDs (different network, different feature space).
* `inception_score`: exp E_x KL(p(y|x) ‖ p(y)) (Salimans et al. 2016) with the classifier's p(y|x):
  between 1 (every sample gets the same prediction) and 10 (confident and class-balanced).
* `confident_fraction`: share of samples whose top class probability is >= a threshold.
* `mnist_quality(samples)`: all of them against the 500-digit held-out split; `mnist_real_floor(n)`:
  the same numbers for n REAL training digits, i.e. what a perfect model of the training data scores.

The FD estimate depends on the number of samples (a Gaussian fitted to fewer points is further from the
reference), so compare a model's FD only with the floor for the same n.
"""

from __future__ import annotations

import functools

import numpy as np
import torch

from core.checks import check_int, check_number
from core.data.datasets import load_dataset
from core.metrics.classifier import FEATURE_DIM, IMAGE_SHAPE, load_classifier
from core.rng import seeded_generator

DEFAULT_BATCH = 250


# ----------------------------------------------------------------------------- validation helpers

def _as_float64(value, name: str) -> torch.Tensor:
    if isinstance(value, np.ndarray):
        value = torch.from_numpy(value)
    if not isinstance(value, torch.Tensor) or not (value.is_floating_point() or value.dtype in (torch.int32, torch.int64)):
        raise ValueError(f"{name} must be a real-valued torch.Tensor or numpy array, got {type(value).__name__}")
    value = value.detach().to("cpu", torch.float64)
    if not bool(torch.isfinite(value).all()):
        raise ValueError(f"{name} must contain only finite values")
    return value


def _as_images(images, name: str = "images") -> torch.Tensor:
    """images unchanged if they are a finite float tensor [N, 1, 28, 28] with N >= 1 (anything else is refused)."""
    if not isinstance(images, torch.Tensor) or not images.is_floating_point():
        raise ValueError(f"{name} must be a floating-point torch.Tensor [N, 1, 28, 28] in [-1, 1], got {type(images).__name__}")
    if images.dim() != 4 or tuple(images.shape[1:]) != IMAGE_SHAPE or images.shape[0] < 1:
        raise ValueError(f"{name} must have shape [N, 1, 28, 28] with N >= 1, got {list(images.shape)}")
    if not bool(torch.isfinite(images).all()):
        raise ValueError(f"{name} must contain only finite values (a sampler diverged?)")
    return images


def _as_probs(probs) -> torch.Tensor:
    """probs as float64 [N, K] (N >= 1, K >= 2), non-negative rows summing to 1 (anything else is refused)."""
    probs = _as_float64(probs, "probs")
    if probs.dim() != 2 or probs.shape[0] < 1 or probs.shape[1] < 2:
        raise ValueError(f"probs must have shape [N, K] with N >= 1 and K >= 2, got {list(probs.shape)}")
    if bool((probs < 0).any()) or not torch.allclose(probs.sum(1), torch.ones(probs.shape[0], dtype=torch.float64), atol=1e-4):
        raise ValueError("probs must be non-negative with every row summing to 1")
    return probs


# ----------------------------------------------------------------------------- classifier outputs

def classifier_features_and_probs(images, batch_size: int = DEFAULT_BATCH) -> tuple[torch.Tensor, torch.Tensor]:
    """(features [N, 128], probs [N, 10]), both float64 on the CPU, from the shipped classifier.

    images: [N, 1, 28, 28] in [-1, 1]; values outside are clamped to [-1, 1] first (what a saved or
    displayed image would show). Runs on the CPU in batches of `batch_size`.
    """
    images = _as_images(images)
    batch_size = check_int("batch_size", batch_size, 1)
    classifier = load_classifier()
    features, probs = [], []
    with torch.no_grad():
        for chunk in images.detach().to("cpu", torch.float32).clamp(-1.0, 1.0).split(batch_size):
            chunk_features = classifier.features(chunk)
            features.append(chunk_features.double())
            probs.append(torch.softmax(classifier.head(chunk_features).double(), dim=1))
    return torch.cat(features), torch.cat(probs)


def feature_statistics(features) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean [D], covariance [D, D]) of features [N, D] in float64; unbiased covariance (divides by N − 1)."""
    features = _as_float64(features, "features")
    if features.dim() != 2 or features.shape[0] < 2:
        raise ValueError(f"features must have shape [N, D] with N >= 2, got {list(features.shape)}")
    mean = features.mean(0)
    centered = features - mean
    return mean, centered.T @ centered / (features.shape[0] - 1)


# ----------------------------------------------------------------------------- Fréchet distance

def _symmetric_sqrt(matrix: torch.Tensor) -> torch.Tensor:
    """M^½ of a symmetric PSD matrix via eigendecomposition; round-off negative eigenvalues become 0."""
    eigenvalues, eigenvectors = torch.linalg.eigh(matrix)
    return (eigenvectors * eigenvalues.clamp(min=0).sqrt()) @ eigenvectors.T


def frechet_distance(mu1, cov1, mu2, cov2) -> float:
    """Squared Fréchet distance between N(mu1, cov1) and N(mu2, cov2), in float64:

    d² = |μ1 − μ2|² + tr C1 + tr C2 − 2 tr (C1^½ C2 C1^½)^½.

    C1^½ C2 C1^½ is symmetric PSD and has the eigenvalues of C1 C2, so its trace-square-root equals the
    usual tr (C1 C2)^½ but can be computed with symmetric eigendecompositions only (no complex parts, no
    scipy). Covariances must be symmetric (to 1e-6 relative) and PSD; singular ones are fine.
    Tiny negative results of round-off are returned as 0.
    """
    mu1, mu2 = _as_float64(mu1, "mu1"), _as_float64(mu2, "mu2")
    cov1, cov2 = _as_float64(cov1, "cov1"), _as_float64(cov2, "cov2")
    if mu1.dim() != 1 or mu1.shape != mu2.shape:
        raise ValueError(f"mu1 and mu2 must be vectors of the same length, got {list(mu1.shape)} and {list(mu2.shape)}")
    d = mu1.shape[0]
    for name, cov in (("cov1", cov1), ("cov2", cov2)):
        if tuple(cov.shape) != (d, d):
            raise ValueError(f"{name} must have shape [{d}, {d}] to match the means, got {list(cov.shape)}")
        scale = max(float(cov.abs().max()), 1e-300)
        if float((cov - cov.T).abs().max()) > 1e-6 * scale:
            raise ValueError(f"{name} must be symmetric")
    cov1, cov2 = 0.5 * (cov1 + cov1.T), 0.5 * (cov2 + cov2.T)
    sqrt_cov1 = _symmetric_sqrt(cov1)
    middle = sqrt_cov1 @ cov2 @ sqrt_cov1
    middle = 0.5 * (middle + middle.T)  # symmetric in exact arithmetic; remove round-off asymmetry
    trace_sqrt = float(torch.linalg.eigvalsh(middle).clamp(min=0).sqrt().sum())
    distance = float(((mu1 - mu2) ** 2).sum()) + float(cov1.trace()) + float(cov2.trace()) - 2.0 * trace_sqrt
    return max(distance, 0.0)


def _statistics_of(value, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Feature statistics of images [N, 1, 28, 28], or a ready (mean, covariance) pair."""
    if isinstance(value, (tuple, list)) and len(value) == 2:
        mean, cov = _as_float64(value[0], f"{name}[0]"), _as_float64(value[1], f"{name}[1]")
        if tuple(mean.shape) != (FEATURE_DIM,) or tuple(cov.shape) != (FEATURE_DIM, FEATURE_DIM):
            raise ValueError(f"{name} as (mean, covariance) must have shapes [{FEATURE_DIM}] and "
                             f"[{FEATURE_DIM}, {FEATURE_DIM}], got {list(mean.shape)} and {list(cov.shape)}")
        return mean, cov
    if isinstance(value, torch.Tensor):
        images = _as_images(value, name)
        if images.shape[0] < 2:
            raise ValueError(f"{name} needs at least 2 images for a covariance, got {images.shape[0]}")
        return feature_statistics(classifier_features_and_probs(images)[0])
    raise ValueError(f"{name} must be images [N, 1, 28, 28] or a (mean, covariance) pair, got {type(value).__name__}")


def mnist_fd(samples, reference) -> float:
    """Fréchet distance between the classifier features of `samples` and of `reference`.

    Each argument is images [N, 1, 28, 28] in [-1, 1] (N >= 2) or a (mean [128], covariance [128, 128])
    pair from `feature_statistics` (e.g. `held_out_statistics()`).
    """
    return frechet_distance(*_statistics_of(samples, "samples"), *_statistics_of(reference, "reference"))


# ----------------------------------------------------------------------------- probability-based scores

def inception_score(probs, splits: int = 1) -> float:
    """exp(E_x KL(p(y|x) ‖ p(y))) with p(y) the mean prediction (Salimans et al. 2016), in [1, K].

    probs [N, K]: rows of class probabilities. With splits > 1 the rows are cut into that many contiguous
    groups, the score is computed per group and the mean over groups is returned (the usual protocol).
    0·log 0 counts as 0.
    """
    probs = _as_probs(probs)
    splits = check_int("splits", splits, 1, probs.shape[0])
    scores = []
    for group in probs.tensor_split(splits):
        marginal = group.mean(0, keepdim=True)
        # p·(log p − log p̄), with 0 where p = 0 (then p̄ may be 0 too)
        kl = torch.where(group > 0, group * (group.log() - marginal.log()), torch.zeros_like(group)).sum(1)
        scores.append(float(torch.exp(kl.mean())))
    return float(np.mean(scores))


def confident_fraction(probs, threshold: float = 0.9) -> float:
    """Fraction of rows whose largest probability is >= threshold (a "recognisable digit" rate).

    The comparison is done in float64. A classifier is over-confident on inputs unlike anything it was
    trained on (the shipped one calls pure noise an "8" with p ≈ 1), so read this together with FD and IS.
    """
    probs = _as_probs(probs)
    threshold = check_number("threshold", threshold, 0.0, 1.0, open_low=True)
    return float((probs.max(1).values >= threshold).double().mean())


def class_histogram(probs) -> list[int]:
    """How many rows have each class as their most likely one: a list of K counts."""
    probs = _as_probs(probs)
    return torch.bincount(probs.argmax(1), minlength=probs.shape[1]).tolist()


# ----------------------------------------------------------------------------- convenience

@functools.lru_cache(maxsize=1)
def held_out_statistics() -> tuple[torch.Tensor, torch.Tensor]:
    """Feature (mean, covariance) of the 500-digit held-out (test) split: the FD reference. Cached."""
    return feature_statistics(classifier_features_and_probs(load_dataset("mnist", split="test").data)[0])


def mnist_quality(samples, threshold: float = 0.9) -> dict:
    """All MNIST metrics of generated digits [N, 1, 28, 28] (N >= 2) against the held-out split:

    {"n", "fd" (vs the 500 held-out digits), "inception_score", "confident_fraction" (top prob >=
    threshold), "class_histogram" (argmax counts, 10 ints)}.
    """
    samples = _as_images(samples, "samples")
    if samples.shape[0] < 2:
        raise ValueError(f"samples needs at least 2 images for a covariance, got {samples.shape[0]}")
    features, probs = classifier_features_and_probs(samples)
    return {
        "n": samples.shape[0],
        "fd": frechet_distance(*feature_statistics(features), *held_out_statistics()),
        "inception_score": inception_score(probs),
        "confident_fraction": confident_fraction(probs, threshold),
        "class_histogram": class_histogram(probs),
    }


@functools.lru_cache(maxsize=16)
def mnist_real_floor(n: int = 500, seed: int = 0) -> dict:
    """`mnist_quality` of n REAL digits: what a perfect model of the training data would score.

    The n digits are drawn without replacement from the 4,500-digit TRAINING split (the data the
    diffusion models learn from) with torch.Generator().manual_seed(seed), and compared with the same
    reference as generated samples: the 500 held-out digits. Because the classifier was trained on these
    digits, their inception score and confident fraction are slightly optimistic; the same two numbers on
    the held-out digits (never seen in training) are added as "held_out_inception_score" and
    "held_out_confident_fraction". Cached per (n, seed); do not modify the returned dict.
    """
    n = check_int("n (digits of the 4,500-digit training split)", n, 2, 4500)
    generator = seeded_generator(seed)
    train_images = load_dataset("mnist", split="train").data
    chosen = torch.randperm(train_images.shape[0], generator=generator)[:n]
    floor = mnist_quality(train_images[chosen])
    _, held_out_probs = classifier_features_and_probs(load_dataset("mnist", split="test").data)
    floor["held_out_inception_score"] = inception_score(held_out_probs)
    floor["held_out_confident_fraction"] = confident_fraction(held_out_probs)
    floor["description"] = (f"{n} real training digits (seed {seed}) vs the 500 held-out digits; "
                            "held_out_* = the 500 held-out digits themselves")
    return floor
