"""A small UNet denoiser for 1x28x28 (MNIST) and 3x32x32 images.

Architecture (a slimmed-down version of Ho et al. 2020, Appendix B, with the Improved-DDPM tweaks of
Nichol & Dhariwal 2021, Sec. 3 / their released code):

* timestep t (integer index) -> sinusoidal embedding -> Linear -> SiLU -> Linear = `emb`
* input 3x3 conv, then a down path of resolution levels (28 -> 14 -> 7), each with residual blocks;
  every residual block gets `emb` through a scale-shift ("adaptive group norm"):
  h = GroupNorm(h) * (1 + scale(emb)) + shift(emb)
* a middle block (ResBlock, optional self-attention, ResBlock) at the lowest resolution
* an up path that concatenates the stored down-path activations (skip connections)
* GroupNorm -> SiLU -> 3x3 output conv initialised to zero, so the untrained model outputs exactly 0
  (the last conv of every residual block and attention block is zero-initialised too, so each block
  starts as the identity).

Channels and the number of residual blocks are given *per level*, so CPU-friendly sizes can keep the
expensive 28x28 level thin and put the capacity at 14x14 and 7x7.

Named sizes (`UNET_SIZES`); parameter counts for 1x28x28 input and out_channels=1 (eps, fixed variance):

    "slim"  channels (8, 32, 64),    blocks (1, 1, 1), time_embed_dim 64   ->   644,113 parameters
    "tiny"  channels (16, 32, 64),   blocks (1, 1, 1), time_embed_dim 64   ->   669,697 parameters
    "small" channels (32, 64, 96),   blocks (1, 1, 1), time_embed_dim 128  -> 1,804,161 parameters
    "base"  channels (64, 128, 128), blocks (2, 2, 2), time_embed_dim 256  -> 6,664,513 parameters

All use 4-head self-attention in the middle block (at 7x7 for 28x28 input). "tiny" is tuned for
training on a 2-core CPU: the 28x28 level, where a channel costs the most, has only 16 channels. "slim" halves
that level again (8 channels) for CPUs without bf16 (AVX2), keeping the capacity at 14x14 and 7x7: a step of batch
32 costs 0.85x the tiny UNet's, and in the same seconds it trained better than both the tiny UNet and one with a
thinner 7x7 level (16, 32, 32) (docs/benchmarks.md, "Digits within a lesson").
On 3x32x32 input the same sizes apply (32 -> 16 -> 8) with slightly different counts.

Call as model(x_t, t) with x_t [B, C, H, W] and t a LongTensor [B] of original timestep indices.
"""

import torch
import torch.nn.functional as F
from torch import nn

from core.nets.config import UNetConfig
from core.nets.embedding import timestep_embedding

UNET_SIZES = {
    "slim": {"channels": (8, 32, 64), "num_res_blocks": (1, 1, 1), "attention": True, "time_embed_dim": 64},
    "tiny": {"channels": (16, 32, 64), "num_res_blocks": (1, 1, 1), "attention": True, "time_embed_dim": 64},
    "small": {"channels": (32, 64, 96), "num_res_blocks": (1, 1, 1), "attention": True, "time_embed_dim": 128},
    "base": {"channels": (64, 128, 128), "num_res_blocks": (2, 2, 2), "attention": True, "time_embed_dim": 256},
}


def _zero_(module: nn.Module) -> nn.Module:
    """Set all parameters of `module` to zero (used for the last layer of residual branches)."""
    for parameter in module.parameters():
        nn.init.zeros_(parameter)
    return module


class ResBlock(nn.Module):
    """GroupNorm-SiLU-conv, time scale-shift, GroupNorm-SiLU-dropout-conv, plus a (1x1) skip."""

    def __init__(self, in_ch: int, out_ch: int, emb_dim: int, groups: int, dropout: float):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, in_ch)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.emb_proj = nn.Linear(emb_dim, 2 * out_ch)  # -> (scale, shift)
        self.norm2 = nn.GroupNorm(groups, out_ch)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = _zero_(nn.Conv2d(out_ch, out_ch, 3, padding=1))
        self.skip = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, x: torch.Tensor, emb_act: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.emb_proj(emb_act)[:, :, None, None].chunk(2, dim=1)
        h = self.norm2(h) * (1 + scale) + shift
        h = self.conv2(self.dropout(F.silu(h)))
        return self.skip(x) + h


class SelfAttention(nn.Module):
    """Multi-head self-attention over all pixels of a feature map, with a residual connection."""

    def __init__(self, channels: int, groups: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.norm = nn.GroupNorm(groups, channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = _zero_(nn.Conv2d(channels, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        qkv = self.qkv(self.norm(x)).reshape(b, 3, self.num_heads, c // self.num_heads, h * w)
        q, k, v = (qkv[:, i].transpose(-1, -2) for i in range(3))  # each [B, heads, HW, C/heads]
        out = F.scaled_dot_product_attention(q, k, v)
        out = out.transpose(-1, -2).reshape(b, c, h, w)
        return x + self.proj(out)


class Downsample(nn.Module):
    """Strided 3x3 conv halving the resolution (28 -> 14 -> 7)."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class Upsample(nn.Module):
    """Nearest-neighbour x2 upsampling followed by a 3x3 conv."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class UNet(nn.Module):
    """Time-conditioned UNet built from a UNetConfig (core.nets.config); see the module docstring for the layout.

    in_channels / out_channels: image channels in, network channels out (the caller passes
        diffusion.out_channels(in_channels), i.e. twice the image channels for learned variance).
    image_size: height = width of the input; must be divisible by 2 ** (levels - 1).
    channels, num_res_blocks: one entry per resolution level (level 0 = full resolution).
    attention: multi-head self-attention (num_heads heads) in the middle block, at the lowest resolution.
    time_embed_dim: width of the sinusoidal embedding and of the time MLP.
    norm_groups: GroupNorm groups; every entry of channels must be divisible by it.
    The config was checked when it was made, so __init__ only builds.
    """

    def __init__(self, config: UNetConfig):
        super().__init__()
        if not isinstance(config, UNetConfig):
            raise ValueError(f"UNet takes a UNetConfig (core.nets.config), got {type(config).__name__}")
        self.net_config = config
        self.config = config.to_dict()  # the JSON form, stored in checkpoints
        in_channels, out_channels, image_size = config.in_channels, config.out_channels, config.image_size
        channels, num_res_blocks, attention = config.channels, config.num_res_blocks, config.attention
        num_heads, time_embed_dim, norm_groups, dropout = (config.num_heads, config.time_embed_dim, config.norm_groups,
                                                           config.dropout)
        levels = len(channels)
        self.in_channels, self.out_channels, self.image_size = in_channels, out_channels, image_size
        self.time_embed_dim = time_embed_dim

        self.time_mlp = nn.Sequential(
            nn.Linear(time_embed_dim, time_embed_dim), nn.SiLU(), nn.Linear(time_embed_dim, time_embed_dim)
        )

        def res(i, o):
            return ResBlock(i, o, time_embed_dim, norm_groups, dropout)

        def attn(c):
            return SelfAttention(c, norm_groups, num_heads)

        self.input_conv = nn.Conv2d(in_channels, channels[0], 3, padding=1)

        # Down path. Every module output is stored for a skip connection; skip_channels records
        # their channel counts so the up path knows its input widths.
        self.down = nn.ModuleList()
        skip_channels = [channels[0]]
        ch = channels[0]
        for level, (level_ch, blocks) in enumerate(zip(channels, num_res_blocks)):
            lowest = level == levels - 1
            for _ in range(blocks):
                self.down.append(nn.ModuleList([res(ch, level_ch)]))
                ch = level_ch
                skip_channels.append(ch)
            if not lowest:
                self.down.append(nn.ModuleList([Downsample(ch)]))
                skip_channels.append(ch)

        self.middle = nn.ModuleList([res(ch, ch)] + ([attn(ch)] if attention else []) + [res(ch, ch)])

        # Up path: one more block per level than on the way down, so every stored skip is consumed.
        self.up = nn.ModuleList()
        for level in reversed(range(levels)):
            level_ch = channels[level]
            for block in range(num_res_blocks[level] + 1):
                layers = [res(ch + skip_channels.pop(), level_ch)]
                ch = level_ch
                if level > 0 and block == num_res_blocks[level]:
                    layers.append(Upsample(ch))
                self.up.append(nn.ModuleList(layers))

        self.out_norm = nn.GroupNorm(norm_groups, ch)
        self.out_conv = _zero_(nn.Conv2d(ch, out_channels, 3, padding=1))

    @staticmethod
    def _run_layers(layers: nn.ModuleList, h: torch.Tensor, emb_act: torch.Tensor) -> torch.Tensor:
        for layer in layers:
            h = layer(h, emb_act) if isinstance(layer, ResBlock) else layer(h)
        return h

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != self.in_channels or x.shape[2] != self.image_size or x.shape[3] != self.image_size:
            raise ValueError(
                f"x must have shape [B, {self.in_channels}, {self.image_size}, {self.image_size}], got {tuple(x.shape)}"
            )
        if t.ndim != 1 or t.shape[0] != x.shape[0]:
            raise ValueError(f"t must be a LongTensor of shape [{x.shape[0]}], got {tuple(t.shape)}")
        emb = self.time_mlp(timestep_embedding(t, self.time_embed_dim).to(x.dtype))
        emb_act = F.silu(emb)  # every block's projection starts with SiLU; compute it once

        h = self.input_conv(x)
        skips = [h]
        for layers in self.down:
            h = self._run_layers(layers, h, emb_act)
            skips.append(h)
        h = self._run_layers(self.middle, h, emb_act)
        for layers in self.up:
            h = self._run_layers(layers, torch.cat([h, skips.pop()], dim=1), emb_act)
        return self.out_conv(F.silu(self.out_norm(h)))
