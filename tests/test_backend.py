"""A Keras backend other than TensorFlow is one clear line on the command line, a BackendError in Python."""

import json
import os
import subprocess
import sys

import pytest

from tfprune.infra.backend import BackendError, keras_backend, require_tensorflow_backend

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_backend_is_read_from_env_then_keras_json_then_default(tmp_path):
    home = str(tmp_path)
    assert keras_backend({"KERAS_HOME": home}) == ("tensorflow", "Keras's default")
    with open(tmp_path / "keras.json", "w") as f:
        json.dump({"backend": "torch"}, f)
    assert keras_backend({"KERAS_HOME": home})[0] == "torch"
    assert keras_backend({"KERAS_HOME": home, "KERAS_BACKEND": "tensorflow"})[0] == "tensorflow"
    with pytest.raises(BackendError, match=r"'torch' \(set by .*keras.json\).*KERAS_BACKEND=tensorflow"):
        require_tensorflow_backend({"KERAS_HOME": home})


def test_command_line_with_jax_backend_prints_one_line():
    result = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "train.py"), "--config", "smoke.gin"],
                            capture_output=True, text=True, timeout=120, env=dict(os.environ, KERAS_BACKEND="jax"))
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        "error: tfprune needs Keras's TensorFlow backend, but the backend is 'jax' (set by the KERAS_BACKEND "
        "environment variable). Run with KERAS_BACKEND=tensorflow (or unset it, and fix keras.json's \"backend\")."
    ]


def test_library_import_with_jax_backend_raises_backend_error():
    code = "import tfprune"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT,
                            env=dict(os.environ, KERAS_BACKEND="jax", PYTHONPATH=ROOT))
    assert result.returncode == 1
    assert "tfprune.infra.backend.BackendError: tfprune needs Keras's TensorFlow backend" in result.stderr
