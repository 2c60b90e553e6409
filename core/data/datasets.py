"""Datasets for Reverse Diffusion Lab: real digits and 2-D toy distributions.

Every dataset comes back as a `Dataset` whose `data` is a float32 tensor on a common scale:

* images: [N, C, H, W], pixel p in 0..255 mapped to p / 127.5 - 1, so exactly [-1, 1]
  (the DDPM convention, Ho et al. 2020, Sec. 3.3); `core.data.images.to_uint8` is the inverse.
* points: [N, 2], a 2-D toy scaled to "unit scale": every toy lives (up to small Gaussian tails)
  inside the square [-1, 1]^2, with a per-coordinate standard deviation of roughly 0.3..0.6.

Names (see DATASET_NAMES):

* "mnist": the committed 5,000-digit subset in data/mnist_subset.npz (4,500 train / 500 test,
  class-balanced; see data/README.md). Needs no download.
* "mnist_full", "fashion_mnist": the standard IDX files read by core/data/idx.py from
  `<root>/mnist/` or `<root>/fashion_mnist/` (<root> is `data_dir` or $RDL_DATA_DIR). Nothing is
  downloaded at run time.
* the toys in TOY_NAMES (core/data/toys.py), drawn from a seeded torch.Generator.
"""

from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

import numpy as np
import torch

from core import paths
from core.checks import check_choice, check_int
from core.data.idx import IDX_SUBFOLDERS, DatasetFileNotFoundError, load_idx_split
from core.data.toys import TOY_NAMES, sample_toy_with_labels
from core.rng import seeded_generator

IMAGE_DATASET_NAMES = ("mnist", "mnist_full", "fashion_mnist")
DATASET_NAMES = IMAGE_DATASET_NAMES + TOY_NAMES
SPLITS = ("train", "test")
DataKind = Literal["image", "points"]
KINDS: tuple[DataKind, ...] = get_args(DataKind)
MNIST_SUBSET_PATH = paths.mnist_subset_path()  # shipped with the app (a checkout's data/ or the installed package)


@dataclass(frozen=True)
class Dataset:
    """A whole dataset held in memory.

    name:   one of DATASET_NAMES
    kind:   "image" (data [N, C, H, W] in [-1, 1]) or "points" (data [N, 2])
    data:   float32 tensor, one example per row
    labels: int64 tensor [N] (digit class; mixture component or moon for toys) or None
    """

    name: str
    kind: DataKind
    data: torch.Tensor
    labels: torch.Tensor | None = None

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"kind={self.kind!r} is not allowed; expected one of {KINDS}")
        if not isinstance(self.data, torch.Tensor) or self.data.dtype != torch.float32:
            raise ValueError("data must be a float32 torch.Tensor")
        expected_dims = 4 if self.kind == "image" else 2
        if self.data.dim() != expected_dims:
            raise ValueError(f"data of kind {self.kind!r} must have {expected_dims} dims, "
                             f"got shape {tuple(self.data.shape)}")
        if self.labels is not None:
            if self.labels.dtype != torch.int64 or self.labels.shape != (len(self.data),):
                raise ValueError(f"labels must be an int64 tensor of shape ({len(self.data)},), got "
                                 f"{self.labels.dtype} {tuple(self.labels.shape)}")

    def __len__(self) -> int:
        return self.data.shape[0]

    @property
    def data_shape(self) -> tuple[int, ...]:
        """Shape of ONE example: (C, H, W) for images, (2,) for points."""
        return tuple(self.data.shape[1:])

    @property
    def channels(self) -> int:
        """Image channels C, or the point dimension (2) for toys: the model's input width."""
        return self.data.shape[1]

    @property
    def image_size(self) -> int | None:
        """Side length H of square images; None for points."""
        return self.data.shape[2] if self.kind == "image" else None

    @property
    def num_classes(self) -> int | None:
        """Number of distinct label values (max label + 1), or None without labels."""
        return None if self.labels is None else int(self.labels.max()) + 1


# ----------------------------------------------------------------------------- public entry point

def load_dataset(name: str, split: str = "train", data_dir: str | os.PathLike | None = None,
                 seed: int = 0, n_points: int = 8192) -> Dataset:
    """Load dataset `name` (one of DATASET_NAMES), split "train" or "test".

    data_dir is only used by "mnist_full"/"fashion_mnist" (root folder holding mnist/ and
    fashion_mnist/; default: $RDL_DATA_DIR). seed and n_points are only used by the toys: the
    train split is the first n_points draws of torch.Generator().manual_seed(seed), the test
    split the next n_points draws of the same generator, so the two never coincide.

    Every call returns fresh tensors: changing them in place cannot affect later calls.
    """
    check_choice("name", name, DATASET_NAMES)
    check_choice("split", split, SPLITS)
    if name == "mnist":
        images, labels = _load_mnist_subset_arrays(str(MNIST_SUBSET_PATH), split)
        return _image_dataset(name, images, labels)
    if name in IDX_SUBFOLDERS:
        images, labels = load_idx_split(name, split, data_dir)
        return _image_dataset(name, images, labels)

    generator = seeded_generator(seed)
    n_points = check_int("n_points", n_points, 1)
    points, labels = sample_toy_with_labels(name, n_points, generator)
    if split == "test":
        points, labels = sample_toy_with_labels(name, n_points, generator)
    return Dataset(name=name, kind="points", data=points, labels=labels)


def _image_dataset(name: str, images: np.ndarray, labels: np.ndarray) -> Dataset:
    """uint8 [N, H, W] + labels -> Dataset with float32 [N, 1, H, W] in [-1, 1] (new tensors)."""
    data = torch.from_numpy(images.astype(np.float32)).unsqueeze(1) / 127.5 - 1.0
    return Dataset(name=name, kind="image", data=data,
                   labels=torch.from_numpy(labels.astype(np.int64)))


# ----------------------------------------------------------------------------- committed MNIST subset

@functools.lru_cache(maxsize=4)
def _load_mnist_subset_arrays(path: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Read one split of the subset .npz (cached). The arrays are made read-only so the cached copy
    cannot be changed by accident; `_image_dataset` always builds new tensors from them."""
    if not Path(path).is_file():
        raise DatasetFileNotFoundError(
            f"MNIST subset file {path} is missing; it is committed to the repository "
            f"(rebuild it with scripts/make_mnist_subset.py, see data/README.md)")
    with np.load(path, allow_pickle=False) as archive:
        images, labels = archive[f"{split}_images"], archive[f"{split}_labels"]
    if images.dtype != np.uint8 or images.ndim != 3 or labels.shape != (len(images),):
        raise ValueError(f"{path}: {split}_images must be uint8 [N, H, W] with N labels, got "
                         f"{images.dtype} {images.shape} and labels {labels.shape}")
    images.flags.writeable = False
    labels.flags.writeable = False
    return images, labels


def mnist_subset_source() -> dict:
    """Provenance of the committed subset (package, version, sha256 of the csv, seed, sizes)."""
    with np.load(MNIST_SUBSET_PATH, allow_pickle=False) as archive:
        return json.loads(str(archive["source"]))
