"""Channel importance: which channels of a gated group matter most, as criterion objects.

A criterion is an `Importance`: called on a `ChannelGraph`, it scores every channel of every gated
group (``{group name: float64 scores}``), summed over the layers coupled into the group. The budget
keeps each group's highest-scoring channels (`tfprune.cost.budget.FlopsBudget`). Objects rather than
names, as in Torch-Pruning (``importance=L1Importance()``), so that a user's own criterion needs no
change here: subclass `Importance`. The names the configs have always used ("l1", "bn_scale",
"gate_score", `IMPORTANCE_CRITERIA`) stay valid through `as_importance`.

- `L1Importance` ("l1", default): the L1 norm of the weights that produce the channel (Li et al. 2017),
  which is what the alignment regulariser drives: channels outside the agent's selection shrink toward
  zero, so importance then agrees with the agent.
- `BNScaleImportance` ("bn_scale"): |gamma| of the BatchNormalization right after the producer
  (Network Slimming, Liu et al. 2017).
- `GateScoreImportance` ("gate_score"): |score| of the group's trainable gate score
  (`ChannelGate(score=True)`, trained with the network under an L1 penalty, `tfprune.structure.gate_scores`).
"""

import abc

import gin
import keras
import numpy as np

from tfprune.errors import TfpruneError

IMPORTANCE_CRITERIA = ("l1", "bn_scale", "gate_score")


class ImportanceError(TfpruneError, ValueError):
    """An unknown channel-importance criterion was asked for, or one the model cannot answer."""


class Importance(abc.ABC):
    """A channel-importance criterion: ``criterion(graph) -> {group name: scores}``, one non-negative
    float64 score per channel, larger = keep first (ties keep the lower index).

    ``name`` is the criterion's name in configs and reports (None for a user's own criterion).
    `check(graph)` runs where the budget is built, so that a criterion the model cannot answer fails
    before any training time is spent; the default accepts every model.
    """

    name = None

    @abc.abstractmethod
    def __call__(self, graph):
        """{gated group name: np.float64 array of the group's channel scores}."""

    def check(self, graph):
        """Raises `ImportanceError` if this model cannot be scored by the criterion."""

    def __repr__(self):
        return f"{type(self).__name__}()"


@gin.configurable
class L1Importance(Importance):
    """The L1 norm of each producer's kernel per output channel, summed over the group's producers."""

    name = "l1"

    def __call__(self, graph):
        return {group.name: _l1_sum(graph, group, {}) for group in graph.gated_groups}


@gin.configurable
class BNScaleImportance(Importance):
    """|gamma| of the BatchNormalization layer(s) that directly consume each producer's output: the scale
    decides how much of the channel survives normalisation, whatever the kernel's size. A producer that
    no BatchNormalization follows directly (a Dense head, a conv straight into an activation) contributes
    its L1 score instead, so that every producer still counts; in a group that mixes both kinds the L1
    terms, on a larger scale than gammas, then dominate the ranking."""

    name = "bn_scale"

    def __call__(self, graph):
        norms_after = _batch_norms_after_producers(graph)
        return {group.name: _l1_sum(graph, group, norms_after) for group in graph.gated_groups}


@gin.configurable
class GateScoreImportance(Importance):
    """|score| of the group's gate, one per channel (a gate shared by a residual add scores the group once)."""

    name = "gate_score"

    def __call__(self, graph):
        return {group.name: np.abs(group.gate.get_scores()).astype(np.float64) for group in graph.gated_groups}

    def check(self, graph):
        unscored = [g.name for g in graph.gated_groups if not g.gate.has_score]
        if unscored:
            raise ImportanceError(
                f"Importance 'gate_score' needs gates with a trainable score, and gates {unscored} have none: build "
                "the model with the gin binding `new_gate.score = True` (zoo models and tfprune.auto_gate)."
            )


_BY_NAME = {"l1": L1Importance, "bn_scale": BNScaleImportance, "gate_score": GateScoreImportance}


def as_importance(criterion, graph=None):
    """The `Importance` a setting means: an `Importance` itself, or one of `IMPORTANCE_CRITERIA` by name;
    given the model's ``graph``, also checked against it (`Importance.check`)."""
    if not isinstance(criterion, Importance):
        if not isinstance(criterion, str) or criterion not in _BY_NAME:
            raise ImportanceError(
                f"Unknown channel-importance criterion {criterion!r}; set JointPruner.importance to one of "
                f"{', '.join(repr(c) for c in IMPORTANCE_CRITERIA)}, or to a tfprune.structure.importance.Importance."
            )
        criterion = _BY_NAME[criterion]()
    if graph is not None:
        criterion.check(graph)
    return criterion


def check_criterion(criterion, graph=None):
    """The criterion as given, if `as_importance` accepts it (kept for callers that pass names)."""
    as_importance(criterion, graph)
    return criterion


def channel_importance(graph, criterion="l1"):
    """Importance of each gated group's channels by ``criterion`` (a name or an `Importance`)."""
    return as_importance(criterion, graph)(graph)


def _l1_sum(graph, group, norms_after):
    """The group's scores summed over its producers: |gamma| of the BNs after a producer where
    ``norms_after`` names some, else the producer's kernel L1 norms."""
    score = np.zeros(group.size, dtype=np.float64)
    for name in group.producers:
        norms = norms_after.get(name)
        score += sum(np.abs(np.asarray(bn.gamma)) for bn in norms) if norms else _l1(graph.model.get_layer(name))
    return score


def _l1(layer):
    kernel = np.asarray(layer.weights[_kernel_index(layer)])
    return np.abs(kernel.reshape(-1, kernel.shape[-1])).sum(axis=0)


def _batch_norms_after_producers(graph):
    """{producer layer name: [BatchNormalization layers called directly on its output]}, from the
    graph's nodes; only channel-axis BNs with a scale (gamma) count."""
    produced_by = {}
    for info in graph.nodes:
        if info.rule is not None and info.rule.kind == "produce":
            produced_by.update({id(t): info.layer.name for t in info.node.outputs})
    norms_after = {}
    for info in graph.nodes:
        layer = info.layer
        if isinstance(layer, keras.layers.BatchNormalization) and info.rule is not None and layer.scale:
            producer = produced_by.get(id(info.node.input_tensors[0]))
            if producer is not None:
                norms_after.setdefault(producer, []).append(layer)
    return norms_after


def _kernel_index(layer):
    # SeparableConv2D holds [depthwise, pointwise, bias]: the pointwise kernel produces the channels.
    return 1 if hasattr(layer, "pointwise_kernel") else 0
