"""`JointPruner`: the agent-guided pruning of one gated Keras model, independent of how it is trained.

Each *agent step* (one per training epoch after warm-up):
  1. the policy proposes per-group pruning ratios (`tfprune.search.policy`: the PPO agent observing the
     dynamics model's representation of the epoch, or a fixed baseline rule);
  2. each is projected onto the FLOPs budget and turned into channel masks (the most important
     channels are kept: L1 norm of their producing kernels, or BatchNorm |gamma|, `importance`);
  3. each sub-network is scored on held-out training images (`tfprune.search.scoring`);
  4. the policy learns from the scores (dynamics model, then PPO);
  5. the alignment target is updated (`tfprune.search.target`): the policy's greedy sub-network ("policy"
     rule, default) or the best scored one if it clearly beats the incumbent ("best_episode").
This class composes those pieces; it serves `tools/train.py` (through `tfprune.training.trainer`) and users'
own `model.fit` pipelines (through `JointPruner.callback()`).
"""

import os

import gin
import numpy as np

from tfprune.structure import masks as mask_lib
from tfprune.pruning.alignment import AlignmentSchedule, GroupLassoAlignment
from tfprune.cost.budget import BudgetError, FlopsBudget
from tfprune.pruning.callback import PruningCallback
from tfprune.cost.flops import CostModel
from tfprune.structure.gate_scores import score_penalty
from tfprune.structure.graph import ChannelGraph
from tfprune.cost.budget import check_budget_cost
from tfprune.cost.latency import budget_cost
from tfprune.infra.distribute import Collective
from tfprune.search.policy import POLICIES, PolicyContext, StepStats, resolve_policy
from tfprune.search.scoring import SubnetScorer, score_step
from tfprune.structure.surgery import compact_model
from tfprune.search.target import AlignmentTarget, Selection, broadcast_selection

__all__ = ["JointPruner", "POLICIES", "Selection", "StepStats"]


@gin.configurable
class JointPruner:
    """Guides the pruning of a gated model with a policy (PPO agent + dynamics model) and alignment.

    Args:
        model: a gated functional Keras model (zoo model, or `tfprune.auto_gate(user_model)`).
        held_out: (images, labels) arrays or a `tf.data.Dataset` of batches, drawn from the training
            data and kept out of weight training: the reward is measured on it.
        target_flops_ratio: fraction of the full model's FLOPs the sub-network keeps (0.5 = 2x fewer).
        target_latency_ratio: with ``budget="latency"``, the fraction of the predicted latency kept.
        max_epochs / warmup_epochs: epochs with an agent step (sizes the dynamics model's epoch embeddings) /
            epochs of plain training before the first agent step.
        max_ratio / flops_tolerance: largest pruning ratio of any group / width of the band every
            sub-network lands in, [target - tolerance, target].
        num_samples: sub-networks (the episodic agent's episodes) scored per agent step.
        dynamics_steps / use_dynamics: the dynamics model's Adam steps per agent step / False: no epoch state.
        alignment_strength / alignment_ramp_epochs: final group-lasso strength (0: none) / epochs to reach it.
        reward_bn: "batch" (sub-network's batch statistics) or "moving" BN statistics (`tfprune.search.scoring`).
        policy / agent_mode: who proposes the ratios, a `tfprune.search.policy.Policy` subclass (built for this
            pruner; gin ``@EpisodicPolicy``) or instance, or a name: "agent" (the method, `agent_mode`
            "episodic" or the earlier one-step "bandit"), "uniform", "random", "global_magnitude".
        target_switch_margin / target_rule: when the alignment target changes, `tfprune.search.target`.
        reward_batch_size / seed: held-out images per forward pass when scoring / seeds agent and baselines.
        broadcast: the workers' `tfprune.infra.distribute.Collective` (`make_broadcast`): workers score shares
            of the sub-networks and take the chief's decisions; None = single worker (a local `Collective()`).
        importance / round_to: which channels a ratio keeps, a `tfprune.structure.importance.Importance`
            (``L1Importance()``) or its name ("l1", "bn_scale", "gate_score") / kept counts' multiple.
        budget: "flops", "latency" (at `target_latency_ratio`), or a `tfprune.cost.budget.BudgetCost` of this
            model's groups (its cost then kept at `target_flops_ratio`).
        episode_images / finalists: rewards are measured on a shared random subset of `episode_images` held-out
            images (new each step; None = all), the `finalists` best rescored on all (`score_step`).
    """

    def __init__(self, model, held_out, target_flops_ratio=0.5, max_epochs=100, warmup_epochs=0, max_ratio=0.9,
                 flops_tolerance=0.02, num_samples=128, dynamics_steps=100, use_dynamics=True, alignment_strength=1e-3,
                 alignment_ramp_epochs=5, reward_bn="batch", policy="agent", target_switch_margin=0.02,
                 reward_batch_size=256, seed=0, broadcast=None, importance="l1", agent_mode="episodic",
                 episode_images=32, finalists=4, target_rule="policy", round_to=1, budget="flops",
                 target_latency_ratio=None):
        self.model = model
        self.graph = _gated_graph(model)
        self.cost_model = CostModel(model, self.graph)
        self.group_names, self.broadcast = self.cost_model.group_names, _collective(broadcast)
        cost, target = _budget_cost(self.cost_model, budget, target_flops_ratio, target_latency_ratio, round_to,
                                    max_ratio, flops_tolerance, broadcast)
        self.budget = FlopsBudget(cost, self.graph, target, max_ratio, flops_tolerance, importance, round_to)
        self.scorer = SubnetScorer(model, self.graph, held_out, reward_bn, reward_batch_size)
        self.alignment = GroupLassoAlignment(self.graph)
        self.schedule = AlignmentSchedule(warmup_epochs, alignment_ramp_epochs, alignment_strength)
        self.alignment_target = AlignmentTarget(self.alignment, target_switch_margin, target_rule)
        self.max_epochs = max(1, int(max_epochs))
        context = PolicyContext(self.budget, len(self.group_names), self.max_epochs, max_ratio, use_dynamics,
                                dynamics_steps, seed)
        self.policy = resolve_policy(policy, context, agent_mode)
        self.num_samples, self.episode_images, self.finalists = int(num_samples), episode_images, int(finalists)
        self.seed = int(seed or 0)
        self.history = []  # StepStats.as_dict() of every agent step

    # --- what the trainer needs ---------------------------------------------------------------
    def cost(self, masks=None):
        """FLOPs and params (`tfprune.cost.flops.Cost`) of a sub-network; None = the full model."""
        return self.cost_model.cost(masks)

    @property
    def held_out_images(self):
        return self.scorer.images

    def penalty(self):
        """Alignment plus the gate scores' L1 (`tfprune.structure.gate_scores`): differentiable, distribution-safe."""
        return self.alignment.penalty() + score_penalty(self.model)

    def update_alignment(self, epoch):
        """Sets this epoch's alignment strength (0 before the policy has chosen anything)."""
        strength = 0.0
        if self.alignment_target.best is not None and self.schedule.max_strength > 0:
            strength = self.schedule.strength(epoch)
        self.alignment.strength.assign(strength)
        return strength

    def diagnostics(self):
        """Scalars worth logging after an agent step, beyond its `StepStats`."""
        return {"alignment/outside_mass": self.alignment.outside_mass()}

    # --- the agent step ------------------------------------------------------------------------
    def agent_step(self, epoch):
        """Proposes, scores and learns from sub-networks; returns the step's `StepStats`."""
        epoch = min(int(epoch), self.max_epochs - 1)
        actions = self.policy.propose(epoch, self.num_samples)
        importance = self.budget.importance()
        candidates = [self.budget.masks(a, importance, not self.policy.lands_on_budget) for a in actions]
        follow = self.alignment_target.follows(self.policy)  # then no finalists to rescore
        scores = score_step(self.scorer, [m for m, _ in candidates], self.alignment_target.to_rescore(self.policy),
                            self.episode_images, 0 if follow else self.finalists, seed=self.seed * 100003 + epoch,
                            broadcast=self.broadcast)
        which = _finite_only(epoch, scores.rewards, self.policy.min_rewards)
        losses = self.policy.learn(epoch, actions[which], scores.rewards[which], which)
        challenger = self._policy_choice(epoch) if follow else _best_finalist(epoch, candidates, scores)
        switched = self.alignment_target.offer(challenger, scores.incumbent)
        stats = _step_stats(epoch, actions[which], scores, which, self.alignment_target.best, switched, losses)
        self.history.append(stats.as_dict())
        return stats

    def select(self, epoch=None):
        """The final sub-network: the policy's choice, or the current target if it scores better today."""
        epoch = self.max_epochs - 1 if epoch is None else min(int(epoch), self.max_epochs - 1)
        choice = self._policy_choice(epoch)
        if self.policy.stable_target and self.alignment_target.best is not None:
            best = self.alignment_target.best
            rescored = Selection(best.masks, self.scorer.score(best.masks), best.flops_ratio, epoch)
            choice = max(choice, rescored, key=lambda s: s.reward)
        return broadcast_selection(choice, self.group_names, self.broadcast)

    def _policy_choice(self, epoch):
        """The policy's greedy sub-network today, scored on every held-out image."""
        masks, flops_ratio = self.budget.masks(self.policy.select(epoch), project=not self.policy.lands_on_budget)
        return Selection(masks, self.scorer.score(masks), float(flops_ratio), epoch)

    # --- results -------------------------------------------------------------------------------
    def compact_model(self, masks=None):
        """The physically pruned plain Keras model of a sub-network (default: `select()`'s); fine-tune
        it with `compile` + `fit` like any Keras model."""
        return compact_model(self.model, self.select().masks if masks is None else masks, graph=self.graph)

    def export(self, out_dir, model=None, masks=None, **export_kwargs):
        """SavedModel + TFLite export (`tfprune.deploy.export.export_all`) of `model` (e.g. the fine-tuned
        compact model), or of `compact_model(masks)`, whose masks then go beside it (`out_dir/masks.json`)."""
        from tfprune.deploy.export import export_all

        if model is None:
            masks = self.select().masks if masks is None else masks
            model = self.compact_model(masks)
            mask_lib.save_masks(masks, os.path.join(out_dir, mask_lib.EXPORTED_MASKS))
        return export_all(model, out_dir, **export_kwargs)

    # --- persistence ---------------------------------------------------------------------------
    def checkpoint_items(self):
        return {**self.policy.checkpoint_items(), **self.alignment.checkpoint_items()}

    def get_state(self):
        """Everything outside TF variables, as JSON-able data."""
        return {**self.policy.get_state(), "best": self.alignment_target.get_state(), "history": self.history}

    def set_state(self, state):
        self.policy.set_state(state)
        self.alignment_target.set_state(state["best"])
        self.history = list(state["history"])

    def callback(self, log_fn=print):
        """A `keras.callbacks.Callback` that runs the agent step at each epoch end of `model.fit`."""
        return PruningCallback(self, log_fn)


def _gated_graph(model):
    graph = ChannelGraph(model)
    if not graph.gated_groups:
        raise ValueError(f"Model {model.name!r} has no ChannelGate: build it from tfprune.models or gate it with "
                         "tfprune.auto_gate(model) first.")
    return graph


def _collective(broadcast):
    """The pruner's one kind of broadcast: a `Collective` (None: this worker alone, a local one)."""
    if broadcast is None:
        return Collective()
    if not isinstance(broadcast, Collective):
        raise TypeError(f"JointPruner.broadcast must be a tfprune.infra.distribute.Collective (make_broadcast) or "
                        f"None, got {type(broadcast).__name__}.")
    return broadcast


def _budget_cost(cost_model, budget, target_flops_ratio, target_latency_ratio, round_to, max_ratio, tolerance,
                 broadcast):
    """(the cost the budget projects onto, its target): by name (`tfprune.cost.latency.budget_cost`), or a
    user's `tfprune.cost.budget.BudgetCost` at ``target_flops_ratio`` of that cost. ``broadcast`` is the
    argument as given (None on one worker), as the latency calibration has always received it."""
    if isinstance(budget, str):
        return budget_cost(cost_model, budget, target_flops_ratio, target_latency_ratio, round_to, max_ratio,
                           tolerance, broadcast)
    if target_latency_ratio is not None:
        raise BudgetError("JointPruner.target_latency_ratio needs JointPruner.budget = 'latency'; with a cost "
                          "object the target is JointPruner.target_flops_ratio, the fraction of that cost kept.")
    return check_budget_cost(budget, cost_model.group_names), target_flops_ratio


def _finite_only(epoch, rewards, min_rewards):
    """Indices of the samples whose reward is finite: a NaN/inf reward must never reach the policy."""
    finite = np.flatnonzero(np.isfinite(rewards))
    if finite.size < min_rewards:
        raise FloatingPointError(f"Epoch {epoch}: sub-network rewards are not finite ({rewards}); weights diverged?")
    return finite


def _best_finalist(epoch, candidates, scores):
    """The `Selection` of the finalist with the best score on every held-out image."""
    finite = np.isfinite(scores.final)
    if not finite.any():
        raise FloatingPointError(f"Epoch {epoch}: no finalist has a finite score ({scores.final}); weights diverged?")
    best = int(np.argmax(np.where(finite, scores.final, -np.inf)))
    masks, flops_ratio = candidates[int(scores.finalists[best])]
    return Selection(masks, float(scores.final[best]), float(flops_ratio), epoch)


def _step_stats(epoch, actions, scores, which, target, switched, losses):
    rewards = scores.rewards[which]
    standard_error = float(np.mean(np.sqrt(np.clip(rewards * (1 - rewards), 0, None) / scores.images)))
    return StepStats(epoch=epoch, reward_mean=float(rewards.mean()), reward_max=float(rewards.max()),
                     reward_min=float(rewards.min()), flops_ratio=target.flops_ratio,
                     best_kept={n: int(m.sum()) for n, m in target.masks.items()},
                     mean_action=actions.mean(axis=0).tolist(), target_reward=target.reward,
                     target_switched=switched, episodes=int(rewards.size), images_per_episode=scores.images,
                     reward_std=float(rewards.std()), reward_standard_error=standard_error, **losses)
