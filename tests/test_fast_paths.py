"""The fast spline paths that Keras's default `compile()` runs, against scipy (float64).

Each backend's default is checked the way the trainer runs it: TensorFlow inside
a plain `tf.function`, with the basis marked for XLA whatever its size (the
unmarked graph runs the same ops as eager calls, which the rest of the suite
checks), JAX under `jax.jit`,
PyTorch eager (the one-node autograd basis, and `embedding_bag` when no
gradient is needed). Values, input gradients and kernel gradients are compared
with scipy's B-splines and a float64 NumPy product, and with the plain
`keras.ops` basis (`splines.fused_spline_basis`), on uniform and non-uniform
knots, spline orders 0 to 5.
"""

import keras
import numpy as np
import pytest
from conftest import BACKEND, to_numpy
from scipy.interpolate import BSpline

import keras_kan
from keras_kan import backend as kan_backend
from keras_kan import splines

ORDERS = [0, 1, 2, 3, 4, 5]
KINDS = ["uniform", "data"]


@pytest.fixture
def tf_marks_every_basis(monkeypatch):
    """On TensorFlow, traced bases of any size take the XLA-marked path (its own gradient)."""
    if BACKEND == "tensorflow":
        from keras_kan.backend import tensorflow as tf_backend

        monkeypatch.setattr(tf_backend, "MARK_FOR_XLA_FROM", 0)


@pytest.fixture(params=["columns", "whole"])
def torch_recursion_layout(request, monkeypatch):
    """On PyTorch, both layouts of the Cox–de Boor recursion (chosen by size otherwise)."""
    if BACKEND != "torch":
        if request.param == "whole":
            pytest.skip("the layout switch is PyTorch's")
        return
    from keras_kan.backend import torch as torch_backend

    monkeypatch.setattr(torch_backend, "COLUMNS_FROM", 0 if request.param == "columns" else 2**62)


def _knots(kind, k, n=3, grid=6):
    """`uniform`, `data` (random interior knots) or `fine` (the same with 14 intervals:
    more bases than PyTorch trains knot-major, `KNOT_MAJOR_UP_TO`)."""
    if kind == "fine":
        kind, grid = "data", 14
    if kind == "uniform":
        return splines.uniform_knots((-1.0, 1.0), grid, k, n_features=n)
    rng = np.random.default_rng(10 + k)
    interior = np.sort(rng.uniform(-1.0, 1.0, size=(n, grid + 1)), axis=1)
    interior[:, 0], interior[:, -1] = -1.0, 1.0
    return splines.extend_knots(interior, k)


def _scipy_basis(x, knots, k, derivative=0):
    """`(B, n, K)` values (or derivatives of order `derivative`) of every basis element,
    scipy, float64."""
    n_basis = knots.shape[1] - k - 1
    out = np.zeros(x.shape + (n_basis,))
    for i in range(x.shape[1]):
        for p in range(n_basis):
            element = BSpline.basis_element(knots[i, p:p + k + 2], extrapolate=False)
            if derivative:
                element = element.derivative(int(derivative)) if k >= derivative else None
            if element is not None:
                out[:, i, p] = np.nan_to_num(element(x[:, i]))
    return out


def _samples(knots, rows=300, seed=0):
    """Inside, in the extension zones and outside the knots; no sample on a knot."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(knots[:, 0].min() - 0.4, knots[:, -1].max() + 0.4, size=(rows, len(knots)))
    return x


def _run(fn, *args):
    """`fn(*args)` compiled as Keras's default trainer compiles a step."""
    if BACKEND == "tensorflow":
        import tensorflow as tf

        return tf.function(fn)(*args)
    if BACKEND == "jax":
        import jax

        return jax.jit(fn)(*args)
    return fn(*args)


def _value_and_grads(fn, x, kernel):
    """`(fn(x, kernel), d sum(fn * w) / dx, d sum(fn * w) / d kernel)` as the trainer runs it."""
    w = np.random.default_rng(5).normal(size=(x.shape[0], kernel.shape[1]))
    if BACKEND == "tensorflow":
        import tensorflow as tf

        @tf.function
        def step(x, kernel):
            with tf.GradientTape() as tape:
                tape.watch([x, kernel])
                out = fn(x, kernel)
                loss = tf.reduce_sum(out * w)
            return (out,) + tuple(tape.gradient(loss, [x, kernel]))

        out, gx, gk = step(tf.constant(x), tf.constant(kernel))
        gx = np.zeros_like(x) if gx is None else gx  # order 0: constant in x
        return [to_numpy(t) for t in (out, gx, gk)]
    if BACKEND == "jax":
        import jax
        import jax.numpy as jnp

        def loss(x, kernel):
            out = fn(x, kernel)
            return jnp.sum(out * w), out

        (_, out), grads = jax.jit(jax.value_and_grad(loss, argnums=(0, 1), has_aux=True))(
            jnp.asarray(x), jnp.asarray(kernel))
        return [to_numpy(out)] + [to_numpy(g) for g in grads]
    import torch

    xt = torch.tensor(x, requires_grad=True)
    kt = torch.tensor(kernel, requires_grad=True)
    out = fn(xt, kt)
    grads = torch.autograd.grad((out * torch.tensor(w, dtype=out.dtype)).sum(), [xt, kt],
                                allow_unused=True)
    grads = [torch.zeros_like(t) if g is None else g for g, t in zip(grads, [xt, kt])]
    return [to_numpy(out.detach())] + [to_numpy(g) for g in grads]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("k", ORDERS)
@pytest.mark.usefixtures("tf_marks_every_basis")
@pytest.mark.slow
def test_fast_basis_values_match_scipy(k, kind, float64):
    knots = _knots(kind, k)
    x = _samples(knots, seed=k)
    uniform = kind == "uniform"

    def basis(x):
        return kan_backend.spline_basis(x, keras.ops.convert_to_tensor(knots), k, uniform)

    got = to_numpy(_run(basis, keras.ops.convert_to_tensor(x)))
    np.testing.assert_allclose(got, _scipy_basis(x, knots, k), atol=1e-12, rtol=0)
    plain = to_numpy(splines.fused_spline_basis(keras.ops.convert_to_tensor(x),
                                                keras.ops.convert_to_tensor(knots), k, uniform))
    np.testing.assert_allclose(got, plain, atol=1e-12, rtol=0)


@pytest.mark.parametrize(("k", "kind"), [(k, kind) for kind in KINDS for k in ORDERS]
                         + [(1, "fine"), (3, "fine")])
@pytest.mark.usefixtures("tf_marks_every_basis", "torch_recursion_layout")
@pytest.mark.slow
def test_fast_spline_product_and_gradients_match_float64_reference(k, kind, float64):
    """`spline_matmul` (what `KANDense.call` runs): output, d/dx and d/dkernel."""
    knots = _knots(kind, k)
    x = _samples(knots, rows=200, seed=20 + k)
    n_basis = knots.shape[1] - k - 1
    kernel = np.random.default_rng(k).normal(size=(3 * n_basis, 4))
    uniform = kind == "uniform"

    def product(x, kernel):
        return kan_backend.spline_matmul(x, keras.ops.convert_to_tensor(knots), k, uniform,
                                         kernel)

    out, grad_x, grad_kernel = _value_and_grads(product, x, kernel)
    w = np.random.default_rng(5).normal(size=(x.shape[0], 4))
    basis = _scipy_basis(x, knots, k).reshape(x.shape[0], -1)
    slopes = _scipy_basis(x, knots, k, derivative=True)  # (B, n, K)
    np.testing.assert_allclose(out, basis @ kernel, atol=1e-10, rtol=0)
    np.testing.assert_allclose(grad_kernel, basis.T @ w, atol=1e-10, rtol=0)
    expected_x = np.einsum("bnp,npm,bm->bn", slopes, kernel.reshape(3, n_basis, 4), w)
    np.testing.assert_allclose(grad_x, expected_x, atol=1e-8, rtol=0)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("k", [1, 3, 5])
@pytest.mark.usefixtures("tf_marks_every_basis")
@pytest.mark.slow
def test_fast_paths_in_float32_match_float64(k, kind):
    """float32, as models train: within float32 rounding of the float64 reference."""
    knots = _knots(kind, k)
    x = _samples(knots, rows=256, seed=k).astype("float32")
    n_basis = knots.shape[1] - k - 1
    kernel = np.random.default_rng(k).normal(size=(3 * n_basis, 4)).astype("float32")
    uniform = kind == "uniform"
    f32 = keras.ops.convert_to_tensor(knots, "float32")

    def product(x, kernel):
        return kan_backend.spline_matmul(x, f32, k, uniform, kernel)

    out, grad_x, _ = _value_and_grads(product, x, kernel)
    basis = _scipy_basis(x.astype(np.float64), knots, k).reshape(len(x), -1)
    np.testing.assert_allclose(out, basis @ kernel, atol=2e-5, rtol=0)
    w = np.random.default_rng(5).normal(size=(len(x), 4))
    slopes = _scipy_basis(x.astype(np.float64), knots, k, derivative=True)
    expected_x = np.einsum("bnp,npm,bm->bn", slopes, kernel.reshape(3, n_basis, 4), w)
    scale = np.abs(expected_x).max()
    np.testing.assert_allclose(grad_x, expected_x, atol=2e-4 * scale, rtol=0)


@pytest.mark.parametrize(("k", "kind"), [(k, "data") for k in ORDERS]
                         + [(3, "uniform"), (3, "repeated"), (4, "repeated"), (3, "fine")])
@pytest.mark.usefixtures("torch_recursion_layout")
@pytest.mark.slow
def test_second_input_derivative_matches_scipy(k, kind, float64, request):
    """d/dx and d2/dx2 of `spline_matmul` (what physics-informed losses differentiate), the
    way `keras_kan.autodiff` takes them, against scipy's derivatives, float64. Every order
    on adapted knots (the recursion's derivatives); one order on the other kinds (a double
    knot leaves orders below 3 without a second derivative). TensorFlow's XLA-marked
    clusters (seconds of compiling each) for orders 3 and 5 on adapted knots; plain graphs
    elsewhere (the same recursion; `test_fast_spline_product_and_gradients_match_float64_
    reference` covers the marked first derivative everywhere)."""
    if kind == "data" and k in (3, 5):
        request.getfixturevalue("tf_marks_every_basis")
    knots = _knots("data" if kind == "repeated" else kind, k)
    if kind == "repeated":
        knots[:, k + 2] = knots[:, k + 1]  # an empty interval inside the grid
    x = _samples(knots, rows=120, seed=40 + k)
    n_basis = knots.shape[1] - k - 1
    kernel = np.random.default_rng(k).normal(size=(3 * n_basis, 1))
    knots_t, kernel_t = (keras.ops.convert_to_tensor(a) for a in (knots, kernel))

    def derivatives(x):
        def fn(z):
            return kan_backend.spline_matmul(z, knots_t, k, kind == "uniform", kernel_t)[:, 0]

        return kan_backend.input_derivatives(fn, x, True)

    grad, second = (to_numpy(t) for t in _run(derivatives, keras.ops.convert_to_tensor(x)))
    coefficients = kernel.reshape(3, n_basis)
    expected = [np.einsum("bnp,np->bn", _scipy_basis(x, knots, k, d), coefficients)
                for d in (1, 2)]
    np.testing.assert_allclose(grad, expected[0], atol=1e-8, rtol=0)
    np.testing.assert_allclose(second, expected[1], atol=1e-7 * max(1, np.abs(expected[1]).max()),
                               rtol=0)


@pytest.mark.parametrize(("k", "kind"), [(0, "data"), (3, "uniform"), (3, "data")])
@pytest.mark.usefixtures("tf_marks_every_basis")
@pytest.mark.slow
def test_derivative_bases_and_their_input_gradient_match_scipy(k, kind, float64):
    """`spline_derivative_bases` (the jet's basis, slopes and curvatures; on TensorFlow an
    XLA-marked cluster with its own gradient) against scipy's derivatives, and d/dx of
    their products with kernels (the next order: what the weight gradient of a jet-based
    loss differentiates through the previous layer), float64. A small grid: XLA compiles
    the recursion's clusters in seconds, growing with the number of bases."""
    knots = _knots(kind, k, n=2, grid=3)
    x = _samples(knots, rows=150, seed=60 + k)
    size = 2 * (knots.shape[1] - k - 1)  # n K
    kernel = np.random.default_rng(k).normal(size=(3 * size, 4))  # one block per order
    knots_t = keras.ops.convert_to_tensor(knots)

    def bases(x):
        return kan_backend.spline_derivative_bases(x, knots_t, k, 2, kind == "uniform")

    def products(x, kernel):  # einsum: Keras's matmul returns float32 on PyTorch
        return sum(keras.ops.einsum("bj,jm->bm", keras.ops.reshape(b, (-1, size)),
                                    kernel[d * size:(d + 1) * size])
                   for d, b in enumerate(bases(x)))

    if BACKEND == "tensorflow":
        import tensorflow as tf

        spec = tf.TensorSpec(x.shape, tf.float64)
        graph = tf.function(bases).get_concrete_function(spec).graph
        assert any("_XlaCompile" in op.node_def.attr for op in graph.get_operations())
    got = [to_numpy(b) for b in _run(bases, keras.ops.convert_to_tensor(x))]
    expected = [_scipy_basis(x, knots, k, d) for d in range(4)]
    for d in range(3):
        np.testing.assert_allclose(got[d], expected[d], rtol=0,
                                   atol=1e-11 * max(1, np.abs(expected[d]).max()))
    _, grad_x, _ = _value_and_grads(products, x, kernel)
    w = np.random.default_rng(5).normal(size=(len(x), 4))
    expected_x = sum(np.einsum("bnp,npm,bm->bn", expected[d + 1],
                               kernel[d * size:(d + 1) * size].reshape(2, -1, 4), w)
                     for d in range(3))
    np.testing.assert_allclose(grad_x, expected_x, rtol=0,
                               atol=1e-10 * max(1, np.abs(expected_x).max()))


@pytest.mark.usefixtures("tf_marks_every_basis")
@pytest.mark.slow
def test_inference_without_gradients_matches_the_training_path():
    """PyTorch sums kernel rows (`embedding_bag`) when no gradient is needed; every
    backend: `predict` equals the layer's call under a gradient tape / autograd."""
    model = keras_kan.KAN([5, 4, 2], grid_size=5, spline_order=3, seed=0)
    x = np.random.default_rng(0).uniform(-1.3, 1.3, size=(64, 5)).astype("float32")
    keras_kan.update_grids(model, x[:32])  # the second layer on non-uniform knots
    predicted = model.predict(x, verbose=0)
    if BACKEND == "torch":
        import torch

        with torch.enable_grad():
            leaf = torch.tensor(x, requires_grad=True)
            called = to_numpy(model(leaf).detach())
    else:
        called = to_numpy(model(x))
    np.testing.assert_allclose(predicted, called, atol=2e-6, rtol=1e-5)
    reference = model.predict(x, verbose=0)
    np.testing.assert_allclose(predicted, reference, atol=0, rtol=0)


@pytest.mark.skipif(BACKEND != "tensorflow", reason="XLA hints are TensorFlow's")
def test_tensorflow_marks_large_bases_for_xla_except_for_export():
    """A basis of at least `MARK_FOR_XLA_FROM` elements `B n K` is marked for XLA;
    an unknown batch size counts as `UNKNOWN_BATCH`; export graphs are never marked."""
    import tensorflow as tf

    from keras_kan.backend import tensorflow as tf_backend

    def marked_ops(n_in, batch):
        layer = keras_kan.KANDense(3, grid_size=5)  # K = 8 basis functions per input
        layer.build((None, n_in))
        spec = tf.TensorSpec((batch, n_in), tf.float32)
        graph = tf.function(lambda x: layer(x)).get_concrete_function(spec).graph
        return [op for op in graph.get_operations() if "_XlaCompile" in op.node_def.attr]

    threshold, unknown = tf_backend.MARK_FOR_XLA_FROM, tf_backend.UNKNOWN_BATCH
    wide = threshold // (8 * unknown)  # n at which an unknown batch reaches the threshold
    assert marked_ops(wide, None)
    assert not marked_ops(wide - 1, None)
    assert not marked_ops(4, threshold // 64)  # B n K = threshold / 2
    assert marked_ops(4, threshold // 32)  # B n K = threshold
    with tf_backend.plain_graphs():
        assert not marked_ops(wide, None)


@pytest.mark.skipif(BACKEND != "jax", reason="eager JAX compiles every op it dispatches")
def test_jax_eager_call_compiles_the_basis_as_one_program():
    """An eager call on new shapes compiles the basis and product once, not op by op.

    Eager JAX compiles each primitive for each new shape; the basis is ~100 of them
    (85 compilations for this call before `backend.jax` made it one `jax.jit`).
    The shapes are unusual, so that no earlier test compiled them already.
    """
    from jax import monitoring

    compiles, listening = [], [False]

    def listener(event, duration, **kwargs):
        if listening[0] and event == "/jax/core/compile/backend_compile_duration":
            compiles.append(duration)

    monitoring.register_event_duration_secs_listener(listener)
    layer = keras_kan.KANDense(3, grid_size=7, seed=0)
    x = np.random.default_rng(0).uniform(-1, 1, (37, 5)).astype("float32")
    layer.build((None, 5))
    layer.update_grid(x**3)  # adapted knots: the Cox–de Boor columns, the longest
    assert not layer.uniform_grid
    listening[0] = True
    try:
        out = to_numpy(layer(x))
    finally:
        listening[0] = False
    assert 1 <= len(compiles) <= 12, len(compiles)
    np.testing.assert_allclose(out, to_numpy(layer.edge_activations(x)).sum(axis=1),
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind", KINDS + ["repeated"])
@pytest.mark.parametrize("k", ORDERS)
@pytest.mark.usefixtures("tf_marks_every_basis")
@pytest.mark.slow
def test_inference_product_matches_scipy(k, kind, float64):
    """`spline_matmul` with no gradient needed (PyTorch: per-interval polynomials summed
    by `embedding_bag`), float64, against scipy; also at the knots and beyond them."""
    if kind == "repeated":
        knots = _knots("data", k)
        knots[:, k + 2] = knots[:, k + 1]  # an empty interval inside the grid
    else:
        knots = _knots(kind, k)
    x = _samples(knots, rows=200, seed=30 + k)
    if k > 0:  # order 0 jumps at knots, where scipy's elements include both ends
        x[:4] = knots[:, 0], knots[:, k + 1], knots[:, -1], knots[:, -1] - 1e-9
    n_basis = knots.shape[1] - k - 1
    kernel = np.random.default_rng(k).normal(size=(3 * n_basis, 4))

    def product(x, kernel):
        return kan_backend.spline_matmul(x, keras.ops.convert_to_tensor(knots), k,
                                         kind == "uniform", kernel)

    got = to_numpy(_run(product, keras.ops.convert_to_tensor(x),
                        keras.ops.convert_to_tensor(kernel)))
    expected = _scipy_basis(x, knots, k).reshape(len(x), -1) @ kernel
    np.testing.assert_allclose(got, expected, atol=1e-9, rtol=0)


@pytest.mark.skipif(BACKEND != "tensorflow", reason="JAX always compiles with XLA; "
                    "PyTorch's jit_compile is torch.compile")
@pytest.mark.slow
def test_tensorflow_jit_compile_step_matches_the_default_step():
    """`compile(jit_compile=True)` (one XLA program, unmarked basis) trains and predicts as
    the default plain graph, whose first layer's basis is not XLA-marked and whose second
    layer's (`B n K` = 2^17) is, with its own input gradient (which trains the first
    layer); on data-adapted knots, where the paths differ most."""
    rng = np.random.default_rng(3)
    x = rng.uniform(-1, 1, (512, 4)).astype("float32")
    y = np.sin(x[:, :1] * 3) + x[:, 1:2] ** 2
    results = []
    for jit in (False, True):
        model = keras_kan.KAN([4, 32, 1], seed=0)
        keras_kan.update_grids(model, x**3)
        model.compile(keras.optimizers.SGD(0.1), "mse", jit_compile=jit)
        losses = [float(model.train_on_batch(x, y)) for _ in range(3)]
        results.append((losses, model.get_weights(), model.predict_on_batch(x)))
    (loss_a, weights_a, pred_a), (loss_b, weights_b, pred_b) = results
    np.testing.assert_allclose(loss_a, loss_b, rtol=1e-5)
    for a, b in zip(weights_a, weights_b):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(pred_a, pred_b, rtol=1e-4, atol=1e-5)
    assert loss_a[-1] < loss_a[0]


@pytest.mark.skipif(BACKEND != "jax", reason="the chunked closed-form product is JAX's")
@pytest.mark.slow
def test_jax_chunked_product_matches_float64_reference(float64, monkeypatch):
    """Large closed-form features are multiplied in chunks of inputs (a `lax.scan`, the
    features rebuilt in the backward pass, the inputs padded to equal chunks): output,
    kernel gradients and first and second input derivatives against scipy, float64.
    The thresholds are lowered so that 5 inputs make 3 chunks of 2 (one padded)."""
    k = 3
    import jax
    import jax.numpy as jnp

    from keras_kan.backend import jax as jax_backend

    knots = _knots("uniform", k, n=5, grid=4)
    x = _samples(knots, rows=41, seed=60 + k)
    n_basis = knots.shape[1] - k - 1
    per_input = x.shape[0] * (n_basis + 1) * 8
    monkeypatch.setattr(jax_backend, "_CHUNKED_ABOVE", 0)
    monkeypatch.setattr(jax_backend, "_CHUNK_BYTES", 2 * per_input)
    assert jax_backend._feature_chunks(x.shape[0], 5, n_basis + 1, jnp.float64) == 3
    rng = np.random.default_rng(k)
    spline_kernel = rng.normal(size=(5 * n_basis, 3))
    base_kernel = rng.normal(size=(5, 3))
    w = rng.normal(size=(x.shape[0], 3))
    knots_t = jnp.asarray(knots)

    def product(x, spline_kernel, base_kernel):
        return kan_backend.kan_product(x, jax.nn.silu(x), knots_t, k, True, spline_kernel,
                                       base_kernel)

    def loss(x, spline_kernel, base_kernel):
        out = product(x, spline_kernel, base_kernel)
        return jnp.sum(out * w), out

    (_, out), grads = jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2), has_aux=True))(
        jnp.asarray(x), jnp.asarray(spline_kernel), jnp.asarray(base_kernel))
    basis = _scipy_basis(x, knots, k)  # (B, n, K)
    flat = basis.reshape(x.shape[0], -1)
    silu = x / (1.0 + np.exp(-x))
    np.testing.assert_allclose(to_numpy(out), flat @ spline_kernel + silu @ base_kernel,
                               atol=1e-10, rtol=0)
    np.testing.assert_allclose(to_numpy(grads[1]), flat.T @ w, atol=1e-10, rtol=0)
    np.testing.assert_allclose(to_numpy(grads[2]), silu.T @ w, atol=1e-10, rtol=0)
    coefficients = spline_kernel.reshape(5, n_basis, 3)
    d_silu = 1.0 / (1.0 + np.exp(-x)) * (1.0 + x * (1.0 - 1.0 / (1.0 + np.exp(-x))))
    slopes = np.einsum("bnp,npm->bnm", _scipy_basis(x, knots, k, 1), coefficients)
    expected_x = np.einsum("bnm,bm->bn", slopes + d_silu[..., None] * base_kernel, w)
    np.testing.assert_allclose(to_numpy(grads[0]), expected_x, atol=1e-8, rtol=0)

    def first_output(z):
        return product(z, jnp.asarray(spline_kernel), jnp.asarray(base_kernel))[:, 0]

    grad, second = jax.jit(lambda z: kan_backend.input_derivatives(first_output, z, True))(
        jnp.asarray(x))
    curvature = np.einsum("bnp,np->bn", _scipy_basis(x, knots, k, 2), coefficients[..., 0])
    sig = 1.0 / (1.0 + np.exp(-x))
    dd_silu = sig * (1 - sig) * (2 + x * (1 - 2 * sig))
    np.testing.assert_allclose(to_numpy(grad), slopes[..., 0] + d_silu * base_kernel[:, 0],
                               atol=1e-8, rtol=0)
    np.testing.assert_allclose(to_numpy(second), curvature + dd_silu * base_kernel[:, 0],
                               atol=1e-7 * max(1, np.abs(curvature).max()), rtol=0)
