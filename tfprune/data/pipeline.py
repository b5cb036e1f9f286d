"""`build_datasets`: one gin-configurable entry point from a source name to batched tf.data pipelines."""

import functools

import gin
import tensorflow as tf

from tfprune.data import sources
from tfprune.data.base import DataError, Datasets

AUTOTUNE = tf.data.AUTOTUNE

SOURCES = {
    "digits": sources.digits_source,
    "fashion_mnist": sources.fashion_mnist_source,
    "cifar10": functools.partial(sources.tfds_source, "cifar10"),
    "cifar100": functools.partial(sources.tfds_source, "cifar100"),
    "imagenet2012": functools.partial(sources.tfds_source, "imagenet2012"),
    "folder": sources.folder_source,
    "tfrecord": sources.tfrecord_source,
    "synthetic": sources.synthetic_source,
}
# Cached training sets are shuffled whole up to this many examples.
_MAX_CACHED_SHUFFLE = 50_000


@gin.configurable
def build_datasets(source="digits", batch_size=128, image_size=None, data_dir=None, held_out_examples=512,
                   seed=0, *, augment=True, eval_batch_size=None, shuffle_buffer=None, cache=None,
                   **source_kwargs):
    """Builds the train / held-out / val pipelines of `source`.

    Args:
        source: one of `SOURCES` ("digits" is the embedded default: real images, no download).
        batch_size: GLOBAL batch size; the trainer distributes it across replicas.
        image_size: int or (H, W) fed to the model; each source has a default except "folder".
        data_dir: TFDS data dir, image-folder root, TFRecord directory, or the folder holding the
            Fashion-MNIST IDX files (searched first), depending on the source.
        held_out_examples: training examples set aside (never trained on) for the agent's reward.
        seed: fixes the splits, the shuffle order and the augmentation.
        augment: False trains on the eval view (useful to debug or to measure memorisation).
        eval_batch_size: batch size of `held_out` and `val` (default `batch_size`).
        shuffle_buffer: override the source's shuffle buffer (default: whole epoch when cached).
        cache: override whether the decoded training/val images are cached in memory.
        **source_kwargs: source-specific options, e.g. download=True, manual_dir, num_classes,
            file_pattern, val_fraction (see `tfprune.data.sources`).

    Returns:
        `Datasets` with `train` (one finite epoch, shuffled, augmented, drop_remainder=True),
        `held_out` and `val` (fixed, not augmented, last batch may be partial) and `info`.
    """
    _check_image_size(image_size)
    loader = SOURCES.get(source)
    if loader is None:
        raise DataError(f"Unknown data source {source!r}; valid sources: {', '.join(sorted(SOURCES))}.")
    splits = loader(image_size=image_size, data_dir=data_dir, seed=seed,
                    held_out_examples=held_out_examples, **source_kwargs)
    info = splits.info
    if info.num_train < batch_size:
        raise DataError(f"{source}: only {info.num_train} training examples (after {info.num_held_out} "
                        f"held out) for a batch of {batch_size}: lower batch_size or held_out_examples.")
    use_cache = splits.cache if cache is None else cache
    eval_batch_size = eval_batch_size or batch_size
    train, epoch_fn = _train_pipeline(splits, batch_size, seed, augment, shuffle_buffer, use_cache)
    return Datasets(
        train=train,
        held_out=_eval_pipeline(splits, splits.held_out, eval_batch_size, cache_output=True),
        val=_eval_pipeline(splits, splits.val, eval_batch_size, cache_decoded=use_cache),
        info=info,
        batch_size=batch_size,
        epoch_fn=epoch_fn,
    )


def _check_image_size(image_size):
    """A clear error for sizes no image can have, before TensorFlow fails deep inside a resize."""
    if image_size is None:
        return
    sizes = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    if len(sizes) != 2 or not all(isinstance(s, int) and s > 0 for s in sizes):
        raise DataError(f"image_size must be a positive int or (height, width) of positive ints, got {image_size!r}.")


def _finish(image, label, shape):
    """Static shapes (Keras needs them) and the dtypes promised to the model: float32 / int32."""
    return tf.ensure_shape(tf.cast(image, tf.float32), shape), tf.cast(label, tf.int32)


def _train_pipeline(splits, batch_size, seed, augment, shuffle_buffer, use_cache):
    """decode (-> cache) -> shuffle -> (decode) -> augment with per-example seeds -> batch.

    Returns (`train`, `epoch_fn`): `train` reshuffles on every iteration (a `model.fit` over many
    epochs sees a new order each time, the same sequence of orders for the same `seed`); `epoch_fn(i)`
    is epoch i's own pipeline, whose order and augmentation depend on (seed, i) alone. The trainer
    uses the latter: a run resumed at epoch i after a kill must see the batches an uninterrupted run
    sees at epoch i, and an iterator's count of past iterations does not survive a process.
    """
    ds = splits.train
    if use_cache:
        ds = ds.map(splits.decode, num_parallel_calls=AUTOTUNE).cache()
    buffer = shuffle_buffer or splits.shuffle_buffer or min(splits.info.num_train, _MAX_CACHED_SHUFFLE)
    shape = splits.info.image_shape

    def transform(example, example_seed):
        image, label = example
        image = splits.train_fn(image, example_seed) if augment else splits.eval_fn(image)
        return _finish(image, label, shape)

    def pipeline(shuffle_seed, reshuffle):
        shuffled = ds.shuffle(buffer, seed=shuffle_seed, reshuffle_each_iteration=reshuffle)
        if not use_cache:
            shuffled = shuffled.map(splits.decode, num_parallel_calls=AUTOTUNE)
        # One stateless seed pair per example: reproducible although map runs in parallel.
        seeds = tf.data.Dataset.random(seed=shuffle_seed, rerandomize_each_iteration=reshuffle)
        seeds = seeds.batch(2, drop_remainder=True)
        batches = tf.data.Dataset.zip((shuffled, seeds)).map(transform, num_parallel_calls=AUTOTUNE)
        return batches.batch(batch_size, drop_remainder=True).prefetch(AUTOTUNE)

    return pipeline(seed, True), lambda epoch: pipeline(epoch_seed(seed, epoch), False)


def epoch_seed(seed, epoch):
    """The shuffle/augmentation seed of epoch `epoch` (any int >= 0) of a run seeded `seed`."""
    if epoch < 0:
        raise ValueError(f"epoch must be >= 0, got {epoch}.")
    return (int(seed) * 1_000_003 + int(epoch) + 1) % (2**63 - 1)


def _eval_pipeline(splits, ds, batch_size, cache_decoded=False, cache_output=False):
    """decode -> (cache) -> eval view -> (cache) -> batch; deterministic order, nothing random."""
    ds = ds.map(splits.decode, num_parallel_calls=AUTOTUNE)
    if cache_decoded and not cache_output:
        ds = ds.cache()
    shape = splits.info.image_shape
    ds = ds.map(lambda image, label: _finish(splits.eval_fn(image), label, shape),
                num_parallel_calls=AUTOTUNE)
    if cache_output:
        ds = ds.cache()
    return ds.batch(batch_size).prefetch(AUTOTUNE)
