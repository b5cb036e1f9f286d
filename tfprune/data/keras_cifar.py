"""CIFAR-10/100 from the Keras cache: the pickled batches `keras.datasets.cifar10/100.load_data()` leaves.

A Keras user who has trained on CIFAR already holds it in `~/.keras/datasets` (or `$KERAS_HOME/datasets`)
and usually has no prepared TFDS copy; `tfds_source` reads these files when TFDS has none, instead of
asking for a download. Both layouts are found: `datasets/cifar-10-batches-py/` (tf.keras, Keras 2) and
`datasets/cifar-10-batches-py-target/cifar-10-batches-py/` (Keras 3); likewise `cifar-100-python`.
The files are Python pickles (CIFAR's own format, the ones Keras reads): only files Keras downloaded
belong there. Labels of CIFAR-100 are the 100 fine classes, as Keras's default `label_mode="fine"`.
"""

import os
import pickle

import numpy as np

from tfprune.data.base import DataError

# name -> (folder, training files, test file, label key, classes)
LAYOUTS = {
    "cifar10": ("cifar-10-batches-py", tuple(f"data_batch_{i}" for i in range(1, 6)), "test_batch", b"labels", 10),
    "cifar100": ("cifar-100-python", ("train",), "test", b"fine_labels", 100),
}
_SIDE = 32


def cache_dirs(name, environ=None):
    """The folders where Keras keeps CIFAR `name`, in the order they are searched."""
    environ = os.environ if environ is None else environ
    home = environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    folder = LAYOUTS[name][0]
    return [os.path.join(home, "datasets", folder), os.path.join(home, "datasets", folder + "-target", folder)]


def find(name, environ=None):
    """The first cache folder holding every file of CIFAR `name`, or None."""
    folder, train_files, test_file, _, _ = LAYOUTS[name]
    for directory in cache_dirs(name, environ):
        if all(os.path.isfile(os.path.join(directory, f)) for f in (*train_files, test_file)):
            return directory
    return None


def load(name, directory):
    """(train_images, train_labels, test_images, test_labels): uint8 [N, 32, 32, 3] and int32 [N]."""
    _, train_files, test_file, label_key, classes = LAYOUTS[name]
    parts = [_read_batch(os.path.join(directory, f), label_key, classes) for f in train_files]
    test_images, test_labels = _read_batch(os.path.join(directory, test_file), label_key, classes)
    return (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]), test_images, test_labels)


def _read_batch(path, label_key, classes):
    """One pickled batch: b"data" [N, 3072] uint8 (R, G, B planes of 32x32) and the labels under `label_key`."""
    try:
        with open(path, "rb") as f:
            batch = pickle.load(f, encoding="bytes")
        data = np.asarray(batch[b"data"], dtype=np.uint8)
        labels = np.asarray(batch[label_key], dtype=np.int32)
    except (OSError, pickle.UnpicklingError, EOFError, KeyError, TypeError, ValueError) as e:
        raise DataError(f"{path} is not a readable CIFAR batch ({type(e).__name__}: {e}); delete it and run "
                        "keras.datasets.cifar10.load_data() (or cifar100) again to re-download it.") from e
    if data.ndim != 2 or data.shape[1] != 3 * _SIDE * _SIDE or len(labels) != len(data):
        raise DataError(f"{path}: expected data [N, {3 * _SIDE * _SIDE}] and N labels, got data {data.shape} and "
                        f"{len(labels)} labels; delete it and let Keras download it again.")
    if labels.size and (labels.min() < 0 or labels.max() >= classes):
        raise DataError(f"{path}: labels outside [0, {classes}); delete it and let Keras download it again.")
    return data.reshape(-1, 3, _SIDE, _SIDE).transpose(0, 2, 3, 1), labels
