"""Policies: who decides the per-group pruning ratios, behind one interface.

Every policy answers three calls of the agent step (`tfprune.pruning.pruner.JointPruner.agent_step`):
  - `propose(epoch, n)`: the pruning ratios of the sub-networks to score this epoch, [k, num_groups];
  - `learn(epoch, actions, rewards, which)`: learn from the held-out accuracies of the proposals
    `which` (indices; the others' rewards were not finite), return the losses;
  - `select(epoch)`: the ratios of the final sub-network.
`EpisodicPolicy` is the method (the layer-wise PPO agent + dynamics model), `BanditPolicy` the earlier
one-step agent (both `AgentPolicy`); `FixedPolicy` the hand-made baselines that
keep the rest of the schedule identical, so that comparisons isolate the agent; `GlobalMagnitudePolicy`
the global-threshold baseline (one importance threshold over every group). `StepStats` is the one
record of an agent step, whatever the policy. `Policy` is the interface they share: a user's own
policy derives from it and is passed as ``JointPruner(policy=...)`` (`resolve_policy`).
"""

import abc
import dataclasses

import gin
import numpy as np

from tfprune.cost.budget import global_magnitude_ratios
from tfprune.search.episode import FEATURES, EpisodeSpace, layer_facts
from tfprune.errors import TfpruneError

POLICIES = ("agent", "uniform", "random", "global_magnitude")
AGENT_MODES = ("episodic", "bandit")
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
    episodes: int = 0  # sub-networks scored (rewards the policy learned from)
    images_per_episode: int = 0  # held-out images behind each reward
    reward_std: float = _NAN  # spread of the rewards between sub-networks ...
    reward_standard_error: float = _NAN  # ... next to the binomial noise of one reward

    def as_dict(self):
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class PolicyContext:
    """What the pruner knows when it builds a policy (`Policy.from_context`): the model's `FlopsBudget`
    (which holds the graph, cost model and target) and the pruner's schedule and seed."""

    budget: object
    num_groups: int
    max_epochs: int
    max_ratio: float
    use_dynamics: bool = True
    dynamics_steps: int = 100
    seed: int = 0


class Policy(abc.ABC):
    """Who decides the per-group pruning ratios: the interface `JointPruner` drives (module docstring).

    Three class attributes tell the pruner how to treat the policy: ``stable_target`` (True: a sampling
    search, whose alignment target switches only by a margin, `tfprune.search.target`; False: the
    target follows today's masks), ``min_rewards`` (finite rewards `learn` needs) and ``lands_on_budget``
    (True: the ratios already keep the budget's target and are only landed, not projected).
    A policy with state beyond TF variables says so in `get_state`/`set_state` (JSON-able, in the
    pruner's state file) and `checkpoint_items` (trackables for the TF checkpoint); the defaults keep none.
    """

    stable_target = False
    min_rewards = 1
    lands_on_budget = False

    @classmethod
    def from_context(cls, context):
        """The policy built for a pruner (``JointPruner(policy=SomePolicy)``, or gin's
        ``JointPruner.policy = @SomePolicy``); its own options come from gin."""
        raise PolicyError(f"{cls.__name__} cannot be built from the pruner's settings: pass an instance.")

    @abc.abstractmethod
    def propose(self, epoch, num_samples):
        """Pruning ratios of the sub-networks to score this epoch, [k, num_groups]."""

    @abc.abstractmethod
    def learn(self, epoch, actions, rewards, which=None):
        """Learns from the rewards of the proposals ``which`` (indices); returns a dict of losses."""

    @abc.abstractmethod
    def select(self, epoch):
        """The ratios of the final sub-network, [num_groups]."""

    def checkpoint_items(self):
        return {}

    def get_state(self):
        return {}

    def set_state(self, state):
        pass


class AgentPolicy(Policy):
    """The method's common part: a learned policy beside the dynamics model, whose representation of
    the current epoch is part of the agent's state (zeros with `use_dynamics=False`, the ablation).

    The representation is computed once in `propose` and reused by `learn`: PPO's importance ratio
    needs the context the actions were sampled in, and the dynamics model changes in between.
    Subclasses (`BanditPolicy`, `EpisodicPolicy`) add the agent itself.
    """

    stable_target = True  # a sampling search: the alignment target switches only by a margin
    min_rewards = 2  # PPO standardises rewards within a batch
    lands_on_budget = False  # True: proposals already keep the FLOPs target (no projection)

    def __init__(self, num_groups, max_epochs, use_dynamics=True, dynamics_steps=100, seed=0):
        from tfprune.search.agent import DynamicsModel  # TF-Agents is slow to import: only when used

        self.num_groups = int(num_groups)
        self.dynamics = DynamicsModel(action_dim=num_groups, max_epochs=max(1, int(max_epochs)), seed=seed)
        self.use_dynamics = bool(use_dynamics)
        self.dynamics_steps = int(dynamics_steps)

    def observation(self, epoch):
        if not self.use_dynamics:
            return np.zeros(self.dynamics.hidden_dim, np.float32)
        return self.dynamics.representation(min(epoch, self.dynamics.max_epochs - 1))

    def learn_dynamics(self, epoch, actions, rewards):
        """Trains the dynamics model on the step's (ratios, rewards); its forecast error is measured
        before it sees them."""
        forecast_mse = float(np.mean((self.dynamics.predict(epoch, actions) - rewards) ** 2))
        self.dynamics.observe(epoch, actions, rewards)
        dynamics_loss = self.dynamics.train(self.dynamics_steps)
        return {"dynamics_loss": float(dynamics_loss), "dynamics_forecast_mse": forecast_mse,
                "dynamics_prediction_mse": float(np.mean((self.dynamics.predict(epoch, actions) - rewards) ** 2))}

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
            "actions": np.asarray(dyn["actions"], np.float32).reshape(-1, self.num_groups),
            "rewards": np.asarray(dyn["rewards"], np.float32),
            "rng": dyn["rng"],
        })
        self.agent.set_state(state["agent"])


@gin.configurable(allowlist=[])
class BanditPolicy(AgentPolicy):
    """`agent_mode="bandit"`, the earlier agent: PPO on one-step episodes whose action is the whole
    vector of per-group ratios, projected onto the budget afterwards (`tfprune.search.agent.PruningAgent`)."""

    agent_mode = "bandit"
    checkpoint_marker = "ppo_agent"  # a top-level name only this agent writes into a checkpoint

    def __init__(self, num_groups, max_epochs, max_ratio, use_dynamics=True, dynamics_steps=100, seed=0):
        from tfprune.search.agent import PruningAgent

        super().__init__(num_groups, max_epochs, use_dynamics, dynamics_steps, seed)
        self.agent = PruningAgent(observation_dim=self.dynamics.hidden_dim, num_groups=num_groups,
                                  max_ratio=max_ratio, seed=seed)
        self._observation = None  # representation the latest proposal was made in

    @classmethod
    def from_context(cls, context):
        return cls(context.num_groups, context.max_epochs, context.max_ratio, context.use_dynamics,
                   context.dynamics_steps, context.seed)

    def propose(self, epoch, num_samples):
        self._observation = self.observation(epoch)
        return self.agent.propose(self._observation, num_samples)

    def learn(self, epoch, actions, rewards, which=None):
        """Dynamics model first, then PPO (`which` is unused: the actions are the whole experience)."""
        losses = self.learn_dynamics(epoch, actions, rewards)
        return {**losses, "agent_loss": float(self.agent.update(self._observation, actions, rewards))}

    def select(self, epoch):
        return self.agent.greedy(self.observation(epoch))


@gin.configurable(allowlist=["center"])
class EpisodicPolicy(AgentPolicy):
    """`agent_mode="episodic"` (default), the paper's agent: one decision per group within an episode
    (`tfprune.search.episode.EpisodeSpace`), each step's state = group features + the epoch representation,
    every episode on the FLOPs budget by construction (`tfprune.search.agent.episodic.EpisodicAgent`).

    ``center`` (gin): the rule the actions are centred on (`EpisodeSpace(center=...)`), so that the agent
    learns where to deviate from it, starting from it: "uniform" (default), the uniform rule's ratios;
    or "global_magnitude", the ratios of one global importance threshold at the budget
    (`tfprune.cost.budget.global_magnitude_ratios`), re-derived from today's weights at every proposal and
    selection as `GlobalMagnitudePolicy` does. Why the second: on MobileNetV2 that rule beat both
    uniform and the uniform-centred agent (CHANGELOG.md, earlier studies), and an agent centred on it searches the
    neighbourhood of the strongest baseline instead of first having to find it.
    """

    lands_on_budget = True
    agent_mode = "episodic"
    checkpoint_marker = "episodic_agent"
    CENTERS = ("uniform", "global_magnitude")

    def __init__(self, budget, max_epochs, use_dynamics=True, dynamics_steps=100, seed=0, center="uniform"):
        from tfprune.search.agent.episodic import EpisodicAgent

        if center not in self.CENTERS:
            raise PolicyError(f"EpisodicPolicy.center must be one of {self.CENTERS}, got {center!r}.")
        self._rule = GlobalMagnitudePolicy(budget) if center == "global_magnitude" else None  # None: uniform
        self.space = EpisodeSpace(budget.cost_model, budget.target_ratio, budget.tolerance, budget.max_ratio,
                                  layer_facts(budget.graph),
                                  center=1.0 - budget.uniform_kept / budget.cost_model.group_sizes,
                                  round_to=budget.round_to)
        if center != "uniform" and self.space.recentre:
            raise PolicyError("EpisodeSpace.recentre centres every step on the uniform rule for what is left of the "
                              f"budget, which replaces EpisodicPolicy.center = {center!r}: set only one of them.")
        super().__init__(self.space.num_steps, max_epochs, use_dynamics, dynamics_steps, seed)
        self.agent = EpisodicAgent(observation_dim=len(FEATURES) + self.dynamics.hidden_dim,
                                   max_ratio=budget.max_ratio, seed=seed)
        self._episodes = None  # the latest proposal's episodes, which `learn` trains on
        self._observation = None  # representation the latest proposal was made in

    @classmethod
    def from_context(cls, context):
        return cls(context.budget, context.max_epochs, context.use_dynamics, context.dynamics_steps, context.seed)

    def _recentre_on_the_rule(self):
        """With center="global_magnitude", moves the actions' centre to that rule's ratios today."""
        if self._rule is not None:
            self.space.centre_on(self._rule.ratios())

    def propose(self, epoch, num_samples):
        self._observation = self.observation(epoch)
        self._recentre_on_the_rule()
        self._episodes = self.space.rollout(lambda t, state: self.agent.sample(state), num_samples,
                                            context=self._observation)
        return self._episodes.ratios

    def learn(self, epoch, actions, rewards, which=None):
        """Dynamics model on the episodes' ratio vectors, then PPO on the episodes `which` (default all)
        of the latest proposal, rewarded at their last step."""
        which = np.arange(len(self._episodes.actions)) if which is None else np.asarray(which)
        losses = self.learn_dynamics(epoch, actions, rewards)
        loss = self.agent.update(self._episodes.observations[which], self._episodes.actions[which], rewards)
        return {**losses, "agent_loss": float(loss)}

    def select(self, epoch):
        """The greedy episode: the policy's mean ratio at every step."""
        self._observation = self.observation(epoch)
        self._recentre_on_the_rule()
        return self.space.rollout(lambda t, state: self.agent.mean(state), 1, context=self._observation).ratios[0]


@gin.configurable
class FixedPolicy(Policy):
    """A hand-made rule: the same ratios every epoch (channels still re-chosen by today's importance).

    "uniform" prunes every group by the same ratio (the budget projection finds it); "random" draws one
    ratio per group once, from `seed`. With no search to stabilise, the alignment target simply
    follows today's masks.

    ``profile``: per-group ratio offsets, in the groups' order (`tfprune inspect`), that the budget
    projection shifts together onto the budget, e.g. ``[0, 0, 0.2, 0.2]`` prunes the last
    two groups 0.2 more than the first two. A hand-made structure, and the instrument for asking whether
    any structure beats uniform's at a budget (`docs/results.md`, the positive control).

    Args:
        kind: "uniform", "profile" (uniform shifted by a required ``profile``: the comparison's "profile"
            method, `JointPruner.policy = @FixedPolicy`) or "random": given by `JointPruner.policy`'s name,
            else this binding, else "uniform".
        num_groups / max_ratio: the model's group count / the largest ratio (given by the pruner).
        seed: seeds the "random" rule's ratios.
        profile: the per-group ratio offsets above ("uniform" and "profile"; None: all zero).
    """

    def __init__(self, kind, num_groups, max_ratio, seed=0, profile=None):
        if kind == "profile" and profile is None:
            raise PolicyError("FixedPolicy kind 'profile' is a hand-made structure and needs one: bind "
                              "FixedPolicy.profile to one ratio offset per group (the order `tfprune inspect` lists).")
        if kind in ("uniform", "profile"):
            self.ratios = _profile(profile, num_groups, max_ratio)
        elif kind == "random":
            self.ratios = np.random.default_rng(seed).uniform(0.0, max_ratio, num_groups)
        else:
            raise ValueError(f"FixedPolicy kind must be 'uniform', 'profile' or 'random', got {kind!r}.")

    @classmethod
    def from_context(cls, context, kind=None):
        """The rule ``kind``, else the one bound as ``FixedPolicy.kind`` in gin, else "uniform"."""
        options = {"kind": kind} if kind is not None else {} if _bound("FixedPolicy.kind") else {"kind": "uniform"}
        return cls(num_groups=context.num_groups, max_ratio=context.max_ratio, seed=context.seed, **options)

    def propose(self, epoch, num_samples):
        return self.ratios[None, :]

    def learn(self, epoch, actions, rewards, which=None):
        return {}

    def select(self, epoch):
        return self.ratios  # no state to save: the ratios are a pure function of the seed


def _profile(profile, num_groups, max_ratio):
    """``FixedPolicy.profile`` checked: one offset per group, each within [0, max_ratio]."""
    if profile is None:
        return np.zeros(num_groups)
    ratios = np.asarray(profile, dtype=np.float64).ravel()
    if len(ratios) != num_groups or not np.all((ratios >= 0) & (ratios <= max_ratio)):
        raise PolicyError(f"FixedPolicy.profile must hold {num_groups} ratios in [0, {max_ratio}] (one per group, "
                          f"in the order `tfprune inspect` lists them), got {list(profile)}.")
    return ratios


def _bound(binding):
    try:
        gin.query_parameter(binding)
    except ValueError:
        return False
    return True


def make_policy(kind, num_groups, max_epochs, max_ratio, use_dynamics=True, dynamics_steps=100, seed=0, budget=None,
                agent_mode="episodic"):
    """The policy named by `JointPruner.policy` (and, for "agent", `JointPruner.agent_mode`); the
    episodic agent and "global_magnitude" need the `FlopsBudget`."""
    context = PolicyContext(budget, int(num_groups), max_epochs, max_ratio, use_dynamics, dynamics_steps, seed)
    return resolve_policy(kind, context, agent_mode)


def resolve_policy(policy, context, agent_mode="episodic"):
    """The `Policy` a setting means: a `Policy` instance as it is; a `Policy` subclass built for the
    pruner (`Policy.from_context`); or one of `POLICIES` by name, "agent" being `EpisodicPolicy` or
    `BanditPolicy` by ``agent_mode`` (which only applies to that name)."""
    if isinstance(policy, Policy):
        return policy
    if isinstance(policy, type) and issubclass(policy, Policy):
        cls = policy
    elif isinstance(policy, str) and policy in POLICIES:
        if agent_mode not in AGENT_MODES:
            raise PolicyError(f"agent_mode must be one of {AGENT_MODES}, got {agent_mode!r}.")
        if policy in ("uniform", "random"):
            return FixedPolicy.from_context(context, kind=policy)
        agent = EpisodicPolicy if agent_mode == "episodic" else BanditPolicy
        cls = GlobalMagnitudePolicy if policy == "global_magnitude" else agent
    else:
        raise ValueError(f"policy must be one of {POLICIES} or a tfprune.search.policy.Policy, got {policy!r}.")
    if context.budget is None and cls in (EpisodicPolicy, GlobalMagnitudePolicy):
        name = policy if isinstance(policy, str) else cls.__name__
        raise PolicyError(f"policy {name!r} ({agent_mode}) works against the FLOPs budget: pass "
                          "make_policy(..., budget=FlopsBudget(...)).")
    return cls.from_context(context)


class PolicyError(TfpruneError, ValueError):
    """A policy was asked for without what it needs."""


def check_resumable(policy, checkpoint_path):
    """Refuses to resume a checkpoint written by the other agent (`agent_mode`), with the binding that
    resumes it: TensorFlow would only report dozens of unmatched variables, and the two agents' PPO
    networks cannot stand in for each other. Checkpoints without an agent (fixed rules) pass."""
    import tensorflow as tf

    try:
        names = {name.split("/")[0] for name, _ in tf.train.list_variables(checkpoint_path)}
    except Exception:  # noqa: BLE001  (an unreadable checkpoint: the restore reports it, and falls back)
        return
    written = [cls.agent_mode for cls in (BanditPolicy, EpisodicPolicy) if cls.checkpoint_marker in names]
    current = getattr(policy, "agent_mode", None)
    if written and current and written[0] != current:
        raise PolicyError(
            f"{checkpoint_path} was written by the {written[0]!r} agent and this run builds the {current!r} one: "
            f"resume it with --gin_bindings 'JointPruner.agent_mode = \"{written[0]}\"' (runs written before the "
            "layer-wise agent became the default are 'bandit' runs), or start a new --workdir.")


@gin.configurable(allowlist=[])
class GlobalMagnitudePolicy(Policy):
    """Global magnitude pruning: one threshold on mean-normalised channel importance across all groups
    (`tfprune.cost.budget.global_magnitude_ratios`), set so that the sub-network keeps the FLOPs target.

    Unlike the fixed rules, the ratios follow the weights: they are re-derived from today's importance
    (the budget's criterion) at every proposal and at the final selection. Nothing is learned and no
    state is kept, so, as for `FixedPolicy`, the alignment target follows today's masks.
    """

    def __init__(self, budget):
        self.budget = budget  # no state to save: the ratios are a function of the weights, which TF restores

    @classmethod
    def from_context(cls, context):
        return cls(context.budget)

    def ratios(self):
        return global_magnitude_ratios(self.budget.importance(), self.budget)

    def propose(self, epoch, num_samples):
        return self.ratios()[None, :]

    def learn(self, epoch, actions, rewards, which=None):
        return {}

    def select(self, epoch):
        return self.ratios()
