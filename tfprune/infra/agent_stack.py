"""TF-Agents, the one dependency that `pip install tfprune` cannot bring: a missing copy is a clear error.

tf-agents 0.19 (its last release) declares pins that conflict with TensorFlow 2.21 (typing-extensions
4.5, tensorflow-probability ~0.23, which does not import with TF 2.21) although it works with the
versions tfprune requires, so it is installed apart, without its declared dependencies:

    pip install --no-deps tf-agents==0.19.0

Only the pruning agent (`JointPruner.policy = "agent"`, the default) needs it; gating, budgets, surgery,
export and the baseline policies do not. `install_hook()` (run by `import tfprune`) makes any import of
`tf_agents` that finds no installed copy raise `MissingAgentStack` with that line, wherever the import
is; the command line checks before training starts (`require()`).
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


class MissingAgentStack(TfpruneError, ModuleNotFoundError):
    """TF-Agents is not installed; the message holds the exact install line."""


class _MissingTfAgents(importlib.abc.MetaPathFinder):
    """Last on sys.meta_path: reached only when no installed `tf_agents` was found."""

    def find_spec(self, name, path=None, target=None):
        if name == "tf_agents":
            raise MissingAgentStack(MESSAGE, name=name)
        return None


def install_hook():
    """Makes a failed `import tf_agents` say how to install it (idempotent)."""
    if not any(isinstance(finder, _MissingTfAgents) for finder in sys.meta_path):
        sys.meta_path.append(_MissingTfAgents())


def available():
    """True when TF-Agents is installed."""
    try:
        return importlib.util.find_spec("tf_agents") is not None
    except MissingAgentStack:
        return False


def require():
    """Raises `MissingAgentStack` (with the install line) unless TF-Agents is installed."""
    if not available():
        raise MissingAgentStack(MESSAGE, name="tf_agents")
