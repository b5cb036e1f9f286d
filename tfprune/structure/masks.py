"""Channel masks: which channels of each gated group a sub-network keeps.

A mask set is ``dict[gate name, bool array]``. Which channels a pruning ratio keeps is decided by
channel importance (`tfprune.structure.importance`: L1 of the producing kernels by default, BatchNorm
|gamma|, or the gate's trained score), summed over every layer coupled into the group.
"""

import json
import os

import numpy as np

from tfprune.infra import safe_write
from tfprune.errors import TfpruneError
from tfprune.structure.gates import gates_of
# Channel importance lives in `tfprune.structure.importance`; its names stay importable from here, where
# configs, docs and older code have always found them.
from tfprune.structure.importance import (  # noqa: F401
    IMPORTANCE_CRITERIA, ImportanceError, channel_importance, check_criterion)


class MaskError(TfpruneError, ValueError):
    """A mask does not fit the model (unknown gate, wrong length, empty group, bad ratio)."""


def validate_masks(masks, graph):
    """Checks a mask dict against a model's gated groups; returns it as bool arrays."""
    groups = {g.name: g for g in graph.gated_groups}
    out = {}
    for name, mask in masks.items():
        if name not in groups:
            raise MaskError(f"Mask names gate {name!r}, which the model does not have. Gates: {sorted(groups)}.")
        mask = np.asarray(mask).reshape(-1)
        if mask.size != groups[name].size:
            raise MaskError(
                f"Mask for gate {name!r} has {mask.size} entries but the group has {groups[name].size} channels."
            )
        mask = mask.astype(bool) if mask.dtype == bool else mask >= 0.5
        if not mask.any():
            raise MaskError(
                f"Mask for gate {name!r} removes every channel of the group; keep at least one channel."
            )
        out[name] = mask
    return out


def read_masks(model):
    """The hard masks currently held by the model's gates."""
    return {name: gate.get_mask() for name, gate in gates_of(model).items()}


def apply_masks(model, masks):
    """Writes masks into the model's gates (groups not in `masks` are opened fully)."""
    gates = gates_of(model)
    unknown = set(masks) - set(gates)
    if unknown:
        raise MaskError(f"Masks name gates the model does not have: {sorted(unknown)}.")
    for name, gate in gates.items():
        gate.set_mask(masks[name] if name in masks else np.ones(gate.channels, dtype=bool))


def open_masks(graph):
    """All channels kept."""
    return {g.name: np.ones(g.size, dtype=bool) for g in graph.gated_groups}


def masks_from_kept(kept, group_names, importance):
    """Keeps the ``kept[i]`` most important channels of group i."""
    masks = {}
    for name, k in zip(group_names, kept):
        score = importance[name]
        k = int(k)
        if not 1 <= k <= score.size:
            raise MaskError(f"Group {name!r} has {score.size} channels; cannot keep {k} (keep at least one).")
        mask = np.zeros(score.size, dtype=bool)
        # Stable sort so equal scores (e.g. a fresh model's ties) resolve deterministically.
        mask[np.argsort(-score, kind="stable")[:k]] = True
        masks[name] = mask
    return masks


def kept_from_ratios(ratios, group_sizes):
    """Channels kept per group for pruning ratios in [0, 1); at least one channel is always kept."""
    ratios = np.asarray(ratios, dtype=np.float64)
    sizes = np.asarray(group_sizes)
    if ratios.shape != sizes.shape:
        raise MaskError(f"Expected {sizes.size} pruning ratios (one per gated group), got {ratios.size}.")
    if np.any(ratios < 0) or np.any(ratios >= 1) or not np.all(np.isfinite(ratios)):
        raise MaskError(f"Pruning ratios must lie in [0, 1); got min {ratios.min():.3f}, max {ratios.max():.3f}.")
    return np.maximum(1, np.round(sizes * (1.0 - ratios))).astype(np.int64)


def kept_counts(masks):
    """{group: [kept, total]} of a sub-network, for reports (summary.json's `kept_channels`)."""
    return {name: [int(np.sum(m)), int(np.size(m))] for name, m in masks.items()}


# The name a mask set is saved under beside an exported model (`JointPruner.export`). A run directory's
# own files, its masks.json included, are named in `tfprune.infra.workdir` alone.
EXPORTED_MASKS = "masks.json"


def save_masks(masks, path):
    """JSON {gate name: [0/1, ...]}: readable, diffable and independent of TensorFlow versions. Written
    under a temporary name and renamed (`tfprune.infra.safe_write`): a failed write keeps the previous file."""
    safe_write.write_text(path, json.dumps({name: np.asarray(m, dtype=int).tolist() for name, m in masks.items()}))


def load_masks(path):
    if not os.path.exists(path):
        raise FileNotFoundError(f"Mask file {path!r} does not exist (train.py writes WORKDIR/masks.json).")
    try:
        with open(path) as f:
            raw = json.load(f)
    except json.JSONDecodeError as e:
        raise MaskError(f"Mask file {path!r} is not valid JSON ({e}); expected {{gate_name: [0/1, ...]}}.") from e
    if not isinstance(raw, dict):
        raise MaskError(f"Mask file {path!r} must hold a JSON object {{gate_name: [0/1, ...]}}.")
    return {name: np.asarray(values, dtype=bool) for name, values in raw.items()}
