"""A seeded generator of random small functional Keras CNNs, for the property test of the core
(`tests/test_property_graphs.py`, issue 33 item 5).

`random_model(seed)` builds one graph from the pieces users' models are made of: Conv2D (with or
without bias and activation), BatchNormalization, DepthwiseConv2D, grouped Conv2D (groups == channels,
ConvNeXt's depthwise, and groups < channels, a barrier), SeparableConv2D, residual adds (Add layer
or ``x + y``), Concatenate, squeeze-excite multiplies (GAP -> Dense or 1x1 Conv -> sigmoid -> Multiply
or ``x * s``), keras.ops operator nodes (``x + 3.0``, ``relu6``, hard-swish, ``x * y``, ``maximum``),
pooling, padding, dropout, a layer shared by two calls, a nested functional sub-model (sometimes
called twice), and a dense head (GAP or Flatten). Inputs are
tiny (8x8x3) and channels few, so one graph is built, gated, masked and compacted in well under a second.
"""

import keras
import numpy as np

SHAPE = (8, 8, 3)


class _Builder:
    def __init__(self, rng):
        self.rng = rng
        self.n = 0

    def name(self, kind):
        self.n += 1
        return f"{kind}{self.n}"

    def pick(self, options):
        return options[self.rng.integers(len(options))]

    def channels(self):
        return int(self.rng.integers(2, 7))

    # --- single-tensor pieces ----------------------------------------------------------------------
    def conv(self, x, filters=None):
        filters = filters or self.channels()
        kernel = int(self.pick([1, 3]))
        activation = self.pick([None, None, "relu", "sigmoid", "swish"])
        return keras.layers.Conv2D(
            filters, kernel, padding="same", use_bias=bool(self.rng.random() < 0.5),
            activation=activation, name=self.name("conv"),
        )(x)

    def bn(self, x):
        return keras.layers.BatchNormalization(name=self.name("bn"))(x)

    def activation(self, x):
        kind = self.pick(["relu", "relu6_op", "hard_swish", "plus3", "sigmoid_layer", "relu_layer", "silu_op"])
        if kind == "relu":
            return keras.ops.relu(x)
        if kind == "relu6_op":
            return keras.ops.relu6(x)
        if kind == "hard_swish":
            return x * (keras.ops.relu6(x + 3.0) * (1.0 / 6.0))
        if kind == "plus3":
            return x + 3.0
        if kind == "sigmoid_layer":
            return keras.layers.Activation("sigmoid")(x)
        if kind == "relu_layer":
            return keras.layers.ReLU()(x)
        return keras.ops.silu(x) - 0.5

    def depthwise(self, x):
        kind = self.pick(["dw", "dw2", "grouped_dw", "grouped", "separable"])
        c = x.shape[-1]
        bias = bool(self.rng.random() < 0.5)
        if kind == "dw":
            return keras.layers.DepthwiseConv2D(3, padding="same", use_bias=bias, name=self.name("dw"))(x)
        if kind == "dw2":
            return keras.layers.DepthwiseConv2D(
                3, padding="same", depth_multiplier=2, use_bias=bias, name=self.name("dwm")
            )(x)
        if kind == "grouped_dw":  # ConvNeXt's depthwise conv: Conv2D(groups=C)
            return keras.layers.Conv2D(c, 3, padding="same", groups=c, use_bias=bias, name=self.name("gdw"))(x)
        if kind == "grouped" and c % 2 == 0 and c > 2:  # two channels per group: a barrier
            return keras.layers.Conv2D(c, 3, padding="same", groups=c // 2, name=self.name("grouped"))(x)
        return keras.layers.SeparableConv2D(self.channels(), 3, padding="same", use_bias=bias,
                                            name=self.name("sep"))(x)

    def pool(self, x):
        if x.shape[1] < 4:
            return keras.layers.ZeroPadding2D(1)(x) if self.rng.random() < 0.3 else x
        kind = self.pick(["max", "avg", "pad_crop", "dropout"])
        if kind == "max":
            return keras.layers.MaxPooling2D(2)(x)
        if kind == "avg":
            return keras.layers.AveragePooling2D(2)(x)
        if kind == "pad_crop":
            return keras.layers.Cropping2D(1)(keras.layers.ZeroPadding2D(1)(x))
        return keras.layers.Dropout(0.2)(x)

    def squeeze_excite(self, x):
        c = x.shape[-1]
        s = keras.layers.GlobalAveragePooling2D(keepdims=bool(self.rng.random() < 0.5))(x)
        if len(s.shape) == 2 and self.rng.random() < 0.5:
            s = keras.layers.Dense(max(1, c // 2), activation="relu", name=self.name("se_fc"))(s)
            s = keras.layers.Dense(c, activation="sigmoid", name=self.name("se_fc"))(s)
            s = keras.layers.Reshape((1, 1, c))(s)
        else:
            if len(s.shape) == 2:
                s = keras.layers.Reshape((1, 1, c))(s)
            s = keras.layers.Conv2D(max(1, c // 2), 1, activation="relu", name=self.name("se_conv"))(s)
            s = keras.layers.Conv2D(c, 1, name=self.name("se_conv"))(s)
            s = keras.ops.sigmoid(s) if self.rng.random() < 0.5 else keras.ops.hard_sigmoid(s)
        return keras.layers.Multiply()([x, s]) if self.rng.random() < 0.5 else x * s

    # --- multi-tensor pieces -----------------------------------------------------------------------
    def residual(self, x):
        y = self.conv(x)
        if self.rng.random() < 0.5:
            y = self.bn(y)
        y = self.activation(y)
        y = self.conv(y, filters=x.shape[-1])
        if self.rng.random() < 0.5:
            y = self.bn(y)
        kind = self.pick(["Add", "plus", "times", "maximum", "subtract"])
        if kind == "Add":
            return keras.layers.Add()([x, y])
        if kind == "plus":
            return x + y
        if kind == "times":
            return x * y
        if kind == "subtract":
            return keras.layers.Subtract()([x, y])
        return keras.ops.maximum(x, y)

    def concat(self, x):
        branches = [x if self.rng.random() < 0.5 else self.conv(x)]
        for _ in range(int(self.rng.integers(1, 3))):
            b = self.conv(x)
            if self.rng.random() < 0.5:
                b = self.activation(self.bn(b))
            branches.append(b)
        return keras.layers.Concatenate()(branches)

    def spatial_attention(self, x):
        a = keras.ops.sigmoid(keras.layers.Conv2D(1, 3, padding="same", name=self.name("att"))(x))
        return x * a

    def shared(self, x):
        """One Conv2D (one set of weights) called on two tensors."""
        conv = keras.layers.Conv2D(self.channels(), 3, padding="same", name=self.name("shared"))
        a, b = conv(x), conv(self.activation(x))
        return keras.layers.Concatenate()([a, b]) if self.rng.random() < 0.5 else keras.layers.Add()([a, b])

    def sub_model(self, x, depth):
        """A nested functional model (a backbone inside the user's model), built by this generator;
        sometimes called twice (shared weights) where its output fits its input."""
        inp = keras.Input(tuple(x.shape[1:]))
        y = self.body(inp, depth + 1, steps=int(self.rng.integers(1, 4)))
        twice = self.rng.random() < 0.3
        if twice:
            y = self.conv(y, filters=x.shape[-1])
        sub = keras.Model(inp, y, name=self.name("sub"))
        out = sub(x)
        return sub(out) if twice and tuple(out.shape) == tuple(x.shape) else out

    def body(self, x, depth=0, steps=None):
        steps = steps if steps is not None else int(self.rng.integers(2, 7))
        pieces = [self.conv, self.bn, self.activation, self.depthwise, self.pool, self.squeeze_excite,
                  self.residual, self.concat, self.spatial_attention, self.shared]
        weights = np.array([3, 2, 2, 2, 1, 1, 2, 2, 0.5, 0.3], dtype=float)
        for _ in range(steps):
            if depth == 0 and self.rng.random() < 0.1:
                x = self.sub_model(x, depth)
                continue
            piece = pieces[self.rng.choice(len(pieces), p=weights / weights.sum())]
            x = piece(x)
        return x

    def head(self, x):
        if self.rng.random() < 0.7:
            x = keras.layers.GlobalAveragePooling2D()(x) if self.rng.random() < 0.7 else \
                keras.layers.GlobalMaxPooling2D()(x)
        else:
            if x.shape[1] > 2:
                x = keras.layers.MaxPooling2D(x.shape[1] // 2)(x)
            x = keras.layers.Flatten()(x)
        if self.rng.random() < 0.4:
            x = keras.layers.Dense(int(self.rng.integers(3, 8)), activation="relu", name=self.name("fc"))(x)
            if self.rng.random() < 0.5:
                x = keras.layers.Dropout(0.1)(x)
        return keras.layers.Dense(4, name=self.name("out"))(x)


def random_model(seed):
    """One random functional CNN on 8x8x3 inputs; the same seed gives the same graph."""
    rng = np.random.default_rng(seed)
    builder = _Builder(rng)
    inp = keras.Input(SHAPE)
    x = builder.conv(inp)
    if rng.random() < 0.5:
        x = builder.activation(builder.bn(x))
    x = builder.body(x)
    return keras.Model(inp, builder.head(x), name=f"random_{seed}")
