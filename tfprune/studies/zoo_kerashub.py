"""KerasHub's CNN backbones for the zoo sweep (`tfprune.studies.zoo`, issue 33).

KerasHub (``keras_hub``, the model library Keras recommends for Keras 3) ships its CNNs as `Backbone`
classes whose pretrained forms come from presets, and a preset downloads: the sweep builds each backbone
offline from explicit constructor arguments instead, a small configuration of the family (a few blocks,
16-64 channels), and wraps it the way a user brings one: backbone -> GlobalAveragePooling2D -> Dense(10).
The backbone is a nested functional model, which `auto_gate` inlines.

keras-hub is a test dependency of tfprune, not a runtime one: without it `names()` is empty and the
sweep covers keras.applications alone. A sweep name is ``kerashub:<config>`` (`PREFIX`), so the rows of
both sources share one table; `family(name)` is ``kerashub.<module>`` (``kerashub.resnet``, ...).
"""

PREFIX = "kerashub:"
INPUT_SIZE = 64  # every configuration below builds at 64x64 (the deepest downsamples 32x)
CLASSES = 10

_STACK3 = dict(stackwise_num_filters=[64, 32, 64], stackwise_num_strides=[1, 2, 2])  # keras-hub requires 64 first
# A small EfficientNet (B0's first four stacks, fewer repeats), blocks of type "v1" (keras-hub's
# functional MBConv) or "fused"/"unfused" (EfficientNetV2's, custom layers).
_EFFICIENTNET = dict(
    stackwise_width_coefficients=[1.0] * 4, stackwise_depth_coefficients=[1.0] * 4,
    stackwise_kernel_sizes=[3, 3, 5, 3], stackwise_num_repeats=[1, 2, 2, 1],
    stackwise_input_filters=[32, 16, 24, 40], stackwise_output_filters=[16, 24, 40, 80],
    stackwise_expansion_ratios=[1, 6, 6, 6], stackwise_squeeze_and_excite_ratios=[0.25] * 4,
    stackwise_strides=[1, 2, 2, 2], stackwise_force_input_filters=[0] * 4, stackwise_nores_option=[False] * 4,
    num_features=128,
)
_MOBILENET_V3 = dict(
    stackwise_expansion=[[40, 56], [64, 144], [72, 72]], stackwise_num_blocks=[2, 2, 2],
    stackwise_num_filters=[[16, 16], [24, 24], [24, 24]], stackwise_kernel_size=[[3, 3], [5, 5], [5, 5]],
    stackwise_num_strides=[[2, 1], [2, 1], [1, 1]], stackwise_se_ratio=[[None, None], [0.25, 0.25], [0.3, 0.3]],
    stackwise_activation=[["relu", "relu"], ["hard_swish"] * 2, ["hard_swish"] * 2],
    stackwise_padding=[[1, 1], [2, 2], [2, 2]], output_num_filters=96, depthwise_filters=8, depthwise_stride=2,
    depthwise_residual=False, last_layer_filter=96, squeeze_and_excite=0.5, input_num_filters=16,
)
_HGNETV2 = dict(
    depths=[1, 1, 2], embedding_size=32, hidden_sizes=[32, 64, 128], stem_channels=[3, 16, 32],
    hidden_act="relu", use_learnable_affine_block=False,
    stackwise_stage_filters=[(32, 16, 32, 1, 1, 3), (32, 16, 64, 1, 1, 3), (64, 32, 128, 2, 1, 3)],
    apply_downsample=[False, True, True], use_lightweight_conv_block=[False, False, True], out_features=["stage3"],
)

# config name -> (keras_hub.models class, constructor arguments besides the input shape).
CONFIGS = {
    "ResNetV1": ("ResNetBackbone", dict(input_conv_filters=[16], input_conv_kernel_sizes=[3], block_type="bottleneck_block",
                                        stackwise_num_blocks=[1, 2, 1], **_STACK3)),
    "ResNetV2": ("ResNetBackbone", dict(input_conv_filters=[64], input_conv_kernel_sizes=[3], block_type="basic_block",
                                        use_pre_activation=True, stackwise_num_blocks=[2, 2, 2], **_STACK3)),
    "ResNetVd": ("ResNetBackbone", dict(input_conv_filters=[8, 8, 16], input_conv_kernel_sizes=[3, 3, 3],
                                        block_type="bottleneck_block_vd", stackwise_num_blocks=[1, 2, 1], **_STACK3)),
    "VGG": ("VGGBackbone", dict(stackwise_num_repeats=[1, 2, 2], stackwise_num_filters=[16, 32, 64])),
    "CSPDarkNet": ("CSPNetBackbone", dict(stem_filters=16, stem_kernel_size=3, stem_strides=1, stackwise_depth=[1, 2, 2],
                                          stackwise_strides=[1, 2, 2], stackwise_num_filters=[16, 32, 64],
                                          block_type="dark_block", stage_type="dark")),
    "CSPResNet": ("CSPNetBackbone", dict(stem_filters=16, stem_kernel_size=3, stem_strides=2, stackwise_depth=[1, 2, 1],
                                         stackwise_strides=[1, 2, 2], stackwise_num_filters=[32, 64, 128],
                                         block_type="bottleneck_block", stage_type="cs3", bottle_ratio=[0.5],
                                         block_ratio=[1.0], expand_ratio=[2.0], activation="relu")),
    "DenseNet": ("DenseNetBackbone", dict(stackwise_num_repeats=[2, 3, 2], growth_rate=8)),
    "EfficientNet": ("EfficientNetBackbone", dict(_EFFICIENTNET, stackwise_block_types=["v1"] * 4)),
    "EfficientNetV2": ("EfficientNetBackbone", dict(_EFFICIENTNET, stackwise_block_types=["fused", "fused", "unfused",
                                                                                         "unfused"])),
    "MobileNetV3": ("MobileNetBackbone", _MOBILENET_V3),
    "HGNetV2": ("HGNetV2Backbone", _HGNETV2),
    "Xception": ("XceptionBackbone", dict(stackwise_conv_filters=[[16, 32], [32, 64], [64, 128]],
                                          stackwise_pooling=[True, True, False])),
}


def _models():
    """``keras_hub.models``, or None where keras-hub is not installed."""
    try:
        import keras_hub
    except ImportError:
        return None
    return keras_hub.models


def names():
    """The sweep names (``kerashub:<config>``) of the configurations whose class the installed keras-hub
    has, in `CONFIGS` order; empty without keras-hub."""
    models = _models()
    return [PREFIX + c for c, (cls, _) in CONFIGS.items() if models is not None and hasattr(models, cls)]


def is_kerashub(name):
    return name.startswith(PREFIX)


def family(name):
    """``kerashub.<module>`` of the backbone class (e.g. ``kerashub.cspnet``)."""
    cls, _ = CONFIGS[name[len(PREFIX):]]
    return "kerashub." + getattr(_models(), cls).__module__.split(".")[-2]


def build(name, input_size=None):
    """(model, input size): the configuration ``name`` as a user's model, backbone -> GAP -> Dense(10)."""
    import keras

    cls, kwargs = CONFIGS[name[len(PREFIX):]]
    size = input_size or INPUT_SIZE
    shape_argument = "input_shape" if cls == "EfficientNetBackbone" else "image_shape"
    backbone = getattr(_models(), cls)(**kwargs, **{shape_argument: (size, size, 3)})
    inputs = keras.Input((size, size, 3), name="image")
    features = backbone(inputs)
    if isinstance(features, dict):  # a feature pyramid (HGNetV2): its last, deepest level
        features = features[backbone.out_features[-1]]
    x = keras.layers.GlobalAveragePooling2D(name="pool")(features)
    return keras.Model(inputs, keras.layers.Dense(CLASSES, name="logits")(x), name=name[len(PREFIX):]), size
