"""The joint schedule of a run: phases, the weight trainer, the run log, progress bars and plots.

Nothing is imported here: import the modules (`from tfprune.training.x import y`), so that
importing one part never loads TensorFlow before `tfprune.infra.quiet` has set it up."""
