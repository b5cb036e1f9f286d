"""Channel gates: the only place where a channel mask touches activations.

A `ChannelGate` multiplies the last (channel) axis by a mask held in a non-trainable variable, so
changing the sub-network is a variable assignment, never a retrace. One gate *instance* called on
several tensors couples their channels: that is how residual adds share a single mask.

With `score=True` a gate also multiplies by a *trainable* per-channel score (initialised to 1, trained
with the network under a small L1 penalty, `tfprune.structure.gate_scores`): which channels the network itself
finds worth keeping, an importance criterion beside the kernels' L1 norm ("gate_score",
`tfprune.structure.masks`). Surgery folds the score into the layers around the gate (`tfprune.structure.gate_scores`), so
the compact model has no score. Model builders (the zoo, `auto_gate`) create their gates with
`new_gate`, the one place where a gin binding (`new_gate.score = True`) turns scores on.
"""

import gin
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
        score: also multiply by a trainable per-channel score (weight `score`, initialised to 1). Off by
            default: a gate saved without it has no such weight, and loads as it was written.
    """

    def __init__(self, mode="hard", score=False, **kwargs):
        super().__init__(**kwargs)
        if mode not in GATE_MODES:
            raise ValueError(f"ChannelGate mode must be one of {GATE_MODES}, got {mode!r}.")
        self.mode = mode
        self.has_score = bool(score)
        self.channels = None
        self.score = None

    def build(self, input_shape):
        channels = input_shape[-1]
        if channels is None:
            raise ValueError(f"ChannelGate {self.name!r} needs a known channel dimension, got {input_shape}.")
        self.channels = int(channels)
        # Created in build(), not __init__: the Keras convention for weights (the shape is known only here).
        self.mask = self.add_weight(
            name="mask", shape=(self.channels,), initializer="ones", trainable=False
        )
        if self.has_score:
            self.score = self.add_weight(name="score", shape=(self.channels,), initializer="ones", trainable=True)

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
        scored in one batch (`tfprune.search.batched_scoring`). The one place that says what a gate does: with a
        score, the kept channels are also multiplied by it (the same [channels] score for every mask)."""
        if self.mode == "hard":
            mask = ops.cast(mask >= 0.5, inputs.dtype)
        outputs = inputs * ops.cast(mask, inputs.dtype)
        return outputs * ops.cast(self.score, inputs.dtype) if self.has_score else outputs

    def compute_output_shape(self, input_shape):
        return input_shape

    def set_mask(self, mask):
        self.mask.assign(self.checked_mask(mask))

    def checked_mask(self, mask):
        """``mask`` as a float32 vector of this gate's length; ValueError naming the gate if it is not."""
        mask = np.asarray(mask, dtype="float32").reshape(-1)
        if mask.shape != (self.channels,):
            raise ValueError(
                f"Mask for gate {self.name!r} has {mask.size} entries; the gate has {self.channels} channels."
            )
        return mask

    def get_mask(self):
        """The mask as a bool array (what the hard mode applies)."""
        return np.asarray(keras.ops.convert_to_numpy(self.mask)) >= 0.5

    def get_scores(self):
        """The per-channel scores as a float array (all ones for a gate without a score)."""
        if not self.has_score:
            return np.ones(self.channels, dtype="float32")
        return np.asarray(keras.ops.convert_to_numpy(self.score))

    def get_config(self):
        # "score" only when set: a gate without one keeps the config it was always saved with.
        return {**super().get_config(), "mode": self.mode, **({"score": True} if self.has_score else {})}


@gin.configurable
def new_gate(name, score=False):
    """A new `ChannelGate` for a model builder (zoo models, `tfprune.auto_gate`): the one switch for
    trainable gate scores, `new_gate.score = True` in gin. Loading a saved model never comes here, so
    a saved gate keeps what it was written with whatever the binding.

    Args:
        name: the gate layer's name (given by the model builder).
        score: True gives the gate a trainable per-channel score (`tfprune.structure.gate_scores`).
    """
    return ChannelGate(name=name, score=score)


def gates_of(model):
    """All ChannelGate layers of a model, in layer order, by name."""
    return {layer.name: layer for layer in model.layers if isinstance(layer, ChannelGate)}
