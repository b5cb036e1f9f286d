"""Channel masks: which channels of each gated group a sub-network keeps.

A mask set is ``dict[gate name, bool array]``. Which channels a pruning ratio keeps is decided by
channel importance, summed over every layer coupled into the group. The default criterion ("l1") is
the L1 norm of the weights that produce the channel (Li et al. 2017, and what the alignment regulariser
drives: channels outside the agent's selection shrink toward zero, so importance then agrees with the
agent); "bn_scale" is |gamma| of the BatchNormalization right after the producer (Network Slimming);
"gate_score" is |score| of the group's trainable gate score (`ChannelGate(score=True)`, trained with the
network under an L1 penalty, `tfprune.structure.gate_scores`).
"""

import json
import os

import keras
import numpy as np

from tfprune.infra import safe_write
from tfprune.errors import TfpruneError
from tfprune.structure.gates import gates_of


# "l1": L1 norm of the producing kernels; "bn_scale": |gamma| of the BatchNormalization after them;
# "gate_score": |score| of the group's gate (gates built with `new_gate.score = True`).
IMPORTANCE_CRITERIA = ("l1", "bn_scale", "gate_score")


class MaskError(TfpruneError, ValueError):
    """A mask does not fit the model (unknown gate, wrong length, empty group, bad ratio)."""


class ImportanceError(TfpruneError, ValueError):
    """An unknown channel-importance criterion was asked for."""


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


def check_criterion(criterion, graph=None):
    """The criterion itself, if it is one of `IMPORTANCE_CRITERIA` (and, given the model's `graph`, one
    the model can answer): checked where it is configured, so a typo fails before any training time is
    spent."""
    if criterion not in IMPORTANCE_CRITERIA:
        raise ImportanceError(
            f"Unknown channel-importance criterion {criterion!r}; set JointPruner.importance to one of "
            f"{', '.join(repr(c) for c in IMPORTANCE_CRITERIA)}."
        )
    unscored = [] if graph is None or criterion != "gate_score" else [
        g.name for g in graph.gated_groups if not g.gate.has_score]
    if unscored:
        raise ImportanceError(
            f"Importance 'gate_score' needs gates with a trainable score, and gates {unscored} have none: build "
            "the model with the gin binding `new_gate.score = True` (zoo models and tfprune.auto_gate)."
        )
    return criterion


def channel_importance(graph, criterion="l1"):
    """Importance of each gated group's channels, summed over the group's coupled producers.

    "l1": L1 norm of each producer's kernel per output channel (Li et al. 2017). "bn_scale": |gamma| of
    the BatchNormalization layer(s) that directly consume each producer's output (Network Slimming, Liu
    et al. 2017): the scale decides how much of the channel survives normalisation, whatever the kernel's
    size. A producer that no BatchNormalization follows directly (a Dense head, a conv straight into an
    activation) contributes its L1 score instead, so that every producer still counts; in a group that
    mixes both kinds the L1 terms, on a larger scale than gammas, then dominate the ranking. "gate_score":
    |score| of the group's gate, one per channel (a gate shared by a residual add scores the group once).
    """
    check_criterion(criterion, graph)
    if criterion == "gate_score":
        return {group.name: np.abs(group.gate.get_scores()).astype(np.float64) for group in graph.gated_groups}
    model = graph.model
    norms_after = _batch_norms_after_producers(graph) if criterion == "bn_scale" else {}
    importance = {}
    for group in graph.gated_groups:
        score = np.zeros(group.size, dtype=np.float64)
        for name in group.producers:
            norms = norms_after.get(name)
            score += sum(np.abs(np.asarray(bn.gamma)) for bn in norms) if norms else _l1(model.get_layer(name))
        importance[group.name] = score
    return importance


def _l1(layer):
    kernel = np.asarray(layer.weights[_kernel_index(layer)])
    return np.abs(kernel.reshape(-1, kernel.shape[-1])).sum(axis=0)


def _batch_norms_after_producers(graph):
    """{producer layer name: [BatchNormalization layers called directly on its output]}, from the
    graph's nodes; only channel-axis BNs with a scale (gamma) count."""
    produced_by = {}
    for info in graph.nodes:
        if info.rule is not None and info.rule.kind == "produce":
            produced_by.update({id(t): info.layer.name for t in info.node.outputs})
    norms_after = {}
    for info in graph.nodes:
        layer = info.layer
        if isinstance(layer, keras.layers.BatchNormalization) and info.rule is not None and layer.scale:
            producer = produced_by.get(id(info.node.input_tensors[0]))
            if producer is not None:
                norms_after.setdefault(producer, []).append(layer)
    return norms_after


def _kernel_index(layer):
    # SeparableConv2D holds [depthwise, pointwise, bias]: the pointwise kernel produces the channels.
    return 1 if hasattr(layer, "pointwise_kernel") else 0


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
