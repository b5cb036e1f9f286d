"""Model zoo: gin-configurable CNNs (CIFAR/ImageNet ResNets, MobileNetV2, CIFAR VGGs, the
structure search's positive control `bottleneck_cnn`) whose prunable
channel groups are marked by `ChannelGate`s.

Every model follows the same contract (see `docs/ARCHITECTURE.md`): bias-free convs, each followed by
BatchNormalization, then the group's gate when its channels are prunable, then the activation; one
gate instance per group of coupled channels; a GlobalAveragePooling2D -> Dense logits classifier.
"""

import functools

import gin

from tfprune.models.bottleneck_cnn import bottleneck_cnn
from tfprune.models.mobilenet_v2 import mobilenet_v2
from tfprune.models.resnet_cifar import resnet_cifar
from tfprune.models.resnet_imagenet import resnet_imagenet
from tfprune.models.vgg import vgg_cifar

CIFAR_INPUT_SHAPE = (32, 32, 3)
IMAGENET_INPUT_SHAPE = (224, 224, 3)

# name -> (builder(num_classes, input_shape, width_multiplier), default input shape)
_MODELS = {
    "resnet8": (functools.partial(resnet_cifar, 8), CIFAR_INPUT_SHAPE),
    "resnet20": (functools.partial(resnet_cifar, 20), CIFAR_INPUT_SHAPE),
    "resnet56": (functools.partial(resnet_cifar, 56), CIFAR_INPUT_SHAPE),
    "resnet110": (functools.partial(resnet_cifar, 110), CIFAR_INPUT_SHAPE),
    "resnet18": (functools.partial(resnet_imagenet, 18), IMAGENET_INPUT_SHAPE),
    "resnet34": (functools.partial(resnet_imagenet, 34), IMAGENET_INPUT_SHAPE),
    "resnet50": (functools.partial(resnet_imagenet, 50), IMAGENET_INPUT_SHAPE),
    "resnet101": (functools.partial(resnet_imagenet, 101), IMAGENET_INPUT_SHAPE),
    "mobilenetv2": (functools.partial(mobilenet_v2, cifar=False), IMAGENET_INPUT_SHAPE),
    "mobilenetv2_cifar": (functools.partial(mobilenet_v2, cifar=True), CIFAR_INPUT_SHAPE),
    "vgg11": (functools.partial(vgg_cifar, 11), CIFAR_INPUT_SHAPE),
    "vgg16": (functools.partial(vgg_cifar, 16), CIFAR_INPUT_SHAPE),
    "vgg19": (functools.partial(vgg_cifar, 19), CIFAR_INPUT_SHAPE),
    "bottleneck_cnn": (bottleneck_cnn, (16, 16, 1)),
}
MODEL_NAMES = tuple(_MODELS)


@gin.configurable
def build_model(name, num_classes=10, input_shape=None, width_multiplier=1.0):
    """Builds a zoo model by name.

    Args:
        name: one of `MODEL_NAMES`.
        num_classes: size of the logits layer.
        input_shape: (H, W, C); defaults to 32x32x3 for CIFAR models and 224x224x3 for ImageNet ones.
        width_multiplier: scales every channel count, e.g. 0.25 for tiny smoke-test models.

    Returns:
        A functional `keras.Model` producing logits.
    """
    if name not in _MODELS:
        raise ValueError(f"Unknown model {name!r}; valid names: {', '.join(MODEL_NAMES)}.")
    if width_multiplier <= 0:
        raise ValueError(f"width_multiplier must be positive, got {width_multiplier}.")
    builder, default_shape = _MODELS[name]
    input_shape = tuple(default_shape if input_shape is None else input_shape)
    return builder(num_classes=num_classes, input_shape=input_shape, width_multiplier=width_multiplier)


__all__ = ["MODEL_NAMES", "build_model"]
