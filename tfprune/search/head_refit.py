"""Scoring sub-networks with their classifier refitted: a reward that ranks structures more as
fine-tuning does (issue 9).

Why: with the trained classifier, a sub-network's held-out accuracy over-values the channels that
feed the classifier directly. Nothing downstream re-adapts to losing them, whereas fine-tuning
retrains the classifier first of all. Measured on VGG-11 (CHANGELOG.md, earlier studies): cutting 75% of the last
conv's kept channels scores 0.670 with the trained classifier and 0.791 refitted; the same cut in a
middle conv scores 0.771 and 0.775. The agent's greedy episode drifted into that group on every run.

Refitting only the last layer is cheap. The features of each sub-network are computed anyway, and K
sub-networks are refitted at once, as K independent softmax regressions started from the trained
weights and held near them.

Cross-fitting: the scored images are split in two halves by position, and each half is scored by the
classifier refitted on the other. No image is scored by a classifier fitted on it. A classifier fitted
and scored on the same few images would favour the sub-networks with more features, the bias this
module exists to remove.
"""

import gin
import keras
import tensorflow as tf

from tfprune.structure.keras_internals import producing_layer

REWARD_HEADS = ("trained", "refit")


def classifier_layer(model):
    """The Dense layer whose output is the model's output: the classifier that "refit" retrains."""
    outputs = model.outputs
    layer = producing_layer(outputs[0]) if len(outputs) == 1 else None
    if not isinstance(layer, keras.layers.Dense) or len(layer.input.shape) != 2 \
            or layer.activation not in (keras.activations.linear, keras.activations.softmax):
        raise ValueError(
            "SubnetScorer.reward_head = 'refit' refits the classifier, so the model's single output must come "
            f"from a Dense layer (linear or softmax) on a flat feature vector; {model.name!r} ends in "
            f"{type(layer).__name__ if layer is not None else 'several outputs'}. Use reward_head = 'trained'.")
    return layer


@gin.configurable
class HeadRefit:
    """K softmax regressions, each from the trained classifier, fitted by full-batch gradient descent.

    Args:
        steps: gradient steps per fit (two fits per score, one per half).
        learning_rate: step size; the features are post-ReLU averages of order 1.
        anchor: weight of ||W - W_trained||^2, which keeps a fit on a few dozen images near the
            trained classifier instead of memorising them.
    """

    def __init__(self, steps=50, learning_rate=0.5, anchor=1e-3):
        if int(steps) < 0 or learning_rate <= 0 or anchor < 0:
            raise ValueError(f"HeadRefit needs steps >= 0, learning_rate > 0 and anchor >= 0; got {steps}, "
                             f"{learning_rate}, {anchor}.")
        self.steps, self.learning_rate, self.anchor = int(steps), float(learning_rate), float(anchor)
        self._cross_fitted = tf.function(self._cross_fitted_graph, reduce_retracing=True)

    def hits(self, features, labels, kernel, bias):
        """[K] top-1 hits of K sub-networks' features [K, N, C] on labels [N], each half of the images
        scored by the classifier refitted on the other half (N < 2: the trained classifier)."""
        features = tf.convert_to_tensor(features, tf.float32)
        labels = tf.convert_to_tensor(labels, tf.int32)
        kernel, bias = tf.convert_to_tensor(kernel, tf.float32), tf.convert_to_tensor(bias, tf.float32)
        if features.shape[1] < 2:
            return _hits(features, labels, _one_copy_each(kernel, features), _one_copy_each(bias, features))
        return self._cross_fitted(features, labels, kernel, bias)

    def _cross_fitted_graph(self, features, labels, kernel, bias):
        even, odd = features[:, 0::2], features[:, 1::2]
        even_labels, odd_labels = labels[0::2], labels[1::2]
        fitted_on_odd = self.fit(odd, odd_labels, kernel, bias)
        fitted_on_even = self.fit(even, even_labels, kernel, bias)
        return _hits(even, even_labels, *fitted_on_odd) + _hits(odd, odd_labels, *fitted_on_even)

    def fit(self, features, labels, kernel, bias):
        """([K, C, classes], [K, classes]) fitted to features [K, n, C]."""
        w0, b0 = _one_copy_each(kernel, features), _one_copy_each(bias, features)
        targets = tf.one_hot(labels, tf.shape(w0)[-1])[None]
        n = tf.cast(tf.shape(features)[1], tf.float32)

        def step(i, w, b):
            logits = tf.einsum("knc,kcd->knd", features, w) + b[:, None]
            residual = (tf.nn.softmax(logits) - targets) / n
            grad_w = tf.einsum("knc,knd->kcd", features, residual) + 2.0 * self.anchor * (w - w0)
            return i + 1, w - self.learning_rate * grad_w, b - self.learning_rate * tf.reduce_sum(residual, 1)

        _, w, b = tf.while_loop(lambda i, *_: i < self.steps, step, (tf.constant(0), w0, b0))
        return w, b


def _one_copy_each(weights, features):
    """The trained classifier's kernel [C, d] or bias [d], one copy per sub-network (K = features.shape[0])."""
    weights = tf.convert_to_tensor(weights, tf.float32)
    return tf.repeat(weights[None], tf.shape(features)[0], axis=0)


def _hits(features, labels, w, b):
    logits = tf.einsum("knc,kcd->knd", features, w) + b[:, None]
    correct = tf.equal(tf.argmax(logits, -1, output_type=tf.int32), labels[None])
    return tf.reduce_sum(tf.cast(correct, tf.float32), axis=1)
