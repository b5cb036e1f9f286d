"""What a sub-network costs: FLOPs/params, latency tables and calibration, budgets and the channel grid.

Nothing is imported here: import the modules (`from tfprune.cost.x import y`), so that
importing one part never loads TensorFlow before `tfprune.infra.quiet` has set it up."""
