"""Every shipped config parses, names a real model and data source, and has a reachable FLOPs budget."""

import glob
import os

import gin
import numpy as np
import pytest

from tfprune.cost.budget import project_to_budget
from tfprune.cli.commands import parse_gin
from tfprune.data.pipeline import SOURCES
from tfprune.cost.flops import CostModel
from tfprune.models import MODEL_NAMES, build_model

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = sorted(glob.glob(os.path.join(ROOT, "configs", "*.gin")))
REQUIRED = {"cifar10_resnet56", "cifar10_resnet110", "cifar10_mobilenetv2", "imagenet_resnet50", "imagenet_resnet34",
            "imagenet_mobilenetv2", "smoke"}


def test_the_required_configs_exist():
    assert REQUIRED <= {os.path.splitext(os.path.basename(p))[0] for p in CONFIGS}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: os.path.basename(p))
def test_config_parses_and_its_budget_is_reachable(path):
    gin.clear_config()
    try:
        parse_gin([path], [])
        name = gin.query_parameter("run.model_name")
        source = gin.query_parameter("build_datasets.source")
        target = gin.query_parameter("JointPruner.target_flops_ratio")
    finally:
        gin.clear_config()
    assert name in MODEL_NAMES and source in SOURCES
    cost_model = CostModel(build_model(name))  # the zoo's default input size for the model
    _, achieved = project_to_budget(np.zeros(len(cost_model.group_names)), cost_model, target)
    assert abs(achieved - target) <= 0.02
