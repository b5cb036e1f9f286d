"""Data sources: where examples come from and how each is decoded and augmented.

Each source returns a `SourceSplits` with three deterministic raw streams (train, held_out, val).
The held-out examples are always carved out of the *training* data and removed from `train`: the agent
measures its reward on them, so they must be unseen by the weights yet not be the validation set that
the final accuracy is reported on.

Sources never fall back to synthetic data: anything missing raises `DataError` saying how to fix it.

One module per source: `digits`, `fashion_mnist`, `tfds` (CIFAR-10/100, ImageNet), `folder`, `tfrecord`,
`synthetic`; `common` holds what they share.
"""

from tfprune.data.sources.common import IMAGE_EXTENSIONS
from tfprune.data.sources.digits import digits_source
from tfprune.data.sources.fashion_mnist import FASHION_MNIST_CLASSES, fashion_mnist_source
from tfprune.data.sources.folder import folder_source
from tfprune.data.sources.synthetic import synthetic_source
from tfprune.data.sources.tfds import tfds_source
from tfprune.data.sources.tfrecord import tfrecord_source

__all__ = [
    "FASHION_MNIST_CLASSES",
    "IMAGE_EXTENSIONS",
    "digits_source",
    "fashion_mnist_source",
    "folder_source",
    "synthetic_source",
    "tfds_source",
    "tfrecord_source",
]
