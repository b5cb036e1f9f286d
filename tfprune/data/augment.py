"""Image preprocessing: normalisation, train-time augmentation and eval-time crops.

Every random op here is *stateless* and takes an explicit `seed` (shape [2] int tensor). The pipeline
zips each training example with a seed from `tf.data.Dataset.random`, so augmentation is reproducible
for a given `seed` even though `map` runs in parallel (stateful random ops in a parallel map are not).

Images enter these functions as uint8 in [0, 255] or float in [0, 1] with shape [H, W, C], and leave
as float32. Normalisation (per-channel mean/std on the [0, 1] scale) is always the last step, so
padding and cropping fill with black pixels, as in the reference CIFAR / ImageNet recipes.
"""

import tensorflow as tf

# Per-channel statistics on the [0, 1] scale (the values used by the usual CIFAR / ImageNet recipes).
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
CIFAR100_MEAN = (0.5071, 0.4865, 0.4409)
CIFAR100_STD = (0.2673, 0.2564, 0.2762)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# Eval-time ImageNet crop: resize the shorter side to size / 0.875 (256 for 224), then center-crop.
IMAGENET_CROP_FRACTION = 0.875


def to_unit_float(image):
    """uint8 [0, 255] -> float32 [0, 1]; float input is assumed to be on [0, 1] already."""
    if image.dtype == tf.uint8:
        return tf.cast(image, tf.float32) / 255.0
    return tf.cast(image, tf.float32)


def normalize(image, mean, std):
    """Per-channel standardisation of a [0, 1] image (the model never sees raw pixel values)."""
    mean = tf.constant(mean, tf.float32)
    std = tf.constant(std, tf.float32)
    return (to_unit_float(image) - mean) / std


def _split(seed, n):
    """n independent stateless seeds from one, so each random op draws its own numbers."""
    return tf.unstack(tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), num=n))


def pad_crop_flip(image, seed, pad=4, flip=True):
    """The standard CIFAR augmentation: zero-pad `pad` pixels, random crop back, random h-flip.

    With `flip=False` it is a pure random translation, the right choice for digits and text where a
    mirrored image is a different (or no) class.
    """
    image = to_unit_float(image)
    shape = tf.shape(image)
    crop_seed, flip_seed = _split(seed, 2)
    padded = tf.pad(image, [[pad, pad], [pad, pad], [0, 0]])
    image = tf.image.stateless_random_crop(padded, shape, seed=crop_seed)
    if flip:
        image = tf.image.stateless_random_flip_left_right(image, seed=flip_seed)
    return image


def random_resized_crop(image, seed, size, area_range=(0.08, 1.0), aspect_ratio_range=(3 / 4, 4 / 3),
                        flip=True):
    """Inception-style crop: a random box of 8-100% of the area and 3:4-4:3 aspect, resized to `size`.

    This is the ImageNet training augmentation of the ResNet / MobileNet papers; it falls back to the
    whole image when no box satisfies the constraints within 10 attempts.
    """
    image = to_unit_float(image)
    box_seed, flip_seed = _split(seed, 2)
    begin, crop_size, _ = tf.image.stateless_sample_distorted_bounding_box(
        tf.shape(image),
        bounding_boxes=tf.constant([0.0, 0.0, 1.0, 1.0], shape=[1, 1, 4]),
        seed=box_seed,
        min_object_covered=0.1,
        aspect_ratio_range=aspect_ratio_range,
        area_range=area_range,
        max_attempts=10,
        use_image_if_no_bounding_boxes=True,
    )
    image = tf.slice(image, begin, crop_size)
    image = tf.image.resize(image, _hw(size), method="bilinear", antialias=False)
    if flip:
        image = tf.image.stateless_random_flip_left_right(image, seed=flip_seed)
    return image


def resize_shorter_center_crop(image, size, crop_fraction=IMAGENET_CROP_FRACTION):
    """Eval-time ImageNet view: resize the shorter side to size/crop_fraction, center-crop `size`."""
    image = to_unit_float(image)
    height, width = _hw(size)
    shape = tf.cast(tf.shape(image)[:2], tf.float32)
    target_short = tf.cast(tf.math.round(max(height, width) / crop_fraction), tf.float32)
    scale = target_short / tf.reduce_min(shape)
    new_hw = tf.cast(tf.math.ceil(shape * scale), tf.int32)
    new_hw = tf.maximum(new_hw, [height, width])
    image = tf.image.resize(image, new_hw, method="bilinear", antialias=True)
    top = (new_hw[0] - height) // 2
    left = (new_hw[1] - width) // 2
    return image[top:top + height, left:left + width, :]


def resize(image, size):
    """Plain resize to `size` (no crop); used for small images where any crop loses the object."""
    image = to_unit_float(image)
    return tf.image.resize(image, _hw(size), method="bilinear", antialias=True)


def _hw(size):
    """`size` as (height, width): an int means a square."""
    if isinstance(size, int):
        return (size, size)
    height, width = size
    return (int(height), int(width))
