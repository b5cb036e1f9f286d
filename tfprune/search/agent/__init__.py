"""The RL side of joint training and pruning: the PPO agent and the dynamics (reward) model.

`DynamicsModel` (Keras 3) learns a representation of each training epoch that explains how the
reward of an action drifts as the CNN trains; `PruningAgent` (TF-Agents PPO, tf_keras) proposes
per-group pruning ratios from that representation. They exchange numpy arrays only.
"""

from tfprune.infra import agent_stack

agent_stack.check_import_order()  # before TF-Agents builds anything with the wrong tf.keras

from tfprune.search.agent.dynamics import DynamicsModel  # noqa: E402
from tfprune.search.agent.episodic import EpisodicAgent  # noqa: E402
from tfprune.search.agent.ppo import PruningAgent  # noqa: E402

__all__ = ["DynamicsModel", "EpisodicAgent", "PruningAgent"]
