"""`split_held_out`: set a held-out set aside from a user's training data, for the agent's reward.

The agent scores sub-networks on examples the weights were never trained on (`JointPruner(held_out=...)`),
drawn from the *training* data so that the validation set stays untouched. This helper carves them off:

    (x_train, y_train), held_out = split_held_out((x, y), 512)           # arrays: a seeded random subset
    train_ds, held_out = split_held_out(train_ds, 512)                   # a tf.data pipeline of batches

The held-out part always comes back as a pair of numpy arrays (it is small and scored many times). A
dataset gives up its first batches (at least `n` examples) and trains on the rest (`dataset.skip`), so it
must read in the same order every time: split before shuffling, or shuffle with
`reshuffle_each_iteration=False`. A dataset that reads in a new order each time is refused (its first
batches' labels are read twice and compared), since the held-out examples would then be trained on.
"""

import math

import numpy as np
import tensorflow as tf

from tfprune.data.base import DataError


def split_held_out(data, n, seed=0):
    """`(train, (held_images, held_labels))`: `n` examples (an int, or a fraction of the data in (0, 1)) kept
    out of `data`, which is `(images, labels)` arrays or a `tf.data.Dataset` of `(images, labels)` batches;
    `train` is of the same kind as `data`."""
    if isinstance(data, tf.data.Dataset):
        return _split_dataset(data, n)
    images, labels = _arrays(data)
    count = _count(n, len(images))
    order = np.random.default_rng(seed).permutation(len(images))
    held, kept = np.sort(order[:count]), np.sort(order[count:])
    return (images[kept], labels[kept]), (images[held], labels[held])


def _arrays(data):
    if not (isinstance(data, (tuple, list)) and len(data) == 2):
        raise DataError("split_held_out needs (images, labels) arrays or a tf.data.Dataset of (images, labels) "
                        f"batches; got {type(data).__name__}.")
    images, labels = np.asarray(data[0]), np.asarray(data[1])
    if len(images) != len(labels):
        raise DataError(f"split_held_out: {len(images)} images but {len(labels)} labels.")
    return images, labels


def _count(n, total):
    """`n` as a number of examples: an int, or a fraction of `total` (None: unknown size)."""
    if isinstance(n, float) and 0 < n < 1:
        if total is None:
            raise DataError("split_held_out(dataset, fraction): the dataset's size is unknown; pass a number of "
                            "examples instead, e.g. split_held_out(dataset, 512).")
        n = max(1, int(round(n * total)))
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 1:
        raise DataError(f"split_held_out: n must be a number of examples >= 1 or a fraction in (0, 1); got {n!r}.")
    if total is not None and n >= total:
        raise DataError(f"split_held_out: holding out {n} of {total} examples leaves none to train on; hold out "
                        "fewer (a few hundred is plenty for the reward).")
    return int(n)


def _split_dataset(dataset, n):
    spec = dataset.element_spec
    if not (isinstance(spec, tuple) and len(spec) == 2):
        raise DataError(f"split_held_out needs a dataset of (images, labels) batches; its elements are {spec}.")
    if spec[0].shape.rank is not None and spec[0].shape.rank < 4:
        raise DataError(f"split_held_out needs batched images (batch, height, width, channels); the dataset yields "
                        f"shape {spec[0].shape}: call .batch(...) on it first.")
    batches = int(dataset.cardinality())
    first = next(iter(dataset.take(1)), None)
    if first is None:
        raise DataError("split_held_out: the dataset is empty.")
    batch_size = int(first[1].shape[0])
    total = batches * batch_size if batches > 0 else None
    count = _count(n, total)
    take = math.ceil(count / batch_size)
    if 0 < batches <= take:
        raise DataError(f"split_held_out: {count} held-out examples take all {batches} batches of the dataset; "
                        "hold out fewer.")
    held = list(dataset.take(take))
    again = [np.asarray(y) for _, y in dataset.take(take)]
    if any(not np.array_equal(np.asarray(y), z) for (_, y), z in zip(held, again)):
        raise DataError("split_held_out: the dataset reads in a new order each time (shuffled with "
                        "reshuffle_each_iteration), so the held-out batches would be trained on too. Split before "
                        "shuffling (shuffle the returned training dataset), or pass (images, labels) arrays.")
    images = np.concatenate([np.asarray(x) for x, _ in held])
    labels = np.concatenate([np.asarray(y) for _, y in held])
    return dataset.skip(take), (images, labels)
