"""tfprune.training.plots writes non-empty PNGs from small, well-formed summaries, histories and comparison rows."""

import json
import math
import os

from tfprune.training import plots

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _is_png(path):
    assert os.path.exists(path), path
    assert os.path.getsize(path) > 1000, path
    with open(path, "rb") as f:
        assert f.read(8) == PNG_MAGIC, path


SUMMARY = {
    "model": "resnet8", "dataset": "digits", "flops_ratio": 0.49,
    "kept_channels": {"stage1_gate": [5, 8], "stage1_block1_gate": [3, 8], "stage2_gate": [10, 16],
                      "stage3_gate": [20, 32]},
}


def _history(agent=True):
    nan = float("nan")
    return [
        {"epoch": e, "reward_mean": 0.3 + 0.05 * e, "reward_max": 0.4 + 0.05 * e, "reward_min": 0.1 + 0.02 * e,
         "dynamics_loss": 0.05 / (e + 1) if agent else nan,
         "dynamics_prediction_mse": 0.02 / (e + 1) if agent else nan, "agent_loss": 0.1,
         "flops_ratio": 0.5, "best_kept": {"stage1_gate": 5}, "mean_action": [0.5, 0.4]}
        for e in range(1, 6)
    ]


def test_write_run_plots_agent(tmp_path):
    # history round-trips through JSON as the trainer writes it (NaN included)
    history = json.loads(json.dumps(_history()))
    paths = plots.write_run_plots(str(tmp_path), SUMMARY, history)
    names = sorted(os.path.basename(p) for p in paths)
    assert names == ["dynamics_error.png", "kept_channels.png", "rewards.png"]
    for p in paths:
        _is_png(p)
        assert os.path.dirname(p) == os.path.join(str(tmp_path), "plots")


def test_write_run_plots_baseline_skips_dynamics(tmp_path):
    paths = plots.write_run_plots(str(tmp_path), SUMMARY, _history(agent=False))
    assert sorted(os.path.basename(p) for p in paths) == ["kept_channels.png", "rewards.png"]
    for p in paths:
        _is_png(p)
    assert plots.write_run_plots(str(tmp_path / "empty"), SUMMARY, []) == [
        os.path.join(str(tmp_path / "empty"), "plots", "kept_channels.png")]


def test_accuracy_vs_flops(tmp_path):
    rows = [{"method": m, "seed": s, "flops_ratio": 0.3 + 0.01 * s, "val_acc_pruned": a + 0.01 * s,
             "val_acc_full": 0.98}
            for m, a in (("agent", 0.95), ("uniform", 0.94), ("random", 0.9)) for s in (0, 1)]
    rows.append({"method": "l1", "seed": 0, "flops_ratio": 0.3, "val_acc_pruned": 0.93, "val_acc_full": math.nan})
    _is_png(plots.plot_accuracy_vs_flops(rows, str(tmp_path / "sub" / "acc.png")))
