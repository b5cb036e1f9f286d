"""PruningAgent: PPO on a synthetic bandit moves the greedy action to the target; bounds; checkpoints; seeds."""

import numpy as np
import pytest
import tensorflow as tf

from tfprune.search.agent import PruningAgent

GROUPS, MAX_RATIO, OBS_DIM = 6, 0.7, 3
TARGET = np.array([0.1, 0.55, 0.2, 0.5, 0.6, 0.15], np.float32)
OBS = np.array([0.3, -0.2, 1.0], np.float32)


def _reward(actions):
    return (1.0 - ((actions - TARGET) ** 2).mean(axis=1)).astype(np.float32)


def _agent(seed=0, **kwargs):
    kwargs.setdefault("actor_layers", (32,))
    kwargs.setdefault("value_layers", (32,))
    kwargs.setdefault("num_epochs", 5)
    return PruningAgent(OBS_DIM, GROUPS, max_ratio=MAX_RATIO, seed=seed, **kwargs)


@pytest.fixture(scope="module")
def trained():
    agent = _agent(seed=0)
    start = agent.greedy(OBS)
    losses, proposals = [], []
    for _ in range(24):
        actions = agent.propose(OBS, 24)
        proposals.append(actions)
        losses.append(agent.update(OBS, actions, _reward(actions)))
    return agent, start, losses, np.concatenate(proposals)


@pytest.mark.slow
def test_ppo_moves_greedy_action_to_target(trained):
    agent, start, losses, _ = trained
    before = float(np.linalg.norm(start - TARGET))
    after = float(np.linalg.norm(agent.greedy(OBS) - TARGET))
    print(f"distance to target: before {before:.3f}, after {after:.3f}; std {agent.policy_std(OBS).mean():.3f}")
    assert all(np.isfinite(losses))
    assert after < 0.5 * before
    assert int(agent.train_step.numpy()) > 0


def test_actions_within_bounds(trained):
    agent, start, _, proposals = trained
    for a in (proposals, start[None], agent.greedy(OBS)[None], agent.propose(np.tile(OBS, (7, 1)), 7)):
        assert a.dtype == np.float32 and a.shape[-1] == GROUPS
        assert a.min() >= 0.0 and a.max() <= MAX_RATIO
    assert agent.propose(OBS, 5).shape == (5, GROUPS)


def test_bad_arguments():
    agent = _agent()
    with pytest.raises(ValueError):
        agent.propose(np.zeros(OBS_DIM + 1), 2)
    with pytest.raises(ValueError):
        agent.update(OBS, np.zeros((4, GROUPS)), np.zeros(3))
    with pytest.raises(ValueError):
        PruningAgent(OBS_DIM, GROUPS, reward_normalization="median")


@pytest.mark.slow
def test_checkpoint_round_trip(tmp_path):
    agent = _agent(seed=1)
    actions = agent.propose(OBS, 16)
    agent.update(OBS, actions, _reward(actions))
    ckpt = tf.train.Checkpoint(**agent.checkpoint_items)
    path = ckpt.save(str(tmp_path / "agent"))
    greedy, step = agent.greedy(OBS), int(agent.train_step.numpy())

    for _ in range(3):
        actions = agent.propose(OBS, 16)
        agent.update(OBS, actions, _reward(actions))
    assert not np.allclose(agent.greedy(OBS), greedy)

    ckpt.restore(path).assert_consumed()
    np.testing.assert_allclose(agent.greedy(OBS), greedy, rtol=1e-6, atol=1e-7)
    assert int(agent.train_step.numpy()) == step

    fresh = _agent(seed=7)
    tf.train.Checkpoint(**fresh.checkpoint_items).restore(path).assert_consumed()
    np.testing.assert_allclose(fresh.greedy(OBS), greedy, rtol=1e-6, atol=1e-7)


def test_same_seed_same_proposals():
    a, b, c = _agent(seed=5), _agent(seed=5), _agent(seed=6)
    first_a, first_b = a.propose(OBS, 8), b.propose(OBS, 8)
    np.testing.assert_array_equal(first_a, first_b)
    assert not np.allclose(first_a, c.propose(OBS, 8))


@pytest.mark.parametrize("mode", ["running", "none"])
def test_other_reward_normalizations_train(mode):
    agent = _agent(seed=3, reward_normalization=mode, num_epochs=1)
    observations = np.random.default_rng(0).normal(size=(12, OBS_DIM)).astype(np.float32)
    for _ in range(2):
        actions = agent.propose(observations, 12)
        assert np.isfinite(agent.update(observations, actions, _reward(actions)))


def test_build_ppo_seeds_without_consuming_python_random():
    import random

    from tfprune.search.agent.ppo import build_ppo

    kwargs = dict(actor_layers=(8,), value_layers=(8,), learning_rate=1e-3, num_epochs=1,
                  importance_ratio_clipping=0.2, entropy_regularization=0.0, init_std=0.25,
                  reward_normalization="batch", normalize_observations=True)
    random.seed(11)
    expected = random.random()
    random.seed(11)
    nets = build_ppo(OBS_DIM, GROUPS, MAX_RATIO, seed=4, **kwargs)
    assert random.random() == expected
    again = build_ppo(OBS_DIM, GROUPS, MAX_RATIO, seed=4, **kwargs)
    for a, b in zip(nets.actor_net.variables, again.actor_net.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert nets.optimizer.variables, "optimizer slots are created up front"


def test_single_step_trajectories_layout():
    from tf_agents.trajectories import time_step as ts

    from tfprune.search.agent.ppo import single_step_trajectories

    n = 3
    obs = np.arange(n * OBS_DIM, dtype=np.float32).reshape(n, OBS_DIM)
    actions = np.full((n, GROUPS), 0.5, np.float32)
    rewards = np.array([1.0, 2.0, 3.0], np.float32)
    loc, scale = actions * 0.5, np.ones_like(actions)
    traj = single_step_trajectories(obs, actions, rewards, loc, scale)
    first, last = int(ts.StepType.FIRST), int(ts.StepType.LAST)
    np.testing.assert_array_equal(traj.step_type.numpy(), [[first, last]] * n)
    np.testing.assert_array_equal(traj.next_step_type.numpy(), [[last, first]] * n)
    np.testing.assert_array_equal(traj.reward.numpy(), np.stack([rewards, np.zeros(n)], axis=1))
    np.testing.assert_array_equal(traj.discount.numpy(), [[0.0, 1.0]] * n)
    assert traj.observation.shape == (n, 2, OBS_DIM) and traj.action.shape == (n, 2, GROUPS)
    np.testing.assert_array_equal(traj.policy_info["dist_params"]["loc"].numpy()[:, 1], loc)


def test_normalize_batch_rewards():
    from tfprune.search.agent.ppo import normalize_batch_rewards

    rewards = np.array([0.2, 0.4, 0.9], np.float32)
    normed = normalize_batch_rewards(rewards, "batch")
    assert abs(normed.mean()) < 1e-6 and abs(normed.std() - 1.0) < 1e-5
    np.testing.assert_array_equal(normalize_batch_rewards(np.full(4, 0.5, np.float32), "batch"), np.zeros(4))
    for mode in ("running", "none"):
        assert normalize_batch_rewards(rewards, mode) is rewards
