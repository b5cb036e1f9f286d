"""Reproducible runs: what `run.deterministic = True` switches on, in one place.

TensorFlow's op determinism (`tf.config.experimental.enable_op_determinism`) picks deterministic
kernels, but on a CPU it leaves one source of run-to-run differences: ops that run *concurrently*
(TensorFlow's inter-op thread pool) share the intra-op thread pool, and some of them then sum in an
order that depends on timing. Measured on this project's 2-core CPU (2026-12-03): the gradient of
MobileNetV2's 1x1 head convolution, recomputed on the same batch and weights, came out different in
about half of the calls, with or without op determinism and with or without oneDNN; each op alone was
deterministic, and with one inter-op thread every call matched (8 of 8, in two processes). ResNet-20,
with fewer independent branches, happened to reproduce anyway. One inter-op thread did not slow
MobileNetV2's training steps on that CPU (6.5-6.6 s against 6.9-10.3 s for 32 steps).

The inter-op pool's size can only be set before TensorFlow's runtime starts (its first op or device
query). `enable()` is therefore called by `tools/train.py` before it imports TF-Agents (which starts
the runtime) and first thing in `tfprune.training.trainer.run`; a program that used TensorFlow before calling
`run` gets a warning naming the fix (`TF_NUM_INTEROP_THREADS=1`, read by
TensorFlow when its runtime starts).
"""

import os
import warnings

import tensorflow as tf

INTEROP_ENV = "TF_NUM_INTEROP_THREADS"


class NotDeterministicWarning(UserWarning):
    """The run asked for determinism but TensorFlow's runtime was started with concurrent ops."""


def enable():
    """Deterministic kernels and one inter-op thread; returns True when both are in force."""
    tf.config.experimental.enable_op_determinism()
    if _single_interop_thread():
        return True
    warnings.warn(
        "run.deterministic = True, but TensorFlow's runtime was started before the run with "
        f"{tf.config.threading.get_inter_op_parallelism_threads() or 'default (several)'} inter-op threads, "
        "so concurrent ops may still sum in a timing-dependent order and two runs can differ. Fix: set "
        f"the environment variable {INTEROP_ENV}=1 before starting Python, or call "
        "tfprune.infra.determinism.enable() before any TensorFlow op or device query.",
        NotDeterministicWarning, stacklevel=2)
    return False


def _single_interop_thread():
    """Sets one inter-op thread when the runtime has not started; True when one is in force."""
    if os.environ.get(INTEROP_ENV) == "1":
        return True
    try:
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:  # "cannot be modified after initialization"
        return tf.config.threading.get_inter_op_parallelism_threads() == 1
    return True
