"""The first lines of a run: what runs (model, data, budget, devices) and where (workdir, fresh or resumed).

Printed by the command line before any data is read, so a user sees at once whether the run is the
one they meant, and whether it starts over or continues. Every value is the one the run will use:
the gin binding when there is one, else the configurable's default.
"""

import inspect

import gin
import tensorflow as tf

from tfprune.infra import workdir as files


def setting(name, parameter):
    """The value the configurable `name` (run, build_datasets or JointPruner) will give `parameter`:
    its gin binding, else its default."""
    from tfprune.data import build_datasets
    from tfprune.pruning.pruner import JointPruner
    from tfprune.training.trainer import run

    try:
        return gin.query_parameter(f"{name}.{parameter}")
    except ValueError:
        configurable = {"run": run, "build_datasets": build_datasets, "JointPruner": JointPruner}[name]
        default = inspect.signature(configurable).parameters[parameter].default
        return None if default is inspect.Parameter.empty else default


def policy_setting():
    """`JointPruner.policy` as the header shows it, and whether it is a learned agent (which needs
    TF-Agents): the name "agent", or a gin reference to a policy class (``@EpisodicPolicy``)."""
    from tfprune.search.policy import AgentPolicy

    policy = setting("JointPruner", "policy")
    if policy == "agent":
        return f"agent ({setting('JointPruner', 'agent_mode')})", True
    policy = getattr(getattr(policy, "configurable", None), "wrapped", policy)  # a gin reference: its class
    learned = isinstance(policy, AgentPolicy) or (isinstance(policy, type) and issubclass(policy, AgentPolicy))
    name = policy if isinstance(policy, str) else getattr(policy, "__name__", type(policy).__name__)
    return name, learned


def header_lines(workdir, strategy):
    """The run's description, one `label: value` line per fact (gin must already be parsed)."""
    width, size = setting("run", "width_multiplier"), setting("build_datasets", "image_size")
    policy, _ = policy_setting()
    return [
        f"model:   {setting('run', 'model_name')}" + (f" (width x{width})" if width != 1.0 else ""),
        f"data:    {setting('build_datasets', 'source')}, " + (f"{size}px images, " if size else "")
        + f"batch {setting('build_datasets', 'batch_size')}",
        f"budget:  keep {_budget()}; policy {policy}; {setting('run', 'epochs')} epochs",
        f"devices: {_devices(strategy)}",
        f"workdir: {workdir} ({files.progress(workdir)})",
    ]


def _budget():
    """What the budget keeps: a share of the FLOPs, or of the predicted latency (`JointPruner.budget`;
    a bad value is JointPruner's one-line error, raised after this header)."""
    if setting("JointPruner", "budget") != "latency":
        return f"{float(setting('JointPruner', 'target_flops_ratio')):.0%} of the FLOPs"
    ratio = setting("JointPruner", "target_latency_ratio")
    share = f"{ratio:.0%}" if isinstance(ratio, (int, float)) else repr(ratio)
    return f"{share} of the predicted LiteRT latency"


def _devices(strategy):
    replicas = strategy.num_replicas_in_sync
    try:
        devices = ", ".join(strategy.extended.worker_devices)
    except RuntimeError:  # the default strategy names no devices: TensorFlow places ops itself
        devices = "TensorFlow's default device"
    gpus = len(tf.config.list_physical_devices("GPU"))
    return (f"{type(strategy).__name__}, {replicas} replica{'s' if replicas > 1 else ''} on {devices}; "
            f"{gpus or 'no'} GPU{'s' if gpus != 1 else ''} visible")
