"""Input pipelines: every source offline and small (TFDS only through its mock, never the network)."""

import hashlib
import os

import numpy as np
import pytest
import tensorflow as tf

from tfprune.data import DataError, DatasetInfo, build_datasets


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


def test_tfds_not_prepared_is_a_clear_error_without_network(tmp_path):
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
