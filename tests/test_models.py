"""Model zoo: layouts match the reference parameter counts and gates follow the placement contract."""

import gin
import keras
import numpy as np
import pytest

from tfprune.structure.keras_internals import inbound_nodes, outbound_nodes
from tfprune.structure.gates import ChannelGate, gates_of
from tfprune.models import MODEL_NAMES, build_model
from tfprune.models.vgg import vgg_cifar


def _params(model):
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


def _calls(layer):
    """Number of tensors a (freshly built) layer was called on."""
    return len(inbound_nodes(layer))


def _images(model, batch=2, seed=0):
    shape = (batch,) + tuple(model.input.shape[1:])
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


# CIFAR ResNets with option-B shortcuts, 10 classes, counted by hand (conv k*k*cin*cout, BN 2*c):
#   stem 3*3*3*16 + 32 = 464; FC 64*10 + 10 = 650
#   stage1 block: 2 * (9*16*16 + 32) = 4,672
#   stage2 first: 9*16*32+64 + 9*32*32+64 + (16*32+64) = 14,528; other blocks 2 * (9*32*32 + 64) = 18,560
#   stage3 first: 9*32*64+128 + 9*64*64+128 + (32*64+128) = 57,728; other blocks 2 * (9*64*64 + 128) = 73,984
#   total(n) = 464 + 650 + 4,672n + 14,528 + 18,560(n-1) + 57,728 + 73,984(n-1)
#   n=3: 272,474 (option A 269,722 + 2,752 for the two projections); n=9: 855,770 (853,018 + 2,752);
#   n=18: 1,730,714 (option A would be 1,727,962); n=1: 78,042.
# vgg11 (Network Slimming's cfg), conv 9*cin*cout + BN 2*cout: 1,856 + 73,984 + 295,424 + 590,336 + 1,180,672
#   + 3 * 2,360,320 + FC 5,130 = 9,228,362; vgg16 14,724,042 (CIFAR VGG-16 without the 512-512 FC); vgg19: 20,035,018 (Network Slimming, Table 1: 20.04M).
# mobilenetv2_cifar: torchvision's 2,223,872 feature params + 1280*10 + 10 = 2,236,682 (kuangliu's count).
PARAM_COUNTS = {
    "resnet8": (10, 78_042),
    "resnet20": (10, 272_474),
    "resnet56": (10, 855_770),
    "resnet110": (10, 1_730_714),
    "mobilenetv2_cifar": (10, 2_236_682),
    "vgg11": (10, 9_228_362),
    "vgg16": (10, 14_724_042),
    "vgg19": (10, 20_035_018),
    # bottleneck_cnn at 16x16x1: conv 9*cin*cout + BN 2*cout: 352 + 27,840 + 10,392 + FC 12*10 + 10 = 38,714.
    "bottleneck_cnn": (10, 38_714),
    # torchvision, 1000 classes.
    "resnet18": (1000, 11_689_512),
    "resnet34": (1000, 21_797_672),
    "resnet50": (1000, 25_557_032),
    "resnet101": (1000, 44_549_160),
    "mobilenetv2": (1000, 3_504_872),
}


def test_model_names_cover_zoo():
    assert set(MODEL_NAMES) == set(PARAM_COUNTS)


@pytest.mark.parametrize("name", sorted(PARAM_COUNTS))
def test_param_counts_match_reference(name):
    num_classes, expected = PARAM_COUNTS[name]
    model = build_model(name, num_classes=num_classes)
    assert _params(model) == expected
    assert model.output.shape == (None, num_classes)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_layer_contract(name):
    """conv (no bias) -> BN(1e-5, 0.9) [-> gate]; gates only after BN; GAP -> Dense logits."""
    model = build_model(name, width_multiplier=0.25, input_shape=(32, 32, 3))
    for layer in model.layers:
        if isinstance(layer, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D)):
            assert not layer.use_bias, layer.name
            (consumer,) = [node.operation for node in outbound_nodes(layer)]
            assert isinstance(consumer, keras.layers.BatchNormalization), layer.name
            assert consumer.epsilon == 1e-5 and consumer.momentum == 0.9
        if isinstance(layer, ChannelGate):
            for node in inbound_nodes(layer):
                (parent,) = node.parent_nodes
                assert isinstance(parent.operation, keras.layers.BatchNormalization), layer.name
    assert isinstance(model.layers[-2], keras.layers.GlobalAveragePooling2D)
    assert isinstance(model.layers[-1], keras.layers.Dense)
    assert model.layers[-1].activation is keras.activations.linear
    assert len({layer.name for layer in model.layers}) == len(model.layers)


def test_resnet56_gate_structure():
    model = build_model("resnet56")
    gates = gates_of(model)
    assert len(gates) == 3 + 27
    for s in (1, 2, 3):
        # stage 1: stem + 9 blocks; stages 2, 3: 9 blocks + the projection shortcut.
        assert _calls(gates[f"stage{s}_gate"]) == 10
        for b in range(1, 10):
            assert _calls(gates[f"stage{s}_block{b}_gate1"]) == 1
    assert {g.channels for name, g in gates.items() if name.startswith("stage3")} == {64}
    assert "stem_gate" not in gates


def test_imagenet_resnet_gate_structure():
    r18 = gates_of(build_model("resnet18", width_multiplier=0.25))
    assert len(r18) == 4 + 8 and "stem_gate" not in r18
    assert _calls(r18["stage1_gate"]) == 1 + 2  # stem + 2 blocks (identity shortcut)
    assert _calls(r18["stage2_gate"]) == 2 + 1  # 2 blocks + projection

    r50 = gates_of(build_model("resnet50", width_multiplier=0.25))
    assert len(r50) == 1 + 4 + 2 * 16
    assert _calls(r50["stem_gate"]) == 1
    assert _calls(r50["stage1_gate"]) == 3 + 1  # 64 -> 256 needs a projection already in stage 1
    assert _calls(r50["stage3_gate"]) == 6 + 1
    assert r50["stage4_gate"].channels == 4 * r50["stage4_block1_gate1"].channels


def test_mobilenetv2_gate_structure():
    gates = gates_of(build_model("mobilenetv2"))
    assert len(gates) == 1 + 16 + 1
    assert _calls(gates["stem_gate"]) == 2  # stem BN and block1's (t=1) depthwise BN
    assert gates["stem_gate"].channels == 32
    for i in range(2, 18):
        assert _calls(gates[f"block{i}_expand_gate"]) == 2  # expand BN and depthwise BN
    assert gates["block2_expand_gate"].channels == 16 * 6
    assert gates["head_gate"].channels == 1280


def test_vgg_gate_structure():
    """No residual adds: every conv is its own group, and pooling sits between gate and next conv."""
    model = build_model("vgg11")
    gates = gates_of(model)
    assert [g.channels for g in gates.values()] == [64, 128, 256, 256, 512, 512, 512, 512]
    assert all(_calls(g) == 1 for g in gates.values())
    assert model.get_layer("pool4").output.shape[1:3] == (2, 2)
    with pytest.raises(ValueError, match="VGG depth must be one of"):
        vgg_cifar(12)


def _without_gates(model):
    """The same layers (shared weights) with every gate replaced by an identity."""

    def clone(layer):
        return keras.layers.Identity(name=f"{layer.name}_off") if isinstance(layer, ChannelGate) else layer

    return keras.models.clone_model(model, clone_function=clone)


@pytest.mark.parametrize("name", ["resnet8", "mobilenetv2_cifar", "vgg11"])
def test_all_ones_masks_change_nothing(name):
    model = build_model(name, width_multiplier=0.25)
    x = _images(model)
    np.testing.assert_array_equal(model(x, training=False), _without_gates(model)(x, training=False))


def test_stage_gate_zeroes_channel_in_every_block_output():
    model = build_model("resnet20", width_multiplier=0.5)
    outputs = [model.get_layer(f"stage2_block{b}_out").output for b in (1, 2, 3)]
    outputs.append(model.get_layer("stage2_block1_shortcut_bn").output)
    probe = keras.Model(model.input, outputs)
    x = _images(model)
    gate = model.get_layer("stage2_gate")
    mask = np.ones(gate.channels)
    mask[3] = 0
    gate.set_mask(mask)
    *blocks, shortcut_bn = (np.asarray(y) for y in probe(x, training=False))
    for y in blocks:
        assert np.all(y[..., 3] == 0)
        assert np.any(y[..., 4:] != 0)
    assert np.any(shortcut_bn[..., 3] != 0)  # zeroed by the gate, not by the BN
    stage3 = np.asarray(keras.Model(model.input, model.get_layer("stage3_block1_out").output)(x))
    assert np.any(stage3 != 0)


def test_expand_gate_zeroes_depthwise_channel():
    model = build_model("mobilenetv2_cifar", width_multiplier=0.25)
    gate = model.get_layer("block3_expand_gate")
    mask = np.ones(gate.channels)
    mask[0] = 0
    gate.set_mask(mask)
    probe = keras.Model(
        model.input, [model.get_layer("block3_expand_relu").output, model.get_layer("block3_dw_relu").output]
    )
    for y in probe(_images(model), training=False):
        y = np.asarray(y)
        assert np.all(y[..., 0] == 0) and np.any(y[..., 1:] != 0)


@pytest.mark.parametrize("name", ["resnet8", "mobilenetv2_cifar"])
def test_save_load_round_trip(name, tmp_path):
    model = build_model(name, width_multiplier=0.5)
    gate = next(iter(gates_of(model).values()))
    gate.set_mask(np.arange(gate.channels) % 2)
    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    x = _images(model)
    np.testing.assert_array_equal(model(x, training=False), loaded(x, training=False))
    np.testing.assert_array_equal(gates_of(loaded)[gate.name].get_mask(), gate.get_mask())
    assert _calls(gates_of(loaded)["stem_gate" if name.startswith("mobilenet") else "stage1_gate"]) == 2


def test_unknown_name_lists_valid_names():
    with pytest.raises(ValueError, match="resnet56.*mobilenetv2_cifar"):
        build_model("vgg12")


def test_width_multiplier_shrinks_channels():
    gates = gates_of(build_model("resnet20", width_multiplier=0.5))
    assert [gates[f"stage{s}_gate"].channels for s in (1, 2, 3)] == [8, 16, 32]
    tiny = build_model("resnet8", width_multiplier=0.01)
    assert {g.channels for g in gates_of(tiny).values()} == {1}

    mb = gates_of(build_model("mobilenetv2", width_multiplier=0.5, input_shape=(32, 32, 3)))
    assert mb["stem_gate"].channels == 16
    assert mb["block2_expand_gate"].channels == 8 * 6  # make_divisible(16 * 0.5) = 8
    assert mb["head_gate"].channels == 1280  # never below 1280 (paper)
    assert gates_of(build_model("mobilenetv2", width_multiplier=1.4, input_shape=(32, 32, 3)))[
        "head_gate"
    ].channels == 1792
    assert _params(build_model("mobilenetv2_cifar", width_multiplier=0.25)) < 0.25 * 2_236_682


def test_input_shape_defaults_and_override():
    assert build_model("resnet8").input.shape == (None, 32, 32, 3)
    assert build_model("resnet18", width_multiplier=0.25).input.shape == (None, 224, 224, 3)
    assert build_model("resnet18", width_multiplier=0.25, input_shape=(64, 64, 3)).input.shape == (
        None,
        64,
        64,
        3,
    )


def test_gin_configurable():
    try:
        gin.parse_config("build_model.name = 'resnet8'\nbuild_model.num_classes = 7")
        model = build_model()
    finally:
        gin.clear_config()
    assert model.name == "resnet8" and model.output.shape == (None, 7)


def test_tiny_mobilenet_stem_joins_residual_stream():
    """At width 0.25 stem and block 1 both have 8 channels: block 1 is residual, the stem not prunable."""
    tiny = build_model("mobilenetv2_cifar", width_multiplier=0.25)
    assert "stem_gate" not in gates_of(tiny)
    assert tiny.get_layer("block1_add") is not None
    half = build_model("mobilenetv2_cifar", width_multiplier=0.5)
    assert "stem_gate" in gates_of(half)
    assert "block1_add" not in {layer.name for layer in half.layers}


@pytest.mark.parametrize(
    "name,width",
    [
        ("resnet20", 0.5),
        ("resnet18", 0.125),
        ("resnet50", 0.125),
        ("mobilenetv2_cifar", 0.25),
        ("mobilenetv2", 0.35),
    ],
)
def test_masked_model_equals_compact_model(name, width):
    """The architecture contract end to end: gates cover whole groups, so masking == removing channels."""
    surgery = pytest.importorskip("tfprune.structure.surgery")
    model = build_model(name, width_multiplier=width, input_shape=(32, 32, 3))
    rng = np.random.default_rng(0)
    masks = {}
    for gate_name, gate in gates_of(model).items():
        masks[gate_name] = (rng.random(gate.channels) < 0.6) | (np.arange(gate.channels) == 0)
        gate.set_mask(masks[gate_name])
    compact = surgery.compact_model(model, masks)
    assert _params(compact) < _params(model)
    x = _images(model)
    np.testing.assert_allclose(model(x, training=False), compact(x, training=False), atol=1e-4)
