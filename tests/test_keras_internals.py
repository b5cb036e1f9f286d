"""`tfprune.structure.keras_internals`: the only module that touches private Keras API, and what it returns."""

import ast
import pathlib

import keras
import numpy as np

import tfprune
from tfprune.structure import keras_internals as internals

PACKAGE = pathlib.Path(tfprune.__file__).parent
ADAPTER = PACKAGE / "structure" / "keras_internals.py"

# Named explicitly so the scan does not depend on what a Keras version happens to define.
KNOWN_PRIVATE = {
    "_keras_history",
    "_inbound_nodes",
    "_outbound_nodes",
    "_functional",
    "_nodes_by_depth",
    "_run_through_graph",
    "_inputs_struct",
    "_outputs_struct",
    "_layers",
    "_tracker",
}


def _tiny_model():
    inp = keras.Input((4,), name="features")
    dense = keras.layers.Dense(3, name="hidden")
    h = keras.layers.ReLU(name="relu")(dense(inp))
    out = keras.layers.Add(name="add")([h, dense(inp)])
    return keras.Model(inp, out, name="tiny")


def _keras_private_names():
    """Underscore names Keras' own objects have (besides `KNOWN_PRIVATE`): model, layers, tensors, nodes."""
    model = _tiny_model()
    seq = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    objects = [model, seq, model.layers[1], model.inputs[0], internals.topological_nodes(model)[0]]
    objects += [keras.callbacks.Callback(), model.layers[1].kernel]
    names = {name for obj in objects for name in dir(obj)}
    return KNOWN_PRIVATE | {n for n in names if n.startswith("_") and not n.startswith("__")}


def _private_uses(tree, private):
    """(line, text) of each use of a private Keras name in a module's syntax tree."""
    found = []
    keras_classes = [
        c for c in ast.walk(tree) if isinstance(c, ast.ClassDef) and "keras" in " ".join(map(ast.unparse, c.bases))
    ]
    own = {id(n) for c in keras_classes for n in ast.walk(c)}  # self.<attr> inside a Keras subclass counts too
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in private:
            on_self = isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")
            if not on_self or id(node) in own:
                found.append((node.lineno, ast.unparse(node)))
        elif isinstance(node, ast.Attribute) and node.attr == "src" and ast.unparse(node.value) == "keras":
            found.append((node.lineno, "keras.src"))
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("keras.src"):
            found.append((node.lineno, f"from {node.module} import"))
        elif isinstance(node, ast.Import) and any(a.name.startswith("keras.src") for a in node.names):
            found.append((node.lineno, "import keras.src"))
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in ("getattr", "hasattr", "setattr", "delattr")
            and len(node.args) >= 2
            and isinstance(node.args[1], ast.Constant)
            and node.args[1].value in private
        ):
            found.append((node.lineno, ast.unparse(node)))
    return found


def test_only_the_adapter_touches_private_keras_api():
    private = _keras_private_names()
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path == ADAPTER:
            continue
        for line, text in _private_uses(ast.parse(path.read_text()), private):
            offenders.append(f"{path.relative_to(PACKAGE.parent)}:{line}: {text}")
    assert not offenders, "private Keras API outside tfprune/structure/keras_internals.py:\n" + "\n".join(offenders)


def test_the_scan_finds_private_uses():
    private = _keras_private_names()
    source = (
        "import keras.src.ops\n"
        "from keras.src.ops.node import Node\n"
        "name = t._keras_history[0].name\n"
        "nodes = getattr(layer, '_inbound_nodes', [])\n"
        "f = model._functional\n"
        "class G(keras.layers.Layer):\n"
        "    def call(self, x):\n"
        "        return self._tracker\n"
        "class Mine:\n"
        "    def f(self):\n"
        "        return self._parent, ex._keras_outputs\n"
    )
    found = [text for _, text in _private_uses(ast.parse(source), private)]
    assert len(found) == 6, found
    assert "self._parent" not in found and "ex._keras_outputs" not in found  # tfprune's own privates
    # The adapter itself is where they all are.
    assert _private_uses(ast.parse(ADAPTER.read_text()), private)


def test_topological_nodes_and_node_calls():
    model = _tiny_model()
    nodes = internals.topological_nodes(model)
    assert internals.is_input_node(nodes[0])
    assert not any(internals.is_input_node(n) for n in nodes[1:])
    names = [n.operation.name for n in nodes[1:]]
    assert names.index("relu") < names.index("add") and names[-1] == "add"
    assert internals.input_layer_name(model.inputs[0]) == "features"
    assert internals.producing_layer(model.outputs[0]) is model.get_layer("add")

    # Re-running every node on new inputs rebuilds the model.
    new_inputs = internals.fresh_inputs(model)
    values = {id(model.inputs[0]): new_inputs[0]}
    for node in nodes[1:]:
        outputs = internals.call_node(node, values)
        for t, v in zip(node.outputs, keras.tree.flatten(outputs)):
            values[id(t)] = v
    outputs = internals.pack_outputs(model, [values[id(model.outputs[0])]])
    rebuilt = keras.Model(internals.pack_inputs(model, new_inputs), outputs)
    x = np.random.default_rng(0).normal(size=(2, 4)).astype("float32")
    np.testing.assert_allclose(rebuilt(x), model(x), atol=1e-6)


def test_inbound_and_outbound_nodes():
    model = _tiny_model()
    hidden = model.get_layer("hidden")
    assert len(internals.inbound_nodes(hidden)) == 2  # a shared layer: one node per call
    consumers = {node.operation.name for node in internals.outbound_nodes(hidden)}
    assert consumers == {"relu", "add"}
    assert internals.inbound_nodes(object()) == []
    assert internals.inbound_nodes(keras.layers.Dense(2)) == []  # never called


def test_fresh_inputs_and_clone_graph_keep_names_and_structure():
    seq = keras.Sequential([keras.Input((3,), dtype="float32"), keras.layers.Dense(2, name="d")], name="s")
    assert not internals.has_layer_graph(seq)
    functional = internals.sequential_functional(seq)
    assert internals.has_layer_graph(functional)
    (inp,) = functional.inputs
    # A Sequential's input tensor is named differently from its input layer: the layer name is kept.
    assert internals.input_layer_name(inp) == functional.layers[0].name != inp.name
    (fresh,) = internals.fresh_inputs(functional)
    assert fresh is not inp and fresh.shape == inp.shape and fresh.dtype == inp.dtype

    replaced = []

    def operation_fn(op):
        replaced.append(op.name)
        return op

    clone = internals.clone_graph(functional, operation_fn, name="clone")
    assert replaced == ["d"] and clone.name == "clone"
    assert not isinstance(clone.input, list)  # a single input stays a single tensor
    assert clone.layers[0].name == functional.layers[0].name
    x = np.ones((2, 3), "float32")
    np.testing.assert_allclose(clone(x), seq(x), atol=1e-6)


def test_unbuilt_sequential_has_no_graph():
    seq = keras.Sequential([keras.layers.Dense(2)])
    assert internals.sequential_functional(seq) is None


def test_subclassed_model_has_no_layer_graph():
    class Sub(keras.Model):
        def call(self, x):
            return x

    assert not internals.has_layer_graph(Sub())


def test_adapter_is_documented():
    assert f"keras {internals.KERAS_VERSION_CHECKED}" in internals.__doc__
    public = [f for name, f in vars(internals).items() if callable(f) and not name.startswith("_")]
    public = [f for f in public if getattr(f, "__module__", None) == internals.__name__]
    assert len(public) >= 10 and all(f.__doc__ for f in public)
