"""Suite-wide settings for 2-core machines shared with the app's own background threads.

- Idle OpenMP threads sleep instead of spinning: spinning threads of several torch processes steal each
  other's cores (measured here: ~10x more CPU time per training step). Set before torch is imported,
  since its OpenMP runtime reads it once at start.
- One torch thread: many small tensor ops are far slower when OpenMP threads contend for two cores.
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

torch.set_num_threads(1)
