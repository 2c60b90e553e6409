"""Datasets for Reverse Diffusion Lab: real digits and 2-D toy distributions.

Every dataset comes back as a `Dataset` whose `data` is a float32 tensor on a common scale:

* images: [N, C, H, W], pixel p in 0..255 mapped to p / 127.5 - 1, so exactly [-1, 1]
  (the DDPM convention, Ho et al. 2020, Sec. 3.3); `core.data.images.to_uint8` is the inverse.
* points: [N, 2], a 2-D toy scaled to "unit scale": every toy lives (up to small Gaussian tails)
  inside the square [-1, 1]^2, with a per-coordinate standard deviation of roughly 0.3..0.6.

Names (see DATASET_NAMES):

* "mnist": the committed 5,000-digit subset in data/mnist_subset.npz (4,500 train / 500 test,
  class-balanced; see data/README.md). Needs no download.
* "mnist_full", "fashion_mnist": the standard IDX files (train-images-idx3-ubyte.gz, ...) read
  from `<root>/mnist/` or `<root>/fashion_mnist/`, where <root> is `data_dir` or the
  environment variable RDL_DATA_DIR. Plain (not gzipped) files are accepted too. Nothing is
  downloaded at run time.
* the toys in TOY_NAMES, drawn from a seeded torch.Generator (see `sample_toy`).
"""

from __future__ import annotations

import functools
import gzip
import json
import math
import os
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from core.checks import check_choice, check_generator, check_int
from core.rng import seeded_generator

IMAGE_DATASET_NAMES = ("mnist", "mnist_full", "fashion_mnist")
TOY_NAMES = ("swiss_roll", "two_moons", "eight_gaussians", "checkerboard", "gaussian_mixture")
DATASET_NAMES = IMAGE_DATASET_NAMES + TOY_NAMES
SPLITS = ("train", "test")
KINDS = ("image", "points")
MIXTURE_TOY_NAMES = ("eight_gaussians", "gaussian_mixture")

DATA_DIR_ENV = "RDL_DATA_DIR"
MNIST_SUBSET_PATH = Path(__file__).resolve().parents[2] / "data" / "mnist_subset.npz"
# Sub-folder of the data root for each IDX dataset (MNIST and Fashion-MNIST use the same file names).
IDX_SUBFOLDERS = {"mnist_full": "mnist", "fashion_mnist": "fashion_mnist"}
IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
NUM_CLASSES = 10


class DatasetFileNotFoundError(FileNotFoundError):
    """A data folder or file that a dataset needs is missing (the message says what to put where)."""


class IDXFormatError(ValueError):
    """An IDX file is malformed (the message names the file and what was expected)."""


@dataclass(frozen=True)
class Dataset:
    """A whole dataset held in memory.

    name:   one of DATASET_NAMES
    kind:   "image" (data [N, C, H, W] in [-1, 1]) or "points" (data [N, 2])
    data:   float32 tensor, one example per row
    labels: int64 tensor [N] (digit class; mixture component or moon for toys) or None
    """

    name: str
    kind: str
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
    points, labels = _sample_toy_with_labels(name, n_points, generator)
    if split == "test":
        points, labels = _sample_toy_with_labels(name, n_points, generator)
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


# ----------------------------------------------------------------------------- IDX files

# IDX type codes (third byte of the magic number) -> big-endian numpy dtype.
IDX_DTYPES = {0x08: np.dtype(">u1"), 0x09: np.dtype(">i1"), 0x0B: np.dtype(">i2"),
              0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


def parse_idx(raw: bytes, source: str = "<bytes>") -> np.ndarray:
    """Parse the bytes of one IDX file (http://yann.lecun.com/exdb/mnist/, "file formats").

    Layout: magic number = two zero bytes, a type code (0x08 = uint8, ...) and the number of
    dimensions d; then d sizes as big-endian uint32; then prod(sizes) values, big-endian,
    row-major. Anything else raises IDXFormatError naming `source`.
    """
    if len(raw) < 4:
        raise IDXFormatError(f"{source}: file is truncated: {len(raw)} bytes, but the IDX header "
                             f"alone needs at least 4")
    if raw[0] != 0 or raw[1] != 0:
        raise IDXFormatError(f"{source}: bad magic number 0x{raw[:4].hex()}; an IDX file starts with "
                             f"two zero bytes, a type code and the number of dimensions "
                             f"(e.g. 0x00000803 for uint8 images)")
    type_code, n_dims = raw[2], raw[3]
    if type_code not in IDX_DTYPES:
        raise IDXFormatError(f"{source}: bad magic number 0x{raw[:4].hex()}: unknown type code "
                             f"0x{type_code:02x}; expected one of "
                             f"{', '.join(f'0x{code:02x}' for code in IDX_DTYPES)}")
    if n_dims == 0:
        raise IDXFormatError(f"{source}: bad magic number 0x{raw[:4].hex()}: 0 dimensions")
    header_size = 4 + 4 * n_dims
    if len(raw) < header_size:
        raise IDXFormatError(f"{source}: file is truncated: {len(raw)} bytes, but the header of a "
                             f"{n_dims}-D IDX file needs {header_size}")
    shape = tuple(int(size) for size in np.frombuffer(raw, dtype=">u4", count=n_dims, offset=4))
    dtype = IDX_DTYPES[type_code]
    expected = math.prod(shape) * dtype.itemsize
    found = len(raw) - header_size
    if found != expected:
        problem = "file is truncated" if found < expected else "file has trailing bytes"
        raise IDXFormatError(f"{source}: {problem}: header says shape {shape} of {dtype.name} "
                             f"({expected} data bytes) but the file has {found} data bytes")
    values = np.frombuffer(raw, dtype=dtype, offset=header_size).reshape(shape)
    return values.astype(dtype.newbyteorder("="))  # native byte order, a fresh writable array


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file, gzipped (detected by its content, not its name) or plain."""
    path = Path(path)
    if not path.is_file():
        raise DatasetFileNotFoundError(f"IDX file {path} does not exist")
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":  # the gzip magic number
        try:
            raw = gzip.decompress(raw)
        except (EOFError, OSError, zlib.error) as error:
            raise IDXFormatError(f"{path}: corrupt or truncated gzip data ({error})") from error
    return parse_idx(raw, source=str(path))


def idx_folder(name: str, data_dir: str | os.PathLike | None = None) -> Path:
    """Folder holding the IDX files of `name`: <data_dir or $RDL_DATA_DIR>/<mnist|fashion_mnist>."""
    check_choice("name", name, tuple(IDX_SUBFOLDERS))
    subfolder = IDX_SUBFOLDERS[name]
    wanted = ", ".join(f"{stem}.gz" for pair in IDX_FILES.values() for stem in pair)
    root = data_dir if data_dir is not None else os.environ.get(DATA_DIR_ENV)
    if not root:
        raise DatasetFileNotFoundError(
            f"dataset {name!r} needs the IDX files ({wanted}) in <root>/{subfolder}/; pass "
            f"data_dir=<root> or set the environment variable {DATA_DIR_ENV}=<root>")
    root = Path(root)
    if not root.is_dir():
        raise DatasetFileNotFoundError(f"data folder {root} (data_dir or ${DATA_DIR_ENV}) does not "
                                       f"exist; it should contain {subfolder}/ with {wanted}")
    folder = root / subfolder
    if not folder.is_dir():
        hint = ""
        if any((root / f"{IDX_FILES['train'][0]}{ext}").exists() for ext in (".gz", "")):
            hint = f" (IDX files were found directly in {root}; move them into {folder})"
        raise DatasetFileNotFoundError(f"folder {folder} for dataset {name!r} does not exist{hint}; "
                                       f"it should contain {wanted}")
    return folder


def _find_idx_file(folder: Path, stem: str) -> Path:
    for candidate in (folder / f"{stem}.gz", folder / stem):
        if candidate.is_file():
            return candidate
    raise DatasetFileNotFoundError(f"IDX file {folder / (stem + '.gz')} (or uncompressed "
                                   f"{folder / stem}) does not exist")


def load_idx_split(name: str, split: str, data_dir: str | os.PathLike | None = None
                   ) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images [N, H, W] and uint8 labels [N] of an IDX dataset split, fully validated."""
    check_choice("split", split, SPLITS)
    folder = idx_folder(name, data_dir)
    images_path, labels_path = (_find_idx_file(folder, stem) for stem in IDX_FILES[split])
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.dtype != np.uint8 or images.ndim != 3:
        raise IDXFormatError(f"{images_path}: expected uint8 images of shape [N, H, W] "
                             f"(magic 0x00000803), got {images.dtype} with shape {images.shape}")
    if labels.dtype != np.uint8 or labels.ndim != 1:
        raise IDXFormatError(f"{labels_path}: expected uint8 labels of shape [N] "
                             f"(magic 0x00000801), got {labels.dtype} with shape {labels.shape}")
    if len(images) != len(labels):
        raise IDXFormatError(f"{images_path} holds {len(images)} images but {labels_path} holds "
                             f"{len(labels)} labels; expected the same count")
    if len(labels) and labels.max() >= NUM_CLASSES:
        raise IDXFormatError(f"{labels_path}: labels must lie in 0..{NUM_CLASSES - 1}, "
                             f"found {labels.max()}")
    return images, labels


# ----------------------------------------------------------------------------- 2-D toys
#
# Scales, in the final coordinates:
#   swiss_roll:       spiral of radius 1/3 .. 1 (1.5 turns), + N(0, 0.02^2) noise
#   two_moons:        two half circles of radius 2/3 (x in [-1, 1], y in [-0.5, 0.5] before noise),
#                     + N(0, (1/30)^2) noise
#   eight_gaussians:  8 isotropic Gaussians, means on the circle of radius 0.8, std 0.05, equal weights
#   checkerboard:     uniform on the 8 dark cells of a 4x4 board covering [-1, 1]^2 (no noise)
#   gaussian_mixture: 4 axis-aligned anisotropic Gaussians with weights 0.4, 0.3, 0.2, 0.1

EIGHT_GAUSSIANS_RADIUS = 0.8
EIGHT_GAUSSIANS_STD = 0.05
SWISS_ROLL_NOISE = 0.02
TWO_MOONS_NOISE = 0.05  # in the original moon units, before scaling by 1/1.5

GAUSSIAN_MIXTURE_MEANS = ((-0.4, -0.35), (0.45, -0.45), (0.35, 0.5), (-0.45, 0.55))
GAUSSIAN_MIXTURE_STDS = ((0.18, 0.07), (0.06, 0.16), (0.12, 0.12), (0.05, 0.05))
GAUSSIAN_MIXTURE_WEIGHTS = (0.4, 0.3, 0.2, 0.1)


def toy_mixture_parameters(name: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(means [K, 2], stds, weights [K]) in float64 of a mixture toy; `sample_toy` draws from it.

    The density is sum_k weights[k] * N(means[k], diag(stds[k]^2)). stds is [K] (isotropic) for
    "eight_gaussians" and [K, 2] (per-axis) for "gaussian_mixture".
    """
    check_choice("name", name, MIXTURE_TOY_NAMES)
    if name == "eight_gaussians":
        angles = torch.arange(8, dtype=torch.float64) * (2 * math.pi / 8)
        means = EIGHT_GAUSSIANS_RADIUS * torch.stack([torch.cos(angles), torch.sin(angles)], dim=1)
        stds = torch.full((8,), EIGHT_GAUSSIANS_STD, dtype=torch.float64)
        weights = torch.full((8,), 1 / 8, dtype=torch.float64)
        return means, stds, weights
    return (torch.tensor(GAUSSIAN_MIXTURE_MEANS, dtype=torch.float64),
            torch.tensor(GAUSSIAN_MIXTURE_STDS, dtype=torch.float64),
            torch.tensor(GAUSSIAN_MIXTURE_WEIGHTS, dtype=torch.float64))


def sample_toy(name: str, n: int, generator: torch.Generator) -> torch.Tensor:
    """n float32 points [n, 2] from toy `name` (one of TOY_NAMES), using only `generator` (a CPU one)."""
    check_choice("name", name, TOY_NAMES)
    n = check_int("n", n, 1)
    if check_generator("generator", generator).device.type != "cpu":
        raise ValueError(f"generator on {generator.device} is not allowed; expected a CPU torch.Generator")
    return _sample_toy_with_labels(name, n, generator)[0]


def _sample_toy_with_labels(name: str, n: int, generator: torch.Generator
                            ) -> tuple[torch.Tensor, torch.Tensor | None]:
    samplers = {"swiss_roll": _swiss_roll, "two_moons": _two_moons, "checkerboard": _checkerboard,
                "eight_gaussians": _mixture, "gaussian_mixture": _mixture}
    points, labels = samplers[name](name, n, generator)
    return points.to(torch.float32), labels


def _mixture(name, n, generator):
    """Pick component k with probability weights[k], then x = means[k] + stds[k] * z, z ~ N(0, I)."""
    means, stds, weights = toy_mixture_parameters(name)
    components = torch.multinomial(weights, n, replacement=True, generator=generator)
    if stds.dim() == 1:
        stds = stds[:, None].expand(-1, 2)
    noise = torch.randn(n, 2, generator=generator, dtype=torch.float64)
    return means[components] + stds[components] * noise, components


def _swiss_roll(name, n, generator):
    """2-D swiss roll (as in sklearn's make_swiss_roll): angle t ~ U(1.5 pi, 4.5 pi), point
    t * (cos t, sin t), divided by 4.5 pi so the outermost turn has radius 1."""
    t = 1.5 * math.pi * (1 + 2 * torch.rand(n, generator=generator, dtype=torch.float64))
    spiral = torch.stack([t * torch.cos(t), t * torch.sin(t)], dim=1) / (4.5 * math.pi)
    noise = SWISS_ROLL_NOISE * torch.randn(n, 2, generator=generator, dtype=torch.float64)
    return spiral + noise, None


def _two_moons(name, n, generator):
    """sklearn-style moons: upper moon (cos a, sin a), lower moon (1 - cos a, 0.5 - sin a), a ~ U(0, pi),
    plus noise; then centred by (0.5, 0.25) and divided by 1.5 so that x spans [-1, 1]."""
    moon = torch.randint(0, 2, (n,), generator=generator)
    angle = math.pi * torch.rand(n, generator=generator, dtype=torch.float64)
    upper = torch.stack([torch.cos(angle), torch.sin(angle)], dim=1)
    lower = torch.stack([1 - torch.cos(angle), 0.5 - torch.sin(angle)], dim=1)
    points = torch.where(moon[:, None] == 0, upper, lower)
    points = points + TWO_MOONS_NOISE * torch.randn(n, 2, generator=generator, dtype=torch.float64)
    centre = torch.tensor([0.5, 0.25], dtype=torch.float64)
    return (points - centre) / 1.5, moon


def _checkerboard(name, n, generator):
    """Uniform on the 8 cells (column i, row j) of a 4x4 board on [-1, 1]^2 with i + j even."""
    dark_cells = torch.tensor([(i, j) for i in range(4) for j in range(4) if (i + j) % 2 == 0],
                              dtype=torch.float64)
    cell = dark_cells[torch.randint(0, len(dark_cells), (n,), generator=generator)]
    within = torch.rand(n, 2, generator=generator, dtype=torch.float64)
    return -1 + 0.5 * (cell + within), None
