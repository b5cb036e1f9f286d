"""The layer registry: how each Keras layer type relates its input channels to its output channels.

Everything that needs to know a layer's channel semantics asks this module: the dependency analysis
(`graph.py`), FLOPs and parameter counting (`flops.py`) and physical pruning (`surgery.py`). Adding
support for a layer type means adding one `LayerRule` here.

Kinds of rule:
  * ``passthrough``: output channel c depends only on input channel c (BatchNorm, activations,
    pooling, depthwise conv with multiplier 1, gates). Input and output share one channel space.
  * ``produce``: output channels are new (Conv2D, Dense, SeparableConv2D): they start a channel group;
    input channels are consumed (sliced away when pruned upstream).
  * ``merge``: element-wise merge of equally shaped tensors (Add, Multiply, ...): couples the inputs.
  * ``concat``: channel concatenation: the output is the inputs' channels laid side by side.
  * ``flatten``: Flatten of an (H, W, C) map: the channel layout repeats H*W times.
Layers not listed are *barriers*: the channels around them are left unpruned (never a wrong model).

Besides its kind, a rule holds the other facts tfprune needs about a layer type: its FLOPs and
parameter formulas, how to slice its weights and shrink its config, whether it maps an all-zero channel
to an all-zero channel (`preserves_zero`, which `auto_gate` uses to skip redundant gates), whether it
keeps a constant channel constant (`preserves_constant`) and, for a consumer, what a constant input
channel adds to each output (`folds_constant`, `tfprune.structure.constant_folds`: DenseNet's concat ->
BN -> 1x1 conv), and the config rewrite that keeps a copy of it prunable (`prunable_config`). `lookup`
is the one place that finds a layer's rule.
"""

import dataclasses
from typing import Callable, Optional

import keras
import numpy as np

from tfprune.errors import TfpruneError
from tfprune.structure import keras_internals
from tfprune.structure.gates import ChannelGate


@dataclasses.dataclass(frozen=True)
class Term:
    """A cost term ``coef * prod(channels(layout) for layout in factors)``.

    ``factors`` holds the strings "in" and/or "out": the layer's input or output channel layout.
    """

    coef: float
    factors: tuple = ()


@dataclasses.dataclass(frozen=True)
class LayerRule:
    kind: str
    flops: Callable = lambda layer, in_shape, out_shape: []
    params: Callable = lambda layer, in_shape, out_shape: []
    # (layer, weights, in_idx, out_idx) -> sliced weights; in_idx/out_idx are kept channel indices.
    slice_weights: Optional[Callable] = None
    # (layer config, kept output channels) -> config of the smaller layer.
    shrink_config: Callable = lambda config, n_out: config
    # Extra condition for the rule to apply (e.g. depth_multiplier == 1); None means always.
    applies: Optional[Callable] = None
    why_not: str = ""
    # layer -> True if the layer maps an all-zero channel to an all-zero channel (in training too).
    # Asked of passthrough layers only; not the same fact as the kind (GaussianNoise, BatchNormalization
    # and sigmoid pass channels through but give a zero channel a nonzero value).
    zero_preserving: Callable = lambda layer: False
    # layer -> True if, at inference, a channel holding one value over the batch and every position comes out
    # holding one value (BatchNormalization, element-wise activations, 'valid' pooling; not zero padding, whose
    # borders differ). Asked of passthrough layers only (`tfprune.structure.constant_folds`).
    constant_preserving: Callable = lambda layer: False
    # Consumers ("produce"): (layer, weights, values) -> what input channels holding the constants `values`
    # (one per input channel, 0 for the others) add to each output channel, before the activation; None: a
    # constant input is never a constant contribution. `folds_constant` says whether this layer qualifies
    # (a kxk Conv2D with padding='same' does not: its zero padding makes the borders differ).
    constant_bias: Optional[Callable] = None
    folds_constant: Callable = lambda layer: True
    # Merges: given, per input, whether a channel is all-zero there, is the output channel all-zero?
    merge_zero: Callable = all
    # (layer, layer config) -> config of a copy that stays channel-preserving when channels are pruned.
    prunable_config: Callable = lambda layer, config: config
    # The op whose measured latency stands for the layer's (`tfprune.cost.latency`): "conv", "depthwise",
    # "dense", "separable" (a depthwise then a 1x1 conv) or "add"; None: not in the latency model.
    latency_op: Optional[str] = None


_RULES = {}


def register(layer_class, rule):
    """Adds a rule for a layer (or keras.ops operation) class. A class may hold several rules, each with
    its own `applies` condition (e.g. Conv2D: a plain conv, or a grouped conv used as depthwise); the
    first that applies to a layer is its rule."""
    _RULES.setdefault(layer_class, []).append(rule)


def lookup(layer):
    """The rule registered for the layer's class or its nearest base class: the first of that class's
    rules that applies to this layer, else its first rule (which then does not apply); None if tfprune
    knows nothing about the class. Every question about a layer starts here."""
    for cls in type(layer).__mro__:
        rules = _RULES.get(cls)
        if rules:
            return next((r for r in rules if _applies(r, layer)), rules[0])
    return None


def _applies(rule, layer):
    try:
        return rule.applies is None or bool(rule.applies(layer))
    except Exception:  # noqa: BLE001 - a condition that cannot be checked makes a barrier, never a crash
        return False


def rule_for(layer):
    """The rule for a layer, or None for a barrier (no rule, or the rule does not apply to it)."""
    rule = lookup(layer)
    return rule if rule is not None and _applies(rule, layer) else None


def cost_rule(layer):
    """The rule used for counting FLOPs/params: the class rule even where it does not allow pruning
    (a grouped Conv2D still costs FLOPs). None for layers tfprune has no formula for."""
    return lookup(layer)


def barrier_reason(layer):
    """Why a layer is a barrier, for the warning that names it."""
    rule = lookup(layer)
    if rule is not None and not _applies(rule, layer):
        return rule.why_not
    return f"tfprune has no channel rule for {type(layer).__name__}"


def preserves_zero(layer):
    """True if the layer maps an all-zero channel to an all-zero channel (in training too);
    conservatively False for layers tfprune knows nothing about."""
    rule = lookup(layer)
    return rule is not None and bool(rule.zero_preserving(layer))


def preserves_constant(layer):
    """True if, at inference, the layer maps a channel holding one value everywhere to a channel holding one
    value everywhere; conservatively False for layers tfprune knows nothing about."""
    rule = lookup(layer)
    return rule is not None and bool(rule.constant_preserving(layer))


def folds_constant(layer):
    """True if the layer is a consumer to which an input channel holding one value everywhere adds one
    value per output channel (`LayerRule.constant_bias`): removing the channel and adding that value to the
    bias is exact."""
    rule = rule_for(layer)
    return rule is not None and rule.constant_bias is not None and bool(rule.folds_constant(layer))


def prunable_config(layer):
    """The layer's config, rewritten where needed so that a copy of the layer stays channel-preserving
    whatever its channel count becomes after pruning (see `_reshape_prunable_config`)."""
    config = layer.get_config()
    rule = lookup(layer)
    return config if rule is None else rule.prunable_config(layer, config)


class UnknownSpatialSize(TfpruneError, ValueError):
    """A model built without a fixed input size: its FLOPs cannot be counted."""


def _spatial(shape):
    """Number of output positions per example: product of all dims except batch and channels."""
    if any(d is None for d in shape[1:-1]):
        raise UnknownSpatialSize(
            f"A layer's output has an unknown spatial size {tuple(shape)}: tfprune counts FLOPs on a fixed "
            "input shape; build the model with one, e.g. keras.Input((224, 224, 3))."
        )
    return float(np.prod([d for d in shape[1:-1]])) if len(shape) > 2 else 1.0


def _zero_at_zero(fn):
    """True if the element-wise function (an activation or an activation layer) gives f(0) == 0."""
    try:
        out = keras.ops.convert_to_numpy(fn(keras.ops.zeros((1, 1), dtype="float32")))
    except Exception:  # noqa: BLE001
        return False
    return bool(np.all(out == 0))


def _always(layer):
    return True


def _never(layer):
    return False


def _exactly(cls, condition):
    """`zero_preserving` for instances of exactly ``cls`` that meet ``condition``: a subclass may
    override ``call`` and so is conservatively not zero-preserving."""
    return lambda layer: type(layer) is cls and condition(layer)


def _take(weights, axis_indices):
    """Slice each weight along the given axes: axis_indices is [(axis, idx or None), ...] per weight."""
    out = []
    for w, spec in zip(weights, axis_indices):
        for axis, idx in spec:
            if idx is not None:
                w = np.take(w, idx, axis=axis)
        out.append(w)
    return out


# --- produce ---------------------------------------------------------------------------------------


def _conv_flops(layer, in_shape, out_shape):
    kh, kw = layer.kernel_size
    return [Term(_spatial(out_shape) * kh * kw / layer.groups, ("in", "out"))]


def _conv_params(layer, in_shape, out_shape):
    kh, kw = layer.kernel_size
    terms = [Term(kh * kw / layer.groups, ("in", "out"))]
    if layer.use_bias:
        terms.append(Term(1.0, ("out",)))
    return terms


def _conv_slice(layer, weights, in_idx, out_idx):
    specs = [[(2, in_idx), (3, out_idx)], [(0, out_idx)]]
    return _take(weights, specs[: len(weights)])


def _filters(config, n_out):
    return {**config, "filters": int(n_out)}


def _conv_constant_bias(layer, weights, values):
    # Every output position reads every kernel tap from inside the input (see `_valid_window`).
    return np.einsum("hwio,i->o", weights[0], values)


def _valid_window(layer):
    """True if every output position reads its whole kernel window from inside the input: a 1x1 kernel
    (no padding whatever ``padding`` says) or padding='valid'."""
    return tuple(layer.kernel_size) == (1, 1) or layer.padding == "valid"


register(
    keras.layers.Conv2D,
    LayerRule(
        "produce",
        flops=_conv_flops,
        params=_conv_params,
        slice_weights=_conv_slice,
        shrink_config=_filters,
        constant_bias=_conv_constant_bias,
        folds_constant=_valid_window,
        latency_op="conv",
        applies=lambda layer: layer.groups == 1 and layer.data_format == "channels_last",
        why_not="a grouped Conv2D (other than a depthwise one: groups == filters == input channels) or a "
        "channels_first one couples channels in ways tfprune does not slice",
    ),
)


def _dense_flops(layer, in_shape, out_shape):
    return [Term(_spatial(out_shape), ("in", "out"))]


def _dense_params(layer, in_shape, out_shape):
    return [Term(1.0, ("in", "out"))] + ([Term(1.0, ("out",))] if layer.use_bias else [])


def _dense_slice(layer, weights, in_idx, out_idx):
    specs = [[(0, in_idx), (1, out_idx)], [(0, out_idx)]]
    return _take(weights, specs[: len(weights)])


register(
    keras.layers.Dense,
    LayerRule(
        "produce",
        flops=_dense_flops,
        params=_dense_params,
        slice_weights=_dense_slice,
        shrink_config=lambda config, n_out: {**config, "units": int(n_out)},
        constant_bias=lambda layer, weights, values: values @ weights[0],
        latency_op="dense",
        applies=lambda layer: layer.lora_rank is None if hasattr(layer, "lora_rank") else True,
        why_not="LoRA-enabled Dense layers are not sliced",
    ),
)


def _sep_flops(layer, in_shape, out_shape):
    kh, kw = layer.kernel_size
    m = layer.depth_multiplier
    return [Term(_spatial(out_shape) * kh * kw * m, ("in",)), Term(_spatial(out_shape) * m, ("in", "out"))]


def _sep_params(layer, in_shape, out_shape):
    kh, kw = layer.kernel_size
    m = layer.depth_multiplier
    terms = [Term(kh * kw * m, ("in",)), Term(m, ("in", "out"))]
    return terms + ([Term(1.0, ("out",))] if layer.use_bias else [])


def _sep_slice(layer, weights, in_idx, out_idx):
    m = layer.depth_multiplier
    # The pointwise kernel's input axis is laid out as channel * m + j.
    pw_in = None if in_idx is None else (np.asarray(in_idx)[:, None] * m + np.arange(m)).reshape(-1)
    specs = [[(2, in_idx)], [(2, pw_in), (3, out_idx)], [(0, out_idx)]]
    return _take(weights, specs[: len(weights)])


register(
    keras.layers.SeparableConv2D,
    LayerRule(
        "produce",
        flops=_sep_flops,
        params=_sep_params,
        slice_weights=_sep_slice,
        shrink_config=_filters,
        latency_op="separable",
        applies=lambda layer: layer.data_format == "channels_last",
        why_not="channels_first SeparableConv2D is not sliced",
    ),
)

# --- passthrough -----------------------------------------------------------------------------------


def _depthwise_flops(layer, in_shape, out_shape):
    kh, kw = layer.kernel_size
    return [Term(_spatial(out_shape) * kh * kw, ("out",))]


def _depthwise_params(layer, in_shape, out_shape):
    kh, kw = layer.kernel_size
    return [Term(kh * kw, ("out",))] + ([Term(1.0, ("out",))] if layer.use_bias else [])


def _depthwise_slice(layer, weights, in_idx, out_idx):
    specs = [[(2, out_idx)], [(0, out_idx)]]
    return _take(weights, specs[: len(weights)])


register(
    keras.layers.DepthwiseConv2D,
    LayerRule(
        "passthrough",
        flops=_depthwise_flops,
        params=_depthwise_params,
        slice_weights=_depthwise_slice,
        latency_op="depthwise",
        applies=lambda layer: layer.depth_multiplier == 1 and layer.data_format == "channels_last",
        why_not="DepthwiseConv2D with depth_multiplier > 1 (or channels_first) is not sliced",
        # A bias or an activation with f(0) != 0 makes a zero channel nonzero. (Subclasses included.)
        zero_preserving=lambda layer: not layer.use_bias and _zero_at_zero(layer.activation),
        constant_preserving=_valid_window,
    ),
)


def _bn_params(layer, in_shape, out_shape):
    return [Term(float(layer.scale) + float(layer.center), ("out",))]


def _bn_slice(layer, weights, in_idx, out_idx):
    return [np.take(w, out_idx, axis=0) if out_idx is not None else w for w in weights]


def _last_axis(layer):
    axis = layer.axis if isinstance(layer.axis, int) else (layer.axis[0] if len(layer.axis) == 1 else None)
    return axis in (-1, 3)


register(
    keras.layers.BatchNormalization,
    LayerRule(
        "passthrough",
        params=_bn_params,
        slice_weights=_bn_slice,
        applies=_last_axis,
        why_not="BatchNormalization over an axis other than the last (channel) axis",
        constant_preserving=_exactly(keras.layers.BatchNormalization, _always),
    ),
)


def _prelu_params(layer, in_shape, out_shape):
    alpha_shape = layer.alpha.shape
    per_channel = float(np.prod(alpha_shape[:-1]))
    return [Term(per_channel, ("out",))] if alpha_shape[-1] != 1 else [Term(per_channel)]


def _prelu_slice(layer, weights, in_idx, out_idx):
    w = weights[0]
    return [np.take(w, out_idx, axis=-1) if (out_idx is not None and w.shape[-1] != 1) else w]


register(
    keras.layers.PReLU,
    LayerRule(
        "passthrough",
        params=_prelu_params,
        slice_weights=_prelu_slice,
        zero_preserving=_exactly(keras.layers.PReLU, _always),
        constant_preserving=_exactly(keras.layers.PReLU, _always),
    ),
)


def _valid_pooling(layer):
    return layer.padding == "valid"


# Plain passthrough layers, each with whether it maps an all-zero channel to an all-zero channel:
# always, never (GaussianNoise adds noise to zeros), or, for element-wise activations, iff f(0) == 0
# (relu, swish, tanh: yes; sigmoid: no); and whether, at inference, it maps a constant channel to a
# constant channel: element-wise functions, the noise and dropout layers (identities at inference), global
# pooling, cropping and upsampling do; zero padding does not, nor a pooling window that may cross the border.
_PLAIN_PASSTHROUGH = {
    ChannelGate: (_always, _always),
    keras.layers.Activation: (_zero_at_zero, _always),
    keras.layers.ReLU: (_zero_at_zero, _always),
    keras.layers.LeakyReLU: (_zero_at_zero, _always),
    keras.layers.ELU: (_zero_at_zero, _always),
    keras.layers.Dropout: (_always, _always),
    keras.layers.SpatialDropout2D: (_always, _always),
    keras.layers.GaussianNoise: (_never, _always),
    keras.layers.GaussianDropout: (_always, _always),
    keras.layers.MaxPooling2D: (_always, _valid_pooling),
    keras.layers.AveragePooling2D: (_always, _valid_pooling),
    keras.layers.GlobalAveragePooling2D: (_always, _always),
    keras.layers.GlobalMaxPooling2D: (_always, _always),
    keras.layers.ZeroPadding2D: (_always, _never),
    keras.layers.Cropping2D: (_always, _always),
    keras.layers.UpSampling2D: (_always, _always),
    keras.layers.Identity: (_always, _always),
}


def _pooling_ok(layer):
    return getattr(layer, "data_format", "channels_last") == "channels_last" and getattr(
        layer, "keepdims", False
    ) in (False, True)


def _activation_ok(layer):
    # Softmax-like activations mix channels; element-wise ones do not.
    fn = getattr(layer, "activation", None)
    name = getattr(fn, "__name__", "")
    return name not in ("softmax", "log_softmax")


for _cls, (_zero, _constant) in _PLAIN_PASSTHROUGH.items():
    register(
        _cls,
        LayerRule(
            "passthrough",
            applies=_activation_ok if _cls is keras.layers.Activation else _pooling_ok,
            why_not="softmax mixes channels" if _cls is keras.layers.Activation else "channels_first layout",
            zero_preserving=_exactly(_cls, _zero),
            constant_preserving=_exactly(_cls, _constant),
        ),
    )

# --- merges ----------------------------------------------------------------------------------------

for _cls in [
    keras.layers.Add,
    keras.layers.Subtract,
    keras.layers.Multiply,
    keras.layers.Average,
    keras.layers.Maximum,
    keras.layers.Minimum,
]:
    # x * 0 = 0: one zero input zeroes a product; sums, differences, averages, max/min need all zero.
    register(_cls, LayerRule("merge", merge_zero=any if _cls is keras.layers.Multiply else all,
                             latency_op="add" if _cls is keras.layers.Add else None))

register(
    keras.layers.Concatenate,
    LayerRule(
        "concat",
        applies=lambda layer: layer.axis in (-1, 3),
        why_not="Concatenate along a non-channel axis",
    ),
)
register(
    keras.layers.Flatten,
    LayerRule(
        "flatten",
        applies=lambda layer: layer.data_format == "channels_last",
        why_not="channels_first Flatten",
        zero_preserving=_exactly(keras.layers.Flatten, _always),
        constant_preserving=_exactly(keras.layers.Flatten, _always),
    ),
)


def is_gate(layer):
    return isinstance(layer, ChannelGate)


# --- reshape (added for keras.applications' squeeze-excite blocks) ------------------------------


def _reshape_keeps_channels(layer):
    """A Reshape is channel-preserving when it only regroups the non-channel dims, i.e. its
    target_shape ends in -1 (so the physically pruned copy adapts to fewer channels) and the other
    target dims hold exactly the input's non-channel positions (so the -1 resolves to the input's
    channel count, whatever it is). E.g. (C,) -> (1, 1, C) in squeeze-excite blocks, written
    (1, 1, -1). `tfprune.auto_gate` rewrites a literal (1, 1, C) to (1, 1, -1): `_reshape_prunable_config`."""
    target = tuple(layer.target_shape)
    if not target or target[-1] != -1 or -1 in target[:-1]:
        return False
    nodes = keras_internals.inbound_nodes(layer)
    if not nodes:
        return False
    for node in nodes:
        if len(node.input_tensors) != 1:
            return False
        in_shape = tuple(node.input_tensors[0].shape)
        if len(in_shape) < 2 or any(d is None for d in in_shape[1:]):
            return False
        if int(np.prod(in_shape[1:-1])) != int(np.prod(target[:-1])):
            return False
    return True


def _reshape_prunable_config(layer, config):
    """(C,) -> (1, 1, C) written as (1, 1, -1): channel-preserving whatever C becomes after pruning."""
    nodes = keras_internals.inbound_nodes(layer)
    if len(nodes) != 1:
        return config
    (node,) = nodes
    in_shape = tuple(node.input_tensors[0].shape) if len(node.input_tensors) == 1 else ()
    target = tuple(layer.target_shape)
    if (
        len(in_shape) >= 2
        and all(d is not None for d in in_shape[1:])
        and target
        and target[-1] == in_shape[-1]
        and -1 not in target
        and int(np.prod(target[:-1])) == int(np.prod(in_shape[1:-1]))
    ):
        return {**config, "target_shape": tuple(target[:-1]) + (-1,)}
    return config


register(
    keras.layers.Reshape,
    LayerRule(
        "passthrough",
        applies=_reshape_keeps_channels,
        why_not="a Reshape keeps the channel axis only with target_shape ending in -1 and the other dims "
        "holding the input's non-channel positions (tfprune.auto_gate rewrites (1, 1, C) to (1, 1, -1))",
        zero_preserving=_exactly(keras.layers.Reshape, _always),
        constant_preserving=_exactly(keras.layers.Reshape, _always),
        prunable_config=_reshape_prunable_config,
    ),
)


# Rules for keras.ops operation nodes and for layers of keras.applications (registered on import).
from tfprune.structure import op_rules  # noqa: E402,F401  (imports this module: registers at its end)
