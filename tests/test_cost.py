"""tfprune.studies.cost (``tfprune cost``): the pipelines' rows, tables and branches; a tiny study end to end."""

import json
import os
import subprocess
import sys

import pytest

from tfprune.studies import cost

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PHASE_SECONDS = {"setup": 2.0, "train": 100.0, "agent": 10.0, "select": 3.0, "finetune": 20.0, "export": 5.0}


def _summary(acc, finetune_epochs=3, **seconds):
    return {"flops_ratio": 0.15, "val_accuracy_pruned": acc, "schedule": {"finetune_epochs": finetune_epochs},
            "phase_seconds": {**PHASE_SECONDS, **seconds}, "environment": None}


def _rows():
    rows = []
    for seed in (0, 1, 2):
        rows.append(cost.row_of("unpruned", seed, _summary(0.84 + 0.01 * seed, agent=1.0, finetune=40.0)))
        rows.append(cost.row_of("agent", seed, _summary(0.82 + 0.01 * seed)))
        rows.append(cost.row_of("classic_ft1", seed, _summary(0.80 + 0.01 * seed, agent=1.0)))
        base = _summary(0.80, agent=1.0)
        rows.append(cost.row_of("classic_ft4", seed, _summary(0.83 + 0.01 * seed, 12, agent=1.0, finetune=80.0), base))
    return rows


def test_a_branch_pays_its_base_setup_and_the_total_is_the_phases_sum():
    base = _summary(0.8)
    row = cost.row_of("classic_ft2", 0, _summary(0.81, 6, setup=4.0), base)
    assert row["setup_s"] == 4.0 + 2.0
    assert row["total_s"] == pytest.approx(sum(row[f"{p}_s"] for p in cost.PHASES))
    assert row["finetune_epochs"] == 6


def test_markdown_states_both_targets_from_the_rows():
    rows = _rows()
    text = cost.markdown(rows, ["configs/x.gin"], "tfprune cost --config configs/x.gin", "Commit: abc; machine: m.")
    assert text.startswith("# Cost study: configs/x.gin\n\nCommand: `tfprune cost --config configs/x.gin`")
    # agent total 140 s vs unpruned 100 + 1 + 40 + 2 + 3 + 5 = 151 s on every seed
    assert "Joint run (agent) / unpruned training, total wall time: **0.93x**" in text
    # the classic pipeline's best mean accuracy is classic_ft4 (83-85%); the agent is 1 pp behind it
    assert "best is **classic_ft4**; agent - classic_ft4: **-1.00 pp**" in text
    assert "| classic_ft4 | 0 | 0.150 | 83.00 | 12 | 4 | 100 | 1 | 3 | 80 | 5 | 193 |" in text  # setup 2 + 2


def test_csv_round_trip_and_results_pages_regenerate_the_committed_table(tmp_path):
    from tfprune.studies import results_pages

    folder = tmp_path / "results" / "cost_x"
    folder.mkdir(parents=True)
    cost.write_tables(_rows(), str(folder), ["configs/x.gin"], "tfprune cost --config configs/x.gin", "Commit: a; machine: m.")
    assert cost.read_csv(str(folder / cost.CSV)) == _rows()
    assert results_pages.studies(str(tmp_path / "results")) == [str(folder)]
    assert results_pages.pages(str(folder)) == {cost.MARKDOWN: (folder / cost.MARKDOWN).read_text()}
    assert results_pages.plot_names(str(folder)) == [cost.PLOT]
    assert (folder / cost.PLOT).stat().st_size > 1000


def test_a_branch_needs_its_finished_base(tmp_path):
    with pytest.raises(cost.CostStudyError, match="must finish before its branches"):
        cost._branch(str(tmp_path / "l1" / "seed0"), str(tmp_path / "classic_ft2" / "seed0"))


def test_unknown_pipeline_is_refused():
    with pytest.raises(SystemExit):
        cost.parse_args(["--config", "x.gin", "--workdir", "w", "--pipelines", "agent,nope"])
    with pytest.raises(cost.CostStudyError, match="nope"):
        cost.run_cost_study(["x.gin"], ["nope"], [0], "w")


@pytest.mark.slow
def test_a_tiny_cost_study_branches_the_classic_pipeline(tmp_path):
    tiny = ["run.epochs = 2", "run.warmup_epochs = 1", "run.finetune_epochs = 1", "run.width_multiplier = 0.25",
            'run.export_quantizations = ("float",)', "build_datasets.held_out_examples = 64",
            "JointPruner.num_samples = 4", "JointPruner.dynamics_steps = 5"]
    cmd = [sys.executable, "-m", "tfprune", "cost", "--config", os.path.join(ROOT, "configs", "smoke.gin"),
           "--pipelines", "unpruned,classic_ft1,classic_ft2", "--seeds", "0", "--workdir", str(tmp_path)]
    for binding in tiny:
        cmd += ["--gin_bindings", binding]
    result = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    rows = {r["pipeline"]: r for r in cost.read_csv(str(tmp_path / cost.CSV))}
    assert rows["classic_ft2"]["finetune_epochs"] == 2 * rows["classic_ft1"]["finetune_epochs"] == 2
    for phase in ("train", "agent", "select"):  # the branch's pretraining is its base's, counted once
        assert rows["classic_ft2"][f"{phase}_s"] == rows["classic_ft1"][f"{phase}_s"]
    with open(tmp_path / "classic_ft2" / "seed0" / "summary.json") as f:
        assert json.load(f)["flops_ratio"] == rows["classic_ft1"]["flops_ratio"]  # the same pruned network
    assert rows["unpruned"]["flops_ratio"] == 1.0
    assert all(r["total_s"] > 0 for r in rows.values())
    assert "## The targets" not in (tmp_path / cost.MARKDOWN).read_text()  # no agent among the pipelines
