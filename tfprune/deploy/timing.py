"""The one timing routine: how tfprune times a TFLite model, wherever a latency is reported.

Every latency (export reports, `summary.json`, the latency table and its calibration, the benchmarks)
is the median wall time of single ``invoke`` calls on an interpreter that was warmed first (XNNPACK
packs weights on the first invoke) with a fixed random input. When several models are compared, their
invokes are interleaved round by round (`time_interleaved`), so that a busy phase of a shared CPU hits
every model alike and their ratio stays fair; only ratios measured within one run are compared.
"""

import statistics
import time

import numpy as np

from tfprune.deploy.interpreter import io_details, make_interpreter, quantize


def ready_interpreter(tflite_bytes, num_threads=1, warmup=5, batch_size=1):
    """An interpreter holding a fixed random ``batch_size`` input, invoked ``warmup`` times."""
    interpreter = make_interpreter(tflite_bytes, num_threads)
    detail, _ = io_details(interpreter)
    shape = [batch_size] + [int(d) if d > 0 else 1 for d in detail["shape_signature"][1:]]
    if list(detail["shape"]) != shape:
        interpreter.resize_tensor_input(detail["index"], shape)
        interpreter.allocate_tensors()
        detail, _ = io_details(interpreter)
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    interpreter.set_tensor(detail["index"], quantize(x, detail))
    for _ in range(warmup):
        interpreter.invoke()
    return interpreter


def time_interleaved(interpreters, runs, clock=time.perf_counter):
    """{key: median ms of ``runs`` invokes}, one invoke of each interpreter per round.

    ``clock() -> seconds`` is the stopwatch (a test passes a fake one). Code that times through this
    function looks it up on this module when it runs (``timing.time_interleaved``), so a test can put a
    deterministic stand-in in its place and check the logic around the timings, not the machine."""
    times = {key: [] for key in interpreters}
    for _ in range(max(1, runs)):
        for key, interpreter in interpreters.items():
            start = clock()
            interpreter.invoke()
            times[key].append((clock() - start) * 1e3)
    return {key: float(statistics.median(v)) for key, v in times.items()}


def tflite_latency_ms(tflite_bytes, num_threads=1, runs=50, warmup=5, batch_size=1):
    """Median wall time (ms) of one ``invoke`` on a ``batch_size`` input, after ``warmup`` runs."""
    interpreter = ready_interpreter(tflite_bytes, num_threads, warmup, batch_size)
    return time_interleaved({"model": interpreter}, runs)["model"]
