"""Computes MobileNetV2's gradients on one batch N times in a fresh interpreter and prints how many
distinct results came out. With `--deterministic`, `tfprune.infra.determinism.enable()` runs first (it must
come before TensorFlow's runtime starts, hence a process of its own); `--late` starts the runtime
before it (then it warns and returns False). Without `--deterministic`, on a multi-core CPU the head
convolution's gradient differed between calls (tfprune/infra/determinism.py)."""

import hashlib
import sys

import numpy as np

import tfprune  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
from tfprune.infra import determinism

DETERMINISTIC = "--deterministic" in sys.argv
REPEATS = 8

if "--late" in sys.argv:
    import tensorflow

    tensorflow.constant(1.0) + 1.0  # starts the runtime with the default inter-op pool
if DETERMINISTIC:
    print("DETERMINISM_ENABLED", determinism.enable())

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from tfprune.models import build_model  # noqa: E402


def main():
    keras.utils.set_random_seed(0)
    model = build_model("mobilenetv2_cifar", num_classes=10, input_shape=(28, 28, 1), width_multiplier=0.5)
    rng = np.random.default_rng(0)
    x = tf.constant(rng.standard_normal((128, 28, 28, 1)).astype(np.float32))
    y = tf.constant(rng.integers(0, 10, 128))

    @tf.function
    def gradients():
        with tf.GradientTape() as tape:
            logits = model(x, training=True)
            loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True))
        return tape.gradient(loss, model.trainable_variables)

    digests = set()
    for _ in range(REPEATS):
        digest = hashlib.md5()
        for g in gradients():
            digest.update(np.ascontiguousarray(g.numpy()).tobytes())
        digests.add(digest.hexdigest())
    print("DISTINCT_GRADIENTS", len(digests), "OF", REPEATS)


main()
