"""Model configs: one dataclass per network, validated once, with the cost of the network computed from it alone.

`UNetConfig` and `ToyMLPConfig` check every field against finite `BOUNDS` (generous for teaching models, small
enough that no config can exhaust a server), round-trip to the JSON dict a checkpoint stores (the same keys as
the models' `.config`, so older files load unchanged), and compute without building anything:

* `parameter_count()`              exact number of weights and biases (tests compare it with the built module)
* `forward_bytes(batch, grad)`     estimated peak memory of the activations of one forward pass at `batch`
                                   (grad=False: inference, only live tensors; grad=True: every activation
                                   autograd keeps for the backward pass)
* `training_step_bytes(batch)`     forward_bytes(grad=True) + weights, gradients, Adam moments and an EMA copy

Memory estimates count float32 tensors (4 bytes per value); tests compare them with a measured peak.
`UNet(config)` / `ToyMLP(config)` only build; `config_from_dict` is the single entry from JSON.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from core.checks import check_bool, check_int, check_number

BYTES_PER_VALUE = 4  # float32
# Every field's allowed range. Teaching models use a fraction of this (the "base" UNet: channels <= 128,
# 2 blocks per level, 6.7 M parameters); the bounds keep any config, even a hostile one, cheap to check and build.
BOUNDS = {
    "in_channels": (1, 4),  # image channels: grey, RGB, RGBA
    "out_channels": (1, 8),  # twice the image channels for learned variances
    "image_size": (1, 64),  # height = width of the images
    "levels": (1, 5),  # resolution levels of a UNet (len(channels))
    "channels": (1, 512),  # per level
    "num_res_blocks": (1, 4),  # per level
    "num_heads": (1, 16),
    "time_embed_dim": (4, 1024),  # even
    "norm_groups": (1, 64),
    "data_dim": (1, 16),  # dimension of the points of a 2-D (or low-dimensional) toy
    "out_dim": (1, 32),
    "hidden": (1, 2048),
    "depth": (1, 32),
    "fourier_frequencies": (0, 16),
}
MAX_PARAMETERS = 50_000_000  # 200 MB of float32 weights; the "base" UNet has 6.7 M


def _bounded(name: str, value, key: str | None = None) -> int:
    low, high = BOUNDS[key or name]
    return check_int(name, value, low, high)


def _per_level(name: str, values) -> tuple[int, ...]:
    low, high = BOUNDS["levels"]
    if not isinstance(values, (list, tuple)) or not low <= len(values) <= high:
        shown = values if not isinstance(values, (list, tuple)) else f"a list of {len(values)} entries"
        raise ValueError(f"{name}={shown!r} is not allowed; expected a list of {low}..{high} integers "
                         f"(one per resolution level)")
    return tuple(_bounded(f"{name}[{i}]", v, name) for i, v in enumerate(values))


def _check_parameters(config) -> None:
    count = config.parameter_count()
    if count > MAX_PARAMETERS:
        raise ValueError(f"this {config.kind} config has {count:,} parameters, more than the limit of {MAX_PARAMETERS:,}")


# ---------------------------------------------------------------------------------------- UNet
@dataclass(frozen=True)
class UNetConfig:
    """The UNet of core.nets.unet (see its docstring for the layout); every field is checked in __post_init__."""

    in_channels: int
    out_channels: int
    image_size: int
    channels: tuple[int, ...] = (16, 32, 64)
    num_res_blocks: tuple[int, ...] = (1, 1, 1)
    attention: bool = True
    num_heads: int = 4
    time_embed_dim: int = 64
    norm_groups: int = 8
    dropout: float = 0.0
    kind = "unet"

    def __post_init__(self):
        set_ = object.__setattr__  # frozen: normalised values are written once, here
        for name in ("in_channels", "out_channels", "image_size", "num_heads", "time_embed_dim", "norm_groups"):
            set_(self, name, _bounded(name, getattr(self, name)))
        set_(self, "channels", _per_level("channels", self.channels))
        set_(self, "num_res_blocks", _per_level("num_res_blocks", self.num_res_blocks))
        set_(self, "attention", check_bool("attention", self.attention))
        set_(self, "dropout", check_number("dropout", self.dropout, 0.0, 1.0, open_high=True))
        levels = len(self.channels)
        if len(self.num_res_blocks) != levels:
            raise ValueError(f"num_res_blocks={list(self.num_res_blocks)!r} is not allowed; expected one entry per "
                             f"level like channels ({levels})")
        if self.image_size % 2 ** (levels - 1):
            raise ValueError(f"image_size={self.image_size} is not allowed; with {levels} resolution levels it must be "
                             f"divisible by {2 ** (levels - 1)} (e.g. 28 or 32 with 3 levels)")
        if any(c % self.norm_groups for c in self.channels):
            raise ValueError(f"channels={list(self.channels)!r} is not allowed; every entry must be divisible by "
                             f"norm_groups={self.norm_groups}")
        if self.attention and self.channels[-1] % self.num_heads:
            raise ValueError(f"num_heads={self.num_heads} is not allowed; channels[-1]={self.channels[-1]} must be "
                             f"divisible by it")
        if self.time_embed_dim % 2:
            raise ValueError(f"time_embed_dim={self.time_embed_dim} is not allowed; expected an even integer")
        _check_parameters(self)

    def to_dict(self) -> dict:
        """The JSON form stored in checkpoints (lists for the per-level tuples)."""
        return {"kind": self.kind, **{k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}}

    def layers(self):
        """The network's layers in forward order, as (name, in_channels, out_channels, side, skip) with side the
        height = width of the layer's input and skip the values per image it stores for (+) or takes from (-)
        the skip connections. Mirrors UNet.__init__; parameter_count and forward_bytes use it."""
        side, ch = self.image_size, self.channels[0]
        yield "input_conv", self.in_channels, ch, side, ch * side * side
        skips = [ch * side * side]
        for level, (level_ch, blocks) in enumerate(zip(self.channels, self.num_res_blocks)):
            for _ in range(blocks):
                yield "res", ch, level_ch, side, level_ch * side * side
                ch = level_ch
                skips.append(ch * side * side)
            if level < len(self.channels) - 1:
                yield "down", ch, ch, side, ch * (side // 2) ** 2
                side //= 2
                skips.append(ch * side * side)
        yield "res", ch, ch, side, 0
        if self.attention:
            yield "attention", ch, ch, side, 0
        yield "res", ch, ch, side, 0
        for level in reversed(range(len(self.channels))):
            for block in range(self.num_res_blocks[level] + 1):
                skip = skips.pop()
                skip_ch = skip // (side * side)
                yield "res", ch + skip_ch, self.channels[level], side, -skip
                ch = self.channels[level]
                if level > 0 and block == self.num_res_blocks[level]:
                    yield "up", ch, ch, side, 0
                    side *= 2
        yield "output", ch, self.out_channels, side, 0

    def parameter_count(self) -> int:
        E = self.time_embed_dim
        count = 2 * (E * E + E)  # time MLP: two E x E linear layers
        for name, i, o, _, _ in self.layers():
            if name in ("input_conv", "down", "up"):
                count += 9 * i * o + o
            elif name == "res":  # norm1, conv1, emb_proj (scale, shift), norm2, conv2, 1x1 skip if i != o
                count += 2 * i + 9 * i * o + o + 2 * E * o + 2 * o + 2 * o + 9 * o * o + o + (i * o + o if i != o else 0)
            elif name == "attention":  # norm, qkv 1x1 conv, output 1x1 conv
                count += 2 * i + 3 * i * i + 3 * i + i * i + i
            else:  # output: out_norm, out_conv
                count += 2 * i + 9 * i * o + o
        return count

    def forward_bytes(self, batch: int, grad: bool = False) -> int:
        """Estimated peak bytes of the activations of one forward pass on `batch` images.

        grad=False (sampling): the skip connections held at each layer plus that layer's working set.
        grad=True (training): every intermediate tensor, since autograd keeps them for the backward pass.
        Self-attention's B x heads x (HW)^2 score matrix is included (the math kernel materialises it).
        """
        batch = check_int("batch", batch, 1)
        live_skips, peak, kept = 0, 0, self.in_channels * self.image_size ** 2
        for name, i, o, side, skip in self.layers():
            n = side * side
            if name == "res":  # input (the concatenation in the up path), norm, SiLU, conv, scale-shift, ...
                working, saved = n * (2 * i + 5 * o), n * (2 * i + 8 * o)
            elif name == "attention":
                working, saved = n * 6 * i + 2 * self.num_heads * n * n, n * 8 * i + 2 * self.num_heads * n * n
            elif name == "up":  # nearest-neighbour x2, then a conv at the doubled side
                working, saved = 4 * n * (i + o), 4 * n * (i + o)
            else:  # convolutions; "output" adds its norm and SiLU
                working, saved = n * (2 * i + o), n * (2 * i + o)
            peak = max(peak, live_skips + working)
            kept += saved
            live_skips += skip
        return BYTES_PER_VALUE * batch * (kept if grad else peak)

    def training_step_bytes(self, batch: int) -> int:
        """forward_bytes(grad=True) plus weights, gradients, two Adam moments and the EMA copy (5 x weights)."""
        return self.forward_bytes(batch, grad=True) + 5 * BYTES_PER_VALUE * self.parameter_count()


# ---------------------------------------------------------------------------------------- toy MLP
@dataclass(frozen=True)
class ToyMLPConfig:
    """The residual MLP of core.nets.toy_mlp; every field is checked in __post_init__."""

    data_dim: int = 2
    out_dim: int = 2
    hidden: int = 128
    depth: int = 3
    time_embed_dim: int = 64
    fourier_frequencies: int = 0
    kind = "mlp"

    def __post_init__(self):
        for field in fields(self):
            object.__setattr__(self, field.name, _bounded(field.name, getattr(self, field.name)))
        if self.time_embed_dim % 2:
            raise ValueError(f"time_embed_dim={self.time_embed_dim} is not allowed; expected an even integer")
        _check_parameters(self)

    @property
    def input_features(self) -> int:
        """Width of the Fourier-feature lift of one point: x, then a sin and a cos per frequency."""
        return self.data_dim * (1 + 2 * self.fourier_frequencies)

    def to_dict(self) -> dict:
        return {"kind": self.kind, **asdict(self)}

    def parameter_count(self) -> int:
        h, E = self.hidden, self.time_embed_dim
        time_mlp = E * h + h + h * h + h
        block = 2 * h + 3 * (h * h + h)  # LayerNorm, linear1, emb_proj, linear2
        return time_mlp + self.input_features * h + h + self.depth * block + 2 * h + h * self.out_dim + self.out_dim

    def forward_bytes(self, batch: int, grad: bool = False) -> int:
        """Estimated peak bytes of one forward pass's activations (see UNetConfig.forward_bytes)."""
        h, F = self.hidden, self.input_features
        embedding = self.time_embed_dim + 3 * h
        if grad:
            values = embedding + 2 * F + h + self.depth * 10 * h + 4 * h + self.out_dim
        else:
            values = embedding + max(2 * F + h, 5 * h)
        return BYTES_PER_VALUE * check_int("batch", batch, 1) * values

    def training_step_bytes(self, batch: int) -> int:
        return self.forward_bytes(batch, grad=True) + 5 * BYTES_PER_VALUE * self.parameter_count()


CONFIG_CLASSES = {"unet": UNetConfig, "mlp": ToyMLPConfig}
REQUIRED_KEYS = {"unet": ("in_channels", "out_channels", "image_size"), "mlp": ()}


def config_from_dict(config: dict) -> UNetConfig | ToyMLPConfig:
    """The config dataclass of a JSON model config ({"kind": "unet" | "mlp", ...}); ValueError on bad input."""
    if not isinstance(config, dict):
        raise ValueError(f"config must be a dict with a 'kind' key, got {type(config).__name__}")
    kind = config.get("kind")
    if kind not in CONFIG_CLASSES:
        raise ValueError(f"config['kind']={kind!r} is not allowed; expected one of {', '.join(CONFIG_CLASSES)}")
    cls = CONFIG_CLASSES[kind]
    allowed = [field.name for field in fields(cls)]
    arguments = {key: value for key, value in config.items() if key != "kind"}
    unknown = sorted(set(arguments) - set(allowed), key=str)
    if unknown:
        raise ValueError(f"unknown key(s) {unknown[:5]} in a {kind!r} config; allowed: {', '.join(allowed)}")
    missing = [key for key in REQUIRED_KEYS[kind] if key not in arguments]
    if missing:
        raise ValueError(f"a {kind!r} config needs the key(s) {missing}")
    return cls(**arguments)
