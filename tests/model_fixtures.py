"""Small models and masks shared by the tests."""

import keras
import numpy as np

from tfprune.structure.gates import ChannelGate


@keras.saving.register_keras_serializable(package="tfprune_tests")
class Scale(keras.layers.Layer):
    """A custom layer tfprune has no channel rule for (a barrier); serializable, so a model holding it
    can go through a .keras file."""

    def call(self, x):
        return x * 2.0


def conv_bn(x, filters, gate, kernel=3, name=None):
    x = keras.layers.Conv2D(filters, kernel, padding="same", use_bias=False, name=name)(x)
    return gate(keras.layers.BatchNormalization()(x))


def randomize_bn(model, seed=0):
    """Non-trivial BN statistics, so a wrongly sliced channel changes the output."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            gamma, beta, mean, var = layer.get_weights()
            layer.set_weights(
                [
                    rng.normal(1, 0.3, gamma.shape).astype("float32"),
                    rng.normal(0, 0.3, beta.shape).astype("float32"),
                    rng.normal(0, 0.3, mean.shape).astype("float32"),
                    rng.uniform(0.5, 2, var.shape).astype("float32"),
                ]
            )


def mixed_model(score=False):
    """Residual add, depthwise conv coupled to its expansion, concat, flatten into dense; `score` gives
    every gate a trainable score (`ChannelGate(score=True)`)."""
    inp = keras.Input((16, 16, 3))
    stage = ChannelGate(name="stage_gate", score=score)
    x = keras.layers.ReLU()(conv_bn(inp, 8, stage, name="stem"))
    y = keras.layers.ReLU()(conv_bn(x, 12, ChannelGate(name="b1_gate", score=score), name="b1c1"))
    y = conv_bn(y, 8, stage, name="b1c2")
    x = keras.layers.ReLU()(keras.layers.Add()([x, y]))
    expand = ChannelGate(name="exp_gate", score=score)
    e = keras.layers.ReLU()(conv_bn(x, 16, expand, kernel=1, name="expand"))
    e = keras.layers.DepthwiseConv2D(3, padding="same", use_bias=False, name="dw")(e)
    e = keras.layers.ReLU()(expand(keras.layers.BatchNormalization()(e)))
    side = keras.layers.ReLU()(conv_bn(x, 6, ChannelGate(name="side_gate", score=score), kernel=1, name="side"))
    c = keras.layers.Concatenate()([e, side])
    c = keras.layers.MaxPooling2D(4)(c)
    out = keras.layers.Dense(5, name="fc")(keras.layers.Flatten()(c))
    model = keras.Model(inp, out)
    randomize_bn(model)
    return model


def random_masks(graph, seed=0, keep=0.6):
    rng = np.random.default_rng(seed)
    masks = {}
    for g in graph.gated_groups:
        m = rng.random(g.size) < keep
        m[rng.integers(g.size)] = True
        masks[g.name] = m
    return masks
