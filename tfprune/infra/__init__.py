"""Run infrastructure: workdir files, lock, safe writes, determinism, quiet start, environment.

Nothing is imported here: import the modules (`from tfprune.infra.x import y`), so that
importing one part never loads TensorFlow before `tfprune.infra.quiet` has set it up."""
