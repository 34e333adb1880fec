"""JAX: the L-BFGS objective under `jax.jit`, the fused spline basis, grid-write checks.

The forward pass and `model.compute_loss` run inside a `keras.StatelessScope`
(so `add_loss` penalties and weight regularizers see the traced values),
differentiated by `jax.value_and_grad` under `jax.jit`. Non-trainable
variables updated by the forward pass are written back.
"""

import functools

import jax
import jax.numpy as jnp
import keras
import numpy as np

from keras_kan import splines
from keras_kan.backend.common import ValueAndGrad, forward_loss, to_float64
from keras_kan.backend.common import flat_dtype as common_flat_dtype

__all__ = ["make_value_and_grad", "make_evaluate", "spline_basis", "spline_derivative_bases",
           "spline_matmul", "kan_product", "is_traced", "value_token", "check_grid_uniform",
           "sync_model_state", "input_derivatives"]


# --- objective ------------------------------------------------------------------


def _stateless(model, variables, values, fn):
    """Runs `fn()` with `variables` set to `values`; returns (result, {index: updated})."""
    with keras.StatelessScope(state_mapping=list(zip(variables, values)),
                              collect_losses=True) as scope:
        before = [scope.get_current_value(v) for v in variables]
        result = fn()
    # Only the variables that were assigned come back (a dict keyed by position:
    # its keys are static under `jax.jit`).
    updates = {}
    for i, (v, old) in enumerate(zip(variables, before)):
        new = scope.get_current_value(v)
        if new is not None and new is not old:
            updates[i] = new
    return result, updates


def make_value_and_grad(model_ref, loss_fn=forward_loss):
    model = model_ref()
    trainable = list(model.trainable_variables)
    non_trainable = list(model.non_trainable_variables)
    n_train = len(trainable)

    def objective(train_values, non_train_values, x, y, sample_weight):
        m = model_ref()
        (loss, _), updates = _stateless(
            m, trainable + non_trainable, list(train_values) + list(non_train_values),
            lambda: loss_fn(m, x, y, sample_weight, training=True),
        )
        return loss, {i - n_train: v for i, v in updates.items() if i >= n_train}

    def value_and_grad(train_values, non_train_values, x, y, sample_weight):
        (loss, updates), grads = jax.value_and_grad(objective, has_aux=True)(
            train_values, non_train_values, x, y, sample_weight
        )
        flat = [jnp.ravel(g) for g in grads]
        flat = jnp.concatenate(flat) if flat else jnp.zeros((0,))
        return loss, flat, updates

    if not model.run_eagerly:
        value_and_grad = jax.jit(value_and_grad)

    def at(weights, x, y, sample_weight=None):
        # NumPy arguments go straight to the compiled function (one transfer);
        # under a keras.distribution they are first laid out on its mesh.
        args = (list(weights), [v.value for v in non_trainable], x, y, sample_weight)
        args = _distribute(args, trainable, strict=True)
        result.input_shardings = _shardings(args)
        loss, flat, updates = value_and_grad(*args)
        for i, value in updates.items():
            non_trainable[i].assign(value)
        return float(loss), to_float64(flat)

    result = ValueAndGrad(at, lambda: [v.value for v in trainable])
    result.input_shardings = None
    return result


def make_evaluate(model_ref):
    model = model_ref()
    variables = list(model.variables) + list(model.metrics_variables)

    def run(values, x, y, sample_weight):
        m = model_ref()
        return _stateless(
            m, variables, values, lambda: forward_loss(m, x, y, sample_weight, training=False)
        )

    if not model.run_eagerly:
        run = jax.jit(run)

    def evaluate(x, y, sample_weight=None):
        values = [v.value for v in variables]
        _, x, y, sample_weight = _distribute((values, x, y, sample_weight), (), strict=False)
        (loss, y_pred), updates = run(values, x, y, sample_weight)
        for i, value in updates.items():
            variables[i].assign(value)
        return float(loss), y_pred

    return evaluate


# --- input derivatives -----------------------------------------------------------


def input_derivatives(fn, x, second):
    """`(gradient (B, n), hessian diagonal (B, n) or None)` of `fn: (B, n) -> (B,)` at `x`.

    Rows are independent, so one VJP with a cotangent of ones gives every
    row's gradient, and for the Hessian diagonal one more VJP per input
    (reverse over reverse: the layer's product has a custom VJP, which
    forward mode cannot enter). Plain JAX transformations: they run eagerly,
    under `jax.jit` and inside `jax.grad` with respect to the weights.
    """
    x = jnp.asarray(x)

    def grad_fn(z):
        y, pullback = jax.vjp(fn, z)
        return pullback(jnp.ones_like(y))[0]

    grad = grad_fn(x)
    diagonal = None
    if second:
        columns = []
        for i in range(x.shape[-1]):
            column, pullback = jax.vjp(lambda z, i=i: grad_fn(z)[:, i], x)
            columns.append(pullback(jnp.ones_like(column))[0][:, i])
        diagonal = jnp.stack(columns, -1)
    return grad, diagonal


# --- keras.distribution ----------------------------------------------------------


def _distribute(args, trainable, strict):
    """`(weights, non_trainable, x, y, sample_weight)` laid out for the active distribution.

    Without a `keras.distribution` the arguments are returned as they are.
    Under one, every trainable value gets its variable's sharding and the
    data arrays are split along their batch axis as the distribution's
    `get_data_layout` says (as `model.fit` does), so the compiled objective
    runs data parallel (and model parallel where the variables are sharded).
    The data are the global batch, the same on every process. A batch that
    does not split evenly raises (`strict`) or stays as it is.
    """
    distribution = keras.distribution.distribution()
    if distribution is None:
        return args
    weights, non_train, *data = args
    weights = [_put(w, v.value.sharding) for w, v in zip(weights, trainable)]
    mesh = distribution.device_mesh
    shards = mesh.shape[list(mesh.axis_names).index(distribution.batch_dim_name)]

    def place(a):
        if a is None:
            return None
        shape = tuple(a.shape)
        if not shape or shape[0] % shards:
            if strict and shape:
                raise ValueError(
                    f"fit_lbfgs under {type(distribution).__name__}: the batch of {shape[0]} "
                    f"samples does not split evenly across the {shards} devices of the mesh "
                    f"axis '{distribution.batch_dim_name}'; use a multiple of {shards} samples "
                    "(or of batch_size)."
                )
            return a
        return _put(a, distribution.get_data_layout(shape).backend_layout)

    return (weights, non_train, *keras.tree.map_structure(place, data))


def _put(a, sharding):
    """`a` (NumPy or a JAX array) as a global array with `sharding`."""
    if isinstance(a, jax.Array):
        if a.sharding.is_equivalent_to(sharding, a.ndim):
            return a
        if a.is_fully_addressable:
            return jax.device_put(a, sharding)
    host = jax.device_get(a) if isinstance(a, jax.Array) else a
    return jax.make_array_from_callback(tuple(host.shape), sharding, lambda index: host[index])


def _shardings(args):
    """The shardings of the arrays in `args` (None for other leaves)."""
    return jax.tree.map(lambda a: getattr(a, "sharding", None), args,
                        is_leaf=lambda a: a is None)


# --- spline product ----------------------------------------------------------------
#
# The basis and the product are each one `jax.jit` function (`spline_order` and
# `uniform` static). Inside a compiled step that changes nothing (a nested jit is
# inlined), but an eager call (`layer(x)`, grid updates, scores) then compiles one
# fused program per shape instead of dispatching, and compiling, each of the basis's
# ~100 small ops one by one: the first eager call of a layer on JAX took seconds.

@functools.partial(jax.custom_jvp, nondiff_argnums=(2,))
def _general_basis(x, knots, spline_order):
    """The basis on any knots, knot-major: `x (B, n)`, knots `(n, L)` -> `(B, K, n)`.

    Cox–de Boor on per-basis columns (`splines.cox_de_boor(columns=True)`), which
    XLA fuses into one pass. Its derivative is the closed form
    (`splines.cox_de_boor_slopes`) of the order `k - 1` basis, itself this
    function, so second derivatives (physics-informed losses) are closed forms
    too. XLA's own derivative of the recursion took 52 ms against 29 ms for the
    closed form (input gradient at `(1024, 784)`, `G = 5`, 2 cores). The knots
    get no derivative (the grid is not trained).
    """
    return splines.knot_major_basis(x, knots, spline_order)


@_general_basis.defjvp
def _general_basis_jvp(spline_order, primals, tangents):
    x, knots = primals
    dx = tangents[0]
    value = _general_basis(x, knots, spline_order)
    if spline_order == 0:
        return value, jnp.zeros_like(value)
    tables = splines.recursion_tables(knots.astype(x.dtype), spline_order, jnp)
    lower = _general_basis(x, knots, spline_order - 1)
    return value, splines.cox_de_boor_slopes(lower, tables, spline_order) * dx[..., None, :]


@functools.partial(jax.jit, static_argnums=(2, 3))
def _basis(x, knots, spline_order, uniform):
    if uniform and spline_order >= 1:
        return splines.uniform_bspline_basis(x, knots, spline_order)
    return jnp.swapaxes(_general_basis(x, knots, spline_order), -1, -2)


def _arrays(*values):
    """JAX arrays for tensors or Keras variables (a jit function takes no variable)."""
    return [jnp.asarray(v) for v in values]


def spline_basis(x, knots, spline_order, uniform):
    """The basis `x (B, n)`, knots `(n, L)` -> `(B, n, K)`, compiled: the closed form on
    uniform knots, `_general_basis` on others."""
    return _basis(*_arrays(x, knots), spline_order, uniform)


def spline_derivative_bases(x, knots, spline_order, order, uniform):
    """The basis and its first `order` input derivatives, `order + 1` tensors `(..., n, K)`:
    `splines.bspline_derivative_bases` as it is (traced inside the caller's `jax.jit`,
    differentiated by JAX)."""
    return splines.bspline_derivative_bases(x, knots, spline_order, order, uniform)


def spline_matmul(x, knots, spline_order, uniform, kernel):
    """`basis(x) @ kernel`: `x (B, n)`, kernel `(n K, m)` -> `(B, m)` in `kernel`'s dtype."""
    basis = spline_basis(x, knots, spline_order, uniform)
    return _product(jnp.reshape(basis.astype(kernel.dtype), (-1, kernel.shape[0])), kernel)


def kan_product(x, base, knots, spline_order, uniform, spline_kernel, base_kernel):
    """`basis(x) @ spline_kernel + base @ base_kernel` as ONE product, `(B, m)`.

    Unlike on the other backends, the features are concatenated: XLA fuses the
    basis and the concatenation into the product's operand, which measured up
    to 2x faster than two products (inference at `[64, 64, 64, 1]`,
    `B = 4096`, `G = 20`, 2 CPU cores). The product has its own gradient
    (`_product`) only to fix the layout of the kernel gradient. Features above
    16 MB are built and multiplied in chunks of inputs, rebuilt in the backward
    pass (`_scanned_product`: a step's temporaries above 32 MiB cost fresh pages
    from the OS on every call).

    On other knots the basis is knot-major `(B, K, n)` (`_general_basis`, the
    kernel transposed to match) and the base branch is a second product: each
    layout measured faster for its basis.

    Args:
        x: `(B, n)`; base: `(B, n)` base activations; spline_kernel: `(n K, m)`;
        base_kernel: `(n, m)`, both in the compute dtype.
    """
    return _kan_product(*_arrays(x, base, knots, spline_kernel, base_kernel), spline_order,
                        uniform)


@functools.partial(jax.jit, static_argnums=(5, 6))
def _kan_product(x, base, knots, spline_kernel, base_kernel, spline_order, uniform):
    if uniform and spline_order >= 1:
        chunks = _feature_chunks(x.shape[0], knots.shape[0], knots.shape[-1] - spline_order,
                                 spline_kernel.dtype)
        if chunks > 1:
            return _scanned_product(x, base, knots, spline_kernel, base_kernel, spline_order,
                                    chunks)
        return _uniform_product(x, base, knots, spline_kernel, base_kernel, spline_order)
    n, m = base_kernel.shape
    # Knot-major, and the base branch as its own product: concatenating it to this
    # basis measured 2x slower (36 against 16 ms at [784, 64] B=1024, G=5).
    basis = _general_basis(x, knots, spline_order).astype(spline_kernel.dtype)  # (B, K, n)
    kernel = jnp.swapaxes(jnp.reshape(spline_kernel, (n, -1, m)), 0, 1)  # (K, n, m)
    spline = _product(jnp.reshape(basis, (basis.shape[0], -1)), jnp.reshape(kernel, (-1, m)))
    return spline + base.astype(base_kernel.dtype) @ base_kernel


def _uniform_product(x, base, knots, spline_kernel, base_kernel, spline_order):
    """The closed-form features `(B, n (K+1))` (basis, then the base branch) times the
    kernel `(n (K+1), m)`: one product."""
    n, m = base_kernel.shape
    basis = splines.uniform_bspline_basis(x, knots, spline_order)  # (B, n, K)
    features = jnp.concatenate([basis, base[..., None]], axis=-1)
    kernel = jnp.concatenate([jnp.reshape(spline_kernel, (n, -1, m)),
                              base_kernel[:, None, :]], axis=1)  # (n, K+1, m)
    features = jnp.reshape(features.astype(spline_kernel.dtype), (features.shape[0], -1))
    return _product(features, jnp.reshape(kernel, (-1, m)))


#: Closed-form features `(B, n (K+1))` above this many bytes are built in chunks of
#: inputs (`_scanned_product`), each at most `_CHUNK_BYTES`.
_CHUNKED_ABOVE = 16 << 20
_CHUNK_BYTES = 8 << 20


def _feature_chunks(batch, n, features_per_input, dtype):
    """How many chunks of inputs `_kan_product` builds the closed-form features in (1: whole)."""
    per_input = batch * features_per_input * jnp.dtype(dtype).itemsize
    if per_input * n <= _CHUNKED_ABOVE:
        return 1
    return -(-n // max(1, _CHUNK_BYTES // per_input))


def _scanned_product(x, base, knots, spline_kernel, base_kernel, spline_order, chunks):
    """`_uniform_product` as a sum over `chunks` groups of inputs, in a `lax.scan` whose
    step is rematerialized (`jax.checkpoint`): the backward pass rebuilds each group's
    features instead of keeping all of them from the forward pass.

    Why: XLA:CPU allocates a step's temporaries as one block, and above glibc's
    largest dynamic mmap threshold (32 MiB) malloc serves that block with fresh pages
    on every call. A `[784, 64, 10]` `B = 1024`, `G = 5` training step keeps 29 MB
    of features for its kernel gradient (37 MiB of temporaries): under Keras's
    (donating) `jax.jit` step it took 9.5k page faults and 13-17 ms of kernel time a
    step, 49 against 31 ms of CPU with malloc told to keep its memory (2 cores,
    loaded). In chunks of at most 8 MB the temporaries are 18 MiB and the step
    faults nothing; rebuilding the features costs about 10% of a step where
    nothing faulted (`B = 512`), so only features above 16 MB are chunked. The
    knots on other grids keep one pass: their recursion and its closed-form
    derivative cost too much to rebuild (a scanned step took 1.6x the plain one).

    The inputs are padded to `chunks` equal groups (edge knots, zero inputs and
    zero kernel rows: a padded input adds exactly 0).
    """
    batch, n = x.shape
    m = base_kernel.shape[1]
    length = knots.shape[-1]
    n_basis = length - spline_order - 1
    size = -(-n // chunks)
    pad = chunks * size - n
    if pad:
        x = jnp.pad(x, ((0, 0), (0, pad)))
        base = jnp.pad(base, ((0, 0), (0, pad)))
        knots = jnp.pad(knots, ((0, pad), (0, 0)), mode="edge")
        spline_kernel = jnp.pad(spline_kernel, ((0, pad * n_basis), (0, 0)))
        base_kernel = jnp.pad(base_kernel, ((0, pad), (0, 0)))

    def groups(a):  # (B, n) -> (chunks, B, size)
        return jnp.swapaxes(jnp.reshape(a, (batch, chunks, size)), 0, 1)

    pieces = (groups(x), groups(base), jnp.reshape(knots, (chunks, size, length)),
              jnp.reshape(spline_kernel, (chunks, size * n_basis, m)),
              jnp.reshape(base_kernel, (chunks, size, m)))
    piece = jax.checkpoint(lambda args: _uniform_product(*args, spline_order))

    def step(total, args):
        return total + piece(args), None

    total, _ = jax.lax.scan(step, jnp.zeros((batch, m), spline_kernel.dtype), pieces)
    return total


@jax.custom_vjp
def _product(features, kernel):
    return features @ kernel


def _product_forward(features, kernel):
    return features @ kernel, (features, kernel)


def _product_backward(saved, upstream):
    """`(upstream @ kernel.T, features.T @ upstream)`, the second computed as
    `(upstream.T @ features).T`: XLA:CPU runs a product that contracts the
    batch axis of the wide `(B, n K)` features 1.7x faster in that orientation
    (measured on 2 cores at `B = 1024, n K = 6272, m = 64`), and the barrier
    keeps its simplifier from folding the transpose back into the slow one."""
    features, kernel = saved
    upstream = jax.lax.optimization_barrier(upstream)
    grad_kernel = jax.lax.optimization_barrier(upstream.T @ features).T
    return upstream @ kernel.T, grad_kernel


_product.defvjp(_product_forward, _product_backward)


# --- grid state -----------------------------------------------------------------


def is_traced(x):
    """Whether `x` is a tracer of a function being compiled."""
    return isinstance(x, jax.core.Tracer)


def value_token(variable):
    """The variable's current array (JAX replaces it on every write), or `None`."""
    value = variable.value
    return None if value is None or isinstance(value, jax.core.Tracer) else (value,)


def check_grid_uniform(knots, ok, message):
    """`knots`, or NaN knots (so NaN outputs) at run time if `ok` is false.

    Raising inside a compiled step is not safe here: Keras's JAX `predict`
    and `train_on_batch` detach the model's variables while a step runs and
    would lose them. A host warning (`jax.debug.callback`, even inside a
    `lax.cond` on `ok`) cost 10-14% of a `[784, 64, 10]` training step, so the
    step only turns its outputs into NaN: loud, never silently wrong numbers.
    A `lax.cond` to the general basis would be correct, but measured 3x slower.
    `message` is unused here (TensorFlow raises it).
    """
    del message
    return knots + jnp.where(ok, 0.0, jnp.nan).astype(knots.dtype)


def sync_model_state(model):
    """Write the JAX trainer's state back into the model's variables (mid-`fit`).

    The JAX trainer keeps the training state in its own arrays and only syncs
    at epoch ends; a callback that reads or edits weights mid-epoch must sync
    first (the trainer then reloads the variables before the next step).
    """
    sync = getattr(model, "jax_state_sync", None)
    if callable(sync):
        sync()


def host_report(fn, value):
    """Call `fn(array)` on the host with `value` (a small 1-D float32 tensor) when the
    step runs; returns a float32 zero for the caller to add to its result (so the call is kept).

    A `pure_callback` on gradient-stopped values: a `jax.debug.callback` (an effect)
    measured ~20% of a small training step, this ~4%, and only functions traced while
    a layer's report is pending carry it (see `keras_kan.coverage`).
    """
    def callback(v):
        fn(np.asarray(v, np.float64))
        return jnp.zeros((), jnp.float32)

    return jax.pure_callback(callback, jax.ShapeDtypeStruct((), jnp.float32),
                             jax.lax.stop_gradient(value))


# --- L-BFGS steps inside one compiled program --------------------------------------


def make_lbfgs_program(model_ref, loss_fn, run):
    """`program(flat, state, n_steps, x, y, sample_weight) -> (flat, state, *outputs)` under
    ONE `jax.jit`: `run(evaluate, flat, state, aux, n_steps)` (keras.ops, e.g.
    `keras_kan.lbfgs_compiled.run_steps`) with `evaluate(flat, aux) -> (loss, grad, aux)`,
    the objective at a flat vector `(n,)` in the variables' dtype. `aux` threads the
    non-trainable values the forward pass updates; they are written back after the call.
    """
    model = model_ref()
    trainable = list(model.trainable_variables)
    non_trainable = list(model.non_trainable_variables)
    n_train = len(trainable)
    shapes = [tuple(v.shape) for v in trainable]
    sizes = [int(np.prod(s)) for s in shapes]
    dtypes = [v.dtype for v in trainable]
    flat_dtype = common_flat_dtype(trainable)
    offsets = np.cumsum([0] + sizes)

    def program(flat, state, n_steps, x, y, sample_weight, aux):
        def evaluate(flat, aux):
            def objective(flat):
                values = [jnp.reshape(flat[a:b], s).astype(dt)
                          for a, b, s, dt in zip(offsets[:-1], offsets[1:], shapes, dtypes)]
                m = model_ref()
                (loss, _), updates = _stateless(
                    m, trainable + non_trainable, values + list(aux),
                    lambda: loss_fn(m, x, y, sample_weight, training=True))
                new_aux = [updates.get(n_train + i, a).astype(a.dtype)
                           for i, a in enumerate(aux)]
                return loss.astype(flat.dtype), new_aux

            (loss, new_aux), grad = jax.value_and_grad(objective, has_aux=True)(flat)
            finite = jnp.isfinite(loss) & jnp.all(jnp.isfinite(grad))
            return jnp.where(finite, loss, jnp.inf), grad, new_aux

        return run(evaluate, flat, state, aux, n_steps)

    if not model.run_eagerly:
        program = jax.jit(program)

    def call(flat, state, n_steps, x, y, sample_weight=None):
        aux = [v.value for v in non_trainable]
        flat, state, aux, *outputs = program(jnp.asarray(flat, flat_dtype), state,
                                             jnp.asarray(n_steps, jnp.int32), x, y,
                                             sample_weight, aux)
        for v, value in zip(non_trainable, aux):
            v.assign(value)
        return (flat, state, *outputs)

    call.dtype = flat_dtype
    return call
