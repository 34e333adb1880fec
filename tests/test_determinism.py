"""Determinism: a seed gives the same weights everywhere; fit_lbfgs repeats itself."""

import warnings

import keras
import numpy as np
import pytest
from conftest import BACKEND, to_numpy

from keras_kan import KAN, KANDense, fit_lbfgs

# KAN([2, 2, 1], grid_size=3, seed=7): committed float32 values (any backend, any run).
BASE_KERNEL_0 = [0.31166499853134155, -0.6037957668304443, 0.664566695690155,
                 -0.5546736121177673]
SPLINE_KERNEL_0 = [0.00701792910695076, 0.014266029000282288, -0.043128520250320435,
                   -0.0020950050093233585, -0.02930176816880703, -0.008594516664743423]
BASE_KERNEL_1 = [0.37515366077423096, -0.5469887256622314]


def test_seed_gives_the_committed_initial_weights():
    first, second = KAN([2, 2, 1], grid_size=3, seed=7).layers
    np.testing.assert_array_equal(to_numpy(first.base_kernel).ravel(),
                                  np.float32(BASE_KERNEL_0))
    np.testing.assert_array_equal(to_numpy(first.spline_kernel)[0, :, 0],
                                  np.float32(SPLINE_KERNEL_0))
    np.testing.assert_array_equal(to_numpy(second.base_kernel).ravel(),
                                  np.float32(BASE_KERNEL_1))


@pytest.mark.skipif(BACKEND != "torch", reason="the draws are NumPy's on every backend "
                    "(keras_kan.rng); importing torch costs the others 2-5 s: run once, "
                    "under PyTorch")
def test_seed_draws_from_torch_cpu_stream():
    """The base scales are `(2 * torch.rand - 1) / sqrt(n)` after the noise draws,
    checked against PyTorch's own generator (installed with the torch extra)."""
    torch = pytest.importorskip("torch")
    torch.manual_seed(7)
    torch.rand(3 + 1, 2, 2)  # the spline noise comes first
    expected = (torch.rand(2, 2).double().numpy() * 2 - 1) / np.sqrt(2)
    layer = KANDense(2, grid_size=3, seed=7)
    layer.build((None, 2))
    np.testing.assert_allclose(to_numpy(layer.base_kernel), expected, rtol=1e-6)


def test_same_seed_same_weights_in_repeated_runs():
    a = KAN([3, 4, 2], grid_size=5, seed=123)
    keras.utils.set_random_seed(99)  # the global state does not matter with a seed
    b = KAN([3, 4, 2], grid_size=5, seed=123)
    for x, y in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(x, y)
    c = KAN([3, 4, 2], grid_size=5, seed=124)
    assert not np.array_equal(a.layers[0].base_kernel, c.layers[0].base_kernel)


def test_seed_none_follows_keras_global_seed():
    keras.utils.set_random_seed(5)
    a = KANDense(2)
    a.build((None, 2))
    keras.utils.set_random_seed(5)
    b = KANDense(2)
    b.build((None, 2))
    np.testing.assert_array_equal(to_numpy(a.spline_kernel), to_numpy(b.spline_kernel))


def _trajectory():
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (64, 2)).astype("float32")
    y = (np.sin(np.pi * x[:, :1]) + x[:, 1:] ** 2).astype("float32")
    model = KAN([2, 3, 1], grid_size=5, seed=0)
    model.compile(loss="mse")
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        history = fit_lbfgs(model, x, y, steps=4, max_iter=5, update_grid=True,
                            grid_update_num=2, stop_grid_update_step=4, verbose=0)
    return history.history["loss"], model.get_weights()


@pytest.mark.slow
def test_fit_lbfgs_trajectory_repeats_on_this_backend():
    losses_a, weights_a = _trajectory()
    losses_b, weights_b = _trajectory()
    assert losses_a == losses_b  # bit for bit, step by step
    assert losses_a[-1] < losses_a[0]
    for a, b in zip(weights_a, weights_b):
        np.testing.assert_array_equal(a, b)
