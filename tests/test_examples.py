"""The runnable examples under examples/ (at tiny sizes)."""

import importlib.util
import json
import os

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _load(name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, "examples", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_keras_pipeline_example(tmp_path):
    """auto_gate + JointPruner callback in the user's own fit, compact, fine-tune, FLOPs, TFLite export."""
    from tfprune.cost.flops import CostModel
    from tfprune.structure.masks import load_masks

    result = _load("keras_pipeline").main(tiny=True, out_dir=str(tmp_path / "compact"))
    assert abs(result["flops_pruned"] / result["flops_full"] - 0.5) <= 0.02
    assert np.isfinite(result["val_accuracy"])
    for q in ("float", "dynamic"):
        entry = result["export"]["tflite"][q]
        assert os.path.getsize(entry["path"]) > 0 and entry["verification"]["passed"]

    # pruner.export without a model: compacts the selected sub-network itself and writes its masks.
    pruner = result["pruner"]
    out = tmp_path / "selected"
    report = pruner.export(str(out), quantizations=("float",), latency=False)
    masks = load_masks(str(out / "masks.json"))
    assert set(masks) == set(pruner.group_names)
    assert report["tflite"]["float"]["verification"]["passed"]
    compact = pruner.compact_model(masks)
    assert CostModel(compact).full == pruner.cost(masks)
    with open(out / "export_report.json") as f:
        assert json.load(f)["params"] == report["params"]

