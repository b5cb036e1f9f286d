"""Data-layer types shared by the sources and the pipeline builder."""

import dataclasses
from typing import Callable, Optional

import tensorflow as tf

from tfprune.errors import TfpruneError


class DataError(TfpruneError, ValueError):
    """Missing or malformed input data. The message names the problem and how to fix it.

    Raised instead of falling back to synthetic data, so that a run never silently trains on noise.
    """


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """What the model and the trainer need to know about a dataset.

    Attributes:
        num_classes: number of labels; labels are int32 in [0, num_classes).
        image_shape: (H, W, C) of the images as fed to the model.
        num_train: examples in one epoch of `train` (the held-out examples are not counted).
        num_val: examples in `val`.
        name: source name, e.g. "cifar10".
        num_held_out: examples in `held_out` (carved from the training data).
    """

    num_classes: int
    image_shape: tuple
    num_train: int
    num_val: int
    name: str
    num_held_out: int = 0


@dataclasses.dataclass(frozen=True)
class Datasets:
    """The three pipelines of one dataset plus its `DatasetInfo`.

    `train` is one finite, shuffled, augmented epoch batched with drop_remainder=True (every replica
    step is full); `held_out` is the fixed, non-augmented slice of the training data on which the agent
    measures its reward; `val` is the non-augmented validation split. All batch sizes are GLOBAL:
    the trainer distributes them with `strategy.experimental_distribute_dataset`.
    `train_epoch(i)` is epoch i's training pipeline, a function of (seed, i) alone (resumable runs).
    Supports `d["train"]` as well as `d.train`.
    """

    train: tf.data.Dataset
    held_out: tf.data.Dataset
    val: tf.data.Dataset
    info: DatasetInfo
    batch_size: int
    epoch_fn: Optional[Callable[[int], tf.data.Dataset]] = None

    def train_epoch(self, epoch):
        """Epoch `epoch`'s shuffled, augmented training batches: the same for the same seed and epoch
        in any process (falls back to `train` for Datasets built without an `epoch_fn`)."""
        return self.train if self.epoch_fn is None else self.epoch_fn(int(epoch))

    @property
    def steps_per_epoch(self) -> int:
        return self.info.num_train // self.batch_size

    def __getitem__(self, key):
        if key not in ("train", "held_out", "val", "info"):
            raise KeyError(key)
        return getattr(self, key)

    def keys(self):
        return ("train", "held_out", "val", "info")


@dataclasses.dataclass
class SourceSplits:
    """What a source hands to the pipeline builder (internal).

    The three datasets yield *raw* elements in a deterministic order: whatever `decode` accepts
    (encoded bytes, uint8 images, indices). `decode(element) -> (image, int32 label)` turns one into an
    image; it is deterministic, so the pipeline may cache its output (`cache=True`) or, for large
    datasets, shuffle the cheap raw elements first and decode after. `train_fn(image, seed)` and
    `eval_fn(image)` produce the final float32, normalised image of `info.image_shape`.
    """

    train: tf.data.Dataset
    held_out: tf.data.Dataset
    val: tf.data.Dataset
    info: DatasetInfo
    decode: Callable
    train_fn: Callable
    eval_fn: Callable
    cache: bool = True
    shuffle_buffer: Optional[int] = None
