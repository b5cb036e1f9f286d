"""Prune your own Keras CNN inside your own `model.fit` pipeline with tfprune.

    python examples/keras_pipeline.py                 # ~1-2 minutes on a laptop CPU
    python examples/keras_pipeline.py --tiny          # seconds: what the test suite runs

Steps: build a plain Keras 3 CNN (functional, with a residual add) -> `tfprune.auto_gate` inserts the
channel gates -> `JointPruner` + `model.fit(..., callbacks=[pruner.callback()])` trains it and lets the
RL agent search a sub-network at 50% of the FLOPs -> `pruner.compact_model()` is the physically smaller
model -> fine-tune it with `fit` -> FLOPs before/after -> TFLite export.
"""

import argparse
import os
import tempfile

import tfprune  # first: sets TF_USE_LEGACY_KERAS before TensorFlow is imported

import keras  # noqa: E402  (Keras 3)

from tfprune.data import build_datasets  # noqa: E402


def my_cnn(input_shape, num_classes, width=32):
    """Any functional or Sequential Keras CNN works; this one has a residual block."""
    bn = lambda: keras.layers.BatchNormalization(momentum=0.9)  # noqa: E731  (short runs: fast BN averages)
    inputs = keras.Input(input_shape)
    x = keras.layers.Conv2D(width, 3, padding="same", use_bias=False)(inputs)
    x = keras.layers.ReLU()(bn()(x))
    y = keras.layers.Conv2D(width, 3, padding="same", use_bias=False)(x)
    y = keras.layers.ReLU()(bn()(y))
    y = keras.layers.Conv2D(width, 3, padding="same", use_bias=False)(y)
    y = bn()(y)
    x = keras.layers.ReLU()(keras.layers.Add()([x, y]))  # residual: both convs' channels are coupled
    x = keras.layers.Conv2D(2 * width, 3, strides=2, padding="same", use_bias=False)(x)
    x = keras.layers.ReLU()(bn()(x))
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(num_classes)(x)
    return keras.Model(inputs, outputs, name="my_cnn")


def main(epochs=8, finetune_epochs=3, width=32, image_size=32, held_out=256, out_dir=None, tiny=False):
    if tiny:
        epochs, finetune_epochs, width, image_size, held_out = 2, 1, 8, 16, 64
    data = build_datasets(source="digits", batch_size=64, image_size=image_size, held_out_examples=held_out)
    held_out_images, held_out_labels = next(iter(data.held_out.unbatch().batch(held_out)))

    # 1. Your model, gated: one ChannelGate per group of coupled channels (all open: same outputs).
    model = tfprune.auto_gate(my_cnn(data.info.image_shape, data.info.num_classes, width))

    # 2. The pruner: reward = accuracy of sampled sub-networks on held-out training images.
    pruner = tfprune.JointPruner(
        model,
        held_out=(held_out_images.numpy(), held_out_labels.numpy()),
        target_flops_ratio=0.5,
        max_epochs=epochs,
        num_samples=4 if tiny else 8,
        dynamics_steps=5 if tiny else 50,
    )

    # 3. Your own optimizer, loss and tf.data pipeline; the callback runs one agent step per epoch.
    model.compile(
        optimizer=keras.optimizers.SGD(0.05, momentum=0.9),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    model.fit(data.train, validation_data=data.val, epochs=epochs, callbacks=[pruner.callback()], verbose=2)

    # 4. The selected sub-network as a physically smaller plain Keras model; fine-tune it.
    compact = pruner.compact_model()
    compact.compile(
        optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    compact.fit(data.train, epochs=finetune_epochs, verbose=2)
    _, accuracy = compact.evaluate(data.val, verbose=0)

    full, pruned = tfprune.CostModel(model).full, tfprune.CostModel(compact).full
    print(f"full:   {full}")
    print(f"pruned: {pruned}  ({pruned.flops / full.flops:.1%} of the FLOPs), val accuracy {accuracy:.3f}")

    # 5. SavedModel + TFLite (float and dynamic-range int8), verified against Keras.
    out_dir = out_dir or tempfile.mkdtemp(prefix="tfprune_example_")
    calibration = [x for x, _ in data.val.take(2)]
    report = pruner.export(out_dir, model=compact, quantizations=("float", "dynamic"),
                           sample_inputs=calibration, latency=False)
    for q, entry in report["tflite"].items():
        print(f"{q}: {entry['path']} ({entry['size_bytes'] / 1024:.0f} KiB), "
              f"max |tflite - keras| = {entry['verification']['max_abs_diff']:.2g}")
    return {"flops_full": full.flops, "flops_pruned": pruned.flops, "val_accuracy": accuracy, "export": report,
            "pruner": pruner}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--finetune-epochs", type=int, default=3)
    parser.add_argument("--out-dir", default=None)
    parser.add_argument("--tiny", action="store_true", default=bool(os.environ.get("TFPRUNE_EXAMPLE_TINY")),
                        help="tiny sizes, for a quick check (also: TFPRUNE_EXAMPLE_TINY=1)")
    args = parser.parse_args()
    main(epochs=args.epochs, finetune_epochs=args.finetune_epochs, out_dir=args.out_dir, tiny=args.tiny)
