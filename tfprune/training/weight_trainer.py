"""`WeightTrainer`: trains a model's weights under a `tf.distribute` strategy (the custom loop's steps).

A custom loop (`strategy.run` in a `tf.function`), not `model.fit`, so weight updates, agent steps and
mid-epoch checkpoints interleave freely. The trainer defines steps; `tfprune.training.trainer` owns the loop
over phases, checkpoints and summaries.
"""

import gin
import keras
import numpy as np
import tensorflow as tf

from tfprune.errors import TrainingError
from tfprune.metrics import count_correct
from tfprune.training.progress_bar import progress_bar


@gin.configurable
def make_optimizer(total_steps, learning_rate=0.1, momentum=0.9, weight_decay=5e-4, nesterov=True, warmup_steps=0):
    """SGD with momentum and a cosine learning-rate schedule (the standard CIFAR/ImageNet recipe).

    Args:
        total_steps: training steps of the phase (given by the trainer): the cosine schedule's length.
        learning_rate: peak learning rate (reached after the warm-up).
        momentum / nesterov: SGD momentum / Nesterov momentum on or off.
        weight_decay: decoupled weight decay (0 or None: none).
        warmup_steps: steps of linear warm-up from 0 to `learning_rate` (0: none).
    """
    total_steps = max(1, int(total_steps))
    schedule = keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=learning_rate if not warmup_steps else 0.0,
        decay_steps=max(1, total_steps - warmup_steps),
        warmup_target=learning_rate if warmup_steps else None,
        warmup_steps=warmup_steps,
    )
    return keras.optimizers.SGD(schedule, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay or None)


READ_EVERY = 25  # training steps run in one graph call, whose results the loop reads from the device at once


def _steps_to_next_mark(done, most, marks):
    """How many steps the next call runs: ``most``, or fewer to end at the next multiple of ``marks``."""
    if not marks:
        return most
    return min(most, marks - done % marks)


def steps_in_one_call(step, iterator, n):
    """Up to ``n`` calls of ``step`` on the iterator's next batches, traced into one graph call (no Python and
    no eager read of a batch between steps: what `model.fit`'s ``steps_per_execution`` saves); stops early
    at the end of the data. Returns the steps' results stacked, [steps done, 4]."""
    results = tf.TensorArray(tf.float32, size=0, dynamic_size=True, element_shape=tf.TensorShape([4]))
    for i in tf.range(n):
        batch = iterator.get_next_as_optional()
        if not batch.has_value():
            break
        results = results.write(i, step(batch.get_value()))
    return results.stack()


@gin.configurable
class WeightTrainer:
    """Trains a model's weights for epochs under a `tf.distribute` strategy.

    Args:
        strategy / model / optimizer: the `tf.distribute` strategy, the model it trains (built in the
            strategy's scope) and its optimizer (`make_optimizer`); given by the trainer.
        global_batch_size: the batch size over all replicas: per-replica losses are averaged over it.
        regularizer: optional function of no argument whose value is added to the loss (the pruner's
            alignment + gate-score penalty in the joint phase).
        nan_policy: "stop" raises on a non-finite loss or gradient, naming the step; "skip" drops the
            update (zero gradients) and counts it.
        label_smoothing: cross-entropy label smoothing.
    """

    def __init__(self, strategy, model, optimizer, global_batch_size, regularizer=None, nan_policy="stop",
                 label_smoothing=0.0):
        if nan_policy not in ("stop", "skip"):
            raise ValueError(f"nan_policy must be 'stop' or 'skip', got {nan_policy!r}.")
        self.strategy = strategy
        self.model = model
        self.optimizer = optimizer
        self.global_batch_size = int(global_batch_size)
        self.regularizer = regularizer
        self.nan_policy = nan_policy
        self.label_smoothing = float(label_smoothing)
        self.skipped_steps = 0
        with strategy.scope():
            optimizer.build(model.trainable_variables)
        # One distributed training step on a global batch (public: benchmarks time it alone).
        self.train_step = tf.function(self._distributed_train_step)
        # Up to n steps in one call, reading the batches inside the graph (`train_epoch`'s loop).
        self._train_steps = tf.function(
            lambda iterator, n: steps_in_one_call(self._distributed_train_step, iterator, n))
        self._eval_step = tf.function(self._distributed_eval_step)
        self._bn_step = tf.function(
            lambda batch: strategy.run(lambda images, labels: model(images, training=True), args=batch))

    def _loss(self, labels, logits):
        num_classes = tf.shape(logits)[-1]
        onehot = tf.one_hot(labels, num_classes)
        if self.label_smoothing:
            onehot = onehot * (1 - self.label_smoothing) + self.label_smoothing / tf.cast(num_classes, tf.float32)
        return tf.nn.softmax_cross_entropy_with_logits(onehot, logits)

    def _replica_train_step(self, images, labels):
        variables = self.model.trainable_variables
        with tf.GradientTape() as tape:
            logits = self.model(images, training=True)
            loss = tf.nn.compute_average_loss(self._loss(labels, logits), global_batch_size=self.global_batch_size)
            penalty = tf.constant(0.0)
            if self.regularizer is not None:
                penalty = self.regularizer() / self.strategy.num_replicas_in_sync
            total = loss + penalty
        grads = tape.gradient(total, variables)
        grads = [tf.zeros_like(v) if g is None else g for g, v in zip(grads, variables)]
        finite = tf.reduce_all([tf.reduce_all(tf.math.is_finite(g)) for g in grads]) & tf.math.is_finite(total)
        grads = [tf.where(finite, g, tf.zeros_like(g)) for g in grads]
        self.optimizer.apply_gradients(zip(grads, variables))
        correct = count_correct(logits, labels)
        return loss, penalty, correct, 1.0 - tf.cast(finite, tf.float32)

    def _distributed_train_step(self, batch):
        results = self.strategy.run(self._replica_train_step, args=batch)
        # [loss, penalty, correct predictions, replicas with a non-finite loss/gradient], one tensor: the
        # loop reads a window of steps at once (`READ_EVERY`)
        return tf.stack([self.strategy.reduce(tf.distribute.ReduceOp.SUM, x, axis=None) for x in results])

    def _replica_eval_step(self, images, labels):
        logits = self.model(images, training=False)
        correct = count_correct(logits, labels)
        return correct, tf.cast(tf.shape(labels)[0], tf.float32)

    def _distributed_eval_step(self, batch):
        correct, count = self.strategy.run(self._replica_eval_step, args=batch)
        return (self.strategy.reduce(tf.distribute.ReduceOp.SUM, correct, axis=None),
                self.strategy.reduce(tf.distribute.ReduceOp.SUM, count, axis=None))

    def train_epoch(self, dataset, steps=None, description="train", step_offset=0, start_step=0, after_step=None,
                    step_marks=0):
        """One pass over `dataset` (global batches); returns mean loss, penalty and accuracy.

        `start_step` skips the batches a resumed epoch already trained on. The steps run `READ_EVERY` at a
        time in one graph call (`steps_in_one_call`), whose results are read from the device at
        once: a call and a read per step cost the loop a fifth of a small model's throughput against
        `model.fit` (`tfprune bench --only fit`). `after_step(done)` is called after each call with the
        number of steps done in the epoch; a call also ends at every multiple of `step_marks` (the
        mid-epoch checkpoints'), so `after_step` sees each of them. A non-finite step's update is dropped
        inside the step itself, so reading it a few steps later changes nothing but when "stop" raises
        (it still names the step)."""
        totals = np.zeros(3)
        done = start_step
        bar = progress_bar(total=steps, desc=description, initial=start_step)
        dataset = dataset.skip(start_step) if start_step else dataset
        iterator = iter(self.strategy.experimental_distribute_dataset(dataset))
        try:
            while True:
                n = _steps_to_next_mark(done, READ_EVERY, step_marks)
                values = self._train_steps(iterator, tf.constant(n, tf.int32)).numpy()
                if len(values) == 0:
                    break
                done += len(values)
                bar.update(len(values))
                totals += self._read(values, step_offset + done, description, bar, totals, done - start_step)
                if after_step is not None:
                    after_step(done)
                if len(values) < n:
                    break
        finally:
            bar.close()
        seen = done - start_step
        if seen == 0:
            raise TrainingError(f"The {description} dataset yielded no batch: is it empty or smaller than a batch?")
        return {"loss": totals[0] / seen, "penalty": totals[1] / seen,
                "accuracy": totals[2] / (seen * self.global_batch_size), "steps": seen}

    def _read(self, values, end_step, description, bar, totals, seen):
        """Applies the NaN policy to each of the steps' results ``values`` (the last of them is step
        ``end_step - 1``); returns their summed loss, penalty and correct predictions."""
        for i in np.flatnonzero(values[:, 3] > 0):
            if self.nan_policy == "stop":
                raise TrainingError(
                    f"Non-finite loss or gradient at step {end_step - len(values) + i} ({description}); "
                    "the last good checkpoint is in the workdir. Lower the learning rate, or set "
                    "WeightTrainer.nan_policy = 'skip' to drop such steps."
                )
            self.skipped_steps += 1
        window = values[:, :3].sum(axis=0)
        done = totals + window
        bar.set_postfix(loss=f"{done[0] / seen:.3f}", acc=f"{done[2] / (seen * self.global_batch_size):.3f}")
        return window

    def recalibrate_batchnorm(self, dataset, steps=50):
        """Re-estimates BatchNorm moving statistics for the current sub-network (forward passes in
        training mode, no weight update): the full network's statistics do not fit a pruned one."""
        for step, batch in enumerate(self.strategy.experimental_distribute_dataset(dataset)):
            if step >= steps:
                break
            self._bn_step(batch)

    def evaluate(self, dataset):
        correct = count = 0.0
        for batch in self.strategy.experimental_distribute_dataset(dataset):
            c, n = self._eval_step(batch)
            correct += float(c)
            count += float(n)
        if count == 0:
            raise TrainingError("The validation dataset is empty.")
        return correct / count
