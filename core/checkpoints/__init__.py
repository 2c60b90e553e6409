"""Checkpoints: one `.safetensors` file per trained model, with its recipe as JSON metadata.

File layout (safetensors: 8-byte little-endian header length, a JSON header, then raw tensor bytes):

* tensors "ema.<name>"    the EMA weights, used for sampling (always present)
* tensors "raw.<name>"    the raw (non-averaged) weights, only for resuming training (optional)
* tensors "optim.<i>"     the optimizer's tensors, only for resuming training (optional)
* header metadata (safetensors allows only str -> str):
    "rdl"            JSON document describing the checkpoint (schema below, `FORMAT_VERSION`)
    "rdl_optimizer"  (optional) JSON skeleton of `optimizer.state_dict()` in which every tensor is
                     replaced by {"__tensor__": "optim.<i>"}, dicts by {"__dict__": [[key, value], ...]}
                     (keeps integer keys) and tuples by {"__tuple__": [...]}.

The "rdl" document:
    format_version    int, FORMAT_VERSION
    model             the model's `.config` (rebuilt with core.nets.build.build_model)
    diffusion         GaussianDiffusion.to_config()
    training          TrainingRecord.to_dict() ({"config": TrainConfig JSON, "generator_state", "progress", ...}), or null
    data              {"dataset": str or null, "shape": [int, ...] or null}  (shape of one example)
    steps             int or null;  final_loss  float or null;  training_seconds  float or null
    device            str or null (where it was trained);  torch_version  str;  created  ISO-8601 UTC
    notes             str (free-form)
    has_raw, has_optimizer   bool

API: save(...) writes atomically; load(path) / load_bytes(data) -> (EMA model in eval mode, diffusion,
metadata); load_for_resume(path) -> CheckpointContents (adds raw weights and optimizer state); read_metadata(path)
reads only the header.

The info keys of the document (model, diffusion, data, training, steps, ...) are one `CheckpointInfo`
(core/checkpoints/info.py): producers pass one to save().

Files are untrusted input (uploads) and loading any file takes bounded time and memory. In order, before
anything is built: the file size (max_bytes), the header size (MAX_HEADER_BYTES), the JSON's size and nesting
depth and its text (every string UTF-8-encodable: core.checkpoints.info.parse_json), the number of tensors
(MAX_TENSORS), the data shape (the model's own input) and dataset (a known name whose examples have that shape:
info.DATASET_SHAPES), every field of the model config (core.nets.config.BOUNDS: depth, widths, channels, blocks,
image side <= 64, <= 4 channels, points <= 16-D; at most MAX_PARAMETERS weights), T (core.diffusion.schedules.MAX_T),
the schedule's numbers (core.diffusion.schedules.numerical_problem: every derived array finite in float32) and the
memory that sampling a full batch would need (at most MAX_SAMPLING_BYTES, computed from the config alone).
Then the model is built on the "meta" device (shapes only) and compared with the file's tensors (names,
shapes, dtypes, finiteness), the weights are loaded, and the network's output must be finite at timesteps spread
over 0..T-1 (validate.probe_timesteps: all T for the toy MLPs, as many as PROBE_FLOPS of work allows for a UNet;
a finite weight of 3e38 passes every other check). Files are never unpickled; every problem raises
`CheckpointError` (a ValueError) with a one-line message.
"""

from core.checkpoints.files import CheckpointContents, load, load_bytes, load_for_resume, read_metadata, save
from core.checkpoints.info import CheckpointInfo, DataInfo, TrainingRecord, parse_json
from core.checkpoints.validate import (
    DOCUMENT_KEYS,
    FORMAT_VERSION,
    MAX_CHECKPOINT_BYTES,
    MAX_HEADER_BYTES,
    MAX_SAMPLING_BYTES,
    MAX_TENSORS,
    MAX_UPLOAD_BYTES,
    METADATA_KEY,
    OPTIMIZER_KEY,
    PROBE_BATCH,
    PROBE_FLOPS,
    SAMPLING_BATCH,
    TRAINING_INFO_KEYS,
    CheckpointError,
)

__all__ = [
    "DOCUMENT_KEYS", "FORMAT_VERSION", "MAX_CHECKPOINT_BYTES", "MAX_HEADER_BYTES", "MAX_SAMPLING_BYTES", "MAX_TENSORS",
    "MAX_UPLOAD_BYTES", "METADATA_KEY", "OPTIMIZER_KEY", "PROBE_BATCH", "PROBE_FLOPS",
    "SAMPLING_BATCH", "TRAINING_INFO_KEYS",
    "CheckpointError", "CheckpointInfo", "DataInfo", "TrainingRecord", "CheckpointContents", "load", "load_bytes", "load_for_resume",
    "parse_json", "read_metadata", "save",
]
