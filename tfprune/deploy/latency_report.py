"""The latency a finished run reports in `summary.json`: the gate-free full model and the compact model,
converted to float TFLite and timed interleaved in this process (`tfprune.deploy.timing`), so that their
ratio is fair on a shared machine; beside it, when the run had a latency budget, what its latency model
predicted for both (given as numbers: deploy knows nothing of the budget)."""

import os


def measured_latency(full_model, compact_tflite, threads=1, runs=20):
    """Measured LiteRT latency (ms, batch 1, median of ``runs``) of a gate-free full Keras model and of a
    compact model's float TFLite (bytes or a path), timed interleaved: {latency_ms_full,
    latency_ms_pruned, latency_ratio, latency_measured_on}."""
    from tfprune.deploy import timing
    from tfprune.deploy.export import convert_tflite
    from tfprune.deploy.interpreter import interpreter_runtime

    if isinstance(compact_tflite, (str, os.PathLike)):
        with open(compact_tflite, "rb") as f:
            compact_tflite = f.read()
    full = convert_tflite(full_model, "float")
    ms = timing.time_interleaved({"full": timing.ready_interpreter(full, threads),
                                  "pruned": timing.ready_interpreter(compact_tflite, threads)}, runs)
    return {"latency_ms_full": ms["full"], "latency_ms_pruned": ms["pruned"],
            "latency_ratio": ms["pruned"] / ms["full"],
            "latency_measured_on": f"{interpreter_runtime()[1]}, {threads} thread(s), batch 1, median of {runs}"}


def summary_latency(full_model, compact_tflite, predicted_ms=None, runs=20):
    """`summary.json`'s latency entries: `measured_latency` of ``full_model`` (gates removed) and of the
    compact float TFLite and, when ``predicted_ms`` = (full model ms, compact model ms) is given (a latency
    budget's prediction, `tfprune.cost.latency.predicted_latency_ms`), ``latency_predicted_ms_full`` and
    ``latency_predicted_ms_pruned``."""
    out = measured_latency(full_model, compact_tflite, runs=runs)
    if predicted_ms is not None:
        full_ms, pruned_ms = predicted_ms
        out.update(latency_predicted_ms_full=full_ms, latency_predicted_ms_pruned=pruned_ms)
    return out
