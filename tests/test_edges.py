"""`keras_kan.edges`, the one evaluator of an edge, against independent references.

- the layer's compiled forward pass and its second derivative in the input
  (what physics-informed losses need) against scipy's B-splines, on uniform,
  data-adapted and repeated knots, orders 0-5, with a symbolic edge;
- the analysis paths (float64 NumPy) against the forward pass: edge values sum
  to the output, and edge scores are pykan's formula re-derived in NumPy,
  whatever the sample count or chunking, symbolic edges included.
"""

import keras
import numpy as np
import pytest
from conftest import BACKEND, to_numpy
from scipy.interpolate import BSpline

from keras_kan import KAN, KANDense, edges, prune, splines, update_grids
from keras_kan.symbolic import fix_symbolic

ORDERS = [0, 1, 2, 3, 4, 5]
KINDS = ["uniform", "data", "repeated"]


def _knots(kind, k, n=3, grid=6):
    if kind == "uniform":
        return splines.uniform_knots((-1.0, 1.0), grid, k, n_features=n)
    rng = np.random.default_rng(20 + k)
    interior = np.sort(rng.uniform(-1.0, 1.0, size=(n, grid + 1)), axis=1)
    interior[:, 0], interior[:, -1] = -1.0, 1.0
    if kind == "repeated":  # an empty knot interval (the set_spline check is bypassed)
        interior[:, 3] = interior[:, 2]
    return splines.extend_knots(interior, k)


def _layer(kind, k, units=2, n=3, symbolic=True):
    """A float64 KANDense on `kind` knots with random coefficients and one x^2 edge."""
    layer = KANDense(units, grid_size=6, spline_order=k, base_activation="silu", seed=k,
                     dtype="float64")
    layer.build((None, n))
    knots = _knots(kind, k, n)
    rng = np.random.default_rng(k)
    layer.grid.assign(knots)
    layer.sync_grid()
    layer.spline_kernel.assign(rng.normal(size=tuple(layer.spline_kernel.shape)))
    layer.spline_scale.assign(rng.uniform(0.5, 1.5, size=(n, units)))
    if symbolic:
        from keras_kan import symbolic_edges

        # x^2, not a transcendental: XLA:CPU's float64 sin is off by up to 1e-7
        symbolic_edges.set_edge(layer, 1, 0, "x^2", (1.7, 0.3, 0.8, -0.2), mode="both")
    return layer


def _scipy_basis(knots, k, x, derivative):
    """`(B, K)` r-th derivatives of every B-spline element on `knots` (0 outside its support).

    Values are scipy's, element by element (`BSpline(knots, c, k, extrapolate=False)`
    would be NaN in the extension zones, where the basis is not 0). Derivatives use
    `B'_{p,k} = k B_{p,k-1} / (t_{p+k} - t_p) - k B_{p+1,k-1} / (t_{p+k+1} - t_{p+1})`
    (a zero-width term is 0): scipy refuses to differentiate at repeated knots.
    """
    n_basis = knots.shape[0] - k - 1
    if derivative > k:
        return np.zeros((x.shape[0], n_basis))
    if derivative:
        lower = _scipy_basis(knots, k - 1, x, derivative - 1)  # (B, K + 1)
        left, right = knots[k:k + n_basis] - knots[:n_basis], knots[k + 1:] - knots[1:n_basis + 1]
        left = np.where(left > 0, k / np.where(left > 0, left, 1.0), 0.0)
        right = np.where(right > 0, k / np.where(right > 0, right, 1.0), 0.0)
        return lower[:, :-1] * left - lower[:, 1:] * right
    out = np.zeros((x.shape[0], n_basis))
    for p in range(n_basis):
        if knots[p + k + 1] > knots[p]:
            element = BSpline.basis_element(knots[p:p + k + 2], extrapolate=False)
            out[:, p] = np.nan_to_num(element(x))
    return out


def _reference(layer, x, derivative=0):
    """`d^r y / dx_i^r` summed with weights: float64 scipy B-splines, closed-form silu and x^2.

    Returns `(B, n, m)`: the r-th derivative of every edge at its input.
    """
    knots, coef = (to_numpy(layer.grid), to_numpy(layer.spline_kernel))
    k = layer.spline_order
    scale, base_w = to_numpy(layer.spline_scale), to_numpy(layer.base_kernel)
    mask = to_numpy(layer.edge_mask)
    n, m = mask.shape
    out = np.zeros((x.shape[0], n, m))
    s = 1.0 / (1.0 + np.exp(-x))
    silu = [x * s, s * (1 + x * (1 - s)), s * (1 - s) * (2 + x * (1 - 2 * s))][derivative]
    for i in range(n):
        basis = _scipy_basis(knots[i], k, x[:, i], derivative)  # (B, K)
        for j in range(m):
            out[:, i, j] = mask[i, j] * (scale[i, j] * basis @ coef[i, :, j]
                                         + base_w[i, j] * silu[:, i])
    if layer._symbolic_groups:
        a, b, c, d = (to_numpy(getattr(layer, f"symbolic_{p}"))[1, 0] for p in "abcd")
        u = a * x[:, 1] + b
        out[:, 1, 0] += [c * u * u + d, 2 * c * a * u, 2 * c * a * a + 0 * u][derivative]
    return out


def _samples(knots, rows=200, seed=0):
    """Inside, in the extension zones and outside the knots; none on a knot."""
    rng = np.random.default_rng(seed)
    return rng.uniform(knots[:, 0].min() - 0.3, knots[:, -1].max() + 0.3, size=(rows, len(knots)))


def _derivatives(layer, x, w, second=True):
    """`(y, d/dx sum(y w), d2/dx2 sum(y w))` as a compiled training step computes them
    (the last `None` unless `second`).

    A KAN layer is a sum of functions of one input each, so the Hessian of
    `sum(y w)` is diagonal and its diagonal is the gradient of the gradient's sum.
    """
    if BACKEND == "jax":
        import jax
        import jax.numpy as jnp

        def loss(t):
            return jnp.sum(layer(t) * w)

        def first_sum(t):
            return jnp.sum(jax.grad(loss)(t))

        fn = jax.jit(lambda t: (layer(t), jax.grad(loss)(t),
                                jax.grad(first_sum)(t) if second else t))
        y, first, hessian = (to_numpy(v) for v in fn(jnp.asarray(x)))
        return y, first, hessian if second else None
    if BACKEND == "tensorflow":
        import tensorflow as tf

        @tf.function
        def step(t):
            with tf.GradientTape() as outer:
                outer.watch(t)
                with tf.GradientTape() as inner:
                    inner.watch(t)
                    y = layer(t)
                    loss = tf.reduce_sum(y * w)
                first = inner.gradient(loss, t)
                total = tf.reduce_sum(first)
            return y, first, outer.gradient(total, t) if second else t

        y, first, hessian = (to_numpy(v) for v in step(tf.constant(x)))
        return y, first, hessian if second else None
    import torch

    t = torch.tensor(x, requires_grad=True)
    y = layer(t)
    (first,) = torch.autograd.grad((y * torch.tensor(w)).sum(), t, create_graph=True)
    (second,) = torch.autograd.grad(first.sum(), t, allow_unused=True)
    second = torch.zeros_like(t) if second is None else second
    return [to_numpy(v.detach()) for v in (y, first, second)]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("k", ORDERS)
@pytest.mark.slow
def test_forward_and_input_derivatives_match_scipy(k, kind, float64):
    layer = _layer(kind, k)
    x = _samples(to_numpy(layer.grid))
    w = np.random.default_rng(1).normal(size=(x.shape[0], layer.units))
    y, first, second = _derivatives(layer, x, w, second=k >= 2)
    np.testing.assert_allclose(y, _reference(layer, x).sum(axis=1), atol=1e-10)
    np.testing.assert_allclose(first, np.einsum("bnm,bm->bn", _reference(layer, x, 1), w),
                               atol=1e-9)
    if k >= 2:  # a spline of order < 2 has no second derivative inside its pieces
        np.testing.assert_allclose(second, np.einsum("bnm,bm->bn", _reference(layer, x, 2), w),
                                   atol=1e-7)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.slow
def test_analysis_matches_the_forward_pass(kind, float64):
    layer = _layer(kind, 3)
    x = _samples(to_numpy(layer.grid), rows=64)
    out = to_numpy(layer(x))
    numpy_phi = edges.edge_values(edges.NUMPY, x, edges.params(layer, edges.NUMPY))
    np.testing.assert_allclose(numpy_phi, _reference(layer, x), atol=1e-10)
    np.testing.assert_allclose(to_numpy(layer.edge_activations(x)), numpy_phi, atol=1e-10)
    np.testing.assert_allclose(numpy_phi.sum(axis=1), out, atol=1e-10)
    np.testing.assert_allclose(edges.output(edges.NUMPY, x, edges.params(layer, edges.NUMPY)),
                               out, atol=1e-10)


def _pykan_scores(phi, x):
    """pykan's `std(phi) / (std(x) + 0.1)` with unbiased stds, float64, from edge values."""
    return phi.std(axis=0, ddof=1) / (x.std(axis=0, ddof=1)[:, None] + 0.1)


@pytest.mark.slow
def test_scores_count_symbolic_edges_whatever_the_sample_count(float64):
    """Regression: above the chunking bound a symbolic edge scored 0, so pruning deleted it."""
    layer = _layer("data", 3, n=3)
    layer.edge_mask.assign(np.array([[1.0, 1.0], [0.0, 1.0], [1.0, 1.0]]))  # edge 1->0: sin only
    x = _samples(to_numpy(layer.grid), rows=1024)
    for data in (x, np.concatenate([x, x, x])):
        expected = _pykan_scores(_reference(layer, data), data)
        assert expected[1, 0] > 0.1
        np.testing.assert_allclose(to_numpy(layer.edge_scores(data)), expected, rtol=1e-9)
        params = edges.params(layer, edges.NUMPY)
        for rows in (1, 7, 1000, 5000):  # chunks merge exactly
            np.testing.assert_allclose(edges.edge_scores(edges.NUMPY, data, params,
                                                         chunk_rows=rows), expected, rtol=1e-9)
    # The penalty's keras.ops form scores the same edges the same way.
    ops_scores = edges.edge_scores(edges.OPS, keras.ops.convert_to_tensor(x),
                                   layer.edge_params())
    np.testing.assert_allclose(to_numpy(ops_scores), _pykan_scores(_reference(layer, x), x),
                               rtol=1e-9)


@pytest.mark.slow
def test_prune_keeps_a_symbolic_edge_on_many_samples():
    """The original report: a 784-input layer, samples past the old chunking bound."""
    model = KAN([784, 1], grid_size=5, seed=0)
    layer = model.layers[0]
    layer.spline_scale.assign(np.zeros((784, 1)))
    layer.base_kernel.assign(np.zeros((784, 1)))
    fix_symbolic(model, 0, 5, 0, "x^2", fit_params=False, params=(1.0, 0.0, 1.0, 0.0),
                 verbose=False)
    x = np.random.default_rng(0).uniform(-1, 1, size=(1024, 784))
    few = to_numpy(layer.edge_scores(x))
    many = to_numpy(layer.edge_scores(np.concatenate([x, x, x])))
    assert few[5, 0] > 0.1 and abs(many[5, 0] - few[5, 0]) < 1e-3 * few[5, 0]
    pruned = prune(model, np.concatenate([x, x, x]), verbose=False)
    assert pruned.layers[0]._symbolic_spec == [(5, 0, "x^2")]


@pytest.mark.slow
def test_scores_after_a_grid_update_match_numpy():
    model = KAN([2, 3, 1], grid_size=5, seed=0)
    x = np.random.default_rng(2).uniform(-1, 1, size=(500, 2)).astype("float32")
    update_grids(model, x)
    layer = model.layers[0]
    phi = edges.edge_values(edges.NUMPY, x, edges.params(layer, edges.NUMPY))
    np.testing.assert_allclose(to_numpy(layer.edge_scores(x)),
                               _pykan_scores(phi, x.astype(np.float64)), rtol=1e-6)


@pytest.mark.parametrize("activation", ["silu", "relu", "tanh", "softplus", "gelu", "elu"])
@pytest.mark.slow
def test_numpy_base_activation_matches_the_layers(activation):
    layer = KANDense(2, base_activation=activation)
    layer.build((None, 3))
    x = np.linspace(-3, 3, 30).reshape(10, 3)
    expected = keras.ops.convert_to_numpy(layer.base_activation(x.astype("float32")))
    np.testing.assert_allclose(edges.params(layer, edges.NUMPY).base_fn(x), expected, atol=1e-6)
