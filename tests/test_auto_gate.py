"""auto_gate: users' own Keras CNNs (keras.applications, functional, Sequential) made prunable."""

import warnings

import keras
import numpy as np
import pytest

from tfprune.cost import budget

from tfprune.structure import masks as mask_lib
from tfprune.structure.auto_gate import auto_gate
from tfprune.deploy.export import convert_tflite, verify_tflite
from tfprune.cost.flops import CostModel
from tfprune.structure.gates import ChannelGate
from tfprune.structure.graph import ChannelGraph
from tfprune.structure.surgery import compact_model

from model_fixtures import Scale, random_masks, randomize_bn


def _x(shape, n=2, seed=1):
    return np.random.default_rng(seed).normal(size=(n, *shape)).astype("float32")


def _check_gated(model, shape, seed=3, keep=0.5):
    """(a) open gates change nothing, (b) compact == masked, (c) the counter agrees; returns the graph."""
    randomize_bn(model)
    x = _x(shape)
    gated = auto_gate(model)
    ref = np.asarray(model(x, training=False))
    np.testing.assert_allclose(np.asarray(gated(x, training=False)), ref, atol=1e-5)  # (a)
    graph = ChannelGraph(gated, warn=False)
    assert graph.gated_groups, "nothing to prune"
    assert sorted(g.name for g in graph.gated_groups) == sorted(
        layer.name for layer in gated.layers if isinstance(layer, ChannelGate)
    )
    masks = random_masks(graph, seed=seed, keep=keep)
    mask_lib.apply_masks(gated, masks)
    masked = np.asarray(gated(x, training=False))
    compact = compact_model(gated, graph=graph)
    scale = max(1.0, float(np.abs(masked).max()))
    np.testing.assert_allclose(np.asarray(compact(x, training=False)), masked, atol=1e-4 * scale)  # (b)
    predicted = CostModel(gated, graph).cost(masks)
    assert CostModel(compact, ChannelGraph(compact, warn=False)).full == predicted  # (c)
    assert predicted.flops < CostModel(gated, graph).full.flops
    assert not np.allclose(masked, ref, atol=1e-3 * scale), "the masks changed nothing: a vacuous test"
    return graph


@pytest.mark.parametrize("name", ["ResNet50", "MobileNetV2", "EfficientNetB0"])
@pytest.mark.slow
def test_keras_applications(name):
    model = getattr(keras.applications, name)(
        weights=None, input_shape=(32, 32, 3), classes=10, classifier_activation=None
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # no barrier warnings: every block is understood
        graph = _check_gated(model, (32, 32, 3))
    if name == "EfficientNetB0":
        # The squeeze-excite path (GAP -> Reshape -> conv -> conv -> Multiply) is coupled to its block's
        # expanded channels, and the Reshape was rewritten to (1, 1, -1) so it survives pruning.
        group = next(g for g in graph.gated_groups if "block2a_expand_conv" in g.producers)
        assert "block2a_se_expand" in group.producers
        reshape = graph.model.get_layer("block2a_se_reshape")
        assert tuple(reshape.target_shape) == (1, 1, -1)
    if name == "ResNet50":
        stage = next(g for g in graph.gated_groups if "conv2_block1_0_conv" in g.producers)
        assert set(stage.producers) == {"conv2_block1_0_conv", *(f"conv2_block{i}_3_conv" for i in (1, 2, 3))}


def _concat_model():
    """Concat branches (one after a depthwise + BN, one through an SE multiply), concat -> conv,
    flatten -> dense, and a conv -> DepthwiseConv(bias) -> BN -> conv chain."""
    inp = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", name="stem")(inp)
    x = keras.layers.ReLU()(keras.layers.BatchNormalization()(x))
    a = keras.layers.Conv2D(6, 1, name="a")(x)
    a = keras.layers.BatchNormalization()(a)
    a = keras.layers.DepthwiseConv2D(3, padding="same", name="a_dw")(a)  # has a bias
    a = keras.layers.BatchNormalization()(a)
    b = keras.layers.Conv2D(5, 3, padding="same", name="b")(x)
    se = keras.layers.GlobalAveragePooling2D()(b)
    se = keras.layers.Reshape((1, 1, 5))(se)
    se = keras.layers.Conv2D(5, 1, activation="sigmoid", name="b_se")(se)
    b = keras.layers.Multiply()([b, se])
    b = keras.layers.Activation("sigmoid")(b)  # f(0) != 0: must be re-gated
    c = keras.layers.Concatenate()([a, b, x])
    c = keras.layers.Conv2D(7, 3, strides=2, padding="same", name="mix")(c)
    c = keras.layers.BatchNormalization()(c)
    d = keras.layers.Concatenate()([c, keras.layers.MaxPooling2D()(x)])
    d = keras.layers.MaxPooling2D(2)(d)
    out = keras.layers.Dense(4, name="fc")(keras.layers.Dropout(0.1)(keras.layers.Flatten()(d)))
    return keras.Model(inp, out)


def test_functional_model_with_concat_branches():
    graph = _check_gated(_concat_model(), (16, 16, 3))
    assert {g.name for g in graph.gated_groups} == {"stem_gate", "a_gate", "b_gate", "mix_gate"}
    b = next(g for g in graph.gated_groups if g.name == "b_gate")
    assert sorted(b.producers) == ["b", "b_se"]


def test_shift_after_concat_leaves_the_groups_unpruned_with_a_warning():
    inp = keras.Input((8, 8, 3))
    a = keras.layers.Conv2D(4, 3, padding="same", name="a")(inp)
    b = keras.layers.Conv2D(3, 3, padding="same", name="b")(inp)
    c = keras.layers.Concatenate()([a, b])
    c = keras.layers.BatchNormalization(name="bn_after_concat")(c)  # DenseNet style
    c = keras.layers.Conv2D(5, 3, padding="same", name="c")(keras.layers.ReLU()(c))
    out = keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(c))
    model = keras.Model(inp, out)
    with pytest.warns(UserWarning, match=r"'bn_after_concat' \(BatchNormalization\)"):
        gated = auto_gate(model)
    assert [g.name for g in ChannelGraph(gated).gated_groups] == ["c_gate"]
    _check_gated(model, (8, 8, 3))


def test_unsupported_layer_is_named_and_its_channels_stay_whole():
    inp = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(6, 3, padding="same", name="c1")(inp)
    x = keras.layers.BatchNormalization()(x)
    x = Scale(name="my_scale")(x)
    x = keras.layers.Conv2D(5, 3, padding="same", name="c2")(keras.layers.ReLU()(x))
    x = keras.layers.Conv2D(4, 3, padding="same", name="c3")(keras.layers.BatchNormalization()(x))
    out = keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(x))
    model = keras.Model(inp, out)
    with pytest.warns(UserWarning, match=r"'my_scale' \(Scale\).*left unpruned"):
        gated = auto_gate(model)
    assert {g.name for g in ChannelGraph(gated, warn=False).gated_groups} == {"c2_gate", "c3_gate"}
    with pytest.warns(UserWarning, match="my_scale"):
        _check_gated(model, (8, 8, 3))


def test_sequential_model():
    model = keras.Sequential(
        [
            keras.Input((12, 12, 3)),
            keras.layers.Rescaling(1 / 3.0, offset=-0.5),
            keras.layers.Conv2D(8, 3, padding="same", name="c1"),
            keras.layers.BatchNormalization(),
            keras.layers.ReLU(),
            keras.layers.MaxPooling2D(),
            keras.layers.Conv2D(6, 3, padding="same", name="c2"),
            keras.layers.BatchNormalization(),
            keras.layers.ReLU(),
            keras.layers.Flatten(),
            keras.layers.Dense(10, name="fc1"),
            keras.layers.Dense(3, name="fc2"),
        ]
    )
    graph = _check_gated(model, (12, 12, 3))
    assert {g.name for g in graph.gated_groups} == {"c1_gate", "c2_gate", "fc1_gate"}


def _adapted_normalization_model():
    norm = keras.layers.Normalization()
    norm.adapt(np.random.default_rng(0).normal(3.0, 2.0, size=(64, 3)).astype("float32"))
    inp = keras.Input((8, 8, 3))
    x = keras.layers.ReLU()(keras.layers.Conv2D(6, 3, padding="same", name="c1")(norm(inp)))
    return keras.Model(inp, keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(x)))


def test_adapted_normalization_is_copied_with_its_statistics():
    model = _adapted_normalization_model()
    x = _x((8, 8, 3))
    np.testing.assert_allclose(auto_gate(model)(x), model(x), atol=1e-5)


def test_adapted_normalization_survives_compaction():
    gated = auto_gate(_adapted_normalization_model())
    x = _x((8, 8, 3))
    np.testing.assert_allclose(compact_model(gated)(x), gated(x), atol=1e-5)


def test_gated_model_is_an_independent_copy():
    model = _concat_model()
    gated = auto_gate(model)
    before = [w.copy() for w in model.get_layer("mix").get_weights()]
    gated.get_layer("mix").set_weights([np.zeros_like(w) for w in before])
    for w, b in zip(model.get_layer("mix").get_weights(), before):
        np.testing.assert_array_equal(w, b)


def test_nested_backbone_is_inlined():
    backbone = keras.applications.MobileNetV2(weights=None, input_shape=(32, 32, 3), include_top=False, alpha=0.35)
    inp = keras.Input((32, 32, 3))
    x = keras.layers.GlobalAveragePooling2D()(backbone(inp))
    model = keras.Model(inp, keras.layers.Dense(5)(keras.layers.Dropout(0.2)(x)))
    x = _x((32, 32, 3))
    gated = auto_gate(model)
    np.testing.assert_allclose(gated(x), model(x), atol=1e-5)
    # The backbone's last conv is an output of the backbone alone, and prunable inside the full model.
    assert len(ChannelGraph(gated).gated_groups) == len(ChannelGraph(auto_gate(backbone)).gated_groups) + 1


def test_already_gated_model_is_rejected():
    inp = keras.Input((8, 8, 3))
    model = keras.Model(inp, ChannelGate()(keras.layers.Conv2D(4, 3)(inp)))
    with pytest.raises(ValueError, match="already has ChannelGate"):
        auto_gate(model)


@pytest.mark.slow
def test_mobilenetv2_at_half_flops_converts_to_tflite():
    """Done-when of issue 4: keras.applications.MobileNetV2 pruned to 50% FLOPs, counted, TFLite-verified."""
    model = keras.applications.MobileNetV2(
        weights=None, input_shape=(32, 32, 3), classes=10, classifier_activation=None
    )
    randomize_bn(model)
    gated = auto_gate(model)
    graph = ChannelGraph(gated)
    cost_model = CostModel(gated, graph)
    kept, achieved = budget.project_to_budget(np.zeros(len(cost_model.group_names)), cost_model, 0.5)
    masks = mask_lib.masks_from_kept(kept, cost_model.group_names, mask_lib.channel_importance(graph))
    compact = compact_model(gated, masks, graph=graph)
    full = CostModel(model).full.flops
    pruned = CostModel(compact).full.flops
    assert pruned == cost_model.cost(masks).flops
    assert abs(pruned / full - 0.5) <= 0.02 and achieved == pytest.approx(pruned / full)
    x = _x((32, 32, 3), n=8)
    mask_lib.apply_masks(gated, masks)
    np.testing.assert_allclose(compact(x), gated(x), atol=1e-4 * max(1.0, float(np.abs(gated(x)).max())))
    report = verify_tflite(convert_tflite(compact, "float"), compact, x, "float")
    assert report["passed"] and report["max_abs_diff"] <= 1e-4 * report["output_scale"]


def test_a_keras_applications_model_keeps_its_trained_weights_exactly():
    """auto_gate on a model with weights (set from a seeded random draw, as a stand-in for pretrained ones:
    no download): every weight is copied bit for bit and the open gates compute the same outputs."""
    model = keras.applications.MobileNetV2(weights=None, input_shape=(32, 32, 3), alpha=0.35, classes=10,
                                           classifier_activation=None)
    rng = np.random.default_rng(7)
    for w in model.weights:
        if "moving_variance" in w.path:
            w.assign(rng.uniform(0.5, 2.0, w.shape).astype("float32"))
        else:
            w.assign((0.1 * rng.standard_normal(w.shape)).astype("float32"))
    gated = auto_gate(model)
    for layer in model.layers:
        for mine, original in zip(gated.get_layer(layer.name).get_weights(), layer.get_weights(), strict=True):
            np.testing.assert_array_equal(mine, original)
    x = _x((32, 32, 3), n=4)
    np.testing.assert_allclose(np.asarray(gated(x, training=False)), np.asarray(model(x, training=False)),
                               rtol=1e-5, atol=1e-5)
