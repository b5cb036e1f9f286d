"""Where a run executes: the `tf.distribute` strategy, this process's role, and the chief's broadcast.

Multi-worker runs take every pruning decision once, on the chief, and hand it to the other workers
through `make_broadcast`, so all workers train the same sub-network.
"""

import os

import gin
import numpy as np
import tensorflow as tf


@gin.configurable
def make_strategy(kind="auto"):
    """"auto": MultiWorkerMirrored when TF_CONFIG is set, Mirrored over several GPUs (or several
    logical CPUs, as the tests configure), else OneDevice."""
    if kind == "auto":
        gpus = tf.config.list_logical_devices("GPU")
        if os.environ.get("TF_CONFIG"):
            kind = "multi_worker"
        elif len(gpus) > 1 or (not gpus and len(tf.config.list_logical_devices("CPU")) > 1):
            kind = "mirrored"
        else:
            kind = "one_device"
    if kind == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    if kind == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        devices = [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
        return tf.distribute.MirroredStrategy(devices)
    if kind == "one_device":
        gpus = tf.config.list_logical_devices("GPU")
        return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")
    raise ValueError(f"Unknown strategy {kind!r}; use auto, mirrored, one_device or multi_worker.")


def worker_role(strategy):
    """(is_chief, name) of this process: the chief writes checkpoints, summaries and exports."""
    resolver = getattr(strategy, "cluster_resolver", None)
    cluster = resolver.cluster_spec().as_dict() if resolver is not None else {}
    if not cluster:
        return True, "chief"
    task_type, task_id = resolver.task_type, int(resolver.task_id or 0)
    is_chief = task_type == "chief" or (task_type == "worker" and task_id == 0 and "chief" not in cluster)
    return is_chief, f"{task_type}_{task_id}"


def make_broadcast(strategy, is_chief):
    """A function that gives every worker the chief's copy of a numpy array (identity on one worker).

    Implemented as an all-reduce in which only the chief contributes, so the agent's decisions are made
    once and every worker applies the same mask."""
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return lambda array: array
    local_replicas = len(strategy.extended.worker_devices)

    def broadcast(array):
        array = np.asarray(array, np.float32)
        value = tf.constant(array if is_chief else np.zeros_like(array)) / local_replicas
        total = strategy.reduce(tf.distribute.ReduceOp.SUM, strategy.run(lambda: tf.identity(value)), axis=None)
        return total.numpy()

    return broadcast
