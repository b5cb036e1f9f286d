"""The one module of tfprune that touches Keras' private API.

tfprune reads and rebuilds the layer graph of functional models. Keras 3 has no public API for that:
the graph lives in underscore attributes (``_nodes_by_depth``, ``_inbound_nodes``, ``_keras_history``,
``Sequential._functional``) and in the private method ``Functional._run_through_graph`` that Keras'
own ``clone_model`` uses. Every such use is wrapped here, in small functions that say why each is
needed, so that a Keras upgrade that moves them breaks this file alone (``tests/test_keras_internals.py``
fails if another module of tfprune uses a private Keras attribute).

All functions were checked against **keras 3.15.1** (`KERAS_VERSION_CHECKED`).

Graph nodes. `topological_nodes` and `inbound_nodes` return Keras ``Node`` objects
(``keras.src.ops.node.Node``, not exported by Keras). tfprune reads only their public attributes:
``node.operation`` (the layer or op called), ``node.input_tensors`` and ``node.outputs`` (the
``KerasTensor``s going in and out, flattened) and ``node.parent_nodes``; use `is_input_node` and
`call_node` for the rest.
"""

import keras

KERAS_VERSION_CHECKED = "3.15.1"


# --- models --------------------------------------------------------------------------------------


def has_layer_graph(model):
    """True if ``model`` is a functional model (its layer graph is readable).

    Keras exports no ``Functional`` class and ``keras.Model(inputs, outputs)`` returns an instance of
    the private ``keras.src.models.functional.Functional``; subclassed models have no graph. The
    private ``_nodes_by_depth`` attribute is what tfprune reads the graph from, so its presence is the
    test. (A ``keras.Sequential`` is not functional itself: see `sequential_functional`.)
    """
    return hasattr(model, "_nodes_by_depth")


def sequential_functional(model):
    """The functional model a built ``keras.Sequential`` runs through, or None if it is not built.

    Keras builds it in the private ``Sequential._functional`` once the input shape is known; there is
    no public accessor (``keras.Model(seq.inputs, seq.outputs)`` would build a second graph whose
    layers are the same but whose input names differ).
    """
    if not model.built:
        return None
    return getattr(model, "_functional", None)


def topological_nodes(model):
    """The functional model's nodes (layer calls), ordered from the inputs to the outputs.

    Read from the private ``_nodes_by_depth`` (depth 0 is the output side); Keras has no public
    node list (``model.layers`` loses the calls of shared layers and the call order).
    """
    by_depth = model._nodes_by_depth
    return [node for depth in sorted(by_depth, reverse=True) for node in by_depth[depth]]


def run_graph(model, inputs, operation_fn):
    """Re-runs a functional model's graph on ``inputs``, calling ``operation_fn(op)`` for each op.

    ``operation_fn`` returns the callable to use in place of ``op`` (e.g. a clone or a smaller layer);
    the result has the model's output structure. This is the private
    ``Functional._run_through_graph``, the same machinery ``keras.models.clone_model`` uses (whose
    public form cannot inline nested models or replace a layer by a plain function).
    """
    return model._run_through_graph(inputs, operation_fn=operation_fn)


def pack_inputs(model, flat_inputs):
    """``flat_inputs`` in the structure of the model's inputs (a single tensor stays a tensor).

    ``model.inputs`` is always a flat list; the structure the model was built with (tensor, list or
    dict) is kept only in the private ``_inputs_struct``.
    """
    return keras.tree.pack_sequence_as(model._inputs_struct, list(flat_inputs))


def pack_outputs(model, flat_outputs):
    """``flat_outputs`` in the structure of the model's outputs (private ``_outputs_struct``, see
    `pack_inputs`)."""
    return keras.tree.pack_sequence_as(model._outputs_struct, list(flat_outputs))


# --- tensors -------------------------------------------------------------------------------------


def input_layer_name(tensor):
    """The name of the ``InputLayer`` that produced a model input ``KerasTensor``.

    Read from the private ``tensor._keras_history`` (operation, node index, tensor index). The public
    ``tensor.name`` is not the same: for a Sequential model's inputs it is e.g. ``"keras_tensor"``
    while the input layer is ``"input_layer"``.
    """
    return tensor._keras_history[0].name


def producing_layer(tensor):
    """The operation that produced a functional model's ``KerasTensor`` (e.g. ``model.outputs[0]``), from
    the private ``tensor._keras_history`` (operation, node index, tensor index), as `input_layer_name`."""
    return tensor._keras_history[0]


def fresh_inputs(model):
    """New ``keras.Input`` tensors like the model's inputs (shape, dtype and input-layer name), flat.

    The start of every rebuilt model (auto_gate's copy, the gated model, the compact model), so the
    rebuilt model keeps the user's input names.
    """
    return [keras.Input(shape=t.shape[1:], dtype=t.dtype, name=input_layer_name(t)) for t in model.inputs]


def clone_graph(model, operation_fn, name):
    """A new functional model: ``model``'s graph re-run from `fresh_inputs`, each operation replaced
    by ``operation_fn(op)`` (see `run_graph`), with the original input and output structure."""
    new_inputs = fresh_inputs(model)
    outputs = run_graph(model, new_inputs, operation_fn)
    return keras.Model(pack_inputs(model, new_inputs), outputs, name=name)


# --- layers and nodes ----------------------------------------------------------------------------


def inbound_nodes(layer):
    """The nodes where ``layer`` was called (one per call), or ``[]`` for an object with none.

    Private ``layer._inbound_nodes``; Keras has no public way to ask what a layer was called on.
    """
    return list(getattr(layer, "_inbound_nodes", []))


def outbound_nodes(layer):
    """The nodes that consume ``layer``'s outputs (private ``layer._outbound_nodes``, see
    `inbound_nodes`)."""
    return list(getattr(layer, "_outbound_nodes", []))


def is_input_node(node):
    """True for the node of an ``InputLayer`` (it feeds the graph and calls nothing).

    ``node.is_input`` is set by Keras on nodes without symbolic arguments; the operation check also
    covers nodes Keras left without an operation.
    """
    return node.is_input or node.operation is None


def call_node(node, values, inference=False):
    """Calls ``node``'s operation again with its arguments, each input tensor ``t`` replaced by
    ``values[id(t)]``; returns the operation's outputs. ``inference``: a ``training`` argument the node
    was called with becomes False (without one, an eager call outside ``fit`` is in inference mode).

    The node's call arguments (including non-tensor ones, e.g. ``training`` or an axis) are kept in
    ``node.arguments``, a ``keras.src.ops.symbolic_arguments.SymbolicArguments`` that Keras does not
    export; ``fill_in`` is its method that substitutes the tensors.
    """
    args, kwargs = node.arguments.fill_in(values)
    if inference and "training" in kwargs:
        kwargs = {**kwargs, "training": False}
    return node.operation(*args, **kwargs)



def sublayers(layer):
    """The layers a layer holds as attributes (a custom block's Conv2D, BatchNormalization, ...), not
    recursively. Read from the private ``layer._layers``, the list Keras' tracker fills; Keras 3 has no
    public accessor for a plain Layer (``Model.layers`` exists for models only)."""
    return list(getattr(layer, "_layers", []))


def trace_call(layer, args, kwargs):
    """Runs ``layer.call`` (not ``layer(...)``) on symbolic inputs, so that every layer and op it calls
    records its own node in the graph being built: the custom layer's inside becomes part of the
    functional model instead of one opaque node. ``training`` is dropped where ``call`` does not take it
    (``Layer.__call__`` would drop it the same way)."""
    import inspect  # noqa: PLC0415

    accepted = inspect.signature(layer.call).parameters
    if "training" not in accepted and not any(p.kind == p.VAR_KEYWORD for p in accepted.values()):
        kwargs = {k: v for k, v in kwargs.items() if k != "training"}
    return layer.call(*args, **kwargs)


def constant_arguments(node):
    """The call arguments of ``node`` that are not graph tensors (e.g. the ``3.0`` of ``x + 3.0``), flat.

    Read from ``node.arguments`` (a private ``SymbolicArguments``, see `call_node`): its ``args`` and
    ``kwargs`` hold the call as it was written, tensors and constants together.
    """
    leaves = keras.tree.flatten((list(node.arguments.args), dict(node.arguments.kwargs)))
    return [leaf for leaf in leaves if not isinstance(leaf, keras.KerasTensor)]


# --- classes Keras does not export ------------------------------------------------------------------


def ops_classes(names):
    """The ``keras.ops`` operation classes with these names (``{name: class}``, missing ones left out).

    A functional model written with operators or ``keras.ops`` (``x + 3.0``, ``ops.relu6(x)``) holds nodes
    whose operation is an instance of e.g. ``keras.src.ops.numpy.Add``; Keras exports the functions, not
    these classes, which tfprune needs to give such nodes a channel rule.
    """
    import keras.src.ops.nn as nn_ops  # noqa: PLC0415 - private module, imported where it is used
    import keras.src.ops.numpy as numpy_ops  # noqa: PLC0415

    found = {}
    for name in names:
        cls = getattr(numpy_ops, name, None) or getattr(nn_ops, name, None)
        if isinstance(cls, type) and issubclass(cls, keras.Operation):
            found[name] = cls
    return found


def application_layer_class(module, name):
    """A layer class defined inside a ``keras.applications`` model's module (e.g. ConvNeXt's
    ``LayerScale`` in ``keras.src.applications.convnext``), or None; Keras does not export them."""
    import importlib  # noqa: PLC0415

    try:
        cls = getattr(importlib.import_module(f"keras.src.applications.{module}"), name, None)
    except ImportError:
        return None
    return cls if isinstance(cls, type) and issubclass(cls, keras.layers.Layer) else None
