"""Scoring sub-networks: the held-out accuracy that is the agent's reward.

A sub-network is scored by writing its hard masks into the gates and classifying held-out *training*
images (kept out of weight training). BatchNorm runs on batch statistics by default: the moving
averages were collected on the full network and do not fit a sub-network. Scoring in training mode
updates those moving averages, so they are saved and restored around every score, as are the gates:
scoring never changes the model.
"""

import keras
import numpy as np
import tensorflow as tf

from tfprune import masks as mask_lib
from tfprune.metrics import count_correct

REWARD_BN_MODES = ("batch", "moving")


class SubnetScorer:
    """Held-out accuracy of any sub-network of one gated model.

    Args:
        model: the gated Keras model.
        graph: its `ChannelGraph` (for the all-open mask of the full network).
        held_out: (images, labels) arrays or a `tf.data.Dataset` of batches.
        reward_bn: "batch" (sub-network's own batch statistics) or "moving" (full network's averages).
        batch_size: images per forward pass; bounds device memory at any held-out size, and is the
            batch whose statistics BatchNorm uses in "batch" mode.
    """

    def __init__(self, model, graph, held_out, reward_bn="batch", batch_size=256):
        if reward_bn not in REWARD_BN_MODES:
            raise ValueError(f"reward_bn must be 'batch' or 'moving', got {reward_bn!r}.")
        self.model = model
        self.graph = graph
        self.images, self.labels = as_arrays(held_out)
        self.batch_size = int(batch_size)
        self._bn_moving = [
            v for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)
            for v in (layer.moving_mean, layer.moving_variance)
        ]
        training = reward_bn == "batch"
        self._count = tf.function(lambda images, labels: count_correct(model(images, training=training), labels),
                                  reduce_retracing=True)

    def score(self, masks=None):
        """Accuracy of a sub-network (None = the full network); gates and BN statistics restored after."""
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
        correct = 0.0
        for start in range(0, len(self.labels), self.batch_size):
            end = start + self.batch_size
            correct += float(self._count(self.images[start:end], self.labels[start:end]))
        return correct / len(self.labels)


def as_arrays(held_out):
    """The held-out data as two host arrays: small, scored many times, fed in bounded chunks."""
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
