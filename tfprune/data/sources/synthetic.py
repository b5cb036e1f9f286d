"""synthetic: learnable random data for smoke runs and benchmarks."""

import gin
import numpy as np
import tensorflow as tf

from tfprune.data.base import DatasetInfo, SourceSplits
from tfprune.data.sources.common import cache_fits, check_held_out, image_hw


@gin.configurable
def synthetic_source(*, image_size=None, data_dir=None, seed=0, held_out_examples=512, num_classes=10,
                     num_train=2048, num_val=512, noise=1.0, channels=3):
    """Each class is a smooth random template; an example is its class template plus Gaussian noise.

    Learnable (a smoke run can show accuracy above chance) yet needs no data at all. Examples are
    generated from their index with stateless ops, so any image size costs no memory up front and the
    splits are disjoint by construction: held-out indices [0, H), train [H, H + num_train), val from
    a separate seed stream. `num_train` excludes the held-out examples. No augmentation.

    Args:
        image_size / data_dir / seed / held_out_examples: passed by `build_datasets`, which always
            gives them: bind `build_datasets.image_size` etc., not this function's.
        num_classes: number of class templates (and labels).
        num_train / num_val: training examples (held-out ones excluded) / validation examples generated.
        noise: standard deviation of the Gaussian noise added to the class template.
        channels: image channels.
    """
    del data_dir
    hw = image_hw(image_size, 32)
    templates = np.random.default_rng(seed).normal(size=(num_classes, 8, 8, channels)).astype(np.float32)
    templates = tf.constant(templates)
    check_held_out(held_out_examples, held_out_examples + num_train, "synthetic")  # checks >= 0

    def decode(index, stream):
        example_seed = tf.stack([tf.cast(seed, tf.int64) * 2 + stream, index])
        label_seed, noise_seed = tf.unstack(tf.random.experimental.stateless_split(example_seed, 2))
        label = tf.random.stateless_uniform([], label_seed, maxval=num_classes, dtype=tf.int32)
        template = tf.image.resize(templates[label][None], hw, method="bilinear")[0]
        image = template + noise * tf.random.stateless_normal((*hw, channels), noise_seed)
        return image, label

    def indices(start, count, stream):
        return tf.data.Dataset.range(start, start + count).map(lambda i: (i, tf.constant(stream, tf.int64)))

    return SourceSplits(
        train=indices(held_out_examples, num_train, 0),
        held_out=indices(0, held_out_examples, 0),
        val=indices(0, num_val, 1),
        info=DatasetInfo(num_classes, (*hw, channels), num_train, num_val, "synthetic", held_out_examples),
        decode=decode,
        train_fn=lambda image, seed_: tf.cast(image, tf.float32),
        eval_fn=lambda image: tf.cast(image, tf.float32),
        cache=cache_fits(num_train, hw, channels, bytes_per_value=4),
    )
