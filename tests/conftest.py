import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

BACKEND = keras.backend.backend()


def to_numpy(x):
    """Backend tensor (gradients or not) -> float64 NumPy array."""
    return np.asarray(keras.ops.convert_to_numpy(x), dtype=np.float64)


@pytest.fixture(autouse=True)
def _seed_and_reset():
    keras.utils.set_random_seed(1234)
    floatx, policy = keras.config.floatx(), keras.config.dtype_policy()
    yield
    keras.config.set_floatx(floatx)
    keras.config.set_dtype_policy(policy)
    keras.backend.clear_session()


@pytest.fixture
def float64():
    """Run a test with floatx float64 (skipped on JAX unless x64 is enabled)."""
    if BACKEND == "jax":
        import jax

        if not jax.config.jax_enable_x64:
            pytest.skip("JAX runs with float64 disabled (jax_enable_x64=False)")
    keras.config.set_floatx("float64")
    yield
