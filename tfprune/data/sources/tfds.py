"""TensorFlow Datasets: cifar10, cifar100 (or the Keras cache of CIFAR), imagenet2012."""

import logging
import os

import gin
import numpy as np
import tensorflow as tf

from tfprune.data import augment as aug
from tfprune.data import keras_cifar
from tfprune.data.base import DataError, DatasetInfo, SourceSplits
from tfprune.data.sources.common import check_held_out, decode_image, image_hw, image_transforms


_TFDS = {
    "cifar10": dict(val_split="test", size=32, mean=aug.CIFAR10_MEAN, std=aug.CIFAR10_STD,
                    counts=(50_000, 10_000)),
    "cifar100": dict(val_split="test", size=32, mean=aug.CIFAR100_MEAN, std=aug.CIFAR100_STD,
                     counts=(50_000, 10_000)),
    "imagenet2012": dict(val_split="validation", size=224, mean=aug.IMAGENET_MEAN, std=aug.IMAGENET_STD,
                         counts=(1_281_167, 50_000)),
}
_IMAGENET_TARS = ("ILSVRC2012_img_train.tar", "ILSVRC2012_img_val.tar")


def _not_prepared_message(name, builder):
    where = f"TFDS dataset {name!r} is not prepared in data_dir={builder.data_dir!r} (no {builder.data_path})."
    if name == "imagenet2012":
        return (
            f"{where} ImageNet cannot be downloaded automatically. Fix: put {' and '.join(_IMAGENET_TARS)} "
            f"(from image-net.org) in a folder and pass manual_dir=<that folder> to prepare it once "
            f"(takes hours), or set data_dir to a folder that already holds a prepared imagenet2012 copy."
        )
    keras_cache = (f" Nor is it in the Keras cache ({' or '.join(keras_cifar.cache_dirs(name))}), which "
                   f"keras.datasets.{name}.load_data() fills and tfprune reads too."
                   if name in keras_cifar.LAYOUTS else "")
    return (
        f"{where}{keras_cache} Fix: run once with download=True (build_datasets(source={name!r}, download=True), "
        f"or gin `build_datasets.download = True`) on a machine with network access, or set data_dir to a "
        f"folder that already holds a prepared {name} copy."
    )


def _prepare_tfds(name, builder, download, manual_dir):
    """Prepare only when asked (download=True) or given the ImageNet manual dir; never implicitly."""
    if builder.is_prepared():
        return
    if not download and manual_dir is None:
        raise DataError(_not_prepared_message(name, builder))
    import tensorflow_datasets as tfds

    if name == "imagenet2012":
        if manual_dir is None:
            raise DataError(_not_prepared_message(name, builder))
        missing = [t for t in _IMAGENET_TARS if not tf.io.gfile.exists(os.path.join(manual_dir, t))]
        if missing:
            raise DataError(
                f"manual_dir={manual_dir!r} lacks {', '.join(missing)}: download them from image-net.org "
                f"into that folder (TFDS prepares imagenet2012 from these files)."
            )
    config = tfds.download.DownloadConfig(manual_dir=manual_dir)
    builder.download_and_prepare(download_config=config)


def _split_size(builder, split, fallback):
    """Examples in a split, from the prepared metadata (the published size when it has none)."""
    try:
        return int(builder.info.splits[split].num_examples)
    except (KeyError, TypeError):
        return fallback


def _read_tfds_splits(builder, val_split, held_out_examples, seed, decoders):
    """(train, held_out, val) raw streams of a prepared TFDS builder.

    The held-out examples are `train[:held_out_examples]` and the training stream the rest: TFDS
    slicing is exact, and shuffling the files of one slice keeps the two disjoint.
    """
    import tensorflow_datasets as tfds

    def read(split, shuffle_files):
        return builder.as_dataset(
            split=split, as_supervised=True, shuffle_files=shuffle_files, decoders=decoders,
            read_config=tfds.ReadConfig(shuffle_seed=seed),
        )

    train = read(f"train[{held_out_examples}:]", True)
    held_out = read(f"train[:{held_out_examples}]", False) if held_out_examples else train.take(0)
    val = read(val_split, False)
    return train, held_out, val


def _tfds_image_fns(is_imagenet, hw, mean, std):
    """(decode, train_fn, eval_fn) for TFDS (image, label) pairs.

    ImageNet arrives as encoded JPEGs (decoded after the shuffle) and uses the inception recipe.
    CIFAR arrives decoded at 32x32: pad-4 random crop + flip, resized only when `hw` differs.
    """
    if is_imagenet:
        train_fn, eval_fn, _ = image_transforms(hw, mean, std, "inception")

        def decode(image, label):
            return decode_image(image), tf.cast(label, tf.int32)

        return decode, train_fn, eval_fn
    native = (32, 32)

    def fit(image):
        return image if hw == native else aug.resize(image, hw)

    def train_fn(image, seed_):
        return aug.normalize(fit(aug.pad_crop_flip(image, seed_, pad=4)), mean, std)

    def eval_fn(image):
        return aug.normalize(fit(image), mean, std)

    def decode(image, label):
        return image, tf.cast(label, tf.int32)

    return decode, train_fn, eval_fn


@gin.configurable
def tfds_source(name, *, image_size=None, data_dir=None, seed=0, held_out_examples=512, download=False,
                manual_dir=None):
    """CIFAR-10/100 or ImageNet from TensorFlow Datasets.

    `download=False` by default: an unprepared dataset raises `DataError` instead of starting a
    multi-GB download (or hanging offline). The held-out examples are `train[:held_out_examples]`,
    the training stream `train[held_out_examples:]` (TFDS slicing is exact, and shuffling files keeps
    the two disjoint). CIFAR: pad-4 random crop + flip, per-channel mean/std. ImageNet: random
    resized crop + flip; eval resize shorter side to 256 and center-crop 224.

    Args:
        name: the TFDS dataset ("cifar10", "cifar100", "imagenet2012"): set by `build_datasets.source`.
        image_size / data_dir / seed / held_out_examples: passed by `build_datasets`, which always
            gives them: bind `build_datasets.image_size` etc., not this function's.
        download: let TFDS download and prepare the dataset when no prepared copy is found.
        manual_dir: folder holding the manually downloaded archives (ImageNet's `ILSVRC2012_img_train.tar`
            and `ILSVRC2012_img_val.tar`).
    """
    import tensorflow_datasets as tfds

    spec = _TFDS[name]
    builder = tfds.builder(name, data_dir=data_dir)
    if name in keras_cifar.LAYOUTS and not download and not builder.is_prepared():
        cached = keras_cifar.find(name)
        if cached is not None:
            logging.warning("%s: no prepared TFDS copy in %s; reading the Keras cache %s.", name, builder.data_dir,
                            cached)
            return _keras_cifar_splits(name, cached, spec, image_size, seed, held_out_examples)
    _prepare_tfds(name, builder, download, manual_dir)

    num_pool = _split_size(builder, "train", spec["counts"][0])
    num_val = _split_size(builder, spec["val_split"], spec["counts"][1])
    check_held_out(held_out_examples, num_pool, name)
    hw = image_hw(image_size, spec["size"])
    is_imagenet = name == "imagenet2012"
    # ImageNet: shuffle the encoded JPEGs (small) and decode after; decoded images would not fit a
    # 10k shuffle buffer. CIFAR: TFDS decodes to uint8 and the pipeline caches the whole set.
    decoders = {"image": tfds.decode.SkipDecoding()} if is_imagenet else None
    train, held_out, val = _read_tfds_splits(builder, spec["val_split"], held_out_examples, seed, decoders)
    decode, train_fn, eval_fn = _tfds_image_fns(is_imagenet, hw, spec["mean"], spec["std"])

    num_classes = builder.info.features["label"].num_classes
    return SourceSplits(
        train=train, held_out=held_out, val=val,
        info=DatasetInfo(num_classes, (*hw, 3), num_pool - held_out_examples, num_val, name, held_out_examples),
        decode=decode, train_fn=train_fn, eval_fn=eval_fn,
        cache=not is_imagenet,
        shuffle_buffer=10_000 if is_imagenet else None,
    )


def _keras_cifar_splits(name, directory, spec, image_size, seed, held_out_examples):
    """CIFAR from the Keras cache (`tfprune.data.keras_cifar`), with the TFDS source's transforms; the
    held-out examples are a seeded sample of the training images, val is the test split."""
    pool_images, pool_labels, val_images, val_labels = keras_cifar.load(name, directory)
    check_held_out(held_out_examples, len(pool_labels), f"{name} ({directory})")
    perm = np.random.default_rng(seed).permutation(len(pool_labels))
    held_idx, train_idx = np.sort(perm[:held_out_examples]), np.sort(perm[held_out_examples:])
    hw = image_hw(image_size, spec["size"])
    decode, train_fn, eval_fn = _tfds_image_fns(False, hw, spec["mean"], spec["std"])

    def slices(idx, images=pool_images, labels=pool_labels):
        return tf.data.Dataset.from_tensor_slices((images[idx], labels[idx]))

    return SourceSplits(
        train=slices(train_idx), held_out=slices(held_idx),
        val=slices(np.arange(len(val_labels)), val_images, val_labels),
        info=DatasetInfo(keras_cifar.LAYOUTS[name][4], (*hw, 3), len(train_idx), len(val_labels), name, len(held_idx)),
        decode=decode, train_fn=train_fn, eval_fn=eval_fn,
        cache=False,  # already in memory
    )


# ----------------------------------------------------------------------------------------------------
# folder: root/class_name/*.png|jpg|jpeg
