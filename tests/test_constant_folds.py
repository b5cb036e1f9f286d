"""Issue 33: DenseNet's concat -> BN -> ReLU -> 1x1 conv groups are pruned, the BN's constant folded into the
consumer's bias (`tfprune.structure.constant_folds`); masked == compact at inference."""

import warnings

import keras
import numpy as np
import pytest

from tfprune.cost.flops import CostModel
from tfprune.structure import masks as mask_lib
from tfprune.structure.auto_gate import auto_gate
from tfprune.structure.constant_folds import ZERO, Constant, plan_constant_folds, tensor_states
from tfprune.structure.graph import ChannelGraph
from tfprune.structure.surgery import compact_model

from model_fixtures import random_masks, randomize_bn

BARRIER = "gives removed channels"


def _x(shape, n=3, seed=1):
    return np.random.default_rng(seed).normal(size=(n, *shape)).astype("float32")


def _dense_block_model(consumer_kernel=1, consumer_padding="valid", consumer_bias=False):
    """Two convs concatenated -> BN -> ReLU -> consumer conv, one more concat -> BN -> ReLU -> GAP -> Dense."""
    inp = keras.Input((12, 12, 3))
    a = keras.layers.Conv2D(6, 3, padding="same", use_bias=False, name="a")(inp)
    b = keras.layers.Conv2D(5, 3, padding="same", name="b")(inp)
    x = keras.layers.Concatenate(name="cat1")([a, b])
    y = keras.layers.ReLU(name="relu1")(keras.layers.BatchNormalization(name="bn1")(x))
    y = keras.layers.Conv2D(7, consumer_kernel, padding=consumer_padding, use_bias=consumer_bias, name="c")(y)
    y = keras.layers.ReLU()(keras.layers.BatchNormalization(name="bn_c")(y))
    if consumer_padding == "valid" and consumer_kernel > 1:
        x = keras.layers.Cropping2D(consumer_kernel // 2)(x)
    x = keras.layers.Concatenate(name="cat2")([x, y])
    x = keras.layers.Activation("swish", name="act2")(keras.layers.BatchNormalization(name="bn2")(x))
    out = keras.layers.Dense(4, name="fc")(keras.layers.GlobalAveragePooling2D()(x))
    model = keras.Model(inp, out)
    randomize_bn(model, seed=5)
    return model


def _gate(model):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gated = auto_gate(model)
    return gated, [str(w.message) for w in caught if BARRIER in str(w.message)]


def _masked_and_compact(gated, x, seed=3, keep=0.5):
    graph = ChannelGraph(gated, warn=False)
    masks = random_masks(graph, seed=seed, keep=keep)
    mask_lib.apply_masks(gated, masks)
    compact = compact_model(gated, graph=graph)
    return graph, masks, np.asarray(gated(x, training=False)), np.asarray(compact(x, training=False)), compact


@pytest.mark.parametrize("kernel,padding,bias", [(1, "valid", False), (1, "same", True), (3, "valid", False)])
def test_concat_bn_conv_groups_are_pruned_and_masked_equals_compact(kernel, padding, bias):
    model = _dense_block_model(kernel, padding, bias)
    x = _x((12, 12, 3))
    gated, barriers = _gate(model)
    assert not barriers
    np.testing.assert_allclose(np.asarray(gated(x, training=False)), np.asarray(model(x, training=False)), atol=1e-5)
    graph, masks, masked, compact_out, compact = _masked_and_compact(gated, x)
    assert {g.name for g in graph.gated_groups} == {"a_gate", "b_gate", "c_gate"}
    scale = float(np.abs(masked).max())
    assert np.abs(compact_out - masked).max() <= 1e-4 * scale
    # The consumers read fewer channels, and the counter says so.
    assert compact.get_layer("c").kernel.shape[2] == int(masks["a_gate"].sum() + masks["b_gate"].sum())
    assert compact.get_layer("fc").kernel.shape[0] == compact.get_layer("bn2").gamma.shape[0]
    predicted = CostModel(gated, graph).cost(masks)
    counted = CostModel(compact, ChannelGraph(compact, warn=False)).full
    assert counted.flops == predicted.flops < CostModel(gated, graph).full.flops
    # A consumer without a bias gains one, which the counter counts (params of the compact model).
    assert counted.params == predicted.params == sum(np.prod(w.shape) for w in compact.trainable_weights)
    assert compact.get_layer("c").use_bias


def test_the_fold_is_needed():
    """Without the fold (the BN's constants dropped) the compact model would differ: the test is not vacuous."""
    gated, _ = _gate(_dense_block_model())
    graph = ChannelGraph(gated, warn=False)
    masks = random_masks(graph, seed=3, keep=0.5)
    folds = plan_constant_folds(graph, masks)
    assert set(folds.biases) == {"c", "fc"}
    assert all(np.abs(v).max() > 1e-3 for v in folds.biases.values())
    # Nothing removed: nothing folded; the bias-free consumer still gets its (zero) bias, so the compact
    # architecture depends on the kept counts alone.
    assert plan_constant_folds(graph, mask_lib.open_masks(graph)).biases == {}
    assert folds.new_bias == {"c"}
    x = _x((12, 12, 3))
    mask_lib.apply_masks(gated, mask_lib.open_masks(graph))
    full = compact_model(gated, graph=graph)
    assert full.get_layer("c").use_bias and not np.any(full.get_layer("c").bias.numpy())
    np.testing.assert_allclose(np.asarray(full(x, training=False)), np.asarray(gated(x, training=False)), atol=1e-5)
    assert CostModel(gated, graph).full == CostModel(full, ChannelGraph(full, warn=False)).full


def test_states_after_concat_bn():
    gated, _ = _gate(_dense_block_model())
    graph = ChannelGraph(gated, warn=False)
    states = tensor_states(graph)
    by_name = {info.layer.name: states[id(info.node.outputs[0])] for info in graph.nodes}
    assert set(by_name["cat1"]) == {ZERO}
    assert all(isinstance(s, Constant) and s == "bn1" for s in by_name["relu1"])
    assert all(isinstance(s, Constant) for s in by_name["act2"])


def test_same_padded_kxk_consumer_stays_a_barrier():
    """A 3x3 'same' conv sees the zero padding at the borders, not the constant: not exact, so not pruned."""
    model = _dense_block_model(3, "same")
    gated, barriers = _gate(model)
    assert barriers and "'bn1' (BatchNormalization)" in barriers[0]
    graph = ChannelGraph(gated, warn=False)
    assert {g.name for g in graph.gated_groups} == {"c_gate"}
    _, _, masked, compact_out, _ = _masked_and_compact(gated, _x((12, 12, 3)))
    assert np.abs(compact_out - masked).max() <= 1e-4 * float(np.abs(masked).max())


def test_zero_padding_between_bn_and_conv_stays_a_barrier():
    inp = keras.Input((8, 8, 3))
    a = keras.layers.Conv2D(4, 3, padding="same", name="a")(inp)
    b = keras.layers.Conv2D(3, 3, padding="same", name="b")(inp)
    x = keras.layers.BatchNormalization(name="bn")(keras.layers.Concatenate()([a, b]))
    x = keras.layers.Conv2D(5, 1, name="c")(keras.layers.ZeroPadding2D(1)(x))
    model = keras.Model(inp, keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(x)))
    _, barriers = _gate(model)
    assert barriers and "'bn' (BatchNormalization)" in barriers[0]


@pytest.mark.slow
def test_densenet121_has_no_concat_barrier_and_masked_equals_compact():
    """The zoo sweep's own row (`tfprune bench --only zoo`): 58 concat -> BN barriers before the fold."""
    from tfprune.studies import zoo  # noqa: PLC0415

    row = zoo.sweep_one("DenseNet121", tflite=False)
    assert row["status"] == zoo.STATUS_PASS, row
    assert row["barriers"] == 0 and row["error"] <= zoo.TOLERANCE and row["flops_match"], row
    assert row["target_reached"] and row["prunable_share"] > 0.99, row
