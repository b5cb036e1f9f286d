"""Trainable gate scores (`ChannelGate(score=True)`): their sparsity penalty, and their folding at surgery.

The score multiplies a gate's kept channels, so it trains with the network; an L1 penalty
(`score_penalty`, added to the training loss next to alignment by `JointPruner.penalty`; a step after
each batch under `model.fit`, `score_penalty_step`) pushes the
scores of channels the network can do without toward zero, which makes |score| an importance
criterion ("gate_score", `tfprune.structure.masks`).

Folding. The compact model must compute what the masked model computes, without scores. A gate
whose every call reads the output of a BatchNormalization that feeds nothing else (the zoo's
conv -> BN -> gate layout) is folded into that BN exactly: BN(x) * s is the BN with gamma * s and
beta * s, with moving or batch statistics alike. A gate after anything else (e.g. `auto_gate`'s gates
sit after an activation, and relu(x) * s != relu(x * s) for s < 0) cannot be folded into the producer,
so the compact model keeps it as a plain soft `ChannelGate` whose fixed mask is the kept channels'
scores: one multiply per channel, exact, exported like any elementwise multiply. Either way the
compact model holds no trainable score.
"""

import dataclasses

import gin
import keras
import tensorflow as tf

from tfprune.structure.gates import ChannelGate, gates_of


@gin.configurable
def score_penalty(model, strength=1e-4):
    """`strength` * sum of |score| over the model's scored gates (a shared gate counts once): the L1
    sparsity term of the training loss (Network Slimming's 1e-4 by default; 0 disables it). Zero for a
    model without scores. Differentiable, and read per replica like the alignment term.

    Args:
        model: the gated model (given by the trainer).
        strength: weight of the L1 term (0: off).
    """
    scores = [gate.score for gate in gates_of(model).values() if gate.has_score]
    if not scores or not strength:
        return tf.constant(0.0)
    return float(strength) * tf.add_n([tf.reduce_sum(tf.abs(score)) for score in scores])


def score_penalty_step(model, step_size):
    """One gradient step of `score_penalty` alone on the scores, for `model.fit` (`tfprune.pruning.callback`),
    whose loss is not tfprune's to extend: the same L1 term as in the custom loop, applied after each
    optimizer update as alignment's proximal step is."""
    scores = [gate.score for gate in gates_of(model).values() if gate.has_score]
    if not scores:
        return
    with tf.GradientTape() as tape:
        penalty = score_penalty(model)
    for score, grad in zip(scores, tape.gradient(penalty, scores)):
        if grad is not None:
            score.assign_sub(float(step_size) * grad)


@dataclasses.dataclass
class ScoreFolds:
    """Where each scored gate's score goes at surgery (`plan_folds`)."""

    into_norm: dict  # BatchNormalization layer name -> the scored gate reading only its output
    kept_as_scale: set  # names of scored gates kept as a soft ChannelGate holding their scores

    def replacement(self, gate):
        """The compact model's stand-in for a gate: an identity, or a soft gate carrying the scores."""
        if gate.name in self.kept_as_scale:
            return ChannelGate(mode="soft", name=gate.name)
        return lambda x: x

    def adjust(self, layer, weights, kept):
        """The compact layer's weights with the scores folded in; `weights` are already sliced to the
        `kept` channel indices of the layer's output."""
        if isinstance(layer, ChannelGate) and layer.name in self.kept_as_scale:
            return [layer.get_scores()[kept]]
        gate = self.into_norm.get(layer.name)
        if gate is None:
            return weights
        scale = gate.get_scores()[kept]
        weights = list(weights)
        weights[0] = weights[0] * scale  # gamma
        if layer.center:
            weights[1] = weights[1] * scale  # beta
        return weights


def plan_folds(graph):
    """The `ScoreFolds` of a gated model's scored gates (see the module docstring)."""
    producer_of, readers = _tensor_links(graph)
    into_norm, kept_as_scale = {}, set()
    for gate in {id(g.gate): g.gate for g in graph.gated_groups if g.gate.has_score}.values():
        calls = [info for info in graph.nodes if info.layer is gate]
        norms = [producer_of.get(id(info.node.input_tensors[0])) for info in calls]
        if all(_folds_into(norm, gate, graph, readers) for norm in norms):
            into_norm.update({norm.name: gate for norm in norms})
        else:
            kept_as_scale.add(gate.name)
    return ScoreFolds(into_norm, kept_as_scale)


def _tensor_links(graph):
    """({id(tensor): layer producing it}, {id(tensor): [layers reading it]}); a model output is read by
    None (the caller), so a BN whose output leaves the model is never folded."""
    producer_of, readers = {}, {}
    for info in graph.nodes:
        producer_of.update({id(t): info.layer for t in info.node.outputs})
        for t in info.node.input_tensors:
            readers.setdefault(id(t), []).append(info.layer)
    for t in graph.model.outputs:
        readers.setdefault(id(t), []).append(None)
    return producer_of, readers


def _folds_into(norm, gate, graph, readers):
    """True if `norm` is a channel-axis BatchNormalization with a scale whose every output (over all of
    its calls) is read by `gate` alone: scaling its gamma and beta then changes nothing else."""
    if not isinstance(norm, keras.layers.BatchNormalization) or not norm.scale:
        return False
    calls = [info for info in graph.nodes if info.layer is norm]
    if any(info.rule is None for info in calls):
        return False  # not over the channel axis
    return all(reader is gate for info in calls for t in info.node.outputs for reader in readers.get(id(t), [None]))


__all__ = ["ScoreFolds", "plan_folds", "score_penalty", "score_penalty_step"]
