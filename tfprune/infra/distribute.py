"""Where a run executes: the `tf.distribute` strategy, this process's role, and the chief's broadcast.

Multi-worker runs take every pruning decision once, on the chief, and hand it to the other workers
through `make_broadcast`, so all workers train the same sub-network; the sub-networks of an agent step
are scored in shares, one per worker, and gathered (`Collective`).
"""

import os

import gin
import numpy as np
import tensorflow as tf


@gin.configurable
def make_strategy(kind="auto"):
    """"auto": MultiWorkerMirrored when TF_CONFIG is set, Mirrored over several GPUs (or several
    logical CPUs, as the tests configure), else OneDevice.

    Args:
        kind: "auto", "multi_worker", "mirrored" or "one_device".
    """
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


def _task(strategy):
    """(cluster {task type: addresses}, task type, task id) of this process; ({}, "chief", 0) outside a
    cluster. The one reading of the cluster resolver that `worker_role` and `worker_share` share."""
    resolver = getattr(strategy, "cluster_resolver", None)
    cluster = resolver.cluster_spec().as_dict() if resolver is not None else {}
    if not cluster:
        return {}, "chief", 0
    return cluster, resolver.task_type, int(resolver.task_id or 0)


def worker_role(strategy):
    """(is_chief, name) of this process: the chief writes checkpoints, summaries and exports."""
    cluster, task_type, task_id = _task(strategy)
    is_chief = task_type == "chief" or (task_type == "worker" and task_id == 0 and "chief" not in cluster)
    return is_chief, f"{task_type}_{task_id}"


def make_broadcast(strategy, is_chief):
    """The workers' `Collective`: the chief's copy of an array for every worker, and each worker's share
    of the scoring (one worker: identity, and every episode is this worker's).

    Implemented with all-reduces: for a broadcast only the chief contributes, so the agent's decisions
    are made once and every worker applies the same mask; for a gather each worker contributes the
    entries it computed and zeros elsewhere."""
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return Collective()
    index, count = worker_share(strategy)
    if (index == 0) != bool(is_chief):
        raise RuntimeError(f"Worker {index} of {count} and is_chief={is_chief} disagree on who the chief is.")
    local_replicas = len(strategy.extended.worker_devices)

    def sum_over_workers(array):
        value = tf.constant(np.asarray(array, np.float32)) / local_replicas
        return strategy.reduce(tf.distribute.ReduceOp.SUM, strategy.run(lambda: tf.identity(value)), axis=None).numpy()

    return Collective(index, count, sum_over_workers)


class Collective:
    """What the pruner needs from the other workers (`make_broadcast`).

    Calling it broadcasts: every worker gets the chief's copy of a float array. `share(n)` is this
    worker's part of n items to compute (every count-th, from its index), and `gather(array)` gives every
    worker the whole array from the parts (each worker filled its own entries and left zeros elsewhere),
    so scoring N sub-networks on W workers costs each N / W (`tfprune.search.scoring.score_step`).

    ``Collective()`` is the local one of a single worker: broadcast and gather return the array itself
    (as float32), and the share is every item. It is what `JointPruner` uses when given no broadcast, so
    that the pruner handles one kind of object whether it runs alone or in a cluster.
    """

    def __init__(self, index=0, count=1, sum_over_workers=None):
        self.index, self.count = int(index), int(count)  # index 0 is the chief (`worker_share`)
        self._sum = sum_over_workers or (lambda array: np.asarray(array, np.float32))

    def __call__(self, array):
        array = np.asarray(array, np.float32)
        return self._sum(array if self.index == 0 else np.zeros_like(array))

    def share(self, n):
        return np.arange(self.index, int(n), self.count)

    def gather(self, array):
        return self._sum(np.asarray(array, np.float32))


def worker_share(strategy):
    """(index, count) of this worker among the cluster's chief and workers: the chief, or worker 0 where
    there is no chief, is 0 (the chief of `worker_role`)."""
    cluster, task_type, task_id = _task(strategy)
    chiefs, workers = len(cluster.get("chief", [])), len(cluster.get("worker", []))
    if not chiefs + workers:
        return 0, 1
    index = 0 if task_type == "chief" else chiefs + task_id
    return index, chiefs + workers
