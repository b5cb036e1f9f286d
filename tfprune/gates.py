"""Channel gates: the only place where a channel mask touches activations.

A `ChannelGate` multiplies the last (channel) axis by a mask held in a non-trainable variable, so
changing the sub-network is a variable assignment, never a retrace. One gate *instance* called on
several tensors couples their channels: that is how residual adds share a single mask.
"""

import keras
import numpy as np
from keras import ops

GATE_MODES = ("soft", "hard")


@keras.saving.register_keras_serializable(package="tfprune")
class ChannelGate(keras.layers.Layer):
    """Per-channel mask on the last axis.

    Args:
        mode: "soft" multiplies by the mask as stored (values in [0, 1], e.g. a relaxed or annealed
            mask during training); "hard" multiplies by `mask >= 0.5`, the binary sub-network used
            to evaluate an agent's choice and that physical pruning reproduces exactly.
    """

    def __init__(self, mode="hard", **kwargs):
        super().__init__(**kwargs)
        if mode not in GATE_MODES:
            raise ValueError(f"ChannelGate mode must be one of {GATE_MODES}, got {mode!r}.")
        self.mode = mode
        self.channels = None

    def build(self, input_shape):
        channels = input_shape[-1]
        if channels is None:
            raise ValueError(f"ChannelGate {self.name!r} needs a known channel dimension, got {input_shape}.")
        self.channels = int(channels)
        # Created in build(), not __init__: the Keras convention for weights (the shape is known only here).
        self.mask = self.add_weight(
            name="mask", shape=(self.channels,), initializer="ones", trainable=False
        )

    def call(self, inputs):
        if inputs.shape[-1] != self.channels:
            raise ValueError(
                f"ChannelGate {self.name!r} holds {self.channels} channels but was called on a tensor "
                f"with {inputs.shape[-1]}: every tensor sharing one gate must have the same channels."
            )
        return self.gated(inputs, self.mask)

    def gated(self, inputs, mask):
        """`inputs` times `mask` as this gate applies it (hard: `mask >= 0.5`). `mask` broadcasts against
        `inputs`: [channels] for the gate's own mask, [K, 1, ..., 1, channels] when K sub-networks are
        scored in one batch (`tfprune.batched_scoring`). The one place that says what a gate does."""
        if self.mode == "hard":
            mask = ops.cast(mask >= 0.5, inputs.dtype)
        return inputs * ops.cast(mask, inputs.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def set_mask(self, mask):
        mask = np.asarray(mask, dtype="float32").reshape(-1)
        if mask.shape != (self.channels,):
            raise ValueError(
                f"Mask for gate {self.name!r} has {mask.size} entries; the gate has {self.channels} channels."
            )
        self.mask.assign(mask)

    def get_mask(self):
        """The mask as a bool array (what the hard mode applies)."""
        return np.asarray(keras.ops.convert_to_numpy(self.mask)) >= 0.5

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}


def gates_of(model):
    """All ChannelGate layers of a model, in layer order, by name."""
    return {layer.name: layer for layer in model.layers if isinstance(layer, ChannelGate)}
