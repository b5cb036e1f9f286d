"""The method: `JointPruner` (composes structure, cost and search), alignment and the Keras callback.

Nothing is imported here: import the modules (`from tfprune.pruning.x import y`), so that
importing one part never loads TensorFlow before `tfprune.infra.quiet` has set it up."""
