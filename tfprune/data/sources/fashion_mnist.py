"""fashion_mnist: Zalando's 28x28 clothing images, read offline from the four IDX files."""

import logging
import os

import gin
import numpy as np
import tensorflow as tf

from tfprune.data import augment as aug
from tfprune.data.base import DataError, DatasetInfo, SourceSplits
from tfprune.data.idx import IMAGES_MAGIC, LABELS_MAGIC, read_idx
from tfprune.data.sources.common import check_held_out, image_hw


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

    Args:
        image_size / data_dir / seed / held_out_examples: passed by `build_datasets`, which always
            gives them: bind `build_datasets.image_size` etc., not this function's.
        train_examples / val_examples: sizes of the seeded training / validation subsets (None: all the
            training images left after the held-out ones / all 10,000 test images); bound through
            `build_datasets.train_examples` / `build_datasets.val_examples`.
    """
    files = _find_fashion_mnist(data_dir)
    pool_images, pool_labels = _read_fashion_mnist_split(files, "train")
    val_images, val_labels = _read_fashion_mnist_split(files, "val")
    check_held_out(held_out_examples, len(pool_labels), f"Fashion-MNIST ({files['train_images']})")
    num_train = _check_subset_size(train_examples, len(pool_labels) - held_out_examples, "train_examples",
                                   f"the Fashion-MNIST training pool minus {held_out_examples} held out")
    num_val = _check_subset_size(val_examples, len(val_labels), "val_examples", "the Fashion-MNIST test split")
    perm = np.random.default_rng(seed).permutation(len(pool_labels))
    held_idx = np.sort(perm[:held_out_examples])
    train_idx = np.sort(perm[held_out_examples:held_out_examples + num_train])
    val_idx = np.sort(np.random.default_rng([seed, 1]).permutation(len(val_labels))[:num_val])
    native = (_FASHION_MNIST_SIDE,) * 2
    hw = image_hw(image_size, native)
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
