"""CIFAR VGGs as in Network Slimming (Liu et al. 2017): 3x3 conv-BN-ReLU stacks, 2x2 max-pools.

VGG is the classic case where channel structure matters: its late 512-channel layers, at a few pixels
of resolution, carry a fraction of the FLOPs and far more channels than the task needs, while its
early layers are narrow and FLOPs-heavy. Network Slimming and AMC report their largest gains over
uniform width on it. With no residual adds, every conv is a group of its own (`conv{i}_gate`).

The classifier is the zoo's GAP -> Dense (Network Slimming's CIFAR VGG pools the final 2x2 map and
uses one linear layer, which is the same thing).
"""

import keras

from tfprune.structure.gates import new_gate
from tfprune.models.resnet_imagenet import classifier, conv_bn, scale_channels

POOL = "M"
# depth -> layer list: a number is a 3x3 conv's width, "M" a 2x2 max-pool (Network Slimming's cfgs).
VGG_CONFIGS = {
    11: (64, POOL, 128, POOL, 256, 256, POOL, 512, 512, POOL, 512, 512),
    13: (64, 64, POOL, 128, 128, POOL, 256, 256, POOL, 512, 512, POOL, 512, 512),
    16: (64, 64, POOL, 128, 128, POOL, 256, 256, 256, POOL, 512, 512, 512, POOL, 512, 512, 512),
    19: (64, 64, POOL, 128, 128, POOL, 256, 256, 256, 256, POOL, 512, 512, 512, 512, POOL, 512, 512, 512, 512),
}


def vgg_cifar(depth, num_classes=10, input_shape=(32, 32, 3), width_multiplier=1.0):
    """VGG-{11,13,16,19} for 32x32 inputs (four pools: the last stage runs at 2x2)."""
    if depth not in VGG_CONFIGS:
        raise ValueError(f"VGG depth must be one of {sorted(VGG_CONFIGS)}, got {depth}.")
    inputs = keras.Input(shape=input_shape, name="input")
    x, conv, pool = inputs, 0, 0
    for item in VGG_CONFIGS[depth]:
        if item == POOL:
            pool += 1
            x = keras.layers.MaxPooling2D(2, name=f"pool{pool}")(x)
            continue
        conv += 1
        x = conv_bn(x, scale_channels(item, width_multiplier), 3, 1, f"conv{conv}", f"bn{conv}")
        x = new_gate(f"conv{conv}_gate")(x)
        x = keras.layers.ReLU(name=f"relu{conv}")(x)
    return keras.Model(inputs, classifier(x, num_classes), name=f"vgg{depth}")
