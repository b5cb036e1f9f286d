"""The first lines of a run: what runs (model, data, budget, devices) and where (workdir, fresh or resumed).

Printed by the command line before any data is read, so a user sees at once whether the run is the
one they meant, and whether it starts over or continues. Every value is the one the run will use:
the gin binding when there is one, else the configurable's default.
"""

import inspect

import gin
import tensorflow as tf

from tfprune import workdir as files


def _setting(configurable, name, parameter):
    """The value `configurable.parameter` will receive: its gin binding, else its default."""
    try:
        return gin.query_parameter(f"{name}.{parameter}")
    except ValueError:
        default = inspect.signature(configurable).parameters[parameter].default
        return None if default is inspect.Parameter.empty else default


def header_lines(workdir, strategy):
    """The run's description, one `label: value` line per fact (gin must already be parsed)."""
    from tfprune.data import build_datasets
    from tfprune.pruner import JointPruner
    from tfprune.trainer import run

    model = _setting(run, "run", "model_name")
    width = _setting(run, "run", "width_multiplier")
    source = _setting(build_datasets, "build_datasets", "source")
    size = _setting(build_datasets, "build_datasets", "image_size")
    batch = _setting(build_datasets, "build_datasets", "batch_size")
    target = _setting(JointPruner, "JointPruner", "target_flops_ratio")
    policy = _setting(JointPruner, "JointPruner", "policy")
    if policy == "agent":
        policy += f" ({_setting(JointPruner, 'JointPruner', 'agent_mode')})"
    epochs = _setting(run, "run", "epochs")
    return [
        f"model:   {model}" + (f" (width x{width})" if width != 1.0 else ""),
        f"data:    {source}, " + (f"{size}px images, " if size else "") + f"batch {batch}",
        f"budget:  keep {float(target):.0%} of the FLOPs; policy {policy}; {epochs} epochs",
        f"devices: {_devices(strategy)}",
        f"workdir: {workdir} ({files.progress(workdir)})",
    ]


def _devices(strategy):
    replicas = strategy.num_replicas_in_sync
    try:
        devices = ", ".join(strategy.extended.worker_devices)
    except RuntimeError:  # the default strategy names no devices: TensorFlow places ops itself
        devices = "TensorFlow's default device"
    gpus = len(tf.config.list_physical_devices("GPU"))
    return (f"{type(strategy).__name__}, {replicas} replica{'s' if replicas > 1 else ''} on {devices}; "
            f"{gpus or 'no'} GPU{'s' if gpus != 1 else ''} visible")
