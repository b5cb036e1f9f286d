"""Bad input gives one clear error naming the problem and the fix, never a deep TensorFlow traceback."""

import os

import gin
import keras
import pytest

from tfprune import export
from tfprune.cli import train_main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMOKE = os.path.join(ROOT, "configs", "smoke.gin")
FAST = ["run.epochs = 2", "run.warmup_epochs = 1", "run.finetune_epochs = 1", "JointPruner.num_samples = 3",
        "JointPruner.dynamics_steps = 2", "build_datasets.held_out_examples = 64"]


@pytest.fixture(autouse=True)
def clean_gin():
    gin.clear_config()
    yield
    gin.clear_config()


def train(tmp_path, *bindings):
    args = ["--config", SMOKE, "--workdir", str(tmp_path / "run")]
    for binding in FAST + list(bindings):
        args += ["--gin_bindings", binding]
    return train_main(args)


def test_unknown_gin_parameter_names_it(tmp_path):
    with pytest.raises(SystemExit, match="bad gin configuration.*target_flops"):
        train(tmp_path, "JointPruner.target_flops = 0.5")


def test_missing_config_file(tmp_path):
    with pytest.raises(SystemExit, match="does not exist"):
        train_main(["--config", str(tmp_path / "nope.gin")])


def test_unreachable_flops_target(tmp_path, capsys):
    assert train(tmp_path, "JointPruner.target_flops_ratio = 0.001") == 2
    assert "cannot be reached" in capsys.readouterr().err


def test_empty_image_folder(tmp_path, capsys):
    (tmp_path / "images").mkdir()
    code = train(tmp_path, 'build_datasets.source = "folder"', f'build_datasets.data_dir = "{tmp_path / "images"}"')
    assert code == 2
    err = capsys.readouterr().err
    assert "error:" in err and str(tmp_path / "images") in err


def test_impossible_image_size(tmp_path, capsys):
    assert train(tmp_path, "build_datasets.image_size = 0") == 2
    assert "image_size must be a positive int" in capsys.readouterr().err


def test_corrupt_checkpoint(tmp_path, capsys):
    assert train(tmp_path) == 0
    os.remove(tmp_path / "run" / "summary.json")
    os.remove(tmp_path / "run" / "selection.json")
    ckpt_dir = tmp_path / "run" / "ckpt_joint"
    for name in os.listdir(ckpt_dir):
        if ".data-" in name:
            (ckpt_dir / name).write_bytes(b"garbage")
    gin.clear_config()
    assert train(tmp_path) == 2
    assert "is corrupt" in capsys.readouterr().err


def test_tflite_export_of_an_unsupported_op_names_it():
    inp = keras.Input((8,))
    x = keras.layers.Lambda(lambda t: keras.ops.erf(t))(keras.layers.Dense(4)(inp))
    model = keras.Model(inp, keras.layers.Dense(2)(x))
    with pytest.raises(export.TFLiteConversionError, match="Erf") as info:
        export.convert_tflite(model, "float")
    assert "SELECT_TF_OPS" in str(info.value) or "allow_select_tf_ops" in str(info.value)


def test_unknown_model_name(tmp_path, capsys):
    assert train(tmp_path, 'run.model_name = "resnet57"') == 2
    err = capsys.readouterr().err
    assert "Unknown model 'resnet57'" in err and "resnet56" in err
