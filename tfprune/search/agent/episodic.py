"""The layer-wise agent: TF-Agents PPO over episodes of one decision per channel group (the paper's).

At step t of an episode the observation is group t's state (`tfprune.search.episode.FEATURES`: position,
channels, kernel, stride, FLOPs share, FLOPs kept so far and still to come, previous ratio, the
feasible ratio interval) concatenated with the dynamics model's representation *z* of the epoch; the
action is group t's pruning ratio (a 1-D Gaussian); the reward, the sub-network's held-out accuracy,
arrives at the last step. Generalised advantage estimation over the steps lets PPO credit individual
decisions, which a one-step bandit over the whole ratio vector cannot.

Only numpy crosses this module's boundary (the networks are tf_keras objects, as in `ppo.py`).
"""

import gin
import numpy as np
import tensorflow as tf
from tf_agents.trajectories import time_step as ts
from tf_agents.trajectories import trajectory

from tfprune.search.agent.ppo import _compile_distribution, _compile_train, build_ppo, normalize_batch_rewards


def episode_trajectories(observations, actions, rewards, loc, scale):
    """N episodes of T steps as a `[N, T + 1]` `Trajectory`: FIRST, MID..., the last decision (whose
    transition carries the reward and ends the episode), then the LAST->FIRST boundary PPO masks out.

    observations [N, T, D], actions / loc / scale [N, T], rewards [N].
    """
    n, steps = actions.shape
    first, mid, last = int(ts.StepType.FIRST), int(ts.StepType.MID), int(ts.StepType.LAST)
    step_type = np.full((n, steps + 1), mid, np.int32)
    step_type[:, 0], step_type[:, -1] = first, last
    next_step_type = np.full((n, steps + 1), mid, np.int32)
    next_step_type[:, -2], next_step_type[:, -1] = last, first
    reward = np.zeros((n, steps + 1), np.float32)
    reward[:, -2] = rewards
    discount = np.ones((n, steps + 1), np.float32)
    discount[:, -2] = 0.0

    def pad(x):  # one more (boundary) step, a copy of the last
        return np.concatenate([x, x[:, -1:]], axis=1).astype(np.float32)

    return trajectory.Trajectory(
        step_type=tf.constant(step_type), observation=tf.constant(pad(observations)),
        action=tf.constant(pad(actions)[..., None]),
        policy_info={"dist_params": {"loc": tf.constant(pad(loc)[..., None]),
                                     "scale": tf.constant(pad(scale)[..., None])}},
        next_step_type=tf.constant(next_step_type), reward=tf.constant(reward), discount=tf.constant(discount))


@gin.configurable
class EpisodicAgent:
    """PPO agent choosing one group's pruning ratio per step.

    Args:
        observation_dim: per-step state length (group features + representation).
        max_ratio: largest ratio the policy outputs (the episode clips further to the feasible range).
        actor_layers / value_layers / learning_rate / num_epochs / importance_ratio_clipping /
            entropy_regularization / reward_normalization / normalize_observations: as for
            `tfprune.search.agent.ppo.PruningAgent`.
        init_std: the exploration std at the start, as a fraction of max_ratio. 0.1: episodes are
            perturbations of the aligned target that stay informative (Fashion comparison: mean
            episode reward 0.6-0.7 against the greedy episode's 0.75-0.83; with 0.2 it was 0.35-0.40,
            most episodes far enough from the target to lose half their accuracy); held-out reward of
            the selection 0.803 vs 0.798 (CHANGELOG.md, earlier studies).
        lambda_value: GAE lambda (credit assignment across the steps of an episode).
        start_centred: the first policy's mean ratio is exactly max_ratio / 2 at every step, which the
            centred episode space maps to the uniform rule: every seed's search (and, under
            `target_rule="policy"`, its first alignment target) starts from uniform pruning. Without
            it the random mean head started seed 1 of the Fashion comparison at 7 of 32 channels in
            stage 3's residual group, where uniform keeps 13.
        seed: seeds the networks and the sampling.
    """

    def __init__(self, observation_dim, max_ratio=0.9, actor_layers=(64, 64), value_layers=(64, 64),
                 learning_rate=1e-3, num_epochs=4, importance_ratio_clipping=0.2, entropy_regularization=0.0,
                 init_std=0.1, reward_normalization="batch", normalize_observations=True, lambda_value=0.95,
                 start_centred=True, seed=None):
        self.observation_dim = int(observation_dim)
        self.max_ratio = float(max_ratio)
        self.reward_normalization = reward_normalization
        self._rng = np.random.default_rng(seed)
        (self.observation_spec, self.action_spec, self.time_step_spec, self.actor_net, self.value_net,
         self.optimizer, self.train_step, self.agent) = build_ppo(
            self.observation_dim, 1, self.max_ratio, actor_layers=actor_layers, value_layers=value_layers,
            learning_rate=learning_rate, num_epochs=num_epochs, importance_ratio_clipping=importance_ratio_clipping,
            entropy_regularization=entropy_regularization, init_std=init_std,
            reward_normalization=reward_normalization, normalize_observations=normalize_observations, seed=seed,
            use_gae=True, lambda_value=lambda_value, start_centred=start_centred)
        self._distribution_fn = _compile_distribution(self.agent, self.observation_dim)
        self._train_fn = _compile_train(self.agent)

    def _params(self, observations):
        """(loc, scale) [N] of the collect policy at observations [N, D]."""
        loc, scale = self._distribution_fn(tf.constant(np.asarray(observations, np.float32)))
        return loc.numpy()[:, 0], scale.numpy()[:, 0]

    def sample(self, observations):
        """One ratio per observation [N, D], drawn from the policy and clipped to [0, max_ratio]."""
        loc, scale = self._params(observations)
        return np.clip(loc + scale * self._rng.standard_normal(loc.shape), 0.0, self.max_ratio).astype(np.float32)

    def mean(self, observations):
        """The policy's mean ratio per observation (the greedy episode)."""
        return np.clip(self._params(observations)[0], 0.0, self.max_ratio).astype(np.float32)

    def update(self, observations, actions, rewards):
        """One PPO call on finished episodes -> total loss. observations [N, T, D], actions [N, T]
        (as sampled), rewards [N]. Must follow the rollouts it learns from (the behaviour policy's
        parameters are recomputed from the current policy)."""
        observations = np.asarray(observations, np.float32)
        n, steps, dim = observations.shape
        if dim != self.observation_dim or np.shape(actions) != (n, steps) or np.shape(rewards) != (n,):
            raise ValueError(f"update() needs observations [N, T, {self.observation_dim}], actions [N, T] and "
                             f"rewards [N]; got {observations.shape}, {np.shape(actions)}, {np.shape(rewards)}.")
        if n < 2:
            raise ValueError("update() needs at least 2 episodes.")
        loc, scale = self._params(observations.reshape(n * steps, dim))
        rewards = normalize_batch_rewards(np.asarray(rewards, np.float32), self.reward_normalization)
        experience = episode_trajectories(observations, np.asarray(actions, np.float32), rewards,
                                          loc.reshape(n, steps), scale.reshape(n, steps))
        return float(self._train_fn(experience).numpy())

    @property
    def checkpoint_items(self):
        """Trackables for a `tf.train.Checkpoint` (names distinct from the bandit's)."""
        return {"episodic_agent": self.agent, "episodic_actor_net": self.actor_net,
                "episodic_value_net": self.value_net, "episodic_optimizer": self.optimizer,
                "episodic_train_step": self.train_step}

    def get_state(self):
        return {"rng": self._rng.bit_generator.state}

    def set_state(self, state):
        self._rng.bit_generator.state = state["rng"]
