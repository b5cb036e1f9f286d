"""Which sub-network: policies, the layer-wise episodes, scoring, the alignment target, the agent.

Nothing is imported here: import the modules (`from tfprune.search.x import y`), so that
importing one part never loads TensorFlow before `tfprune.infra.quiet` has set it up."""
