"""MobileNetV2 (Sandler et al. 2018), torchvision layout, and its CIFAR variant.

Gate placement: the expanded (hidden) channels of each inverted-residual block are one group, so one
`block{i}_expand_gate` instance gates both the expand BN and the depthwise BN outputs (the depthwise
conv maps channels one-to-one). A block without an expand conv (t=1) runs its depthwise conv on its
input channels, i.e. the stem's: it reuses `stem_gate` (absent at tiny widths where block 1 is
residual, tying the stem to the residual stream). Project (linear bottleneck) outputs and the residual
stream are not gated; they stay at full width. The last 1x1 conv has `head_gate`.
"""

import keras

from tfprune.structure.gates import new_gate
from tfprune.models.resnet_imagenet import BN_EPSILON, BN_MOMENTUM, classifier, conv_bn, conv_kernel_initializer

# (expansion t, output channels c, repeats n, first stride s), from the paper's Table 2.
IMAGENET_SETTINGS = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)
# kuangliu/pytorch-cifar: for 32x32 inputs the stem and the 24-channel stage keep stride 1.
CIFAR_SETTINGS = (
    (1, 16, 1, 1),
    (6, 24, 2, 1),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)


def make_divisible(value, divisor=8, min_value=None):
    """Round to the nearest multiple of `divisor`, never going more than 10% below `value`."""
    min_value = divisor if min_value is None else min_value
    new_value = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if new_value < 0.9 * value:
        new_value += divisor
    return new_value


def _bn(x, name):
    return keras.layers.BatchNormalization(epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name=name)(x)


def _conv_bn(x, filters, kernel_size, strides, name):
    return conv_bn(x, filters, kernel_size, strides, f"{name}_conv", f"{name}_bn")


def _relu6(x, name):
    return keras.layers.ReLU(max_value=6.0, name=name)(x)


def inverted_residual(x, expansion, filters, strides, name, input_gate=None):
    """Expand (1x1) -> depthwise (3x3) -> linear project (1x1), with a residual when shapes match.

    `input_gate` gates the input's channels; a t=1 block's depthwise output lives in that group.
    """
    in_channels = x.shape[-1]
    y = x
    if expansion != 1:
        hidden = int(round(in_channels * expansion))
        gate = new_gate(f"{name}_expand_gate")
        y = _conv_bn(y, hidden, 1, 1, f"{name}_expand")
        y = _relu6(gate(y), f"{name}_expand_relu")
    else:
        gate = input_gate
    y = keras.layers.DepthwiseConv2D(
        3,
        strides=strides,
        padding="same",
        use_bias=False,
        depthwise_initializer=conv_kernel_initializer(),
        name=f"{name}_dw_conv",
    )(y)
    y = _bn(y, f"{name}_dw_bn")
    if gate is not None:
        y = gate(y)
    y = _relu6(y, f"{name}_dw_relu")
    y = _conv_bn(y, filters, 1, 1, f"{name}_project")
    if strides == 1 and in_channels == filters:
        y = keras.layers.Add(name=f"{name}_add")([x, y])
    return y


def mobilenet_v2(num_classes=1000, input_shape=(224, 224, 3), width_multiplier=1.0, cifar=False):
    """MobileNetV2; `cifar=True` gives the stride-1 stem/24-channel stage variant for 32x32 inputs."""
    settings = CIFAR_SETTINGS if cifar else IMAGENET_SETTINGS
    stem_channels = make_divisible(32 * width_multiplier)
    # The paper keeps the last conv at >= 1280 channels for width < 1; the CIFAR variant fixes 1280.
    head_channels = 1280 if cifar else make_divisible(1280 * max(1.0, width_multiplier))

    # The stem's channels are prunable unless block 1 adds them to its (ungated) output, which
    # happens at tiny widths where both round up to 8 channels.
    t1, c1, _, s1 = settings[0]
    stem_is_residual = t1 == 1 and s1 == 1 and make_divisible(c1 * width_multiplier) == stem_channels
    stem_gate = None if stem_is_residual else new_gate("stem_gate")

    inputs = keras.Input(shape=input_shape, name="input")
    x = _conv_bn(inputs, stem_channels, 3, 1 if cifar else 2, "stem")
    x = _relu6(x if stem_gate is None else stem_gate(x), "stem_relu")
    index = 0
    for expansion, channels, repeats, first_stride in settings:
        filters = make_divisible(channels * width_multiplier)
        for r in range(repeats):
            index += 1
            x = inverted_residual(
                x,
                expansion,
                filters,
                first_stride if r == 0 else 1,
                f"block{index}",
                input_gate=stem_gate if index == 1 else None,
            )
    x = _conv_bn(x, head_channels, 1, 1, "head")
    x = _relu6(new_gate("head_gate")(x), "head_relu")
    outputs = classifier(x, num_classes)
    return keras.Model(inputs, outputs, name="mobilenetv2_cifar" if cifar else "mobilenetv2")
