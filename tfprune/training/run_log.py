"""What a run reports while it trains: one console line per epoch and TensorBoard scalars.

Kept apart from the phases so that the training loop reads as a loop, and every logged name is
defined here once.
"""

import os

import tensorflow as tf

from tfprune.infra.workdir import TENSORBOARD

_AGENT_SCALARS = ("reward_mean", "reward_max", "dynamics_loss", "dynamics_prediction_mse", "agent_loss", "flops_ratio")


class RunLog:
    """Console lines and TensorBoard events (under WORKDIR/tb) of one run."""

    def __init__(self, outdir, epochs):
        self.writer = tf.summary.create_file_writer(os.path.join(outdir, TENSORBOARD))
        self.epochs = int(epochs)

    def joint_epoch(self, epoch, stats, val, strength, seconds, weight_seconds, agent=None, pruner=None):
        """One joint-phase epoch: weight training `stats`, validation accuracy, the agent step's
        `StepStats` (None during warm-up) and the pruner's diagnostics."""
        line = (f"epoch {epoch + 1}/{self.epochs}: loss {stats['loss']:.4f} train acc {stats['accuracy']:.4f} "
                f"val acc {val:.4f} align {strength:.2e}")
        with self.writer.as_default(step=epoch):
            tf.summary.scalar("train/loss", stats["loss"])
            tf.summary.scalar("train/accuracy", stats["accuracy"])
            tf.summary.scalar("train/alignment_penalty", stats["penalty"])
            tf.summary.scalar("train/alignment_strength", strength)
            tf.summary.scalar("val/accuracy_full_model", val)
            tf.summary.scalar("time/epoch_seconds", seconds)
            if agent is not None:
                self._agent_scalars(agent, pruner, 1.0 - weight_seconds / seconds)
                line += (f" | reward mean {agent.reward_mean:.3f} max {agent.reward_max:.3f} "
                         f"FLOPs {agent.flops_ratio:.3f}")
        self.writer.flush()
        print(line, flush=True)

    @staticmethod
    def _agent_scalars(agent, pruner, agent_fraction):
        for key in _AGENT_SCALARS:
            tf.summary.scalar(f"agent/{key}", getattr(agent, key))
        tf.summary.scalar("time/agent_fraction", agent_fraction)
        for name, ratio in zip(pruner.group_names, agent.mean_action):
            tf.summary.scalar(f"ratio/{name}", ratio)
        for name, kept in agent.best_kept.items():
            tf.summary.scalar(f"kept/{name}", kept)
        for name, value in pruner.diagnostics().items():
            tf.summary.scalar(name, value)

    def finetune_epoch(self, epoch, finetune_epochs, stats, val, label="finetune"):
        with self.writer.as_default(step=self.epochs + epoch):
            tf.summary.scalar("finetune/loss", stats["loss"])
            tf.summary.scalar("val/accuracy_pruned", val)
        print(f"{label} {epoch + 1}/{finetune_epochs}: loss {stats['loss']:.4f} val acc {val:.4f}", flush=True)
