"""TF-Agents, the one dependency that `pip install tfprune` cannot bring: a missing copy is a clear error.

tf-agents 0.19 (its last release) declares pins that conflict with TensorFlow 2.21 (typing-extensions
4.5, tensorflow-probability ~0.23, which does not import with TF 2.21) although it works with the
versions tfprune requires, so it is installed apart, without its declared dependencies:

    pip install --no-deps tf-agents==0.19.0

Only the pruning agent (`JointPruner.policy = "agent"`, the default) needs it; gating, budgets, surgery,
export and the baseline policies do not. `install_hook()` (run by `import tfprune`) makes any import of
`tf_agents` that finds no installed copy raise `MissingAgentStack` with that line, wherever the import
is; the command line checks before training starts (`require()`).

The agent's networks also need `tf.keras` to be tf_keras, which TensorFlow decides when it is first
imported (`TF_USE_LEGACY_KERAS`, set by `import tfprune`). A program that imported Keras or TensorFlow
before tfprune gets `ImportOrderError` naming the fix when it first uses the agent, instead of a
TF-Agents failure deep inside network building; the rest of tfprune does not care about the order.
"""

import importlib.abc
import importlib.util
import sys

from tfprune.errors import TfpruneError

INSTALL_LINE = "pip install --no-deps tf-agents==0.19.0"
MESSAGE = (f"The pruning agent needs TF-Agents, which is not installed (pip cannot install it together with "
           f"tfprune's requirements: its declared pins conflict with TensorFlow 2.21, though it works with it). "
           f"Install it with:\n    {INSTALL_LINE}\n"
           "or run a baseline policy without it (JointPruner.policy = \"uniform\", \"global_magnitude\" or \"random\").")


ORDER_MESSAGE = ("TensorFlow was imported before tfprune (e.g. `import keras` first), so TF-Agents cannot build "
                 "the pruning agent's networks (they need tf.keras to be tf_keras, which TensorFlow decides when "
                 "it is first imported). Put `import tfprune` before `import keras` / `import tensorflow`, or set "
                 "TF_USE_LEGACY_KERAS=1 in the environment before Python starts. Gating, budgets, surgery, "
                 "export and the baseline policies work in either order.")
_import_order = {"tensorflow_came_first": False}  # what `import tfprune` found (`install_hook`)


class MissingAgentStack(TfpruneError, ModuleNotFoundError):
    """TF-Agents is not installed; the message holds the exact install line."""


class ImportOrderError(TfpruneError, RuntimeError):
    """TensorFlow was imported before tfprune without TF_USE_LEGACY_KERAS: the agent cannot be built."""


class _MissingTfAgents(importlib.abc.MetaPathFinder):
    """Last on sys.meta_path: reached only when no installed `tf_agents` was found."""

    def find_spec(self, name, path=None, target=None):
        if name == "tf_agents":
            raise MissingAgentStack(MESSAGE, name=name)
        return None


def install_hook(tensorflow_came_first=False):
    """Makes a failed `import tf_agents` say how to install it (idempotent), and records whether
    TensorFlow was imported before tfprune could set TF_USE_LEGACY_KERAS (`check_import_order`)."""
    _import_order["tensorflow_came_first"] = bool(tensorflow_came_first)
    if not any(isinstance(finder, _MissingTfAgents) for finder in sys.meta_path):
        sys.meta_path.append(_MissingTfAgents())


def available():
    """True when TF-Agents is installed."""
    try:
        return importlib.util.find_spec("tf_agents") is not None
    except MissingAgentStack:
        return False


def check_import_order():
    """Raises `ImportOrderError` (with the fix) when TensorFlow came before tfprune."""
    if _import_order["tensorflow_came_first"]:
        raise ImportOrderError(ORDER_MESSAGE)


def require():
    """Raises `MissingAgentStack` (with the install line) unless TF-Agents is installed, and
    `ImportOrderError` when the import order keeps it from working."""
    if not available():
        raise MissingAgentStack(MESSAGE, name="tf_agents")
    check_import_order()
