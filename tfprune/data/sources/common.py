"""What the data sources share: image sizes, seeded splits, the held-out check, cache sizing and the
photo transforms (`image_transforms`) of the folder and TFRecord sources."""

import numpy as np
import tensorflow as tf

from tfprune.data import augment as aug
from tfprune.data.base import DataError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")
# Sources that keep their decoded training images in memory do so only below this size.
CACHE_LIMIT_BYTES = 4 << 30
# Below this image side, a random resized crop loses the object: use resize + pad/crop/flip instead.
INCEPTION_MIN_SIDE = 128


def image_hw(image_size, default):
    """`image_size` (int, (H, W) or None) as an (H, W) pair of ints."""
    size = default if image_size is None else image_size
    if isinstance(size, (int, np.integer)):
        return (int(size), int(size))
    height, width = size
    return (int(height), int(width))


def check_held_out(held_out, pool, what):
    """The held-out slice must leave training examples behind."""
    if held_out < 0:
        raise DataError(f"held_out_examples must be >= 0, got {held_out}.")
    if held_out >= pool:
        raise DataError(
            f"held_out_examples={held_out} leaves no training data: {what} has only {pool} training "
            f"examples. Lower held_out_examples."
        )


def split_indices(n, val_fraction, held_out, seed):
    """Seeded permutation of range(n) -> (train, held_out, val) index arrays, each sorted.

    Sorting keeps the read order of each role equal to the source order, so streams filtered by
    index stay sequential; shuffling is the pipeline's job.
    """
    if not 0.0 < val_fraction < 1.0:
        raise DataError(f"val_fraction must be in (0, 1), got {val_fraction}.")
    perm = np.random.default_rng(seed).permutation(n)
    n_val = int(round(n * val_fraction))
    check_held_out(held_out, n - n_val, f"the {n}-example data set minus its {n_val} validation examples")
    val, rest = perm[:n_val], perm[n_val:]
    return np.sort(rest[held_out:]), np.sort(rest[:held_out]), np.sort(val)


def cache_fits(num_examples, hw, channels=3, bytes_per_value=1):
    return num_examples * hw[0] * hw[1] * channels * bytes_per_value <= CACHE_LIMIT_BYTES


def resize_uint8(image, hw):
    """Resize a decoded image to `hw` and keep it uint8, so a cached copy costs 1 byte per value."""
    image = tf.image.resize(image, hw, method="bilinear", antialias=True)
    return tf.saturate_cast(tf.round(image), tf.uint8)


def image_transforms(hw, mean, std, policy):
    """(train_fn, eval_fn, decoded_is_resized) for photos of any size.

    "inception": decode the full image; train with a random resized crop, evaluate on the
    resize-shorter-side + center crop view (the ImageNet recipe). "resize": resize once at decode
    time (cacheable), then CIFAR-style pad/crop/flip: the right choice for small images.
    """
    if policy == "auto":
        policy = "inception" if min(hw) >= INCEPTION_MIN_SIDE else "resize"
    if policy == "inception":
        def train_fn(image, seed):
            return aug.normalize(aug.random_resized_crop(image, seed, hw), mean, std)

        def eval_fn(image):
            return aug.normalize(aug.resize_shorter_center_crop(image, hw), mean, std)

        return train_fn, eval_fn, False
    if policy == "resize":
        pad = max(1, min(hw) // 8)

        def train_fn(image, seed):
            return aug.normalize(aug.pad_crop_flip(image, seed, pad=pad), mean, std)

        def eval_fn(image):
            return aug.normalize(image, mean, std)

        return train_fn, eval_fn, True
    raise DataError(f"crop_policy must be 'auto', 'inception' or 'resize', got {policy!r}.")


def decode_image(encoded):
    """JPEG/PNG/GIF/BMP bytes -> uint8 [H, W, 3] (grayscale and RGBA are converted)."""
    return tf.io.decode_image(encoded, channels=3, expand_animations=False)
