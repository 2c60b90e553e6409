"""The one reader of training progress in the layouts used before ProgressRecord.to_json() became its on-disk form.

Until then each store kept the same numbers under its own names:

* progress.json (a live run, core.training.worker): flat entries step, elapsed_seconds, loss_steps, loss_history,
  profile_edges, profile;
* a checkpoint's "training" object (core.checkpoints.info.TrainingRecord; every shipped checkpoint): step,
  loss_history = {max_points, bucket, steps, losses, pending_sum, pending_count} and
  profile = {T, bins, window, averages, counts}, the seconds being the document's training_seconds;
* a replay's history.json, version 1 (core.training.history; the shipped recordings): T, profile_bin_edges,
  loss = {steps, losses}, and per frame step, seconds, profile.

Each function below turns one old layout into the new one and does nothing else: the result goes through the same
checked reader as a file written today, so every bound is applied once, in one place. The functions only move
values (their inputs are untrusted: nothing is computed whose size the input chooses); what they cannot place they
leave for that reader to refuse, or refuse themselves with a one-line ValueError.
"""

from __future__ import annotations

import math

SNAPSHOT_FIELDS = {"step": "step", "elapsed_seconds": "seconds", "loss_steps": "loss_steps", "loss_history": "losses",
                   "profile_edges": "profile_edges", "profile": "profile"}  # progress.json's old name → the record's
TRAINING_FIELDS = ("step", "loss_history", "profile")  # a checkpoint's old entries, replaced by the three below
# the old loss_history and profile entries that are not the curve (now LossHistory.averaging, TimestepProfile.averaging)
OLD_LOSS_AVERAGING, OLD_PROFILE_AVERAGING = ("max_points", "bucket", "pending_sum", "pending_count"), ("window", "counts")
HISTORY_V1_KEYS = {"format", "version", "title", "description", "config", "T", "profile_bin_edges", "loss", "frames"}


def progress_file(data: dict) -> dict:
    """progress.json in the new layout ({"progress": ProgressRecord.to_json(), ...}). Old flat entries win over a
    "progress" entry beside them (a file a server of the new layout merged into its defaults); a file with none
    is returned as a copy."""
    old = {name: data[name] for name in SNAPSHOT_FIELDS if name in data}
    if not old:
        return dict(data)
    values = {name: value for name, value in data.items() if name not in SNAPSHOT_FIELDS}
    progress = dict(values["progress"]) if isinstance(values.get("progress"), dict) else {}
    progress.update({SNAPSHOT_FIELDS[name]: value for name, value in old.items()})
    values["progress"] = progress
    return values


def checkpoint_training(data: dict, seconds) -> dict:
    """A checkpoint's "training" object in the new layout: "progress" (a ProgressRecord's JSON; its seconds are the
    document's training_seconds, `seconds`), "loss_averaging" and "profile_averaging". An old object with neither
    loss_history nor profile (a producer that gave the config and step only) keeps no progress: the step is the
    document's "steps" too. ValueError when the old entries cannot be placed."""
    if not any(name in data for name in TRAINING_FIELDS):
        return dict(data)
    values = {name: value for name, value in data.items() if name not in TRAINING_FIELDS}
    history, profile = data.get("loss_history"), data.get("profile")
    if history is None and profile is None:
        return values
    if not (isinstance(history, dict) and isinstance(profile, dict) and "step" in data):
        raise ValueError("the old layout's step, loss_history and profile must be given together, the latter two as dicts")
    averages, T, bins = profile.get("averages"), profile.get("T"), profile.get("bins")
    if not (isinstance(averages, list) and all(isinstance(n, int) and not isinstance(n, bool) for n in (T, bins))
            and 1 <= bins == len(averages) and bins <= T <= 10**9):
        raise ValueError("the old layout's profile must hold T (at most 10^9), bins (at most T) and one average per bin")
    if not isinstance(seconds, (int, float)) or isinstance(seconds, bool) or not math.isfinite(seconds) or seconds < 0:
        seconds = 0.0  # (a bad training_seconds is refused by CheckpointInfo itself)
    values["progress"] = {"step": data["step"], "seconds": seconds, "loss_steps": history.get("steps"),
                          "losses": history.get("losses"), "profile": averages,
                          "profile_edges": [math.ceil(b * T / bins) for b in range(bins + 1)]}  # TimestepProfile.bin_edges
    values["loss_averaging"] = {name: history[name] for name in OLD_LOSS_AVERAGING if name in history}
    values["profile_averaging"] = {name: profile[name] for name in OLD_PROFILE_AVERAGING if name in profile}
    return values


def history_file(doc: dict) -> dict:
    """A history.json document of version 1 in the version-2 layout: "progress" is the run at its last frame (that
    frame's step, seconds and loss per t, the whole loss curve, the bins). Other versions are returned as they are."""
    if doc.get("version") != 1:
        return doc
    if set(doc) != HISTORY_V1_KEYS:
        raise ValueError(f"a version-1 history has exactly the entries {sorted(HISTORY_V1_KEYS)}")
    loss, frames, edges = doc["loss"], doc["frames"], doc["profile_bin_edges"]
    if not (isinstance(loss, dict) and set(loss) == {"steps", "losses"}):
        raise ValueError("loss must have exactly 'steps' and 'losses'")
    if not (isinstance(frames, list) and frames and isinstance(frames[-1], dict)):
        raise ValueError("frames must be a non-empty list of objects")
    if not (isinstance(edges, list) and edges and edges[-1] == doc["T"]):
        raise ValueError(f"profile_bin_edges must end at T={doc['T']!r}")
    last = frames[-1]
    values = {name: value for name, value in doc.items() if name not in ("T", "profile_bin_edges", "loss")}
    values["version"] = 2
    values["progress"] = {"step": last.get("step"), "seconds": last.get("seconds"), "loss_steps": loss["steps"],
                          "losses": loss["losses"], "profile_edges": edges, "profile": last.get("profile")}
    return values
