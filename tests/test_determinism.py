"""The same seed and config give the same mask and metrics on CPU."""

import json
import os

import gin

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BINDINGS = ["run.epochs = 3", "run.warmup_epochs = 1", "run.finetune_epochs = 1", "run.deterministic = True",
            'run.export_quantizations = ("float",)', "JointPruner.num_samples = 4", "JointPruner.dynamics_steps = 5",
            "build_datasets.held_out_examples = 128"]


def run_once(workdir):
    from tfprune import trainer
    from tfprune.cli import parse_gin

    gin.clear_config()
    parse_gin([os.path.join(ROOT, "configs", "smoke.gin")], BINDINGS)
    try:
        summary = trainer.run(str(workdir))
    finally:
        gin.clear_config()
    with open(os.path.join(workdir, "masks.json")) as f:
        return summary, json.load(f)


def test_same_seed_same_masks_and_metrics(tmp_path):
    summary_a, masks_a = run_once(tmp_path / "a")
    summary_b, masks_b = run_once(tmp_path / "b")
    assert masks_a == masks_b
    for key in ("flops_pruned", "val_accuracy_full_model", "val_accuracy_pruned", "held_out_accuracy_pruned"):
        assert summary_a[key] == summary_b[key], key
