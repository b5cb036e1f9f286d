"""Bad input gives one clear error naming the problem and the fix, never a deep TensorFlow traceback."""

import json
import os
import subprocess
import sys

import gin
import keras
import numpy as np
import pytest
import tensorflow as tf

from tfprune.deploy import export
from tfprune.cli.commands import train_main
from tfprune.studies.export_study import UsageError, export_study
from tfprune.studies.export_study import main as export_main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMOKE = os.path.join(ROOT, "configs", "smoke.gin")
FAST = ["run.epochs = 2", "run.warmup_epochs = 1", "run.finetune_epochs = 1", "JointPruner.num_samples = 3",
        "JointPruner.dynamics_steps = 2", "build_datasets.held_out_examples = 64"]


pytestmark = pytest.mark.usefixtures("clean_gin")  # tests/conftest.py


def train(tmp_path, *bindings):
    args = ["--config", SMOKE, "--workdir", str(tmp_path / "run")]
    for binding in FAST + list(bindings):
        args += ["--gin_bindings", binding]
    return train_main(args)


def one_error_line(capsys):
    """The command's stderr, which must be exactly one 'error: ...' line."""
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "error: " in lines[0], lines
    return lines[0]


def test_unknown_gin_parameter_names_it(tmp_path):
    with pytest.raises(SystemExit, match="bad gin configuration.*target_flops"):
        train(tmp_path, "JointPruner.target_flops = 0.5")


def test_missing_config_file(tmp_path):
    with pytest.raises(SystemExit, match="does not exist"):
        train_main(["--config", str(tmp_path / "nope.gin")])


def test_unreachable_flops_target(tmp_path, capsys):
    assert train(tmp_path, "JointPruner.target_flops_ratio = 0.001") == 2
    assert "cannot be reached" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()  # nothing written to the workdir


def test_empty_image_folder(tmp_path, capsys):
    (tmp_path / "images").mkdir()
    code = train(tmp_path, 'build_datasets.source = "folder"', f'build_datasets.data_dir = "{tmp_path / "images"}"')
    assert code == 2
    err = capsys.readouterr().err
    assert "error:" in err and str(tmp_path / "images") in err
    assert not (tmp_path / "run").exists()


def test_impossible_image_size(tmp_path, capsys):
    assert train(tmp_path, "build_datasets.image_size = 0") == 2
    assert "image_size must be a positive int" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
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
    assert not (tmp_path / "run").exists()


def _png(seed):
    pixels = np.random.default_rng(seed).integers(0, 256, size=(8, 8, 3), dtype=np.uint8)
    return tf.io.encode_png(pixels).numpy()


def test_image_folder_with_one_class(tmp_path, capsys):
    os.makedirs(tmp_path / "images" / "cat")
    os.makedirs(tmp_path / "images" / "dog")  # a class folder without images does not count
    for i in range(20):
        (tmp_path / "images" / "cat" / f"{i}.png").write_bytes(_png(i))
    assert train(tmp_path, 'build_datasets.source = "folder"', f'build_datasets.data_dir = "{tmp_path / "images"}"',
                 "build_datasets.batch_size = 4") == 2
    line = one_error_line(capsys)
    assert "images of one class only ('cat')" in line and "at least two classes" in line
    assert not (tmp_path / "run").exists()


def _write_records(path, feature_of):
    with tf.io.TFRecordWriter(str(path)) as writer:
        for i in range(8):
            writer.write(tf.train.Example(features=tf.train.Features(feature=feature_of(i))).SerializeToString())


def test_tfrecord_with_missing_keys(tmp_path, capsys):
    def png_and_wrong_label_key(i):
        return {"image/encoded": tf.train.Feature(bytes_list=tf.train.BytesList(value=[_png(i)])),
                "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[i % 2]))}

    _write_records(tmp_path / "train-00000-of-00001", png_and_wrong_label_key)
    assert train(tmp_path, 'build_datasets.source = "tfrecord"', f'build_datasets.data_dir = "{tmp_path}"',
                 "build_datasets.num_classes = 2", "build_datasets.batch_size = 2",
                 "build_datasets.held_out_examples = 2") == 2
    line = one_error_line(capsys)
    assert str(tmp_path / "train-00000-of-00001") in line and "lacks 'image/class/label'" in line
    assert "['image/encoded', 'label']" in line
    assert not (tmp_path / "run").exists()


def test_keras_backend_other_than_tensorflow_writes_nothing(tmp_path):
    workdir = tmp_path / "run"
    result = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "train.py"), "--config", "smoke.gin",
                             "--workdir", str(workdir)], capture_output=True, text=True, timeout=120,
                            env=dict(os.environ, KERAS_BACKEND="torch"))
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "'torch'" in result.stderr and not workdir.exists()


# ------------------------------------------------------------------------------------------- export


def _gated_and_plain(tmp_path):
    from tfprune.models import build_model

    gated = build_model("resnet8", num_classes=10, input_shape=(16, 16, 3), width_multiplier=0.5)
    inp = keras.Input((16, 16, 3))
    plain = keras.Model(inp, keras.layers.Dense(10)(keras.layers.GlobalAveragePooling2D()(
        keras.layers.Conv2D(4, 3)(inp))))
    plain.save(tmp_path / "plain.keras")
    return gated, plain


EXPORT_FAST = ["--quantize", "float", "--runs", "0", "--no_baseline", "--representative_source", "random"]


def test_export_of_a_keras_file_that_is_not_a_gated_model(tmp_path, capsys):
    gated, plain = _gated_and_plain(tmp_path)
    out = tmp_path / "out"
    assert export_main(["--model_file", str(tmp_path / "plain.keras"), "--output_dir", str(out)] + EXPORT_FAST) == 2
    line = one_error_line(capsys)
    assert "plain.keras" in line and "not a gated tfprune model" in line and "auto_gate" in line
    with pytest.raises(UsageError, match="not a gated tfprune model"):
        export_study(plain, out, quantize=("float",), representative_source="random", runs=0, baseline=False)
    assert not out.exists()


def test_export_of_masks_from_another_model(tmp_path, capsys):
    from tfprune.structure.masks import read_masks, save_masks

    gated, _ = _gated_and_plain(tmp_path)
    masks = {name: m.copy() for name, m in read_masks(gated).items()}
    fewer = dict(list(masks.items())[:2])  # a model with fewer groups wrote it
    save_masks(fewer, tmp_path / "fewer.json")
    first = sorted(masks)[0]
    save_masks({**masks, first: masks[first][:-1]}, tmp_path / "shorter.json")  # another width
    out = tmp_path / "out"
    zoo = ["--model", "resnet8", "--input_shape", "16,16,3", "--width_multiplier", "0.5"]
    assert export_main(zoo + ["--masks", str(tmp_path / "fewer.json"), "--output_dir", str(out)] + EXPORT_FAST) == 2
    line = one_error_line(capsys)
    assert "masks do not fit the model" in line and "fewer.json" in line and "has no mask for the model's gates" in line
    for name in ("fewer.json", "shorter.json"):
        with pytest.raises(UsageError, match="masks do not fit the model"):
            export_study(gated, out, tmp_path / name, quantize=("float",), representative_source="random", runs=0)
    assert not out.exists()
    with open(tmp_path / "shorter.json") as f:
        assert len(json.load(f)[first]) == len(masks[first]) - 1


def test_held_out_without_labels_names_the_fix():
    import tfprune
    from model_fixtures import mixed_model

    images = np.zeros((8, 16, 16, 3), np.float32)
    for bad in (images, tf.data.Dataset.from_tensor_slices(images).batch(4)):
        with pytest.raises(tfprune.TfpruneError, match=r"held_out must be \(images, labels\).*split_held_out"):
            tfprune.JointPruner(mixed_model(), held_out=bad, num_samples=2)


def test_models_that_cannot_be_pruned_are_one_clear_error_and_a_lambda_is_a_named_barrier():
    import warnings

    import keras
    import numpy as np

    from tfprune import auto_gate
    from tfprune.structure.graph import ChannelGraph, GraphError

    class Subclassed(keras.Model):
        def __init__(self):
            super().__init__()
            self.conv, self.head = keras.layers.Conv2D(4, 3), keras.layers.Dense(2)

        def call(self, x):
            return self.head(keras.ops.mean(self.conv(x), axis=(1, 2)))

    subclassed = Subclassed()
    subclassed(np.zeros((1, 8, 8, 3), "float32"))
    with pytest.raises(GraphError, match="subclassed model.*Rebuild it functionally"):
        auto_gate(subclassed)
    inp = keras.Input((8,))
    with pytest.raises(GraphError, match="has no convolution"):
        auto_gate(keras.Model(inp, keras.layers.Dense(2)(keras.layers.Dense(4)(inp))))
    inp = keras.Input((3, 8, 8))
    x = keras.layers.Conv2D(4, 3, data_format="channels_first", name="cf")(inp)
    x = keras.layers.GlobalAveragePooling2D(data_format="channels_first")(x)
    with pytest.raises(GraphError, match="channels_first layout \\(cf\\).*data_format='channels_last'"):
        auto_gate(keras.Model(inp, keras.layers.Dense(2)(x)))
    inp = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, name="before")(inp)
    x = keras.layers.Lambda(lambda t: t[..., ::-1], name="reverse")(x)  # channel behaviour unknown to tfprune
    x = keras.layers.Conv2D(4, 3, name="after")(x)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gated = auto_gate(keras.Model(inp, keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(x))))
    assert any("'reverse' (Lambda)" in str(w.message) and "left unpruned" in str(w.message) for w in caught)
    assert [g.name for g in ChannelGraph(gated, warn=False).gated_groups] == ["after_gate"]
