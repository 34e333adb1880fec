"""keras_kan.autodiff: input derivatives against closed forms, SciPy splines and finite
differences; inside compiled functions; differentiable with respect to the weights."""

import keras
import numpy as np
import pytest
from conftest import BACKEND, to_numpy
from keras import ops
from scipy.interpolate import BSpline

import keras_kan
from keras_kan import KAN, KANDense, autodiff
from keras_kan import backend as kan_backend
from keras_kan.symbolic import fix_symbolic


def _points(n=2, rows=12, seed=0, low=-0.9, high=0.9):
    return np.random.default_rng(seed).uniform(low, high, (rows, n))


@pytest.mark.slow
def test_closed_form():
    def fn(x):  # u = x0^3 + sin(x1) x0
        return ops.expand_dims(x[:, 0] ** 3 + ops.sin(x[:, 1]) * x[:, 0], -1)

    x = _points().astype("float32")
    g, h = autodiff.derivatives(fn, x)
    x0, x1 = x[:, 0].astype(np.float64), x[:, 1].astype(np.float64)
    np.testing.assert_allclose(to_numpy(g), np.stack([3 * x0**2 + np.sin(x1),
                                                      np.cos(x1) * x0], 1), atol=1e-5)
    np.testing.assert_allclose(to_numpy(h), np.stack([6 * x0, -np.sin(x1) * x0], 1), atol=1e-5)
    np.testing.assert_allclose(to_numpy(autodiff.laplacian(fn, x))[:, 0],
                               6 * x0 - np.sin(x1) * x0, atol=1e-5)
    np.testing.assert_allclose(to_numpy(autodiff.gradient(fn, x)), to_numpy(g), atol=0)
    assert tuple(autodiff.hessian_diagonal(fn, x).shape) == (12, 2)


def _layer_reference(layer, x):
    """`(phi, phi'')` of a one-input one-unit layer with SciPy's BSpline, float64."""
    knots = to_numpy(layer.grid)[0]
    c = to_numpy(layer.spline_kernel)[0, :, 0] * to_numpy(layer.spline_scale)[0, 0]
    wb = to_numpy(layer.base_kernel)[0, 0]
    spline = BSpline(knots, c, layer.spline_order, extrapolate=False)
    s = 1 / (1 + np.exp(-x))
    silu2 = s * (1 - s) * (2 + x * (1 - 2 * s))
    first = spline.derivative(1)(x) + wb * (s + x * s * (1 - s))
    return first, spline.derivative(2)(x) + wb * silu2


@pytest.mark.parametrize("adapted", [False, True], ids=["uniform", "updated_grid"])
@pytest.mark.slow
def test_layer_second_derivative_matches_scipy(adapted):
    """The layer's own basis (PyTorch: its custom autograd node, twice) against SciPy."""
    layer = KANDense(1, grid_size=6, seed=3)
    model = keras.Sequential([keras.Input((1,)), layer])
    x = np.linspace(-0.97, 0.97, 41)[:, None]
    if adapted:  # data-adapted, non-uniform knots
        samples = np.random.default_rng(1).beta(2, 5, (200, 1)) * 2 - 1
        keras_kan.update_grids(model, samples)
        assert not layer.uniform_grid
        x = np.linspace(samples.min() + 1e-3, samples.max() - 1e-3, 41)[:, None]
    g, h = _derivatives(model, x.astype("float32"))
    g_ref, h_ref = _layer_reference(layer, x[:, 0])
    np.testing.assert_allclose(to_numpy(g)[:, 0], g_ref, atol=2e-4)
    np.testing.assert_allclose(to_numpy(h)[:, 0], h_ref, atol=2e-3 * max(1, np.abs(h_ref).max()))


def _derivatives(model, x):
    """`autodiff.derivatives`; on JAX under `jax.jit` (eager JAX dispatches every op)."""
    if BACKEND == "jax":
        if getattr(model, "_test_derivatives", None) is None:  # one trace per model
            object.__setattr__(model, "_test_derivatives",
                               _compiled(lambda z: autodiff.derivatives(model, z)))
        return model._test_derivatives(ops.convert_to_tensor(x))
    return autodiff.derivatives(model, x)


def _finite_differences(model, x, eps=1e-3):
    """Central differences: of the model for the gradient, of the (analytic) gradient for
    the Hessian diagonal. Steps of 1e-3 / 1e-4: the float64 forward pass of some backends
    carries ~1e-9 of rounding noise, which smaller steps of the model itself would amplify."""
    eye = np.eye(x.shape[1])

    def f(z):
        return to_numpy(model(z))[:, 0]

    g = np.stack([(f(x + eps * e) - f(x - eps * e)) / (2 * eps) for e in eye], 1)
    step = eps
    h = np.stack([(to_numpy(_derivatives(model, x + step * e)[0])[:, i]
                   - to_numpy(_derivatives(model, x - step * e)[0])[:, i]) / (2 * step)
                  for i, e in enumerate(eye)], 1)
    return g, h


@pytest.mark.parametrize("case", ["uniform", pytest.param("updated_grid", marks=pytest.mark.slow),
                                  pytest.param("symbolic", marks=pytest.mark.slow)])
def test_model_matches_finite_differences(case, float64):
    model = KAN([2, 3, 1], grid_size=5, seed=0)
    x = _points(rows=10, seed=2)
    if case == "updated_grid":
        keras_kan.update_grids(model, _points(rows=300, seed=5) * 0.8)
    if case == "symbolic":
        fix_symbolic(model, 0, 0, 1, "sin", fit_params=False, params=(2.0, 0.3, 0.7, 0.1),
                     verbose=False)
    g, h = _derivatives(model, x)
    g_fd, h_fd = _finite_differences(model, x)
    np.testing.assert_allclose(to_numpy(g), g_fd, atol=1e-5)
    np.testing.assert_allclose(to_numpy(h), h_fd, atol=1e-5)


def _compiled(fn):
    if BACKEND == "jax":
        import jax

        return jax.jit(fn)
    if BACKEND == "tensorflow":
        import tensorflow as tf

        return tf.function(fn)
    return fn  # eager PyTorch; its compiled use is the training step below


@pytest.mark.slow
def test_inside_a_compiled_function():
    model = KAN([2, 2, 1], grid_size=5, seed=1)
    x = ops.convert_to_tensor(_points().astype("float32"))
    eager = to_numpy(autodiff.laplacian(model, x))
    compiled = to_numpy(_compiled(lambda z: autodiff.laplacian(model, z))(x))
    np.testing.assert_allclose(compiled, eager, rtol=1e-5, atol=1e-5)


@pytest.mark.slow
def test_differentiable_with_respect_to_the_weights(float64):
    """The compiled objective's weight gradient of a Laplacian loss against a central
    difference along a random direction."""
    model = KAN([2, 2, 1], grid_size=4, seed=2)
    x = ops.convert_to_tensor(_points(rows=16))

    def objective(m):
        return ops.mean((autodiff.laplacian(m, x) + 1.0) ** 2) + ops.mean(
            autodiff.gradient(m, x) ** 2)

    f = kan_backend.objective_value_and_grad_fn(model, objective)
    weights = [to_numpy(v) for v in model.trainable_variables]
    value, grad = f.at(weights, None, None)
    rng = np.random.default_rng(0)
    direction = [rng.normal(size=w.shape) for w in weights]
    eps = 1e-3  # see _finite_differences
    plus, _ = f.at([w + eps * d for w, d in zip(weights, direction)], None, None)
    minus, _ = f.at([w - eps * d for w, d in zip(weights, direction)], None, None)
    expected = (plus - minus) / (2 * eps)
    got = float(grad @ np.concatenate([d.ravel() for d in direction]))
    assert np.isfinite(value)
    np.testing.assert_allclose(got, expected, rtol=1e-4)


@pytest.mark.slow
def test_bad_arguments():
    model = KAN([2, 2, 3], grid_size=3, seed=0)
    x = _points().astype("float32")
    with pytest.raises(ValueError, match="one value per row"):
        autodiff.laplacian(model, x)
    with pytest.raises(ValueError, match=r"\(batch, features\)"):
        autodiff.gradient(lambda z: z[..., :1], np.zeros((2, 3, 2), "float32"))
    with pytest.raises(TypeError, match="callable"):
        autodiff.gradient(3, x)
    g = autodiff.gradient(lambda z: model(z)[:, 1:2], x)
    assert tuple(g.shape) == (12, 2)
