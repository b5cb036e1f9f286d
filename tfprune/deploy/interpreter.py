"""The TFLite interpreter: which runtime runs a model, and running it on float inputs.

The runtime is LiteRT (``ai_edge_litert.interpreter.Interpreter``, package ``ai-edge-litert``, a declared
dependency): what a device ships. Where the package is missing, ``tf.lite.Interpreter`` (deprecated in TF
2.21, same kernels) stands in, announced by exactly one `LiteRTMissingWarning` per process;
`interpreter_runtime()` says which one runs (reports record it next to latencies). Integer input and
output tensors are (de)quantized with their own scale and zero point, so callers always speak float32.
"""

import warnings

import numpy as np

from tfprune.infra import quiet


class LiteRTMissingWarning(UserWarning):
    """``ai-edge-litert`` is not installed: TFLite models run on the deprecated ``tf.lite.Interpreter``."""


LITERT_INSTALL = "pip install ai-edge-litert==2.3.0"
_runtime = {}  # the interpreter class and its name, chosen once per process


def interpreter_runtime():
    """(Interpreter class, runtime name): LiteRT's, else ``tf.lite``'s with one warning.

    Chosen once per process, so the fallback warns once however many models are verified or timed,
    and every latency of a process is measured on the same runtime.
    """
    if not _runtime:
        _runtime["class"], _runtime["name"] = _find_runtime()
    return _runtime["class"], _runtime["name"]


def _find_runtime():
    try:
        import ai_edge_litert
        from ai_edge_litert.interpreter import Interpreter
    except ImportError as exc:
        import tensorflow as tf

        warnings.warn(
            f"LiteRT is not installed ({exc}): TFLite models run on tf.lite.Interpreter instead, which "
            f"TensorFlow {tf.__version__} deprecates (same kernels; latencies may differ from LiteRT's). "
            f"Fix: {LITERT_INSTALL}", LiteRTMissingWarning, stacklevel=4)
        return tf.lite.Interpreter, f"tf.lite {tf.__version__}"
    return Interpreter, f"litert {getattr(ai_edge_litert, '__version__', '')}".strip()


def make_interpreter(tflite_bytes, num_threads=1):
    """An allocated interpreter for ``tflite_bytes`` on `interpreter_runtime()` (LiteRT when installed)."""
    Interpreter, _ = interpreter_runtime()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*tf\.lite\.Interpreter is deprecated.*")
        # The first allocation applies the XNNPACK delegate, which announces itself on stderr.
        with quiet.native_output(quiet.TFLITE_NOISE):
            interpreter = Interpreter(model_content=bytes(tflite_bytes), num_threads=num_threads)
            interpreter.allocate_tensors()
    return interpreter


def io_details(interpreter):
    inputs, outputs = interpreter.get_input_details(), interpreter.get_output_details()
    if len(inputs) != 1 or len(outputs) != 1:
        raise ValueError(
            f"Only single-input, single-output models are supported (got {len(inputs)} inputs, "
            f"{len(outputs)} outputs)."
        )
    return inputs[0], outputs[0]


def quantize(x, detail):
    dtype = detail["dtype"]
    if np.issubdtype(dtype, np.floating):
        return x.astype(dtype)
    scale, zero_point = detail["quantization"]
    info = np.iinfo(dtype)
    return np.clip(np.round(x / scale + zero_point), info.min, info.max).astype(dtype)


def dequantize(y, detail):
    if np.issubdtype(y.dtype, np.floating):
        return y.astype(np.float32)
    scale, zero_point = detail["quantization"]
    return ((y.astype(np.float32) - zero_point) * scale).astype(np.float32)


def run_tflite(tflite_bytes_or_interpreter, inputs, num_threads=1):
    """Run a single-input/single-output TFLite model on float32 ``inputs`` (a batch); returns float32
    outputs. Integer input/output tensors are (de)quantized with their own scale and zero point."""
    interpreter = tflite_bytes_or_interpreter
    if isinstance(interpreter, (bytes, bytearray)):
        interpreter = make_interpreter(interpreter, num_threads)
    inputs = np.asarray(inputs, dtype=np.float32)
    in_detail, _ = io_details(interpreter)
    if tuple(in_detail["shape"]) != inputs.shape:
        interpreter.resize_tensor_input(in_detail["index"], list(inputs.shape))
    interpreter.allocate_tensors()
    in_detail, out_detail = io_details(interpreter)
    interpreter.set_tensor(in_detail["index"], quantize(inputs, in_detail))
    interpreter.invoke()
    return dequantize(interpreter.get_tensor(out_detail["index"]), out_detail)
