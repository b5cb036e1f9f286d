"""What can be pruned: the Keras-graph adapter, layer rules, channel groups, gates, masks and surgery.

Nothing is imported here: import the modules (`from tfprune.structure.x import y`), so that
importing one part never loads TensorFlow before `tfprune.infra.quiet` has set it up."""
