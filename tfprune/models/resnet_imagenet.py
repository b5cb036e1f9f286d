"""ImageNet ResNets (torchvision v1.5 layout) and the ResNet blocks the CIFAR variants reuse.

Gate placement (the contract `tfprune.structure.graph` and the cost model rely on):
- each stage's residual channels are one group: a single `stage{s}_gate` instance is called after the
  BN of every block's last conv and after the BN of the projection shortcut, so a zero mask entry is
  zero in every tensor that reaches the stage's residual adds;
- each block's inner convs get their own gate (`stage{s}_block{b}_gate{i}`);
- the stem output joins the first stage's group when that stage starts with an identity shortcut
  (basic-block ResNets), otherwise it has its own `stem_gate`.
"""

import keras

from tfprune.structure.gates import new_gate

BN_EPSILON = 1e-5
BN_MOMENTUM = 0.9  # = PyTorch's momentum 0.1, so torchvision recipes carry over.

STAGE_WIDTHS = (64, 128, 256, 512)
BOTTLENECK_EXPANSION = 4

# depth -> (block type, blocks per stage)
IMAGENET_CONFIGS = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
}


def scale_channels(channels, width_multiplier):
    """Channel count scaled by the width multiplier (rounded, at least 1)."""
    return max(1, int(round(channels * width_multiplier)))


def conv_kernel_initializer():
    """He-normal with fan_out, as torchvision initializes its ResNets and MobileNets."""
    return keras.initializers.VarianceScaling(scale=2.0, mode="fan_out", distribution="untruncated_normal")


def conv_bn(x, filters, kernel_size, strides, name, bn_name):
    """Bias-free Conv2D followed by BatchNormalization (the bias would duplicate BN's beta)."""
    x = keras.layers.Conv2D(
        filters,
        kernel_size,
        strides=strides,
        padding="same",
        use_bias=False,
        kernel_initializer=conv_kernel_initializer(),
        name=name,
    )(x)
    return keras.layers.BatchNormalization(epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name=bn_name)(x)


def shortcut(x, filters, strides, stage_gate, name):
    """Identity when shapes match, else a gated 1x1 projection (option B) into the stage's group."""
    if strides == 1 and x.shape[-1] == filters:
        return x  # Already gated by the stage gate (or the stem) upstream.
    x = conv_bn(x, filters, 1, strides, f"{name}_shortcut_conv", f"{name}_shortcut_bn")
    return stage_gate(x)


def basic_block(x, filters, strides, stage_gate, name):
    """Two 3x3 convs; conv1's channels are a free group, conv2's belong to the stage group."""
    residual = shortcut(x, filters, strides, stage_gate, name)
    y = conv_bn(x, filters, 3, strides, f"{name}_conv1", f"{name}_bn1")
    y = new_gate(f"{name}_gate1")(y)
    y = keras.layers.ReLU(name=f"{name}_relu1")(y)
    y = conv_bn(y, filters, 3, 1, f"{name}_conv2", f"{name}_bn2")
    y = stage_gate(y)
    y = keras.layers.Add(name=f"{name}_add")([y, residual])
    return keras.layers.ReLU(name=f"{name}_out")(y)


def bottleneck_block(x, width, filters, strides, stage_gate, name):
    """1x1 -> 3x3 (strided, v1.5) -> 1x1; conv1/conv2 are free groups, conv3 is the stage group."""
    residual = shortcut(x, filters, strides, stage_gate, name)
    y = conv_bn(x, width, 1, 1, f"{name}_conv1", f"{name}_bn1")
    y = new_gate(f"{name}_gate1")(y)
    y = keras.layers.ReLU(name=f"{name}_relu1")(y)
    y = conv_bn(y, width, 3, strides, f"{name}_conv2", f"{name}_bn2")
    y = new_gate(f"{name}_gate2")(y)
    y = keras.layers.ReLU(name=f"{name}_relu2")(y)
    y = conv_bn(y, filters, 1, 1, f"{name}_conv3", f"{name}_bn3")
    y = stage_gate(y)
    y = keras.layers.Add(name=f"{name}_add")([y, residual])
    return keras.layers.ReLU(name=f"{name}_out")(y)


def resnet_stages(x, block_type, blocks_per_stage, widths, first_stride, width_multiplier, stage_gates):
    """All residual stages; stage s > 1 starts with a stride-2 block. Returns the last feature map."""
    for s, (num_blocks, width) in enumerate(zip(blocks_per_stage, widths), start=1):
        width = scale_channels(width, width_multiplier)
        for b in range(1, num_blocks + 1):
            strides = (first_stride if s == 1 else 2) if b == 1 else 1
            name = f"stage{s}_block{b}"
            if block_type == "basic":
                x = basic_block(x, width, strides, stage_gates[s - 1], name)
            else:
                filters = width * BOTTLENECK_EXPANSION
                x = bottleneck_block(x, width, filters, strides, stage_gates[s - 1], name)
    return x


def classifier(x, num_classes):
    """Global average pooling then a linear layer producing logits."""
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    return keras.layers.Dense(num_classes, name="logits")(x)


def resnet_imagenet(depth, num_classes=1000, input_shape=(224, 224, 3), width_multiplier=1.0):
    """ResNet-{18,34,50,101} for ImageNet: 7x7/2 stem, 3x3/2 max-pool, four stages."""
    if depth not in IMAGENET_CONFIGS:
        raise ValueError(f"ImageNet ResNet depth must be one of {sorted(IMAGENET_CONFIGS)}, got {depth}.")
    block_type, blocks_per_stage = IMAGENET_CONFIGS[depth]
    stage_gates = [new_gate(f"stage{s}_gate") for s in range(1, 5)]
    stem_width = scale_channels(64, width_multiplier)
    stage1_width = scale_channels(STAGE_WIDTHS[0], width_multiplier)
    stage1_filters = stage1_width if block_type == "basic" else stage1_width * BOTTLENECK_EXPANSION
    # Basic-block stage 1 keeps the stem's width with identity shortcuts, so the stem output joins
    # its group; bottleneck stage 1 projects 64 -> 256 and the stem is a group of its own.
    stem_gate = stage_gates[0] if stem_width == stage1_filters else new_gate("stem_gate")

    inputs = keras.Input(shape=input_shape, name="input")
    x = conv_bn(inputs, stem_width, 7, 2, "stem_conv", "stem_bn")
    x = stem_gate(x)
    x = keras.layers.ReLU(name="stem_relu")(x)
    x = keras.layers.MaxPooling2D(3, strides=2, padding="same", name="stem_pool")(x)
    x = resnet_stages(x, block_type, blocks_per_stage, STAGE_WIDTHS, 1, width_multiplier, stage_gates)
    outputs = classifier(x, num_classes)
    return keras.Model(inputs, outputs, name=f"resnet{depth}")
