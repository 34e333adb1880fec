import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

BACKEND = keras.backend.backend()

try:
    from hypothesis import HealthCheck, settings
except ImportError:  # the property tests skip themselves without hypothesis
    settings = None
if settings is not None:
    # "ci" (the default): the same examples in every run (derandomized, no example
    # database), few enough for about a minute per backend. "dev": a wider search;
    # choose it with HYPOTHESIS_PROFILE=dev.
    settings.register_profile(
        "ci", max_examples=12, derandomize=True, database=None, deadline=None,
        print_blob=True, suppress_health_check=[HealthCheck.too_slow,
                                                HealthCheck.data_too_large])
    settings.register_profile("dev", max_examples=200, deadline=None,
                              suppress_health_check=[HealthCheck.too_slow])
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def to_numpy(x):
    """Backend tensor (gradients or not) -> float64 NumPy array."""
    return np.asarray(keras.ops.convert_to_numpy(x), dtype=np.float64)


@pytest.fixture(autouse=True)
def _seed_and_reset():
    keras.utils.set_random_seed(1234)
    yield
    # Reset without reading the global dtype policy first: reading it pins it.
    keras.config.set_floatx("float32")
    keras.config.set_dtype_policy("float32")


@pytest.fixture
def float64():
    """floatx and dtype policy float64 (and JAX's x64 mode), restored afterwards."""
    jax_x64 = None
    if BACKEND == "jax":
        import jax

        jax_x64 = jax.config.jax_enable_x64
        jax.config.update("jax_enable_x64", True)
    keras.config.set_floatx("float64")
    keras.config.set_dtype_policy("float64")
    yield
    if jax_x64 is not None:
        import jax

        jax.config.update("jax_enable_x64", jax_x64)


def gradient_of(fn, x):
    """`d fn(x) / dx` for a scalar-valued `fn` of one tensor; NumPy in and out."""
    if BACKEND == "jax":
        import jax

        return to_numpy(jax.grad(fn)(jax.numpy.asarray(x)))
    if BACKEND == "tensorflow":
        import tensorflow as tf

        leaf = tf.constant(x)
        with tf.GradientTape() as tape:
            tape.watch(leaf)
            out = fn(leaf)
        return to_numpy(tape.gradient(out, leaf))
    import torch

    leaf = torch.tensor(x, requires_grad=True)
    fn(leaf).backward()
    return to_numpy(leaf.grad)
