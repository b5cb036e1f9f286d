"""Physical pruning: a gated model plus masks becomes a genuinely smaller plain Keras model.

The graph is re-run layer by layer (`keras_internals.clone_graph`, as Keras' `clone_model` does): gates
become identities, Conv/Dense layers are rebuilt with fewer filters/units, and every layer's weights
are sliced to the kept input and output channels that the channel graph assigns to its tensors.
With binary masks the compact model computes exactly what the masked model computes; trainable gate
scores are folded into the BatchNorm before the gate, or kept as a fixed per-channel scale
(`tfprune.structure.gate_scores`); a removed channel that reaches a Conv/Dense as a constant rather than a
zero (DenseNet's concat -> BN -> ReLU -> 1x1 conv) is folded into that layer's bias
(`tfprune.structure.constant_folds`).
"""

import keras
import numpy as np

from tfprune.structure import keras_internals

from tfprune.structure import registry
from tfprune.structure.constant_folds import plan_constant_folds
from tfprune.structure.gate_scores import plan_folds
from tfprune.structure.graph import ChannelGraph
from tfprune.structure.masks import read_masks, validate_masks


def compact_model(model, masks=None, graph=None):
    """Returns a smaller `keras.Model` without gates; ``masks`` default to the gates' current masks."""
    graph = graph if graph is not None else ChannelGraph(model, warn=False)
    functional = graph.model
    masks = validate_masks(read_masks(functional) if masks is None else masks, graph)
    indices = _LayoutIndexer(graph, masks)
    folds = plan_folds(graph)
    constants = plan_constant_folds(graph, masks)

    node_info = {}
    for info in graph.nodes:
        previous = node_info.setdefault(id(info.layer), info)
        if previous is not info and indices(previous.out_layout).tolist() != indices(info.out_layout).tolist():
            raise ValueError(
                f"Layer {info.layer.name!r} is shared by calls whose channels are pruned differently; "
                "tfprune cannot give one set of weights to both."
            )

    replacements = {}

    def replace(layer):
        if id(layer) not in replacements:
            replacements[id(layer)] = _shrunk_layer(layer, node_info.get(id(layer)), indices, folds, constants)
        return replacements[id(layer)]

    # Same input and output structure as the original (a single tensor stays a single tensor).
    compact = keras_internals.clone_graph(functional, replace, name=f"{functional.name}_compact")

    for info in node_info.values():
        new_layer = replacements.get(id(info.layer))
        if isinstance(new_layer, keras.layers.Layer) and info.layer.weights:
            kept = indices(info.out_layout)
            weights = folds.adjust(info.layer, _sliced_weights(info, indices), kept)
            new_layer.set_weights(constants.adjust(info.layer, weights, kept))
            if callable(getattr(new_layer, "finalize_state", None)):
                new_layer.finalize_state()  # e.g. an adapted Normalization recomputes mean/std from its weights
    return compact


class _LayoutIndexer:
    """Kept channel indices of a layout: per segment, the group's mask or all channels."""

    def __init__(self, graph, masks):
        self.graph = graph
        self.masks = masks

    def __call__(self, layout):
        parts, offset = [], 0
        for space, size in layout:
            group = self.graph.group_of_space(space)
            mask = self.masks.get(group.name) if group is not None else None
            kept = np.flatnonzero(mask) if mask is not None else np.arange(size)
            parts.append(kept + offset)
            offset += size
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)

    def is_full(self, layout):
        return len(self(layout)) == sum(size for _, size in layout)


def _shrunk_layer(layer, info, indices, folds, constants):
    """The replacement operation for one original layer."""
    if registry.is_gate(layer):
        return folds.replacement(layer)
    if info is None or not isinstance(layer, keras.layers.Layer):
        return layer  # e.g. an InputLayer or a non-layer op: reused as is
    rule = info.rule
    try:
        config = layer.get_config()
        if rule is not None:  # Conv/Dense: fewer filters; a grouped depthwise conv: fewer groups too
            config = constants.config(layer, rule.shrink_config(config, len(indices(info.out_layout))))
        return type(layer).from_config(config)
    except Exception:  # noqa: BLE001 - a custom layer given non-serializable arguments has no usable config
        if rule is None or not layer.weights:  # a barrier or a weightless layer keeps its shape: reused as is
            return layer  # (auto_gate warned that it could not copy it)
        raise


def _sliced_weights(info, indices):
    weights = [np.asarray(w) for w in info.layer.get_weights()]
    rule = info.rule
    in_layout = info.in_layout if rule is not None and rule.kind not in ("merge", "concat") else None
    if rule is None or rule.slice_weights is None:
        # Barriers see unpruned channels by construction; layers without weights need no slicing.
        return weights
    in_idx = None if in_layout is None or indices.is_full(in_layout) else indices(in_layout)
    out_idx = None if indices.is_full(info.out_layout) else indices(info.out_layout)
    return rule.slice_weights(info.layer, weights, in_idx, out_idx)
