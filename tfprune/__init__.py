"""tfprune: jointly train and prune CNNs with an RL agent (Keras 3 / TensorFlow)."""

import os

# tf-agents builds its networks with `tf.keras`; with TF 2.21 that must be tf_keras (Keras 2). This has
# to be set before TensorFlow is first imported. The CNNs themselves are Keras 3 (`import keras`).
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"
