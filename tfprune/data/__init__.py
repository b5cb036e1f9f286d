"""Input pipelines: embedded digits, Fashion-MNIST (local IDX files), TFDS (CIFAR, ImageNet), image
folders, TFRecords, synthetic.

    from tfprune.data import build_datasets
    data = build_datasets("digits", batch_size=128)   # data.train / data.held_out / data.val / data.info
"""

from tfprune.data.base import DataError, DatasetInfo, Datasets
from tfprune.data.pipeline import SOURCES, build_datasets
from tfprune.data.split import split_held_out
from tfprune.data.sources import (
    digits_source,
    fashion_mnist_source,
    folder_source,
    synthetic_source,
    tfds_source,
    tfrecord_source,
)

__all__ = [
    "SOURCES",
    "DataError",
    "DatasetInfo",
    "Datasets",
    "build_datasets",
    "digits_source",
    "fashion_mnist_source",
    "folder_source",
    "split_held_out",
    "synthetic_source",
    "tfds_source",
    "tfrecord_source",
]
