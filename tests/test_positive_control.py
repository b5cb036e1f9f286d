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


@pytest.mark.slow
def test_the_control_config_runs_its_known_allocation_and_uniform_through_compare(tmp_path):
    """The test-sized variant: control_fashion.gin on a small written Fashion-MNIST for two epochs, through
    tools/compare.py's "profile" and "uniform" methods: each run ends on its structure (the profile's
    whole bottleneck, uniform's starved one) in the same FLOPs band. Accuracy needs the full config."""
    import csv
    import os
    import subprocess
    import sys

    from test_data import _write_fashion

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    data = _write_fashion(str(tmp_path / "fashion"), n_train=640, n_test=100)
    tiny = [f'build_datasets.data_dir = "{data}"', "build_datasets.train_examples = 512",
            "build_datasets.val_examples = 100", "build_datasets.held_out_examples = 64", "run.epochs = 2",
            "run.warmup_epochs = 1", "run.finetune_epochs = 1"]
    cmd = [sys.executable, os.path.join(root, "tools", "compare.py"), "--config",
           os.path.join(root, "configs", "control_fashion.gin"), "--methods", "uniform,profile", "--seeds", "0",
           "--workdir", str(tmp_path)] + [arg for b in tiny for arg in ("--gin_bindings", b)]
    result = subprocess.run(cmd, capture_output=True, text=True, cwd=root, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    with open(tmp_path / "comparison.csv") as f:
        rows = {row["method"]: row for row in csv.DictReader(f)}
    assert rows["profile"]["kept"].endswith("/12") and int(rows["uniform"]["kept"].split("/")[-1]) <= 4
    for row in rows.values():
        assert TARGET - TOLERANCE <= float(row["flops_ratio"]) <= TARGET
