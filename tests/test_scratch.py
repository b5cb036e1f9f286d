"""`run.scratch_structure`: a finished run's widths trained from a fresh initialisation
(`tfprune.training.scratch`)."""

import json
import math
import os

import gin
import pytest

from tfprune.structure.masks import MaskError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMOKE = os.path.join(ROOT, "configs", "smoke.gin")
TINY = ["run.epochs = 2", "run.warmup_epochs = 1", "run.finetune_epochs = 1", "build_datasets.held_out_examples = 128",
        "JointPruner.num_samples = 4", "JointPruner.dynamics_steps = 5", 'JointPruner.policy = "uniform"',
        'run.export_quantizations = ("float",)']

pytestmark = pytest.mark.usefixtures("clean_gin")  # tests/conftest.py


def _run(workdir, *bindings):
    from tfprune.cli.commands import parse_gin
    from tfprune.training import trainer

    gin.clear_config()
    parse_gin([SMOKE], TINY + list(bindings))
    try:
        return trainer.run(str(workdir))
    finally:
        gin.clear_config()


@pytest.mark.slow
def test_a_structure_trained_from_scratch_has_the_runs_widths_and_a_fresh_start(tmp_path, capsys):
    pruned = _run(tmp_path / "pruned")
    structure = tmp_path / "pruned" / "masks.json"
    capsys.readouterr()
    scratch = _run(tmp_path / "scratch", f'run.scratch_structure = "{structure}"')
    assert scratch["kept_channels"] == pruned["kept_channels"]
    assert scratch["flops_ratio"] == pytest.approx(pruned["flops_ratio"])
    assert scratch["schedule"]["from_scratch"] and set(scratch["phase_seconds"]) == {"setup", "train", "export"}
    assert math.isnan(scratch["val_accuracy_full_model"])  # no full model was trained
    assert 0.0 < scratch["val_accuracy_pruned"] <= 1.0
    log = capsys.readouterr().out
    assert "scratch 3/3" in log and "epoch 1/" not in log  # epochs + finetune_epochs, no joint phase
    with open(tmp_path / "scratch" / "selection.json") as f:
        assert json.load(f)["scratch_structure"] == str(structure)
    again = _run(tmp_path / "scratch", f'run.scratch_structure = "{structure}"')  # complete: read, not re-run
    assert again["val_accuracy_pruned"] == scratch["val_accuracy_pruned"] and "scratch 1/" not in capsys.readouterr().out


def test_a_missing_or_foreign_structure_is_one_clear_error_before_anything_is_written(tmp_path):
    with pytest.raises(MaskError, match="does not exist: give the masks.json of a finished run"):
        _run(tmp_path / "a", f'run.scratch_structure = "{tmp_path / "nothing.json"}"')
    foreign = tmp_path / "foreign.json"
    foreign.write_text(json.dumps({"no_such_gate": [1, 0, 1]}))
    with pytest.raises(MaskError, match="no_such_gate"):
        _run(tmp_path / "b", f'run.scratch_structure = "{foreign}"')
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
