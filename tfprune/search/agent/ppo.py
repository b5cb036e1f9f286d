"""The pruning agent: TF-Agents PPO (clipped objective) on single-step episodes.

Each episode is one step (a contextual bandit): the observation is a float vector (the dynamics
model's representation of the current epoch, possibly concatenated with static layer features), the
action a vector of per-group pruning ratios in `[0, max_ratio]`, the reward the accuracy of the
sub-network the caller builds from it. The caller owns the reward: `propose()` samples actions,
the caller evaluates them, `update()` trains PPO on (observation, actions, rewards).

The agent's networks are TF-Agents networks, i.e. `tf.keras` = tf_keras (Keras 2) objects. Only plain
numpy arrays cross this module's boundary, never Keras objects.

Trajectories are built directly: every sample becomes a `[2]`-step trajectory, a FIRST->LAST
transition carrying the reward, then the LAST->FIRST boundary that PPO masks out. The old policy's
distribution parameters (needed for the clipped importance ratio) are recomputed at `update()` time
from the current policy, which is exactly the policy that proposed the actions when, as intended,
`update()` follows the `propose()` that produced them.
"""

import contextlib
import random
from typing import NamedTuple

import gin
import numpy as np
import tensorflow as tf
from tf_agents.agents.ppo import ppo_clip_agent
from tf_agents.networks import actor_distribution_network, normal_projection_network, value_network
from tf_agents.specs import tensor_spec
from tf_agents.trajectories import time_step as ts
from tf_agents.trajectories import trajectory

REWARD_NORMALIZATIONS = ("batch", "running", "none")


def _inverse_softplus(x):
    return float(np.log(np.expm1(x)))


# ----------------------------------------------------------------------------------------------------
# Building the TF-Agents networks and agent
# ----------------------------------------------------------------------------------------------------


class PPONetworks(NamedTuple):
    """Everything `build_ppo` creates: the specs, the two networks, the optimizer, the step counter
    and the PPO agent that ties them together (the agent keeps references to all of them)."""

    observation_spec: tensor_spec.TensorSpec
    action_spec: tensor_spec.BoundedTensorSpec
    time_step_spec: ts.TimeStep
    actor_net: actor_distribution_network.ActorDistributionNetwork
    value_net: value_network.ValueNetwork
    optimizer: tf.keras.optimizers.Optimizer
    train_step: tf.Variable
    agent: ppo_clip_agent.PPOClipAgent


@contextlib.contextmanager
def _seeded(seed):
    """Makes network initialisation reproducible without touching the caller's Python `random`.

    tf_keras draws the seeds of unseeded initialisers from Python's `random` and TF's global seed:
    both are set while the networks are built, then Python's state is given back (TF's global seed
    stays set). `seed=None` leaves both alone.
    """
    python_random_state = random.getstate()
    if seed is not None:
        random.seed(seed)
        tf.random.set_seed(seed)
    try:
        yield
    finally:
        if seed is not None:
            random.setstate(python_random_state)


def _projection_net_factory(max_ratio, init_std):
    """The actor's Gaussian head: a learned state-independent std starting at `init_std * max_ratio`.

    The mean is tanh-squashed into the action bounds; samples are not squashed (`propose()` clips
    them), which keeps the PPO log-probabilities those of a plain Gaussian.
    """
    std_bias = _inverse_softplus(init_std * max_ratio)

    def projection_net(spec, seed=None, seed_stream_class=None):
        del seed_stream_class
        return normal_projection_network.NormalProjectionNetwork(
            spec,
            init_means_output_factor=0.1,
            std_bias_initializer_value=std_bias,
            scale_distribution=False,
            seed=seed,
        )

    return projection_net


def _zero_mean_head(actor_net):
    kernels = [v for v in actor_net.trainable_variables if "means_projection_layer/kernel" in v.name]
    if len(kernels) != 1:
        raise RuntimeError(f"expected one mean-head kernel in the actor, found {[v.name for v in kernels]}.")
    kernels[0].assign(tf.zeros_like(kernels[0]))


def build_ppo(observation_dim, num_groups, max_ratio, *, actor_layers, value_layers, learning_rate, num_epochs,
              importance_ratio_clipping, entropy_regularization, init_std, reward_normalization,
              normalize_observations, seed, use_gae=False, lambda_value=0.95, start_centred=False):
    """Builds the TF-Agents PPO agent and creates every variable now -> `PPONetworks`.

    Creating all variables (networks, normalisers, optimizer slots) up front makes a checkpoint
    restore immediate rather than deferred. The creation order is fixed: with a seed it decides the
    initial weights. Episodes are undiscounted (`discount_factor=1`: the only reward is the last
    step's); the bandit uses plain advantages, the layer-wise agent GAE (`use_gae`, `lambda_value`).
    `start_centred` zeroes the mean head's kernel after creation, so that the first policy's mean is
    the centre of the action range for every observation (a random head would start every seed from
    a different, arbitrary structure). Both agents' settings are checked here, before anything is built.
    """
    if reward_normalization not in REWARD_NORMALIZATIONS:
        raise ValueError(
            f"reward_normalization must be one of {REWARD_NORMALIZATIONS}, got {reward_normalization!r}."
        )
    if not max_ratio > 0:
        raise ValueError(f"max_ratio must be > 0, got {max_ratio}.")
    with _seeded(seed):
        observation_spec = tensor_spec.TensorSpec([observation_dim], tf.float32, name="observation")
        action_spec = tensor_spec.BoundedTensorSpec(
            [num_groups], tf.float32, minimum=0.0, maximum=max_ratio, name="action"
        )
        time_step_spec = ts.time_step_spec(observation_spec)
        actor_net = actor_distribution_network.ActorDistributionNetwork(
            observation_spec,
            action_spec,
            fc_layer_params=tuple(actor_layers),
            continuous_projection_net=_projection_net_factory(max_ratio, init_std),
            seed=seed,
        )
        value_net = value_network.ValueNetwork(observation_spec, fc_layer_params=tuple(value_layers))
        optimizer = tf.keras.optimizers.Adam(learning_rate=learning_rate)
        train_step = tf.Variable(0, dtype=tf.int64, trainable=False, name="agent_train_step")
        agent = ppo_clip_agent.PPOClipAgent(
            time_step_spec,
            action_spec,
            optimizer=optimizer,
            actor_net=actor_net,
            value_net=value_net,
            importance_ratio_clipping=importance_ratio_clipping,
            entropy_regularization=entropy_regularization,
            num_epochs=num_epochs,
            discount_factor=1.0,
            use_gae=use_gae,
            lambda_value=lambda_value,
            normalize_rewards=reward_normalization == "running",
            normalize_observations=normalize_observations,
            train_step_counter=train_step,
        )
        agent.initialize()
        actor_net.create_variables(observation_spec)
        value_net.create_variables(observation_spec)
        if start_centred:
            _zero_mean_head(actor_net)
        optimizer.build(actor_net.trainable_variables + value_net.trainable_variables)
    return PPONetworks(observation_spec, action_spec, time_step_spec, actor_net, value_net, optimizer,
                       train_step, agent)


# ----------------------------------------------------------------------------------------------------
# Experience for single-step episodes
# ----------------------------------------------------------------------------------------------------


def single_step_trajectories(observations, actions, rewards, loc, scale):
    """N one-step episodes as a `[N, 2]` `Trajectory` PPO can train on.

    PPO expects sequences, so each sample becomes a FIRST->LAST transition carrying the reward, then
    the LAST->FIRST boundary step that PPO masks out. `loc`/`scale` are the behaviour policy's
    Gaussian parameters, which PPO needs for the clipped importance ratio.
    """
    n = actions.shape[0]

    def two(x):  # [N, ...] -> [N, 2, ...] (the step and its boundary)
        return np.stack([x, x], axis=1)

    first, last = int(ts.StepType.FIRST), int(ts.StepType.LAST)
    return trajectory.Trajectory(
        step_type=tf.constant(np.tile([[first, last]], (n, 1)), tf.int32),
        observation=tf.constant(two(observations)),
        action=tf.constant(two(actions)),
        policy_info={"dist_params": {"loc": tf.constant(two(loc)), "scale": tf.constant(two(scale))}},
        next_step_type=tf.constant(np.tile([[last, first]], (n, 1)), tf.int32),
        reward=tf.constant(np.stack([rewards, np.zeros_like(rewards)], axis=1)),
        discount=tf.constant(np.tile(np.array([[0.0, 1.0]], np.float32), (n, 1))),
    )


def normalize_batch_rewards(rewards, reward_normalization):
    """With "batch", standardises the rewards of one `update()` batch (a per-batch baseline that
    survives the reward scale drifting as the CNN trains); other modes leave them to PPO."""
    if reward_normalization == "batch":
        std = rewards.std()
        return (rewards - rewards.mean()) / (std if std > 1e-8 else 1.0)
    return rewards


def _compile_distribution(agent, observation_dim):
    """A traced function observations [N, D] -> the collect policy's (loc, scale), each [N, A].

    These are the parameters PPO stores as the behaviour policy ("dist_params"); sampling from them
    happens in numpy so that `propose()` draws from the agent's own seeded generator.
    """

    def distribution_params(observations):
        n = tf.shape(observations)[0]
        time_step = ts.TimeStep(
            step_type=tf.fill([n], tf.constant(int(ts.StepType.FIRST), tf.int32)),
            reward=tf.zeros([n], tf.float32),
            discount=tf.ones([n], tf.float32),
            observation=observations,
        )
        params = agent.collect_policy.distribution(time_step).info["dist_params"]
        return params["loc"], params["scale"]

    return tf.function(distribution_params, input_signature=[tf.TensorSpec([None, observation_dim], tf.float32)],
                       autograph=False)


def _compile_train(agent):
    """`agent.train` traced once for any batch size and episode length ([batch, time] experience) -> loss.

    TFAgent.train runs eagerly in TF2 unless wrapped, which is ~200x slower per update here.
    """
    experience_spec = tf.nest.map_structure(
        lambda spec: tf.TensorSpec([None, None] + spec.shape.as_list(), spec.dtype),
        agent.collect_data_spec,
    )
    return tf.function(lambda experience: agent.train(experience).loss,
                       input_signature=[experience_spec], autograph=False)


def _as_observations(observation, observation_dim, n=None):
    """One observation (shared by all `n` samples) or `[n, observation_dim]` -> contiguous float32 [n, D]."""
    obs = np.asarray(observation, dtype=np.float32)
    if obs.ndim == 1:
        obs = np.broadcast_to(obs, (1 if n is None else n, obs.shape[0]))
    if obs.ndim != 2 or obs.shape[1] != observation_dim:
        raise ValueError(f"observation must be [{observation_dim}] or [N, {observation_dim}], got {obs.shape}.")
    if n is not None and obs.shape[0] != n:
        raise ValueError(f"expected {n} observations, got {obs.shape[0]}.")
    return np.ascontiguousarray(obs)


# ----------------------------------------------------------------------------------------------------
# The agent
# ----------------------------------------------------------------------------------------------------


@gin.configurable
class PruningAgent:
    """PPO agent proposing per-group pruning ratios.

    Args:
        observation_dim: length of the observation vector.
        num_groups: number of prunable groups (= action length).
        max_ratio: upper bound of every pruning ratio (the lower bound is 0).
        actor_layers / value_layers: hidden layer sizes of the actor / value MLPs.
        learning_rate: Adam learning rate (shared by actor and value networks).
        num_epochs: PPO optimisation passes over each batch given to `update()`.
        importance_ratio_clipping: PPO clip epsilon.
        entropy_regularization: entropy bonus coefficient.
        init_std: initial standard deviation of the Gaussian policy, as a fraction of the action
            range `max_ratio` (state-independent, learned).
        reward_normalization: "batch" standardises the rewards of each `update()` batch (a
            per-batch baseline, the robust choice for a bandit whose reward scale drifts as the
            CNN trains); "running" uses PPO's running reward normaliser; "none" uses raw rewards.
        normalize_observations: PPO's running observation normaliser.
        seed: seeds the network initialisation (Python's `random`, restored afterwards, and
            `tf.random.set_seed`, i.e. TF's global seed, which stays set) and the sampling of `propose()` (a private numpy generator).

    The TF-Agents objects `build_ppo` creates are attributes: `agent`, `actor_net`, `value_net`,
    `optimizer`, `train_step` and the specs.
    """

    def __init__(
        self,
        observation_dim,
        num_groups,
        max_ratio=0.7,
        actor_layers=(64, 64),
        value_layers=(64, 64),
        learning_rate=3e-3,
        num_epochs=10,
        importance_ratio_clipping=0.2,
        entropy_regularization=0.0,
        init_std=0.25,
        reward_normalization="batch",
        normalize_observations=True,
        seed=None,
    ):
        self.observation_dim = int(observation_dim)
        self.num_groups = int(num_groups)
        self.max_ratio = float(max_ratio)
        self.reward_normalization = reward_normalization
        self.seed = seed
        self._rng = np.random.default_rng(seed)
        (self.observation_spec, self.action_spec, self.time_step_spec, self.actor_net, self.value_net,
         self.optimizer, self.train_step, self.agent) = build_ppo(
            self.observation_dim, self.num_groups, self.max_ratio, actor_layers=actor_layers,
            value_layers=value_layers, learning_rate=learning_rate, num_epochs=num_epochs,
            importance_ratio_clipping=importance_ratio_clipping, entropy_regularization=entropy_regularization,
            init_std=init_std, reward_normalization=reward_normalization,
            normalize_observations=normalize_observations, seed=seed,
        )
        self._distribution_fn = _compile_distribution(self.agent, self.observation_dim)
        self._train_fn = _compile_train(self.agent)

    def _params(self, observations):
        loc, scale = self._distribution_fn(tf.constant(observations))
        return loc.numpy(), scale.numpy()

    def propose(self, observation, num_samples=1):
        """Samples `num_samples` actions (collect policy) -> float32 [num_samples, num_groups] in bounds.

        `observation` is one vector [observation_dim] (shared by all samples) or [num_samples, observation_dim].
        """
        obs = _as_observations(observation, self.observation_dim, num_samples)
        loc, scale = self._params(obs)
        actions = loc + scale * self._rng.standard_normal(loc.shape).astype(np.float32)
        return np.clip(actions, 0.0, self.max_ratio).astype(np.float32)

    def greedy(self, observation):
        """The mean action for one observation -> float32 [num_groups] in bounds."""
        loc, _ = self._params(_as_observations(observation, self.observation_dim))
        return np.clip(loc[0], 0.0, self.max_ratio).astype(np.float32)

    def policy_std(self, observation):
        """The current Gaussian standard deviation per group (diagnostics)."""
        _, scale = self._params(_as_observations(observation, self.observation_dim))
        return scale[0]

    def update(self, observation, actions, rewards):
        """One PPO training call on single-step episodes -> total loss (float).

        Args:
            observation: [observation_dim] shared by all samples, or [N, observation_dim].
            actions: [N, num_groups] actions (as returned by `propose`; clipped to the bounds here).
            rewards: [N] rewards (e.g. accuracies in [0, 1]).
        """
        actions = np.clip(np.asarray(actions, dtype=np.float32), 0.0, self.max_ratio)
        if actions.ndim != 2 or actions.shape[1] != self.num_groups:
            raise ValueError(f"actions must be [N, {self.num_groups}], got {actions.shape}.")
        n = actions.shape[0]
        rewards = np.asarray(rewards, dtype=np.float32).reshape(-1)
        if rewards.shape[0] != n:
            raise ValueError(f"got {n} actions but {rewards.shape[0]} rewards.")
        if n < 2:
            raise ValueError("update() needs at least 2 samples.")
        obs = _as_observations(observation, self.observation_dim, n)
        # The current policy is the one that proposed `actions` when update() follows its propose().
        loc, scale = self._params(obs)
        rewards = normalize_batch_rewards(rewards, self.reward_normalization)
        experience = single_step_trajectories(obs, actions, rewards, loc, scale)
        return float(self._train_fn(experience).numpy())

    @property
    def checkpoint_items(self):
        """Trackables to put in a `tf.train.Checkpoint` (networks, optimizer, normalisers, step)."""
        return {
            "ppo_agent": self.agent,
            "actor_net": self.actor_net,
            "value_net": self.value_net,
            "agent_optimizer": self.optimizer,
            "agent_train_step": self.train_step,
        }

    def get_state(self):
        """Non-TF state (the sampling generator), as a JSON-able dict."""
        return {"rng": self._rng.bit_generator.state}

    def set_state(self, state):
        self._rng.bit_generator.state = state["rng"]
