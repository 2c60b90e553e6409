"""A residual MLP denoiser for 2-D toy data (swiss roll, two moons, mixtures, ...).

Same time conditioning as the UNet: sinusoidal embedding of the integer timestep index followed by
a small MLP. Each residual block is

    h <- h + W2 · SiLU( W1 · SiLU(LayerNorm(h)) + E · SiLU(emb) )

with W2 initialised to zero (every block starts as the identity) and a zero-initialised output layer,
so the untrained model outputs exactly 0.

The input point is lifted with fixed Fourier features [x, sin(2^k·π·x), cos(2^k·π·x)], k < fourier_frequencies
(Tancik et al. 2020): a plain MLP fed raw 2-D coordinates learns sharp structure (eight separate modes, the
checkerboard's edges) very slowly, which matters when the playground trains for seconds on a CPU.

Named sizes (`MLP_SIZES`); parameter counts for data_dim=2, out_dim=2:

    "slim"  hidden 32,  depth 2, time_embed_dim 32, 6 Fourier frequencies  ->   9,570 parameters
    "tiny"  hidden 64,  depth 2, time_embed_dim 32, 6 Fourier frequencies  ->  33,474 parameters
    "small" hidden 128, depth 3, time_embed_dim 64, 6 Fourier frequencies  -> 178,178 parameters
    "base"  hidden 256, depth 4, time_embed_dim 128, 6 Fourier frequencies -> 898,306 parameters
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

from core.nets.config import ToyMLPConfig
from core.nets.embedding import timestep_embedding

MLP_SIZES = {
    "slim": {"hidden": 32, "depth": 2, "time_embed_dim": 32, "fourier_frequencies": 6},
    "tiny": {"hidden": 64, "depth": 2, "time_embed_dim": 32, "fourier_frequencies": 6},
    "small": {"hidden": 128, "depth": 3, "time_embed_dim": 64, "fourier_frequencies": 6},
    "base": {"hidden": 256, "depth": 4, "time_embed_dim": 128, "fourier_frequencies": 6},
}


def fourier_features(x: torch.Tensor, frequencies: int) -> torch.Tensor:
    """[B, D] -> [B, D·(1 + 2·frequencies)]: x, then sin and cos of 2^k·π·x for k = 0..frequencies-1."""
    if frequencies == 0:
        return x
    scales = math.pi * 2.0 ** torch.arange(frequencies, device=x.device, dtype=x.dtype)
    angles = x[..., None] * scales
    return torch.cat([x, angles.sin().flatten(1), angles.cos().flatten(1)], dim=1)


class ResidualMLPBlock(nn.Module):
    """One pre-norm residual block whose hidden layer is shifted by the time embedding."""

    def __init__(self, hidden: int, emb_dim: int):
        super().__init__()
        self.norm = nn.LayerNorm(hidden)
        self.linear1 = nn.Linear(hidden, hidden)
        self.emb_proj = nn.Linear(emb_dim, hidden)
        self.linear2 = nn.Linear(hidden, hidden)
        nn.init.zeros_(self.linear2.weight)
        nn.init.zeros_(self.linear2.bias)

    def forward(self, h: torch.Tensor, emb_act: torch.Tensor) -> torch.Tensor:
        update = self.linear1(F.silu(self.norm(h))) + self.emb_proj(emb_act)
        return h + self.linear2(F.silu(update))


class ToyMLP(nn.Module):
    """Time-conditioned residual MLP: model(x_t [B, data_dim], t LongTensor [B]) -> [B, out_dim].

    Built from a ToyMLPConfig (core.nets.config), which was checked when it was made: __init__ only builds."""

    def __init__(self, config: ToyMLPConfig):
        super().__init__()
        if not isinstance(config, ToyMLPConfig):
            raise ValueError(f"ToyMLP takes a ToyMLPConfig (core.nets.config), got {type(config).__name__}")
        self.net_config = config
        self.config = config.to_dict()  # the JSON form, stored in checkpoints
        data_dim, out_dim, hidden, depth = config.data_dim, config.out_dim, config.hidden, config.depth
        time_embed_dim, fourier_frequencies = config.time_embed_dim, config.fourier_frequencies
        self.fourier_frequencies = fourier_frequencies
        self.data_dim, self.out_dim, self.time_embed_dim = data_dim, out_dim, time_embed_dim
        self.time_mlp = nn.Sequential(nn.Linear(time_embed_dim, hidden), nn.SiLU(), nn.Linear(hidden, hidden))
        self.input_proj = nn.Linear(data_dim * (1 + 2 * fourier_frequencies), hidden)
        self.blocks = nn.ModuleList([ResidualMLPBlock(hidden, hidden) for _ in range(depth)])
        self.out_norm = nn.LayerNorm(hidden)
        self.output = nn.Linear(hidden, out_dim)
        nn.init.zeros_(self.output.weight)
        nn.init.zeros_(self.output.bias)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if x.ndim != 2 or x.shape[1] != self.data_dim:
            raise ValueError(f"x must have shape [B, {self.data_dim}], got {tuple(x.shape)}")
        if t.ndim != 1 or t.shape[0] != x.shape[0]:
            raise ValueError(f"t must be a LongTensor of shape [{x.shape[0]}], got {tuple(t.shape)}")
        emb_act = F.silu(self.time_mlp(timestep_embedding(t, self.time_embed_dim).to(x.dtype)))
        h = self.input_proj(fourier_features(x, self.fourier_frequencies))
        for block in self.blocks:
            h = block(h, emb_act)
        return self.output(F.silu(self.out_norm(h)))
