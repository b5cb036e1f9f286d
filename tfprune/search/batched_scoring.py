"""Scoring K sub-networks in one forward pass (issue 9: many cheap episodes).

The held-out batch is repeated K times along the batch axis and copy k runs through the model as
sub-network k: every gate multiplies copy k by sub-network k's mask (`ChannelGate.gated`, the same
multiplication as a gate's own call), and every BatchNormalization that runs on batch statistics
normalises each copy with that copy's own mean and variance. That is exactly what scoring the K
sub-networks one after another does, so the hit counts are the same (float summation order aside).

Why: scoring one sub-network pays a mask assignment for every gate, a save and restore of the BN
moving averages and a forward pass of one small batch; an agent step scores 128 of them. K at once
pays the fixed costs once and gives the device one larger batch. It also leaves the model untouched:
no gate is written, and the BN moving averages are not updated (the layers' own training-mode
update is skipped), so nothing needs restoring.

Other layers run as `model(x, training=...)` runs them. What cannot be batched this way is refused by
`batching_problem` (gates or BatchNorms inside a nested model, a BatchNorm on another axis than the
last, batch renormalisation); `tfprune.search.scoring.SubnetScorer` then scores one sub-network at a time.
"""

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from tfprune.structure.keras_internals import has_layer_graph, run_graph
from tfprune.structure.gates import ChannelGate, gates_of
from tfprune.structure.masks import MaskError


def batching_problem(model):
    """Why `model` cannot be scored K masks at a time (None if it can)."""
    if not has_layer_graph(model):
        return "the model is not functional"
    for layer in model.layers:
        nested = getattr(layer, "layers", None)
        if nested and any(isinstance(inner, (ChannelGate, keras.layers.BatchNormalization)) for inner in nested):
            return f"layer {layer.name!r} is a nested model holding gates or BatchNorms"
        if isinstance(layer, keras.layers.BatchNormalization):
            if layer.axis not in (-1, len(layer.input.shape) - 1):
                return f"BatchNormalization {layer.name!r} normalises axis {layer.axis}, not the channel axis"
            if getattr(layer, "renorm", False):
                return f"BatchNormalization {layer.name!r} uses batch renormalisation"
    return None


class BatchedCounter:
    """Top-1 hits of K sub-networks on one batch of images, in one forward pass.

    Args:
        model: the gated functional model (`batching_problem(model)` must be None).
        training: True = BatchNorm on each sub-network's batch statistics (the "batch" reward), False =
            the moving averages (then only the gates differ between copies).
    """

    def __init__(self, model, training, classifier=None):
        problem = batching_problem(model)
        if problem:
            raise ValueError(f"Cannot score sub-networks in one batch: {problem}.")
        self.model = model
        self.training = bool(training)
        self.gates = gates_of(model)
        self.classifier = classifier
        self._count = tf.function(self._count_graph, reduce_retracing=True)
        self._features = tf.function(self._features_graph, reduce_retracing=True)

    def stack(self, mask_sets):
        """{gate name: [K, channels] float32} from K mask dicts (a gate a dict leaves out stays open, as
        `tfprune.structure.masks.apply_masks` leaves it)."""
        for masks in mask_sets:
            unknown = set(masks) - set(self.gates)
            if unknown:
                raise MaskError(f"Masks name gates the model does not have: {sorted(unknown)}.")
        return {name: np.stack([_one_mask(m.get(name), gate) for m in mask_sets]) for name, gate in self.gates.items()}

    def count(self, images, labels, stacked):
        """[K] hits of each stacked sub-network on (images, labels)."""
        return self._count(tf.convert_to_tensor(images), tf.convert_to_tensor(labels), stacked).numpy()

    def features(self, images, stacked):
        """[K, batch, C]: what each stacked sub-network feeds its classifier (the layer given as
        `classifier`, which is not run) on `images`; for a reward with a refitted classifier
        (`tfprune.search.head_refit`)."""
        if self.classifier is None:
            raise ValueError("BatchedCounter.features needs the classifier layer: BatchedCounter(..., classifier=).")
        return self._features(tf.convert_to_tensor(images), stacked).numpy()

    def _count_graph(self, images, labels, stacked):
        k = tf.shape(next(iter(stacked.values())))[0]
        logits = run_graph(self.model, _repeated_batch(images, k), lambda op: self._operation(op, stacked, k))
        hits = tf.equal(tf.argmax(logits, -1, output_type=tf.int32), tf.tile(labels, [k]))
        return tf.reduce_sum(tf.reshape(tf.cast(hits, tf.float32), [k, -1]), axis=1)

    def _features_graph(self, images, stacked):
        k = tf.shape(next(iter(stacked.values())))[0]
        skip_classifier = lambda op: (lambda x, **_: x) if op is self.classifier else self._operation(op, stacked, k)
        features = run_graph(self.model, _repeated_batch(images, k), skip_classifier)
        return tf.reshape(features, [k, -1, features.shape[-1]])

    def _operation(self, op, stacked, k):
        if isinstance(op, ChannelGate):
            return lambda x, **_: _per_copy(x, k, lambda grouped: op.gated(grouped, _broadcastable(
                stacked[op.name], len(grouped.shape))))
        if isinstance(op, keras.layers.BatchNormalization) and self.training and op.trainable:
            return lambda x, **_: _per_copy(x, k, lambda grouped: _grouped_batch_norm(op, grouped))
        return _with_training(op, self.training)


def _repeated_batch(images, k):
    """The batch repeated k times along the batch axis (copy k = sub-network k)."""
    return tf.reshape(tf.repeat(images[None], k, axis=0), tf.concat([[-1], tf.shape(images)[1:]], 0))


def _one_mask(mask, gate):
    if mask is None:
        return np.ones(gate.channels, np.float32)
    try:
        return gate.checked_mask(mask)
    except ValueError as exc:
        raise MaskError(str(exc)) from None


def _per_copy(x, k, fn):
    """Applies `fn` to x viewed as [K, batch, ...] (copy k = sub-network k) and flattens back."""
    grouped = tf.reshape(x, tf.concat([[k, -1], tf.shape(x)[1:]], 0))
    grouped = tf.ensure_shape(grouped, [None, None, *x.shape[1:]])
    return tf.reshape(fn(grouped), tf.shape(x))


def _broadcastable(masks, rank):
    """[K, C] masks as [K, 1, ..., 1, C] against a [K, batch, ..., C] tensor of `rank` dimensions."""
    return tf.reshape(masks, tf.concat([[tf.shape(masks)[0]], tf.ones([rank - 2], tf.int32), [-1]], 0))


def _grouped_batch_norm(layer, grouped):
    """BatchNormalization in training mode with each copy's own statistics (as Keras computes them:
    float32 moments over every axis but the channel one, then `ops.batch_normalization`)."""
    inputs = ops.cast(grouped, keras.backend.result_type(grouped.dtype, "float32"))
    mean, variance = ops.moments(inputs, axes=list(range(1, len(inputs.shape) - 1)), keepdims=True)
    gamma = ops.cast(layer.gamma, inputs.dtype) if layer.scale else None
    beta = ops.cast(layer.beta, inputs.dtype) if layer.center else None
    outputs = ops.batch_normalization(inputs, mean, variance, axis=-1, offset=beta, scale=gamma,
                                      epsilon=layer.epsilon)
    return ops.cast(outputs, layer.compute_dtype)


def _with_training(op, training):
    """The op as a functional model calls it: `training` passed to layers (a Keras layer's `__call__`
    hands it on only where `call` takes it), not to plain operations of the graph."""
    if not isinstance(op, keras.layers.Layer):
        return op
    return lambda *args, **kwargs: op(*args, **{**kwargs, "training": training})
