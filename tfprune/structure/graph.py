"""Channel dependency analysis of a Keras functional model.

Every tensor's last axis is described by a *layout*: a tuple of segments ``(space, size)``. A *space*
is a set of channels that must be pruned together; spaces tied by passthrough layers and element-wise
merges are unioned (union-find). Conv/Dense layers start new spaces. A prunable *group* is a space
that some Conv/Dense produces, that no barrier, model input or model output touches. Gates
(`ChannelGate`) inside a group name it and carry its mask. The layer graph itself is read through
`tfprune.structure.keras_internals` (Keras has no public API for it).
"""

import collections
import dataclasses
import warnings

import keras
import numpy as np

from tfprune.structure import keras_internals

from tfprune.structure import registry
from tfprune.structure.keras_internals import is_input_node, topological_nodes
from tfprune.errors import TfpruneError


class GraphError(TfpruneError, ValueError):
    """The model cannot be analysed or its gates are placed inconsistently."""


@dataclasses.dataclass
class Group:
    """A set of coupled channels that are kept or removed together."""

    name: str
    size: int
    producers: list  # layer names whose output channels are this group
    gate: object = None  # the ChannelGate layer controlling the group, if any


@dataclasses.dataclass
class NodeInfo:
    """One call of a layer in the graph, with the channel layouts of its input and output."""

    node: object
    layer: object
    rule: object  # registry.LayerRule, or None for a barrier / input
    in_layout: tuple
    out_layout: tuple
    in_shape: tuple
    out_shape: tuple


def as_functional(model):
    """The functional model whose graph tfprune reads: the model itself, or a Sequential's graph."""
    if isinstance(model, keras.Sequential):
        functional = keras_internals.sequential_functional(model)
        if functional is None:
            raise GraphError(
                f"Sequential model {model.name!r} is not built: give it an Input layer or call it once."
            )
        return functional
    if not keras_internals.has_layer_graph(model):
        raise GraphError(
            f"{type(model).__name__} {model.name!r} is a subclassed model: tfprune needs a functional or "
            "Sequential model, whose graph of layers it can read. Rebuild it functionally: "
            "inputs = keras.Input(shape); outputs = the same layers called on inputs; keras.Model(inputs, outputs) "
            "(its layers' weights can be copied over with set_weights)."
        )
    return model


class _ChannelSpaces:
    """Union-find over channel spaces, with what is known about each set (kept at its root): its
    size, why it cannot be pruned, the layers producing it and the gates sitting on it."""

    def __init__(self):
        self._parent = []
        self.sizes = []
        self.blocked = {}  # root -> reason it cannot be pruned
        self.producers = {}  # root -> [layer names]
        self.gates = {}  # root -> {gate name: gate}

    def new(self, size, blocked=None):
        self._parent.append(len(self._parent))
        self.sizes.append(int(size))
        if blocked:
            self.blocked[len(self._parent) - 1] = blocked
        return len(self._parent) - 1

    def find(self, space):
        while self._parent[space] != space:
            self._parent[space] = self._parent[self._parent[space]]
            space = self._parent[space]
        return space

    def union(self, a, b):
        a, b = self.find(a), self.find(b)
        if a == b:
            return
        if self.sizes[a] != self.sizes[b]:
            raise GraphError(f"Cannot couple channel spaces of sizes {self.sizes[a]} and {self.sizes[b]}.")
        self._parent[b] = a
        if b in self.producers:
            self.producers.setdefault(a, []).extend(self.producers.pop(b))
        if b in self.gates:
            self.gates.setdefault(a, {}).update(self.gates.pop(b))
        if b in self.blocked:
            self.blocked.setdefault(a, self.blocked.pop(b))

    def block(self, layout, reason):
        for space, _ in layout:
            root = self.find(space)
            self.blocked.setdefault(root, reason)

    def collect_groups(self):
        """The prunable groups, and the group of each root space that is one."""
        groups, group_of_root = [], {}
        for root in sorted({self.find(s) for s in range(len(self._parent))}):
            gates = self.gates.get(root, {})
            producers = self.producers.get(root, [])
            if len(gates) > 1:
                raise GraphError(
                    f"Gates {sorted(gates)} control coupled channels (joined by a residual add or similar): "
                    "coupled channels must share one gate instance."
                )
            gate = next(iter(gates.values()), None)
            if root in self.blocked or not producers:
                if gate is not None:
                    reason = self.blocked.get(root, "no Conv/Dense layer produces these channels")
                    raise GraphError(f"Gate {gate.name!r} controls channels that cannot be pruned: {reason}.")
                continue
            name = gate.name if gate is not None else producers[0]
            group = Group(name=name, size=self.sizes[root], producers=list(producers), gate=gate)
            groups.append(group)
            group_of_root[root] = group
        return groups, group_of_root


def _channels(tensor):
    """The channel count of a tensor: its last dim; 1 for a scalar, 0 where unknown (never pruned)."""
    shape = tuple(tensor.shape)
    return 1 if not shape else (shape[-1] or 0)


def _broadcasts(layout, node):
    """True for a one-channel input of an element-wise merge whose output has more channels."""
    return sum(n for _, n in layout) == 1 and node.outputs[0].shape[-1] not in (1, None)


class ChannelGraph:
    """Prunable channel groups of a functional model and the channel layout of every node."""

    def __init__(self, model, warn=True):
        self.model = as_functional(model)
        self._spaces = _ChannelSpaces()
        self._layouts = {}  # id(KerasTensor) -> layout
        self.nodes = []
        self._barriers = []  # (layer, reason, input spaces)
        self._analyse()
        self.warnings = self._barrier_warnings()
        self.groups, self._group_of_root = self._spaces.collect_groups()
        if warn:
            for message in self.warnings:
                warnings.warn(message, stacklevel=2)

    # --- analysis ------------------------------------------------------------------------------
    def layout_of(self, tensor):
        """The channel layout of a KerasTensor of the model."""
        return self._layouts[id(tensor)]

    def _analyse(self):
        model = self.model
        nodes = topological_nodes(model)
        calls = collections.Counter(id(node.operation) for node in nodes if not is_input_node(node))
        for node in nodes:
            if is_input_node(node):
                for t in node.outputs:
                    self._layouts[id(t)] = ((self._spaces.new(_channels(t), "model input"), _channels(t)),)
                continue
            layer = node.operation
            inputs = node.input_tensors
            in_layouts = [self.layout_of(t) for t in inputs]
            if calls[id(layer)] > 1 and getattr(layer, "weights", None) and not registry.is_gate(layer):
                # One set of weights for calls whose channels may be pruned differently: kept whole.
                reason = f"its weights are shared by {calls[id(layer)]} calls in the model"
                out_layout, rule = self._barrier(layer, node, in_layouts, reason), None
            else:
                out_layout, rule = self._propagate(layer, node, in_layouts)
            for t in node.outputs:
                self._layouts[id(t)] = out_layout
            self.nodes.append(
                NodeInfo(
                    node=node,
                    layer=layer,
                    rule=rule,
                    in_layout=in_layouts[0] if len(in_layouts) == 1 else tuple(in_layouts),
                    out_layout=out_layout,
                    in_shape=tuple(inputs[0].shape) if inputs else (),
                    out_shape=tuple(node.outputs[0].shape),
                )
            )
        for t in model.outputs:
            self._spaces.block(self.layout_of(t), "model output")

    def _propagate(self, layer, node, in_layouts):
        """Output layout of one node; unions and blocks spaces as the layer's rule says."""
        rule = registry.rule_for(layer)
        multi_output = len(node.outputs) != 1
        if rule is None or multi_output:
            return self._barrier(layer, node, in_layouts), None
        if rule.kind in ("merge", "concat"):
            return self._merge(layer, node, in_layouts, rule), rule
        if len(in_layouts) != 1:
            return self._barrier(layer, node, in_layouts), None
        (layout,) = in_layouts
        if rule.kind == "passthrough":
            if registry.is_gate(layer):
                self._add_gate(layout, layer)
            return layout, rule
        if rule.kind == "produce":
            size = node.outputs[0].shape[-1]
            space = self._spaces.new(size)
            self._spaces.producers.setdefault(space, []).append(layer.name)
            return ((space, size),), rule
        if rule.kind == "flatten":
            in_shape = node.input_tensors[0].shape
            return layout * int(np.prod(in_shape[1:-1])), rule
        raise AssertionError(rule.kind)

    def _barrier(self, layer, node, in_layouts, reason=None):
        reason = reason or registry.barrier_reason(layer)
        if len(node.outputs) != 1:
            reason = f"{type(layer).__name__} has several outputs"
        for layout in in_layouts:
            self._spaces.block(layout, f"{layer.name}: {reason}")
        self._barriers.append((layer, reason, [s for layout in in_layouts for s, _ in layout]))
        size = _channels(node.outputs[0])
        return ((self._spaces.new(size, f"output of {layer.name}"), size),)

    def _merge(self, layer, node, in_layouts, rule):
        if rule.kind == "concat":
            return tuple(seg for layout in in_layouts for seg in layout)
        # A one-channel input (e.g. a spatial attention map) broadcasts over the channels: not tied to them.
        wide = [layout for layout in in_layouts if not _broadcasts(layout, node)]
        if not wide:
            return self._barrier(layer, node, in_layouts)
        first = wide[0]
        for other in wide[1:]:
            if [n for _, n in other] != [n for _, n in first]:
                reason = (
                    "its inputs are made of differently split channel groups (e.g. a Concatenate merged "
                    f"with one layer's output: {[n for _, n in first]} vs {[n for _, n in other]} channels)"
                )
                return self._barrier(layer, node, in_layouts, reason)
            for (a, _), (b, _) in zip(first, other):
                self._spaces.union(a, b)
        return first

    def _add_gate(self, layout, gate):
        if len(layout) != 1:
            raise GraphError(
                f"Gate {gate.name!r} sits on a concatenation of several channel groups; place one gate on "
                "each branch before the Concatenate instead."
            )
        root = self.find(layout[0][0])
        self._spaces.gates.setdefault(root, {})[gate.name] = gate

    def _barrier_warnings(self):
        """One warning per barrier that keeps prunable channels (some Conv/Dense produces them) whole."""
        spaces = self._spaces
        return list(dict.fromkeys(  # once per layer and reason (a shared layer is a barrier at each call)
            f"Layer {layer.name!r} ({type(layer).__name__}): {reason}; the channels feeding it are left "
            "unpruned."
            for layer, reason, inputs in self._barriers
            if any(spaces.find(s) in spaces.producers for s in inputs)
        ))

    # --- queries -------------------------------------------------------------------------------
    @property
    def gated_groups(self):
        """Groups controlled by a gate, i.e. what the agent prunes."""
        return [g for g in self.groups if g.gate is not None]

    def group_of_space(self, space):
        """The prunable group a channel space belongs to, or None if it is fixed."""
        return self._group_of_root.get(self.find(space))

    def find(self, space):
        """The root of a channel space: coupled spaces share one root."""
        return self._spaces.find(space)

    def space_size(self, space):
        return self._spaces.sizes[self.find(space)]

    def blocked_reason(self, space):
        return self._spaces.blocked.get(self.find(space))
