"""`auto_gate(model)`: make a user's own Keras CNN prunable by inserting one `ChannelGate` per channel group.

The user's model (functional or Sequential, Keras 3) is analysed by `ChannelGraph`, which finds the
groups of coupled channels (residual adds and element-wise multiplies tie channels together; unknown
layers are barriers whose channels stay whole, with a warning naming the layer). `auto_gate` then
rebuilds the model with ONE shared `ChannelGate` instance per group, placed so that the masked model
computes exactly what the physically pruned model (`tfprune.compact_model`) computes.

Placement rule. A removed channel must contribute nothing to any layer that *reads across channels*
(a Conv2D / Dense / SeparableConv2D consumer). Every other layer the registry lets a group pass
through (BN, activations, pooling, depthwise conv, adds, ...) works channel by channel, so what a
removed channel holds in between does not matter -- except that it must be exactly zero when it reaches
a consumer. So the gate is applied on the consumer's input, and on the inputs of Concatenate and
Flatten (after which one gate can no longer address the group's channels). A gate is skipped where
the channels are provably zero already: after an earlier gate, only zero-preserving layers (ReLU,
pooling, padding, dropout, bias-free depthwise conv, ...: `registry.preserves_zero`) were crossed. A
BatchNormalization, a bias or an activation with f(0) != 0 (sigmoid) re-creates a nonzero value in a
masked channel, so the gate is re-applied after it. If such a layer sits between a Concatenate/Flatten
and its consumer (e.g. concat -> BN -> ReLU -> conv, DenseNet style), no single gate can re-mask the group
there. Where the removed channel is then an input-independent constant and the consumer is a Dense, a 1x1
Conv2D or a Conv2D with padding='valid' (DenseNet's case), surgery folds the constant into the consumer's
bias and the group is pruned (`tfprune.structure.constant_folds`); otherwise (a kxk 'same' conv, whose
zero-padded borders see something else) the group is left unpruned with a warning naming the layer (never
a wrong model).

Weights. The gated model is an independent copy: every layer is re-created from its config and given
the user's weights, so training the gated model does not change the user's model. (Layers that cannot
be re-created from their config -- custom layers without `get_config` -- are reused as they are, with a
warning: their weights are then shared.) Nested functional/Sequential models used as layers (e.g. a
`keras.applications` backbone inside a transfer-learning model) are inlined so their channels can be
pruned too, and so are custom layers made of other layers that tfprune has no rule for (KerasHub's
MobileNet, EfficientNetV2 and HGNetV2 blocks): their ``call`` is traced on symbolic tensors, which records
the layers inside as nodes of the gated model; a call that cannot be traced stays one node (a barrier),
with a warning. Sequential models come back as functional models.
"""

import warnings

import keras

from tfprune.structure import keras_internals as internals
from tfprune.structure import registry
from tfprune.structure.constant_folds import ZERO, absorbed, states_out
from tfprune.structure.gates import ChannelGate, new_gate
from tfprune.structure.graph import ChannelGraph, GraphError, as_functional

# Consumers of a group's channels, and layers after which one gate cannot address the group any more.
_GATE_BEFORE = ("produce", "concat", "flatten")


def auto_gate(model, name=None):
    """Returns a gated copy of a plain Keras 3 CNN: one `ChannelGate` per prunable channel group.

    Args:
        model: a functional or Sequential `keras.Model` (built, with known input shape) without gates.
        name: name of the gated model (default ``<model.name>_gated``).

    Gates are named ``<first producing layer>_gate`` and start open: with every gate open the gated
    model computes exactly what ``model`` computes. Feed the result to `tfprune.JointPruner`, or prune
    it directly with masks (`tfprune.compact_model`). Warnings name every layer that keeps channels
    from being pruned.
    """
    functional = as_functional(model)
    if any(isinstance(layer, ChannelGate) for layer in functional.layers):
        raise GraphError(
            f"Model {model.name!r} already has ChannelGate layers: auto_gate expects a plain model "
            "(zoo models from tfprune.models are gated already)."
        )
    plain = _inlined(functional)
    _check_is_a_channels_last_cnn(plain, model.name)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        graph = ChannelGraph(plain, warn=True)
    for w in caught:
        warnings.warn(w.message, w.category, stacklevel=2)

    excluded = {}
    while True:
        gate_at, conflicts = _plan(graph, excluded)
        new = {g: c for g, c in conflicts.items() if g not in excluded}
        if not new:
            break
        by_culprit = {}
        for group, culprit in new.items():
            by_culprit.setdefault(culprit, []).append(group)
        for culprit, groups in by_culprit.items():
            layer = plain.get_layer(culprit) if culprit in {l.name for l in plain.layers} else None
            kind = f" ({type(layer).__name__})" if layer is not None else ""
            warnings.warn(
                f"Layer {culprit!r}{kind} gives removed channels of group(s) {sorted(groups)} a nonzero value "
                "after a Concatenate or Flatten, where one gate cannot re-mask them before the next "
                "Conv/Dense; those channels are left unpruned.",
                stacklevel=2,
            )
        excluded.update(new)
    return _build_gated(plain, gate_at, name or f"{model.name}_gated")


_CONVOLUTIONS = (keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D, keras.layers.DepthwiseConv2D,
                 keras.layers.SeparableConv2D)


def _check_is_a_channels_last_cnn(plain, name):
    """One clear error, before any gate is planned, for the two inputs that would otherwise give a model
    with nothing prunable and no word why: no convolution at all, and a channels_first layout."""
    convs = [layer for layer in plain.layers if isinstance(layer, _CONVOLUTIONS)]
    if not convs:
        raise GraphError(f"Model {name!r} has no convolution: tfprune prunes the channels of convolutional "
                         "networks (Conv1D/2D/3D, DepthwiseConv2D, SeparableConv2D).")
    first = [layer.name for layer in convs if getattr(layer, "data_format", None) == "channels_first"]
    if first:
        raise GraphError(f"Model {name!r} uses the channels_first layout ({', '.join(first[:3])}"
                         f"{' ...' if len(first) > 3 else ''}): tfprune prunes channels_last models. Build it "
                         "with data_format='channels_last' (or keras.config.set_image_data_format('channels_last')"
                         " before building it), with inputs of shape (height, width, channels).")


# --- step 1: an independent copy, nested models and custom layers inlined, squeeze-excite reshapes made
# prunable ----------------------------------------------------------------------------------------------


def _inlined(functional):
    """`_clone`, repeated while it traces custom layers: a pass inlines one level of nesting (the
    squeeze-and-excite layer inside a KerasHub MobileNet block is a layer of the block's traced call), and
    the pass after the last trace re-creates the layers the traces exposed."""
    try:
        plain, traced = _clone(functional)
        while traced:
            plain, traced = _clone(plain)
    except ValueError as exc:  # e.g. two traced blocks whose inner layers have the same names
        warnings.warn(f"auto_gate could not trace the custom layers of {functional.name!r} ({_first_line(exc)}); "
                      "each stays one node.", stacklevel=3)
        plain, _ = _clone(functional, trace=False)
    return plain


def _traceable(layer):
    """A custom layer made of other layers (KerasHub's MobileNet and EfficientNetV2 blocks) that tfprune
    has no rule for: its ``call`` is traced into the graph (`keras_internals.trace_call`) so that the
    layers inside are pruned like any others."""
    return (registry.lookup(layer) is None and not type(layer).__module__.startswith("keras.")
            and bool(internals.sublayers(layer)))


def _tracer(layer, fallback, traced, untraced):
    """The callable that replaces a traceable layer: ``layer.call`` traced, the layers it calls recorded
    as nodes (the next `_clone` pass re-creates them, so the copy shares no weights with ``layer``); where
    the trace fails (a call that needs concrete values), its copy ``fallback()`` is one opaque node, as an
    unknown layer is."""

    def trace(*args, **kwargs):
        try:
            outputs = internals.trace_call(layer, args, kwargs)
        except Exception as exc:  # noqa: BLE001 - any custom call may fail on symbolic tensors
            untraced.append(f"{layer.name!r} ({type(layer).__name__}: {type(exc).__name__}: {_first_line(exc)})")
            return fallback()(*args, **kwargs)
        traced.append(layer.name)
        return outputs

    return trace


def _first_line(exc):
    """An exception's first non-empty line (Keras' config errors run to twenty lines of example code)."""
    return next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)


def _clone(functional, trace=True):
    clones, tracers = {}, {}
    names = {internals.input_layer_name(t) for t in functional.inputs}
    failed, traced, untraced = [], [], []

    def unique(name):
        base, i = name, 1
        while name in names:
            name, i = f"{base}_{i}", i + 1
        names.add(name)
        return name

    def copy_of(op):
        if id(op) not in clones:
            try:
                config = registry.prunable_config(op)
                config["name"] = unique(op.name)
                clones[id(op)] = (op, type(op).from_config(config))
            except Exception as exc:  # noqa: BLE001 - any custom layer may fail here
                if op.weights:  # a weightless layer (HGNetV2's Identity) shares nothing when reused
                    failed.append(f"{op.name!r} ({type(op).__name__}: {_first_line(exc)})")
                names.add(op.name)
                clones[id(op)] = (op, op)
        return clones[id(op)][1]

    def clone_fn(op):
        if isinstance(op, keras.Model) and (isinstance(op, keras.Sequential) or internals.has_layer_graph(op)):
            inner = as_functional(op)

            def inline(*args, **kwargs):
                inputs = args[0] if len(args) == 1 else list(args)
                return internals.run_graph(inner, inputs, clone_fn)

            return inline
        if not isinstance(op, keras.layers.Layer):
            return op  # a keras.ops operation: stateless, reused
        if trace and _traceable(op):
            return tracers.setdefault(id(op), _tracer(op, lambda: copy_of(op), traced, untraced))
        return copy_of(op)

    plain = internals.clone_graph(functional, clone_fn, name=functional.name)
    for old, new in clones.values():
        if new is not old and old.weights:
            new.set_weights(old.get_weights())
            if callable(getattr(new, "finalize_state", None)):
                new.finalize_state()  # e.g. Normalization recomputes its mean/variance from the weights
    if failed:
        warnings.warn(
            "auto_gate could not re-create these layers from their config and reuses them (their weights "
            f"are shared with the original model): {', '.join(failed)}.",
            stacklevel=3,
        )
    if untraced:
        warnings.warn(f"auto_gate could not trace these custom layers' call; each stays one node: "
                      f"{', '.join(untraced)}.", stacklevel=3)
    return plain, len(traced)


# --- step 2: where the gates go ----------------------------------------------------------------------


def _plan(graph, excluded):
    """Which (node, input tensor) gets which group's gate; and the groups no gate can mask correctly. Each
    tensor's segments carry the state a removed channel has there (`constant_folds`: zero, a constant the
    consumer folds into its bias, or anything), a planned gate making it zero."""
    infos = {id(info.node): info for info in graph.nodes}
    states = {}
    gate_at = {}
    conflicts = {}

    def group_name(space):
        group = graph.group_of_space(space)
        return group.name if group is not None and group.name not in excluded else None

    for node in internals.topological_nodes(graph.model):
        if internals.is_input_node(node):
            for t in node.outputs:
                states[id(t)] = ("model input",) * len(graph.layout_of(t))
            continue
        info = infos[id(node)]
        kind = info.rule.kind if info.rule is not None else None
        in_states = []
        for t in node.input_tensors:
            layout = graph.layout_of(t)
            f = states[id(t)]
            if kind in _GATE_BEFORE and len(layout) == 1 and f[0] is not ZERO:
                name = group_name(layout[0][0])
                if name is not None:
                    gate_at[(id(node), id(t))] = name
                    f = (ZERO,)
            if kind == "produce":
                for (space, _), state in zip(layout, f):
                    name = group_name(space)
                    if name is not None and not absorbed(state, info.layer):
                        conflicts.setdefault(name, str(state))
            in_states.append(f)
        out = states_out(info, in_states)
        for t in node.outputs:
            n = len(graph.layout_of(t))
            states[id(t)] = out if len(out) == n else (info.layer.name,) * n
    return gate_at, conflicts


# --- step 3: the gated model ---------------------------------------------------------------------------


def _build_gated(plain, gate_at, name):
    taken = {layer.name for layer in plain.layers}
    gates = {}
    for group in dict.fromkeys(gate_at.values()):
        gate_name, i = f"{group}_gate", 1
        while gate_name in taken:
            gate_name, i = f"{group}_gate_{i}", i + 1
        taken.add(gate_name)
        gates[group] = new_gate(gate_name)

    new_inputs = internals.fresh_inputs(plain)
    values = {id(t): v for t, v in zip(plain.inputs, new_inputs)}
    gated_values = {}  # (id of value, group) -> gated value, so a tensor feeding two consumers is gated once
    for node in internals.topological_nodes(plain):
        if internals.is_input_node(node):
            continue
        local = {}
        for t in node.input_tensors:
            value = values[id(t)]
            group = gate_at.get((id(node), id(t)))
            if group is not None:
                key = (id(value), group)
                if key not in gated_values:
                    gated_values[key] = gates[group](value)
                value = gated_values[key]
            local[id(t)] = value
        outputs = internals.call_node(node, local)
        for t, v in zip(node.outputs, keras.tree.flatten(outputs)):
            values[id(t)] = v
    outputs = internals.pack_outputs(plain, [values[id(t)] for t in plain.outputs])
    return keras.Model(internals.pack_inputs(plain, new_inputs), outputs, name=name)
