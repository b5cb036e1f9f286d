"""cifar10 / cifar100 read the Keras cache (the pickled batches of keras.datasets) when TFDS has no prepared
copy; the tests write tiny batches in both cache layouts themselves."""

import os
import pickle

import numpy as np
import pytest

from tfprune.data import DataError, build_datasets, keras_cifar


def _write_batch(path, labels, label_key):
    """A CIFAR batch whose image i has the planes R = label, G = i, B = 200 (so the layout is checkable)."""
    n = len(labels)
    planes = np.stack([np.repeat(np.asarray(labels)[:, None], 1024, 1), np.repeat(np.arange(n)[:, None], 1024, 1),
                       np.full((n, 1024), 200)], axis=1)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        pickle.dump({b"data": planes.reshape(n, 3072).astype(np.uint8), label_key: list(labels)}, f)


def _cifar10_cache(home, per_batch=6, test=4):
    folder = os.path.join(home, "datasets", "cifar-10-batches-py-target", "cifar-10-batches-py")  # Keras 3
    for b in range(1, 6):
        _write_batch(os.path.join(folder, f"data_batch_{b}"), [(b + i) % 10 for i in range(per_batch)], b"labels")
    _write_batch(os.path.join(folder, "test_batch"), list(range(test)), b"labels")
    return folder


@pytest.fixture
def keras_home(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    return str(tmp_path / "keras")


def test_cifar10_from_the_keras_cache_when_tfds_has_none(keras_home, tmp_path):
    folder = _cifar10_cache(keras_home)
    assert keras_cifar.find("cifar10") == folder
    train_images, train_labels, test_images, test_labels = keras_cifar.load("cifar10", folder)
    assert train_images.shape == (30, 32, 32, 3) and train_images.dtype == np.uint8
    assert (train_images[:, 5, 7, 0] == train_labels).all() and (train_images[:, :, :, 2] == 200).all()
    assert list(test_labels) == [0, 1, 2, 3] and (test_images[:, 0, 0, 1] == np.arange(4)).all()

    data = build_datasets("cifar10", data_dir=str(tmp_path / "no_tfds"), batch_size=4, held_out_examples=6, seed=0)
    info = data.info
    assert (info.name, info.num_classes, info.image_shape) == ("cifar10", 10, (32, 32, 3))
    assert (info.num_train, info.num_held_out, info.num_val) == (24, 6, 4)
    images, labels = next(iter(data.train))
    assert images.shape == (4, 32, 32, 3) and images.dtype.name == "float32" and int(np.max(labels)) < 10
    assert sum(int(y.shape[0]) for _, y in data.val) == 4


def test_cifar100_keras2_layout_fine_labels(keras_home, tmp_path):
    folder = os.path.join(keras_home, "datasets", "cifar-100-python")
    _write_batch(os.path.join(folder, "train"), [99, 0, 50, 7, 3, 12, 64, 1], b"fine_labels")
    _write_batch(os.path.join(folder, "test"), [5, 98], b"fine_labels")
    data = build_datasets("cifar100", data_dir=str(tmp_path / "no_tfds"), batch_size=2, held_out_examples=2,
                          image_size=16)
    assert (data.info.num_classes, data.info.image_shape, data.info.num_train) == (100, (16, 16, 3), 6)


def test_a_corrupt_cache_file_names_itself(keras_home, tmp_path):
    folder = _cifar10_cache(keras_home)
    with open(os.path.join(folder, "data_batch_3"), "wb") as f:
        f.write(b"not a pickle")
    with pytest.raises(DataError, match="data_batch_3 is not a readable CIFAR batch"):
        build_datasets("cifar10", data_dir=str(tmp_path / "no_tfds"), batch_size=4, held_out_examples=2)


def test_neither_tfds_nor_keras_cache_names_both(keras_home, tmp_path):
    with pytest.raises(DataError, match=r"not prepared.*Keras cache.*cifar-10-batches-py.*download=True"):
        build_datasets("cifar10", data_dir=str(tmp_path / "no_tfds"))
