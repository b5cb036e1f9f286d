"""tools/compare.py: runs methods on a minimal config, writes the table and CSV, resumes finished runs."""

import csv
import importlib.util
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COMPARE = os.path.join(ROOT, "tools", "compare.py")
TINY = [
    "run.epochs = 2", "run.warmup_epochs = 1", "run.finetune_epochs = 1", "run.width_multiplier = 0.25",
    'run.export_quantizations = ("float",)', "build_datasets.held_out_examples = 64",
    "JointPruner.num_samples = 4", "JointPruner.dynamics_steps = 5",
]


def _load_compare():
    spec = importlib.util.spec_from_file_location("compare_tool", COMPARE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(workdir, *extra):
    cmd = [sys.executable, COMPARE, "--config", os.path.join(ROOT, "configs", "smoke.gin"),
           "--methods", "agent,uniform", "--seeds", "0", "--workdir", str(workdir), *extra]
    for binding in TINY:
        cmd += ["--gin_bindings", binding]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=600)


@pytest.mark.slow
def test_compare_two_methods_and_resume(tmp_path):
    result = _run(tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    with open(tmp_path / "comparison.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["method"] for r in rows] == ["agent", "uniform"]
    for r in rows:
        assert 0.3 < float(r["flops_ratio"]) < 0.7  # smoke.gin's 0.5 target, within the tolerance
        assert 0.0 <= float(r["val_acc_pruned"]) <= 1.0
        assert float(r["latency_float_ms"]) > 0
        assert int(r["params_pruned"]) < int(r["params_full"])
        assert os.path.exists(tmp_path / r["method"] / "seed0" / "history.json")
    table = (tmp_path / "comparison.md").read_text()
    assert "| agent | 0 |" in table and "| uniform | 0 |" in table
    assert "Paired difference to `uniform`" in table
    assert (tmp_path / "accuracy_vs_flops.png").stat().st_size > 1000
    assert (tmp_path / "agent" / "seed0" / "plots" / "rewards.png").exists()
    # resume: both runs are complete, so nothing is trained again
    again = _run(tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stdout.count("skipped") == 2
    with open(tmp_path / "comparison.csv") as f:
        assert len(list(csv.DictReader(f))) == 2


def test_markdown_mean_std_and_paired_rows():
    compare = _load_compare()
    args = compare.parse_args(["--config", os.path.join(ROOT, "configs", "smoke.gin"),
                               "--methods", "agent,uniform,l1", "--seeds", "0,1"])
    rows = []
    for method, acc in (("agent", 0.95), ("uniform", 0.93), ("l1", 0.90)):
        for seed in (0, 1):
            rows.append({"method": method, "seed": seed, "flops_ratio": 0.3, "params_pruned": 100,
                         "params_full": 400, "val_acc_full": 0.98, "val_acc_masked": 0.5,
                         "val_acc_pruned": acc + 0.01 * seed, "latency_float_ms": 0.1,
                         "final_reward": 0.9, "seconds": 60.0})
    text = compare.markdown(rows, args.methods, args.seeds, args)
    assert "Mean ± std over seeds 0, 1" in text
    assert "| agent | 2 | 0.300 ± 0.000 |" in text
    assert "95.50 ± 0.71" in text  # mean and sample std of 95.00 and 96.00
    assert "| agent | +2.00 | +2.00 | +2.00 |" in text
    assert "| l1 | -3.00 | -3.00 | -3.00 |" in text


def test_bad_method_is_a_usage_error():
    result = subprocess.run([sys.executable, COMPARE, "--config", os.path.join(ROOT, "configs", "smoke.gin"),
                             "--methods", "agent,magic"], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 2 and "magic" in result.stderr
