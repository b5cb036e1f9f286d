"""The layer-wise (episodic) agent: feasible per-step bounds, episodes on the budget, cheap scoring that
agrees with plain scoring, and a toy problem whose best structure is known."""

import numpy as np
import pytest

from cost_fixtures import ChainCost, no_step_fits
from tfprune.search.episode import FEATURES, EpisodeSpace


def _lowest_ratio(cost, max_ratio):
    floor = np.maximum(1, np.round(cost.group_sizes * (1 - max_ratio)))
    return float(cost.flops_ratio_batch(floor[None])[0])


@pytest.mark.parametrize("trial", range(40))
def test_bounds_always_leave_a_feasible_episode(trial):
    """Property: over random networks, budgets and (adversarial) actions, every episode ends within the
    FLOPs tolerance, and every step's interval is non-empty and inside [floor, size]."""
    rng = np.random.default_rng(trial)
    cost = ChainCost(rng.integers(16, 129, rng.integers(2, 12)), rng)
    max_ratio, tolerance = rng.uniform(0.5, 0.95), rng.uniform(0.01, 0.03)
    target = rng.uniform(_lowest_ratio(cost, max_ratio) + tolerance, 1.0)
    space = EpisodeSpace(cost, target, tolerance, max_ratio)
    policies = [lambda t, f: rng.uniform(0, 1, len(f)), lambda t, f: np.zeros(len(f)),
                lambda t, f: np.ones(len(f)), lambda t, f: np.full(len(f), float(t % 2))]
    for act in policies:
        kept = np.tile(space.sizes, (32, 1))
        for t in range(space.num_steps):
            fewest, most = space.bounds(kept, t)
            assert np.all(space.floor[t] <= fewest) and np.all(fewest <= most) and np.all(most <= space.sizes[t])
            kept[:, t] = rng.integers(fewest, most + 1)
        assert space.within_budget(cost.flops_ratio_batch(kept)).all()
        episodes = space.rollout(act, 32)
        assert space.within_budget(episodes.flops_ratio).all(), (target, tolerance, episodes.flops_ratio)
        under = episodes.flops_ratio <= target + 1e-12  # the slack is spent (`tfprune.cost.budget.fill_to_target`)
        assert no_step_fits(episodes.kept[under], cost, target, space.grid)
        assert episodes.observations.shape == (32, space.num_steps, len(FEATURES))
        np.testing.assert_allclose(episodes.ratios, 1 - episodes.kept / space.sizes)


@pytest.mark.parametrize("trial", range(20))
def test_episodes_that_keep_all_they_may_end_at_or_under_the_target(trial):
    """The bounds' ceiling is the target, not target + tolerance: a policy that always keeps the most
    (the one the reward pushes toward: accuracy rises with FLOPs) ends on the target, not above it."""
    rng = np.random.default_rng(100 + trial)
    cost = ChainCost(rng.integers(64, 257, rng.integers(3, 10)), rng)  # fine granularity: no gaps
    max_ratio, tolerance = 0.9, rng.uniform(0.01, 0.03)
    target = rng.uniform(_lowest_ratio(cost, max_ratio) + tolerance, 0.9)
    space = EpisodeSpace(cost, target, tolerance, max_ratio)
    episodes = space.rollout(lambda t, f: np.zeros(len(f)), 4)  # action 0: keep every channel
    assert (episodes.flops_ratio <= target + 1e-9).all(), (target, episodes.flops_ratio)
    one_more = episodes.kept.copy()
    one_more[:, -1] += 1  # ... and it kept all the target allows: one more channel would pass it
    assert (cost.flops_ratio_batch(one_more) > target).all() or (episodes.kept[:, -1] == space.sizes[-1]).all()


def test_batched_flops_equal_the_scalar_cost_model():
    from tfprune.cost.flops import CostModel
    from tfprune.models import build_model

    cost = CostModel(build_model("resnet20", input_shape=(16, 16, 3), num_classes=10, width_multiplier=0.5))
    kept = np.random.default_rng(0).integers(1, cost.group_sizes + 1, size=(50, len(cost.group_sizes)))
    np.testing.assert_allclose(cost.flops_ratio_batch(kept), [cost.flops_ratio(k) for k in kept], rtol=1e-12)


def _tiny_pruner(**kwargs):
    from tfprune.models import build_model
    from tfprune.pruning.pruner import JointPruner

    rng = np.random.default_rng(0)
    model = build_model("resnet8", input_shape=(8, 8, 3), num_classes=4, width_multiplier=0.5)
    held_out = (rng.normal(size=(96, 8, 8, 3)).astype(np.float32), rng.integers(0, 4, 96))
    defaults = dict(target_flops_ratio=0.4, max_epochs=4, num_samples=12, dynamics_steps=3, flops_tolerance=0.02,
                    episode_images=32, finalists=3, seed=0)
    return JointPruner(model, held_out, **{**defaults, **kwargs})


@pytest.mark.slow
def test_agent_step_episodes_land_on_the_budget_without_projection():
    pruner = _tiny_pruner()
    stats = pruner.agent_step(0)
    episodes = pruner.policy._episodes
    for ratios, kept in zip(episodes.ratios, episodes.kept):
        landed, achieved = pruner.budget.land(ratios)
        assert abs(achieved - 0.4) <= 0.02
        np.testing.assert_array_equal(landed, kept)  # taken as they are: no shift, no repair
    assert stats.episodes == 12 and stats.images_per_episode == 32
    assert np.isfinite(stats.agent_loss) and np.isfinite(stats.reward_standard_error)
    assert abs(pruner.select().flops_ratio - 0.4) <= 0.02


def test_cheap_scoring_agrees_with_scoring_each_mask_alone():
    """`score_step` on a shared subset gives exactly what `SubnetScorer.score` gives for that subset,
    and the finalists' final scores are their scores on every held-out image."""
    from tfprune.search.scoring import score_step

    pruner = _tiny_pruner()
    importance = pruner.budget.importance()
    rng = np.random.default_rng(1)
    candidates = [pruner.budget.masks(rng.uniform(0, 0.8, len(pruner.group_names)), importance)[0] for _ in range(6)]
    scores = score_step(pruner.scorer, candidates, candidates[0], episode_images=40, finalists=2, seed=7)
    subset = np.sort(np.random.default_rng(7).choice(96, 40, replace=False))
    np.testing.assert_allclose(scores.rewards, [pruner.scorer.score(m, subset) for m in candidates], atol=1e-6)
    np.testing.assert_allclose(scores.final, [pruner.scorer.score(candidates[i]) for i in scores.finalists], atol=1e-6)
    assert scores.rewards[scores.finalists].min() >= np.delete(scores.rewards, scores.finalists).max()
    assert scores.incumbent == pytest.approx(pruner.scorer.score(candidates[0]))
    everything = score_step(pruner.scorer, candidates, None, episode_images=None, finalists=2)
    np.testing.assert_allclose(everything.rewards, [pruner.scorer.score(m) for m in candidates], atol=1e-6)
    assert everything.images == 96 and everything.incumbent is None


class SeparableCost:
    def __init__(self, sizes):
        self.group_sizes = np.asarray(sizes)
        self.full = float(self.group_sizes.sum())

    def ratio_batch(self, kept):  # the budget's interface (CostModel.ratio_batch)
        return np.asarray(kept, float).sum(1) / self.full


@pytest.mark.slow
def test_episodic_agent_learns_to_prune_late_layers_and_uniform_does_not():
    """A reward that prefers pruning the later half of the network: the agent's greedy episode moves its
    pruning there within 25 PPO updates, while uniform pruning (the same ratio everywhere) scores 0."""
    from tfprune.search.agent.episodic import EpisodicAgent

    space = EpisodeSpace(SeparableCost([16] * 8), 0.5, 0.02, 0.9)
    agent = EpisodicAgent(len(FEATURES), max_ratio=0.9, seed=0)

    def reward(ratios):
        return ratios[:, 4:].mean(1) - ratios[:, :4].mean(1)

    for _ in range(25):
        episodes = space.rollout(lambda t, f: agent.sample(f), 64)
        agent.update(episodes.observations, episodes.actions, reward(episodes.ratios))
    greedy = space.rollout(lambda t, f: agent.mean(f), 1)
    uniform = np.full((1, 8), 0.5)
    assert space.within_budget(greedy.flops_ratio).all()
    assert reward(greedy.ratios)[0] > 0.5  # at most 1.0 (0.5 of the budget moved entirely to the late half)
    assert reward(uniform)[0] == 0.0


def test_centred_actions_start_from_the_uniform_rule():
    """With `center` = the uniform ratios, a policy at mid-range (a fresh policy's mean) rebuilds the
    uniform sub-network, which the bounds keep on the budget."""
    rng = np.random.default_rng(3)
    cost = ChainCost(rng.integers(16, 65, 6), rng)
    center = np.full(6, 0.6)
    space = EpisodeSpace(cost, float(cost.flops_ratio_batch(np.round(cost.group_sizes * 0.4)[None])[0]), 0.02, 0.9,
                         center=center)
    episodes = space.rollout(lambda t, f: np.full(len(f), 0.45), 2)
    np.testing.assert_array_equal(episodes.kept[0], np.round(cost.group_sizes * 0.4))
    assert space.within_budget(episodes.flops_ratio).all()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_fresh_agent_greedy_episode_is_the_uniform_rule(seed):
    """`EpisodicAgent(start_centred=True)`: the first mean is mid-range for any observation, so every
    seed's first greedy episode (the first alignment target under `target_rule="policy"`) is uniform."""
    pruner = _tiny_pruner(seed=seed)
    observations = np.random.default_rng(seed).normal(size=(7, pruner.policy.agent.observation_dim)) * 10
    np.testing.assert_allclose(pruner.policy.agent.mean(observations), pruner.policy.agent.max_ratio / 2, atol=1e-6)
    greedy, _ = pruner.budget.land(pruner.policy.select(0))
    np.testing.assert_array_equal(greedy, pruner.budget.uniform_kept)


def test_recentred_steps_spread_the_slack_over_the_groups_to_come():
    """`recentre=True`: when the first group keeps more than uniform, fixed centres make the last group
    pay for it alone (its bounds must land the budget); recentred, every later group gives up a share,
    and the episode still lands. A policy at mid-range still rebuilds the uniform sub-network."""
    rng = np.random.default_rng(4)
    cost = ChainCost(rng.integers(32, 65, 6), rng)
    target = float(cost.flops_ratio_batch(np.round(cost.group_sizes * 0.5)[None])[0])
    fixed = EpisodeSpace(cost, target, 0.01, 0.9, center=np.full(6, 0.5))
    recentred = EpisodeSpace(cost, target, 0.01, 0.9, center=np.full(6, 0.5), recentre=True)
    first_wide = lambda t, f: np.full(len(f), 0.45 - 0.4 * (t == 0))  # noqa: E731  (group 0 keeps 90%)
    uniform = np.round(cost.group_sizes * 0.5)
    fixed_kept, recentred_kept = fixed.rollout(first_wide, 1).kept[0], recentred.rollout(first_wide, 1).kept[0]
    assert np.abs(fixed_kept[1:5] - uniform[1:5]).max() <= 1  # the middle groups ignore the slack (rounding) ...
    assert fixed_kept[5] < uniform[5] * 0.8  # ... and the last group pays for it
    assert np.all(recentred_kept[1:] < uniform[1:])  # every later group pays a share
    assert recentred_kept[5] > fixed_kept[5]
    for space in (fixed, recentred):
        assert space.within_budget(space.rollout(first_wide, 1).flops_ratio).all()
    mid = recentred.rollout(lambda t, f: np.full(len(f), 0.45), 1).kept[0]
    assert np.abs(mid - uniform).max() <= 1
    np.testing.assert_allclose(recentred.rest_center(np.tile(uniform, (1, 1)), 3), 0.5, atol=0.02)


@pytest.mark.parametrize("trial", range(15))
def test_recentred_episodes_always_land(trial):
    """Property: recentring moves only the centres, never the bounds, so every episode still lands."""
    rng = np.random.default_rng(100 + trial)
    cost = ChainCost(rng.integers(16, 129, rng.integers(2, 12)), rng)
    max_ratio, tolerance = rng.uniform(0.5, 0.95), rng.uniform(0.01, 0.03)
    target = rng.uniform(_lowest_ratio(cost, max_ratio) + tolerance, 1.0)
    space = EpisodeSpace(cost, target, tolerance, max_ratio, center=rng.uniform(0, max_ratio, len(cost.group_sizes)),
                         recentre=True)
    for act in (lambda t, f: rng.uniform(0, 1, len(f)), lambda t, f: np.zeros(len(f)), lambda t, f: np.ones(len(f))):
        assert space.within_budget(space.rollout(act, 16).flops_ratio).all()


@pytest.mark.usefixtures("clean_gin")
def test_a_fresh_agent_centred_on_global_magnitude_starts_from_that_rule():
    """`EpisodicPolicy.center = "global_magnitude"`: the first greedy episode is the global-threshold
    rule's sub-network (to the channel, where the episode's bounds clip it), not the uniform one."""
    import gin

    from tfprune.cost.budget import global_magnitude_ratios
    from tfprune.structure.masks import kept_from_ratios

    gin.bind_parameter("EpisodicPolicy.center", "global_magnitude")
    pruner = _tiny_pruner()
    budget = pruner.budget
    rule = kept_from_ratios(global_magnitude_ratios(budget.importance(), budget), budget.cost_model.group_sizes)
    greedy, achieved = budget.land(pruner.policy.select(0))
    assert np.abs(greedy - rule).max() <= 1 and abs(achieved - 0.4) <= 0.02, (greedy, rule)
    assert np.abs(rule - budget.uniform_kept).max() >= 2  # the two rules differ here, so the test can fail


@pytest.mark.usefixtures("clean_gin")
def test_an_unknown_center_is_named_with_the_choices():
    import gin

    from tfprune.search.policy import PolicyError

    gin.bind_parameter("EpisodicPolicy.center", "magnitude")
    with pytest.raises(PolicyError, match="uniform.*global_magnitude"):
        _tiny_pruner()
