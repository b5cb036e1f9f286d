"""Trainable gate scores: training and penalty, "gate_score" importance, folding at surgery, saving, export."""

import gin
import keras
import numpy as np
import pytest
import tensorflow as tf

from tfprune.structure import masks as mask_lib
from tfprune.structure.auto_gate import auto_gate
from tfprune.structure.gate_scores import plan_folds, score_penalty
from tfprune.structure.gates import ChannelGate, gates_of, new_gate
from tfprune.structure.graph import ChannelGraph
from tfprune.models import build_model
from tfprune.pruning.pruner import JointPruner
from tfprune.structure.surgery import compact_model

from model_fixtures import mixed_model, random_masks


def random_scores(model, seed=0):
    """Scores far from 1, of both signs, so that a score that is dropped or misplaced shows."""
    rng = np.random.default_rng(seed)
    for gate in gates_of(model).values():
        gate.score.assign(rng.uniform(-2.0, 2.0, gate.channels).astype("float32"))


def images(n=4, shape=(16, 16, 3), seed=1):
    return np.random.default_rng(seed).normal(size=(n, *shape)).astype("float32")


def test_gate_multiplies_kept_channels_by_the_score_and_batched_masks_too():
    gate = ChannelGate(score=True)
    x = np.ones((2, 3, 3, 4), "float32")
    gate(x)
    gate.score.assign([2.0, -1.0, 0.5, 3.0])
    gate.set_mask([1, 0, 1, 1])
    np.testing.assert_allclose(gate(x).numpy()[0, 0, 0], [2.0, 0.0, 0.5, 3.0])
    masks = np.array([[1, 1, 0, 0], [0, 0, 1, 1]], "float32").reshape(2, 1, 1, 1, 4)
    np.testing.assert_allclose(gate.gated(np.stack([x, x]), masks).numpy()[:, 0, 0, 0],
                               [[2.0, -1.0, 0.0, 0.0], [0.0, 0.0, 0.5, 3.0]])


def test_the_score_trains_and_its_l1_penalty_enters_the_pruner_loss():
    rng = np.random.default_rng(0)
    held_out = (images(16), rng.integers(0, 5, 16))
    with gin.unlock_config():
        gin.bind_parameter("score_penalty.strength", 0.01)
    try:
        pruner = JointPruner(mixed_model(score=True), held_out, target_flops_ratio=0.5, max_epochs=3,
                             policy="uniform", seed=0)
        random_scores(pruner.model)
        scores = [g.score for g in gates_of(pruner.model).values()]
        expected = 0.01 * sum(np.abs(s.numpy()).sum() for s in scores)
        np.testing.assert_allclose(float(pruner.penalty()), expected, rtol=1e-5)  # alignment is 0 before a target
        with tf.GradientTape() as tape:
            logits = pruner.model(held_out[0], training=True)
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(held_out[1], logits))
        grads = tape.gradient(loss, scores)  # the task loss alone: the score is on the forward path
    finally:
        gin.clear_config()
    trainable = {id(v) for v in pruner.model.trainable_variables}
    assert all(s.trainable and id(s) in trainable for s in scores)
    assert all(g is not None and np.abs(g.numpy()).sum() > 0 for g in grads)
    with tf.GradientTape() as tape:
        penalty = score_penalty(pruner.model, strength=0.01)
    for g, s in zip(tape.gradient(penalty, scores), scores):
        np.testing.assert_allclose(g.numpy(), 0.01 * np.sign(s.numpy()), rtol=1e-6)
    assert float(score_penalty(mixed_model())) == 0.0  # no scores, no term


def test_gate_score_importance_ranks_by_abs_score():
    model = mixed_model(score=True)
    random_scores(model, seed=3)
    graph = ChannelGraph(model)
    importance = mask_lib.channel_importance(graph, "gate_score")
    assert set(importance) == {g.name for g in graph.gated_groups}
    for name, gate in gates_of(model).items():  # the residual stage gate: one score per channel
        np.testing.assert_array_equal(importance[name], np.abs(gate.score.numpy()).astype(np.float64))
    masks = mask_lib.masks_from_kept([3] * len(graph.gated_groups), list(importance), importance)
    for name, mask in masks.items():
        top = np.argsort(-np.abs(gates_of(model)[name].score.numpy()), kind="stable")[:3]
        assert sorted(np.flatnonzero(mask)) == sorted(top)


def test_gate_score_importance_needs_scored_gates():
    with pytest.raises(mask_lib.ImportanceError, match="new_gate.score = True"):
        mask_lib.check_criterion("gate_score", ChannelGraph(mixed_model()))
    rng = np.random.default_rng(0)
    with pytest.raises(mask_lib.ImportanceError, match="new_gate.score = True"):  # before any training
        JointPruner(mixed_model(), (images(8), rng.integers(0, 5, 8)), importance="gate_score", policy="uniform")


@pytest.mark.parametrize("seed", [0, 1])
def test_masked_equals_compact_with_scores_folded_into_batchnorm(seed):
    model = mixed_model(score=True)  # residual stage gate shared by two BNs, expand gate by conv and depthwise
    random_scores(model, seed)
    graph = ChannelGraph(model)
    masks = random_masks(graph, seed)
    mask_lib.apply_masks(model, masks)
    compact = compact_model(model, masks, graph=graph)
    assert not [layer for layer in compact.layers if isinstance(layer, ChannelGate)]
    assert plan_folds(graph).kept_as_scale == set()
    x = images()
    np.testing.assert_allclose(compact(x).numpy(), model(x).numpy(), atol=1e-5)
    np.testing.assert_allclose(compact(x, training=True).numpy(), model(x, training=True).numpy(), atol=1e-4)


def plain_cnn():
    """conv -> BN -> relu -> conv ...: auto_gate puts its gates after the relus, where no BN is at hand."""
    inp = keras.Input((16, 16, 3))
    x = keras.layers.ReLU()(keras.layers.BatchNormalization()(keras.layers.Conv2D(8, 3, padding="same")(inp)))
    y = keras.layers.ReLU()(keras.layers.Conv2D(8, 3, padding="same")(x))
    x = keras.layers.Add()([x, y])
    x = keras.layers.Conv2D(6, 1, activation="relu")(x)
    out = keras.layers.Dense(4)(keras.layers.GlobalAveragePooling2D()(x))
    return keras.Model(inp, out)


def test_auto_gated_scores_become_fixed_scales_in_the_compact_model(tmp_path):
    with gin.unlock_config():
        gin.bind_parameter("new_gate.score", True)
    try:
        model = auto_gate(plain_cnn())
    finally:
        gin.clear_config()
    assert all(g.has_score for g in gates_of(model).values())
    random_scores(model, seed=5)
    graph = ChannelGraph(model)
    masks = random_masks(graph, seed=5)
    mask_lib.apply_masks(model, masks)
    compact = compact_model(model, masks, graph=graph)
    scales = [layer for layer in compact.layers if isinstance(layer, ChannelGate)]
    assert scales and all(s.mode == "soft" and not s.has_score and not s.trainable_weights for s in scales)
    x = images(seed=2)
    np.testing.assert_allclose(compact(x).numpy(), model(x).numpy(), atol=1e-5)
    compact.save(tmp_path / "compact.keras")
    np.testing.assert_allclose(keras.models.load_model(tmp_path / "compact.keras")(x).numpy(), model(x).numpy(),
                               atol=1e-5)


def test_config_round_trip_and_a_gate_saved_without_a_score_loads_as_it_was(tmp_path):
    assert "score" not in ChannelGate(name="g").get_config()  # the format of gates written before scores
    gate = ChannelGate.from_config(ChannelGate(name="g", mode="soft", score=True).get_config())
    assert gate.has_score and gate.mode == "soft"
    old_config = {k: v for k, v in ChannelGate(name="old").get_config().items()}
    assert not ChannelGate.from_config(old_config).has_score
    model = mixed_model(score=True)
    random_scores(model)
    model.save(tmp_path / "scored.keras")
    with gin.unlock_config():
        gin.bind_parameter("new_gate.score", True)  # a binding never changes what a saved gate holds
    try:
        loaded = keras.models.load_model(tmp_path / "scored.keras")
        plain = mixed_model()
        plain.save(tmp_path / "plain.keras")
        plain_loaded = keras.models.load_model(tmp_path / "plain.keras")
    finally:
        gin.clear_config()
    for name, gate in gates_of(model).items():
        np.testing.assert_array_equal(gates_of(loaded)[name].score.numpy(), gate.score.numpy())
    assert not any(g.has_score for g in gates_of(plain_loaded).values())
    x = images()
    np.testing.assert_allclose(loaded(x).numpy(), model(x).numpy(), atol=1e-6)


def test_zoo_models_take_scores_from_the_new_gate_binding():
    assert not any(g.has_score for g in gates_of(build_model("resnet8", 10, (16, 16, 3), 0.25)).values())
    with gin.unlock_config():
        gin.bind_parameter("new_gate.score", True)
    try:
        model = build_model("resnet8", 10, (16, 16, 3), 0.25)
        assert new_gate("g").has_score
    finally:
        gin.clear_config()
    gates = gates_of(model)
    assert gates and all(g.has_score for g in gates.values())
    random_scores(model, seed=7)
    graph = ChannelGraph(model)
    masks = random_masks(graph, seed=7)
    mask_lib.apply_masks(model, masks)
    x = images(seed=3)
    np.testing.assert_allclose(compact_model(model, masks, graph=graph)(x).numpy(), model(x).numpy(), atol=1e-5)


def test_export_of_a_scored_model_verifies(tmp_path):
    from tfprune.deploy.export import export_all

    model = mixed_model(score=True)
    random_scores(model, seed=4)
    graph = ChannelGraph(model)
    masks = random_masks(graph, seed=4)
    mask_lib.apply_masks(model, masks)
    compact = compact_model(model, masks, graph=graph)
    report = export_all(compact, tmp_path / "out", quantizations=("float",), sample_inputs=images(8), latency=False)
    assert report["saved_model"]["reload_max_abs_diff"] <= 1e-5
    assert report["tflite"]["float"]["verification"]["passed"]


def test_under_model_fit_the_callback_applies_the_same_l1_step():
    from tfprune.structure.gate_scores import score_penalty_step

    model = mixed_model(score=True)
    random_scores(model, seed=6)
    before = {name: g.score.numpy().copy() for name, g in gates_of(model).items()}
    score_penalty_step(model, step_size=0.5)  # default strength 1e-4
    for name, gate in gates_of(model).items():
        np.testing.assert_allclose(gate.score.numpy(), before[name] - 0.5 * 1e-4 * np.sign(before[name]), rtol=1e-6)


def test_alignment_pulls_the_scores_of_channels_outside_the_target_once_per_shared_gate():
    from tfprune.pruning.alignment import GroupLassoAlignment

    model = mixed_model(score=True)
    graph = ChannelGraph(model)
    alignment = GroupLassoAlignment(graph)
    stage = gates_of(model)["stage_gate"]  # called twice (stem and residual branch): its score counted once
    assert sum(v is stage.score for v, _ in alignment._slices["stage_gate"]) == 1
    masks = random_masks(graph, seed=2)
    alignment.set_targets(masks)
    alignment.strength.assign(1.0)
    with tf.GradientTape() as tape:
        penalty = alignment.penalty()
    grad = tape.gradient(penalty, stage.score).numpy()
    assert np.all(grad[masks["stage_gate"]] == 0) and np.all(grad[~masks["stage_gate"]] > 0)
