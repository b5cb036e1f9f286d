"""`PruningCallback`: a `JointPruner` inside a user's own `model.fit`.

`model.fit` owns the training step, so alignment cannot be a loss term there: it is applied as a
proximal step after every batch instead (the same group-lasso regulariser, see `tfprune.pruning.alignment`),
and so is the gate scores' L1 term.

What an agent step found goes into the epoch's Keras logs (`agent_reward_mean`, `reward_max`,
`subnet_flops_ratio`: the progress bar, `History` and TensorBoard show them). The one-line summary
is written only once Keras has finished the epoch's progress line (at the next epoch's start or at the
end of training), so it never lands inside the bar;
`verbose=0` (or `log_fn=None`) leaves it out.
"""

import sys

import keras

from tfprune.structure.gate_scores import score_penalty_step


class PruningCallback(keras.callbacks.Callback):
    """Runs the agent step at each epoch end (after warm-up) and alignment after every batch.

    Args:
        pruner: the `JointPruner` of the model being fitted.
        log_fn: where the per-step summary line goes (default `print`, flushed; None: nowhere).
        verbose: 0 = no summary line (the numbers are still in the logs), 1 = one line per agent step.
    """

    def __init__(self, pruner, log_fn=print, verbose=1):
        super().__init__()
        self.pruner = pruner
        self.log_fn = log_fn
        self.verbose = int(verbose)
        self.pending = None  # the last agent step's line, written once Keras' epoch line is done

    def on_epoch_begin(self, epoch, logs=None):
        self.flush()
        self.pruner.update_alignment(epoch)

    def on_train_batch_end(self, batch, logs=None):
        lr = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        if float(self.pruner.alignment.strength.numpy()) > 0:
            self.pruner.alignment.proximal_step(lr)
        score_penalty_step(self.pruner.model, lr)  # the gate scores' L1 term (`tfprune.structure.gate_scores`)

    def on_epoch_end(self, epoch, logs=None):
        if self.pruner.schedule.in_warmup(epoch):
            return
        stats = self.pruner.agent_step(epoch)
        if logs is not None:
            logs["agent_reward_mean"] = stats.reward_mean
            logs["reward_max"] = stats.reward_max
            logs["subnet_flops_ratio"] = stats.flops_ratio
        self.pending = (f"epoch {epoch}: agent reward mean {stats.reward_mean:.3f} max {stats.reward_max:.3f}, "
                        f"FLOPs ratio {stats.flops_ratio:.3f}")

    def on_train_end(self, logs=None):
        self.flush()

    def flush(self):
        """Writes the pending agent-step line (Keras' progress line for that epoch is complete by now)."""
        line, self.pending = self.pending, None
        if line and self.log_fn and self.verbose:
            self.log_fn(line)
            sys.stdout.flush()
