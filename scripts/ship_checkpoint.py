"""Turn a training checkpoint (EMA + raw weights + optimizer state, for resuming) into the small,
sampling-only file the app ships: the EMA weights and the full metadata, nothing else.

    python scripts/ship_checkpoint.py runs/mnist_eps.safetensors checkpoints/mnist_eps.safetensors \
        --command "python -m core.train ..."

The training command is recorded in the metadata's notes so the file says how to reproduce it.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from core import checkpoints
from core.checkpoints import CheckpointInfo


def ship(source: Path, target: Path, command: str = "") -> Path:
    model, diffusion, metadata = checkpoints.load(source)
    info = CheckpointInfo.from_document(metadata)  # every info field is kept; raw weights and optimizer are not
    notes = [info.notes, f"reproduce: {command}" if command else ""]
    return checkpoints.save(target, model, diffusion, dataclasses.replace(info, notes="\n".join(n for n in notes if n)))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path)
    parser.add_argument("target", type=Path)
    parser.add_argument("--command", default="", help="the training command, stored in the notes")
    args = parser.parse_args(argv)
    try:
        path = ship(args.source, args.target, args.command)
    except (ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
