"""JointPruner on a tiny gated model: agent step, budget, reward hygiene, target stability, state."""

import itertools
from unittest import mock

import numpy as np
import pytest

from tfprune.structure.masks import read_masks
from tfprune.pruning.pruner import JointPruner

from model_fixtures import mixed_model


def make_pruner(**kwargs):
    rng = np.random.default_rng(0)
    held_out = (rng.normal(size=(32, 16, 16, 3)).astype("float32"), rng.integers(0, 5, 32))
    defaults = dict(target_flops_ratio=0.5, max_epochs=5, num_samples=4, dynamics_steps=3, seed=0)
    pruner = JointPruner(mixed_model(), held_out, **{**defaults, **kwargs})
    pruner.scorer.pass_images = 1  # every score goes through scorer.score, which some tests script
    return pruner


@pytest.mark.slow
def test_agent_step_meets_budget_and_sets_alignment_target():
    pruner = make_pruner()
    stats = pruner.agent_step(0)
    assert abs(stats.flops_ratio - 0.5) <= 0.02
    assert 0.0 <= stats.reward_min <= stats.reward_max <= 1.0
    assert np.isfinite(stats.dynamics_forecast_mse)
    for name, mask in pruner.alignment_target.best.masks.items():
        np.testing.assert_array_equal(pruner.alignment.targets[name].numpy(), mask.astype("float32"))
    assert pruner.scorer.score() >= 0.0  # the full network, gates restored afterwards
    assert all(m.all() for m in read_masks(pruner.model).values())


@pytest.mark.slow
def test_nan_rewards_never_reach_the_agent(monkeypatch):
    pruner = make_pruner()
    scores = itertools.chain([np.nan, 0.5, 0.25, np.nan], itertools.repeat(0.5))  # then the greedy episode
    monkeypatch.setattr(pruner.scorer, "score", lambda masks=None, subset=None: next(scores))
    seen = {}
    original = pruner.policy.agent.update

    def record_update(observation, actions, rewards):
        seen["r"] = rewards
        return original(observation, actions, rewards)

    monkeypatch.setattr(pruner.policy.agent, "update", record_update)
    pruner.agent_step(0)
    np.testing.assert_array_equal(seen["r"], [0.5, 0.25])


@pytest.mark.slow
def test_target_only_switches_for_a_clearly_better_sub_network(monkeypatch):
    pruner = make_pruner(target_switch_margin=0.05, target_rule="best_episode")
    pruner.agent_step(0)
    first = {k: v.copy() for k, v in pruner.alignment_target.best.masks.items()}
    # Next epoch: every sample scores 0.52 while the incumbent rescores 0.50 (< margin): keep it.
    scores = iter([0.52, 0.51, 0.50, 0.52, 0.50])
    monkeypatch.setattr(pruner.scorer, "score", lambda masks=None, subset=None: next(scores))
    stats = pruner.agent_step(1)
    assert not stats.target_switched
    assert all((pruner.alignment_target.best.masks[k] == first[k]).all() for k in first)
    scores = iter([0.9, 0.51, 0.50, 0.52, 0.50])
    stats = pruner.agent_step(2)
    assert stats.target_switched and pruner.alignment_target.best.reward == pytest.approx(0.9)


@pytest.mark.slow
def test_state_round_trip_restores_history_and_target():
    pruner = make_pruner()
    pruner.agent_step(0)
    state = pruner.get_state()
    other = make_pruner()
    other.set_state(state)
    assert other.history == pruner.history
    assert all((other.alignment_target.best.masks[k] == pruner.alignment_target.best.masks[k]).all() for k in pruner.alignment_target.best.masks)
    assert other.policy.dynamics.buffer_size == pruner.policy.dynamics.buffer_size


def _uniform_selection():
    pruner = make_pruner(policy="uniform")
    pruner.agent_step(0)
    selection = pruner.select()
    return np.array([m.sum() for m in selection.masks.values()]), selection.flops_ratio, pruner


def test_uniform_policy_prunes_every_group_alike_then_spends_the_slack():
    """The rule itself (the slack fill switched off) keeps the same share of every group up to channel
    rounding; the fill then only adds what still fits under the target. On this tiny model that tops the
    6-channel side group up to whole (4 -> 6), the one group whose channels still fit."""
    import tfprune.cost.budget as budget_lib

    unfilled = lambda kept, *_: np.array(kept, np.int64, ndmin=2)  # noqa: E731
    with mock.patch.object(budget_lib, "fill_to_target", unfilled):
        rule, rule_flops, pruner = _uniform_selection()
    sizes = pruner.cost_model.group_sizes
    assert np.ptp(rule / sizes) < 0.25 and 0.48 <= rule_flops <= 0.5  # same ratio up to channel rounding
    kept, flops = _uniform_selection()[:2]
    np.testing.assert_array_equal(kept, budget_lib.fill_to_target(rule, pruner.budget.cost_model, 0.5,
                                                                  pruner.budget.grid)[0])
    assert rule_flops <= flops <= 0.5 and (kept - rule).tolist() == [0, 0, 0, 2]


def test_model_without_gates_is_rejected():
    import keras

    inp = keras.Input((8, 8, 3))
    model = keras.Model(inp, keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3)(inp))))
    with pytest.raises(ValueError, match="auto_gate"):
        JointPruner(model, (np.zeros((2, 8, 8, 3), "float32"), np.zeros(2)))


@pytest.mark.slow
def test_policy_target_rule_aligns_to_the_greedy_episode_and_rescores_no_incumbent(monkeypatch):
    # target_rule="policy" is the default; episodes on a 16-image subset, so full-set scores stand out
    pruner = make_pruner(target_switch_margin=0.5, episode_images=16)
    rescored = []
    original = pruner.scorer.score

    def record(masks=None, subset=None):
        rescored.append(subset is None)
        return original(masks, subset)

    monkeypatch.setattr(pruner.scorer, "score", record)
    for epoch in range(3):
        rescored.clear()
        stats = pruner.agent_step(epoch)
        assert rescored.count(True) == 1  # only the greedy episode is scored on every image: no finalists
        greedy, _ = pruner.budget.masks(pruner.policy.select(epoch), project=False)
        assert stats.target_switched  # the policy's choice is adopted whatever the margin
        for name, mask in greedy.items():
            np.testing.assert_array_equal(pruner.alignment_target.best.masks[name], mask)
            np.testing.assert_array_equal(pruner.alignment.targets[name].numpy(), mask.astype("float32"))
        assert pruner.alignment_target.to_rescore(pruner.policy) is None
    assert pruner.alignment_target.best.reward == pytest.approx(pruner.scorer.score(pruner.alignment_target.best.masks))


@pytest.mark.slow
def test_best_episode_rule_rescores_the_incumbent_and_unknown_rules_are_refused():
    pruner = make_pruner(target_rule="best_episode")
    assert pruner.alignment_target.to_rescore(pruner.policy) is None  # nothing to rescore before the first step
    pruner.agent_step(0)
    assert pruner.alignment_target.to_rescore(pruner.policy) is pruner.alignment_target.best.masks
    uniform = make_pruner(policy="uniform")
    uniform.agent_step(0)
    assert uniform.alignment_target.best is not None and uniform.alignment_target.to_rescore(uniform.policy) is None  # a fixed rule
    with pytest.raises(ValueError, match="target_rule must be one of"):
        make_pruner(target_rule="greedy")


def test_broadcast_is_always_a_collective():
    from tfprune.infra.distribute import Collective

    pruner = make_pruner(policy="uniform")
    assert isinstance(pruner.broadcast, Collective) and pruner.broadcast.count == 1  # the local one
    worker = Collective(0, 1)
    assert make_pruner(policy="uniform", broadcast=worker).broadcast is worker
    with pytest.raises(TypeError, match="Collective"):
        make_pruner(policy="uniform", broadcast=lambda array: array)  # one type, not "Collective or function"


def test_every_policy_derives_from_the_policy_interface():
    from tfprune.search import policy as lib

    for cls in (lib.BanditPolicy, lib.EpisodicPolicy, lib.FixedPolicy, lib.GlobalMagnitudePolicy):
        assert issubclass(cls, lib.Policy) and not getattr(cls, "__abstractmethods__", None), cls
    with pytest.raises(TypeError):
        lib.Policy()  # the interface alone proposes nothing
