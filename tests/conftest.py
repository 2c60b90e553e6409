"""Suite-wide settings.

One torch thread: the suite runs on 2-core machines where the app's own background threads (training jobs,
Streamlit) share the cores, and many small tensor ops are far slower when OpenMP threads contend.
"""

import torch

torch.set_num_threads(1)
