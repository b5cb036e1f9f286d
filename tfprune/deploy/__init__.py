"""From a compact Keras model to a shipped one: SavedModel/TFLite conversion, verification, timing.

Nothing is imported here: import the modules (`from tfprune.deploy.x import y`), so that
importing one part never loads TensorFlow before `tfprune.infra.quiet` has set it up."""
