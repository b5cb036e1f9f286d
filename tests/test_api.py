"""`tfprune.prune` (the one call) and `tfprune.data.split_held_out` on tiny data."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfprune
from tfprune.data.split import split_held_out
from tfprune.pruning.prune import default_warmup


def digits(n=None):
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.images[..., None] / 16.0).astype("float32")
    return (x[:n], d.target[:n].astype("int32")) if n else (x, d.target.astype("int32"))


def small_cnn(width=8):
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(width, 3, padding="same", use_bias=False)(inputs)
    x = keras.layers.ReLU()(keras.layers.BatchNormalization()(x))
    y = keras.layers.Conv2D(width, 3, padding="same", use_bias=False)(x)
    x = keras.layers.ReLU()(keras.layers.Add()([x, keras.layers.BatchNormalization()(y)]))
    x = keras.layers.Conv2D(2 * width, 3, strides=2, padding="same", use_bias=False)(x)
    x = keras.layers.ReLU()(keras.layers.BatchNormalization()(x))
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(10)(x))


def test_split_arrays_is_a_seeded_disjoint_subset():
    x, y = np.arange(100, dtype="float32")[:, None], np.arange(100) % 10
    (xt, yt), (xh, yh) = split_held_out((x, y), 20, seed=1)
    assert len(xh) == 20 and len(xt) == 80 and not set(xh[:, 0]) & set(xt[:, 0])
    assert np.array_equal(split_held_out((x, y), 20, seed=1)[1][0], xh)
    assert len(split_held_out((x, y), 0.25)[1][0]) == 25


def test_split_dataset_takes_the_first_batches_and_trains_on_the_rest():
    x, y = np.arange(40, dtype="float32").reshape(40, 1, 1, 1), np.arange(40) % 3
    train, (xh, yh) = split_held_out(tf.data.Dataset.from_tensor_slices((x, y)).batch(8), 10)
    assert len(xh) == 16  # whole batches: at least 10 examples
    rest = np.concatenate([b.numpy() for b, _ in train])
    assert len(rest) == 24 and not set(rest.ravel()) & set(xh.ravel())


def test_split_refuses_what_cannot_work():
    x, y = np.zeros((40, 2, 2, 1), "float32"), np.arange(40)
    reshuffled = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(40).batch(4)
    with pytest.raises(tfprune.TfpruneError, match="new order each time"):
        split_held_out(reshuffled, 8)
    with pytest.raises(tfprune.TfpruneError, match="call .batch"):
        split_held_out(tf.data.Dataset.from_tensor_slices((x[:, :, :, 0], y)), 8)
    with pytest.raises(tfprune.TfpruneError, match="leaves none to train on"):
        split_held_out((x, y), 40)
    with pytest.raises(tfprune.TfpruneError, match=r"\(images, labels\)"):
        split_held_out(x, 8)


def test_default_warmup_is_a_tenth_and_leaves_an_agent_step():
    assert [default_warmup(e) for e in (1, 2, 3, 10, 30, 200)] == [0, 0, 1, 1, 3, 20]


def test_prune_refuses_no_agent_step():
    with pytest.raises(tfprune.TfpruneError, match="warmup_epochs < epochs"):
        tfprune.prune(small_cnn(), digits(200), epochs=2, warmup_epochs=2)


@pytest.mark.slow
def test_prune_digits_end_to_end(tmp_path, capsys):
    x, y = digits()
    val = (x[-300:], y[-300:])
    result = tfprune.prune(small_cnn(), (x[:-300], y[:-300]), val_data=val, target_flops_ratio=0.5, epochs=3,
                           finetune_epochs=1, held_out=128, num_samples=4, dynamics_steps=2,
                           export_dir=str(tmp_path / "out"), quantizations=("float",))
    assert 0.35 <= result.flops_ratio <= 0.52
    assert result.cost_after.params < result.cost_before.params
    assert result.accuracy_after > 0.3 and result.accuracy_on == "val_data"
    assert set(result.masks) == set(result.pruner.group_names)
    assert "reward_max" in result.history and len(result.history["loss"]) == 3
    for name in ("masks.json", "compact_model.keras", "model_float.tflite", "saved_model"):
        assert os.path.exists(tmp_path / "out" / name), name
    np.testing.assert_allclose(keras.models.load_model(tmp_path / "out" / "compact_model.keras")(x[:4]),
                               result.model(x[:4]), atol=1e-5)
    assert "FLOPs" in str(result) and "accuracy (val_data)" in result.summary()
    out = capsys.readouterr().out
    assert "epoch 1: agent reward mean" in out and not any(
        "loss" in line and "agent reward" in line for line in out.replace("\r", "\n").splitlines())


def test_prune_takes_one_budget_and_names_the_fix():
    data = digits(64)
    with pytest.raises(tfprune.TfpruneError, match="two budgets; give one of them"):
        tfprune.prune(small_cnn(), data, target_flops_ratio=0.5, target_latency_ratio=0.5)
    with pytest.raises(tfprune.TfpruneError, match="target_latency_ratio needs the latency budget.*drop budget="):
        tfprune.prune(small_cnn(), data, target_latency_ratio=0.5, budget="flops")
    with pytest.raises(tfprune.TfpruneError, match=r"budget='latency' needs target_latency_ratio="):
        tfprune.prune(small_cnn(), data, budget="latency")
    with pytest.raises(tfprune.TfpruneError, match=r"in \(0, 1\]; got 1.5"):
        tfprune.prune(small_cnn(), data, target_latency_ratio=1.5)


@pytest.mark.slow
def test_prune_to_a_latency_target(tmp_path, monkeypatch):
    """`target_latency_ratio`: JointPruner's latency budget (a LiteRT table measured here and calibrated on
    whole-model timings: slow, about a minute on 2 cores), and the compact model's predicted latency lands in
    the budget's band, [target - tolerance, target]."""
    import gin

    monkeypatch.setenv("TFPRUNE_CACHE_DIR", str(tmp_path / "cache"))
    gin.bind_parameter("LatencyModel.max_points", 2)  # a small table: this checks the wiring, not the timing
    gin.bind_parameter("LatencyModel.runs", 10)
    inputs = keras.Input((32, 32, 3))  # layers of tens of microseconds, above timing noise (tests/test_latency.py)
    x = keras.layers.ReLU()(keras.layers.BatchNormalization()(keras.layers.Conv2D(32, 3, padding="same")(inputs)))
    x = keras.layers.ReLU()(keras.layers.BatchNormalization()(keras.layers.Conv2D(64, 3, padding="same")(x)))
    model = keras.Model(inputs, keras.layers.Dense(10)(keras.layers.GlobalAveragePooling2D()(x)))
    rng = np.random.default_rng(0)
    data = (rng.normal(size=(96, 32, 32, 3)).astype("float32"), rng.integers(0, 10, 96).astype("int32"))
    result = tfprune.prune(model, data, target_latency_ratio=0.6, epochs=2, finetune_epochs=0, held_out=32,
                           num_samples=3, dynamics_steps=2, batch_size=32, verbose=0, flops_tolerance=0.05)
    assert result.pruner.budget.target_ratio == 0.6
    assert 0.6 - 0.05 - 1e-6 <= result.predicted_latency_ratio <= 0.6 + 1e-6
    assert result.cost_after.flops < result.cost_before.flops
    assert "latency (predicted, LiteRT)" in result.summary()


def test_prune_refuses_images_of_the_wrong_size():
    x = np.zeros((64, 16, 16, 1), "float32")
    with pytest.raises(tfprune.TfpruneError, match=r"shape \(16, 16, 1\) but the model takes \(8, 8, 1\)"):
        tfprune.prune(small_cnn(), (x, np.zeros(64, "int32")), epochs=2, held_out=8)
