"""Channel-importance criteria (L1, BatchNorm scale) and the global-magnitude baseline built on them."""

import gin
import keras
import numpy as np
import pytest

from tfprune.structure import importance as importance_lib
from tfprune.structure import masks as mask_lib
from tfprune.cost.budget import FlopsBudget, global_magnitude_ratios
from tfprune.errors import TfpruneError
from tfprune.cost.flops import CostModel
from tfprune.structure.gates import ChannelGate
from tfprune.structure.graph import ChannelGraph
from tfprune.search.policy import POLICIES, PolicyError, make_policy

from model_fixtures import mixed_model


def bn_and_plain_model():
    """Group "bn_gate": conv -> BN -> gate; group "plain_gate": conv straight into its gate (no BN)."""
    inp = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(6, 3, padding="same", use_bias=False, name="with_bn")(inp)
    x = keras.layers.ReLU()(ChannelGate(name="bn_gate")(keras.layers.BatchNormalization(name="bn")(x)))
    x = keras.layers.Conv2D(5, 1, use_bias=False, name="no_bn")(x)
    x = keras.layers.ReLU()(ChannelGate(name="plain_gate")(x))
    out = keras.layers.Dense(3)(keras.layers.GlobalAveragePooling2D()(x))
    return keras.Model(inp, out)


def budget_of(model, target=0.5, **kwargs):
    graph = ChannelGraph(model)
    return FlopsBudget(CostModel(model, graph), graph, target, **kwargs)


def test_l1_stays_the_default_and_is_unchanged():
    model = mixed_model()
    graph = ChannelGraph(model)
    expected = {}
    for group in graph.gated_groups:  # the L1 criterion as it was written before criteria existed
        score = np.zeros(group.size, dtype=np.float64)
        for name in group.producers:
            layer = model.get_layer(name)
            kernel = np.asarray(layer.weights[1 if hasattr(layer, "pointwise_kernel") else 0])
            score += np.abs(kernel.reshape(-1, kernel.shape[-1])).sum(axis=0)
        expected[group.name] = score
    for importance in (mask_lib.channel_importance(graph), mask_lib.channel_importance(graph, "l1"),
                       budget_of(model).importance()):
        assert set(importance) == set(expected)
        for name in expected:
            np.testing.assert_array_equal(importance[name], expected[name])


def test_bn_scale_ranks_channels_by_abs_gamma_and_falls_back_to_l1_without_bn():
    model = bn_and_plain_model()
    gamma = np.array([0.5, -3.0, 0.1, 2.0, -0.2, 1.0], "float32")  # |gamma| order: 1, 3, 5, 0, 4, 2
    bn = model.get_layer("bn")
    bn.set_weights([gamma] + bn.get_weights()[1:])
    graph = ChannelGraph(model)
    importance = mask_lib.channel_importance(graph, "bn_scale")
    np.testing.assert_allclose(importance["bn_gate"], np.abs(gamma))
    masks = mask_lib.masks_from_kept([3, 5], ["bn_gate", "plain_gate"], importance)
    np.testing.assert_array_equal(np.flatnonzero(masks["bn_gate"]), [1, 3, 5])
    # No BatchNormalization after "no_bn": its L1 score stands in.
    np.testing.assert_array_equal(importance["plain_gate"], mask_lib.channel_importance(graph)["plain_gate"])


def test_bn_scale_sums_coupled_producers():
    model = mixed_model()  # stage_gate couples "stem" and "b1c2", each followed by its own BN
    graph = ChannelGraph(model)
    norms = importance_lib._batch_norms_after_producers(graph)
    expected = sum(np.abs(np.asarray(norms[name][0].gamma)) for name in ("stem", "b1c2"))
    np.testing.assert_allclose(mask_lib.channel_importance(graph, "bn_scale")["stage_gate"], expected)


def test_unknown_criterion_names_the_choices():
    graph = ChannelGraph(bn_and_plain_model())
    with pytest.raises(mask_lib.ImportanceError, match="JointPruner.importance.*'l1', 'bn_scale', 'gate_score'") as error:
        mask_lib.channel_importance(graph, "l2")
    assert isinstance(error.value, TfpruneError)
    with pytest.raises(mask_lib.ImportanceError):  # at construction, before any training
        budget_of(bn_and_plain_model(), importance="taylor")
    assert mask_lib.IMPORTANCE_CRITERIA == ("l1", "bn_scale", "gate_score")


@pytest.mark.parametrize("target", [0.4, 0.6, 0.8])
def test_global_magnitude_ratios_land_on_the_flops_target(target):
    budget = budget_of(mixed_model(), target)
    ratios = global_magnitude_ratios(budget.importance(), budget)
    assert ratios.shape == (len(budget.cost_model.group_names),)
    assert np.all(ratios >= 0) and np.all(ratios <= budget.max_ratio)
    kept = mask_lib.kept_from_ratios(ratios, budget.cost_model.group_sizes)
    assert abs(budget.cost_model.flops_ratio(kept) - target) <= 0.06  # one threshold: channel granularity
    _, achieved = budget.masks(ratios)
    assert abs(achieved - target) <= budget.tolerance


def test_global_magnitude_prunes_groups_with_low_normalised_importance_more():
    budget = budget_of(mixed_model(), 0.8)
    names = budget.cost_model.group_names
    importance = {name: np.ones(size) for name, size in zip(names, budget.cost_model.group_sizes)}
    skewed = importance["exp_gate"]
    skewed[::2] = 0.01  # half its channels far below the group's mean
    importance["b1_gate"] = 100.0 * importance["b1_gate"]  # a raw scale alone does not matter (normalised)
    ratios = dict(zip(names, global_magnitude_ratios(importance, budget)))
    assert ratios["exp_gate"] >= 0.5 - 1e-9
    assert all(ratios["exp_gate"] > ratios[name] for name in names if name != "exp_gate")


def test_global_magnitude_at_target_one_prunes_nothing():
    budget = budget_of(mixed_model(), 1.0)
    np.testing.assert_array_equal(global_magnitude_ratios(budget.importance(), budget), 0.0)
    masks, achieved = budget.masks(np.zeros(len(budget.cost_model.group_names)))
    assert achieved == 1.0 and all(m.all() for m in masks.values())


def test_global_magnitude_policy_needs_the_budget():
    assert "global_magnitude" in POLICIES
    with pytest.raises(PolicyError, match="budget"):
        make_policy("global_magnitude", 4, 5, 0.9)
    budget = budget_of(mixed_model())
    policy = make_policy("global_magnitude", 4, 5, 0.9, budget=budget)
    assert policy.propose(0, 16).shape == (1, 4)
    np.testing.assert_array_equal(policy.select(0), policy.propose(3, 1)[0])
    assert not policy.stable_target and policy.min_rewards == 1


def make_pruner(**kwargs):
    from tfprune.pruning.pruner import JointPruner

    rng = np.random.default_rng(0)
    held_out = (rng.normal(size=(32, 16, 16, 3)).astype("float32"), rng.integers(0, 5, 32))
    return JointPruner(mixed_model(), held_out, max_epochs=5, num_samples=4, dynamics_steps=3, **kwargs)


def test_pruner_uses_its_importance_criterion_in_the_agent_step():
    pruner = make_pruner(policy="uniform", importance="bn_scale")
    assert pruner.budget.criterion.name == "bn_scale"
    pruner.agent_step(0)
    kept, _ = pruner.budget.project(np.zeros(len(pruner.group_names)))
    expected = mask_lib.masks_from_kept(kept, pruner.group_names,
                                        mask_lib.channel_importance(pruner.graph, "bn_scale"))
    for name, mask in pruner.alignment_target.best.masks.items():
        np.testing.assert_array_equal(mask, expected[name])


def test_pruner_with_global_magnitude_meets_the_budget():
    pruner = make_pruner(policy="global_magnitude")
    stats = pruner.agent_step(0)
    assert abs(stats.flops_ratio - 0.5) <= 0.02
    assert abs(pruner.select().flops_ratio - 0.5) <= 0.02


# --- end to end (tiny runs of tests/test_trainer.py) ---------------------------------------------


@pytest.mark.slow
def test_global_magnitude_run_with_bn_scale_lands_on_the_budget(tmp_path, clean_gin):
    from test_trainer import configure
    from tfprune.training import trainer

    configure('JointPruner.policy = "global_magnitude"', 'JointPruner.importance = "bn_scale"')
    summary = trainer.run(str(tmp_path))
    assert abs(summary["flops_ratio"] - 0.5) <= 0.02
    assert summary["params_pruned"] < summary["params_full"]


@pytest.mark.slow
def test_unpruned_method_runs_the_schedule_without_pruning(tmp_path, clean_gin):
    from test_trainer import configure
    from tfprune.training import trainer
    from tfprune.studies.compare import METHODS

    configure(*METHODS["unpruned"])
    summary = trainer.run(str(tmp_path))
    assert summary["flops_ratio"] == 1.0
    assert summary["params_pruned"] == summary["params_full"]
    assert all(kept == total for kept, total in summary["kept_channels"].values())
    assert summary["tflite"]


def test_uniform_profile_prunes_the_offset_groups_more_and_lands_on_the_budget(clean_gin):
    # At 60% the flat rule's shift lands in the band with no channel repair; at 50% both sub-networks need
    # single-channel repairs on these 6-16-channel groups, and which group a repair moves depends on the path.
    model = mixed_model()
    budget = budget_of(model, target=0.6, tolerance=0.02)
    n = len(budget.cost_model.group_names)
    profile = [0.0] * (n - 1) + [0.5]
    gin.bind_parameter("FixedPolicy.profile", profile)
    ratios = make_policy("uniform", n, 5, 0.9).select(0)
    kept, achieved = budget.project(ratios)
    flat, _ = budget.project(np.zeros(n))
    sizes = np.asarray(budget.cost_model.group_sizes)
    assert 0.58 <= achieved <= 0.6
    assert kept[-1] / sizes[-1] < flat[-1] / sizes[-1]  # the offset group keeps a smaller share ...
    assert np.all(kept[:-1] / sizes[:-1] >= flat[:-1] / sizes[:-1])  # ... and the others no less


def test_uniform_profile_of_the_wrong_length_names_the_setting(clean_gin):
    gin.bind_parameter("FixedPolicy.profile", [0.1, 0.2])
    with pytest.raises(PolicyError, match="FixedPolicy.profile must hold 4 ratios"):
        make_policy("uniform", 4, 5, 0.9)



def test_the_profile_method_is_the_bound_profile_and_refuses_to_run_without_one(clean_gin):
    """compare's "profile" method (`JointPruner.policy = @FixedPolicy`, kind "profile") is the config's
    hand-made structure; with no profile bound it would silently be uniform, so it fails instead."""
    from tfprune.search.policy import FixedPolicy, PolicyContext, resolve_policy

    context = PolicyContext(None, 4, 5, 0.9, True, 10, 0)
    gin.bind_parameter("FixedPolicy.kind", "profile")
    with pytest.raises(PolicyError, match="needs one: bind FixedPolicy.profile"):
        resolve_policy(FixedPolicy, context)
    gin.bind_parameter("FixedPolicy.profile", [0.5, 0.5, 0.5, 0.0])
    assert resolve_policy(FixedPolicy, context).select(0).tolist() == [0.5, 0.5, 0.5, 0.0]
    assert resolve_policy("uniform", context).select(0).tolist() == [0.5, 0.5, 0.5, 0.0]  # older commands

# --- strategies as objects (issue 35) -------------------------------------------------------------


def test_criterion_objects_score_as_their_names():
    from tfprune.structure.importance import (BNScaleImportance, Importance, L1Importance, as_importance)

    graph = ChannelGraph(bn_and_plain_model())
    for obj, name in ((L1Importance(), "l1"), (BNScaleImportance(), "bn_scale")):
        assert as_importance(name).name == name and as_importance(obj) is obj
        by_name, by_object = mask_lib.channel_importance(graph, name), obj(graph)
        assert set(by_name) == set(by_object)
        for group in by_name:
            np.testing.assert_array_equal(by_name[group], by_object[group])

    class Reversed(Importance):  # a user's own criterion: no change to tfprune needed
        def __call__(self, graph):
            return {g.name: np.arange(g.size, 0, -1, dtype=np.float64) for g in graph.gated_groups}

    budget = budget_of(bn_and_plain_model(), 1.0, importance=Reversed())
    assert all((scores == np.arange(scores.size, 0, -1)).all() for scores in budget.importance().values())
    with pytest.raises(mask_lib.ImportanceError, match="Importance"):
        as_importance(["l1"])


def test_pruner_takes_strategy_objects_that_match_their_names():
    from tfprune.search.policy import FixedPolicy, GlobalMagnitudePolicy
    from tfprune.structure.importance import BNScaleImportance

    from tfprune.pruning.pruner import JointPruner

    model, rng = mixed_model(), np.random.default_rng(0)
    held_out = (rng.normal(size=(32, 16, 16, 3)).astype("float32"), rng.integers(0, 5, 32))
    by_name = JointPruner(model, held_out, max_epochs=5, policy="global_magnitude", importance="bn_scale")
    by_object = JointPruner(model, held_out, max_epochs=5, policy=GlobalMagnitudePolicy, importance=BNScaleImportance())
    assert isinstance(by_object.policy, GlobalMagnitudePolicy) and by_object.budget.criterion.name == "bn_scale"
    a, b = by_name.agent_step(0), by_object.agent_step(0)
    assert a.best_kept == b.best_kept and a.flops_ratio == b.flops_ratio
    rule = FixedPolicy("random", len(by_name.group_names), 0.5, seed=3)
    assert make_pruner(policy=rule).policy is rule  # an instance is used as it is


def test_pruner_takes_a_cost_object_as_its_budget():
    from tfprune.cost.budget import BudgetError

    model = mixed_model()
    rng = np.random.default_rng(0)
    held_out = (rng.normal(size=(32, 16, 16, 3)).astype("float32"), rng.integers(0, 5, 32))
    from tfprune.pruning.pruner import JointPruner

    cost = CostModel(model)
    pruner = JointPruner(model, held_out, max_epochs=5, policy="uniform", budget=cost, target_flops_ratio=0.6)
    assert pruner.budget.cost_model is cost and pruner.budget.target_ratio == 0.6
    with pytest.raises(BudgetError, match="target_latency_ratio"):
        JointPruner(model, held_out, policy="uniform", budget=cost, target_latency_ratio=0.5)
    with pytest.raises(BudgetError, match="lacks"):
        JointPruner(model, held_out, policy="uniform", budget=object())
    with pytest.raises(BudgetError, match="same gated model"):
        JointPruner(model, held_out, policy="uniform", budget=CostModel(bn_and_plain_model()))


def test_strategy_objects_bind_in_gin(clean_gin):
    from tfprune.pruning.pruner import JointPruner  # noqa: F401  (registers the configurables)
    from tfprune.search.policy import GlobalMagnitudePolicy

    gin.parse_config("JointPruner.importance = @BNScaleImportance()\nJointPruner.policy = @GlobalMagnitudePolicy")
    pruner = make_pruner()
    assert isinstance(pruner.policy, GlobalMagnitudePolicy) and pruner.budget.criterion.name == "bn_scale"
