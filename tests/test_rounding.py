"""Channel rounding (`JointPruner.round_to`): kept counts are multiples of N or a group's full size; the
budget projection and the layer-wise agent's bounds step over those counts; rounding never breaks the
FLOPs budget (an unreachable one is a BudgetError naming round_to) nor masked == compact."""

import numpy as np
import pytest

from cost_fixtures import ChainCost
from tfprune.cost import budget
from tfprune.cost.channel_grid import ChannelGrid, RoundingError, round_masks
from tfprune.search.episode import EpisodeSpace


def _on_grid(kept, sizes, n):
    kept = np.asarray(kept)
    return bool(np.all((kept % n == 0) | (kept == sizes)))


def test_grid_allows_multiples_above_the_floor_and_the_full_size():
    grid = ChannelGrid([20, 6, 64, 8], max_ratio=0.9, round_to=8)
    assert [a.tolist() for a in grid.allowed] == [[8, 16, 20], [6], list(range(8, 65, 8)), [8]]
    assert grid.whole.tolist() == [False, True, False, True]  # a group smaller than N (or of N) stays whole
    assert grid.snap([[11, 5, 13, 3], [13, 6, 60, 8]]).tolist() == [[8, 6, 16, 8], [16, 6, 64, 8]]
    assert (grid.step(0, 16, 1), grid.step(0, 16, -1), grid.step(0, 8, -1), grid.step(0, 20, 1)) == (20, 8, None, None)
    assert ChannelGrid([32], max_ratio=0.5, round_to=8).floor.tolist() == [16]
    assert ChannelGrid([30], max_ratio=0.5, round_to=8).allowed[0].tolist() == [16, 24, 30]  # floor 15 -> 16
    assert ChannelGrid([10], max_ratio=0.9, round_to=1).allowed[0].tolist() == list(range(1, 11))
    for bad in (0, -8, 2.5, "8", True):
        with pytest.raises(RoundingError, match="round_to"):
            ChannelGrid([16], 0.9, bad)


@pytest.mark.parametrize("trial", range(40))
def test_rounding_never_breaks_the_budget(trial):
    """Property: over random networks, budgets, roundings and (adversarial) actions, the projection and
    every episode of the layer-wise agent keep counts on the grid and land within the FLOPs tolerance,
    or the budget is refused up front with a BudgetError naming round_to; never a result off budget."""
    rng = np.random.default_rng(trial)
    n = int(rng.choice([2, 4, 8, 16]))
    cost = ChainCost(rng.integers(8, 129, rng.integers(3, 14)), rng)
    max_ratio, tolerance = rng.uniform(0.5, 0.95), rng.uniform(0.01, 0.03)
    grid = ChannelGrid(cost.group_sizes, max_ratio, n)
    target = rng.uniform(cost.flops_ratio(grid.floor) + tolerance, 1.0)
    try:
        flops_budget = budget.FlopsBudget(cost, None, target, max_ratio, tolerance, round_to=n)
    except budget.BudgetError as exc:
        assert f"round_to={n}" in str(exc) and "Lower JointPruner.round_to" in str(exc)
        return
    for ratios in rng.uniform(0, max_ratio, (8, len(cost.group_sizes))):
        kept, achieved = flops_budget.project(ratios)
        assert _on_grid(kept, cost.group_sizes, n) and abs(achieved - target) <= tolerance
    space = EpisodeSpace(cost, target, tolerance, max_ratio, round_to=n)
    for act in (lambda t, f: rng.uniform(0, 1, len(f)), lambda t, f: np.zeros(len(f)), lambda t, f: np.ones(len(f))):
        kept = np.tile(space.sizes, (16, 1))
        for t in range(space.num_steps):
            fewest, most = space.bounds(kept, t)
            assert _on_grid(fewest, space.sizes[t], n) and _on_grid(most, space.sizes[t], n)
            assert np.all(grid.floor[t] <= fewest) and np.all(fewest <= most) and np.all(most <= space.sizes[t])
            kept[:, t] = rng.choice(grid.allowed[t], 16)
            kept[:, t] = np.clip(kept[:, t], fewest, most)
        episodes = space.rollout(act, 16)
        assert _on_grid(episodes.kept, space.sizes, n)
        for ratios in episodes.ratios:
            landed, achieved = flops_budget.land(ratios)  # a granularity gap is repaired on the grid
            assert _on_grid(landed, cost.group_sizes, n) and abs(achieved - target) <= tolerance + 1e-9


def test_most_random_budgets_stay_reachable_with_rounding_to_8():
    """The property test above is not vacuous: realistic layer widths (16-128, several groups) keep the
    budget reachable at round_to=8 nearly always."""
    refused = 0
    for trial in range(30):
        rng = np.random.default_rng(100 + trial)
        cost = ChainCost(rng.choice([16, 32, 64, 96, 128], rng.integers(6, 14)), rng)
        target = rng.uniform(0.3, 0.8)
        try:
            budget.FlopsBudget(cost, None, target, 0.9, 0.02, round_to=8)
        except budget.BudgetError:
            refused += 1
    assert refused <= 3


def test_round_masks_keeps_chosen_channels_first():
    importance = {"a": np.arange(20, dtype=float), "b": np.ones(6)}
    masks = {"a": np.zeros(20, bool), "b": np.ones(6, bool)}
    masks["a"][[0, 1, 2, 3, 4, 5, 6, 19, 18, 17, 16, 15]] = True  # 12 kept, some of low importance
    rounded = round_masks(masks, 8, importance)
    assert rounded["a"].sum() == 16 and np.all(rounded["a"][masks["a"]])  # rounded up: every kept one stays
    assert rounded["b"].sum() == 6  # a group smaller than 8 stays whole
    masks["a"][:] = False
    masks["a"][[0, 1, 2, 19, 18, 17, 16, 15, 14, 13, 12]] = True  # 11 kept -> 8: the least important go
    down = round_masks(masks, 8, importance)
    assert np.flatnonzero(down["a"]).tolist() == [12, 13, 14, 15, 16, 17, 18, 19]


@pytest.mark.parametrize("name, shape, width",
                         [("resnet20", (16, 16, 3), 1.0), ("mobilenetv2_cifar", (32, 32, 3), 0.5)])
def test_rounded_masks_compact_equals_masked_and_cost_model(name, shape, width):
    """masked == compact and the cost model's count hold for rounded sub-networks of zoo models."""
    from tfprune.structure import masks as mask_lib
    from tfprune.cost.flops import CostModel
    from tfprune.structure.graph import ChannelGraph
    from tfprune.models import build_model
    from tfprune.structure.surgery import compact_model

    model = build_model(name, num_classes=10, input_shape=shape, width_multiplier=width)
    graph = ChannelGraph(model, warn=False)
    cost = CostModel(model, graph)
    flops_budget = budget.FlopsBudget(cost, graph, 0.5, round_to=8)
    ratios = np.random.default_rng(0).uniform(0, 0.8, len(cost.group_names))
    masks, achieved = flops_budget.masks(ratios)
    kept = np.array([masks[g].sum() for g in cost.group_names])
    assert _on_grid(kept, cost.group_sizes, 8) and abs(achieved - 0.5) <= 0.02
    mask_lib.apply_masks(model, masks)
    compact = compact_model(model, masks, graph=graph)
    x = np.random.default_rng(1).normal(size=(2,) + shape).astype("float32")
    np.testing.assert_allclose(compact(x, training=False), model(x, training=False), atol=1e-4)
    assert CostModel(compact).full == cost.cost(masks)


@pytest.mark.slow
def test_joint_pruner_rounds_episodes_and_refuses_an_unreachable_rounded_budget():
    from tfprune.models import build_model
    from tfprune.pruning.pruner import JointPruner

    rng = np.random.default_rng(0)
    held_out = (rng.normal(size=(64, 8, 8, 3)).astype(np.float32), rng.integers(0, 4, 64))
    kwargs = dict(target_flops_ratio=0.5, max_epochs=3, num_samples=6, dynamics_steps=2, episode_images=16,
                  finalists=2, seed=0)
    pruner = JointPruner(build_model("resnet8", input_shape=(8, 8, 3), num_classes=4), held_out, round_to=8,
                         **kwargs)
    pruner.agent_step(0)
    sizes = pruner.cost_model.group_sizes
    assert _on_grid(pruner.policy._episodes.kept, sizes, 8)
    selected = pruner.select()
    assert _on_grid([selected.masks[g].sum() for g in pruner.group_names], sizes, 8)
    assert abs(selected.flops_ratio - 0.5) <= 0.02
    half_width = build_model("resnet8", input_shape=(8, 8, 3), num_classes=4, width_multiplier=0.5)  # 8-32 channels
    with pytest.raises(budget.BudgetError, match="round_to=16"):
        JointPruner(half_width, held_out, round_to=16, **kwargs)


def test_min_channels_raises_every_groups_floor_and_a_smaller_group_stays_whole(clean_gin):
    import gin

    assert ChannelGrid([16, 32, 96, 4], 0.95).floor.tolist() == [1, 2, 5, 1]
    grid = ChannelGrid([16, 32, 96, 4], 0.95, min_channels=8)
    assert grid.floor.tolist() == [8, 8, 8, 4] and grid.whole.tolist() == [False, False, False, True]
    assert ChannelGrid([30], 0.5, round_to=8, min_channels=20).allowed[0].tolist() == [24, 30]
    for bad in (0, 2.5, True, "8"):
        with pytest.raises(RoundingError, match="min_channels"):
            ChannelGrid([16], 0.9, min_channels=bad)
    gin.parse_config("ChannelGrid.min_channels = 8")  # the binding reaches every grid: budget and episodes
    rng = np.random.default_rng(0)
    cost = ChainCost([16, 32, 64, 128], rng)
    flops_budget = budget.FlopsBudget(cost, None, 0.3, 0.95, 0.02)
    space = EpisodeSpace(cost, 0.3, 0.02, 0.95)
    assert flops_budget.grid.floor.tolist() == space.grid.floor.tolist() == [8, 8, 8, 8]
    for ratios in rng.uniform(0, 0.95, (8, 4)):
        kept, achieved = flops_budget.project(ratios)
        assert np.all(kept >= 8) and abs(achieved - 0.3) <= 0.02
    episodes = space.rollout(lambda t, f: np.ones(len(f)), 8)  # the most pruning every step allows
    assert np.all(episodes.kept >= 8)
    with pytest.raises(budget.BudgetError, match="min_channels=8"):
        budget.FlopsBudget(cost, None, 0.01, 0.95, 0.005)
