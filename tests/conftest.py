"""Shared pytest setup."""

import os

# Idle OpenMP threads sleep instead of spinning. On a small shared CPU, spinning threads of several
# torch processes steal each other's cores (measured here: ~10x more CPU time per training step).
# Set before any test module imports torch, which reads it once when its OpenMP runtime starts.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
