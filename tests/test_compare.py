"""tools/compare.py and tfprune.studies.compare: runs methods on a minimal config, writes the table and CSV,
resumes finished runs."""

import csv
import json
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


def _fake_rows():
    rows = []
    for method, acc in (("agent", 0.95), ("uniform", 0.93), ("l1", 0.90)):
        for seed in (0, 1):
            rows.append({"method": method, "seed": seed, "flops_ratio": 0.3, "params_pruned": 100,
                         "params_full": 400, "val_acc_full": 0.98, "val_acc_masked": 0.5,
                         "val_acc_pruned": acc + 0.01 * seed, "held_out_acc_pruned": acc - 0.01, "latency_float_ms": 0.1,
                         "final_reward": 0.9, "seconds": 60.0, "environment": "ab12cd34", "kept": "4/8"})
    return rows


def test_markdown_mean_std_and_paired_rows():
    from tfprune.studies import compare

    args = compare.parse_args(["--config", os.path.join(ROOT, "configs", "smoke.gin"),
                               "--methods", "agent,uniform,l1", "--seeds", "0,1"])
    assert args.methods == ["agent", "uniform", "l1"] and args.seeds == [0, 1]
    assert args.workdir == os.path.join("runs", "compare_smoke")
    text = compare.markdown(_fake_rows(), args.methods, args.seeds, args.config)
    assert "Mean ± std over seeds 0, 1" in text
    assert "| agent | 2 | 0.300 ± 0.000 |" in text
    assert "95.50 ± 0.71" in text  # mean and sample std of 95.00 and 96.00
    assert "| agent | +2.00 | +2.00 | +2.00 |" in text
    assert "| l1 | -3.00 | -3.00 | -3.00 |" in text


def test_a_table_mixing_environments_says_so():
    """Runs from two machines or stacks: the markdown names both ids, since a deterministic run repeats
    itself only in one environment (tfprune/infra/environment.py)."""
    from tfprune.studies import compare

    rows = _fake_rows()
    rows[0]["environment"] = "99ff00aa"
    text = compare.markdown(rows, ["agent", "uniform", "l1"], [0, 1], ["a.gin"], command="x")
    assert "**The runs come from 2 environments (99ff00aa, ab12cd34" in text
    rows[0]["environment"] = "-"  # a summary written before environments were recorded: not counted
    assert "environments" not in compare.markdown(rows, ["agent", "uniform", "l1"], [0, 1], ["a.gin"], command="x")


@pytest.mark.slow
def test_bad_method_is_a_usage_error():
    result = subprocess.run([sys.executable, COMPARE, "--config", os.path.join(ROOT, "configs", "smoke.gin"),
                             "--methods", "agent,magic"], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 2 and "magic" in result.stderr


def test_write_tables_from_python(tmp_path):
    """tfprune.studies.compare.write_tables on fake rows: the CSV round-trips, the markdown and the plot exist."""
    from tfprune.studies.compare import COLUMNS, write_tables

    rows = _fake_rows()
    text = write_tables(rows, ["agent", "uniform", "l1"], [0, 1], str(tmp_path / "w"), ["a.gin", "b.gin"],
                        command="python my_script.py")
    assert text == (tmp_path / "w" / "comparison.md").read_text()
    assert text.startswith("# Method comparison: a.gin, b.gin\n\nCommand: `python my_script.py`")
    assert "| l1 | 1 | 0.300 | 100 | 400 | 98.00 | 50.00 | 91.00 | 89.00 | 0.1000 | 90.00 | 60 | ab12cd34 | 4/8 |" in text
    assert "environments" not in text  # one environment: no warning
    with open(tmp_path / "w" / "comparison.csv") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == COLUMNS
        back = list(reader)
    assert [(r["method"], int(r["seed"])) for r in back] == [(r["method"], r["seed"]) for r in rows]
    assert [float(r["val_acc_pruned"]) for r in back] == [r["val_acc_pruned"] for r in rows]
    assert (tmp_path / "w" / "accuracy_vs_flops.png").stat().st_size > 1000


def test_run_comparison_resumes_finished_runs(tmp_path, capsys):
    """Runs whose summary.json exists are not trained again: their rows come from the files, in method
    order whatever the seed loop's order."""
    from tfprune.studies.compare import ComparisonError, mean_std, run_comparison

    for method, acc in (("agent", 0.8), ("uniform", 0.7)):
        for seed in (0, 1):
            run_dir = tmp_path / method / f"seed{seed}"
            run_dir.mkdir(parents=True)
            (run_dir / "summary.json").write_text(json.dumps({
                "flops_ratio": 0.5, "params_pruned": 10.0, "params_full": 40.0, "val_accuracy_full_model": 0.9,
                "val_accuracy_masked_before_finetune": 0.4, "val_accuracy_pruned": acc + seed / 100,
                "tflite_latency_ms": {"float": 0.25}}))
            (run_dir / "seconds.txt").write_text("12.5\n")
            (run_dir / "history.json").write_text(json.dumps([{"reward_max": 0.1}, {"reward_max": 0.6}]))
    rows, failed = run_comparison(["unused.gin"], ["agent", "uniform"], [0, 1], str(tmp_path))
    assert failed == []
    assert [(r["method"], r["seed"]) for r in rows] == [("agent", 0), ("agent", 1), ("uniform", 0), ("uniform", 1)]
    assert rows[1]["val_acc_pruned"] == pytest.approx(0.81) and rows[1]["final_reward"] == 0.6
    assert rows[0]["seconds"] == 12.5 and rows[0]["latency_float_ms"] == 0.25 and rows[0]["params_full"] == 40
    assert capsys.readouterr().out.count("skipped") == 4
    assert mean_std([r["val_acc_pruned"] for r in rows[:2]]) == pytest.approx((0.805, 0.00707107))
    with pytest.raises(ComparisonError, match="magic"):
        run_comparison(["unused.gin"], ["agent", "magic"], [0], str(tmp_path))
    # only the finished runs, nothing started: seed 2 has no run (a subprocess would fail on unused.gin)
    rows, failed = run_comparison(["unused.gin"], ["agent", "uniform"], [0, 1, 2], str(tmp_path), only_finished=True)
    assert failed == [] and [(r["method"], r["seed"]) for r in rows][-1] == ("uniform", 1) and len(rows) == 4
    assert not (tmp_path / "agent" / "seed2").exists()


def test_a_methods_own_bindings_win_over_the_extra_ones(clean_gin):
    """--gin_bindings apply to every run, but cannot turn a method into another: "unpruned" keeps the
    whole network even when the user's binding sets a budget for the pruning methods."""
    import gin

    from tfprune.studies.compare import run_command
    import tfprune.training.trainer  # noqa: F401  (registers JointPruner and run)

    extra = ["JointPruner.target_flops_ratio = 0.3", "JointPruner.alignment_strength = 0.2", "run.seed = 7"]
    cmd = run_command("unpruned", 1, ["a.gin"], "w", extra)
    # `tfprune train` on this interpreter (no source checkout needed), the arguments of tools/train.py
    assert cmd[:8] == [sys.executable, "-m", "tfprune", "train", "--workdir", "w", "--config", "a.gin"]
    bindings = [cmd[i + 1] for i, arg in enumerate(cmd) if arg == "--gin_bindings"]
    gin.parse_config(bindings)
    assert gin.query_parameter("JointPruner.target_flops_ratio") == 1.0
    assert gin.query_parameter("JointPruner.alignment_strength") == 0.0 and gin.query_parameter("run.seed") == 1
    gin.clear_config()
    cmd = run_command("uniform", 0, ["a.gin"], "w", extra)
    gin.parse_config([cmd[i + 1] for i, arg in enumerate(cmd) if arg == "--gin_bindings"])
    assert gin.query_parameter("JointPruner.target_flops_ratio") == 0.3  # the user's budget for a pruning method


def test_a_scratch_method_trains_the_widths_of_its_base_methods_run_of_the_same_seed(clean_gin, tmp_path):
    import gin

    from tfprune.studies.compare import DESCRIPTIONS, METHODS, run_command
    import tfprune.training.trainer  # noqa: F401  (registers JointPruner and run)

    run_dir = tmp_path / "cmp" / "scratch_agent" / "seed3"
    cmd = run_command("scratch_agent", 3, ["a.gin"], str(run_dir))
    gin.parse_config([cmd[i + 1] for i, arg in enumerate(cmd) if arg == "--gin_bindings"])
    assert gin.query_parameter("run.scratch_structure") == str(tmp_path / "cmp" / "agent" / "seed3" / "masks.json")
    assert gin.query_parameter("JointPruner.policy") == "uniform"  # no agent is built for a run that trains none
    assert {"scratch_uniform", "scratch_profile", "scratch_agent"} <= set(METHODS) and "agent's run" in DESCRIPTIONS[
        "scratch_agent"]
    assert not [a for a in run_command("agent", 3, ["a.gin"], str(run_dir)) if "scratch_structure" in a]


def test_paired_interval_and_the_share_of_a_known_gap():
    """Issue 36's positive control: the paired 95% t interval, and each method's share of the gap the
    hand-made "profile" structure opens over uniform (mean gain / the profile's mean gain)."""
    from tfprune.studies import compare

    rows = []
    for method, accs in (("uniform", (0.80, 0.82, 0.81)), ("profile", (0.86, 0.87, 0.87)),
                         ("agent", (0.84, 0.86, 0.84))):
        for seed, acc in enumerate(accs):
            rows.append(dict(_fake_rows()[0], method=method, seed=seed, val_acc_pruned=acc))
    text = compare.markdown(rows, ["uniform", "profile", "agent"], [0, 1, 2], ["a.gin"], command="x")
    # profile - uniform: +6, +5, +6 (mean 5.67, sd 0.577, t(0.975, 2) = 4.303: half-width 1.43)
    assert "| profile | +6.00 | +5.00 | +6.00 | +5.67 | +4.23 .. +7.10 |" in text
    assert "gap over `uniform` (+5.67 pp)" in text
    assert "| agent | +3.67 | 0.65 |" in text  # (4 + 4 + 3) / 3 = 3.67 pp of 5.67


def test_the_median_shows_a_collapsed_run_and_no_gap_is_no_recovery_table():
    """At a tight budget one run may collapse to chance (MobileNetV2 at 10%): the mean difference then says
    little, the median of the paired differences more; a profile behind uniform opens no gap to recover."""
    from tfprune.studies import compare

    rows = []
    for method, accs in (("uniform", (0.72, 0.10, 0.74)), ("profile", (0.70, 0.08, 0.73)),
                         ("agent", (0.70, 0.71, 0.72))):
        for seed, acc in enumerate(accs):
            rows.append(dict(_fake_rows()[0], method=method, seed=seed, val_acc_pruned=acc))
    text = compare.markdown(rows, ["uniform", "profile", "agent"], [0, 1, 2], ["a.gin"], command="x")
    agent = [line for line in text.splitlines() if line.startswith("| agent | -2.00 | +61.00 | -2.00 | +19.00 |")]
    assert len(agent) == 1 and agent[0].endswith("| -2.00 |")  # median -2.00 beside a mean of +19.00
    assert "Share of the profile's gap" not in text  # profile - uniform: -2, -2, -1
    ablation = compare.markdown([r for r in rows if r["method"] != "uniform"], ["agent", "profile"], [0, 1, 2],
                                ["a.gin"], command="x")  # no uniform: against the last method listed
    assert "## Paired difference to `profile`" in ablation and "| agent | +0.00 | +63.00 | -1.00 |" in ablation


def test_the_table_states_its_commit_and_machine():
    """A results table names the code and the machine that made it (the brief: command, commit, machine)."""
    from tfprune.infra.environment import source_commit
    from tfprune.studies import compare

    text = compare.markdown(_fake_rows(), ["agent", "uniform", "l1"], [0, 1], ["a.gin"], command="x")
    commit = source_commit()
    assert f"Commit: {commit or 'not a git checkout'}; machine: " in text and f"{os.cpu_count()} CPUs." in text
    if commit is not None:
        assert len(commit.split("+")[0]) == 12


def test_a_row_names_the_structure_each_run_ended_on(tmp_path):
    """The kept channels per group, in the groups' order: on the positive control they show whether a
    method found the known allocation (7/21/12) or stayed on uniform's (10/28/4)."""
    from tfprune.studies.compare import row_of

    summary = {"flops_ratio": 0.097, "params_pruned": 10, "params_full": 40, "val_accuracy_full_model": 0.8,
               "val_accuracy_masked_before_finetune": 0.7, "val_accuracy_pruned": 0.79,
               "kept_channels": {"conv1_gate": [7, 32], "conv2_gate": [21, 96], "conv3_gate": [12, 12]}}
    row = row_of("agent", 0, summary, 60.0, str(tmp_path))
    assert row["kept"] == "7/21/12" and row["environment"] == "-"
    assert row_of("agent", 0, dict(summary, kept_channels={}), None, str(tmp_path))["kept"] == "-"
