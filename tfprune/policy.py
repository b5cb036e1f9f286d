"""Policies: who decides the per-group pruning ratios, behind one interface.

Every policy answers three calls of the agent step (`tfprune.pruner.JointPruner.agent_step`):
  - `propose(epoch, n)`: the pruning ratios of the sub-networks to score this epoch, [k, num_groups];
  - `learn(epoch, actions, rewards)`: learn from their held-out accuracies, return the losses;
  - `select(epoch)`: the ratios of the final sub-network.
`AgentPolicy` is the method (PPO agent + dynamics model); `FixedPolicy` the hand-made baselines that
keep the rest of the schedule identical, so that comparisons isolate the agent; `GlobalMagnitudePolicy`
the global-threshold baseline (one importance threshold over every group). `StepStats` is the one
record of an agent step, whatever the policy.
"""

import dataclasses

import numpy as np

from tfprune.budget import global_magnitude_ratios
from tfprune.errors import TfpruneError

POLICIES = ("agent", "uniform", "random", "global_magnitude")
_NAN = float("nan")


@dataclasses.dataclass
class StepStats:
    """What one agent step did (NaN where a policy has no such quantity, e.g. losses of a fixed rule)."""

    epoch: int
    reward_mean: float
    reward_max: float
    reward_min: float
    flops_ratio: float
    best_kept: dict
    mean_action: list
    target_reward: float = _NAN
    target_switched: bool = False
    dynamics_loss: float = _NAN
    dynamics_prediction_mse: float = _NAN
    dynamics_forecast_mse: float = _NAN
    agent_loss: float = _NAN

    def as_dict(self):
        return dataclasses.asdict(self)


class AgentPolicy:
    """The method: a PPO agent observing the dynamics model's representation of the current epoch.

    The observation is computed once in `propose` and reused by `learn`: PPO's importance ratio needs
    the context the actions were sampled in, and the dynamics model changes in between.
    """

    stable_target = True  # a sampling search: the alignment target switches only by a margin
    min_rewards = 2  # PPO standardises rewards within a batch

    def __init__(self, num_groups, max_epochs, max_ratio, use_dynamics=True, dynamics_steps=100, seed=0):
        from tfprune.agent import DynamicsModel, PruningAgent  # TF-Agents is slow to import: only when used

        self.dynamics = DynamicsModel(action_dim=num_groups, max_epochs=max(1, int(max_epochs)), seed=seed)
        self.agent = PruningAgent(observation_dim=self.dynamics.hidden_dim, num_groups=num_groups,
                                  max_ratio=max_ratio, seed=seed)
        self.use_dynamics = bool(use_dynamics)
        self.dynamics_steps = int(dynamics_steps)
        self._observation = None  # context of the latest proposal

    def observation(self, epoch):
        if not self.use_dynamics:
            return np.zeros(self.dynamics.hidden_dim, np.float32)
        return self.dynamics.representation(min(epoch, self.dynamics.max_epochs - 1))

    def propose(self, epoch, num_samples):
        self._observation = self.observation(epoch)
        return self.agent.propose(self._observation, num_samples)

    def learn(self, epoch, actions, rewards):
        """Dynamics model first (its forecast error is measured before it sees the rewards), then PPO."""
        forecast_mse = float(np.mean((self.dynamics.predict(epoch, actions) - rewards) ** 2))
        self.dynamics.observe(epoch, actions, rewards)
        dynamics_loss = self.dynamics.train(self.dynamics_steps)
        agent_loss = self.agent.update(self._observation, actions, rewards)
        return {"dynamics_loss": float(dynamics_loss), "dynamics_forecast_mse": forecast_mse,
                "dynamics_prediction_mse": float(np.mean((self.dynamics.predict(epoch, actions) - rewards) ** 2)),
                "agent_loss": float(agent_loss)}

    def select(self, epoch):
        return self.agent.greedy(self.observation(epoch))

    def checkpoint_items(self):
        return {**self.agent.checkpoint_items, **self.dynamics.checkpoint_items}

    def get_state(self):
        dyn = self.dynamics.get_state()
        return {"dynamics": {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in dyn.items()},
                "agent": self.agent.get_state()}

    def set_state(self, state):
        dyn = state["dynamics"]
        self.dynamics.set_state({
            "epochs": np.asarray(dyn["epochs"], np.int32),
            "actions": np.asarray(dyn["actions"], np.float32).reshape(-1, self.agent.num_groups),
            "rewards": np.asarray(dyn["rewards"], np.float32),
            "rng": dyn["rng"],
        })
        self.agent.set_state(state["agent"])


class FixedPolicy:
    """A hand-made rule: the same ratios every epoch (channels still re-chosen by today's importance).

    "uniform" prunes every group by the same ratio (the budget projection finds it); "random" draws one
    ratio per group once, from `seed`. With no search to stabilise, the alignment target simply
    follows today's masks.
    """

    stable_target = False
    min_rewards = 1

    def __init__(self, kind, num_groups, max_ratio, seed=0):
        if kind == "uniform":
            self.ratios = np.zeros(num_groups)
        elif kind == "random":
            self.ratios = np.random.default_rng(seed).uniform(0.0, max_ratio, num_groups)
        else:
            raise ValueError(f"FixedPolicy kind must be 'uniform' or 'random', got {kind!r}.")

    def propose(self, epoch, num_samples):
        return self.ratios[None, :]

    def learn(self, epoch, actions, rewards):
        return {}

    def select(self, epoch):
        return self.ratios

    def checkpoint_items(self):
        return {}

    def get_state(self):
        return {}

    def set_state(self, state):
        pass  # the ratios are a pure function of the seed


def make_policy(kind, num_groups, max_epochs, max_ratio, use_dynamics=True, dynamics_steps=100, seed=0, budget=None):
    """The policy named by `JointPruner.policy` ("global_magnitude" needs the `FlopsBudget`)."""
    if kind not in POLICIES:
        raise ValueError(f"policy must be one of {POLICIES}, got {kind!r}.")
    if kind == "agent":
        return AgentPolicy(num_groups, max_epochs, max_ratio, use_dynamics, dynamics_steps, seed)
    if kind == "global_magnitude":
        if budget is None:
            raise PolicyError("policy 'global_magnitude' ranks channels against the FLOPs budget: pass "
                              "make_policy(..., budget=FlopsBudget(...)).")
        return GlobalMagnitudePolicy(budget)
    return FixedPolicy(kind, num_groups, max_ratio, seed)


class PolicyError(TfpruneError, ValueError):
    """A policy was asked for without what it needs."""


class GlobalMagnitudePolicy:
    """Global magnitude pruning: one threshold on mean-normalised channel importance across all groups
    (`tfprune.budget.global_magnitude_ratios`), set so that the sub-network keeps the FLOPs target.

    Unlike the fixed rules, the ratios follow the weights: they are re-derived from today's importance
    (the budget's criterion) at every proposal and at the final selection. Nothing is learned and no
    state is kept, so, as for `FixedPolicy`, the alignment target follows today's masks.
    """

    stable_target = False
    min_rewards = 1

    def __init__(self, budget):
        self.budget = budget

    def ratios(self):
        return global_magnitude_ratios(self.budget.importance(), self.budget)

    def propose(self, epoch, num_samples):
        return self.ratios()[None, :]

    def learn(self, epoch, actions, rewards):
        return {}

    def select(self, epoch):
        return self.ratios()

    def checkpoint_items(self):
        return {}

    def get_state(self):
        return {}

    def set_state(self, state):
        pass  # the ratios are a function of the weights, which the checkpoint restores
