"""What a removed channel holds on its way to the next Conv/Dense, and the constants folded into that layer.

A gate makes a removed channel exactly zero. The channel-by-channel layers after it keep it zero (ReLU,
pooling, padding, ...: `registry.preserves_zero`), or turn it into an input-independent *constant*: at
inference a BatchNormalization gives a zero channel the value beta - gamma * mean / sqrt(var + eps), an
activation f gives f of a constant, and so on (`registry.preserves_constant`); anything else (a Conv/Dense
output, a model input, zero padding of a nonzero constant, whose borders differ) may hold anything. Per
channel segment of a tensor's layout the *state* is therefore `ZERO`, a `Constant` or the name of the layer
that made it hold anything (`states_out` says how each layer maps them: the one rule, which `auto_gate`
places its gates by and `compact_model` folds by).

A removed channel that reaches its consumer as a constant is exact to remove where the consumer turns a
constant input into one value per output channel: a Dense, a 1x1 Conv2D or a Conv2D with padding='valid'
(`registry.folds_constant`). That value is added to the consumer's bias (`plan_constant_folds`,
`ConstantFolds`). A consumer without a bias that reads such channels of a gated group gets one in the
compact model whatever the masks (zero where nothing is removed: `bias_takers`), so that the compact
architecture depends on the kept counts alone and `CostModel` counts the bias among the parameters.

This is DenseNet's concat -> BN -> ReLU -> 1x1 conv: after the Concatenate no gate can re-mask one group,
but every removed channel is the BN's constant there, folded into each 1x1 conv (and the classifier's Dense)
that reads it. The masked model and the compact model then agree at inference, where the BN uses its moving
statistics: the constant is taken from the statistics the model holds at compaction, whatever they are. (In
training a zero channel's batch statistics make the BN give it beta instead; the compact model, fine-tuned,
learns from there.) Where the consumer cannot fold (a kxk 'same' conv, whose
zero-padded borders see something else) `auto_gate` keeps the groups whole, with a warning.
"""

import dataclasses

import keras
import numpy as np

from tfprune.structure import keras_internals as internals
from tfprune.structure import registry

ZERO = None


class Constant(str):
    """The state of a removed channel holding one input-independent value; the string names the layer that
    made it nonzero (where a warning has to blame one)."""


def states_out(info, in_states):
    """The states of a node's output segments, given those of its inputs (one tuple per input tensor)."""
    layer, rule = info.layer, info.rule
    n_out = len(info.out_layout)
    if registry.is_gate(layer):
        return (ZERO,) * n_out
    if rule is None or rule.kind == "produce":
        return (layer.name,) * n_out
    if rule.kind == "passthrough":
        (states,) = in_states
        return tuple(_passed(layer, state) for state in states)
    if rule.kind == "merge":
        # A one-channel input broadcast over the channels (see ChannelGraph._merge) counts for each of them.
        in_states = [s * n_out if len(s) == 1 else s for s in in_states]
        return tuple(_merged(layer, rule, column) for column in zip(*in_states))
    if rule.kind == "concat":
        return tuple(s for states in in_states for s in states)
    if rule.kind == "flatten":
        (states,) = in_states
        return states * (n_out // len(states))
    raise AssertionError(rule.kind)


def _passed(layer, state):
    if state is ZERO:
        if registry.preserves_zero(layer):
            return ZERO
        return Constant(layer.name) if registry.preserves_constant(layer) else layer.name
    if isinstance(state, Constant):
        return state if registry.preserves_constant(layer) else str(state)
    return state if registry.preserves_zero(layer) else layer.name


def _merged(layer, rule, column):
    if rule.merge_zero([s is ZERO for s in column]):
        return ZERO
    if all(s is ZERO or isinstance(s, Constant) for s in column):
        return next((s for s in column if s is not ZERO), Constant(layer.name))  # e.g. 0 / 0
    return str(next(s for s in column if s is not ZERO))


def absorbed(state, consumer):
    """True if a removed channel in ``state`` is exact to remove from ``consumer`` (a Conv/Dense): zero, or a
    constant the consumer folds into its bias."""
    return state is ZERO or (isinstance(state, Constant) and registry.folds_constant(consumer))


def tensor_states(graph):
    """{id(tensor): states of its layout's segments} over a gated model's graph (its gates make zeros)."""
    infos = {id(info.node): info for info in graph.nodes}
    states = {}
    for node in internals.topological_nodes(graph.model):
        if internals.is_input_node(node):
            states.update({id(t): ("model input",) * len(graph.layout_of(t)) for t in node.outputs})
            continue
        info = infos[id(node)]
        out = states_out(info, [states[id(t)] for t in node.input_tensors])
        for t in node.outputs:
            n = len(graph.layout_of(t))
            states[id(t)] = out if len(out) == n else (info.layer.name,) * n
    return states


@dataclasses.dataclass
class ConstantFolds:
    """What each consumer's bias gains from the removed constant channels it no longer reads."""

    biases: dict  # consumer layer name -> value added to each of its (unpruned) output channels
    new_bias: set  # names of the consumers the compact model gives a bias they did not have (`bias_takers`)

    def config(self, layer, config):
        """The compact layer's config: with a bias where it takes a new one."""
        return {**config, "use_bias": True} if layer.name in self.new_bias else config

    def adjust(self, layer, weights, kept):
        """The compact layer's weights ([kernel, bias, ...], sliced to the ``kept`` output channels) with the
        folded constants added to the bias, or given as a new bias after the kernel."""
        extra = self.biases.get(layer.name)
        extra = np.zeros(len(kept)) if extra is None else np.asarray(extra)[kept]
        if layer.name in self.new_bias:
            return [weights[0], extra.astype(weights[0].dtype), *weights[1:]]
        if layer.name in self.biases:
            return [weights[0], weights[1] + extra.astype(weights[1].dtype), *weights[2:]]
        return weights


def _constant_readers(graph, states):
    """(info, input tensor, per input channel: is it a gated group's channel in a `Constant` state) of every
    consumer that folds constants and reads some."""
    gated = {group.name for group in graph.gated_groups}
    found = []
    for info in graph.nodes:
        if info.rule is None or info.rule.kind != "produce" or not registry.folds_constant(info.layer):
            continue
        (tensor,) = info.node.input_tensors
        parts = []
        for (space, size), state in zip(info.in_layout, states[id(tensor)]):
            group = graph.group_of_space(space)
            parts.append(np.full(size, isinstance(state, Constant) and group is not None and group.name in gated))
        constant = np.concatenate(parts) if parts else np.zeros(0, dtype=bool)
        if constant.any():
            found.append((info, tensor, constant))
    return found


def bias_takers(graph, states=None):
    """Names of the consumers without a bias that read a gated group's channels as constants: the compact
    model gives each one a bias, whatever the masks (`CostModel` counts it)."""
    states = tensor_states(graph) if states is None else states
    return {info.layer.name for info, _, _ in _constant_readers(graph, states) if not info.layer.use_bias}


def plan_constant_folds(graph, masks):
    """The `ConstantFolds` of a gated model under ``masks`` ({group: bool kept}). The constants are what the
    masked model computes: the graph is run once at inference, where some removed channel is a constant."""
    states = tensor_states(graph)
    todo = []
    for info, tensor, constant in _constant_readers(graph, states):
        removed = constant & ~_kept(graph, masks, info.in_layout)
        if removed.any():
            todo.append((info, tensor, removed))
    values = _inference_values(graph, {id(tensor) for _, tensor, _ in todo}) if todo else {}
    biases = {}
    for info, tensor, removed in todo:
        constants = np.where(removed, values[id(tensor)].reshape(-1, removed.size)[0], 0.0)
        weights = [np.asarray(w) for w in info.layer.get_weights()]
        biases[info.layer.name] = info.rule.constant_bias(info.layer, weights, constants)
    return ConstantFolds(biases, bias_takers(graph, states))


def _kept(graph, masks, layout):
    """Per channel of a layout: kept under ``masks`` (a group without a mask is kept whole)."""
    parts = []
    for space, size in layout:
        group = graph.group_of_space(space)
        mask = masks.get(group.name) if group is not None else None
        parts.append(np.ones(size, dtype=bool) if mask is None else np.asarray(mask, dtype=bool))
    return np.concatenate(parts) if parts else np.zeros(0, dtype=bool)


def _inference_values(graph, wanted):
    """{id(tensor): value} of the ``wanted`` tensors when the model runs at inference on one all-zero input
    with every gate closed: a removed channel then holds what it holds in the masked model for any input
    wherever its state is `ZERO` or a `Constant` (what the other channels hold is not read)."""
    values, found = {}, {}
    for node in internals.topological_nodes(graph.model):
        if internals.is_input_node(node):
            for t in node.outputs:
                shape = [1] + [d if d is not None else 32 for d in t.shape[1:]]
                values[id(t)] = keras.ops.zeros(shape, dtype=t.dtype)
            continue
        if registry.is_gate(node.operation):
            outputs = [keras.ops.zeros_like(values[id(node.input_tensors[0])])]
        else:
            outputs = keras.tree.flatten(internals.call_node(node, values, inference=True))
        for t, v in zip(node.outputs, outputs):
            values[id(t)] = v
            if id(t) in wanted:
                found[id(t)] = np.asarray(keras.ops.convert_to_numpy(v), dtype=np.float64)
        if len(found) == len(wanted):
            break
    return found


__all__ = ["ZERO", "Constant", "ConstantFolds", "absorbed", "bias_takers", "plan_constant_folds", "states_out",
           "tensor_states"]
