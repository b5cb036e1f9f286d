"""Benchmarks and comparison studies. Nothing in the library imports them (tests/test_architecture.py);
the command line dispatches `tfprune bench|compare|chaos|export-study` to them.

Nothing is imported here: import the modules (`from tfprune.studies.x import y`), so that
importing one part never loads TensorFlow before `tfprune.infra.quiet` has set it up."""
