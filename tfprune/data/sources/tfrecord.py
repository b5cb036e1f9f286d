"""tfrecord: tf.train.Examples in the common (tensorflow/models) ImageNet TFRecord layout."""

import os

import gin
import numpy as np
import tensorflow as tf

from tfprune.data import augment as aug
from tfprune.data.base import DataError, DatasetInfo, SourceSplits
from tfprune.data.sources.common import (
    cache_fits,
    check_held_out,
    decode_image,
    image_hw,
    image_transforms,
    resize_uint8,
    split_indices,
)


_FEATURES = {
    "image/encoded": tf.io.FixedLenFeature([], tf.string),
    "image/class/label": tf.io.FixedLenFeature([], tf.int64),
}


_FEATURE_KINDS = {"image/encoded": "bytes_list", "image/class/label": "int64_list"}


def _glob(pattern, what):
    files = sorted(tf.io.gfile.glob(pattern))
    if not files:
        raise DataError(f"No TFRecord files match {what}={pattern!r}. Check the path/glob (e.g. "
                        f"'/data/imagenet/train-*').")
    for path in files:
        _check_first_record(path)
    return files


def _check_first_record(path):
    """The first record of `path` must be a tf.train.Example with the features `_FEATURES` reads:
    checked now (one record per file) so that another layout is named before training, not as a
    parse error from inside tf.data in the middle of the first epoch."""
    try:
        records = [r.numpy() for r in tf.data.TFRecordDataset(path).take(1)]
        example = tf.train.Example.FromString(records[0]) if records else None
    except Exception as e:  # noqa: BLE001  (DataLossError, DecodeError: not TFRecords of Examples)
        raise DataError(f"{path!r} is not a TFRecord file of tf.train.Examples ({type(e).__name__}: "
                        f"{' '.join(str(e).split())[:200]}).") from e
    if example is None:
        return
    features = example.features.feature
    bad = [key for key, kind in _FEATURE_KINDS.items()
           if key not in features or features[key].WhichOneof("kind") != kind]
    if bad:
        raise DataError(
            f"TFRecord file {path!r}: its first record lacks "
            f"{', '.join(f'{k!r} ({_FEATURE_KINDS[k][:-5]})' for k in bad)} (it has "
            f"{sorted(features) or 'no features'}). tfprune reads tf.train.Examples with 'image/encoded' "
            "(bytes: a JPEG or PNG) and 'image/class/label' (int64), the tensorflow/models ImageNet layout.")


def _count_records(files):
    """Examples in TFRecord files (one sequential read; pass the counts to skip it for huge sets)."""
    return int(tf.data.TFRecordDataset(files).reduce(np.int64(0), lambda n, _: n + 1))


def _tfrecord_patterns(data_dir, file_pattern, val_file_pattern):
    """(file_pattern, val_file_pattern): explicit globs win; else `data_dir/train-*` and, when such
    files exist, `data_dir/validation-*` (the tensorflow/models ImageNet layout)."""
    if file_pattern is not None:
        return file_pattern, val_file_pattern
    if not data_dir:
        raise DataError("source='tfrecord' needs file_pattern (a glob of training TFRecords) or data_dir "
                        "holding train-* (and validation-*) files.")
    file_pattern = os.path.join(data_dir, "train-*")
    if val_file_pattern is None and tf.io.gfile.glob(os.path.join(data_dir, "validation-*")):
        val_file_pattern = os.path.join(data_dir, "validation-*")
    return file_pattern, val_file_pattern


def _filter_by_role(stream, num_records, val_fraction, held_out_examples, seed):
    """(train, held_out, val, num_train, num_val) carved out of one record stream by a seeded split.

    Each record's role (0 train, 1 held-out, 2 val) is looked up by its position, so the three
    streams stay disjoint and read the files sequentially.
    """
    train_idx, held_idx, val_idx = split_indices(num_records, val_fraction, held_out_examples, seed)
    role = np.zeros(num_records, np.int32)
    role[held_idx], role[val_idx] = 1, 2
    role = tf.constant(role)

    def pick(r):
        picked = stream.enumerate().filter(lambda i, _: tf.gather(role, i) == r)
        return picked.map(lambda _, record: record)

    return pick(0), pick(1), pick(2), len(train_idx), len(val_idx)


def _tfrecord_decoder(hw, resized, num_classes, label_offset):
    """A serialized tf.train.Example -> (image uint8, label int32).

    The label is checked against [0, num_classes) at decode time: a wrong `label_offset` (1-based
    ImageNet labels) would otherwise train silently on shifted classes or crash deep in the loss.
    """

    def decode(record):
        parsed = tf.io.parse_single_example(record, _FEATURES)
        label = tf.cast(parsed["image/class/label"] - label_offset, tf.int32)
        check = tf.debugging.assert_less(
            label, num_classes,
            message=f"TFRecord label >= num_classes={num_classes}: check num_classes and label_offset "
                    f"(1-based ImageNet labels need label_offset=1).")
        check_neg = tf.debugging.assert_non_negative(
            label, message="Negative TFRecord label after label_offset: check label_offset.")
        with tf.control_dependencies([check, check_neg]):
            image = decode_image(parsed["image/encoded"])
        return (resize_uint8(image, hw) if resized else image), label

    return decode


@gin.configurable
def tfrecord_source(*, image_size=None, data_dir=None, seed=0, held_out_examples=512, num_classes=None,
                    file_pattern=None, val_file_pattern=None, val_fraction=0.2, label_offset=0,
                    num_train_examples=None, num_val_examples=None, crop_policy="auto",
                    mean=aug.IMAGENET_MEAN, std=aug.IMAGENET_STD):
    """TFRecords of tf.train.Examples with `image/encoded` (JPEG/PNG) and `image/class/label` (int64).

    `file_pattern` defaults to `data_dir/train-*` and `val_file_pattern` to `data_dir/validation-*`
    (the tensorflow/models ImageNet layout, whose labels are 1..1000: set `label_offset=1`). Without
    validation files a seeded `val_fraction` of the records is used. Files are read sequentially in
    sorted order so the held-out records (the first `held_out_examples`) are the same every epoch and
    never reach `train`, whatever tf.data options the trainer sets; the shuffle buffer randomises.

    Args:
        image_size / data_dir / seed / held_out_examples: passed by `build_datasets`, which always
            gives them: bind `build_datasets.image_size` etc., not this function's.
        num_classes: number of classes (required: the records do not say).
        file_pattern / val_file_pattern: glob of the training / validation record files (default
            `data_dir/train-*` / `data_dir/validation-*`).
        val_fraction: share of the training records, seeded, used for validation when there are no
            validation files.
        label_offset: subtracted from every stored label (1 for the tensorflow/models ImageNet layout).
        num_train_examples / num_val_examples: record counts when known (None: counted by reading the files).
        crop_policy: "inception", "resize" or "auto", as for `folder_source`.
        mean / std: per-channel normalisation of images on [0, 1] (default ImageNet's statistics).
    """
    if num_classes is None:
        raise DataError("source='tfrecord' needs num_classes: the records do not say how many classes exist.")
    file_pattern, val_file_pattern = _tfrecord_patterns(data_dir, file_pattern, val_file_pattern)
    train_files = _glob(file_pattern, "file_pattern")
    stream = tf.data.TFRecordDataset(train_files)
    num_pool = num_train_examples or _count_records(train_files)

    if val_file_pattern is not None:
        val_files = _glob(val_file_pattern, "val_file_pattern")
        check_held_out(held_out_examples, num_pool, f"file_pattern={file_pattern!r}")
        train, held_out = stream.skip(held_out_examples), stream.take(held_out_examples)
        val = tf.data.TFRecordDataset(val_files)
        num_train = num_pool - held_out_examples
        num_val = num_val_examples or _count_records(val_files)
    else:
        train, held_out, val, num_train, num_val = _filter_by_role(
            stream, num_pool, val_fraction, held_out_examples, seed)

    hw = image_hw(image_size, 224)
    train_fn, eval_fn, resized = image_transforms(hw, mean, std, crop_policy)
    return SourceSplits(
        train=train, held_out=held_out, val=val,
        info=DatasetInfo(int(num_classes), (*hw, 3), num_train, num_val, "tfrecord", held_out_examples),
        decode=_tfrecord_decoder(hw, resized, num_classes, label_offset), train_fn=train_fn, eval_fn=eval_fn,
        cache=resized and cache_fits(num_train, hw),
        shuffle_buffer=10_000,
    )


# ----------------------------------------------------------------------------------------------------
# synthetic: learnable random data for smoke runs and benchmarks
# ----------------------------------------------------------------------------------------------------
