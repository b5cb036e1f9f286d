"""Benchmarks and comparison studies. Nothing in the library imports them (tests/test_architecture.py);
the command line (`tfprune.cli.commands`, the one importer) dispatches `tfprune bench|compare|chaos|export`
to them; `runs.py` is how a study starts a training run.

Nothing is imported here: import the modules (`from tfprune.studies.x import y`), so that
importing one part never loads TensorFlow before `tfprune.infra.quiet` has set it up."""
