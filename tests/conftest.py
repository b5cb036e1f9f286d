"""Shared test set-up: import tfprune first so TF_USE_LEGACY_KERAS is set before TensorFlow loads."""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import tfprune  # noqa: E402,F401


@pytest.fixture(autouse=True)
def _seed():
    import keras

    keras.utils.set_random_seed(0)
    np.random.seed(0)
    yield


@pytest.fixture
def clean_gin():
    """An empty gin configuration before and after the test (test files whose tests bind gin parameters
    use it for every test: ``pytestmark = pytest.mark.usefixtures("clean_gin")``)."""
    import gin

    gin.clear_config()
    yield
    gin.clear_config()
