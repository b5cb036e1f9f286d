"""tensorflow-model-optimization (tfmot 0.8.1, built on tf_keras) with tfprune's Keras 3 compact models.

tfmot rejects Keras 3 models; QAT works on a tf_keras copy rebuilt layer by layer from the compact
model's configs and weights (`to_tf_keras` below, the recipe of docs/keras_pipeline.md).
"""

import keras
import numpy as np
import pytest

from tfprune.structure.auto_gate import auto_gate
from tfprune.structure.graph import ChannelGraph
from tfprune.structure.surgery import compact_model

from model_fixtures import random_masks, randomize_bn

tfmot = pytest.importorskip("tensorflow_model_optimization")

# Keras 3 serialises these in a format tf_keras cannot read; the weights are copied anyway.
_KERAS3_ONLY = ("dtype", "synchronized", "lora_rank", "lora_alpha", "quantization_config")
_DROP_SUFFIXES = ("_initializer", "_regularizer", "_constraint")


def to_tf_keras(model):
    """A tf_keras (Keras 2) copy of a plain Keras 3 functional model of built-in layers, same weights."""
    import tf_keras

    layers = {}

    def convert(layer):
        if id(layer) not in layers:
            cls = getattr(tf_keras.layers, type(layer).__name__, None)
            if cls is None or not isinstance(layer, keras.layers.Layer):
                raise ValueError(f"No tf_keras layer for {layer.name!r} ({type(layer).__name__}).")
            config = {
                k: v for k, v in layer.get_config().items()
                if k not in _KERAS3_ONLY and not k.endswith(_DROP_SUFFIXES)
            }
            layers[id(layer)] = (layer, cls.from_config(config))
        return layers[id(layer)][1]

    inputs = [tf_keras.Input(shape=t.shape[1:], name=t._keras_history[0].name) for t in model.inputs]
    outputs = model._run_through_graph(inputs, operation_fn=convert)
    converted = tf_keras.Model(inputs[0] if len(inputs) == 1 else inputs, outputs, name=model.name)
    for old, new in layers.values():
        new.set_weights(old.get_weights())
    return converted


def test_tfmot_rejects_keras3_models():
    inp = keras.Input((8, 8, 3))
    model = keras.Model(inp, keras.layers.Conv2D(4, 3)(inp))
    with pytest.raises(ValueError, match="Sequential or Functional"):
        tfmot.quantization.keras.quantize_model(model)


@pytest.mark.slow
def test_compact_keras_applications_model_rebuilds_as_tf_keras():
    """MobileNetV2 (ZeroPadding2D, DepthwiseConv2D, ReLU(6), Add) pruned, then copied to tf_keras."""
    model = keras.applications.MobileNetV2(
        weights=None, input_shape=(32, 32, 3), alpha=0.35, classes=4, classifier_activation=None
    )
    randomize_bn(model)
    gated = auto_gate(model)
    compact = compact_model(gated, random_masks(ChannelGraph(gated, warn=False), keep=0.5))
    x = np.random.default_rng(0).normal(size=(2, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(to_tf_keras(compact)(x).numpy(), np.asarray(compact(x)), atol=1e-5)


@pytest.mark.slow
def test_qat_of_a_compact_model_through_a_tf_keras_copy():
    import tensorflow as tf
    import tf_keras

    from tfprune.deploy.interpreter import run_tflite

    inp = keras.Input((16, 16, 3))
    x = keras.layers.ReLU()(keras.layers.BatchNormalization()(keras.layers.Conv2D(8, 3, padding="same")(inp)))
    y = keras.layers.DepthwiseConv2D(3, padding="same", use_bias=False)(x)
    y = keras.layers.BatchNormalization()(keras.layers.Conv2D(8, 1, use_bias=False)(keras.layers.ReLU(6.0)(y)))
    x = keras.layers.Add()([x, y])
    x = keras.layers.Conv2D(12, 3, strides=2, padding="same", activation="relu")(x)
    out = keras.layers.Dense(4)(keras.layers.GlobalAveragePooling2D()(x))
    model = keras.Model(inp, out)
    randomize_bn(model)
    gated = auto_gate(model)
    masks = random_masks(ChannelGraph(gated, warn=False), keep=0.5)
    compact = compact_model(gated, masks)
    x = np.random.default_rng(0).normal(size=(8, 16, 16, 3)).astype("float32")

    copy = to_tf_keras(compact)
    np.testing.assert_allclose(copy(x).numpy(), np.asarray(compact(x)), atol=1e-5)

    qat = tfmot.quantization.keras.quantize_model(copy)
    qat.compile(optimizer=tf_keras.optimizers.SGD(1e-3),
                loss=tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    qat.fit(x, np.arange(8) % 4, epochs=2, verbose=0)
    converter = tf.lite.TFLiteConverter.from_keras_model(qat)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    tflite = converter.convert()
    out, ref = run_tflite(tflite, x), qat(x).numpy()
    assert out.shape == (8, 4) and np.all(np.isfinite(out))
    # The int8 TFLite model computes what the fake-quantized QAT model computes, up to rounding.
    assert np.max(np.abs(out - ref)) < 0.1 * max(1.0, float(np.abs(ref).max()))
