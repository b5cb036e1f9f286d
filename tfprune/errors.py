"""`TfpruneError`: the one base of every error that is the user's to fix.

The command lines catch this base alone and print the message as one line (exit status 2) instead of a
traceback from deep inside TensorFlow; library users can catch it the same way. Each subclass also keeps
the built-in base it had before (`ValueError`, `RuntimeError`, ...) so existing `except` clauses still
match.
"""


class TfpruneError(Exception):
    """A problem with the user's input, configuration or run, with a message that names the fix."""


class TrainingError(TfpruneError, RuntimeError):
    """Training cannot continue (non-finite loss, mismatched checkpoint, ...): the message says why."""
