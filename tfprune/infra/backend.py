"""tfprune runs on Keras 3's TensorFlow backend only: a different backend is one clear error.

Gates, surgery, the training loop, checkpoints, TF-Agents and TFLite export are all TensorFlow code, so
with `KERAS_BACKEND=jax` (or a `"backend"` in keras.json) Keras would build models tfprune cannot train
or export, and the failure would come as a long traceback from deep inside Keras or tf.data. The check
runs when `tfprune` is imported, before Keras is, reading the backend the way Keras does: the
`KERAS_BACKEND` variable, else `$KERAS_HOME/keras.json` (default `~/.keras/keras.json`), else TensorFlow.
"""

import json
import os

from tfprune.errors import TfpruneError


class BackendError(TfpruneError, ImportError):
    """Keras is set to a backend other than TensorFlow."""


def keras_backend(environ=None):
    """(backend name, where it was set) as Keras will read it at import."""
    environ = os.environ if environ is None else environ
    if environ.get("KERAS_BACKEND"):
        return environ["KERAS_BACKEND"], "the KERAS_BACKEND environment variable"
    path = os.path.join(environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras"), "keras.json")
    try:
        with open(path) as f:
            backend = json.load(f).get("backend")
    except (OSError, ValueError, AttributeError):  # no file, or not a JSON object: Keras uses its default
        backend = None
    if backend:
        return backend, path
    return "tensorflow", "Keras's default"


def require_tensorflow_backend(environ=None):
    """Raises `BackendError`, naming the setting and the fix, unless Keras will use TensorFlow."""
    backend, source = keras_backend(environ)
    if backend != "tensorflow":
        raise BackendError(
            f"tfprune needs Keras's TensorFlow backend, but the backend is {backend!r} (set by {source}). "
            "Run with KERAS_BACKEND=tensorflow (or unset it, and fix keras.json's \"backend\")."
        )
