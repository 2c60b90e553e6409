"""IDX files (the format of MNIST and Fashion-MNIST), read and validated; nothing is downloaded.

"mnist_full" and "fashion_mnist" are the standard files (train-images-idx3-ubyte.gz, ...) in `<root>/mnist/`
or `<root>/fashion_mnist/`, where <root> is `data_dir` or the environment variable RDL_DATA_DIR. Plain (not
gzipped) files are accepted too. Every malformed file raises IDXFormatError naming the file and what was expected.
"""

from __future__ import annotations

import gzip
import math
import os
import zlib
from pathlib import Path

import numpy as np

from core.checks import check_choice

DATA_DIR_ENV = "RDL_DATA_DIR"
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
    check_choice("split", split, tuple(IDX_FILES))
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
