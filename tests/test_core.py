"""Gates, channel graph, cost model, masks, budget projection and physical pruning on small models."""

import os

import keras
import numpy as np
import pytest

from tfprune.cost import budget

from tfprune.structure import masks as mask_lib
from tfprune.cost.channel_grid import ChannelGrid
from tfprune.cost.flops import CostModel
from tfprune.structure.gates import ChannelGate
from tfprune.structure.graph import ChannelGraph, GraphError
from tfprune.structure.surgery import compact_model

from cost_fixtures import ChainCost, no_step_fits
from model_fixtures import conv_bn, mixed_model, random_masks


def test_gate_serialization_round_trip(tmp_path):
    inp = keras.Input((4, 4, 3))
    gate = ChannelGate(mode="soft", name="g")
    model = keras.Model(inp, gate(keras.layers.Conv2D(3, 1)(inp)))
    gate.set_mask([1.0, 0.25, 0.0])
    path = os.path.join(tmp_path, "m.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert loaded.get_layer("g").get_config()["mode"] == "soft"
    x = np.random.default_rng(0).normal(size=(2, 4, 4, 3)).astype("float32")
    np.testing.assert_allclose(model(x), loaded(x), atol=1e-6)
    np.testing.assert_allclose(loaded.get_layer("g").mask.numpy(), [1.0, 0.25, 0.0])


def test_gate_modes_and_errors():
    gate = ChannelGate(mode="hard")
    x = np.ones((1, 2, 2, 3), "float32")
    gate(x)
    gate.set_mask([0.7, 0.2, 1.0])
    np.testing.assert_allclose(gate(x)[0, 0, 0], [1, 0, 1])
    soft = ChannelGate(mode="soft")
    soft(x)
    soft.set_mask([0.7, 0.2, 1.0])
    np.testing.assert_allclose(soft(x)[0, 0, 0], [0.7, 0.2, 1.0], rtol=1e-6)
    with pytest.raises(ValueError, match="has 2 entries"):
        gate.set_mask([1, 0])
    with pytest.raises(ValueError, match="mode"):
        ChannelGate(mode="fuzzy")


def test_graph_groups_and_coupling():
    graph = ChannelGraph(mixed_model())
    groups = {g.name: g for g in graph.groups}
    assert set(groups) == {"stage_gate", "b1_gate", "exp_gate", "side_gate"}
    assert sorted(groups["stage_gate"].producers) == ["b1c2", "stem"]
    assert groups["exp_gate"].size == 16


def test_two_gates_on_coupled_channels_is_an_error():
    inp = keras.Input((8, 8, 3))
    a = conv_bn(inp, 4, ChannelGate(name="a"))
    b = conv_bn(inp, 4, ChannelGate(name="b"))
    model = keras.Model(inp, keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(keras.layers.Add()([a, b]))))
    with pytest.raises(GraphError, match="share one gate"):
        ChannelGraph(model)


def test_unknown_layer_blocks_its_channels_with_a_warning():
    inp = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, name="c1")(inp)
    x = keras.layers.Reshape((6, 6, 4))(x)  # tfprune has no rule for Reshape
    x = keras.layers.Conv2D(5, 3, name="c2")(x)
    model = keras.Model(inp, keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(x)))
    with pytest.warns(UserWarning, match="reshape"):
        graph = ChannelGraph(model)
    assert [g.name for g in graph.groups] == ["c2"]


def test_flops_and_params_match_hand_computation():
    inp = keras.Input((8, 8, 3))
    gate = ChannelGate(name="g")
    x = keras.layers.Conv2D(4, 3, padding="same", use_bias=False, name="c1")(inp)
    x = keras.layers.ReLU()(gate(keras.layers.BatchNormalization()(x)))
    x = keras.layers.Conv2D(6, 3, strides=2, padding="same", name="c2")(x)
    x = keras.layers.DepthwiseConv2D(3, padding="same", use_bias=False, name="dw")(x)
    out = keras.layers.Dense(10, name="fc")(keras.layers.GlobalAveragePooling2D()(x))
    model = keras.Model(inp, out)
    cost_model = CostModel(model)

    def hand(k):  # k = kept channels of c1
        flops = 8 * 8 * 9 * 3 * k + 4 * 4 * 9 * k * 6 + 4 * 4 * 9 * 6 + 6 * 10
        params = 9 * 3 * k + 2 * k + (9 * k * 6 + 6) + 9 * 6 + (6 * 10 + 10)
        return flops, params

    assert (cost_model.full.flops, cost_model.full.params) == hand(4)
    assert cost_model.full.params == sum(np.prod(w.shape) for w in model.trainable_weights)
    cost = cost_model.cost({"g": np.array([1, 0, 1, 0], bool)})
    assert (cost.flops, cost.params) == hand(2)


def test_compact_model_equals_masked_model_and_counter():
    model = mixed_model()
    graph = ChannelGraph(model)
    masks = random_masks(graph)
    mask_lib.apply_masks(model, masks)
    x = np.random.default_rng(1).normal(size=(4, 16, 16, 3)).astype("float32")
    compact = compact_model(model)
    np.testing.assert_allclose(compact(x, training=False), model(x, training=False), atol=1e-5)
    assert not any(isinstance(layer, ChannelGate) for layer in compact.layers)
    predicted = CostModel(model, graph).cost(masks)
    actual = CostModel(compact).full
    assert predicted == actual
    assert actual.params == sum(np.prod(w.shape) for w in compact.trainable_weights)
    assert compact.get_layer("expand").filters == int(masks["exp_gate"].sum())


def test_sequential_model_is_supported():
    gate = ChannelGate(name="g")
    model = keras.Sequential(
        [keras.Input((8, 8, 3)), keras.layers.Conv2D(6, 3, name="c"), gate, keras.layers.ReLU(),
         keras.layers.Flatten(), keras.layers.Dense(3)]
    )
    gate.set_mask([1, 1, 0, 1, 0, 1])
    x = np.random.default_rng(0).normal(size=(2, 8, 8, 3)).astype("float32")
    compact = compact_model(model)
    np.testing.assert_allclose(compact(x), model(x), atol=1e-5)
    assert compact.get_layer("c").filters == 4


def test_mask_validation_errors():
    graph = ChannelGraph(mixed_model())
    good = random_masks(graph)
    with pytest.raises(mask_lib.MaskError, match="does not have"):
        mask_lib.validate_masks({**good, "nope": np.ones(3, bool)}, graph)
    with pytest.raises(mask_lib.MaskError, match="has 3 entries"):
        mask_lib.validate_masks({"b1_gate": np.ones(3, bool)}, graph)
    with pytest.raises(mask_lib.MaskError, match="at least one"):
        mask_lib.validate_masks({"b1_gate": np.zeros(12, bool)}, graph)
    with pytest.raises(mask_lib.MaskError, match=r"\[0, 1\)"):
        mask_lib.kept_from_ratios([0.5, 1.0], [4, 4])
    with pytest.raises(mask_lib.MaskError, match="one per gated group"):
        mask_lib.kept_from_ratios([0.5], [4, 4])


def test_mask_file_round_trip_and_errors(tmp_path):
    masks = {"a": np.array([1, 0, 1], bool)}
    path = os.path.join(tmp_path, "masks.json")
    mask_lib.save_masks(masks, path)
    np.testing.assert_array_equal(mask_lib.load_masks(path)["a"], masks["a"])
    with pytest.raises(FileNotFoundError, match="does not exist"):
        mask_lib.load_masks(os.path.join(tmp_path, "missing.json"))
    bad = os.path.join(tmp_path, "bad.json")
    with open(bad, "w") as f:
        f.write("{not json")
    with pytest.raises(mask_lib.MaskError, match="not valid JSON"):
        mask_lib.load_masks(bad)


def test_importance_keeps_largest_channels():
    model = mixed_model()
    graph = ChannelGraph(model)
    kernel = model.get_layer("side").kernel
    weights = np.zeros(kernel.shape, "float32")
    weights[..., 3] = 5.0
    weights[..., 1] = 1.0
    kernel.assign(weights)
    importance = mask_lib.channel_importance(graph)
    masks = mask_lib.masks_from_kept([2], ["side_gate"], importance)
    np.testing.assert_array_equal(np.flatnonzero(masks["side_gate"]), [1, 3])


@pytest.mark.parametrize("target", [0.3, 0.5, 0.7])
def test_budget_projection_lands_at_or_under_the_target(target):
    """One band for every method: [target - tolerance, target], the band the agent's episodes end in."""
    cost_model = CostModel(mixed_model())
    rng = np.random.default_rng(0)
    for _ in range(5):
        kept, achieved = budget.project_to_budget(rng.uniform(0, 0.8, len(cost_model.group_names)), cost_model, target)
        assert target - 0.02 <= achieved <= target + 1e-12
        assert abs(cost_model.flops_ratio(kept) - achieved) < 1e-12
        assert np.all(kept >= 1) and np.all(kept <= cost_model.group_sizes)


def test_budget_lands_above_the_target_only_where_granularity_leaves_nothing_under_it():
    """A 2-channel group keeps 50% or 100% of the FLOPs: at a 48% target with a 3% tolerance nothing lies in
    [45%, 48%], so the projection (and `FlopsBudget.land`) keeps 50%, inside the tolerance above; at 52%
    it lands under the target at 50% too, and at 60% with a 5% tolerance (nothing in [55%, 65%]) it is a
    clear error."""
    cost = ChainCost([2], np.random.default_rng(0))
    for ratios in ([0.0], [0.9]):
        kept, achieved = budget.project_to_budget(np.array(ratios), cost, 0.48, tolerance=0.03)
        assert kept.tolist() == [1] and achieved == pytest.approx(0.5)
    flops_budget = budget.FlopsBudget(cost, None, 0.48, tolerance=0.03)
    assert flops_budget.land(np.array([0.0]))[0].tolist() == [1]
    assert budget.project_to_budget(np.zeros(1), cost, 0.52, tolerance=0.03)[0].tolist() == [1]
    with pytest.raises(budget.BudgetError, match="granularity"):
        budget.project_to_budget(np.zeros(1), cost, 0.6, tolerance=0.05)


@pytest.mark.parametrize("trial", range(20))
def test_fill_to_target_spends_the_slack_and_never_crosses_the_target(trial):
    """Property over random chains, grids and sub-networks: filling only adds channels, never goes over
    the target, leaves no allowed step that would still fit, and leaves sub-networks above it alone."""
    rng = np.random.default_rng(trial)
    cost = ChainCost(rng.integers(2, 65, rng.integers(1, 10)), rng)
    grid = ChannelGrid(cost.group_sizes, 0.9, int(rng.choice([1, 4])))
    kept = grid.snap(rng.uniform(0.1, 1.0, (16, len(cost.group_sizes))) * cost.group_sizes)
    target = float(np.median(cost.ratio_batch(kept)))
    filled = budget.fill_to_target(kept, cost, target, grid)
    under = cost.ratio_batch(kept) <= target
    assert np.all(filled >= kept) and np.all(filled[~under] == kept[~under])
    assert np.all(cost.ratio_batch(filled)[under] <= target + 1e-12)
    assert no_step_fits(filled[under], cost, target, grid)
    assert np.all(grid.snap(filled) == filled)  # allowed counts only


def test_projection_and_landing_end_as_near_the_target_as_one_channel_step_allows():
    cost_model = CostModel(mixed_model())
    flops_budget = budget.FlopsBudget(cost_model, None, 0.5, tolerance=0.1)
    rng = np.random.default_rng(1)
    for ratios in rng.uniform(0, 0.8, (5, len(cost_model.group_names))):
        for kept, achieved in (flops_budget.project(ratios), flops_budget.land(ratios)):
            assert achieved <= 0.5 + 1e-12
            assert no_step_fits(kept[None], cost_model, 0.5, flops_budget.grid)


def test_budget_preserves_agent_preferences():
    cost_model = CostModel(mixed_model())
    ratios = np.zeros(len(cost_model.group_names))
    ratios[cost_model.group_names.index("exp_gate")] = 0.6
    kept, _ = budget.project_to_budget(ratios, cost_model, 0.6)
    frac = kept / cost_model.group_sizes
    assert frac[cost_model.group_names.index("exp_gate")] == frac.min()


def test_unreachable_budget_is_a_clear_error():
    cost_model = CostModel(mixed_model())
    with pytest.raises(budget.BudgetError, match="cannot be reached"):
        budget.project_to_budget(np.zeros(4), cost_model, 0.01, max_ratio=0.5)
    with pytest.raises(budget.BudgetError, match=r"\(0, 1\]"):
        budget.project_to_budget(np.zeros(4), cost_model, 1.5)


def test_registry_layer_facts():
    """Passing channels through and keeping a zero channel zero are separate facts, both in the registry."""
    from tfprune.structure import registry

    class MyReLU(keras.layers.ReLU):  # a subclass may override call(): conservatively not zero-preserving
        pass

    zero = [
        keras.layers.ReLU(),
        keras.layers.ELU(),
        keras.layers.Activation("tanh"),
        keras.layers.Dropout(0.1),
        keras.layers.MaxPooling2D(),
        keras.layers.Reshape((1, 1, -1)),
        keras.layers.Flatten(),
        keras.layers.PReLU(),
        ChannelGate(),
        keras.layers.DepthwiseConv2D(3, use_bias=False),
    ]
    nonzero = [
        keras.layers.BatchNormalization(),
        keras.layers.GaussianNoise(0.1),
        keras.layers.Activation("sigmoid"),
        keras.layers.DepthwiseConv2D(3),
        keras.layers.Conv2D(2, 1),
        keras.layers.Lambda(lambda x: x),
        MyReLU(),
    ]
    assert all(registry.preserves_zero(layer) for layer in zero)
    assert not any(registry.preserves_zero(layer) for layer in nonzero)
    assert registry.rule_for(keras.layers.GaussianNoise(0.1)).kind == "passthrough"
    assert registry.rule_for(MyReLU()) is registry.lookup(keras.layers.ReLU())
    # x * 0 = 0: one zero input zeroes a product; a sum needs all of them zero.
    assert registry.lookup(keras.layers.Multiply()).merge_zero([True, False])
    assert not registry.lookup(keras.layers.Add()).merge_zero([True, False])
    assert registry.lookup(keras.layers.Add()).merge_zero([True, True])


def test_registry_rewrites_squeeze_excite_reshape():
    from tfprune.structure import registry

    inp = keras.Input((4, 4, 8))
    pooled = keras.layers.GlobalAveragePooling2D()(inp)
    reshape = keras.layers.Reshape((1, 1, 8))
    keras.Model(inp, reshape(pooled))
    assert registry.prunable_config(reshape)["target_shape"] == (1, 1, -1)
    other = keras.layers.Reshape((2, 2, 2))
    other(keras.Input((8,)))
    assert tuple(registry.prunable_config(other)["target_shape"]) == (2, 2, 2)
    assert registry.prunable_config(keras.layers.ReLU(name="r"))["name"] == "r"
