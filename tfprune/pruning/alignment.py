"""Alignment: pull the CNN's weights toward the sub-network the agent selected.

A group lasso over every weight that carries a channel outside the selected mask: the producing
kernels' output slices, the BatchNorm scale and shift (without them a zeroed kernel still emits the
BN shift), depthwise kernels coupled to the group and the gate's trainable score if it has one (so that
the "gate_score" importance, like L1 and BN scale, comes to agree with the selection). Driving those
groups to zero makes the final physical cut nearly lossless. It is applied either as a loss term (the custom training loop adds
`penalty()`, differentiable, distribution-safe) or as a proximal step after each optimizer update
(`proximal_step`, for `model.fit` through `AlignmentCallback`): the same regulariser either way.
"""

import keras
import numpy as np
import tensorflow as tf

from tfprune.structure.gates import ChannelGate

_EPS = 1e-8


class GroupLassoAlignment:
    """Group lasso toward per-group target masks; strength is a variable so schedules never retrace."""

    def __init__(self, graph):
        self.group_names = [g.name for g in graph.gated_groups]
        self._slices = {name: [] for name in self.group_names}  # name -> [(variable, channel axis)]
        for info in graph.nodes:
            group = self._single_group(graph, info.out_layout)
            if group is None or group.name not in self._slices:
                continue
            for variable, axis in _channel_slices(info):
                if all(variable is not v for v, _ in self._slices[group.name]):  # a shared gate's score: once
                    self._slices[group.name].append((variable, axis))
        self.targets = {
            g.name: tf.Variable(tf.ones([g.size]), trainable=False, name=f"align_target_{i}")
            for i, g in enumerate(graph.gated_groups)
        }
        self.strength = tf.Variable(0.0, trainable=False, name="align_strength")

    @staticmethod
    def _single_group(graph, layout):
        if len(layout) != 1:
            return None
        return graph.group_of_space(layout[0][0])

    def set_targets(self, masks):
        """The agent's selected sub-network becomes the structure the weights are pulled toward."""
        for name, mask in masks.items():
            self.targets[name].assign(np.asarray(mask, dtype="float32"))

    def channel_norms(self, name):
        """L2 norm of every channel's weights across all coupled layers of a group."""
        squares = []
        for variable, axis in self._slices[name]:
            value = tf.convert_to_tensor(variable)
            reduce_axes = [a for a in range(len(value.shape)) if a != axis]
            squares.append(tf.reduce_sum(tf.square(value), axis=reduce_axes) if reduce_axes else tf.square(value))
        return tf.sqrt(tf.add_n(squares) + _EPS)

    def penalty(self):
        """strength * sum over groups of the norms of channels outside the target mask."""
        total = tf.constant(0.0)
        for name in self.group_names:
            if self._slices[name]:
                total += tf.reduce_sum((1.0 - self.targets[name]) * self.channel_norms(name))
        return self.strength * total

    def proximal_step(self, step_size):
        """Group-lasso proximal operator: shrinks channels outside the mask by step_size * strength."""
        threshold = float(step_size) * float(self.strength.numpy())
        for name in self.group_names:
            if not self._slices[name]:
                continue
            norms = self.channel_norms(name)
            shrink = tf.maximum(0.0, 1.0 - threshold / norms)
            scale = self.targets[name] + (1.0 - self.targets[name]) * shrink
            for variable, axis in self._slices[name]:
                shape = [1] * len(variable.shape)
                shape[axis] = -1
                variable.assign(tf.convert_to_tensor(variable) * tf.reshape(scale, shape))

    def outside_mass(self):
        """Fraction of the weight norm that sits outside the target masks (1 = nothing aligned yet)."""
        inside = outside = 0.0
        for name in self.group_names:
            if self._slices[name]:
                norms = self.channel_norms(name).numpy()
                target = self.targets[name].numpy()
                inside += float((norms * target).sum())
                outside += float((norms * (1 - target)).sum())
        return outside / max(inside + outside, _EPS)

    def checkpoint_items(self):
        return {"align_strength": self.strength, **{f"align_{n}": v for n, v in self.targets.items()}}


def _channel_slices(info):
    """(variable, channel axis) pairs of a layer's weights that belong to its output channels."""
    layer, rule = info.layer, info.rule
    if rule is None:
        return []
    if rule.kind == "produce":
        kernel = layer.pointwise_kernel if hasattr(layer, "pointwise_kernel") else layer.kernel
        pairs = [(kernel, len(kernel.shape) - 1)]
        if getattr(layer, "use_bias", False):
            pairs.append((layer.bias, 0))
        return pairs
    if isinstance(layer, ChannelGate):
        return [(layer.score, 0)] if layer.has_score else []
    if isinstance(layer, keras.layers.BatchNormalization):
        return [(v, 0) for v in (getattr(layer, "gamma", None), getattr(layer, "beta", None)) if v is not None]
    if isinstance(layer, keras.layers.DepthwiseConv2D):
        pairs = [(layer.kernel, 2)]
        if getattr(layer, "use_bias", False):
            pairs.append((layer.bias, 0))
        return pairs
    return []


class AlignmentSchedule:
    """The run's warm-up and the alignment strength after it: the one place the warm-up is read (the
    alignment ramp, the trainer's and the callback's "agent step this epoch?"), so they cannot disagree.

    Strength is 0 during the ``warmup_epochs``, then ramps linearly to ``max_strength`` over ``ramp_epochs``.
    """

    def __init__(self, warmup_epochs=0, ramp_epochs=5, max_strength=1e-3):
        self.warmup_epochs, self.ramp_epochs = int(warmup_epochs), int(ramp_epochs)
        self.max_strength = float(max_strength)

    def in_warmup(self, epoch):
        """Whether `epoch` trains the weights only (no agent step, no alignment)."""
        return epoch < self.warmup_epochs

    def strength(self, epoch):
        if self.in_warmup(epoch):
            return 0.0
        return self.max_strength * min(1.0, (epoch - self.warmup_epochs + 1) / max(1, self.ramp_epochs))
