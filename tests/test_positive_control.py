"""The structure search's positive control (issue 36, `tfprune/models/bottleneck_cnn.py`,
`configs/control_fashion.gin`): at its budget, uniform pruning starves the classifier's bottleneck and the
known allocation keeps it whole at the same FLOPs, and the budget's slack cannot close the difference.
The measured accuracy gap is in docs/results.md; this checks the structure that makes it possible."""

import gin
import numpy as np
import pytest

from tfprune.cost.budget import FlopsBudget
from tfprune.cost.flops import CostModel
from tfprune.models import build_model
from tfprune.search.policy import make_policy
from tfprune.structure.graph import ChannelGraph

TARGET, TOLERANCE = 0.10, 0.01  # control_fashion.gin's budget (compare_fashion.gin's 1% band)
KNOWN = [0.9, 0.9, 0.0]  # control_fashion.gin's FixedPolicy.profile


@pytest.fixture
def budget():
    gin.clear_config()
    model = build_model("bottleneck_cnn")
    graph = ChannelGraph(model)
    yield FlopsBudget(CostModel(model, graph), graph, TARGET, tolerance=TOLERANCE)
    gin.clear_config()


def _kept(budget, profile=None):
    gin.bind_parameter("FixedPolicy.profile", profile)
    ratios = make_policy("uniform", 3, 5, 0.9).select(0)
    return budget.project(ratios)


def test_uniform_starves_the_bottleneck_and_the_known_allocation_keeps_it_at_equal_flops(budget):
    (conv1, conv2, conv3), achieved = _kept(budget)
    assert conv3 <= 4 and conv2 >= 28  # 12 bottleneck channels -> 4 pooled features for 10 classes
    (k1, k2, k3), known_achieved = _kept(budget, KNOWN)
    assert k3 == 12 and k2 < conv2 and k1 <= conv1  # whole bottleneck, paid for by the wide layers
    for ratio in (achieved, known_achieved):
        assert TARGET - TOLERANCE <= ratio <= TARGET


def test_the_bottleneck_costs_more_than_the_band_so_no_slack_fill_restores_it(budget):
    """Were the bottleneck nearly free, `fill_to_target` would give uniform its whole width (the first
    design of this control, a 1x1 conv at 4x4, did exactly that): restoring it must cost several bands."""
    cost = budget.cost_model
    (conv1, conv2, conv3), _ = _kept(budget)
    restored = cost.ratio(np.array([conv1, conv2, 12])) - cost.ratio(np.array([conv1, conv2, conv3]))
    assert restored > 3 * TOLERANCE
