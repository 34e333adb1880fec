"""keras_kan.autodiff: input derivatives against closed forms, SciPy splines and finite
differences; inside compiled functions; differentiable with respect to the weights."""

import keras
import numpy as np
import pytest
from conftest import BACKEND, to_numpy
from keras import ops
from scipy.interpolate import BSpline

import keras_kan
from keras_kan import KAN, KANDense, autodiff, jet
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


# --- the jet (keras_kan.jet): closed-form forward pass of values, slopes, curvatures ---------


def _nested(fn, x):
    """`(gradient, hessian diagonal)` by nested autodiff (what `autodiff` falls back to);
    under `jax.jit` on JAX (eager JAX dispatches every op)."""
    return _jit(lambda z: kan_backend.input_derivatives(
        lambda t: ops.reshape(fn(t), (-1,)), z, True))(x)


def _jit(fn):
    return _compiled(fn) if BACKEND == "jax" else fn


def _edge_reference(knots, coef, k, z):
    """`(s, s', s'')` of one B-spline edge at `z` with SciPy, 0 outside the knots (the
    basis of keras_kan is 0 there): the knots padded by `k` each side, zero coefficients."""
    pad = np.concatenate([[knots[0] - 1.0] * k, knots, [knots[-1] + 1.0] * k])
    spline = BSpline(pad, np.concatenate([np.zeros(k), coef, np.zeros(k)]), k,
                     extrapolate=False)
    out = [np.nan_to_num(spline(z))]
    for order in (1, 2):
        out.append(np.nan_to_num(spline.derivative(order)(z)) if k >= order
                   else np.zeros_like(z))
    return out


def _scipy_jet(model, x):
    """`(gradient, hessian diagonal)` of a numeric KAN chain, float64 SciPy + NumPy chain
    rule: `dy_j = sum_i phi'_ij dz_i`, `d2y_j = sum_i phi''_ij dz_i^2 + phi'_ij d2z_i`."""
    z = np.asarray(x, np.float64)
    dim = z.shape[1]
    dz, d2z = np.broadcast_to(np.eye(dim), (len(z), dim, dim)), np.zeros((len(z), dim, dim))
    for layer in model.layers:
        knots, k = to_numpy(layer.grid), layer.spline_order
        mask = to_numpy(layer.edge_mask)
        coef = to_numpy(layer.spline_kernel) * (mask * to_numpy(layer.spline_scale))[:, None]
        wb = mask * to_numpy(layer.base_kernel)
        s = 1 / (1 + np.exp(-z))
        base = [z * s, s * (1 + z * (1 - s)), s * (1 - s) * (2 + z * (1 - 2 * s))]
        n, m = wb.shape
        phi = np.zeros((3, len(z), n, m))
        for i in range(n):
            for j in range(m):
                parts = _edge_reference(knots[i], coef[i, :, j], k, z[:, i])
                for order in range(3):
                    phi[order, :, i, j] = parts[order] + wb[i, j] * base[order][:, i]
        value = phi[0].sum(1)
        dz, d2z = (np.einsum("bdn,bnm->bdm", dz, phi[1]),
                   np.einsum("bdn,bnm->bdm", dz**2, phi[2])
                   + np.einsum("bdn,bnm->bdm", d2z, phi[1]))
        z = value
    return dz[..., 0], d2z[..., 0]


@pytest.mark.parametrize("order", [pytest.param(1, marks=pytest.mark.slow),
                                   pytest.param(2, marks=pytest.mark.slow), 3])
@pytest.mark.parametrize("adapted", [False, pytest.param(True, marks=pytest.mark.slow)],
                         ids=["uniform", "updated_grid"])
def test_jet_matches_scipy_and_nested_autodiff(order, adapted, float64):
    """float64: the jet against SciPy's BSpline derivatives chained in NumPy, and against
    nested autodiff, on a masked [2, 3, 1] model of spline order k."""
    model = KAN([2, 3, 1], grid_size=4, spline_order=order, seed=order)
    first = model.layers[0]
    mask = np.ones((2, 3))
    mask[1, 0] = 0.0
    first.edge_mask.assign(mask)
    if adapted:
        keras_kan.update_grids(model, _points(rows=200, seed=4) * 0.7)
        assert not first.uniform_grid
    assert jet.supports(model)
    x = ops.convert_to_tensor(_points(rows=9, seed=order))
    g, h = _jit(lambda z: jet.derivatives(model, z))(x)
    g_ref, h_ref = _scipy_jet(model, to_numpy(x))
    np.testing.assert_allclose(to_numpy(g), g_ref, rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(to_numpy(h), h_ref, rtol=1e-9, atol=1e-9)
    g_ad, h_ad = _jit(lambda z: autodiff.derivatives(model, z))(x)  # the jet: same numbers
    np.testing.assert_array_equal(to_numpy(g_ad), to_numpy(g))
    np.testing.assert_array_equal(to_numpy(h_ad), to_numpy(h))
    g_nested, h_nested = _nested(model, x)
    np.testing.assert_allclose(to_numpy(g), to_numpy(g_nested), rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(to_numpy(h), to_numpy(h_nested), rtol=1e-9, atol=1e-9)


@pytest.mark.slow
def test_jet_symbolic_edges_bias_and_functional_chain():
    """A functional chain with a bias, a symbolic edge and gradient-only calls."""
    inputs = keras.Input((2,))
    hidden = KANDense(3, grid_size=4, use_bias=True, bias_initializer="ones", seed=0)(inputs)
    model = keras.Model(inputs, KANDense(1, grid_size=4, seed=1)(hidden))
    fix_symbolic(model, 0, 1, 2, "sin", fit_params=False, params=(2.0, 0.3, 0.7, 0.1),
                 verbose=False)
    assert jet.supports(model)
    x = ops.convert_to_tensor(_points(rows=10, seed=3).astype("float32"))
    g, h = _jit(lambda z: jet.derivatives(model, z))(x)
    g_nested, h_nested = _nested(model, x)
    np.testing.assert_allclose(to_numpy(g), to_numpy(g_nested), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(to_numpy(h), to_numpy(h_nested), rtol=1e-4, atol=1e-5)
    only, none = _jit(lambda z: jet.derivatives(model, z, second=False))(x)
    assert none is None
    np.testing.assert_allclose(to_numpy(only), to_numpy(g), atol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("compiled", [False, True, "marked"],
                         ids=["eager", "compiled", "tf_marked"])
def test_jet_weight_gradient_matches_nested(compiled, monkeypatch):
    """The weight gradient of a Laplacian loss (fit_lbfgs's objective function) through the
    jet equals the one through nested autodiff (`lambda z: model(z)` is not a KAN chain).
    `tf_marked`: TensorFlow's jet with its bases in XLA-marked clusters whatever their size
    (`backend.spline_derivative_bases`, their own gradient), nested autodiff unmarked, on
    the initial uniform grids (the recursion's clusters take seconds to compile; test_fast_
    paths checks them against scipy)."""
    if not compiled and BACKEND == "jax":
        pytest.skip("eager JAX dispatches every op (about 50 s here); compiled covers JAX")
    if compiled == "marked" and BACKEND != "tensorflow":
        pytest.skip("XLA marking inside a plain graph is TensorFlow's")
    x = ops.convert_to_tensor(_points(rows=16, seed=6).astype("float32"))
    results = []
    for wrap in (False, True):
        model = KAN([2, 3, 1], grid_size=4, seed=2)
        if compiled != "marked":
            keras_kan.update_grids(model, _points(rows=100, seed=7) * 0.8)
        model.run_eagerly = not compiled

        def objective(m, wrap=wrap):
            fn = (lambda z: m(z)) if wrap else m
            return ops.mean((autodiff.laplacian(fn, x) + 1.0) ** 2) + ops.mean(
                autodiff.gradient(fn, x) ** 2)

        with monkeypatch.context() as patch:
            if compiled == "marked" and not wrap:
                from keras_kan.backend import tensorflow as tf_backend

                patch.setattr(tf_backend, "MARK_FOR_XLA_FROM", 0)
            results.append(
                kan_backend.objective_value_and_grad_fn(model, objective)(None, None))
    (value, grad), (value_nested, grad_nested) = results
    assert value == pytest.approx(value_nested, rel=1e-5)
    np.testing.assert_allclose(grad, grad_nested, rtol=1e-4, atol=1e-5 * np.abs(grad).max())


@pytest.mark.slow
def test_jet_fallbacks():
    """What the jet takes, and nested autodiff for everything else (same results)."""
    kan = KAN([2, 2, 1], grid_size=3, seed=0)
    assert jet.supports(kan) and jet.supports(kan.layers[0])
    mlp = keras.Sequential([keras.Input((2,)), KANDense(2, grid_size=3, seed=0),
                            keras.layers.Dense(1)])
    gelu = keras.Sequential([keras.Input((2,)), KANDense(1, grid_size=3, seed=0,
                                                         base_activation="gelu")])
    inputs = keras.Input((2,))
    branch = keras.Model(inputs, KANDense(1, grid_size=3)(inputs) + inputs[:, :1])
    for fn in (mlp, branch, lambda z: kan(z)):
        assert not jet.supports(fn)
    assert jet.supports(gelu)  # a chain, but its rule declines the unknown activation
    x = ops.convert_to_tensor(_points(rows=6).astype("float32"))
    assert jet.derivatives(gelu, x) is None and jet.derivatives(mlp, x) is None
    for fn in (mlp, gelu, branch):
        got = _jit(lambda z, fn=fn: autodiff.derivatives(fn, z))(x)
        for a, b in zip(got, _nested(fn, x)):
            np.testing.assert_array_equal(to_numpy(a), to_numpy(b))
    with pytest.raises(ValueError, match="one value per row"):  # fallback raises as before
        autodiff.laplacian(KAN([2, 2], grid_size=3, seed=0), x)


class _Scale(keras.layers.Layer):
    """`y = 3 x`: a layer with a registered jet rule."""

    def call(self, x):
        return 3.0 * x


@pytest.mark.slow
def test_jet_rules_registry_and_pieces():
    model = keras.Sequential([keras.Input((2,)), _Scale(), KANDense(1, grid_size=3, seed=0)])
    assert not jet.supports(model)
    jet.register_rule(_Scale, lambda layer, j: jet.Jet(*(None if t is None else 3.0 * t
                                                         for t in j)))
    try:
        assert jet.supports(model)
        x = ops.convert_to_tensor(_points(rows=5, low=-0.3, high=0.3).astype("float32"))
        for got, want in zip(jet.derivatives(model, x), _nested(model, x)):
            np.testing.assert_allclose(to_numpy(got), to_numpy(want), rtol=1e-5, atol=1e-6)
    finally:
        jet._RULES.pop(_Scale)
    # product and elementwise, against closed forms: u = x0 * sin(x1), v = exp(u)
    x = _points(rows=4)
    seed = jet.seed(ops.convert_to_tensor(x))
    first = jet.Jet(seed.value[:, :1], seed.slopes[..., :1], seed.curvatures[..., :1])
    s = ops.sin(seed.value[:, 1:])
    second = jet.elementwise(jet.Jet(None, seed.slopes[..., 1:], seed.curvatures[..., 1:]),
                             s, ops.cos(seed.value[:, 1:]), -s)
    u = jet.product(first, second)
    e = ops.exp(u.value)
    v = jet.elementwise(u, e, e, e)
    x0, x1 = x[:, 0], x[:, 1]
    ev = np.exp(x0 * np.sin(x1))
    du = np.stack([np.sin(x1), x0 * np.cos(x1)], 1)
    d2u = np.stack([np.zeros_like(x0), -x0 * np.sin(x1)], 1)
    np.testing.assert_allclose(to_numpy(v.slopes)[..., 0], ev[:, None] * du, rtol=1e-5)
    np.testing.assert_allclose(to_numpy(v.curvatures)[..., 0], ev[:, None] * (du**2 + d2u),
                               rtol=1e-5, atol=1e-6)


def test_jet_through_mult_nodes_matches_nested_autodiff():
    """The product rule of `MultNodes` (a sum node and mult nodes of arities 2 and 3,
    trained affine values) against nested autodiff of the same model."""
    width, arity = [3, [1, 2], 1], [[], [2, 3], []]
    model = KAN(width, grid_size=5, seed=0, mult_arity=arity, affine_trainable=True)
    rng = np.random.default_rng(0)
    for layer in model.layers:
        if isinstance(layer, keras_kan.MultNodes):
            for v in layer.trainable_variables:
                v.assign(rng.uniform(0.5, 1.5, v.shape).astype("float32"))
    assert jet.supports(model)
    x = ops.convert_to_tensor(rng.uniform(-1, 1, (16, width[0])).astype("float32"))
    g, h = jet.derivatives(model, x)
    g0, h0 = kan_backend.input_derivatives(lambda z: ops.reshape(model(z), (-1,)), x, True)
    np.testing.assert_allclose(to_numpy(g), to_numpy(g0), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(to_numpy(h), to_numpy(h0), rtol=1e-4, atol=1e-4)
