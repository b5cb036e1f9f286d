"""PruningAgent: PPO on a synthetic bandit moves the greedy action to the target; bounds; checkpoints; seeds."""

import numpy as np
import pytest
import tensorflow as tf

from tfprune.agent import PruningAgent

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
