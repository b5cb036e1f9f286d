"""The RL side of joint training and pruning: the PPO agent and the dynamics (reward) model.

`DynamicsModel` (Keras 3) learns a representation of each training epoch that explains how the
reward of an action drifts as the CNN trains; `PruningAgent` (TF-Agents PPO, tf_keras) proposes
per-group pruning ratios from that representation. They exchange numpy arrays only.
"""

from tfprune.search.agent.dynamics import DynamicsModel
from tfprune.search.agent.episodic import EpisodicAgent
from tfprune.search.agent.ppo import PruningAgent

__all__ = ["DynamicsModel", "EpisodicAgent", "PruningAgent"]
