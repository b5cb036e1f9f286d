"""CIFAR ResNets (He et al. 2016, section 4.2): depth 6n+2, three stages of 16/32/64 channels.

Downsampling blocks use 1x1 projection shortcuts (option B) rather than zero-padding (option A), so
that every tensor entering a residual add is produced by a conv+BN the stage gate can mask. The stem
is 16 channels wide and stage 1 starts with an identity shortcut, so the stem output is gated by
`stage1_gate`.
"""

import keras

from tfprune.structure.gates import new_gate
from tfprune.models.resnet_imagenet import classifier, conv_bn, resnet_stages, scale_channels

CIFAR_WIDTHS = (16, 32, 64)


def resnet_cifar(depth, num_classes=10, input_shape=(32, 32, 3), width_multiplier=1.0):
    """ResNet-{depth} for 32x32 inputs; depth 8 (one block per stage) is the smoke-test model."""
    if (depth - 2) % 6 or depth < 8:
        raise ValueError(f"CIFAR ResNet depth must be 6n+2 with n >= 1, got {depth}.")
    blocks_per_stage = ((depth - 2) // 6,) * 3
    stage_gates = [new_gate(f"stage{s}_gate") for s in range(1, 4)]

    inputs = keras.Input(shape=input_shape, name="input")
    x = conv_bn(inputs, scale_channels(CIFAR_WIDTHS[0], width_multiplier), 3, 1, "stem_conv", "stem_bn")
    x = stage_gates[0](x)  # Stage 1's identity shortcut ties the stem output to its group.
    x = keras.layers.ReLU(name="stem_relu")(x)
    x = resnet_stages(x, "basic", blocks_per_stage, CIFAR_WIDTHS, 1, width_multiplier, stage_gates)
    outputs = classifier(x, num_classes)
    return keras.Model(inputs, outputs, name=f"resnet{depth}")
