"""A small MNIST digit classifier, used only to *measure* generated digits (core/metrics/mnist.py).

It plays the role that the Inception network plays for FID / Inception Score on natural images
(Heusel et al. 2017; Salimans et al. 2016), scaled down to 28x28 grey digits:

    1x28x28 -> conv3x3(16) ReLU maxpool                   -> 16x14x14
            -> conv3x3(32) ReLU conv3x3(32) ReLU maxpool  -> 32x7x7
            -> conv3x3(64) ReLU                           -> 64x7x7
            -> flatten -> Linear(3136, 128) ReLU           = the "features" (penultimate layer)
            -> Linear(128, 10)                             = the logits

It is trained by scripts/train_classifier.py on the training split of the committed MNIST subset only
and shipped as checkpoints/mnist_classifier.safetensors: the weights, plus JSON metadata in the
safetensors header (architecture, held-out accuracy, training command, seed). Loading never unpickles
anything and checks every tensor name and shape against the architecture.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from core import paths

CLASSIFIER_PATH = paths.classifier_path()  # shipped with the app (a checkout's checkpoints/ or the installed package)
ARCHITECTURE = "mnist_cnn_v1"
NUM_CLASSES = 10
FEATURE_DIM = 128
IMAGE_SHAPE = (1, 28, 28)
METADATA_KEY = "rdl_classifier"  # the safetensors header entry that holds our JSON metadata


class MnistClassifier(nn.Module):
    """Conv net with a 128-d penultimate feature layer (see the module docstring for the layers)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(),
            nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(),
        )
        self.feature_layer = nn.Linear(64 * 7 * 7, FEATURE_DIM)
        self.head = nn.Linear(FEATURE_DIM, NUM_CLASSES)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """Penultimate activations [N, 128] (after the ReLU) of images [N, 1, 28, 28] in [-1, 1]."""
        return torch.relu(self.feature_layer(self.conv(images).flatten(1)))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Logits [N, 10]."""
        return self.head(self.features(images))


def save_classifier(model: MnistClassifier, path, metadata: dict) -> None:
    """Write the weights as safetensors with `metadata` (JSON-able dict) stored in the header."""
    if not isinstance(model, MnistClassifier):
        raise ValueError(f"model must be an MnistClassifier, got {type(model).__name__}")
    if not isinstance(metadata, dict):
        raise ValueError(f"metadata must be a dict, got {type(metadata).__name__}")
    full = {"architecture": ARCHITECTURE, **metadata}
    tensors = {name: value.detach().cpu().contiguous() for name, value in model.state_dict().items()}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata={METADATA_KEY: json.dumps(full, sort_keys=True)})


def read_classifier_metadata(path=CLASSIFIER_PATH) -> dict:
    """The JSON metadata of a classifier file (no tensors are read)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"classifier file {path} not found; create it with scripts/train_classifier.py")
    with safe_open(str(path), framework="pt") as handle:
        header = handle.metadata() or {}
    if METADATA_KEY not in header:
        raise ValueError(f"{path} has no {METADATA_KEY!r} metadata: not a classifier written by save_classifier")
    metadata = json.loads(header[METADATA_KEY])
    if not isinstance(metadata, dict) or metadata.get("architecture") != ARCHITECTURE:
        raise ValueError(f"{path}: architecture must be {ARCHITECTURE!r}, got {metadata.get('architecture')!r}")
    return metadata


def load_classifier_file(path) -> tuple[MnistClassifier, dict]:
    """(model in eval mode, metadata) from a safetensors file; names, shapes and dtypes are validated."""
    metadata = read_classifier_metadata(path)
    model = MnistClassifier()
    expected = model.state_dict()
    with safe_open(str(path), framework="pt") as handle:
        names = set(handle.keys())
        if names != set(expected):
            missing, extra = sorted(set(expected) - names), sorted(names - set(expected))
            raise ValueError(f"{path}: tensor names do not match {ARCHITECTURE}: missing {missing}, unexpected {extra}")
        tensors = {name: handle.get_tensor(name) for name in names}
    for name, tensor in tensors.items():
        if tensor.shape != expected[name].shape or tensor.dtype != torch.float32:
            raise ValueError(f"{path}: tensor {name!r} must be float32 {tuple(expected[name].shape)}, "
                             f"got {tensor.dtype} {tuple(tensor.shape)}")
        if not bool(torch.isfinite(tensor).all()):
            raise ValueError(f"{path}: tensor {name!r} contains non-finite values")
    model.load_state_dict(tensors)
    return model.eval(), metadata


@functools.lru_cache(maxsize=1)
def load_classifier() -> MnistClassifier:
    """The shipped classifier (checkpoints/mnist_classifier.safetensors), loaded once, in eval mode.

    Callers must not modify it (it is shared); its parameters have requires_grad=False.
    """
    model, _ = load_classifier_file(CLASSIFIER_PATH)
    model.requires_grad_(False)
    return model
