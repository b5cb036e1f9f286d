"""Safe writes: a failed write (disk full, simulated) keeps the previous file or checkpoint loadable and
names the path and the cause; resuming skips a damaged newest checkpoint for the one before it."""

import errno
import glob
import json
import os

import gin
import keras
import numpy as np
import pytest
import tensorflow as tf

from tfprune.infra import safe_write
from tfprune.infra import workdir as files
from tfprune.cli.commands import train_main
from tfprune.errors import TfpruneError, TrainingError
from tfprune.structure.masks import load_masks, save_masks

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMOKE = os.path.join(ROOT, "configs", "smoke.gin")
FAST = ["run.epochs = 2", "run.warmup_epochs = 1", "run.finetune_epochs = 1", "JointPruner.num_samples = 3",
        "JointPruner.dynamics_steps = 2", "build_datasets.held_out_examples = 64",
        'run.export_quantizations = ("float",)']


def _disk_full(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def _only_file(folder):
    return sorted(os.listdir(folder))


def test_failed_json_write_keeps_the_previous_file_and_names_path_and_cause(tmp_path, monkeypatch):
    run = files.Workdir(str(tmp_path))
    run.write_json(files.SUMMARY, {"version": 1})
    monkeypatch.setattr(os, "fsync", _disk_full)  # the write itself fails, after the data was written
    with pytest.raises(safe_write.WriteError) as err:
        run.write_json(files.SUMMARY, {"version": 2})
    assert str(tmp_path / files.SUMMARY) in str(err.value) and "ENOSPC: No space left on device" in str(err.value)
    assert isinstance(err.value, TfpruneError) and isinstance(err.value, OSError)
    assert run.read_json(files.SUMMARY) == {"version": 1}
    assert _only_file(tmp_path) == [files.SUMMARY]  # no temporary file left behind


def test_failed_mask_and_model_writes_keep_the_previous_files(tmp_path, monkeypatch):
    masks_path = str(tmp_path / "masks.json")
    save_masks({"g": np.array([1, 0, 1], bool)}, masks_path)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    run = files.Workdir(str(tmp_path))
    run.save_model(files.COMPACT_MODEL, model)
    before = [w.copy() for w in keras.saving.load_model(run.read_path(files.COMPACT_MODEL)).get_weights()]

    def save_half_then_fail(self, path, *args, **kwargs):
        with open(path, "wb") as f:
            f.write(b"PK\x03\x04 half a zip")
        _disk_full()

    monkeypatch.setattr(os, "fsync", _disk_full)
    with pytest.raises(safe_write.WriteError, match="masks.json .ENOSPC"):
        save_masks({"g": np.array([0, 0, 1], bool)}, masks_path)
    monkeypatch.setattr(keras.Model, "save", save_half_then_fail)
    with pytest.raises(safe_write.WriteError, match=f"{files.COMPACT_MODEL} .ENOSPC"):
        run.save_model(files.COMPACT_MODEL, model)
    assert load_masks(masks_path)["g"].tolist() == [True, False, True]
    after = keras.saving.load_model(run.read_path(files.COMPACT_MODEL)).get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(before, after))
    assert _only_file(tmp_path) == [files.COMPACT_MODEL, "masks.json"]


def _saved_run(tmp_path, values=(1.0, 2.0)):
    """A workdir with one joint checkpoint (and pruner state) per value of a variable."""
    run = files.Workdir(str(tmp_path))
    variable = tf.Variable(0.0)
    checkpoint = tf.train.Checkpoint(v=variable)
    manager = run.checkpoint_manager(files.JOINT_CHECKPOINTS, checkpoint)
    for value in values:
        variable.assign(value)
        run.write_pruner_state(int(checkpoint.save_counter.numpy()) + 1, {"value": value})
        manager.save()
    variable.assign(0.0)
    return run, variable, checkpoint, manager


def _resume(run, checkpoint):
    states = []
    run.restore(files.JOINT_CHECKPOINTS, checkpoint, lambda n: states.append(run.read_pruner_state(n)))
    return states


def test_failed_checkpoint_save_keeps_the_previous_checkpoint_loadable(tmp_path, monkeypatch, capsys):
    run, variable, checkpoint, manager = _saved_run(tmp_path, values=(1.0,))

    def write_half_then_fail(self, prefix, *args, **kwargs):
        with open(f"{prefix}.index", "wb") as f:  # a partly written newest checkpoint
            f.write(b"half an index")
        _disk_full()

    monkeypatch.setattr(tf.train.Checkpoint, "_write", write_half_then_fail)
    variable.assign(5.0)
    with pytest.raises(safe_write.WriteError) as err:
        manager.save()
    assert f"{os.path.join(str(tmp_path), files.JOINT_CHECKPOINTS, 'ckpt-2')} (ENOSPC" in str(err.value)
    monkeypatch.undo()
    assert _resume(run, checkpoint) == [{"value": 1.0}] and variable.numpy() == 1.0
    out = capsys.readouterr().out
    assert "skipped the damaged checkpoint" in out and "ckpt-2" in out and "Resumed from" in out


@pytest.mark.parametrize("damage", ["checkpoint data", "pruner state missing", "pruner state corrupt"])
def test_resume_falls_back_to_the_previous_checkpoint_and_says_why(tmp_path, capsys, damage):
    run, variable, checkpoint, _ = _saved_run(tmp_path)
    folder = run.read_path(files.JOINT_CHECKPOINTS)
    state = run.read_path(run.pruner_state_name(2))
    if damage == "checkpoint data":
        for path in glob.glob(os.path.join(folder, "ckpt-2.data-*")):
            with open(path, "wb") as f:
                f.write(b"garbage")
    elif damage == "pruner state missing":
        os.remove(state)
    else:
        with open(state, "w") as f:
            f.write('{"value": 2.')
    assert _resume(run, checkpoint) == [{"value": 1.0}] and variable.numpy() == 1.0
    out = capsys.readouterr().out
    assert f"skipped the damaged checkpoint {os.path.join(folder, 'ckpt-2')} (" in out
    assert f"Resumed from {os.path.join(folder, 'ckpt-1')} (the newest usable checkpoint)." in out


def test_resume_with_no_usable_checkpoint_is_an_error_naming_each(tmp_path):
    run, _, checkpoint, _ = _saved_run(tmp_path)
    for number in (1, 2):
        os.remove(run.read_path(run.pruner_state_name(number)))
    with pytest.raises(TrainingError, match="No checkpoint in .* can be restored: .*ckpt-2 .*ckpt-1 .*is corrupt"):
        _resume(run, checkpoint)


@pytest.mark.slow
def test_training_stops_on_a_failed_model_write_and_the_rerun_resumes(tmp_path, monkeypatch, capsys):
    workdir = tmp_path / "run"
    args = ["--config", SMOKE, "--workdir", str(workdir)] + [a for b in FAST for a in ("--gin_bindings", b)]
    monkeypatch.setattr(keras.Model, "save", _disk_full)
    gin.clear_config()
    try:
        assert train_main(args) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and f"{workdir / files.GATED_MODEL} (ENOSPC" in err[0], err
        assert not (workdir / files.SELECTION).exists() and not (workdir / files.LOCK).exists()
        monkeypatch.undo()
        gin.clear_config()
        assert train_main(args) == 0
    finally:
        gin.clear_config()
    assert "Resumed from" in capsys.readouterr().out
    assert json.loads((workdir / files.SUMMARY).read_text())["flops_ratio"] > 0


def test_the_lock_holder_removes_what_a_killed_writer_left(tmp_path):
    leftovers = [".summary.tmp-123.json", os.path.join(files.JOINT_CHECKPOINTS, ".pruner_state-3.tmp-123.json"),
                 os.path.join(files.EXPORT, ".saved_model.tmp-123", "saved_model.pb"),
                 os.path.join(files.JOINT_CHECKPOINTS, "ckpt-3_temp", "part-00000-of-00001.index")]
    kept = [files.SUMMARY, os.path.join(files.JOINT_CHECKPOINTS, "ckpt-2.index"),
            os.path.join(files.EXPORT, "saved_model", "saved_model.pb")]
    for name in leftovers + kept:
        os.makedirs(os.path.dirname(tmp_path / name), exist_ok=True)
        (tmp_path / name).write_text("x")
    with files.Workdir(str(tmp_path)):
        pass
    assert [name for name in leftovers + kept if (tmp_path / name).exists()] == kept
    assert not (tmp_path / files.EXPORT / ".saved_model.tmp-123").exists()
    assert not (tmp_path / files.JOINT_CHECKPOINTS / "ckpt-3_temp").exists()


@pytest.mark.slow
def test_export_command_reports_a_failed_write_as_one_line(tmp_path, monkeypatch, capsys):
    from tfprune.studies.export_study import main as export_main
    from tfprune.models import build_model

    build_model("resnet8", num_classes=10, input_shape=(16, 16, 3), width_multiplier=0.5).save(tmp_path / "g.keras")
    monkeypatch.setattr(os, "fsync", _disk_full)
    code = export_main(["--model_file", str(tmp_path / "g.keras"), "--output_dir", str(tmp_path / "out"),
                        "--quantize", "float", "--runs", "0", "--no_baseline", "--representative_source", "random"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert f"{tmp_path / 'out' / 'model_float.tflite'} (ENOSPC: No space left on device)" in err[0]


def test_after_the_selection_a_damaged_newest_pruner_state_is_skipped(tmp_path, capsys):
    run, _, _, _ = _saved_run(tmp_path)
    with open(run.read_path(run.pruner_state_name(2)), "w") as f:
        f.write("{")
    assert run.newest_pruner_state() == {"value": 1.0}
    assert "warning: skipped a damaged pruner state" in capsys.readouterr().out
    os.remove(run.read_path(run.pruner_state_name(1)))
    with pytest.raises(TrainingError, match="pruner_state-2.json is not valid JSON"):
        run.newest_pruner_state()
    assert files.Workdir(str(tmp_path / "fresh")).newest_pruner_state() is None


def test_a_value_added_to_the_checkpoint_format_later_is_restored_where_saved_and_kept_where_not(tmp_path):
    """A checkpoint written before the format gained a value (the phase timings) still resumes: the value
    keeps its initial state; a checkpoint that has it restores it; the save counter goes on from the
    restored checkpoint's (the numbering the pruner states use); a missing required value still fails."""
    run, variable, _, _ = _saved_run(tmp_path, values=(1.0, 2.0))  # written without `seconds`
    seconds = tf.Variable(0.0, dtype=tf.float64)
    full = tf.train.Checkpoint(v=variable, seconds=seconds)
    run.restore(files.JOINT_CHECKPOINTS, full, required=tf.train.Checkpoint(v=variable))
    assert float(variable.numpy()) == 2.0 and float(seconds.numpy()) == 0.0
    assert int(full.save_counter.numpy()) == 2  # the next save is ckpt-3, not a second ckpt-1

    newer = files.Workdir(str(tmp_path / "newer"))
    variable.assign(3.0), seconds.assign(7.5)
    newer.checkpoint_manager(files.JOINT_CHECKPOINTS, tf.train.Checkpoint(v=variable, seconds=seconds)).save()
    variable.assign(0.0), seconds.assign(0.0)
    newer.restore(files.JOINT_CHECKPOINTS, tf.train.Checkpoint(v=variable, seconds=seconds),
                  required=tf.train.Checkpoint(v=variable))
    assert float(variable.numpy()) == 3.0 and float(seconds.numpy()) == 7.5

    with pytest.raises(TrainingError, match="can be restored"):  # a required value the old checkpoint lacks
        run.restore(files.JOINT_CHECKPOINTS, tf.train.Checkpoint(v=variable, seconds=seconds))
