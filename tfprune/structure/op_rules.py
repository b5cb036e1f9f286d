"""Channel rules for nodes that are not plain Keras layers, and for the layers keras.applications defines.

Registered into `tfprune.structure.registry` when it is imported (one `LayerRule` per case, as there):

  * ``keras.ops`` / operator nodes of a functional model (``x + 3.0``, ``x * y``, ``ops.relu6(x)``):
    an element-wise op on one tensor, whose other arguments are scalars, passes channels through
    (MobileNetV3's hard-sigmoid ``relu6(x + 3) * (1 / 6)``); an element-wise op between tensors ties their
    channels like `keras.layers.Add` / `Multiply` (a tensor with one channel broadcasts over the others).
    ``keras.ops.pad`` of the spatial axes, and ``keras.ops.mean`` / ``max`` over them, pass channels through
    as well.
    A constant with one value per channel, or any other op, is a barrier (warned about, never an error).
  * ``Conv2D(groups=C)`` with C input and C output channels: a depthwise conv (ConvNeXt), sliced as one.
  * ConvNeXt's ``LayerScale`` (``x * gamma``, gamma per channel: sliced) and InceptionResNetV2's
    ``CustomScaleLayer`` (``x + r * scale``, a scalar: an element-wise merge).

Whether a node maps an all-zero channel to an all-zero channel is measured: the op is called on zeros. An
element-wise op, a spatial mean / max, a depthwise conv reading only whole windows ('valid' or 1x1) and
``LayerScale`` map a constant channel to a constant channel (`LayerRule.constant_preserving`); a pad does not.
"""

import keras
import numpy as np

from tfprune.structure import keras_internals
from tfprune.structure import registry
from tfprune.structure.registry import LayerRule, Term, register

# f(x) element-wise, channel by channel.
_UNARY = (
    "Relu Relu6 Sigmoid HardSigmoid Silu HardSilu Gelu Tanh Abs Absolute Negative Square Sqrt Exp Log "
    "Softplus Softsign Elu Selu Celu LeakyRelu Clip Sign Floor Ceil Round Reciprocal"
).split()
# f(x, y) element-wise with broadcasting, and whether one all-zero input zeroes the output (x * 0 = 0),
# all of them must be zero (0 + 0 = 0), or neither is known (0 / 0).
_BINARY = {
    "Add": all,
    "Subtract": all,
    "Maximum": all,
    "Minimum": all,
    "Multiply": any,
    "Divide": lambda zeros: False,
    "TrueDivide": lambda zeros: False,
    "Power": lambda zeros: False,
}


def _is_scalar(value):
    if value is None or isinstance(value, (bool, int, float, str)):
        return True
    try:
        return int(np.size(np.asarray(value))) == 1
    except Exception:  # noqa: BLE001
        return False


def _nodes(op):
    return keras_internals.inbound_nodes(op)


def _elementwise_on_one(op):
    """Every call of ``op`` takes one tensor, its other arguments are scalars, and the channel count
    (and rank) of the tensor is that of the output."""
    nodes = _nodes(op)
    return bool(nodes) and all(
        len(node.input_tensors) == 1
        and len(node.outputs) == 1
        and all(_is_scalar(c) for c in keras_internals.constant_arguments(node))
        and len(node.input_tensors[0].shape) == len(node.outputs[0].shape)
        and node.input_tensors[0].shape[-1] == node.outputs[0].shape[-1]
        for node in nodes
    )


def _elementwise_between(op):
    """Every call of ``op`` takes two or more tensors (and scalars only besides)."""
    nodes = _nodes(op)
    return bool(nodes) and all(
        len(node.input_tensors) >= 2
        and len(node.outputs) == 1
        and all(_is_scalar(c) for c in keras_internals.constant_arguments(node))
        for node in nodes
    )


def _zero_in_zero_out(op):
    """True if calling the op (with its constants) on all-zero input gives all-zero output."""
    nodes = _nodes(op)
    if not nodes:
        return False
    node = nodes[0]
    values = {id(t): keras.ops.zeros([d or 1 for d in t.shape], dtype=t.dtype) for t in node.input_tensors}
    try:
        out = keras.tree.flatten(keras_internals.call_node(node, values))
        return all(bool(np.all(keras.ops.convert_to_numpy(o) == 0)) for o in out)
    except Exception:  # noqa: BLE001
        return False


_ONE_TENSOR = LayerRule(
    "passthrough",
    applies=_elementwise_on_one,
    why_not="an element-wise op with a constant that is not a scalar (one value per channel), or that "
    "changes the channel count",
    zero_preserving=_zero_in_zero_out,
    constant_preserving=registry._always,
)

for _cls in keras_internals.ops_classes(_UNARY + list(_BINARY)).values():
    register(_cls, _ONE_TENSOR)
for _name, _cls in keras_internals.ops_classes(list(_BINARY)).items():
    register(
        _cls,
        LayerRule(
            "merge",
            applies=_elementwise_between,
            merge_zero=_BINARY[_name],
            latency_op="add" if _name == "Add" else None,
        ),
    )


def _pads_space_only(op):
    """``keras.ops.pad`` that leaves the channel axis alone (its pad width is (0, 0)), with a scalar fill:
    ResNet-vd's -inf padding before a max-pool (KerasHub). Padding is per channel, so channels pass."""
    width = np.asarray(getattr(op, "pad_width", None))
    return width.ndim == 2 and width.shape[0] > 1 and not width[-1].any() and _elementwise_on_one(op)


for _cls in keras_internals.ops_classes(["Pad"]).values():
    register(
        _cls,
        LayerRule(
            "passthrough",
            applies=_pads_space_only,
            why_not="a pad of the channel axis, or with a fill that is not a scalar",
            zero_preserving=_zero_in_zero_out,
        ),
    )


def _reduces_space_only(op):
    """``keras.ops.mean`` / ``max`` over axes that are neither the batch nor the channel axis (a
    squeeze-and-excite written with ``ops.mean(x, axis=(1, 2), keepdims=True)``): channel by channel."""
    nodes = _nodes(op)
    if not nodes or op.axis is None:
        return False
    for node in nodes:
        rank = len(node.input_tensors[0].shape)
        axes = {a % rank for a in np.atleast_1d(op.axis)}
        if len(node.input_tensors) != 1 or axes & {0, rank - 1} or len(node.outputs) != 1 or \
                node.outputs[0].shape[-1] != node.input_tensors[0].shape[-1]:
            return False
    return True


for _cls in keras_internals.ops_classes(["Mean", "Max"]).values():
    register(
        _cls,
        LayerRule(
            "passthrough",
            applies=_reduces_space_only,
            why_not="a reduction over the batch or channel axis, or over every axis",
            zero_preserving=_zero_in_zero_out,
            constant_preserving=registry._always,
        ),
    )


# --- Conv2D(groups=C): a depthwise conv -------------------------------------------------------------


def _is_depthwise_conv(layer):
    kernel = getattr(layer, "kernel", None)
    return (
        kernel is not None
        and layer.data_format == "channels_last"
        and layer.groups > 1
        and kernel.shape[2] == 1  # one input channel per group
        and layer.filters == layer.groups  # one output channel per group
    )


def _grouped_depthwise_flops(layer, in_shape, out_shape):
    kh, kw = layer.kernel_size
    return [Term(registry._spatial(out_shape) * kh * kw, ("out",))]


def _grouped_depthwise_params(layer, in_shape, out_shape):
    kh, kw = layer.kernel_size
    return [Term(kh * kw, ("out",))] + ([Term(1.0, ("out",))] if layer.use_bias else [])


def _grouped_depthwise_slice(layer, weights, in_idx, out_idx):
    specs = [[(3, out_idx)], [(0, out_idx)]]
    return registry._take(weights, specs[: len(weights)])


register(
    keras.layers.Conv2D,
    LayerRule(
        "passthrough",
        flops=_grouped_depthwise_flops,
        params=_grouped_depthwise_params,
        slice_weights=_grouped_depthwise_slice,
        shrink_config=lambda config, n_out: {**config, "filters": int(n_out), "groups": int(n_out)},
        latency_op="depthwise",
        applies=_is_depthwise_conv,
        why_not="a grouped Conv2D other than depthwise (groups == filters == input channels)",
        zero_preserving=lambda layer: not layer.use_bias and registry._zero_at_zero(layer.activation),
        constant_preserving=registry._valid_window,
    ),
)


# --- keras.applications' own layers -------------------------------------------------------------------


def _scale_slice(layer, weights, in_idx, out_idx):
    return [np.take(w, out_idx, axis=-1) if out_idx is not None and w.shape[-1] != 1 else w for w in weights]


_LAYER_SCALE = keras_internals.application_layer_class("convnext", "LayerScale")
if _LAYER_SCALE is not None:
    register(
        _LAYER_SCALE,
        LayerRule(
            "passthrough",
            params=lambda layer, in_shape, out_shape: [Term(1.0, ("out",))],
            slice_weights=_scale_slice,
            shrink_config=lambda config, n_out: {**config, "projection_dim": int(n_out)},
            zero_preserving=registry._exactly(_LAYER_SCALE, registry._always),
            constant_preserving=registry._exactly(_LAYER_SCALE, registry._always),
        ),
    )

_CUSTOM_SCALE = keras_internals.application_layer_class("inception_resnet_v2", "CustomScaleLayer")
if _CUSTOM_SCALE is not None:
    # inputs[0] + inputs[1] * scale, scale a number: an element-wise merge of the two inputs.
    register(_CUSTOM_SCALE, LayerRule("merge", applies=lambda layer: _is_scalar(layer.scale)))
