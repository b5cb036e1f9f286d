"""The cost model on the zoo against published numbers, and physical pruning of zoo models."""

import keras
import numpy as np
import pytest

from tfprune.structure import masks as mask_lib
from tfprune.cost.flops import CostModel
from tfprune.structure.graph import ChannelGraph
from tfprune.models import build_model
from tfprune.structure.surgery import compact_model

from model_fixtures import randomize_bn, random_masks

# Published MACs (the "FLOPs" of the pruning literature) of the unpruned models.
PUBLISHED_MACS = {
    ("resnet56", 10): 125.75e6,  # 125M in He et al. / every CIFAR pruning paper
    ("resnet50", 1000): 4.09e9,  # "4.1 GFLOPs"
    ("mobilenetv2", 1000): 300.8e6,  # "300M MAdds" (Sandler et al.)
    ("vgg19", 10): 7.97e8 / 2,  # Network Slimming, Table 1: 7.97e8 FLOPs, multiplies and adds counted apart
}


@pytest.mark.parametrize("name,classes", sorted(PUBLISHED_MACS))
def test_full_model_macs_match_published(name, classes):
    cost = CostModel(build_model(name, num_classes=classes)).full
    assert cost.flops == pytest.approx(PUBLISHED_MACS[(name, classes)], rel=0.005)


def test_resnet56_group_structure():
    graph = ChannelGraph(build_model("resnet56"))
    assert len(graph.gated_groups) == 30  # 3 stage groups + one inner group per block
    stage1 = next(g for g in graph.gated_groups if g.name == "stage1_gate")
    assert len(stage1.producers) == 10  # stem + 9 blocks' second conv


@pytest.mark.parametrize(
    "name,shape,width",
    [
        ("resnet8", (32, 32, 3), 0.5),  # basic blocks
        ("resnet50", (64, 64, 3), 0.125),  # bottleneck blocks with projection shortcuts
        ("mobilenetv2_cifar", (32, 32, 3), 0.35),  # depthwise convs coupled to their expansion
        ("vgg11", (32, 32, 3), 0.125),  # max-pools between a gate and the next conv
    ],
)
def test_compact_equals_masked_and_cost_model(name, shape, width):
    model = build_model(name, num_classes=7, input_shape=shape, width_multiplier=width)
    randomize_bn(model)
    graph = ChannelGraph(model)
    masks = random_masks(graph, seed=3, keep=0.5)
    mask_lib.apply_masks(model, masks)
    x = np.random.default_rng(0).normal(size=(2, *shape)).astype("float32")
    compact = compact_model(model, graph=graph)
    np.testing.assert_allclose(compact(x, training=False), model(x, training=False), atol=1e-5, rtol=1e-5)
    predicted = CostModel(model, graph).cost(masks)
    assert CostModel(compact).full == predicted
    assert sum(np.prod(w.shape) for w in compact.trainable_weights) == predicted.params
    assert predicted.flops < CostModel(model, graph).full.flops


def test_compact_model_saves_and_reloads(tmp_path):
    model = build_model("resnet8", input_shape=(16, 16, 3), width_multiplier=0.5)
    graph = ChannelGraph(model)
    compact = compact_model(model, random_masks(graph), graph=graph)
    path = str(tmp_path / "compact.keras")
    compact.save(path)
    reloaded = keras.saving.load_model(path)
    x = np.random.default_rng(0).normal(size=(2, 16, 16, 3)).astype("float32")
    np.testing.assert_allclose(reloaded(x), compact(x), atol=1e-6)
