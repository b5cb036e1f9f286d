"""The joint train-and-prune job end to end: outputs, budget, resume after a crash or a kill, replicas."""

import json
import os
import signal
import subprocess
import sys
import time

import gin
import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMOKE = os.path.join(ROOT, "configs", "smoke.gin")
# Smaller than smoke.gin so that the in-process tests stay fast.
TINY = [
    "run.epochs = 3",
    "run.warmup_epochs = 1",
    "run.finetune_epochs = 1",
    "build_datasets.held_out_examples = 128",
    "JointPruner.num_samples = 4",
    "JointPruner.dynamics_steps = 5",
]


pytestmark = pytest.mark.usefixtures("clean_gin")  # tests/conftest.py


def configure(*bindings):
    from tfprune.cli.commands import parse_gin

    parse_gin([SMOKE], TINY + list(bindings))


@pytest.mark.slow
def test_run_writes_summary_models_and_lands_on_the_flops_budget(tmp_path):
    from tfprune.training import trainer

    configure()
    summary = trainer.run(str(tmp_path))
    for key in ("model", "flops_full", "flops_pruned", "flops_ratio", "params_full", "params_pruned",
                "val_accuracy_full_model", "val_accuracy_pruned", "kept_channels", "saved_model", "tflite",
                "latency_ms_full", "latency_ms_pruned", "latency_ratio", "environment"):
        assert key in summary
    assert abs(summary["flops_ratio"] - 0.5) <= 0.02
    assert 0.0 <= summary["held_out_accuracy_pruned"] <= 1.0  # the fine-tuned model on the held-out images
    assert summary["params_pruned"] < summary["params_full"]
    assert summary["latency_ms_full"] > 0 and summary["latency_ms_pruned"] > 0  # measured, beside the FLOPs
    assert os.path.exists(os.path.join(summary["saved_model"], "saved_model.pb"))
    assert all(os.path.getsize(path) > 0 for path in summary["tflite"].values())
    assert set(summary["tflite"]) == {"float", "dynamic", "int8"}
    for name, (kept, total) in summary["kept_channels"].items():
        assert 1 <= kept <= total
    with open(tmp_path / "summary.json") as f:
        assert json.load(f)["flops_pruned"] == summary["flops_pruned"]
    # Digits are easy: even this 3-epoch run must learn far above chance (10%).
    assert summary["val_accuracy_full_model"] > 0.5


def crash_at(monkeypatch, crash_epoch):
    """Makes the agent step of `crash_epoch` raise, as a kill there would stop the run."""
    from tfprune.pruning import pruner

    original = pruner.JointPruner.agent_step

    def agent_step(self, epoch):
        if epoch == crash_epoch:
            raise KeyboardInterrupt("simulated kill")
        return original(self, epoch)

    monkeypatch.setattr(pruner.JointPruner, "agent_step", agent_step)
    return lambda: monkeypatch.setattr(pruner.JointPruner, "agent_step", original)


@pytest.mark.slow
def test_crash_mid_training_resumes_from_last_checkpoint(tmp_path, monkeypatch, capsys):
    from tfprune.training import trainer

    configure()
    undo = crash_at(monkeypatch, 2)
    with pytest.raises(KeyboardInterrupt):
        trainer.run(str(tmp_path))
    assert not (tmp_path / "summary.json").exists()
    undo()
    gin.clear_config()
    configure()
    capsys.readouterr()
    summary = trainer.run(str(tmp_path))
    out = capsys.readouterr().out
    assert "Resumed from" in out
    assert "epoch 1/3" not in out and "epoch 2/3" not in out  # finished epochs are not redone
    with open(tmp_path / "ckpt_joint" / "pruner_state-3.json") as f:
        history = json.load(f)["history"]
    assert [h["epoch"] for h in history] == [1, 2]  # the agent's record survived the crash
    assert abs(summary["flops_ratio"] - 0.5) <= 0.02


@pytest.mark.slow
def test_checkpoint_of_another_model_is_a_clear_error(tmp_path, monkeypatch):
    from tfprune.training import trainer

    configure()
    crash_at(monkeypatch, 1)
    with pytest.raises(KeyboardInterrupt):
        trainer.run(str(tmp_path))  # leaves the checkpoint of epoch 1 (warm-up)
    gin.clear_config()
    configure("run.width_multiplier = 1.0")
    with pytest.raises(trainer.TrainingError, match="does not match"):
        trainer.run(str(tmp_path))


@pytest.mark.slow
def test_non_finite_loss_stops_with_step_and_checkpoint_hint(tmp_path):
    from tfprune.training import trainer

    configure("make_optimizer.learning_rate = 1e30", "run.warmup_epochs = 2")
    with pytest.raises(trainer.TrainingError, match=r"Non-finite loss or gradient at step \d+"):
        trainer.run(str(tmp_path))


@pytest.mark.slow
def test_two_replicas_match_one_replica():
    result = subprocess.run([sys.executable, os.path.join(ROOT, "tests", "scripts", "replica_equivalence.py")],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "mirrored replicas 2" in result.stdout
    diff = float(result.stdout.split("MAX_WEIGHT_DIFF")[1].split()[0])
    assert diff < 1e-4


@pytest.mark.slow
def test_killed_training_resumes_when_the_command_is_rerun(tmp_path):
    """SIGKILL the real CLI after the first joint checkpoint, re-run it, get a complete result."""
    workdir = str(tmp_path / "run")
    command = [sys.executable, os.path.join(ROOT, "tools", "train.py"), "--config", SMOKE, "--workdir", workdir]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    marker = os.path.join(workdir, "ckpt_joint", "checkpoint")
    deadline = time.time() + 240
    while not os.path.exists(marker) and time.time() < deadline and process.poll() is None:
        time.sleep(0.2)
    assert os.path.exists(marker), "no checkpoint was written"
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not os.path.exists(os.path.join(workdir, "summary.json"))
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Resumed from" in result.stdout
    with open(os.path.join(workdir, "summary.json")) as f:
        summary = json.load(f)
    assert abs(summary["flops_ratio"] - 0.5) <= 0.02
    assert np.isfinite(summary["val_accuracy_pruned"])


@pytest.mark.slow
def test_kills_at_random_points_still_give_a_complete_valid_result(tmp_path):
    """Up to 3 SIGKILLs at random moments (weight training, agent step, fine-tuning or export), each
    followed by the same command, must end in a complete run whose outputs are consistent."""
    rng = np.random.default_rng(7)
    workdir = str(tmp_path / "run")
    command = [sys.executable, os.path.join(ROOT, "tools", "train.py"), "--config", SMOKE, "--workdir", workdir]
    kills = 0
    for delay in rng.uniform(6, 30, size=3):
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            process.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGKILL)
            process.wait()
            kills += 1
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert kills >= 1
    with open(os.path.join(workdir, "summary.json")) as f:
        summary = json.load(f)
    assert abs(summary["flops_ratio"] - 0.5) <= 0.02
    from tfprune.structure.masks import load_masks

    masks = load_masks(os.path.join(workdir, "masks.json"))
    assert {name: [int(m.sum()), m.size] for name, m in masks.items()} == {
        name: kept for name, kept in summary["kept_channels"].items()}
    assert all(os.path.getsize(path) > 0 for path in summary["tflite"].values())


def _tiny_trainer(batch_size, nan_policy="stop"):
    """A `WeightTrainer` of a one-conv classifier of 8x8x3 images into 3 classes (the loop's unit tests)."""
    import keras

    from tfprune.infra.distribute import make_strategy
    from tfprune.training.weight_trainer import WeightTrainer

    inp = keras.Input((8, 8, 3))
    model = keras.Model(inp, keras.layers.Dense(3)(keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3)(inp))))
    return WeightTrainer(make_strategy("one_device"), model, keras.optimizers.SGD(0.1), batch_size,
                         nan_policy=nan_policy)


def test_nan_policy_skip_drops_only_the_bad_step():
    import tensorflow as tf

    from tfprune.errors import TrainingError

    rng = np.random.default_rng(0)
    images = rng.normal(size=(48, 8, 8, 3)).astype("float32")
    images[20] = np.nan  # poisons the second batch of 16
    labels = rng.integers(0, 3, 48).astype("int32")
    dataset = tf.data.Dataset.from_tensor_slices((images, labels)).batch(16)

    skipping = _tiny_trainer(16, "skip")
    skipping.train_epoch(dataset)
    assert skipping.skipped_steps == 1
    assert all(np.isfinite(w.numpy()).all() for w in skipping.model.weights)
    with pytest.raises(TrainingError, match="step 1"):
        _tiny_trainer(16, "stop").train_epoch(dataset)


def test_steps_run_in_calls_that_end_at_each_mark_and_at_the_end_of_the_data():
    import tensorflow as tf

    from tfprune.training import weight_trainer

    rng = np.random.default_rng(0)
    images, labels = rng.normal(size=(13 * 4, 8, 8, 3)).astype("float32"), rng.integers(0, 3, 13 * 4).astype("int32")
    dataset = tf.data.Dataset.from_tensor_slices((images, labels)).batch(4)  # 13 steps
    trainer = _tiny_trainer(4)
    calls = []
    assert trainer.train_epoch(dataset, 13, after_step=calls.append, step_marks=5)["steps"] == 13
    assert calls == [5, 10, 13]
    calls.clear()
    assert trainer.train_epoch(dataset, 13, start_step=7, after_step=calls.append, step_marks=5)["steps"] == 6
    assert calls == [10, 13]
    calls.clear()
    trainer.train_epoch(dataset, 13, after_step=calls.append)  # no marks: READ_EVERY steps a call
    assert calls == [min(13, weight_trainer.READ_EVERY)]


@pytest.mark.slow
def test_mid_epoch_checkpoint_resumes_inside_the_epoch(tmp_path, monkeypatch, capsys):
    from tfprune.training import trainer
    from tfprune.training import weight_trainer

    configure("run.checkpoint_every_steps = 5")
    original = weight_trainer.WeightTrainer.train_epoch

    def crash_after_step_10(self, *args, after_step=None, **kwargs):
        def checkpoint_then_crash(done):  # the steps run in calls that end at each checkpoint's step
            if done > 10:
                raise KeyboardInterrupt("simulated kill mid-epoch, after the checkpoint at step 10")
            after_step(done)

        return original(self, *args, after_step=checkpoint_then_crash, **kwargs)

    monkeypatch.setattr(weight_trainer.WeightTrainer, "train_epoch", crash_after_step_10)
    with pytest.raises(KeyboardInterrupt):
        trainer.run(str(tmp_path))
    monkeypatch.setattr(weight_trainer.WeightTrainer, "train_epoch", original)
    gin.clear_config()
    configure("run.checkpoint_every_steps = 5")
    capsys.readouterr()
    summary = trainer.run(str(tmp_path))
    out = capsys.readouterr().out
    assert "Resuming epoch 1 at step 10." in out
    assert abs(summary["flops_ratio"] - 0.5) <= 0.02


@pytest.mark.slow
def test_a_run_whose_tflite_fails_verification_still_writes_its_summary_and_exits_3(tmp_path, monkeypatch, capsys):
    from tfprune.cli.commands import train_main
    from tfprune.deploy import export

    monkeypatch.setitem(export.DEFAULT_TOLERANCES, "float", -1.0)  # no float TFLite can pass
    argv = ["--config", SMOKE, "--workdir", str(tmp_path), "--gin_bindings", 'run.export_quantizations = ("float",)']
    for binding in TINY:
        argv += ["--gin_bindings", binding]
    assert train_main(argv) == 3
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert len(summary["export_verification_failures"]) == 1 and "float" in summary["export_verification_failures"][0]
    assert 0.0 <= summary["val_accuracy_pruned"] <= 1.0 and os.path.exists(summary["tflite"]["float"])
    assert "do not ship that file" in capsys.readouterr().err
    gin.clear_config()
    assert train_main(argv) == 3  # re-run: complete, and still says so
    assert "this run is complete" in capsys.readouterr().out
