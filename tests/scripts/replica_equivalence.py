"""Trains the same tiny model for a few steps on 2 logical CPUs (MirroredStrategy) and on one device,
with the same global batch, and prints the largest weight difference. Run in its own process: logical
devices must be configured before TensorFlow initialises."""

import os
import sys

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
import tensorflow as tf  # noqa: E402

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

import keras  # noqa: E402
import numpy as np  # noqa: E402

from tfprune.structure.gates import ChannelGate  # noqa: E402
from tfprune.structure.graph import ChannelGraph  # noqa: E402
from tfprune.pruning.alignment import GroupLassoAlignment  # noqa: E402
from tfprune.infra.distribute import make_strategy  # noqa: E402
from tfprune.training.weight_trainer import WeightTrainer  # noqa: E402


def build(strategy):
    with strategy.scope():
        keras.utils.set_random_seed(0)
        inp = keras.Input((8, 8, 3))
        gate = ChannelGate(name="g")
        x = keras.layers.ReLU()(gate(keras.layers.Conv2D(6, 3, padding="same", name="c1")(inp)))
        x = keras.layers.Conv2D(4, 3, padding="same", name="c2")(x)
        model = keras.Model(inp, keras.layers.Dense(3)(keras.layers.GlobalAveragePooling2D()(x)))
        optimizer = keras.optimizers.SGD(0.1, momentum=0.9)
        align = GroupLassoAlignment(ChannelGraph(model))
        align.strength.assign(0.01)
        align.set_targets({"g": np.array([1, 1, 1, 0, 0, 1], bool)})
    return model, optimizer, align


rng = np.random.default_rng(0)
images = rng.normal(size=(64, 8, 8, 3)).astype("float32")
labels = rng.integers(0, 3, 64).astype("int32")
dataset = tf.data.Dataset.from_tensor_slices((images, labels)).batch(16, drop_remainder=True)

weights = {}
for kind in ("mirrored", "one_device"):
    strategy = make_strategy(kind)
    model, optimizer, align = build(strategy)
    trainer = WeightTrainer(strategy, model, optimizer, global_batch_size=16, regularizer=align.penalty)
    for _ in range(3):
        trainer.train_epoch(dataset, description=kind)
    weights[kind] = [w.numpy() for w in model.weights]
    print(kind, "replicas", strategy.num_replicas_in_sync)
diff = max(float(np.abs(a - b).max()) for a, b in zip(weights["mirrored"], weights["one_device"]))
moved = max(float(np.abs(a).max()) for a in weights["mirrored"])
print(f"MAX_WEIGHT_DIFF {diff:.3e} MAX_WEIGHT {moved:.3e}")
sys.exit(0)
