"""Training data: MNIST (shipped subset, IDX files), the 2-D toy distributions, and image helpers (grids, PNG).
"""
