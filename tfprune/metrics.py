"""The top-1 count shared by the reward, the training step and the evaluation step (one definition, so
the agent's reward and the reported accuracies can never disagree on what "correct" means)."""

import tensorflow as tf


def count_correct(logits, labels):
    """Number of top-1 hits in a batch, as float32 (summed across batches and replicas)."""
    return tf.reduce_sum(tf.cast(tf.equal(tf.argmax(logits, -1, output_type=tf.int32), labels), tf.float32))
