"""The `tfprune` command line: subcommands, config lookup, run header.

Nothing is imported here: import the modules (`from tfprune.cli.x import y`), so that
importing one part never loads TensorFlow before `tfprune.infra.quiet` has set it up."""
