"""SavedModel / TFLite export, verification, latency, and the tools/export.py CLI (tiny models)."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
from keras import layers

from tfprune.deploy import export as ex
from tfprune.deploy import interpreter as runtime
from tfprune.deploy import timing

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NUM_CLASSES = 3
SHAPE = (16, 16, 3)


def _conv_model(depthwise=False, seed=0):
    keras.utils.set_random_seed(seed)
    inp = keras.Input(SHAPE)
    x = layers.Conv2D(8, 3, padding="same", use_bias=False)(inp)
    x = layers.BatchNormalization()(x)
    x = layers.ReLU()(x)
    if depthwise:
        x = layers.DepthwiseConv2D(3, strides=2, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        x = layers.ReLU()(x)
        x = layers.Conv2D(12, 1, use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        x = layers.ReLU()(x)
    else:
        x = layers.Conv2D(12, 3, strides=2, padding="same")(x)
        x = layers.ReLU()(x)
    x = layers.GlobalAveragePooling2D()(x)
    out = layers.Dense(NUM_CLASSES)(x)
    return keras.Model(inp, out)


def _easy_data(n, seed):
    """Class c = noise plus a bright square in channel c, at a random place: learnable in a few steps."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0.0, 0.3, (n,) + SHAPE).astype("float32")
    y = rng.integers(0, NUM_CLASSES, n)
    for i in range(n):
        r, c = rng.integers(0, 10, 2)
        x[i, r : r + 6, c : c + 6, y[i]] += 2.0
    return x, y


@pytest.fixture(scope="module")
def trained():
    """A DepthwiseConv2D model trained a few epochs on easy data (confident logits for int8 checks)."""
    model = _conv_model(depthwise=True, seed=1)
    x, y = _easy_data(384, seed=1)
    model.compile(
        optimizer=keras.optimizers.Adam(0.01),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    model.fit(x, y, batch_size=32, epochs=4, verbose=0)
    x_val, y_val = _easy_data(96, seed=2)
    acc = float(np.mean(np.argmax(model.predict(x_val, verbose=0), -1) == y_val))
    assert acc > 0.8, f"test model failed to learn the easy task (acc {acc})"
    return model, x, x_val


def test_saved_model_reload_equal(tmp_path):
    model = _conv_model()
    x = np.random.default_rng(0).standard_normal((4,) + SHAPE).astype("float32")
    path = ex.export_saved_model(model, tmp_path / "sm")
    assert os.path.isdir(path)
    fn = ex.load_saved_model_fn(path)
    np.testing.assert_allclose(fn(x), keras.ops.convert_to_numpy(model(x)), atol=1e-5)
    assert ex.model_size_bytes(path) > 0


@pytest.mark.parametrize("depthwise", [False, True])
def test_tflite_float_parity(depthwise):
    model = _conv_model(depthwise=depthwise)
    x = np.random.default_rng(0).standard_normal((8,) + SHAPE).astype("float32")
    tfl = ex.convert_tflite(model, "float")
    assert isinstance(tfl, bytes) and ex.model_size_bytes(tfl) == len(tfl)
    np.testing.assert_allclose(runtime.run_tflite(tfl, x), keras.ops.convert_to_numpy(model(x)), atol=1e-5)
    report = ex.verify_tflite(tfl, model, x, "float")
    assert report["passed"] and report["max_abs_diff"] <= 1e-5


def test_tflite_dynamic_close(trained):
    model, _, x_val = trained
    tfl = ex.convert_tflite(model, "dynamic")
    report = ex.verify_tflite(tfl, model, x_val, "dynamic")
    assert report["passed"]
    assert report["max_abs_diff"] <= 0.1 * report["output_scale"]
    assert report["top1_agreement"] >= 0.9


@pytest.mark.parametrize("int8_io", [True, False])
def test_tflite_int8_top1_agreement(trained, tmp_path, int8_io):
    model, x_train, x_val = trained
    sm = ex.export_saved_model(model, tmp_path / "sm")
    calib = [x_train[i : i + 32] for i in range(0, 128, 32)]
    tfl = ex.convert_tflite(sm, "int8", representative_data=calib, int8_io=int8_io)
    interp = runtime.make_interpreter(tfl)
    in_dtype = interp.get_input_details()[0]["dtype"]
    out_dtype = interp.get_output_details()[0]["dtype"]
    expected = np.int8 if int8_io else np.float32
    assert in_dtype == expected and out_dtype == expected
    report = ex.verify_tflite(tfl, model, x_val, "int8")
    assert report["passed"] and report["top1_agreement"] >= 0.9


def test_int8_without_representative_data_raises():
    model = _conv_model()
    with pytest.raises(ValueError, match="representative_data"):
        ex.convert_tflite(model, "int8")
    with pytest.raises(ValueError, match="representative_data"):
        ex.convert_tflite(model, "int8", representative_data=[])


def test_unknown_quantization_raises():
    with pytest.raises(ValueError, match="quantization"):
        ex.convert_tflite(_conv_model(), "fp16")


def test_verification_failure_raises():
    model = _conv_model(seed=0)
    other = _conv_model(seed=5)  # same architecture, different weights
    x = np.random.default_rng(0).standard_normal((8,) + SHAPE).astype("float32")
    tfl = ex.convert_tflite(model, "float")
    with pytest.raises(ex.ExportVerificationError, match="max") as info:
        ex.verify_tflite(tfl, other, x, "float")
    assert info.value.report["passed"] is False
    assert info.value.report["max_abs_diff"] > info.value.report["max_allowed_diff"]


def test_int8_verification_failure_raises(trained):
    model, x_train, x_val = trained
    tfl = ex.convert_tflite(model, "int8", representative_data=x_train[:64])
    with pytest.raises(ex.ExportVerificationError, match="top-1 agreement"):
        ex.verify_tflite(tfl, model, x_val, "int8", min_top1_agreement=1.01)


def test_unsupported_op_error_names_op_and_fix():
    inp = keras.Input((10,))
    x = layers.Dense(10)(inp)
    out = layers.Lambda(lambda t: keras.ops.cumprod(t, axis=-1))(x)  # tf.Cumprod: no TFLite builtin
    model = keras.Model(inp, out)
    with pytest.raises(ex.TFLiteConversionError) as info:
        ex.convert_tflite(model, "float")
    message = str(info.value)
    assert "Cumprod" in message and "SELECT_TF_OPS" in message and "supported_ops" in message
    assert "Cumprod" in info.value.ops


def test_time_interleaved_takes_the_median_of_interleaved_rounds():
    """The timing routine on a fake stopwatch: one invoke of each model per round, the median of each
    model's invokes in ms (a slow round, as a busy machine makes one, moves no median)."""
    now, order = [0.0], []

    class Model:
        def __init__(self, name, seconds):
            self.name, self.seconds = name, list(seconds)

        def invoke(self):
            order.append(self.name)
            now[0] += self.seconds.pop(0)

    models = {"a": Model("a", [0.002, 0.002, 0.5]), "b": Model("b", [0.001, 0.9, 0.001])}
    ms = timing.time_interleaved(models, 3, clock=lambda: now[0])
    assert order == ["a", "b"] * 3
    assert ms == {"a": pytest.approx(2.0), "b": pytest.approx(1.0)}


def test_tflite_latency_ms_times_the_warmed_model(monkeypatch):
    """tflite_latency_ms hands a warmed interpreter of the model to the timing routine (recorded here:
    the number is the machine's, so it is not asserted on)."""
    seen = {}

    def record(interpreters, runs, clock=None):
        (interpreter,) = interpreters.values()
        seen.update(runs=runs, output=interpreter.get_output_details()[0]["shape"].tolist())
        return {key: 1.5 for key in interpreters}

    monkeypatch.setattr(timing, "time_interleaved", record)
    tfl = ex.convert_tflite(_conv_model(), "float")
    assert timing.tflite_latency_ms(tfl, num_threads=1, runs=5, warmup=1) == 1.5
    assert seen == {"runs": 5, "output": [1, 3]}


def test_litert_is_the_runtime_and_warns_nothing():
    """The declared runtime: LiteRT, with no warning at all (tf.lite's deprecation notice included)."""
    pytest.importorskip("ai_edge_litert")
    import warnings

    tfl = ex.convert_tflite(_conv_model(), "float")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        interpreter = runtime.make_interpreter(tfl)
        timing.tflite_latency_ms(tfl, runs=2, warmup=1)
    assert type(interpreter).__module__.startswith("ai_edge_litert")
    assert runtime.interpreter_runtime()[1].startswith("litert")
    assert [str(w.message) for w in caught] == []


def test_missing_litert_falls_back_to_tf_lite_with_one_warning(monkeypatch):
    """Without ai-edge-litert, tf.lite.Interpreter runs the models: one warning naming the install line
    (not one per model, and not tf.lite's own deprecation notice); parity checks still hold."""
    import warnings

    import tensorflow as tf

    monkeypatch.setitem(sys.modules, "ai_edge_litert", None)  # `import ai_edge_litert` raises ImportError
    monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)
    monkeypatch.setattr(runtime, "_runtime", {})
    model = _conv_model()
    x = np.random.default_rng(0).standard_normal((8,) + SHAPE).astype("float32")
    tfl = ex.convert_tflite(model, "float")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        interpreter = runtime.make_interpreter(tfl)
        report = ex.verify_tflite(tfl, model, x, "float")
        timing.tflite_latency_ms(tfl, runs=2, warmup=1)
    assert isinstance(interpreter, tf.lite.Interpreter)
    assert report["passed"] and report["max_abs_diff"] <= 1e-5
    assert [w.category for w in caught] == [runtime.LiteRTMissingWarning], [str(w.message) for w in caught]
    assert runtime.LITERT_INSTALL in str(caught[0].message)
    assert runtime.interpreter_runtime()[1].startswith("tf.lite")


def test_export_all(trained, tmp_path):
    model, x_train, x_val = trained
    out = tmp_path / "out"
    report = ex.export_all(
        model, out, representative_data=[x_train[:64]], sample_inputs=x_val, latency_runs=5
    )
    for name in ("model_float.tflite", "model_dynamic.tflite", "model_int8.tflite", "export_report.json"):
        assert (out / name).is_file(), name
    assert (out / "saved_model").is_dir()
    on_disk = json.loads((out / "export_report.json").read_text())
    assert set(on_disk["tflite"]) == {"float", "dynamic", "int8"}
    assert report["saved_model"]["reload_max_abs_diff"] <= 1e-5
    for q, entry in report["tflite"].items():
        assert entry["verification"]["passed"], q
        assert entry["size_bytes"] == os.path.getsize(entry["path"])
        assert entry["latency_ms"] > 0
    assert report["latency"]["runtime"] == runtime.interpreter_runtime()[1]


def test_export_all_int8_needs_data(tmp_path):
    with pytest.raises(ValueError, match="representative_data"):
        ex.export_all(_conv_model(), tmp_path / "o", quantizations=("float", "int8"))
    assert not (tmp_path / "o").exists()  # failed before writing anything


# ---------------------------------------------------------------------------------------------- CLI


def _cli(*args):
    env = dict(os.environ, TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run(
        [sys.executable, os.path.join(ROOT, "tools", "export.py"), *args],
        capture_output=True, text=True, cwd=ROOT, env=env, timeout=600,
    )


@pytest.mark.slow
def test_cli_help():
    result = _cli("--help")
    assert result.returncode == 0, result.stderr
    for option in ("--model_file", "--model", "--masks", "--output_dir", "--quantize",
                   "--representative_source", "--no_verify", "--threads", "--runs"):
        assert option in result.stdout, option


@pytest.mark.slow
def test_cli_missing_model_file(tmp_path):
    result = _cli("--model_file", str(tmp_path / "nope.keras"), "--output_dir", str(tmp_path / "o"))
    assert result.returncode == 2
    assert "nope.keras" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.slow
def test_cli_missing_masks_file(tmp_path):
    result = _cli("--model", "resnet20", "--masks", str(tmp_path / "masks.json"),
                  "--output_dir", str(tmp_path / "o"))
    assert result.returncode == 2
    assert "masks.json" in result.stderr and "Traceback" not in result.stderr


def _gated_model(num_classes=NUM_CLASSES):
    from tfprune.structure.gates import ChannelGate

    inp = keras.Input(SHAPE)
    x = layers.Conv2D(8, 3, padding="same", use_bias=False)(inp)
    x = layers.BatchNormalization()(x)
    g1 = ChannelGate(name="g1")
    x = layers.ReLU()(g1(x))
    x = layers.DepthwiseConv2D(3, strides=2, padding="same", use_bias=False)(x)
    x = layers.BatchNormalization()(x)
    x = layers.ReLU()(g1(x))  # the depthwise output is the same channel group: same gate instance
    x = layers.Conv2D(16, 1, use_bias=False)(x)
    x = layers.BatchNormalization()(x)
    x = ChannelGate(name="g2")(x)
    x = layers.ReLU()(x)
    x = layers.GlobalAveragePooling2D()(x)
    return keras.Model(inp, layers.Dense(num_classes)(x))


@pytest.mark.slow
def test_cli_end_to_end(tmp_path):
    """Gated model trained on digits (.keras) + mask file -> compact model, exports, report, table."""
    from tfprune.data import build_datasets
    from tfprune.structure.masks import save_masks

    keras.utils.set_random_seed(3)
    model = _gated_model(num_classes=10)
    data = build_datasets("digits", batch_size=64, image_size=16, augment=False)
    model.compile(optimizer=keras.optimizers.Adam(0.01),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(data.train, epochs=4, verbose=0, shuffle=False)
    model_file = tmp_path / "gated_model.keras"
    model.save(model_file)
    masks = {"g1": np.arange(8) % 2 == 0, "g2": np.arange(16) < 10}
    save_masks(masks, tmp_path / "masks.json")

    out = tmp_path / "export"
    result = _cli("--model_file", str(model_file), "--masks", str(tmp_path / "masks.json"),
                  "--output_dir", str(out), "--representative_source", "digits", "--runs", "3")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    for name in ("model_float.tflite", "model_dynamic.tflite", "model_int8.tflite", "export_report.json",
                 "export_summary.json", "full/model_float.tflite", "saved_model/saved_model.pb"):
        assert (out / name).is_file(), name
    assert "FLOPs" in result.stdout and "latency" in result.stdout
    summary = json.loads((out / "export_summary.json").read_text())
    assert summary["kept_channels"] == {"g1": 4, "g2": 10}
    assert summary["surgery_max_abs_diff"] < 1e-4
    assert summary["pruned"]["flops"] < summary["full"]["flops"]
    assert summary["pruned"]["params"] == summary["pruned"]["keras_trainable_params"]
    pruned, full = summary["pruned"]["tflite"], summary["full"]["tflite"]
    assert pruned["float"]["size_bytes"] < full["float"]["size_bytes"]
    assert pruned["float"]["verification"]["max_abs_diff"] < 1e-4
    assert pruned["int8"]["verification"]["top1_agreement"] >= 0.9
    assert summary["verification_failures"] == []


@pytest.mark.slow
def test_cli_zoo_model_and_bad_masks(tmp_path):
    from tfprune.structure.gates import gates_of
    from tfprune.structure.masks import save_masks
    from tfprune.models import build_model

    gated = build_model("resnet8", num_classes=10, input_shape=(16, 16, 3), width_multiplier=0.5)
    masks = {name: np.arange(g.channels) < max(1, g.channels // 2) for name, g in gates_of(gated).items()}
    save_masks(masks, tmp_path / "masks.json")
    zoo = ("--model", "resnet8", "--input_shape", "16,16,3", "--width_multiplier", "0.5")
    result = _cli(*zoo, "--masks", str(tmp_path / "masks.json"), "--output_dir", str(tmp_path / "o"),
                  "--quantize", "float,dynamic", "--representative_source", "random", "--runs", "2",
                  "--no_baseline")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    summary = json.loads((tmp_path / "o" / "export_summary.json").read_text())
    assert 0.2 < summary["pruned"]["flops"] / summary["full"]["flops"] < 0.35
    assert sorted(summary["pruned"]["tflite"]) == ["dynamic", "float"]

    save_masks({"no_such_gate": [1, 0]}, tmp_path / "bad.json")
    result = _cli(*zoo, "--masks", str(tmp_path / "bad.json"), "--output_dir", str(tmp_path / "o2"))
    assert result.returncode == 2
    assert "no_such_gate" in result.stderr and "Traceback" not in result.stderr


# ------------------------------------------------------------------------------ library: export_study


def test_export_study_from_python(tmp_path):
    """The study behind tools/export.py, called with plain arguments: files, summary, table, log lines."""
    import io

    from tfprune.studies.export_study import export_study, print_table
    from tfprune.structure.masks import read_masks

    model = _gated_model()
    masks = {"g1": np.arange(8) < 3, "g2": np.arange(16) % 4 == 0}
    lines = []
    summary = export_study(model, tmp_path / "o", masks, quantize=("float",), representative_source="random",
                           num_calibration=8, num_verify=8, runs=2, log=lines.append)
    assert lines == [f"exporting pruned model -> {tmp_path / 'o'}", f"exporting full model -> {tmp_path / 'o' / 'full'}"]
    for name in ("model_float.tflite", "export_report.json", "export_summary.json", "full/model_float.tflite"):
        assert (tmp_path / "o" / name).is_file(), name
    assert not (tmp_path / "o" / "model_int8.tflite").exists()
    assert json.loads((tmp_path / "o" / "export_summary.json").read_text()) == json.loads(json.dumps(summary))
    assert summary["kept_channels"] == {"g1": 3, "g2": 4}
    assert summary["source"] == {"model_file": None, "model": None, "masks": None}
    assert summary["surgery_max_abs_diff"] < 1e-4
    assert summary["pruned"]["params"] == summary["pruned"]["keras_trainable_params"]
    assert summary["pruned"]["flops"] < summary["full"]["flops"]
    assert summary["pruned"]["tflite"]["float"]["size_bytes"] < summary["full"]["tflite"]["float"]["size_bytes"]
    assert summary["verification_failures"] == []
    assert {k: v.tolist() for k, v in read_masks(model).items()} == {k: v.tolist() for k, v in masks.items()}

    out = io.StringIO()
    print_table(summary, ("float",), stream=out)
    text = out.getvalue()
    assert text.splitlines()[0].split() == ["full", "pruned", "pruned/full"]
    assert "TFLite float size" in text and "TFLite float latency" in text
    assert "verify float (pruned)" in text and "ok" in text and "FAILED" not in text


def test_export_study_rounds_masks_to_multiples(tmp_path):
    """round_to (tools/export.py --round_to): kept counts go to the nearest multiple, the chosen channels
    stay, and the compact model still computes the masked one."""
    from tfprune.studies.export_study import UsageError, export_study

    model = _gated_model()
    masks = {"g1": np.arange(8) < 3, "g2": np.arange(16) % 16 < 10}
    summary = export_study(model, tmp_path / "o", masks, quantize=("float",), representative_source="random",
                           num_calibration=8, num_verify=8, runs=0, baseline=False, round_to=4, log=lambda _: None)
    assert summary["kept_channels"] == {"g1": 4, "g2": 12} and summary["round_to"] == 4
    assert summary["surgery_max_abs_diff"] < 1e-4 and summary["verification_failures"] == []
    with pytest.raises(UsageError, match="round_to"):  # the parameter's name: a library function
        export_study(model, tmp_path / "o2", masks, quantize=("float",), representative_source="random",
                     runs=0, baseline=False, round_to=0, log=lambda _: None)


def test_export_study_usage_errors(tmp_path):
    from tfprune.errors import TfpruneError
    from tfprune.studies.export_study import UsageError, export_study, load_gated_model, representative_images

    assert issubclass(UsageError, TfpruneError)
    with pytest.raises(UsageError, match="no_such_gate"):
        export_study(_gated_model(), tmp_path / "o", {"no_such_gate": [1, 0]}, representative_source="random")
    assert not (tmp_path / "o").exists()
    with pytest.raises(UsageError, match="exactly one"):
        load_gated_model()
    with pytest.raises(UsageError, match="no_such_model"):
        load_gated_model(model_name="no_such_model")
    calib, verify = representative_images("random", (5, 6, 2), 7, 3)
    assert calib.shape == (7, 5, 6, 2) and verify.shape == (3, 5, 6, 2) and calib.dtype == np.float32
    calib, verify = representative_images("digits", (12, 12, 3), 10, 4)  # 8x8 gray digits -> resized, RGB
    assert calib.shape == (10, 12, 12, 3) and verify.shape == (4, 12, 12, 3)
    assert np.allclose(calib[..., 0], calib[..., 2])


@pytest.mark.slow
def test_measured_latency_reads_a_path_and_times_both_models_together(tmp_path, monkeypatch):
    """deploy.latency_report: the full Keras model is converted, the compact TFLite read from bytes or a
    path, both timed in one interleaved call (recorded here, so the ratio is the logic's, not the machine's)."""
    from tfprune.deploy.latency_report import measured_latency, summary_latency

    calls = []

    def record(interpreters, runs, clock=None):
        calls.append((sorted(interpreters), runs))
        return {"full": 4.0, "pruned": 1.0}

    monkeypatch.setattr(timing, "time_interleaved", record)
    compact = tmp_path / "compact.tflite"
    compact.write_bytes(ex.convert_tflite(_conv_model(depthwise=True), "float"))
    report = measured_latency(_conv_model(), str(compact), runs=7)
    assert calls == [(["full", "pruned"], 7)]
    assert report["latency_ms_full"] == 4.0 and report["latency_ms_pruned"] == 1.0 and report["latency_ratio"] == 0.25
    assert report["latency_measured_on"] == f"{runtime.interpreter_runtime()[1]}, 1 thread(s), batch 1, median of 7"
    with_prediction = summary_latency(_conv_model(), compact.read_bytes(), predicted_ms=(2.0, 0.5), runs=7)
    assert with_prediction == {**report, "latency_predicted_ms_full": 2.0, "latency_predicted_ms_pruned": 0.5}
