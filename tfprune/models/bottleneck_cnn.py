"""A plain CNN whose better structure is known: the positive control for the structure search (issue 36).

Two wide 3x3 convs, ``conv1`` (32 channels) and ``conv2`` (96), carry most of the FLOPs and far more
channels than a 10-class task of small grey images needs. The last conv, ``conv3``, is a narrow 3x3
"bottleneck" (12 channels) whose channels are, after global average pooling, the only features the
classifier sees: a softmax over 10 classes on 3-4 pooled features loses accuracy that no width before
it gives back. Uniform pruning cuts every group by the same ratio, so at a tight FLOPs budget it starves
the bottleneck; the known better allocation keeps the bottleneck whole and cuts the wide layers deeper,
at the same FLOPs.

The bottleneck is deliberately not free: at full width it holds ~27% of the FLOPs, so keeping it costs
the wide layers real channels, and the budget's slack (`tfprune.cost.budget.fill_to_target`, which
fills a cheap group to whole when only its channels still fit) cannot restore it: at 10% of the FLOPs,
growing it from uniform's 4 channels to 12 costs ~5.6% of the FLOPs, five times the 1% band. Only a
search that trades channels between groups finds it. `docs/results.md` (positive control) has the
measured gap and how much of it each method recovers.
"""

import gin
import keras

from tfprune.structure.gates import new_gate
from tfprune.models.resnet_imagenet import classifier, conv_bn, scale_channels

WIDE_CHANNELS = (32, 96)
BOTTLENECK_CHANNELS = 12


@gin.configurable(allowlist=["bottleneck_channels"])
def bottleneck_cnn(num_classes=10, input_shape=(16, 16, 1), width_multiplier=1.0,
                   bottleneck_channels=BOTTLENECK_CHANNELS):
    """The control network: wide 3x3 convs ``conv1``, ``conv2``, then the 3x3 ``conv3`` bottleneck, all
    at the input's resolution, each conv its own gated group; GAP -> Dense logits as in the zoo.

    Args:
        num_classes / input_shape / width_multiplier: as every zoo model (`build_model`).
        bottleneck_channels: ``conv3``'s width before ``width_multiplier``: the features the
            classifier sees.
    """
    inputs = keras.Input(shape=input_shape, name="input")
    x = inputs
    for i, filters in enumerate(WIDE_CHANNELS + (bottleneck_channels,), start=1):
        x = conv_bn(x, scale_channels(filters, width_multiplier), 3, 1, f"conv{i}", f"bn{i}")
        x = new_gate(f"conv{i}_gate")(x)
        x = keras.layers.ReLU(name=f"relu{i}")(x)
    return keras.Model(inputs, classifier(x, num_classes), name="bottleneck_cnn")
