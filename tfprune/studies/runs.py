"""How a study starts one training run: `tfprune train` in a fresh interpreter.

Each run gets fresh gin and TensorFlow state. The command is ``python -m tfprune train`` on this
process's interpreter, the same arguments as `tools/train.py` (both call
`tfprune.cli.commands.train_main`), so it works from a pip install as from a source checkout.
"""

import sys


def train_command(workdir, configs, bindings=()):
    """argv of ``tfprune train --workdir WORKDIR --config C ... --gin_bindings B ...`` in a fresh interpreter.

    ``configs``: gin files (paths, or names of shipped configs), in order; ``bindings``: applied in order
    after them (gin keeps the last binding of a parameter)."""
    argv = [sys.executable, "-m", "tfprune", "train", "--workdir", str(workdir)]
    for config in configs:
        argv += ["--config", str(config)]
    for binding in bindings:
        argv += ["--gin_bindings", binding]
    return argv
