"""Data sources: where examples come from and how each is decoded and augmented.

Each source returns a `SourceSplits` with three deterministic raw streams (train, held_out, val).
The held-out examples are always carved out of the *training* data and removed from `train`: the agent
measures its reward on them, so they must be unseen by the weights yet not be the validation set that
the final accuracy is reported on.

Sources never fall back to synthetic data: anything missing raises `DataError` saying how to fix it.
"""

import logging
import os

import gin
import numpy as np
import tensorflow as tf

from tfprune.data import augment as aug
from tfprune.data import keras_cifar
from tfprune.data.base import DataError, DatasetInfo, SourceSplits
from tfprune.data.idx import IMAGES_MAGIC, LABELS_MAGIC, read_idx

AUTOTUNE = tf.data.AUTOTUNE
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")
# Sources that keep their decoded training images in memory do so only below this size.
_CACHE_LIMIT_BYTES = 4 << 30
# Below this image side, a random resized crop loses the object: use resize + pad/crop/flip instead.
_INCEPTION_MIN_SIDE = 128


# ----------------------------------------------------------------------------------------------------
# Shared helpers
# ----------------------------------------------------------------------------------------------------


def _hw(image_size, default):
    """`image_size` (int, (H, W) or None) as an (H, W) pair of ints."""
    size = default if image_size is None else image_size
    if isinstance(size, (int, np.integer)):
        return (int(size), int(size))
    height, width = size
    return (int(height), int(width))


def _check_held_out(held_out, pool, what):
    """The held-out slice must leave training examples behind."""
    if held_out < 0:
        raise DataError(f"held_out_examples must be >= 0, got {held_out}.")
    if held_out >= pool:
        raise DataError(
            f"held_out_examples={held_out} leaves no training data: {what} has only {pool} training "
            f"examples. Lower held_out_examples."
        )


def _split_indices(n, val_fraction, held_out, seed):
    """Seeded permutation of range(n) -> (train, held_out, val) index arrays, each sorted.

    Sorting keeps the read order of each role equal to the source order, so streams filtered by
    index stay sequential; shuffling is the pipeline's job.
    """
    if not 0.0 < val_fraction < 1.0:
        raise DataError(f"val_fraction must be in (0, 1), got {val_fraction}.")
    perm = np.random.default_rng(seed).permutation(n)
    n_val = int(round(n * val_fraction))
    _check_held_out(held_out, n - n_val, f"the {n}-example data set minus its {n_val} validation examples")
    val, rest = perm[:n_val], perm[n_val:]
    return np.sort(rest[held_out:]), np.sort(rest[:held_out]), np.sort(val)


def _cache_fits(num_examples, hw, channels=3, bytes_per_value=1):
    return num_examples * hw[0] * hw[1] * channels * bytes_per_value <= _CACHE_LIMIT_BYTES


def _resize_uint8(image, hw):
    """Resize a decoded image to `hw` and keep it uint8, so a cached copy costs 1 byte per value."""
    image = tf.image.resize(image, hw, method="bilinear", antialias=True)
    return tf.saturate_cast(tf.round(image), tf.uint8)


def _image_transforms(hw, mean, std, policy):
    """(train_fn, eval_fn, decoded_is_resized) for photos of any size.

    "inception": decode the full image; train with a random resized crop, evaluate on the
    resize-shorter-side + center crop view (the ImageNet recipe). "resize": resize once at decode
    time (cacheable), then CIFAR-style pad/crop/flip: the right choice for small images.
    """
    if policy == "auto":
        policy = "inception" if min(hw) >= _INCEPTION_MIN_SIDE else "resize"
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


def _decode_image(encoded):
    """JPEG/PNG/GIF/BMP bytes -> uint8 [H, W, 3] (grayscale and RGBA are converted)."""
    return tf.io.decode_image(encoded, channels=3, expand_animations=False)


# ----------------------------------------------------------------------------------------------------
# digits: the embedded real-image default
# ----------------------------------------------------------------------------------------------------


@gin.configurable
def digits_source(*, image_size=None, data_dir=None, seed=0, held_out_examples=512, val_fraction=0.2):
    """scikit-learn's 1,797 8x8 handwritten digits, upsampled to `image_size` (32) and 3 channels.

    The images ship inside the scikit-learn wheel, so quick starts and smoke runs train on real
    images with no download. `data_dir` is ignored. Augmentation is a random translation without
    flips (a mirrored digit is not the same digit).
    """
    del data_dir
    from sklearn.datasets import load_digits  # imported lazily: only this source needs sklearn

    bunch = load_digits()
    hw = _hw(image_size, 32)
    pixels = (bunch.images.astype(np.float32) / 16.0)[..., None]  # [n, 8, 8, 1] on [0, 1]
    images = tf.image.resize(pixels, hw, method="bilinear").numpy().clip(0.0, 1.0)
    images = np.repeat(images, 3, axis=-1).astype(np.float32)
    labels = bunch.target.astype(np.int32)

    train_idx, held_idx, val_idx = _split_indices(len(labels), val_fraction, held_out_examples, seed)
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


# ----------------------------------------------------------------------------------------------------
# fashion_mnist: Zalando's 28x28 clothing images, read offline from the four IDX files
# ----------------------------------------------------------------------------------------------------

FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
                         "Bag", "Ankle boot")
# role -> file name without ".gz" (both the gzipped and the plain file are accepted).
FASHION_MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "val_images": "t10k-images-idx3-ubyte",
    "val_labels": "t10k-labels-idx1-ubyte",
}
# Where the Debian/Ubuntu package dataset-fashion-mnist installs the four .gz files.
FASHION_MNIST_SYSTEM_DIR = "/usr/share/datasets/fashion-mnist"
FASHION_MNIST_APT = "sudo apt-get update && sudo apt-get install -y dataset-fashion-mnist"
_FASHION_MNIST_SIDE = 28


def _keras_cache_dir(subdir):
    """Where `keras.datasets.<name>.load_data()` keeps its files: $KERAS_HOME (else ~/.keras)/datasets/<subdir>."""
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return os.path.join(home, "datasets", subdir)


def _idx_files_in(directory):
    """({role: path} of the files present in `directory`, [names it lacks]); NAME.gz is preferred to NAME."""
    found, missing = {}, []
    for role, name in FASHION_MNIST_FILES.items():
        candidates = [os.path.join(directory, name + ext) for ext in (".gz", "")]
        path = next((p for p in candidates if os.path.isfile(p)), None)
        if path is None:
            missing.append(name + ".gz")
        else:
            found[role] = path
    return found, missing


def _find_fashion_mnist(data_dir):
    """{role: path} from the first place holding all four files: data_dir, the Debian package, the Keras cache."""
    data_dir = os.fspath(data_dir) if data_dir else None
    places = [("data_dir", data_dir)] if data_dir else []
    places += [("the dataset-fashion-mnist package", FASHION_MNIST_SYSTEM_DIR),
               ("the Keras cache", _keras_cache_dir("fashion-mnist"))]
    looked = [] if data_dir else ["data_dir: not given"]
    for what, directory in places:
        found, missing = _idx_files_in(directory)
        if not missing:
            if data_dir and what != "data_dir":
                logging.warning("Fashion-MNIST: %s; reading the files from %s instead.", looked[0], directory)
            return found
        if not os.path.isdir(directory):
            lacks = "does not exist"
        else:
            lacks = f"lacks {', '.join(missing)}" if found else "holds none of them"
        looked.append(f"{what} {directory!r}: {lacks}")
    names = ", ".join(name + ".gz" for name in FASHION_MNIST_FILES.values())
    raise DataError(
        f"Fashion-MNIST not found. It needs the four IDX files {names} (gzipped or not) in one folder, "
        f"looked in order in: {'; '.join(f'({i}) {p}' for i, p in enumerate(looked, 1))}. Fix: install them "
        f"with `{FASHION_MNIST_APT}` (Debian/Ubuntu, into {FASHION_MNIST_SYSTEM_DIR}), or copy the four "
        f"files into a folder and pass data_dir=<that folder> (gin `build_datasets.data_dir`), or run "
        f"keras.datasets.fashion_mnist.load_data() once on a machine with network access (it fills the "
        f"Keras cache)."
    )


def _read_fashion_mnist_split(files, split):
    """(uint8 [n, 28, 28] images, int32 [n] labels) of one split, checked against each other."""
    images_path, labels_path = files[f"{split}_images"], files[f"{split}_labels"]
    images = read_idx(images_path, IMAGES_MAGIC, (_FASHION_MNIST_SIDE,) * 2)
    labels = read_idx(labels_path, LABELS_MAGIC, ())
    if len(images) != len(labels):
        raise DataError(f"{images_path!r} holds {len(images)} images but {labels_path!r} {len(labels)} labels: "
                        f"the two files come from different sets, or one is truncated.")
    if len(labels) == 0:
        raise DataError(f"{images_path!r} and {labels_path!r} hold no examples.")
    if labels.max() >= len(FASHION_MNIST_CLASSES):
        raise DataError(f"IDX label file {labels_path!r} has label {int(labels.max())}: Fashion-MNIST labels "
                        f"are 0..{len(FASHION_MNIST_CLASSES) - 1}. Wrong or corrupt file.")
    return images, labels.astype(np.int32)


def _gray_stats(images, chunk=4096):
    """(mean, std) of uint8 pixels on the [0, 1] scale, from a histogram built chunk by chunk."""
    counts = np.zeros(256, np.float64)
    for start in range(0, len(images), chunk):
        counts += np.bincount(images[start:start + chunk].ravel(), minlength=256)
    values = np.arange(256, dtype=np.float64) / 255.0
    mean = counts @ values / counts.sum()
    std = np.sqrt(counts @ (values - mean) ** 2 / counts.sum())
    return float(mean), float(std)


def _gray_transforms(native, hw, mean, std, flip):
    """(train_fn, eval_fn) for small grayscale uint8 [h, w, 1] images kept at their `native` size.

    Training pads by 1/8 of the side and crops back (a random translation), flipping only when a
    mirrored image keeps its class. Both views then resize to `hw` when it differs and repeat the gray
    channel 3 times, as digits does, so the copy in memory stays 1 byte per pixel.
    """
    pad = max(1, min(native) // 8)
    mean, std = (mean,) * 3, (std,) * 3

    def to_model(image):
        image = aug.to_unit_float(image)
        if hw != native:
            image = aug.resize(image, hw)
        return aug.normalize(tf.repeat(image, 3, axis=-1), mean, std)

    def train_fn(image, seed):
        return to_model(aug.pad_crop_flip(image, seed, pad, flip=flip))

    return train_fn, to_model


def _check_subset_size(count, available, name, what):
    """`count` (None = all) must be a whole number in [1, available]: a subset larger than its pool
    cannot be drawn, and a silent clip would make two configs that differ look like the same run."""
    if count is None:
        return available
    if isinstance(count, bool) or not isinstance(count, (int, np.integer)):
        raise DataError(f"{name} must be a whole number of examples or None (all of them), got {count!r}. "
                        f"Fix: e.g. {name} = 4000 (gin `build_datasets.{name}`).")
    if not 1 <= count <= available:
        raise DataError(f"{name}={count} is out of range: {what} has {available} examples, so it must be "
                        f"in 1..{available}. Fix: pick a size in that range, or None to use all of them.")
    return int(count)


@gin.configurable
def fashion_mnist_source(*, image_size=None, data_dir=None, seed=0, held_out_examples=512, train_examples=None,
                         val_examples=None):
    """Fashion-MNIST: 60,000 training and 10,000 test 28x28 grayscale images of clothes, 10 classes.

    Read offline (never downloaded) from the four IDX files `train-images-idx3-ubyte.gz`,
    `train-labels-idx1-ubyte.gz`, `t10k-images-idx3-ubyte.gz`, `t10k-labels-idx1-ubyte.gz` (gzipped
    or not), in the first folder holding all four of: `data_dir`; `/usr/share/datasets/fashion-mnist`
    (Debian/Ubuntu: `apt-get install dataset-fashion-mnist`); the Keras cache
    `$KERAS_HOME/datasets/fashion-mnist` (default `~/.keras/...`). Without them: `DataError`.

    `held_out_examples` seeded random training images are held out (and removed from `train`); `val`
    is the official test split, in file order. `train_examples` (None = all the rest) and `val_examples`
    (None = all 10,000) shrink `train` and `val` to seeded random subsets, still in file order, so that
    a method comparison fits a small CPU. The held-out images do not depend on `train_examples`, and for
    one seed a smaller subset lies inside a larger one: changing a size changes how much data there is,
    not which reward set the agent sees. The val subset follows `seed` as well, so methods compare on
    the same images within a seed. Images are resized to `image_size` (default 28, the native size)
    with the gray channel repeated to 3, normalised by the mean/std of the whole training file's pixels
    (unchanged by the subsets). Augmentation: a random translation of up to 3 pixels and a horizontal
    flip (a mirrored garment is still the same garment, unlike a mirrored digit). Labels index
    `FASHION_MNIST_CLASSES`.
    """
    files = _find_fashion_mnist(data_dir)
    pool_images, pool_labels = _read_fashion_mnist_split(files, "train")
    val_images, val_labels = _read_fashion_mnist_split(files, "val")
    _check_held_out(held_out_examples, len(pool_labels), f"Fashion-MNIST ({files['train_images']})")
    num_train = _check_subset_size(train_examples, len(pool_labels) - held_out_examples, "train_examples",
                                   f"the Fashion-MNIST training pool minus {held_out_examples} held out")
    num_val = _check_subset_size(val_examples, len(val_labels), "val_examples", "the Fashion-MNIST test split")
    perm = np.random.default_rng(seed).permutation(len(pool_labels))
    held_idx = np.sort(perm[:held_out_examples])
    train_idx = np.sort(perm[held_out_examples:held_out_examples + num_train])
    val_idx = np.sort(np.random.default_rng([seed, 1]).permutation(len(val_labels))[:num_val])
    native = (_FASHION_MNIST_SIDE,) * 2
    hw = _hw(image_size, native)
    mean, std = _gray_stats(pool_images)  # the training file's pixels (held-out included), as digits
    train_fn, eval_fn = _gray_transforms(native, hw, mean, std, flip=True)

    def slices(images, labels):
        return tf.data.Dataset.from_tensor_slices((images[..., None], labels))

    return SourceSplits(
        train=slices(pool_images[train_idx], pool_labels[train_idx]),
        held_out=slices(pool_images[held_idx], pool_labels[held_idx]),
        val=slices(val_images[val_idx], val_labels[val_idx]),
        info=DatasetInfo(len(FASHION_MNIST_CLASSES), (*hw, 3), len(train_idx), len(val_idx), "fashion_mnist",
                         len(held_idx)),
        decode=lambda image, label: (image, label),
        train_fn=train_fn, eval_fn=eval_fn,
        cache=False,  # already in memory, 1 byte per pixel
        shuffle_buffer=len(train_idx),  # 784 bytes per example: shuffle the whole epoch
    )


# ----------------------------------------------------------------------------------------------------
# TFDS: cifar10, cifar100, imagenet2012
# ----------------------------------------------------------------------------------------------------

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
        train_fn, eval_fn, _ = _image_transforms(hw, mean, std, "inception")

        def decode(image, label):
            return _decode_image(image), tf.cast(label, tf.int32)

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
    _check_held_out(held_out_examples, num_pool, name)
    hw = _hw(image_size, spec["size"])
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
    _check_held_out(held_out_examples, len(pool_labels), f"{name} ({directory})")
    perm = np.random.default_rng(seed).permutation(len(pool_labels))
    held_idx, train_idx = np.sort(perm[:held_out_examples]), np.sort(perm[held_out_examples:])
    hw = _hw(image_size, spec["size"])
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
# ----------------------------------------------------------------------------------------------------

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
    folder images come in any size. Every file's header is checked up front (`verify_images`) so that
    a corrupt file is named before training starts rather than failing an epoch anonymously.
    """
    if image_size is None:
        raise DataError("source='folder' needs image_size (e.g. image_size=224): folder images come in "
                        "any size and the model needs one.")
    if not data_dir:
        raise DataError(f"source='folder' needs data_dir=<root of the image folder>. {_LAYOUT_HINT}")
    if not os.path.isdir(data_dir):
        raise DataError(f"Image folder {data_dir!r} does not exist or is not a directory. {_LAYOUT_HINT}")

    train_dir, val_dir = _train_val_dirs(data_dir)
    rng = np.random.default_rng(seed)
    if train_dir:
        classes = _class_names(train_dir)
        extra = sorted(set(_class_names(val_dir)) - set(classes))
        if extra:
            raise DataError(f"Validation classes {extra} in {val_dir!r} have no folder in {train_dir!r}.")
        pool_paths, pool_labels = _list_images(train_dir, classes, training=True)
        val_paths, val_labels = _list_images(val_dir, classes)
        _check_held_out(held_out_examples, len(pool_paths), f"image folder {train_dir!r}")
        perm = rng.permutation(len(pool_paths))
        held_idx, train_idx = np.sort(perm[:held_out_examples]), np.sort(perm[held_out_examples:])
        train = (pool_paths[train_idx], pool_labels[train_idx])
        held = (pool_paths[held_idx], pool_labels[held_idx])
        val = (val_paths, val_labels)
    else:
        classes = _class_names(data_dir)
        paths, labels = _list_images(data_dir, classes, training=True)
        train_idx, held_idx, val_idx = _split_indices(len(paths), val_fraction, held_out_examples, seed)
        train, held, val = [(paths[i], labels[i]) for i in (train_idx, held_idx, val_idx)]

    if verify_images:
        for part in (train, held, val):
            for path in part[0]:
                _check_image_file(path)

    hw = _hw(image_size, None)
    train_fn, eval_fn, resized = _image_transforms(hw, mean, std, crop_policy)

    def decode(path, label):
        image = _decode_image(tf.io.read_file(path))
        return (_resize_uint8(image, hw) if resized else image), label

    return SourceSplits(
        train=tf.data.Dataset.from_tensor_slices(train),
        held_out=tf.data.Dataset.from_tensor_slices(held),
        val=tf.data.Dataset.from_tensor_slices(val),
        info=DatasetInfo(len(classes), (*hw, 3), len(train[0]), len(val[0]), "folder", len(held[0])),
        decode=decode, train_fn=train_fn, eval_fn=eval_fn,
        cache=resized and _cache_fits(len(train[0]), hw),
        shuffle_buffer=len(train[0]),  # file paths are tiny: shuffle the whole epoch
    )


# ----------------------------------------------------------------------------------------------------
# tfrecord: the common ImageNet TFRecord layout
# ----------------------------------------------------------------------------------------------------

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
    train_idx, held_idx, val_idx = _split_indices(num_records, val_fraction, held_out_examples, seed)
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
            image = _decode_image(parsed["image/encoded"])
        return (_resize_uint8(image, hw) if resized else image), label

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
    """
    if num_classes is None:
        raise DataError("source='tfrecord' needs num_classes: the records do not say how many classes exist.")
    file_pattern, val_file_pattern = _tfrecord_patterns(data_dir, file_pattern, val_file_pattern)
    train_files = _glob(file_pattern, "file_pattern")
    stream = tf.data.TFRecordDataset(train_files)
    num_pool = num_train_examples or _count_records(train_files)

    if val_file_pattern is not None:
        val_files = _glob(val_file_pattern, "val_file_pattern")
        _check_held_out(held_out_examples, num_pool, f"file_pattern={file_pattern!r}")
        train, held_out = stream.skip(held_out_examples), stream.take(held_out_examples)
        val = tf.data.TFRecordDataset(val_files)
        num_train = num_pool - held_out_examples
        num_val = num_val_examples or _count_records(val_files)
    else:
        train, held_out, val, num_train, num_val = _filter_by_role(
            stream, num_pool, val_fraction, held_out_examples, seed)

    hw = _hw(image_size, 224)
    train_fn, eval_fn, resized = _image_transforms(hw, mean, std, crop_policy)
    return SourceSplits(
        train=train, held_out=held_out, val=val,
        info=DatasetInfo(int(num_classes), (*hw, 3), num_train, num_val, "tfrecord", held_out_examples),
        decode=_tfrecord_decoder(hw, resized, num_classes, label_offset), train_fn=train_fn, eval_fn=eval_fn,
        cache=resized and _cache_fits(num_train, hw),
        shuffle_buffer=10_000,
    )


# ----------------------------------------------------------------------------------------------------
# synthetic: learnable random data for smoke runs and benchmarks
# ----------------------------------------------------------------------------------------------------


@gin.configurable
def synthetic_source(*, image_size=None, data_dir=None, seed=0, held_out_examples=512, num_classes=10,
                     num_train=2048, num_val=512, noise=1.0, channels=3):
    """Each class is a smooth random template; an example is its class template plus Gaussian noise.

    Learnable (a smoke run can show accuracy above chance) yet needs no data at all. Examples are
    generated from their index with stateless ops, so any image size costs no memory up front and the
    splits are disjoint by construction: held-out indices [0, H), train [H, H + num_train), val from
    a separate seed stream. `num_train` excludes the held-out examples. No augmentation.
    """
    del data_dir
    hw = _hw(image_size, 32)
    templates = np.random.default_rng(seed).normal(size=(num_classes, 8, 8, channels)).astype(np.float32)
    templates = tf.constant(templates)
    _check_held_out(held_out_examples, held_out_examples + num_train, "synthetic")  # checks >= 0

    def decode(index, stream):
        example_seed = tf.stack([tf.cast(seed, tf.int64) * 2 + stream, index])
        label_seed, noise_seed = tf.unstack(tf.random.experimental.stateless_split(example_seed, 2))
        label = tf.random.stateless_uniform([], label_seed, maxval=num_classes, dtype=tf.int32)
        template = tf.image.resize(templates[label][None], hw, method="bilinear")[0]
        image = template + noise * tf.random.stateless_normal((*hw, channels), noise_seed)
        return image, label

    def indices(start, count, stream):
        return tf.data.Dataset.range(start, start + count).map(lambda i: (i, tf.constant(stream, tf.int64)))

    return SourceSplits(
        train=indices(held_out_examples, num_train, 0),
        held_out=indices(0, held_out_examples, 0),
        val=indices(0, num_val, 1),
        info=DatasetInfo(num_classes, (*hw, channels), num_train, num_val, "synthetic", held_out_examples),
        decode=decode,
        train_fn=lambda image, seed_: tf.cast(image, tf.float32),
        eval_fn=lambda image: tf.cast(image, tf.float32),
        cache=_cache_fits(num_train, hw, channels, bytes_per_value=4),
    )
