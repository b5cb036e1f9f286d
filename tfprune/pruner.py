"""`JointPruner`: the agent-guided pruning of one gated Keras model, independent of how it is trained.

Each *agent step* (one per training epoch after warm-up):
  1. the dynamics model's representation of the current epoch is the agent's observation;
  2. the PPO agent samples per-group pruning ratios; each is projected onto the FLOPs budget and turned
     into channel masks (the most important channels of each group are kept);
  3. the reward of each sub-network is its accuracy on a held-out batch of training data, evaluated
     with hard masks and batch-statistics BatchNorm (the sub-network's own statistics: moving averages
     were collected on the full network; they are restored afterwards);
  4. the dynamics model learns to reconstruct the observed rewards, and PPO is updated;
  5. the best sub-network of the epoch becomes the alignment target that the weights are pulled to.
The same object serves `tools/train.py` (through `tfprune.trainer`) and users' own `model.fit`
pipelines (through `JointPruner.callback()`).
"""

import dataclasses
import os

import gin
import keras
import numpy as np
import tensorflow as tf

from tfprune import budget, masks as mask_lib
from tfprune.agent import DynamicsModel, PruningAgent
from tfprune.alignment import GroupLassoAlignment, alignment_schedule
from tfprune.flops import CostModel
from tfprune.graph import ChannelGraph
from tfprune.surgery import compact_model


POLICIES = ("agent", "uniform", "random")


def count_correct(logits, labels):
    """Number of top-1 hits in a batch, as float32 (summed across batches and replicas)."""
    return tf.reduce_sum(tf.cast(tf.equal(tf.argmax(logits, -1, output_type=tf.int32), labels), tf.float32))


@dataclasses.dataclass
class Selection:
    """A sub-network and what it scored."""

    masks: dict
    reward: float
    flops_ratio: float
    epoch: int


@gin.configurable
class JointPruner:
    """Guides the pruning of a gated model with a PPO agent, a dynamics model and alignment.

    Args:
        model: a gated functional Keras model (zoo model, or `tfprune.auto_gate(user_model)`).
        held_out: (images, labels) numpy arrays or a `tf.data.Dataset` of batches, drawn from the
            training data and kept out of weight training: the reward is measured on it.
        target_flops_ratio: fraction of the full model's FLOPs the sub-network keeps (0.5 = 2x fewer).
        max_epochs: number of epochs with an agent step (sizes the dynamics model's epoch embeddings).
        warmup_epochs: epochs of plain training before the first agent step.
        max_ratio: largest pruning ratio of any group.
        flops_tolerance: allowed |achieved - target| FLOPs ratio.
        num_samples: sub-networks evaluated per agent step.
        dynamics_steps: Adam steps of the dynamics model per agent step.
        use_dynamics: False gives the agent no epoch representation (ablation).
        alignment_strength: final group-lasso strength (0 disables alignment).
        alignment_ramp_epochs: epochs over which the strength ramps up after warm-up.
        reward_bn: "batch" evaluates sub-networks with batch statistics (see module doc), "moving" with
            the full network's moving averages.
        policy: "agent" (the method); the baselines "uniform" (every group pruned by the same ratio)
            and "random" (one random ratio per group, drawn once) keep the rest of the schedule
            (budget projection, importance, alignment) identical, so comparisons isolate the agent.
        target_switch_margin: held-out accuracy by which an epoch's best sample must beat the current
            alignment target (rescored on the same weights) to replace it; keeps the target stable.
        reward_batch_size: held-out images per forward pass when scoring (BatchNorm batch statistics
            are those of each such batch).
        seed: seeds the agent, the dynamics model and the random baseline.
    """

    def __init__(
        self,
        model,
        held_out,
        target_flops_ratio=0.5,
        max_epochs=100,
        warmup_epochs=0,
        max_ratio=0.9,
        flops_tolerance=0.02,
        num_samples=16,
        dynamics_steps=100,
        use_dynamics=True,
        alignment_strength=1e-3,
        alignment_ramp_epochs=5,
        reward_bn="batch",
        policy="agent",
        target_switch_margin=0.02,
        reward_batch_size=256,
        seed=0,
    ):
        if reward_bn not in ("batch", "moving"):
            raise ValueError(f"reward_bn must be 'batch' or 'moving', got {reward_bn!r}.")
        if policy not in POLICIES:
            raise ValueError(f"policy must be one of {POLICIES}, got {policy!r}.")
        self.policy = policy
        self.target_switch_margin = float(target_switch_margin)
        self.reward_batch_size = int(reward_batch_size)
        self.model = model
        self.graph = ChannelGraph(model)
        if not self.graph.gated_groups:
            raise ValueError(
                f"Model {model.name!r} has no ChannelGate: build it from tfprune.models or gate it with "
                "tfprune.auto_gate(model) first."
            )
        self.cost_model = CostModel(model, self.graph)
        self.group_names = self.cost_model.group_names
        self.target_flops_ratio = float(target_flops_ratio)
        self.max_ratio = float(max_ratio)
        self.flops_tolerance = float(flops_tolerance)
        self.warmup_epochs = int(warmup_epochs)
        self.num_samples = int(num_samples)
        self.dynamics_steps = int(dynamics_steps)
        self.use_dynamics = bool(use_dynamics)
        self.alignment_strength = float(alignment_strength)
        self.alignment_ramp_epochs = int(alignment_ramp_epochs)
        self.reward_bn = reward_bn
        # Fail early if the budget is unreachable, before any training time is spent.
        budget.project_to_budget(
            np.zeros(len(self.group_names)), self.cost_model, self.target_flops_ratio, self.max_ratio, self.flops_tolerance
        )
        self.held_out = _as_arrays(held_out)
        self.alignment = GroupLassoAlignment(self.graph)
        n = len(self.group_names)
        self.dynamics = DynamicsModel(action_dim=n, max_epochs=max(1, int(max_epochs)), seed=seed)
        self.agent = PruningAgent(observation_dim=self.dynamics.hidden_dim, num_groups=n, max_ratio=max_ratio, seed=seed)
        self._fixed_ratios = {
            "agent": None,
            "uniform": np.zeros(n),
            "random": np.random.default_rng(seed).uniform(0.0, self.max_ratio, n),
        }[policy]
        # Multi-worker training replaces this with an all-reduce that hands every worker the chief's
        # array, so that all workers take the same decisions (see trainer.make_broadcast).
        self.broadcast = lambda array: array
        self.best = None  # Selection: best sub-network of the latest agent step
        self.history = []  # one dict of statistics per agent step
        self._bn_moving = [
            v for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)
            for v in (layer.moving_mean, layer.moving_variance)
        ]
        self._eval_fn = None

    # --- sub-networks --------------------------------------------------------------------------
    def masks_for_action(self, ratios, importance=None):
        """Ratios -> masks at the FLOPs budget (and the achieved FLOPs ratio)."""
        kept, achieved = budget.project_to_budget(
            ratios, self.cost_model, self.target_flops_ratio, self.max_ratio, self.flops_tolerance
        )
        importance = importance if importance is not None else mask_lib.channel_importance(self.graph)
        return mask_lib.masks_from_kept(kept, self.group_names, importance), achieved

    def evaluate(self, masks=None):
        """Accuracy of a sub-network (None = full model) on the held-out batch, gates restored after."""
        saved_gates = mask_lib.read_masks(self.model)
        saved_bn = [v.numpy() for v in self._bn_moving]
        try:
            mask_lib.apply_masks(self.model, masks if masks is not None else mask_lib.open_masks(self.graph))
            return self._accuracy()
        finally:
            mask_lib.apply_masks(self.model, saved_gates)
            for variable, value in zip(self._bn_moving, saved_bn):
                variable.assign(value)

    def _accuracy(self):
        if self._eval_fn is None:
            training = self.reward_bn == "batch"

            @tf.function(reduce_retracing=True)
            def correct(images, labels):
                return count_correct(self.model(images, training=training), labels)

            self._eval_fn = correct
        images, labels = self.held_out
        correct = 0.0
        for start in range(0, len(labels), self.reward_batch_size):  # bounded device memory at any scale
            end = start + self.reward_batch_size
            correct += float(self._eval_fn(images[start:end], labels[start:end]))
        return correct / len(labels)

    # --- the agent step ------------------------------------------------------------------------
    def observation(self, epoch):
        if not self.use_dynamics:
            return np.zeros(self.dynamics.hidden_dim, np.float32)
        return self.dynamics.representation(min(epoch, self.dynamics.max_epochs - 1))

    def agent_step(self, epoch):
        """Samples, scores and learns from `num_samples` sub-networks; returns the step's statistics."""
        epoch = min(int(epoch), self.dynamics.max_epochs - 1)
        if self._fixed_ratios is not None:
            return self._fixed_step(epoch)
        observation = self.observation(epoch)
        actions = self.agent.propose(observation, self.num_samples)
        importance = mask_lib.channel_importance(self.graph)
        candidates = [self.masks_for_action(a, importance) for a in actions]
        scores = [self.evaluate(m) for m, _ in candidates]
        if self.best is not None:
            scores.append(self.evaluate(self.best.masks))  # the current target, rescored on today's weights
        scores = self.broadcast(np.array(scores, dtype=np.float32))
        rewards, incumbent = scores[: len(candidates)], (scores[-1] if self.best is not None else None)
        finite = np.isfinite(rewards)
        if finite.sum() < 2:
            raise FloatingPointError(f"Epoch {epoch}: sub-network rewards are not finite ({rewards}); weights diverged?")
        actions, rewards = actions[finite], rewards[finite]
        candidates = [c for c, ok in zip(candidates, finite) if ok]  # a NaN reward never reaches the agent
        # Forecast error: the dynamics model predicts this epoch's rewards before it sees them.
        forecast_mse = float(np.mean((self.dynamics.predict(epoch, actions) - rewards) ** 2))
        self.dynamics.observe(epoch, actions, rewards)
        dynamics_loss = self.dynamics.train(self.dynamics_steps)
        agent_loss = self.agent.update(observation, actions, rewards)
        switched = self._update_target(candidates, rewards, incumbent, epoch)
        stats = {
            "epoch": epoch,
            "reward_mean": float(rewards.mean()),
            "reward_max": float(rewards.max()),
            "reward_min": float(rewards.min()),
            "dynamics_loss": float(dynamics_loss),
            "dynamics_prediction_mse": float(np.mean((self.dynamics.predict(epoch, actions) - rewards) ** 2)),
            "dynamics_forecast_mse": forecast_mse,
            "agent_loss": float(agent_loss),
            "target_reward": self.best.reward,
            "target_switched": switched,
            "flops_ratio": self.best.flops_ratio,
            "best_kept": {n: int(m.sum()) for n, m in self.best.masks.items()},
            "mean_action": actions.mean(axis=0).tolist(),
        }
        self.history.append(stats)
        return stats

    def _update_target(self, candidates, rewards, incumbent, epoch):
        """The epoch's best sample replaces the alignment target only if it beats the current target,
        rescored on today's weights, by `target_switch_margin`: a target that hops between
        near-equal masks every epoch would pull the weights toward none of them."""
        best = int(np.argmax(rewards))
        challenger = Selection(candidates[best][0], float(rewards[best]), float(candidates[best][1]), epoch)
        keep = incumbent is not None and np.isfinite(incumbent)
        if keep and challenger.reward < incumbent + self.target_switch_margin:
            self.best = Selection(self.best.masks, float(incumbent), self.best.flops_ratio, epoch)
            return False
        self.best = challenger
        self.alignment.set_targets(self.best.masks)
        return True

    def _fixed_step(self, epoch):
        """Baseline policies: the same ratios every epoch, channels re-chosen by today's importance."""
        masks, flops_ratio = self.masks_for_action(self._fixed_ratios)
        reward = self.evaluate(masks)
        self.best = Selection(masks, reward, float(flops_ratio), epoch)
        self.alignment.set_targets(masks)
        stats = {"epoch": epoch, "reward_mean": reward, "reward_max": reward, "reward_min": reward,
                 "dynamics_loss": float("nan"), "dynamics_prediction_mse": float("nan"), "agent_loss": float("nan"),
                 "flops_ratio": float(flops_ratio), "best_kept": {n: int(m.sum()) for n, m in masks.items()},
                 "mean_action": list(map(float, self._fixed_ratios))}
        self.history.append(stats)
        return stats

    def update_alignment(self, epoch):
        """Sets this epoch's alignment strength (0 before the agent has chosen anything)."""
        strength = 0.0
        if self.best is not None and self.alignment_strength > 0:
            strength = alignment_schedule(epoch, self.warmup_epochs, self.alignment_ramp_epochs, self.alignment_strength)
        self.alignment.strength.assign(strength)
        return strength

    def select(self, epoch=None):
        """The final sub-network: the better of the agent's greedy action and the last best sample."""
        epoch = self.dynamics.max_epochs - 1 if epoch is None else min(int(epoch), self.dynamics.max_epochs - 1)
        if self._fixed_ratios is not None:
            masks, flops_ratio = self.masks_for_action(self._fixed_ratios)
            return Selection(masks, self.evaluate(masks), float(flops_ratio), epoch)
        greedy_masks, greedy_flops = self.masks_for_action(self.agent.greedy(self.observation(epoch)))
        choice = Selection(greedy_masks, self.evaluate(greedy_masks), greedy_flops, epoch)
        if self.best is not None:
            # Rescore the last best sample with today's weights so both are compared fairly.
            rescored = Selection(self.best.masks, self.evaluate(self.best.masks), self.best.flops_ratio, epoch)
            choice = max(choice, rescored, key=lambda s: s.reward)
        return self._broadcast_selection(choice)

    def _broadcast_selection(self, choice):
        """Every worker adopts the chief's choice (identity on a single worker)."""
        flat = np.concatenate([choice.masks[n] for n in self.group_names] + [[choice.reward, choice.flops_ratio]])
        flat = self.broadcast(flat.astype(np.float32))
        sizes = np.cumsum([choice.masks[n].size for n in self.group_names])[:-1]
        parts = np.split(flat[:-2], sizes)
        masks = {n: part >= 0.5 for n, part in zip(self.group_names, parts)}
        return Selection(masks, float(flat[-2]), float(flat[-1]), choice.epoch)

    def compact_model(self, masks=None):
        """The physically pruned plain Keras model of a sub-network (no gates, fewer channels).

        ``masks`` default to the final selection, ``self.select().masks``. Fine-tune the result with
        ``compile`` + ``fit`` like any Keras model.
        """
        if masks is None:
            masks = self.select().masks
        return compact_model(self.model, masks, graph=self.graph)

    def export(self, out_dir, model=None, masks=None, **export_kwargs):
        """SavedModel + TFLite export of the pruned model with `tfprune.export.export_all`; returns its report.

        Args:
            out_dir: output directory (``saved_model/``, ``model_<q>.tflite``, ``export_report.json``).
            model: the compact model to export, e.g. after fine-tuning; default: ``compact_model(masks)``,
                whose masks are then also written to ``out_dir/masks.json``.
            masks: the sub-network when ``model`` is None (default: ``select()``'s).
            **export_kwargs: passed to ``export_all`` (quantizations, representative_data, sample_inputs...).
        """
        from tfprune.export import export_all

        if model is None:
            masks = self.select().masks if masks is None else masks
            model = self.compact_model(masks)
            mask_lib.save_masks(masks, os.path.join(out_dir, "masks.json"))
        return export_all(model, out_dir, **export_kwargs)

    def kept_channels(self, masks):
        """{group: [kept, total]} for reports."""
        return {name: [int(masks[name].sum()), int(masks[name].size)] for name in self.group_names}

    # --- persistence ---------------------------------------------------------------------------
    def checkpoint_items(self):
        return {**self.agent.checkpoint_items, **self.dynamics.checkpoint_items, **self.alignment.checkpoint_items()}

    def get_state(self):
        """Everything outside TF variables, as JSON-able data."""
        dyn = self.dynamics.get_state()
        return {
            "dynamics": {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in dyn.items()},
            "agent": self.agent.get_state(),
            "best": None
            if self.best is None
            else {**dataclasses.asdict(self.best), "masks": {k: v.astype(int).tolist() for k, v in self.best.masks.items()}},
            "history": self.history,
        }

    def set_state(self, state):
        dyn = state["dynamics"]
        self.dynamics.set_state(
            {
                "epochs": np.asarray(dyn["epochs"], np.int32),
                "actions": np.asarray(dyn["actions"], np.float32).reshape(-1, len(self.group_names)),
                "rewards": np.asarray(dyn["rewards"], np.float32),
                "rng": dyn["rng"],
            }
        )
        self.agent.set_state(state["agent"])
        best = state["best"]
        self.best = None if best is None else Selection(
            {k: np.asarray(v, bool) for k, v in best["masks"].items()}, best["reward"], best["flops_ratio"], best["epoch"]
        )
        self.history = list(state["history"])

    # --- Keras integration ---------------------------------------------------------------------
    def callback(self, log_fn=print):
        """A `keras.callbacks.Callback` that runs the agent step at each epoch end of `model.fit` and
        applies alignment as a proximal step after every batch."""
        return PruningCallback(self, log_fn)


class PruningCallback(keras.callbacks.Callback):
    """Plugs a `JointPruner` into `model.fit`."""

    def __init__(self, pruner, log_fn=print):
        super().__init__()
        self.pruner = pruner
        self.log_fn = log_fn
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        self.pruner.update_alignment(epoch)

    def on_train_batch_end(self, batch, logs=None):
        if float(self.pruner.alignment.strength.numpy()) > 0:
            lr = self.model.optimizer.learning_rate
            self.pruner.alignment.proximal_step(float(keras.ops.convert_to_numpy(lr)))

    def on_epoch_end(self, epoch, logs=None):
        if epoch >= self.pruner.warmup_epochs:
            stats = self.pruner.agent_step(epoch)
            if logs is not None:
                logs["reward_max"] = stats["reward_max"]
                logs["subnet_flops_ratio"] = stats["flops_ratio"]
            if self.log_fn:
                self.log_fn(
                    f"epoch {epoch}: agent reward mean {stats['reward_mean']:.3f} max {stats['reward_max']:.3f}, "
                    f"FLOPs ratio {stats['flops_ratio']:.3f}"
                )


def _as_arrays(held_out):
    """The held-out data as two host arrays: small, scored many times, fed in `reward_batch_size` chunks."""
    if isinstance(held_out, tf.data.Dataset):
        images, labels = [], []
        for x, y in held_out:
            images.append(np.asarray(x))
            labels.append(np.asarray(y))
        if not images:
            raise ValueError("The held-out dataset is empty: the reward needs at least one batch of examples.")
        held_out = (np.concatenate(images), np.concatenate(labels))
    images, labels = held_out
    if len(images) != len(labels) or len(labels) == 0:
        raise ValueError(f"held_out needs as many labels as images (got {len(images)} and {len(labels)}), at least one.")
    return np.asarray(images, np.float32), np.asarray(labels).reshape(-1).astype(np.int32)

