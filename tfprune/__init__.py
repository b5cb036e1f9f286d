"""tfprune: jointly train and prune CNNs with an RL agent (Keras 3 / TensorFlow)."""

import os
import sys

# tf-agents builds its networks with `tf.keras`; with TF 2.21 that must be tf_keras (Keras 2). This has
# to be set before TensorFlow is first imported. The CNNs themselves are Keras 3 (`import keras`).
# Where TensorFlow came first (`import keras` before `import tfprune`), it is too late: the agent then
# says so when it is used (`agent_stack.check_import_order`); everything else works either way.
_TENSORFLOW_CAME_FIRST = "tensorflow" in sys.modules and "TF_USE_LEGACY_KERAS" not in os.environ
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

__version__ = "0.1.0"

from tfprune.infra import backend, quiet  # noqa: E402

try:
    backend.require_tensorflow_backend()
except backend.BackendError as error:
    if not quiet.is_command_line():
        raise
    print(f"error: {error}", file=sys.stderr)  # a command line says it in one line, no traceback
    raise SystemExit(2) from None
quiet.startup()  # loads TensorFlow without its start-up noise (tfprune.infra.quiet says what and how to see it)

from tfprune.infra import agent_stack  # noqa: E402

agent_stack.install_hook(tensorflow_came_first=_TENSORFLOW_CAME_FIRST)  # a missing TF-Agents names its
# install line (it is installed apart, --no-deps), a wrong import order its fix

from tfprune.structure.auto_gate import auto_gate  # noqa: E402
from tfprune.cost.budget import BudgetCost, BudgetError, FlopsBudget, project_to_budget  # noqa: E402
from tfprune.pruning.callback import PruningCallback  # noqa: E402
from tfprune.errors import TfpruneError  # noqa: E402
from tfprune.cost.flops import Cost, CostModel  # noqa: E402
from tfprune.structure.gates import ChannelGate  # noqa: E402
from tfprune.structure.importance import BNScaleImportance, GateScoreImportance, Importance, L1Importance  # noqa: E402
from tfprune.structure.graph import ChannelGraph, GraphError  # noqa: E402
from tfprune.cost.latency import LatencyModel  # noqa: E402
from tfprune.structure.masks import MaskError, apply_masks, load_masks, read_masks, save_masks  # noqa: E402
from tfprune.models import MODEL_NAMES, build_model  # noqa: E402
from tfprune.cost.plan import PruningPlan, inspect  # noqa: E402
from tfprune.pruning.pruner import JointPruner  # noqa: E402
from tfprune.pruning.prune import PruneResult, prune  # noqa: E402  (the one call)
from tfprune.search.policy import Policy  # noqa: E402  (TF-Agents itself loads on the agent's first use)
from tfprune.structure.surgery import compact_model  # noqa: E402

__all__ = [
    "BNScaleImportance",
    "BudgetCost",
    "BudgetError",
    "ChannelGate",
    "ChannelGraph",
    "Cost",
    "CostModel",
    "FlopsBudget",
    "GateScoreImportance",
    "GraphError",
    "Importance",
    "JointPruner",
    "L1Importance",
    "LatencyModel",
    "MODEL_NAMES",
    "MaskError",
    "Policy",
    "PruneResult",
    "PruningPlan",
    "PruningCallback",
    "apply_masks",
    "auto_gate",
    "build_model",
    "compact_model",
    "inspect",
    "load_masks",
    "project_to_budget",
    "prune",
    "read_masks",
    "save_masks",
    "TfpruneError",
]
