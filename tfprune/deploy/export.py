"""SavedModel / TFLite export and numerical verification (the interpreter is `tfprune.deploy.interpreter`,
latency `tfprune.deploy.timing`).

Plain functions, no gin. The usual flow for a pruned model::

    compact = tfprune.structure.surgery.compact_model(gated_model, masks)   # physically smaller Keras model
    report = export_all(compact, "out/", representative_data=calib_batches, sample_inputs=x_val[:64])

Conventions and choices:

* Conversion always goes through a SavedModel written by Keras 3's ``model.export`` and
  ``tf.lite.TFLiteConverter.from_saved_model`` (seen working for float, dynamic range and full int8 with
  TF 2.21; the ``from_concrete_functions(..., trackable_obj=model)`` route gave NaN outputs).
* Models with one input and one output tensor (a classifier's logits) are supported.
* ``quantization``:
    - ``"float"``: float32 weights and activations.
    - ``"dynamic"``: dynamic-range quantization, int8 weights, float activations and I/O.
    - ``"int8"``: full-integer quantization calibrated on ``representative_data``. Only int8 builtin
      kernels are allowed (``TFLITE_BUILTINS_INT8``), so an op that cannot be quantized fails the
      conversion instead of silently staying float. With ``int8_io=True`` (the default, what most NPUs
      and DSPs want) the model's input and output tensors are int8 as well: callers quantize inputs with
      the input tensor's ``(scale, zero_point)`` and dequantize outputs with the output's; the helpers
      here (``run_tflite``, ``verify_tflite``) do that for you. ``int8_io=False`` keeps float32 I/O with
      int8 internals (a quantize/dequantize pair is added at the ends).
* The runtime is LiteRT (``ai_edge_litert.interpreter.Interpreter``, package ``ai-edge-litert``, a
  declared dependency): what a device ships, and free of ``tf.lite.Interpreter``'s deprecation warning.
  Where the package is missing, ``tf.lite.Interpreter`` (deprecated in TF 2.21, same kernels) stands in,
  announced by exactly one `LiteRTMissingWarning` per process and with its own deprecation warning
  silenced; `interpreter_runtime()` says which one runs (reports record it next to latencies).
"""

import os
import re
import tempfile
import warnings

import numpy as np

from tfprune.deploy.interpreter import interpreter_runtime, run_tflite
from tfprune.deploy.timing import tflite_latency_ms
from tfprune.errors import TfpruneError
from tfprune.infra import quiet, safe_write

QUANTIZATIONS = ("float", "dynamic", "int8")

# Verification defaults (see verify_tflite).
DEFAULT_TOLERANCES = {"float": 1e-4, "dynamic": 0.1}
DEFAULT_MIN_TOP1_AGREEMENT = 0.9
DEFAULT_MAX_CALIBRATION_SAMPLES = 256


class ExportVerificationError(TfpruneError, AssertionError):
    """A converted model does not reproduce the Keras model closely enough. ``.report`` holds the numbers."""

    def __init__(self, message, report=None):
        super().__init__(message)
        self.report = report


class TFLiteConversionError(TfpruneError, RuntimeError):
    """The TFLite converter failed; the message names the unsupported ops (if any) and the fix."""

    def __init__(self, message, ops=()):
        super().__init__(message)
        self.ops = tuple(ops)


# --------------------------------------------------------------------------------------------- SavedModel


def export_saved_model(model, path):
    """Write a Keras 3 model as a TF SavedModel (``model.export``, format ``tf_saved_model``).

    The result reloads with ``tf.saved_model.load(path)`` and serves ``serve`` (a tf.function) and the
    ``serving_default`` signature. Returns ``path``.
    """
    path = os.fspath(path)
    with safe_write.replacing(path) as tmp:  # a failed export keeps the previous SavedModel
        model.export(tmp, format="tf_saved_model", verbose=False)
    return path


def load_saved_model_fn(path):
    """Reload a SavedModel written by ``export_saved_model``; returns ``fn(x: np.ndarray) -> np.ndarray``."""
    import tensorflow as tf

    loaded = tf.saved_model.load(os.fspath(path))
    # The signature takes keyword tensors whatever the Keras input structure (tensor, [tensor], dict).
    sig = loaded.signatures["serving_default"]
    names = list(sig.structured_input_signature[1].keys())
    if len(names) != 1:
        raise ValueError(f"Expected a single-input SavedModel, got inputs {names}.")

    def fn(x):
        return _single_output(sig(**{names[0]: tf.convert_to_tensor(np.asarray(x, np.float32))})).numpy()

    fn.loaded = loaded  # keep the trackable (and its variables) alive
    return fn


def _single_output(out):
    if isinstance(out, dict):
        if len(out) != 1:
            raise ValueError(f"Expected a single-output model, got outputs {sorted(out)}.")
        return next(iter(out.values()))
    if isinstance(out, (list, tuple)):
        if len(out) != 1:
            raise ValueError(f"Expected a single-output model, got {len(out)} outputs.")
        return out[0]
    return out


# ------------------------------------------------------------------------------------------------ TFLite


def _as_batches(data, max_samples=None):
    """Representative / sample data -> list of float32 arrays (batches), at most ``max_samples`` rows.

    Accepts a numpy array (one batch), an iterable of arrays, of ``(x, y)`` tuples, or of 1-element
    lists, or a ``tf.data.Dataset`` of those.
    """
    if data is None:
        return []
    if isinstance(data, np.ndarray):
        data = [data]
    elif hasattr(data, "as_numpy_iterator"):
        data = data.as_numpy_iterator()
    batches, count = [], 0
    for item in data:
        if isinstance(item, dict):
            raise ValueError("Dict-structured inputs are not supported: pass the model input array.")
        if isinstance(item, (tuple, list)):
            item = item[0]
        arr = np.asarray(item, dtype=np.float32)
        if max_samples is not None and count + arr.shape[0] > max_samples:
            arr = arr[: max_samples - count]
        if arr.shape[0] == 0:
            break
        batches.append(arr)
        count += arr.shape[0]
        if max_samples is not None and count >= max_samples:
            break
    return batches


def _concat(data, max_samples=None):
    batches = _as_batches(data, max_samples)
    if not batches:
        raise ValueError("No samples given (empty sample/representative data).")
    return np.concatenate(batches, axis=0)


_OP_PATTERNS = (
    re.compile(r"'tf\.(\w+)' op is neither a custom op nor a flex op"),
    re.compile(r"TF Select ops: ([\w, ]+)"),
    re.compile(r"Custom ops: ([\w, ]+)"),
    re.compile(r"'tfl?\.(\w+)' op .*(?:not supported|failed to legalize|illegal)"),
)


def _unsupported_ops(message):
    ops = []
    for pattern in _OP_PATTERNS:
        for match in pattern.findall(message):
            for op in match.split(","):
                op = op.strip()
                if op and op not in ops:
                    ops.append(op)
    return ops


def _conversion_error(exc, quantization):
    message = str(exc)
    ops = _unsupported_ops(message)
    what = f"ops not supported by the TFLite builtin kernels: {', '.join(ops)}" if ops else "conversion failed"
    fix = (
        "Fix: replace those ops in the model with TFLite-builtin ones (see "
        "https://www.tensorflow.org/lite/guide/ops_compatibility), or allow TensorFlow kernels with "
        "`convert_tflite(..., allow_select_tf_ops=True)`, which sets `converter.target_spec.supported_ops = "
        "[tf.lite.OpsSet.TFLITE_BUILTINS, tf.lite.OpsSet.SELECT_TF_OPS]` (the app must then link the "
        "Flex delegate, ~several MB, and those ops will not run on an NPU)."
    )
    if quantization == "int8":
        fix += (
            " For quantization='int8' only int8 builtin kernels are allowed (TFLITE_BUILTINS_INT8): an op "
            "without an int8 kernel fails here; use 'dynamic' quantization for such models."
        )
    first_lines = "\n".join(message.strip().splitlines()[:6])
    return TFLiteConversionError(
        f"TFLite conversion ({quantization}) failed, {what}.\n{fix}\nConverter said:\n{first_lines}", ops
    )


def convert_tflite(
    model_or_saved_model_path,
    quantization="float",
    representative_data=None,
    int8_io=True,
    allow_select_tf_ops=False,
    max_calibration_samples=DEFAULT_MAX_CALIBRATION_SAMPLES,
):
    """Convert a Keras 3 model or a SavedModel directory to a TFLite flatbuffer; returns ``bytes``.

    Args:
        model_or_saved_model_path: a Keras model (exported to a temporary SavedModel first) or the path of
            a SavedModel directory (e.g. written by ``export_saved_model``).
        quantization: "float", "dynamic" (int8 weights, float activations) or "int8" (full integer).
        representative_data: required for "int8": float32 batches of the model input (numpy array,
            iterable of arrays or ``(x, y)`` tuples, or a tf.data.Dataset); the first
            ``max_calibration_samples`` samples calibrate the activation ranges.
        int8_io: for "int8" only: int8 input/output tensors (True, default) or float32 I/O (False).
        allow_select_tf_ops: also allow TensorFlow (Flex) kernels for ops TFLite builtins lack.

    Raises:
        ValueError: unknown quantization, or "int8" without representative data.
        TFLiteConversionError: the converter failed (message names unsupported ops and the fix).
    """
    import tensorflow as tf

    if quantization not in QUANTIZATIONS:
        raise ValueError(f"quantization must be one of {QUANTIZATIONS}, got {quantization!r}.")
    calibration = None
    if quantization == "int8":
        calibration = _as_batches(representative_data, max_calibration_samples)
        if not calibration:
            raise ValueError(
                "quantization='int8' (full integer) needs representative_data: an iterable of float32 "
                "numpy batches of the model input (a few hundred real, preprocessed training images) to "
                "calibrate activation ranges. Use quantization='dynamic' if you have no data."
            )

    if isinstance(model_or_saved_model_path, (str, os.PathLike)):
        return _convert_saved_model(
            tf, os.fspath(model_or_saved_model_path), quantization, calibration, int8_io, allow_select_tf_ops
        )
    with tempfile.TemporaryDirectory(prefix="tfprune_export_") as tmp:
        path = export_saved_model(model_or_saved_model_path, os.path.join(tmp, "saved_model"))
        return _convert_saved_model(tf, path, quantization, calibration, int8_io, allow_select_tf_ops)


def _convert_saved_model(tf, path, quantization, calibration, int8_io, allow_select_tf_ops):
    if not os.path.isdir(path):
        raise FileNotFoundError(f"SavedModel directory {path!r} does not exist.")
    converter = tf.lite.TFLiteConverter.from_saved_model(path)
    if quantization in ("dynamic", "int8"):
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantization == "int8":

        def representative_dataset():
            for batch in calibration:
                for i in range(batch.shape[0]):
                    yield [batch[i : i + 1]]

        converter.representative_dataset = representative_dataset
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        if allow_select_tf_ops:
            converter.target_spec.supported_ops.append(tf.lite.OpsSet.SELECT_TF_OPS)
        if int8_io:
            converter.inference_input_type = tf.int8
            converter.inference_output_type = tf.int8
    elif allow_select_tf_ops:
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS, tf.lite.OpsSet.SELECT_TF_OPS]
    try:
        with quiet.native_output(quiet.TFLITE_NOISE):  # the quantizer prints its settings to stderr
            return bytes(converter.convert())
    except Exception as exc:  # ConverterError lives in a private module; match it by name
        if type(exc).__name__ == "ConverterError" or "convert" in type(exc).__module__:
            raise _conversion_error(exc, quantization) from exc
        raise


def model_size_bytes(obj):
    """Size in bytes of TFLite ``bytes``, a file, or a directory (recursively, e.g. a SavedModel)."""
    if isinstance(obj, (bytes, bytearray)):
        return len(obj)
    path = os.fspath(obj)
    if os.path.isdir(path):
        return sum(
            os.path.getsize(os.path.join(root, name)) for root, _, names in os.walk(path) for name in names
        )
    return os.path.getsize(path)


# ------------------------------------------------------------------------------------------ Verification


def keras_outputs(keras_model, x, batch_size=64):
    import keras

    outs = []
    with warnings.catch_warnings():
        # Models built with `inputs=[inp]` warn when called on a bare tensor; the result is the same.
        warnings.filterwarnings("ignore", message=r".*structure of `inputs` doesn't match.*")
        for i in range(0, x.shape[0], batch_size):
            y = _single_output(keras_model(x[i : i + batch_size], training=False))
            outs.append(np.asarray(keras.ops.convert_to_numpy(y)))
    return np.concatenate(outs, axis=0).astype(np.float32)


def verify_tflite(
    tflite_bytes,
    keras_model,
    sample_inputs,
    quantization,
    tolerance=None,
    min_top1_agreement=DEFAULT_MIN_TOP1_AGREEMENT,
    max_samples=256,
):
    """Compare a TFLite model with its Keras model on ``sample_inputs``; raise if they disagree.

    Criteria (``scale`` = max |Keras output| over the sample, floored at 1.0 so that tiny outputs get an
    absolute tolerance):

    * "float": max |tflite - keras| <= ``tolerance`` * scale, default 1e-4.
    * "dynamic": max |tflite - keras| <= ``tolerance`` * scale, default 0.1 (int8 weights).
    * "int8": top-1 agreement (argmax over the last axis) >= ``min_top1_agreement`` (default 0.9).
      Use confident inputs (real data, a trained model): near-tied logits flip under quantization noise.

    Returns a report dict (quantization, num_samples, max_abs_diff, mean_abs_diff, output_scale,
    tolerance / min_top1_agreement, top1_agreement, passed). Raises ``ExportVerificationError`` (with
    ``.report``) on failure.
    """
    if quantization not in QUANTIZATIONS:
        raise ValueError(f"quantization must be one of {QUANTIZATIONS}, got {quantization!r}.")
    x = _concat(sample_inputs, max_samples)
    ref = keras_outputs(keras_model, x)
    got = run_tflite(tflite_bytes, x)
    if got.shape != ref.shape:
        raise ExportVerificationError(
            f"TFLite ({quantization}) output shape {got.shape} != Keras output shape {ref.shape}.",
            {"quantization": quantization, "tflite_shape": list(got.shape), "keras_shape": list(ref.shape)},
        )
    report = _difference_report(got, ref, quantization)
    criterion = _judge(report, tolerance, min_top1_agreement)
    if not report["passed"]:
        raise ExportVerificationError(
            f"TFLite ({quantization}) does not match the Keras model on {report['num_samples']} samples: "
            f"{criterion} (mean abs diff {report['mean_abs_diff']:.3g}, top-1 agreement "
            f"{report['top1_agreement']:.4f}).",
            report,
        )
    return report


def _difference_report(got, ref, quantization):
    """The numbers every verification reports: differences, output scale and top-1 agreement."""
    diff = np.abs(got.astype(np.float64) - ref.astype(np.float64))
    return {
        "quantization": quantization,
        "num_samples": int(ref.shape[0]),
        "max_abs_diff": float(diff.max()),
        "mean_abs_diff": float(diff.mean()),
        "output_scale": max(float(np.max(np.abs(ref))), 1.0),
        "top1_agreement": float(np.mean(np.argmax(got, -1) == np.argmax(ref, -1))),
    }


def _judge(report, tolerance, min_top1_agreement):
    """Adds the quantization's threshold and ``passed`` to ``report``; returns the failed criterion's text.

    int8 is judged by top-1 agreement (its outputs are quantized, an absolute bound would be arbitrary);
    float and dynamic by the max difference relative to the output scale.
    """
    if report["quantization"] == "int8":
        report["min_top1_agreement"] = float(min_top1_agreement)
        report["passed"] = bool(report["top1_agreement"] >= min_top1_agreement)
        return f"top-1 agreement {report['top1_agreement']:.4f} < required {min_top1_agreement}"
    scale = report["output_scale"]
    tol = DEFAULT_TOLERANCES[report["quantization"]] if tolerance is None else float(tolerance)
    report["tolerance"] = tol
    report["max_allowed_diff"] = tol * scale
    report["passed"] = bool(report["max_abs_diff"] <= tol * scale)
    return (
        f"max |tflite - keras| = {report['max_abs_diff']:.3g} > {tol:g} x output scale "
        f"{scale:.3g} = {tol * scale:.3g}"
    )


# ------------------------------------------------------------------------------------------------ All


def export_all(
    model,
    out_dir,
    quantizations=QUANTIZATIONS,
    representative_data=None,
    sample_inputs=None,
    verify=True,
    int8_io=True,
    tolerances=None,
    min_top1_agreement=DEFAULT_MIN_TOP1_AGREEMENT,
    latency=True,
    num_threads=1,
    latency_runs=50,
    latency_warmup=5,
    max_calibration_samples=DEFAULT_MAX_CALIBRATION_SAMPLES,
):
    """Export ``model`` to ``out_dir``: ``saved_model/``, ``model_<q>.tflite`` for each quantization and
    ``export_report.json``; returns the report dict (also written to the JSON file).

    ``sample_inputs`` (for verification) default to the first samples of ``representative_data``, or to
    standard-normal inputs when there is none (float/dynamic only: int8 needs representative data).
    Verification failure raises ``ExportVerificationError`` after writing the files and the report.
    """
    quantizations = _checked_quantizations(quantizations)
    calibration = _as_batches(representative_data, max_calibration_samples)
    if "int8" in quantizations and not calibration:
        raise ValueError(
            "export_all(..., quantizations including 'int8') needs representative_data (float32 batches "
            "of the model input) for full-integer calibration."
        )
    tolerances = dict(tolerances or {})
    samples, sample_source = _verification_samples(model, sample_inputs, calibration)

    os.makedirs(out_dir, exist_ok=True)
    sm_path = export_saved_model(model, os.path.join(out_dir, "saved_model"))
    report = {
        "input_shape": [None] + [int(d) for d in model.inputs[0].shape[1:]],
        "params": int(sum(int(np.prod(w.shape)) for w in model.trainable_weights)),
        "sample_source": sample_source,
        "num_calibration_samples": int(sum(b.shape[0] for b in calibration)),
        "saved_model": _saved_model_entry(model, sm_path, samples),
        "tflite": {},
        "latency": {"num_threads": num_threads, "runs": latency_runs, "batch_size": 1,
                    "runtime": interpreter_runtime()[1]} if latency else None,
    }
    failures = []
    for q in quantizations:
        tfl = convert_tflite(
            sm_path, q, representative_data=calibration if q == "int8" else None, int8_io=int8_io
        )
        entry = _write_tflite(tfl, os.path.join(out_dir, f"model_{q}.tflite"), q, int8_io)
        if verify:
            failure = _verify_into(entry, tfl, model, samples, q, tolerances.get(q), min_top1_agreement)
            if failure:
                failures.append(failure)
        if latency:
            entry["latency_ms"] = tflite_latency_ms(tfl, num_threads, latency_runs, latency_warmup)
        report["tflite"][q] = entry
    return _write_report(report, failures, out_dir)


def _write_report(report, failures, out_dir):
    """Writes ``export_report.json`` (also when verification failed: the numbers say by how much), then
    raises ``ExportVerificationError`` if any variant failed; else returns ``report``."""
    report["verification_failures"] = failures
    safe_write.write_json(os.path.join(out_dir, "export_report.json"), report, indent=2)
    if failures:
        raise ExportVerificationError("Export verification failed:\n" + "\n".join(failures), report)
    return report


def _checked_quantizations(quantizations):
    """``quantizations`` as a tuple; a ValueError (before anything is written) for an unknown one."""
    quantizations = tuple(quantizations)
    for q in quantizations:
        if q not in QUANTIZATIONS:
            raise ValueError(f"Unknown quantization {q!r}; choose from {QUANTIZATIONS}.")
    return quantizations


def _verification_samples(model, sample_inputs, calibration):
    """(samples, where they came from): the given samples, else the calibration data, else noise."""
    if sample_inputs is not None:
        return _concat(sample_inputs, 256), "sample_inputs"
    if calibration:
        return _concat(calibration, 64), "representative_data"
    shape = [16] + [int(d) for d in model.inputs[0].shape[1:]]
    return np.random.default_rng(0).standard_normal(shape).astype(np.float32), "random_normal"


def _saved_model_entry(model, sm_path, samples):
    """The SavedModel's report entry; reloading it checks that the export computes the Keras model."""
    ref = keras_outputs(model, samples)
    reload_diff = float(np.max(np.abs(load_saved_model_fn(sm_path)(samples) - ref)))
    return {"path": sm_path, "size_bytes": model_size_bytes(sm_path), "reload_max_abs_diff": reload_diff}


def _write_tflite(tflite_bytes, path, quantization, int8_io):
    """Writes one flatbuffer (safely); returns its report entry (path, size, int8 I/O type)."""
    safe_write.write_text(path, tflite_bytes, mode="wb")
    entry = {"path": path, "size_bytes": len(tflite_bytes)}
    if quantization == "int8":
        entry["int8_io"] = bool(int8_io)
    return entry


def _verify_into(entry, tflite_bytes, model, samples, quantization, tolerance, min_top1_agreement):
    """Verifies one variant into ``entry["verification"]``; returns the failure message or None.

    A failure does not stop export_all: every variant is written and reported before it raises.
    """
    try:
        entry["verification"] = verify_tflite(
            tflite_bytes, model, samples, quantization, tolerance=tolerance,
            min_top1_agreement=min_top1_agreement,
        )
    except ExportVerificationError as exc:
        entry["verification"] = exc.report
        return str(exc)
    return None
