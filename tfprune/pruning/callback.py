"""`PruningCallback`: a `JointPruner` inside a user's own `model.fit`.

`model.fit` owns the training step, so alignment cannot be a loss term there: it is applied as a
proximal step after every batch instead (the same group-lasso regulariser, see `tfprune.pruning.alignment`),
and so is the gate scores' L1 term.
"""

import keras

from tfprune.structure.gate_scores import score_penalty_step


class PruningCallback(keras.callbacks.Callback):
    """Runs the agent step at each epoch end (after warm-up) and alignment after every batch."""

    def __init__(self, pruner, log_fn=print):
        super().__init__()
        self.pruner = pruner
        self.log_fn = log_fn

    def on_epoch_begin(self, epoch, logs=None):
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
            logs["reward_max"] = stats.reward_max
            logs["subnet_flops_ratio"] = stats.flops_ratio
        if self.log_fn:
            self.log_fn(f"epoch {epoch}: agent reward mean {stats.reward_mean:.3f} max {stats.reward_max:.3f}, "
                        f"FLOPs ratio {stats.flops_ratio:.3f}")
