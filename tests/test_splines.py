"""The B-spline basis and least-squares fits against scipy and closed forms."""

import keras
import numpy as np
import pytest
import reference
from conftest import BACKEND, gradient_of, to_numpy
from scipy.interpolate import BSpline

from keras_kan import splines


def random_knots(rng, n, length, spread=2.0):
    gaps = rng.uniform(0.05, 1.0, size=(n, length - 1))
    knots = np.concatenate([np.zeros((n, 1)), np.cumsum(gaps, axis=1)], axis=1)
    return knots / knots[:, -1:] * 2 * spread - spread


@pytest.mark.parametrize("k", [0, 1, 2, 3, 5])
@pytest.mark.parametrize("uniform", [True, False])
def test_basis_matches_scipy_float64(k, uniform):
    rng = np.random.default_rng(k)
    g, n = 7, 3
    if uniform:
        knots = splines.uniform_knots((-1, 1), g, k, n_features=n)
    else:
        knots = random_knots(rng, n, g + 2 * k + 1)
    x = rng.uniform(knots[:, 0].min() - 0.5, knots[:, -1].max() + 0.5, size=(400, n))
    expected = reference.basis(x, knots, k)
    got = splines.bspline_basis_numpy(x, knots, k)
    assert got.shape == (400, n, g + k)
    np.testing.assert_allclose(got, expected, atol=1e-10, rtol=0)


@pytest.mark.parametrize("k", [1, 3])
@pytest.mark.slow
def test_backend_basis_matches_scipy(k):
    rng = np.random.default_rng(0)
    knots = random_knots(rng, 4, 6 + 2 * k + 1)
    x = rng.uniform(-2.5, 2.5, size=(300, 4))
    expected = reference.basis(x, knots, k)
    got = to_numpy(splines.bspline_basis(keras.ops.convert_to_tensor(x, "float32"),
                                         keras.ops.convert_to_tensor(knots, "float32"), k))
    np.testing.assert_allclose(got, expected, atol=2e-6, rtol=0)


@pytest.mark.parametrize("k", [1, 3])
@pytest.mark.slow
def test_backend_basis_float64_matches_scipy(float64, k):
    rng = np.random.default_rng(1)
    knots = random_knots(rng, 2, 5 + 2 * k + 1)
    x = rng.uniform(-2.5, 2.5, size=(300, 2))
    got = to_numpy(splines.bspline_basis(keras.ops.convert_to_tensor(x, "float64"),
                                         keras.ops.convert_to_tensor(knots, "float64"), k))
    np.testing.assert_allclose(got, reference.basis(x, knots, k), atol=1e-10, rtol=0)


@pytest.mark.slow
def test_partition_of_unity_inside_grid_and_zero_outside():
    k, g = 3, 5
    knots = splines.uniform_knots((-1, 1), g, k, n_features=2)
    inside = np.linspace(-1, 1 - 1e-9, 101)[:, None].repeat(2, axis=1)
    basis = to_numpy(splines.bspline_basis(keras.ops.convert_to_tensor(inside, "float32"),
                                           keras.ops.convert_to_tensor(knots, "float32"), k))
    np.testing.assert_allclose(basis.sum(-1), 1.0, atol=1e-6)
    assert basis.min() >= 0
    outside = np.array([[-2.3, 2.3], [2.2001, -2.21], [100.0, -100.0]])
    basis = splines.bspline_basis_numpy(outside, knots, k)
    assert np.all(basis == 0)


@pytest.mark.slow
def test_repeated_knots_give_no_nan():
    k = 3
    knots = np.array([[-1, -1, -1, -1, 0, 0, 0.5, 1, 1, 1, 1, 1.0]])
    x = np.linspace(-1.5, 1.5, 61)[:, None]
    for basis in (splines.bspline_basis_numpy(x, knots, k),
                  to_numpy(splines.bspline_basis(keras.ops.convert_to_tensor(x, "float32"),
                                                 keras.ops.convert_to_tensor(knots, "float32"),
                                                 k))):
        assert np.all(np.isfinite(basis))
        np.testing.assert_allclose(basis, reference.basis(x, knots, k), atol=1e-6)


@pytest.mark.slow
def test_backend_basis_has_finite_gradients_with_repeated_knots():
    knots = keras.ops.convert_to_tensor(np.array([[-1, 0, 0, 0, 0.5, 1, 1.5]]), "float32")
    x = keras.Variable(np.linspace(-1.2, 1.6, 29)[:, None], dtype="float32")
    if BACKEND == "jax":
        import jax

        grad = jax.grad(lambda v: splines.bspline_basis(v, knots, 2).sum())(x.value)
    elif BACKEND == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            total = keras.ops.sum(splines.bspline_basis(x.value, knots, 2) ** 2)
        grad = tape.gradient(total, x.value)
    else:

        leaf = x.value.detach().clone().requires_grad_(True)
        (splines.bspline_basis(leaf, knots, 2) ** 2).sum().backward()
        grad = leaf.grad
    assert np.all(np.isfinite(to_numpy(grad)))


def test_uniform_knots_layout():
    knots = splines.uniform_knots((0, 1), 4, 2)
    np.testing.assert_allclose(knots, np.arange(-2, 7) / 4)
    ext = splines.extend_knots(np.array([[0.0, 0.1, 0.2, 1.0]]), 2)
    h = 1.0 / 3
    np.testing.assert_allclose(ext, [[-2 * h, -h, 0, 0.1, 0.2, 1.0, 1 + h, 1 + 2 * h]])


def test_fit_coefficients_recovers_spline_exactly():
    rng = np.random.default_rng(3)
    k, g, n, m = 3, 6, 3, 2
    knots = random_knots(rng, n, g + 2 * k + 1)
    coef = rng.normal(size=(n, g + k, m))
    lo, hi = knots[:, k].max(), knots[:, g + k].min()
    x = rng.uniform(lo, hi, size=(200, n))
    y = splines.spline_values_numpy(x, knots, coef, k)
    fitted = splines.fit_coefficients(x, y, knots, k, ridge=1e-12)
    np.testing.assert_allclose(splines.spline_values_numpy(x, knots, fitted, k), y, atol=1e-8)


def test_fit_coefficients_equals_scipy_least_squares_spline():
    """The batched ridge-free normal equations give scipy's `make_lsq_spline` coefficients."""
    from scipy.interpolate import make_lsq_spline

    rng = np.random.default_rng(7)
    k, g = 3, 7
    knots = random_knots(rng, 2, g + 2 * k + 1)
    x = np.sort(rng.uniform(knots[:, k].max(), knots[:, g + k].min(), size=(400, 2)), axis=0)
    y = np.sin(3 * x)[:, :, None] + 0.1 * rng.normal(size=(400, 2, 1))
    fitted = splines.fit_coefficients(x, y, knots, k, ridge=0.0)
    for i in range(2):
        expected = make_lsq_spline(x[:, i], y[:, i, 0], knots[i], k).c
        np.testing.assert_allclose(fitted[i, :, 0], expected, rtol=1e-7, atol=1e-9)


def test_fit_coefficients_is_finite_when_underdetermined():
    knots = splines.uniform_knots((-1, 1), 10, 3, n_features=1)
    x = np.array([[0.1], [0.1], [0.5]])
    y = np.array([[[1.0]], [[1.0]], [[2.0]]])
    coef = splines.fit_coefficients(x, y, knots, 3)
    assert np.all(np.isfinite(coef))
    np.testing.assert_allclose(splines.spline_values_numpy(x, knots, coef, 3), y, atol=1e-5)


@pytest.mark.parametrize("k", [0, 1, 2, 3, 4, 5])
@pytest.mark.parametrize("path", ["closed_form", "backend"])
@pytest.mark.slow
def test_uniform_closed_form_matches_scipy(k, path):
    """Both uniform-knot paths: the fused closed form, and the backend's choice
    (on PyTorch: the k+1 local values scattered into place)."""
    from keras_kan.backend import spline_basis

    basis = splines.uniform_bspline_basis if path == "closed_form" else (
        lambda x, t, k: spline_basis(x, t, k, uniform=True))
    rng = np.random.default_rng(k)
    knots = splines.uniform_knots((-1.0, 1.5), 6, k, n_features=3)
    knots[1] = knots[1] * 3 + 1  # another spacing and origin per feature
    x = rng.uniform(-4.0, 6.0, size=(1000, 3))
    x[5:7] = knots[:, 0] - 1e-3, knots[:, -1] + 1e-3  # just outside the extended knots
    if k > 0:  # continuous bases: rounding at a knot costs nothing
        x[:5, 0] = knots[0, :5] + 1e-9
        x[7] = knots[:, -1]
    got = to_numpy(basis(keras.ops.convert_to_tensor(x, "float32"),
                         keras.ops.convert_to_tensor(knots, "float32"), k))
    np.testing.assert_allclose(got, reference.basis(x.astype("float32").astype(np.float64),
                                                knots, k), atol=5e-6, rtol=0)


@pytest.mark.parametrize("uniform", [True, False])
@pytest.mark.slow
def test_non_finite_inputs(uniform):
    """No out-of-range index on any backend; +-inf lies outside the grid (basis 0); a NaN
    input still makes the layer's output NaN (through the base branch)."""
    from keras_kan import KAN, update_grids
    from keras_kan.backend import spline_basis

    knots = _knots_for("uniform" if uniform else "data", 3)
    x = np.array([[np.nan, 0.1], [np.inf, -np.inf], [0.2, 0.3]], "float32")
    got = to_numpy(spline_basis(keras.ops.convert_to_tensor(x),
                                keras.ops.convert_to_tensor(knots, "float32"), 3, uniform))
    np.testing.assert_array_equal(got[1], 0.0)
    np.testing.assert_allclose(got[2], reference.basis(x[2:].astype(np.float64), knots, 3)[0],
                               atol=5e-6)
    model = KAN([2, 2], seed=0)
    if not uniform:
        update_grids(model, np.random.default_rng(0).uniform(-1, 1, (64, 2)))
    out = to_numpy(model(x))
    assert np.all(np.isnan(out[0])) and np.all(np.isfinite(out[2]))


def _knots_for(kind, k):
    knots = splines.uniform_knots((-1.0, 1.0), 5, k, n_features=2)
    if kind == "data":  # what a grid update leaves: quantile-like, uneven
        knots[0] = np.sort(np.random.default_rng(k).uniform(-1.5, 1.5, knots.shape[1]))
        knots[1] = np.sinh(knots[1])
    elif kind == "repeated":
        knots[0, 4] = knots[0, 5]
    return knots


@pytest.mark.parametrize("k", [1, 2, 3, 4])
@pytest.mark.parametrize("kind", ["data", "repeated"])
@pytest.mark.slow
def test_general_basis_matches_scipy(k, kind):
    """The backend's path for non-uniform knots (Cox–de Boor, knot-major) against scipy."""
    from keras_kan.backend import spline_basis

    knots = _knots_for(kind, k)
    x = np.random.default_rng(k).uniform(-2.0, 2.0, size=(1000, 2))
    x[:3] = knots[:, 0], knots[:, -1], knots[:, 0] - 1e-3  # the ends of the knot span
    got = to_numpy(spline_basis(keras.ops.convert_to_tensor(x, "float32"),
                                keras.ops.convert_to_tensor(knots, "float32"), k, uniform=False))
    np.testing.assert_allclose(got, reference.basis(x.astype("float32").astype(np.float64),
                                                knots, k), atol=2e-5, rtol=0)


@pytest.mark.parametrize("k", [1, 2, 3])
@pytest.mark.parametrize("kind", ["uniform", "data"])
@pytest.mark.slow
def test_basis_input_gradient_matches_derivative(k, kind, float64):
    """d/dx of the backend's basis (both paths) equals the B-spline derivative (scipy)."""

    from keras_kan.backend import spline_basis

    knots = _knots_for(kind, k)
    x = np.random.default_rng(k).uniform(-1.6, 1.6, size=(200, 2))
    weights = np.random.default_rng(k + 10).normal(size=(2, knots.shape[1] - k - 1))
    expected = np.zeros_like(x)
    for i in range(2):  # each basis element over its own support (the extension included)
        for p, w in enumerate(weights[i]):
            element = BSpline.basis_element(knots[i, p:p + k + 2], extrapolate=False)
            expected[:, i] += w * np.nan_to_num(element.derivative()(x[:, i]))
    grad = gradient_of(lambda t: keras.ops.sum(
        spline_basis(t, keras.ops.convert_to_tensor(knots, "float64"), k,
                     uniform=kind == "uniform")
        * keras.ops.convert_to_tensor(weights, "float64")), x)
    np.testing.assert_allclose(grad, expected, atol=1e-7)


def test_is_uniform_on_device_and_host_agree():
    """The layer decides its basis on the host and guards it on the device: same test."""
    uniform = splines.uniform_knots((-1, 1), 5, 3, n_features=4)
    bent = uniform.copy()
    bent[2, 5] += 0.05
    for knots, expected in ((uniform, True), (bent, False), (uniform * 1e-3 + 7.0, True)):
        device = bool(to_numpy(splines.is_uniform(keras.ops.convert_to_tensor(knots, "float32"))))
        assert device is expected and splines.is_uniform_numpy(knots) is expected
