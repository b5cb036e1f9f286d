"""folder: images in root/class_name/*.png|jpg|jpeg (or root/train/... + root/val/...)."""

import logging
import os

import gin
import numpy as np
import tensorflow as tf

from tfprune.data import augment as aug
from tfprune.data.base import DataError, DatasetInfo, SourceSplits
from tfprune.data.sources.common import (
    IMAGE_EXTENSIONS,
    cache_fits,
    check_held_out,
    decode_image,
    image_hw,
    image_transforms,
    resize_uint8,
    split_indices,
)


_LAYOUT_HINT = "Expected root/<class_name>/*.jpg (one sub-folder per class), or root/train/... + root/val/..."


def _class_names(directory):
    """Sorted visible sub-folders: the class names, whose index is the label."""
    names = sorted(
        e.name for e in os.scandir(directory) if e.is_dir() and not e.name.startswith(".")
    )
    if not names:
        raise DataError(f"No class folders in image folder {directory!r}. {_LAYOUT_HINT}")
    return names


def _list_images(directory, classes, training=False):
    """(paths, labels) of the image files directly inside each class folder, in sorted order; training
    images must be of two classes at least."""
    paths, labels = [], []
    for label, name in enumerate(classes):
        class_dir = os.path.join(directory, name)
        if not os.path.isdir(class_dir):
            continue
        files = sorted(
            f for f in os.listdir(class_dir)
            if f.lower().endswith(IMAGE_EXTENSIONS) and not f.startswith(".")
        )
        if not files:
            logging.warning("Class folder %s has no %s images.", class_dir, "/".join(IMAGE_EXTENSIONS))
        paths += [os.path.join(class_dir, f) for f in files]
        labels += [label] * len(files)
    if not paths:
        raise DataError(
            f"No images ({', '.join('*' + e for e in IMAGE_EXTENSIONS)}) in the class folders of "
            f"{directory!r} ({', '.join(classes[:5])}{', ...' if len(classes) > 5 else ''}). {_LAYOUT_HINT}"
        )
    if training:
        _check_two_classes(directory, classes, labels)
    return np.array(paths), np.array(labels, np.int32)


def _check_two_classes(directory, classes, labels):
    """A classifier needs two classes with images: one class folder would train a model that always
    answers the same (accuracy 1.0, nothing learned), which is a layout mistake, not a dataset."""
    present = [classes[i] for i in sorted(set(np.asarray(labels).tolist()))]
    if len(present) < 2:
        raise DataError(
            f"Image folder {directory!r} has images of one class only ({present[0]!r}): a classifier needs at "
            f"least two classes, each in its own sub-folder. {_LAYOUT_HINT}")


def _check_image_file(path):
    """Cheap check that a file is a PNG or JPEG, so a bad file is named now, not mid-epoch."""
    with open(path, "rb") as f:
        head = f.read(8)
    if not (head.startswith(b"\x89PNG\r\n\x1a\n") or head.startswith(b"\xff\xd8\xff")):
        raise DataError(
            f"Unreadable image file {path!r}: it is not a PNG or JPEG (starts with {head!r}). "
            f"Delete or replace it (or pass verify_images=False to skip this check)."
        )


def _train_val_dirs(root):
    """(train_dir, val_dir) when root has the train/ + val/ (or validation/) layout, else (None, None)."""
    train = os.path.join(root, "train")
    for val_name in ("val", "validation"):
        val = os.path.join(root, val_name)
        if os.path.isdir(train) and os.path.isdir(val):
            return train, val
    return None, None


@gin.configurable
def folder_source(*, image_size=None, data_dir=None, seed=0, held_out_examples=512, val_fraction=0.2,
                  verify_images=True, crop_policy="auto", mean=aug.IMAGENET_MEAN, std=aug.IMAGENET_STD):
    """Images in `data_dir/class_name/*.png|jpg|jpeg`; the label is the index of the sorted class name.

    With `data_dir/train/` and `data_dir/val/` (or `validation/`) those are the splits; otherwise a
    seeded `val_fraction` of the files is the validation set. `image_size` is required because
    folder images come in any size.

    Args:
        image_size / data_dir / seed / held_out_examples: passed by `build_datasets`, which always
            gives them: bind `build_datasets.image_size` etc., not this function's.
        val_fraction: share of the files, seeded, kept for validation when `data_dir` has no `train/` +
            `val/` (or `validation/`) folders.
        verify_images: check every file's header up front, so that a corrupt file is named before training
            starts rather than failing an epoch anonymously.
        crop_policy: "inception" (random resized crop; resize-shorter-side + center crop to evaluate),
            "resize" (resize once at decode time, then CIFAR-style pad/crop/flip: for small images) or
            "auto" (inception from a 128-pixel side on, else resize).
        mean / std: per-channel normalisation of images on [0, 1] (default ImageNet's statistics).
    """
    if image_size is None:
        raise DataError("source='folder' needs image_size (e.g. image_size=224): folder images come in "
                        "any size and the model needs one.")
    if not data_dir:
        raise DataError(f"source='folder' needs data_dir=<root of the image folder>. {_LAYOUT_HINT}")
    if not os.path.isdir(data_dir):
        raise DataError(f"Image folder {data_dir!r} does not exist or is not a directory. {_LAYOUT_HINT}")

    classes, train, held, val = _folder_splits(data_dir, seed, held_out_examples, val_fraction)

    if verify_images:
        for part in (train, held, val):
            for path in part[0]:
                _check_image_file(path)

    hw = image_hw(image_size, None)
    train_fn, eval_fn, resized = image_transforms(hw, mean, std, crop_policy)

    def decode(path, label):
        image = decode_image(tf.io.read_file(path))
        return (resize_uint8(image, hw) if resized else image), label

    return SourceSplits(
        train=tf.data.Dataset.from_tensor_slices(train),
        held_out=tf.data.Dataset.from_tensor_slices(held),
        val=tf.data.Dataset.from_tensor_slices(val),
        info=DatasetInfo(len(classes), (*hw, 3), len(train[0]), len(val[0]), "folder", len(held[0])),
        decode=decode, train_fn=train_fn, eval_fn=eval_fn,
        cache=resized and cache_fits(len(train[0]), hw),
        shuffle_buffer=len(train[0]),  # file paths are tiny: shuffle the whole epoch
    )


def _folder_splits(data_dir, seed, held_out_examples, val_fraction):
    """(class names, train, held-out, val) of the folder, each split a (paths, labels) pair: its own
    train/ and val/ folders when it has them, else a seeded split of all its files."""
    train_dir, val_dir = _train_val_dirs(data_dir)
    rng = np.random.default_rng(seed)
    if train_dir:
        classes = _class_names(train_dir)
        extra = sorted(set(_class_names(val_dir)) - set(classes))
        if extra:
            raise DataError(f"Validation classes {extra} in {val_dir!r} have no folder in {train_dir!r}.")
        pool_paths, pool_labels = _list_images(train_dir, classes, training=True)
        val_paths, val_labels = _list_images(val_dir, classes)
        check_held_out(held_out_examples, len(pool_paths), f"image folder {train_dir!r}")
        perm = rng.permutation(len(pool_paths))
        held_idx, train_idx = np.sort(perm[:held_out_examples]), np.sort(perm[held_out_examples:])
        train = (pool_paths[train_idx], pool_labels[train_idx])
        held = (pool_paths[held_idx], pool_labels[held_idx])
        val = (val_paths, val_labels)
    else:
        classes = _class_names(data_dir)
        paths, labels = _list_images(data_dir, classes, training=True)
        train_idx, held_idx, val_idx = split_indices(len(paths), val_fraction, held_out_examples, seed)
        train, held, val = [(paths[i], labels[i]) for i in (train_idx, held_idx, val_idx)]
    return classes, train, held, val


# ----------------------------------------------------------------------------------------------------
# tfrecord: the common ImageNet TFRecord layout
