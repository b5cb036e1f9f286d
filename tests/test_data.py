"""Input pipelines: every source offline and small (TFDS only through its mock, never the network)."""

import gzip
import hashlib
import logging
import os
import struct

import numpy as np
import pytest
import tensorflow as tf

from tfprune.data import DataError, DatasetInfo, build_datasets
from tfprune.data.sources import fashion_mnist


def _hashes(ds):
    """One hash per example of a batched (image, label) dataset."""
    out = []
    for images, labels in ds:
        for image, label in zip(images.numpy(), labels.numpy()):
            out.append(hashlib.sha1(image.tobytes() + int(label).to_bytes(4, "little")).hexdigest())
    return out


def _count(ds):
    return sum(int(labels.shape[0]) for _, labels in ds)


# ---------------------------------------------------------------------------------------------- digits


@pytest.fixture(scope="module")
def digits():
    return build_datasets("digits", batch_size=64, held_out_examples=256, seed=0, augment=False)


def test_digits_shapes_dtypes_and_labels(digits):
    info = digits.info
    assert isinstance(info, DatasetInfo)
    assert (info.num_classes, info.image_shape, info.name) == (10, (32, 32, 3), "digits")
    assert info.num_train + info.num_held_out + info.num_val == 1797
    assert info.num_held_out == 256 and info.num_val == 359

    images, labels = next(iter(digits.train))
    assert images.shape == (64, 32, 32, 3) and images.dtype == tf.float32
    assert labels.shape == (64,) and labels.dtype == tf.int32
    assert abs(float(tf.reduce_mean(images))) < 0.5  # normalised, not raw [0, 16] pixels

    all_labels = np.concatenate([y.numpy() for _, y in digits.train])
    assert len(all_labels) == digits.steps_per_epoch * 64 == (info.num_train // 64) * 64
    assert all_labels.min() >= 0 and all_labels.max() < 10
    assert _count(digits.held_out) == 256 and _count(digits.val) == 359
    assert digits["train"] is digits.train


def test_digits_held_out_disjoint_from_train_and_fixed(digits):
    # Un-augmented train images are exactly the decoded examples, so hashes identify examples.
    train = set(_hashes(digits.train.unbatch().batch(1000)))
    held_out = _hashes(digits.held_out)
    val = set(_hashes(digits.val))
    assert len(set(held_out)) == 256
    assert not train & set(held_out)
    assert not val & (train | set(held_out))
    assert _hashes(digits.held_out) == held_out  # same examples, same order, every time


def test_digits_deterministic_for_seed():
    def first_batch(seed):
        data = build_datasets("digits", batch_size=32, held_out_examples=64, seed=seed)
        return [t.numpy() for t in next(iter(data.train))]

    a, b, c = first_batch(3), first_batch(3), first_batch(4)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])


def test_digits_augmentation_keeps_shape_and_changes_pixels():
    plain = build_datasets("digits", batch_size=16, held_out_examples=16, augment=False)
    augmented = build_datasets("digits", batch_size=16, held_out_examples=16, augment=True)
    (x0, y0), (x1, y1) = next(iter(plain.train)), next(iter(augmented.train))
    assert x1.shape == x0.shape == (16, 32, 32, 3)
    np.testing.assert_array_equal(y0.numpy(), y1.numpy())  # same shuffle order
    assert not np.allclose(x0.numpy(), x1.numpy())


def test_digits_held_out_too_large():
    with pytest.raises(DataError, match="held_out_examples"):
        build_datasets("digits", held_out_examples=5000)


# --------------------------------------------------------------------------------------- fashion_mnist
# Small IDX files written here: the tests never read the real data set, even where it is installed.

_FASHION_NAMES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                  "t10k-labels-idx1-ubyte")


def _idx_bytes(array, magic=None):
    array = np.ascontiguousarray(array, np.uint8)
    magic = (0x08 << 8) | array.ndim if magic is None else magic
    return struct.pack(f">I{array.ndim}I", magic, *array.shape) + array.tobytes()


def _fashion_images(n, test):
    """Image i: gray level 20 * label + 10 (label = i % 10), its index in pixels (0, 0) and (0, 1), and a
    test marker at (27, 27), so every image is unique and its label can be read off its pixels."""
    labels = np.arange(n) % 10
    images = np.repeat((20 * labels + 10).astype(np.uint8)[:, None, None], 28, 1).repeat(28, 2)
    images[:, 0, 0], images[:, 0, 1] = np.arange(n) % 256, np.arange(n) // 256
    images[:, 27, 27] = 255 if test else 0
    return images, labels


def _write_fashion(directory, n_train=200, n_test=50, gz=True, skip=()):
    os.makedirs(directory, exist_ok=True)
    (train_x, train_y), (test_x, test_y) = _fashion_images(n_train, False), _fashion_images(n_test, True)
    for name, array in zip(_FASHION_NAMES, (train_x, train_y, test_x, test_y)):
        if name in skip:
            continue
        data = _idx_bytes(array)
        path = os.path.join(directory, name + (".gz" if gz else ""))
        with (gzip.open(path, "wb") if gz else open(path, "wb")) as f:
            f.write(data)
    return directory


@pytest.fixture
def fashion_places(tmp_path, monkeypatch):
    """The package folder and the Keras cache moved into tmp_path (empty), so nothing real is found."""
    system, keras_home = tmp_path / "system", tmp_path / "keras_home"
    monkeypatch.setattr(fashion_mnist, "FASHION_MNIST_SYSTEM_DIR", str(system))
    monkeypatch.setenv("KERAS_HOME", str(keras_home))
    return system, keras_home / "datasets" / "fashion-mnist"


def _arrays(ds):
    return [np.concatenate([t.numpy() for t in parts]) for parts in zip(*ds)]


def test_fashion_mnist_shapes_dtypes_labels_and_counts(tmp_path, fashion_places):
    data = build_datasets("fashion_mnist", data_dir=_write_fashion(tmp_path / "fm"), batch_size=16,
                          held_out_examples=40, augment=False)
    info = data.info
    assert (info.num_classes, info.image_shape, info.name) == (10, (28, 28, 3), "fashion_mnist")
    assert (info.num_train, info.num_held_out, info.num_val) == (160, 40, 50)
    x, y = _arrays(data.train)
    xh, yh = _arrays(data.held_out)
    xv, yv = _arrays(data.val)
    assert x.shape == (160, 28, 28, 3) and x.dtype == np.float32 and y.dtype == np.int32
    assert xh.shape == (40, 28, 28, 3) and xv.shape == (50, 28, 28, 3)
    assert yv.tolist() == [i % 10 for i in range(50)]  # the test split, in file order
    assert sorted(np.concatenate([y, yh]).tolist()) == sorted(i % 10 for i in range(200))
    np.testing.assert_array_equal(x[..., 0], x[..., 2])  # gray repeated to 3 channels
    # Normalised by the training file's pixel statistics: mean 0, std 1 over its 200 images.
    pool = np.concatenate([x, xh]).astype(np.float64)
    assert abs(pool.mean()) < 1e-4 and abs(pool.std() - 1.0) < 1e-4
    # Each image keeps its label: the gray level (pixel 14, 14) rises with the label.
    for images, labels in ((x, y), (xh, yh), (xv, yv)):
        order = np.argsort(labels, kind="stable")
        assert np.all(np.diff(images[order, 14, 14, 0]) >= 0)
        assert len(np.unique(images[:, 14, 14, 0])) == len(np.unique(labels))


def test_fashion_mnist_held_out_disjoint_and_fixed_for_seed(tmp_path, fashion_places):
    root = _write_fashion(tmp_path / "fm")

    def build(seed, augment=False, **kwargs):
        return build_datasets("fashion_mnist", data_dir=root, batch_size=20, held_out_examples=30, seed=seed,
                              augment=augment, **kwargs)

    data = build(0)
    train, held_out, val = set(_hashes(data.train)), _hashes(data.held_out), set(_hashes(data.val))
    assert len(train) == 160 and len(set(held_out)) == 30  # 170 train examples, 8 full batches of 20
    assert not train & set(held_out) and not val & (train | set(held_out))
    assert _hashes(build(0).held_out) == held_out  # same examples, same order
    assert set(_hashes(build(1).held_out)) != set(held_out)
    (x0, y0), (x1, y1) = next(iter(build(0).train)), next(iter(build(0, augment=True).train))
    np.testing.assert_array_equal(y0.numpy(), y1.numpy())  # same shuffle order ...
    assert not np.allclose(x0.numpy(), x1.numpy())  # ... translated / flipped pixels
    x, _ = next(iter(build(0, image_size=(32, 24), augment=True).train))
    assert x.shape == (20, 32, 24, 3) and x.dtype == tf.float32


def test_fashion_mnist_uncompressed_files_and_gin(tmp_path, fashion_places):
    import gin

    root = _write_fashion(tmp_path / "fm", n_train=100, n_test=20, gz=False)
    gin.clear_config()
    try:
        gin.parse_config(f'build_datasets.source = "fashion_mnist"\nbuild_datasets.data_dir = "{root}"')
        data = build_datasets(batch_size=10, held_out_examples=10)
    finally:
        gin.clear_config()
    assert (data.info.name, data.info.num_train, data.info.num_val) == ("fashion_mnist", 90, 20)


def test_fashion_mnist_search_order(tmp_path, fashion_places, monkeypatch, caplog):
    system, keras_cache = fashion_places
    given = _write_fashion(tmp_path / "given", n_train=200)
    _write_fashion(system, n_train=120)
    _write_fashion(keras_cache, n_train=100)

    def pool_size(data_dir=None):
        info = build_datasets("fashion_mnist", data_dir=data_dir, batch_size=10, held_out_examples=10).info
        return info.num_train + info.num_held_out

    assert pool_size(given) == 200  # data_dir wins
    assert pool_size() == 120  # then the dataset-fashion-mnist package
    with caplog.at_level(logging.WARNING):  # an incomplete data_dir is skipped, with a warning
        incomplete = _write_fashion(tmp_path / "incomplete", skip=("t10k-labels-idx1-ubyte",))
        assert pool_size(incomplete) == 120
    assert "t10k-labels-idx1-ubyte.gz" in caplog.text and str(system) in caplog.text
    monkeypatch.setattr(fashion_mnist, "FASHION_MNIST_SYSTEM_DIR", str(tmp_path / "nowhere"))
    assert pool_size() == 100  # then the Keras cache ($KERAS_HOME)
    monkeypatch.delenv("KERAS_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    _write_fashion(tmp_path / "home" / ".keras" / "datasets" / "fashion-mnist", n_train=80)
    assert pool_size() == 80  # ~/.keras when KERAS_HOME is not set


def test_fashion_mnist_missing_files_name_all_three_places(tmp_path, fashion_places):
    system, keras_cache = fashion_places
    _write_fashion(keras_cache, skip=("train-images-idx3-ubyte",))  # a partial cache is not enough
    for data_dir in (tmp_path / "empty", None):
        with pytest.raises(DataError, match="Fashion-MNIST not found") as err:
            build_datasets("fashion_mnist", data_dir=None if data_dir is None else str(data_dir))
        message = str(err.value)
        assert (str(data_dir) if data_dir else "data_dir: not given") in message
        assert str(system) in message and str(keras_cache) in message
        assert "lacks train-images-idx3-ubyte.gz" in message
        assert "apt-get install -y dataset-fashion-mnist" in message


def _corrupt(path, how):
    data = gzip.decompress(path.read_bytes())
    if how == "truncated":
        data = data[:-5]
    elif how == "magic":
        data = struct.pack(">I", 2049) + data[4:]
    elif how == "not_gzip":
        path.write_bytes(b"\x1f\x8b garbage, not gzip data")
        return
    path.write_bytes(gzip.compress(data))


@pytest.mark.parametrize("name, how, match", [
    ("train-images-idx3-ubyte", "truncated", "truncated"),
    ("t10k-images-idx3-ubyte", "magic", "magic number 2049, expected 2051"),
    ("train-labels-idx1-ubyte", "not_gzip", "Cannot read IDX file"),
])
def test_fashion_mnist_corrupt_file_is_named(tmp_path, fashion_places, name, how, match):
    root = _write_fashion(tmp_path / "fm")
    _corrupt(root / f"{name}.gz", how)
    with pytest.raises(DataError, match=match) as err:
        build_datasets("fashion_mnist", data_dir=str(root), batch_size=10, held_out_examples=10)
    assert str(root / f"{name}.gz") in str(err.value)


def test_fashion_mnist_mismatched_files_are_named(tmp_path, fashion_places):
    root = _write_fashion(tmp_path / "fm")
    labels = root / "train-labels-idx1-ubyte.gz"
    labels.write_bytes(gzip.compress(_idx_bytes(np.arange(199) % 10)))  # one label short
    with pytest.raises(DataError, match="200 images but .*199 labels") as err:
        build_datasets("fashion_mnist", data_dir=str(root), batch_size=10, held_out_examples=10)
    assert str(labels) in str(err.value) and str(root / "train-images-idx3-ubyte.gz") in str(err.value)
    labels.write_bytes(gzip.compress(_idx_bytes(np.full(200, 10))))
    with pytest.raises(DataError, match="label 10"):
        build_datasets("fashion_mnist", data_dir=str(root), batch_size=10, held_out_examples=10)
    _write_fashion(root)
    images = root / "t10k-images-idx3-ubyte.gz"
    images.write_bytes(gzip.compress(_idx_bytes(np.zeros((50, 32, 32)))))
    with pytest.raises(DataError, match=r"shape \(32, 32\), expected \(28, 28\)") as err:
        build_datasets("fashion_mnist", data_dir=str(root), batch_size=10, held_out_examples=10)
    assert str(images) in str(err.value)
    _write_fashion(root)
    with pytest.raises(DataError, match="held_out_examples"):
        build_datasets("fashion_mnist", data_dir=str(root), held_out_examples=200)


def test_fashion_mnist_train_and_val_subsets(tmp_path, fashion_places):
    root = _write_fashion(tmp_path / "fm")

    def build(seed=0, **kwargs):
        return build_datasets("fashion_mnist", data_dir=root, batch_size=10, held_out_examples=30, seed=seed,
                              augment=False, **kwargs)

    full = build()
    data = build(train_examples=60, val_examples=20)
    assert (data.info.num_train, data.info.num_held_out, data.info.num_val) == (60, 30, 20)
    train, val = _hashes(data.train), _hashes(data.val)
    assert len(set(train)) == 60 and len(set(val)) == 20
    assert set(train) < set(_hashes(full.train)) and set(val) < set(_hashes(full.val))
    # The reward set does not move with train_examples, and a smaller subset lies inside a larger one.
    assert _hashes(data.held_out) == _hashes(full.held_out)
    assert set(_hashes(build(train_examples=30).train)) < set(_hashes(build(train_examples=100).train))
    # Seeded: the same subsets again for seed 0, others for seed 1; val keeps the file order.
    again = build(train_examples=60, val_examples=20)
    assert set(_hashes(again.train)) == set(train) and _hashes(again.val) == val
    other = build(seed=1, train_examples=60, val_examples=20)
    assert set(_hashes(other.val)) != set(val) and set(_hashes(other.train)) != set(train)
    file_index = _arrays(data.val)[0][:, 0, 0, 0]  # pixel (0, 0) holds the file index (normalised)
    assert np.all(np.diff(file_index) > 0)
    # None is "all of them", and the whole pool / split is a valid size.
    assert build(train_examples=170, val_examples=50).info.num_train == full.info.num_train == 170


@pytest.mark.parametrize("kwargs, match", [
    (dict(train_examples=171), r"train_examples=171 is out of range: .* has 170 examples, so it must be in 1..170"),
    (dict(train_examples=0), "train_examples=0 is out of range"),
    (dict(val_examples=51), r"val_examples=51 is out of range: the Fashion-MNIST test split has 50 examples"),
    (dict(val_examples=-1), "val_examples=-1 is out of range"),
    (dict(train_examples=50.5), r"train_examples must be a whole number of examples or None .* got 50.5"),
    (dict(val_examples=True), "val_examples must be a whole number"),
    (dict(train_examples="100"), "train_examples must be a whole number"),
])
def test_fashion_mnist_bad_subset_sizes_are_named(tmp_path, fashion_places, kwargs, match):
    root = _write_fashion(tmp_path / "fm")
    with pytest.raises(DataError, match=match) as err:
        build_datasets("fashion_mnist", data_dir=str(root), batch_size=10, held_out_examples=30, **kwargs)
    assert "Fix:" in str(err.value)


def test_fashion_mnist_subset_smaller_than_a_batch_is_named(tmp_path, fashion_places):
    root = _write_fashion(tmp_path / "fm")
    with pytest.raises(DataError, match="only 8 training examples .* lower batch_size"):
        build_datasets("fashion_mnist", data_dir=str(root), batch_size=10, held_out_examples=30, train_examples=8)


# ------------------------------------------------------------------------------------------------ TFDS


def test_cifar10_through_tfds_mock(monkeypatch):
    import tensorflow_datasets as tfds

    # The mock serves random examples but its builder does not report itself as prepared.
    monkeypatch.setattr(tfds.core.DatasetBuilder, "is_prepared", lambda self: True)
    with tfds.testing.mock_data(num_examples=8):
        data = build_datasets("cifar10", batch_size=4, held_out_examples=2, seed=0)
        x, y = next(iter(data.train))
        xh, _ = next(iter(data.held_out))
        xv, _ = next(iter(data.val))
    assert data.info.num_classes == 10 and data.info.image_shape == (32, 32, 3)
    assert x.shape == (4, 32, 32, 3) and x.dtype == tf.float32 and y.dtype == tf.int32
    assert xh.shape[1:] == xv.shape[1:] == (32, 32, 3)
    assert int(tf.reduce_max(y)) < 10


def test_tfds_not_prepared_is_a_clear_error_without_network(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))  # no Keras cache of CIFAR either (tests/test_keras_cifar.py)
    with pytest.raises(DataError, match="download=True") as err:
        build_datasets("cifar10", data_dir=str(tmp_path))
    assert "not prepared" in str(err.value) and str(tmp_path) in str(err.value)
    with pytest.raises(DataError, match="manual_dir"):
        build_datasets("imagenet2012", data_dir=str(tmp_path))
    with pytest.raises(DataError, match="ILSVRC2012_img_train.tar"):
        build_datasets("imagenet2012", data_dir=str(tmp_path), manual_dir=str(tmp_path))


# ---------------------------------------------------------------------------------------------- folder


def _png(value, size=8):
    rng = np.random.default_rng(value)
    pixels = rng.integers(0, 256, size=(size, size, 3), dtype=np.uint8)
    return tf.io.encode_png(pixels).numpy()


def _write_folder(root, counts):
    for c, (name, n) in enumerate(counts.items()):
        os.makedirs(root / name, exist_ok=True)
        for i in range(n):
            (root / name / f"img{i}.png").write_bytes(_png(100 * c + i))


def test_folder_classes_and_counts(tmp_path):
    _write_folder(tmp_path, {"cat": 4, "dog": 4, "eel": 4})
    data = build_datasets("folder", data_dir=str(tmp_path), image_size=8, batch_size=2,
                          held_out_examples=2, val_fraction=0.25)
    info = data.info
    assert (info.num_classes, info.image_shape) == (3, (8, 8, 3))
    assert (info.num_train, info.num_held_out, info.num_val) == (7, 2, 3)
    assert _count(data.train) == 6 and _count(data.held_out) == 2 and _count(data.val) == 3
    labels = np.concatenate([y.numpy() for _, y in data.val.concatenate(data.held_out)])
    assert set(labels) <= {0, 1, 2}
    x, y = next(iter(data.train))
    assert x.shape == (2, 8, 8, 3) and x.dtype == tf.float32 and y.dtype == tf.int32


def test_folder_train_val_layout(tmp_path):
    _write_folder(tmp_path / "train", {"a": 3, "b": 3})
    _write_folder(tmp_path / "val", {"a": 1, "b": 2})
    data = build_datasets("folder", data_dir=str(tmp_path), image_size=8, batch_size=2, held_out_examples=1)
    assert (data.info.num_classes, data.info.num_train, data.info.num_val) == (2, 5, 3)
    assert sorted(np.concatenate([y.numpy() for _, y in data.val])) == [0, 1, 1]


def test_folder_errors(tmp_path):
    with pytest.raises(DataError, match="image_size"):
        build_datasets("folder", data_dir=str(tmp_path))
    with pytest.raises(DataError, match="does not exist"):
        build_datasets("folder", data_dir=str(tmp_path / "nope"), image_size=8)
    with pytest.raises(DataError, match="No class folders"):
        build_datasets("folder", data_dir=str(tmp_path), image_size=8)
    os.makedirs(tmp_path / "cat")
    with pytest.raises(DataError, match="No images"):
        build_datasets("folder", data_dir=str(tmp_path), image_size=8)


def test_folder_corrupt_image_is_named(tmp_path):
    _write_folder(tmp_path, {"cat": 3, "dog": 3})
    bad = tmp_path / "dog" / "broken.png"
    bad.write_bytes(b"this is not an image")
    with pytest.raises(DataError, match="broken.png") as err:
        build_datasets("folder", data_dir=str(tmp_path), image_size=8, batch_size=2, held_out_examples=1)
    assert str(bad) in str(err.value)


# -------------------------------------------------------------------------------------------- tfrecord


def _write_records(path, n, num_classes=3, offset=0):
    with tf.io.TFRecordWriter(str(path)) as writer:
        for i in range(n):
            feature = {
                "image/encoded": tf.train.Feature(bytes_list=tf.train.BytesList(value=[_png(i, 10)])),
                "image/class/label": tf.train.Feature(
                    int64_list=tf.train.Int64List(value=[i % num_classes + offset])),
            }
            writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())


def test_tfrecord_round_trip(tmp_path):
    _write_records(tmp_path / "train-00000-of-00001", 12)
    data = build_datasets("tfrecord", data_dir=str(tmp_path), num_classes=3, image_size=8, batch_size=2,
                          held_out_examples=2, val_fraction=0.25)
    assert (data.info.num_train, data.info.num_held_out, data.info.num_val) == (7, 2, 3)
    assert _count(data.held_out) == 2 and _count(data.val) == 3 and _count(data.train) == 6
    x, y = next(iter(data.train))
    assert x.shape == (2, 8, 8, 3) and x.dtype == tf.float32 and y.dtype == tf.int32
    # Separate validation files and 1-based labels (the tensorflow/models ImageNet layout).
    _write_records(tmp_path / "validation-00000-of-00001", 4, offset=1)
    _write_records(tmp_path / "train-00000-of-00001", 12, offset=1)
    data = build_datasets("tfrecord", data_dir=str(tmp_path), num_classes=3, image_size=8, batch_size=2,
                          held_out_examples=2, label_offset=1)
    assert (data.info.num_train, data.info.num_val) == (10, 4)
    labels = np.concatenate([y.numpy() for _, y in data.val])
    assert labels.tolist() == [0, 1, 2, 0]
    train = set(_hashes(build_datasets("tfrecord", data_dir=str(tmp_path), num_classes=3, image_size=8,
                                       batch_size=2, held_out_examples=2, label_offset=1,
                                       augment=False).train))
    assert not train & set(_hashes(data.held_out))


def test_tfrecord_errors(tmp_path):
    with pytest.raises(DataError, match="No TFRecord files match"):
        build_datasets("tfrecord", file_pattern=str(tmp_path / "train-*"), num_classes=3)
    with pytest.raises(DataError, match="num_classes"):
        build_datasets("tfrecord", file_pattern=str(tmp_path / "train-*"))


# --------------------------------------------------------------------------------- synthetic / unknown


def test_synthetic_source_is_learnable_and_disjoint():
    data = build_datasets("synthetic", batch_size=32, image_size=16, held_out_examples=32, num_train=256,
                          num_val=64, num_classes=4)
    assert data.info.image_shape == (16, 16, 3) and data.info.num_classes == 4
    x, y = [np.concatenate([t.numpy() for t in parts]) for parts in zip(*data.train)]
    assert x.shape == (256, 16, 16, 3) and x.dtype == np.float32 and y.dtype == np.int32
    # Nearest class mean (from train) classifies val well above chance (0.25): the data is learnable.
    means = np.stack([x[y == c].mean(0) for c in range(4)])
    xv, yv = [np.concatenate([t.numpy() for t in parts]) for parts in zip(*data.val)]
    dists = ((xv[:, None] - means[None]) ** 2).sum(axis=(2, 3, 4))
    assert (dists.argmin(1) == yv).mean() > 0.8
    assert not set(_hashes(data.held_out)) & set(_hashes(data.train))


def test_unknown_source_lists_valid_ones():
    with pytest.raises(DataError, match="Unknown data source 'mnist'.*cifar10.*digits.*folder"):
        build_datasets("mnist")


def test_epoch_pipelines_depend_on_seed_and_epoch_alone():
    """A run resumed at epoch i in a new process must see epoch i's batches (order and augmentation)."""
    def first_batches(ds):
        return np.stack([x.numpy() for x, _ in ds.take(2)])

    kwargs = dict(batch_size=64, image_size=16, held_out_examples=64, seed=3)
    first = build_datasets("digits", **kwargs)
    resumed = build_datasets("digits", **kwargs)  # what a restarted process builds
    epoch5 = first_batches(first.train_epoch(5))
    first_batches(resumed.train_epoch(0))  # other iterations before it change nothing
    first_batches(resumed.train)
    np.testing.assert_array_equal(first_batches(resumed.train_epoch(5)), epoch5)
    assert not np.array_equal(first_batches(first.train_epoch(6)), epoch5)
    assert not np.array_equal(first_batches(build_datasets("digits", **{**kwargs, "seed": 4}).train_epoch(5)), epoch5)
    assert not np.array_equal(first_batches(first.train), first_batches(first.train))  # `train` reshuffles
