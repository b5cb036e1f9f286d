"""digits: scikit-learn's embedded 8x8 handwritten digits, the real-image default (no download)."""

import gin
import numpy as np
import tensorflow as tf

from tfprune.data import augment as aug
from tfprune.data.base import DatasetInfo, SourceSplits
from tfprune.data.sources.common import image_hw, split_indices


@gin.configurable
def digits_source(*, image_size=None, data_dir=None, seed=0, held_out_examples=512, val_fraction=0.2):
    """scikit-learn's 1,797 8x8 handwritten digits, upsampled to `image_size` (32) and 3 channels.

    The images ship inside the scikit-learn wheel, so quick starts and smoke runs train on real
    images with no download. `data_dir` is ignored. Augmentation is a random translation without
    flips (a mirrored digit is not the same digit).

    Args:
        image_size / data_dir / seed / held_out_examples: passed by `build_datasets`, which always
            gives them: bind `build_datasets.image_size` etc., not this function's.
        val_fraction: share of the 1,797 images, seeded, kept apart as the validation set.
    """
    del data_dir
    from sklearn.datasets import load_digits  # imported lazily: only this source needs sklearn

    bunch = load_digits()
    hw = image_hw(image_size, 32)
    pixels = (bunch.images.astype(np.float32) / 16.0)[..., None]  # [n, 8, 8, 1] on [0, 1]
    images = tf.image.resize(pixels, hw, method="bilinear").numpy().clip(0.0, 1.0)
    images = np.repeat(images, 3, axis=-1).astype(np.float32)
    labels = bunch.target.astype(np.int32)

    train_idx, held_idx, val_idx = split_indices(len(labels), val_fraction, held_out_examples, seed)
    pool = images[np.concatenate([train_idx, held_idx])]  # statistics of the training data only
    mean = (float(pool.mean()),) * 3
    std = (float(pool.std()),) * 3
    pad = max(1, min(hw) // 8)

    def slices(idx):
        return tf.data.Dataset.from_tensor_slices((images[idx], labels[idx]))

    return SourceSplits(
        train=slices(train_idx),
        held_out=slices(held_idx),
        val=slices(val_idx),
        info=DatasetInfo(10, (*hw, 3), len(train_idx), len(val_idx), "digits", len(held_idx)),
        decode=lambda image, label: (image, label),
        train_fn=lambda image, seed: aug.normalize(aug.pad_crop_flip(image, seed, pad, flip=False), mean, std),
        eval_fn=lambda image: aug.normalize(image, mean, std),
        cache=False,  # already in memory
    )
