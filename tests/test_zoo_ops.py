"""Issue 33: keras.ops / operator nodes and the layers of MobileNetV3 and ConvNeXt get channel rules.

Op nodes (``x + 3.0``, ``x * y``, ``ops.relu6``) are pruned through like layers; an op tfprune does not
know is a barrier with a warning, never an exception, in auto_gate, ChannelGraph, CostModel, inspect,
compact_model and TFLite export. Every exact rule is checked the same way: masked == compact.
"""

import warnings

import keras
import numpy as np
import pytest

from tfprune.cost.flops import CostModel
from tfprune.cost.plan import inspect
from tfprune.deploy.export import convert_tflite, verify_tflite
from tfprune.structure import keras_internals
from tfprune.structure import masks as mask_lib
from tfprune.structure.auto_gate import auto_gate
from tfprune.structure.graph import ChannelGraph
from tfprune.structure.surgery import compact_model
from tfprune.studies import zoo

from model_fixtures import random_masks, randomize_bn

SHAPE = (12, 12, 3)


def _x(shape, n=2, seed=1):
    return np.random.default_rng(seed).normal(size=(n, *shape)).astype("float32")


def _conv(x, filters, name, **kwargs):
    return keras.layers.Conv2D(filters, 3, padding="same", name=name, **kwargs)(x)


def _head(x):
    return keras.layers.Dense(5, name="fc")(keras.layers.GlobalAveragePooling2D()(_conv(x, 8, "last")))


def _gate_and_compact(model, shape=SHAPE):
    """auto_gate -> random masks -> compact: (gated, graph, compact, relative error, warnings)."""
    randomize_bn(model)
    x = _x(shape)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gated = auto_gate(model)
        graph = ChannelGraph(gated)
    np.testing.assert_allclose(gated(x, training=False), model(x, training=False), atol=1e-5)
    compact, error = _compact(gated, graph, random_masks(graph, seed=3, keep=0.5), shape)
    return gated, graph, compact, error, [str(w.message) for w in caught]


def _compact(gated, graph, masks, shape):
    """The compact model and its largest difference to the masked one, relative to the output's scale."""
    x = _x(shape)
    mask_lib.apply_masks(gated, masks)
    compact = compact_model(gated, graph=graph)
    masked = np.asarray(gated(x, training=False))
    error = float(np.abs(np.asarray(compact(x, training=False)) - masked).max() / max(1e-12, np.abs(masked).max()))
    assert CostModel(compact, ChannelGraph(compact, warn=False)).full == CostModel(gated, graph).cost(masks)
    return compact, error


def _group_with(graph, producer):
    return next(g for g in graph.gated_groups if producer in g.producers)


def _hard_swish_model():
    inp = keras.Input(SHAPE)
    x = _conv(inp, 8, "stem")
    x = x * (keras.ops.relu6(x + 3.0) * (1.0 / 6.0))  # MobileNetV3's hard-swish, written with operators
    y = _conv(x, 8, "branch")
    x = keras.ops.maximum(x + y, 0.0)  # a residual add between tensors ties 'stem' and 'branch'
    x = keras.layers.BatchNormalization()(_conv(x, 6, "mid"))
    x = keras.ops.silu(x) - 0.5
    return keras.Model(inp, _head(x))


def test_operator_nodes_pass_and_tie_channels():
    gated, graph, compact, error, caught = _gate_and_compact(_hard_swish_model())
    assert not caught, caught
    assert set(_group_with(graph, "stem").producers) == {"stem", "branch"}
    assert _group_with(graph, "mid") is not _group_with(graph, "stem")
    assert len(graph.gated_groups) == 3
    assert error < 1e-5
    assert compact.get_layer("last").kernel.shape[2] < 6  # 'mid' was pruned through silu(x) - 0.5


def test_per_channel_constant_and_unknown_op_are_barriers_with_a_warning():
    inp = keras.Input(SHAPE)
    a = _conv(inp, 8, "a") * np.linspace(0.5, 1.5, 8).astype("float32")  # one value per channel
    b = keras.ops.cumsum(_conv(inp, 8, "b"), axis=-1)  # an op tfprune has no rule for
    c = keras.layers.ReLU()(_conv(inp, 8, "c"))
    x = keras.layers.Concatenate()([a, b, c])
    model = keras.Model(inp, _head(x))
    gated, graph, compact, error, caught = _gate_and_compact(model)
    assert any("'multiply" in m and "not a scalar" in m for m in caught), caught
    assert any("Cumsum" in m for m in caught), caught
    assert {p for g in graph.gated_groups for p in g.producers} == {"c", "last"}
    assert error < 1e-5
    plan = inspect(model)
    assert len(plan.unpruned) == 2 and {g.producers[0] for g in plan.groups} == {"c", "last"}


def test_spatial_pad_passes_channels_and_channel_pad_is_a_barrier():
    inp = keras.Input(SHAPE)
    x = keras.layers.BatchNormalization()(_conv(inp, 8, "stem"))
    x = keras.ops.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]], constant_values=float("-inf"))  # KerasHub ResNet-vd
    x = keras.layers.MaxPooling2D(3, strides=1)(x)
    x = keras.ops.pad(x, [[0, 0], [2, 0], [0, 2], [0, 0]], mode="reflect")
    y = keras.ops.pad(_conv(inp, 6, "padded_channels"), [[0, 0], [1, 1], [1, 1], [1, 1]])  # 6 -> 8 channels
    gated, graph, compact, error, caught = _gate_and_compact(keras.Model(inp, _head(keras.layers.Add()([x, y]))))
    assert len(set(caught)) == 1 and "(Pad): a pad of the channel axis" in caught[0], caught
    assert {g.producers[0] for g in graph.gated_groups} == {"last"}  # the Add ties 'stem' to the barrier
    x = keras.ops.pad(x, [[0, 0], [0, 0], [0, 0], [0, 0]])
    gated, graph, compact, error, caught = _gate_and_compact(keras.Model(inp, _head(keras.layers.Concatenate()([x, y]))))
    assert {g.producers[0] for g in graph.gated_groups} == {"stem", "last"}
    assert compact.get_layer("last").kernel.shape[2] < 16
    assert error < 1e-5


class SqueezeExcite(keras.layers.Layer):
    """KerasHub's squeeze-and-excite: layers held as attributes, ``ops.mean`` over the spatial axes."""

    def __init__(self, filters, **kwargs):
        super().__init__(**kwargs)
        self.reduce = keras.layers.Conv2D(4, 1, activation="relu")
        self.expand = keras.layers.Conv2D(filters, 1, activation="sigmoid")

    def call(self, x):
        return x * self.expand(self.reduce(keras.ops.mean(x, axis=(1, 2), keepdims=True)))


class InvertedBlock(keras.layers.Layer):
    """A KerasHub-style inverted residual block (a custom layer calling other layers, one of them custom);
    ``spatial_dims`` is not in its config, so it cannot be re-created from it (as KerasHub's)."""

    def __init__(self, filters, spatial_dims=(1, 2), prefix=None, **kwargs):
        super().__init__(**kwargs)
        prefix = prefix or self.name
        self.expand = keras.layers.Conv2D(2 * filters, 1, name=f"{prefix}_expand")
        self.bn = keras.layers.BatchNormalization(name=f"{prefix}_bn")
        self.se = SqueezeExcite(2 * filters, name=f"{prefix}_se")
        self.project = keras.layers.Conv2D(filters, 3, padding="same", name=f"{prefix}_project")

    def call(self, x, training=None):
        return x + self.project(self.se(keras.ops.relu(self.bn(self.expand(x), training=training))))


class OpaqueBlock(keras.layers.Layer):
    """A custom layer whose call needs concrete values (it cannot be traced) and whose argument is a
    function (it cannot be re-created from its config)."""

    def __init__(self, fn, **kwargs):
        super().__init__(**kwargs)
        self.fn, self.conv = fn, keras.layers.Conv2D(8, 1)

    def compute_output_shape(self, input_shape):  # without it Keras itself cannot build the model
        return (*input_shape[:-1], 8)

    def call(self, x):
        if isinstance(x, keras.KerasTensor):  # e.g. a Python branch on a value
            raise TypeError("OpaqueBlock needs concrete values")
        return self.fn(self.conv(x))


def test_custom_layers_made_of_layers_are_traced_and_pruned():
    inp = keras.Input(SHAPE)
    x = keras.layers.BatchNormalization()(_conv(inp, 8, "stem"))
    model = keras.Model(inp, _head(InvertedBlock(8, name="block2")(InvertedBlock(8, name="block1")(x))))
    randomize_bn(model)
    gated, graph, compact, error, caught = _gate_and_compact(model)
    assert not caught, caught
    assert not {id(v) for v in gated.weights} & {id(v) for v in model.weights}  # an independent copy
    assert len(graph.gated_groups) == 6  # stem + both projects (residual), 2 x (expand, SE reduce), last
    assert {type(layer).__name__ for layer in compact.layers} >= {"Conv2D", "BatchNormalization"}
    assert not any(isinstance(layer, (InvertedBlock, SqueezeExcite)) for layer in compact.layers)
    assert error < 1e-5
    inp = keras.Input(SHAPE)  # sublayers named alike in two blocks: traced, the graph's names would clash
    x = InvertedBlock(8, prefix="block", name="a")(_conv(inp, 8, "stem"))
    model = keras.Model(inp, _head(InvertedBlock(8, prefix="block", name="b")(x)))
    with pytest.warns(UserWarning, match="could not trace"):
        assert auto_gate(model).get_layer("b").weights  # one opaque node each, as before tracing


def test_a_custom_layer_that_cannot_be_traced_or_copied_is_a_warned_barrier():
    inp = keras.Input(SHAPE)
    x = OpaqueBlock(lambda t: keras.ops.relu(t), name="opaque")(_conv(inp, 8, "stem"))
    gated, graph, compact, error, caught = _gate_and_compact(keras.Model(inp, _head(x)))
    assert any("could not trace" in m and "'opaque' (OpaqueBlock: TypeError: OpaqueBlock needs" in m for m in caught)
    assert any("could not re-create" in m and "'opaque' (OpaqueBlock" in m for m in caught), caught
    assert {g.producers[0] for g in graph.gated_groups} == {"last"} and error < 1e-5


def test_one_channel_map_broadcasts_over_the_channels():
    inp = keras.Input(SHAPE)
    x = keras.layers.ReLU()(_conv(inp, 8, "features"))
    attention = keras.ops.sigmoid(_conv(x, 1, "attention"))  # [N, H, W, 1]
    x = keras.layers.Multiply()([x, attention]) + x * attention
    gated, graph, compact, error, caught = _gate_and_compact(keras.Model(inp, _head(x)))
    assert not caught, caught
    assert _group_with(graph, "features").size == 8  # the map does not tie the 8 channels to its one
    assert error < 1e-5


def test_grouped_conv_used_as_depthwise_is_pruned_with_its_input():
    inp = keras.Input(SHAPE)
    x = keras.layers.BatchNormalization()(_conv(inp, 8, "expand"))
    x = _conv(x, 8, "grouped_dw", groups=8, activation="relu")  # ConvNeXt's depthwise conv
    x = _conv(x, 8, "grouped_dw_nobias", groups=8, use_bias=False)
    y = _conv(_conv(inp, 12, "pre"), 12, "grouped_4", groups=3)  # 4 channels per group: a barrier
    model = keras.Model(inp, _head(keras.layers.Concatenate()([x, y])))
    gated, graph, compact, error, caught = _gate_and_compact(model)
    assert _group_with(graph, "expand").producers == ["expand"]
    dw = compact.get_layer("grouped_dw")
    assert dw.groups == dw.filters == dw.kernel.shape[3] < 8
    assert len(set(caught)) == 1 and "'grouped_4'" in caught[0] and "a grouped Conv2D" in caught[0]
    assert error < 1e-5


def test_layer_scale_and_custom_scale_layer():
    layer_scale = keras_internals.application_layer_class("convnext", "LayerScale")
    custom_scale = keras_internals.application_layer_class("inception_resnet_v2", "CustomScaleLayer")
    inp = keras.Input(SHAPE)
    x = keras.layers.ReLU()(_conv(inp, 8, "stem"))
    r = layer_scale(init_values=0.5, projection_dim=8, name="layer_scale")(_conv(x, 8, "residual"))
    x = custom_scale(scale=0.17, name="custom_scale")([x, r])
    y = keras.layers.Concatenate()([_conv(x, 4, "left"), _conv(x, 4, "right")])
    x = custom_scale(scale=0.5, name="split_scale")([y, _conv(x, 8, "whole")])  # 4 + 4 channels vs 8
    model = keras.Model(inp, _head(x))
    model.get_layer("layer_scale").set_weights([np.linspace(-1, 2, 8).astype("float32")])
    gated, graph, compact, error, caught = _gate_and_compact(model)
    assert caught and all("'split_scale'" in m and "differently split" in m for m in caught), caught
    assert set(_group_with(graph, "stem").producers) == {"stem", "residual"}
    kept = compact.get_layer("layer_scale").get_weights()[0]
    assert kept.shape[0] < 8 and set(kept.tolist()) <= set(np.linspace(-1, 2, 8).astype("float32").tolist())
    assert error < 1e-5


@pytest.mark.slow
def test_op_nodes_and_barriers_export_to_tflite():
    inp = keras.Input(SHAPE)
    x = _hard_swish_model()(inp)
    model = keras.Model(inp, x + keras.ops.cumsum(x, axis=-1))  # nested model inlined; an unknown op at the end
    gated, graph, compact, error, caught = _gate_and_compact(model)
    assert error < 1e-5
    x = _x(SHAPE, n=4)
    report = verify_tflite(convert_tflite(compact, "float"), compact, x, "float")
    assert report["passed"] and report["max_abs_diff"] <= 1e-4 * report["output_scale"]


# --- the zoo: MobileNetV3 and ConvNeXt at 50% FLOPs --------------------------------------------------


def _sweep(name, size):
    """The zoo sweep's row (`tfprune.studies.zoo.sweep_one`: randomized BN and LayerScale, auto_gate ->
    CostModel -> 50% FLOPs -> compact, masked == compact and the FLOPs prediction checked) at ``size``."""
    row = zoo.sweep_one(name, input_size=size, tflite=False)  # TFLite: test_zoo_sweep's slow sweep
    assert row["status"] == zoo.STATUS_PASS, f"{name}: {row['status']}: {row['error_message']}"
    print(f"{name}: {row['groups']} groups, {row['prunable_share']:.1%} of FLOPs prunable, "
          f"{row['flops_kept']:.3f} FLOPs kept, error {row['error']:.1e}")
    return row


@pytest.mark.slow
@pytest.mark.parametrize("name", ["MobileNetV3Small", "MobileNetV3Large"])
def test_mobilenet_v3_prunes_at_half_flops(name):
    row = _sweep(name, 96)
    assert row["barriers"] == 0, row["barrier_reasons"]  # hard-swish's x + 3.0 and * (1 / 6) are understood
    assert row["groups"] >= 25 and row["prunable_share"] > 0.99
    assert row["target_reached"] and abs(row["flops_kept"] - 0.5) <= 0.02 and row["error"] <= 1e-4


@pytest.mark.slow
def test_convnext_prunes_its_mlp_at_half_flops():
    row = _sweep("ConvNeXtTiny", 64)
    # Each block's MLP hidden width (4 x dim) is a group; the residual stream is normalised by LayerNorm.
    assert row["groups"] == 18 and row["prunable_share"] > 0.9
    assert row["barriers"] and all("LayerNormalization" in reason for _, reason in row["barrier_reasons"])
    assert row["target_reached"] and abs(row["flops_kept"] - 0.5) <= 0.02 and row["error"] <= 1e-4


def _odd_graph(kind):
    inp = keras.Input(SHAPE)
    x = _conv(inp, 8, "a")
    if kind == "Mean":  # a scalar, broadcast into a product
        return keras.Model(inp, _head(x * keras.ops.mean(x)))
    if kind == "Transpose":
        return keras.Model(inp, _head(keras.ops.transpose(x, (0, 2, 1, 3))))
    if kind == "Split":  # several outputs
        a, b = keras.ops.split(x, 2, axis=-1)
        return keras.Model(inp, _head(a + b))
    if kind == "Sum":  # a scalar (rank 0) output, broadcast over the classes
        return keras.Model(inp, _head(x) + keras.ops.sum(x))
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["Mean", "Transpose", "Split", "Sum"])
def test_unknown_op_is_a_warned_barrier_everywhere(kind):
    model = _odd_graph(kind)
    gated, graph, compact, error, caught = _gate_and_compact(model)
    assert caught and all(f"({kind})" in m for m in caught), caught
    assert error < 1e-5 and str(inspect(model))


def test_unknown_spatial_size_is_one_clear_error():
    inp = keras.Input((None, None, 3))
    model = keras.Model(inp, _conv(keras.ops.relu(_conv(inp, 8, "a")) + 1.0, 4, "b"))
    with pytest.raises(ValueError, match="unknown spatial size"):
        CostModel(auto_gate(model))
