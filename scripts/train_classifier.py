"""Train the MNIST digit classifier used by the sample-quality metrics (core/metrics/classifier.py).

    .venv/bin/python scripts/train_classifier.py            # writes checkpoints/mnist_classifier.safetensors

Trains on the TRAINING split of the committed MNIST subset only (4,500 digits) with random shifts of up
to ±2 px and dropout on the feature layer, for a fixed number of epochs (no early stopping, so the
500-digit test split is never used for any choice); then measures the accuracy on the test split and
stores it with the weights. Every random draw (initialisation, shuffling, shifts, dropout) comes from
one torch.Generator seeded with --seed.
"""

from __future__ import annotations

import argparse
import math
import shlex
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from core.data.datasets import load_dataset
from core.metrics.classifier import CLASSIFIER_PATH, MnistClassifier, save_classifier

MAX_SHIFT = 2
FEATURE_DROPOUT = 0.3


def init_weights(model: nn.Module, generator: torch.Generator) -> None:
    """PyTorch's default Conv/Linear initialisation, but drawn from `generator` (not the global RNG)."""
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_uniform_(module.weight, a=math.sqrt(5), generator=generator)
            fan_in = module.weight[0].numel()
            bound = 1.0 / math.sqrt(fan_in)
            nn.init.uniform_(module.bias, -bound, bound, generator=generator)


def random_shift(images: torch.Tensor, max_shift: int, generator: torch.Generator) -> torch.Tensor:
    """Translate each image by an independent integer (dy, dx) in [-max_shift, max_shift], filling with
    background (-1)."""
    batch, _, height, width = images.shape
    padded = F.pad(images, (max_shift,) * 4, value=-1.0)
    dy = torch.randint(0, 2 * max_shift + 1, (batch,), generator=generator)
    dx = torch.randint(0, 2 * max_shift + 1, (batch,), generator=generator)
    rows = (dy[:, None] + torch.arange(height))[:, :, None]  # [B, H, 1]
    cols = (dx[:, None] + torch.arange(width))[:, None, :]   # [B, 1, W]
    return padded[torch.arange(batch)[:, None, None], 0, rows, cols].unsqueeze(1)


def accuracy(model: MnistClassifier, images: torch.Tensor, labels: torch.Tensor) -> float:
    model.eval()
    with torch.no_grad():
        predictions = torch.cat([model(chunk).argmax(1) for chunk in images.split(500)])
    return round(float((predictions == labels).double().mean()), 4)


def train(epochs: int, batch_size: int, lr: float, seed: int) -> tuple[MnistClassifier, dict]:
    generator = torch.Generator().manual_seed(seed)
    train_set = load_dataset("mnist", split="train")
    test_set = load_dataset("mnist", split="test")
    model = MnistClassifier()
    init_weights(model, generator)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    steps_per_epoch = math.ceil(len(train_set) / batch_size)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs * steps_per_epoch)
    start, cpu_start = time.perf_counter(), time.process_time()
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(len(train_set), generator=generator)
        total_loss = 0.0
        for batch_indices in order.split(batch_size):
            images = random_shift(train_set.data[batch_indices], MAX_SHIFT, generator)
            features = model.features(images)
            keep = (torch.rand(features.shape, generator=generator) >= FEATURE_DROPOUT).to(features.dtype)
            logits = model.head(features * keep / (1.0 - FEATURE_DROPOUT))
            loss = F.cross_entropy(logits, train_set.labels[batch_indices])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()
            total_loss += float(loss.detach()) * len(batch_indices)
        print(f"epoch {epoch + 1}/{epochs}: train loss {total_loss / len(train_set):.4f} "
              f"({time.perf_counter() - start:.0f} s)", flush=True)
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    metadata = {
        "held_out_accuracy": accuracy(model, test_set.data, test_set.labels),
        "train_accuracy": accuracy(model, train_set.data, train_set.labels),
        "held_out_split": f"mnist test split ({len(test_set)} digits), never used during training",
        "train_split": f"mnist train split ({len(train_set)} digits)",
        "augmentation": f"random integer shifts of up to ±{MAX_SHIFT} px; dropout {FEATURE_DROPOUT} on the features",
        "optimizer": f"Adam lr={lr}, cosine decay, batch {batch_size}, {epochs} epochs",
        "seed": seed,
        "training_seconds": round(seconds, 1),
        "training_cpu_seconds": round(cpu_seconds, 1),
        "cpu_threads": torch.get_num_threads(),
        "torch_version": torch.__version__,
        "command": " ".join(["python scripts/train_classifier.py", *(shlex.quote(a) for a in sys.argv[1:])]),
    }
    return model.eval(), metadata


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=CLASSIFIER_PATH)
    args = parser.parse_args(argv)
    for name in ("epochs", "batch_size"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if not args.lr > 0:
        parser.error(f"--lr must be > 0, got {args.lr}")
    model, metadata = train(args.epochs, args.batch_size, args.lr, args.seed)
    save_classifier(model, args.out, metadata)
    print(f"held-out accuracy {metadata['held_out_accuracy']:.4f} "
          f"(train {metadata['train_accuracy']:.4f}); wrote {args.out}")


if __name__ == "__main__":
    main()
