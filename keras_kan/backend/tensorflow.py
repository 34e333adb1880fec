"""TensorFlow: the L-BFGS objective in a `tf.function`, the fused spline basis, grid checks.

The objective is differentiated with `tf.GradientTape` inside a `tf.function`
(XLA when `model.jit_compile` is true, with a fallback to a plain graph).
"""

import contextlib
import threading

import numpy as np
import tensorflow as tf

from keras_kan import splines
from keras_kan.backend.common import ValueAndGrad, forward_loss, to_float64
from keras_kan.backend.common import flat_dtype as common_flat_dtype

__all__ = ["make_value_and_grad", "make_evaluate", "spline_basis", "spline_derivative_bases",
           "spline_matmul", "kan_product", "plain_graphs", "is_traced", "value_token",
           "check_grid_uniform", "sync_model_state", "input_derivatives"]


# --- objective ------------------------------------------------------------------


def _compile(model, fn):
    if model.run_eagerly:
        return fn
    if not getattr(model, "jit_compile", False):
        return tf.function(fn, reduce_retracing=True)
    xla = tf.function(fn, jit_compile=True, reduce_retracing=True)
    plain = tf.function(fn, reduce_retracing=True)
    use_xla = [True]

    def compiled(*args):
        # Fall back to a plain graph when XLA cannot compile the model.
        if use_xla[0]:
            try:
                return xla(*args)
            except (tf.errors.InvalidArgumentError, tf.errors.UnimplementedError):
                use_xla[0] = False
        return plain(*args)

    return compiled



def _assign_flat(trainable, sizes, flat):
    """Writes the flat vector `flat (sum(sizes),)` into the variables, each in its dtype."""
    pieces = tf.split(flat, sizes) if trainable else []
    for v, w in zip(trainable, pieces):
        v.assign(tf.cast(tf.reshape(w, v.shape), v.dtype))


def _loss_and_flat_gradient(model_ref, loss_fn, trainable, x, y, sample_weight, dtype):
    """`(loss, gradient (n,) in dtype)` of the training objective under a tape; zeros
    for a variable the loss does not reach."""
    with tf.GradientTape() as tape:
        loss, _ = loss_fn(model_ref(), x, y, sample_weight, training=True)
    grads = tape.gradient(loss, trainable)
    flat = []
    for v, g in zip(trainable, grads):
        if g is None:
            g = tf.zeros(v.shape, dtype=v.dtype)
        elif isinstance(g, tf.IndexedSlices):
            g = tf.convert_to_tensor(g)
        flat.append(tf.reshape(tf.cast(g, dtype), [-1]))
    return loss, (tf.concat(flat, axis=0) if flat else tf.zeros((0,), dtype))

def make_value_and_grad(model_ref, loss_fn=forward_loss):
    model = model_ref()
    trainable = list(model.trainable_variables)
    if tf.distribute.has_strategy() or any(
        isinstance(v.value, tf.distribute.DistributedValues) for v in trainable
    ):
        raise ValueError(
            "fit_lbfgs does not run under a tf.distribute strategy (its full-batch "
            "objective is evaluated outside a replica context). Train with model.fit under "
            "the strategy, or run fit_lbfgs on a model built without one (or on JAX with "
            "keras.distribution, where the objective is sharded)."
        )
    sizes = [int(np.prod(v.shape)) for v in trainable]

    def value_and_grad(flat_weights, x, y, sample_weight):
        if flat_weights is not None:
            _assign_flat(trainable, sizes, flat_weights)
        return _loss_and_flat_gradient(model_ref, loss_fn, trainable, x, y, sample_weight,
                                       tf.float64)

    compiled = _compile(model, value_and_grad)

    def at(weights, x, y, sample_weight=None):
        # One float64 vector in, split and assigned inside the compiled function.
        if weights is not None:
            weights = np.concatenate(
                [np.ravel(w).astype(np.float64) for w in weights]
            ) if len(weights) else np.zeros((0,))
            weights = tf.constant(weights)
        loss, flat = compiled(weights, x, y, sample_weight)
        return float(loss), to_float64(flat.numpy())

    return ValueAndGrad(at, lambda: None)


def make_evaluate(model_ref):
    def run(x, y, sample_weight):
        return forward_loss(model_ref(), x, y, sample_weight, training=False)

    compiled = _compile(model_ref(), run)

    def evaluate(x, y, sample_weight=None):
        loss, y_pred = compiled(x, y, sample_weight)
        return float(loss), y_pred

    return evaluate


# --- input derivatives -----------------------------------------------------------


def input_derivatives(fn, x, second):
    """`(gradient (B, n), hessian diagonal (B, n) or None)` of `fn: (B, n) -> (B,)` at `x`.

    Nested `GradientTape`s (eager or inside a `tf.function`); an outer tape
    that records the weights sees every op, so the results are
    differentiable with respect to them.
    """
    x = tf.convert_to_tensor(x)
    with tf.GradientTape(persistent=True) as outer:
        outer.watch(x)
        with tf.GradientTape() as inner:
            inner.watch(x)
            y = fn(x)
        grad = inner.gradient(y, x, unconnected_gradients=tf.UnconnectedGradients.ZERO)
        columns = [grad[:, i] for i in range(x.shape[-1])] if second else []
    diagonal = None
    if second:
        diagonal = tf.stack(
            [outer.gradient(c, x, unconnected_gradients=tf.UnconnectedGradients.ZERO)[:, i]
             for i, c in enumerate(columns)], -1)
    del outer
    return grad, diagonal


# --- spline basis ---------------------------------------------------------------

_PLAIN = threading.local()


@contextlib.contextmanager
def plain_graphs():
    """Within it, traced calls build the basis from plain TensorFlow ops (no XLA hints).

    For graphs that leave the process: the SavedModel, LiteRT and ONNX writers
    trace under it, so what they hold is ordinary ops that every runtime runs.
    """
    depth = getattr(_PLAIN, "depth", 0)
    _PLAIN.depth = depth + 1
    try:
        yield
    finally:
        _PLAIN.depth = depth


# Basis tensors smaller than this many elements (`B n K`) skip the XLA marking;
# a batch size unknown when tracing (as in `model.fit`) counts as
# `UNKNOWN_BATCH`. Measured on 2 cores, one layer's basis and gradient in a
# `tf.function` (benchmarks/tf_basis_marking.py, 2026-12-04): the marked graph's
# first call costs 0.2 s more than the plain one's on uniform knots and 1.0-3.2 s
# more on adapted ones, while a marked call saves at most ~0.7 ms below 2^16
# elements (paid back after 1500 steps or more) and takes 0.14-0.8x the time
# above 2^19.
MARK_FOR_XLA_FROM = 2**16
UNKNOWN_BATCH = 256


def spline_basis(x, knots, spline_order, uniform):
    """The basis `(..., n, K)`; in a traced graph of a large input, one XLA cluster forward
    and one backward.

    Keras's default `compile()` on a CPU-only TensorFlow runs a plain graph (no
    XLA). There every elementwise op of the basis is its own pass over the
    `(B, n, K)` tensor, and on large inputs those passes cost 2-4 times the
    fused ones. The basis ops are therefore marked for XLA (`jit_scope`):
    TensorFlow fuses them into one compiled cluster inside the plain graph and
    runs the rest (the matmul on oneDNN) as before. Its gradient with respect
    to `x` is built inside a second marked scope so that it fuses too: on
    uniform knots TensorFlow's own derivative of the closed form, on other
    knots the closed form of `_general_basis`.

    Compiling the clusters takes seconds, which a small input never wins back,
    so the marking applies from `MARK_FOR_XLA_FROM` basis elements, counted
    from the static shape when tracing (an unknown batch size counts as
    `UNKNOWN_BATCH`). A `tf.cond` on the runtime size was measured and
    rejected: it made both the first call and each later one slower than
    either branch alone. Eager calls, graphs traced under `plain_graphs()` and
    graphs that XLA compiles whole (`jit_compile=True`) are not marked.

    Args:
        x: `(..., n)`.
        knots: `(n, L)`.
        spline_order: `k`.
        uniform: a Python bool, True only if every row of `knots` is evenly spaced.
    """
    knots = tf.convert_to_tensor(knots)
    if uniform and spline_order >= 1:
        if _marked(x, knots, spline_order):
            return _marked_basis(x, knots, spline_order)
        return splines.uniform_bspline_basis(x, knots, spline_order)
    return tf.experimental.numpy.swapaxes(_general_basis(x, knots, spline_order), -1, -2)


def spline_matmul(x, knots, spline_order, uniform, kernel):
    """`basis(x) @ kernel`: `x (B, n)`, kernel `(n K, m)` -> `(B, m)` in `kernel`'s dtype.

    The matmul stays outside the XLA-marked basis: oneDNN's product and its
    gradient measured faster than XLA:CPU's (7.7 vs 33.6 ms for the kernel
    gradient at `[784, 64, 10]`). On knots that are not uniform the basis is
    knot-major `(B, K, n)` (`_general_basis`) and the kernel is transposed to
    match.
    """
    knots = tf.convert_to_tensor(knots)
    if uniform and spline_order >= 1:
        basis = spline_basis(x, knots, spline_order, uniform)
    else:
        basis = _general_basis(x, knots, spline_order)  # (B, K, n)
        n, m = x.shape[-1], kernel.shape[-1]
        kernel = tf.reshape(tf.transpose(tf.reshape(kernel, (n, -1, m)), (1, 0, 2)), (-1, m))
    return tf.matmul(tf.reshape(tf.cast(basis, kernel.dtype), (-1, kernel.shape[0])), kernel)


def kan_product(x, base, knots, spline_order, uniform, spline_kernel, base_kernel):
    """`basis(x) @ spline_kernel + base @ base_kernel`, `(B, m)`, as two products.

    Args:
        x: `(B, n)`; base: `(B, n)` base activations; spline_kernel: `(n K, m)`;
        base_kernel: `(n, m)`, both in the compute dtype.
    """
    outputs = spline_matmul(x, knots, spline_order, uniform, spline_kernel)
    return outputs + tf.matmul(tf.cast(base, base_kernel.dtype), base_kernel)


def _marked(x, knots, spline_order, outputs=1):
    """Whether the basis of `x` is marked for XLA (see `spline_basis`); `outputs` tensors
    of the basis's size count as that many bases."""
    if tf.executing_eagerly() or getattr(_PLAIN, "depth", 0) or _xla_compiling():
        return False
    size = outputs * (knots.shape[-1] - spline_order - 1)  # K per output
    for dim in x.shape:
        size *= UNKNOWN_BATCH if dim is None else dim
    return size >= MARK_FOR_XLA_FROM


def _xla_scope(marked):
    return tf.xla.experimental.jit_scope(compile_ops=True) if marked else contextlib.nullcontext()


def _general_basis(x, knots, spline_order):
    """The basis on any knots, knot-major: `x (..., n)`, knots `(n, L)` tensor -> `(..., K, n)`.

    Cox–de Boor (`splines.cox_de_boor`): on per-basis columns inside an XLA
    cluster when marked (`_marked`), as whole-tensor passes otherwise. Its
    gradient is the closed form (`splines.cox_de_boor_slopes`) of the order
    `k - 1` basis, itself this function, so second derivatives are closed forms
    too. Measured at `(1024, 784)`, `G = 5`, 2 cores, basis times a kernel: forward
    7 against 60 ms for the gather-based recursion it replaced, input gradient
    39 against 122 ms. The knots get no gradient (the grid is not trained).
    """
    marked = _marked(x, knots, spline_order)

    @tf.custom_gradient
    def basis(x):
        with _xla_scope(marked):
            value = splines.knot_major_basis(x, knots, spline_order, columns=marked)

        def gradient(upstream):
            if spline_order == 0:
                return tf.zeros_like(x)
            lower = _general_basis(x, knots, spline_order - 1)
            with _xla_scope(marked):
                tables = splines.recursion_tables(tf.cast(knots, x.dtype), spline_order)
                slopes = splines.cox_de_boor_slopes(lower, tables, spline_order)
                return tf.reduce_sum(slopes * upstream, axis=-2)

        return value, gradient

    return basis(x)


def _marked_basis(x, knots, spline_order):
    """The closed form on uniform knots in an XLA cluster, and its gradient in another."""

    def basis(x):
        return splines.uniform_bspline_basis(x, knots, spline_order)

    @tf.custom_gradient
    def marked(x):
        with tf.xla.experimental.jit_scope(compile_ops=True):
            values = basis(x)

        def gradient(upstream):
            with tf.xla.experimental.jit_scope(compile_ops=True):
                with tf.GradientTape() as tape:
                    tape.watch(x)
                    again = basis(x)
                return tape.gradient(again, x, output_gradients=upstream)

        return values, gradient

    return marked(x)


def spline_derivative_bases(x, knots, spline_order, order, uniform):
    """The basis and its first `order` input derivatives, `order + 1` tensors `(..., n, K)`
    (`splines.bspline_derivative_bases`), what the jet (`keras_kan.jet`) uses.

    Marked for XLA as `spline_basis` is (in a traced graph, from `MARK_FOR_XLA_FROM`
    elements, the `order + 1` outputs counted together): the closed form on uniform
    knots, the recursion on others, in one cluster. Its gradient with respect to `x` is
    the same function one order higher (`d B^(j) / dx = B^(j+1)`), marked too, so
    derivatives of any order are closed forms in fused clusters: the weight gradient of
    a physics-informed loss differentiates the next layer's bases through the previous
    layers' outputs. Unmarked calls run the same ops unmarked, differentiated by
    TensorFlow.

    The recursion keeps its whole-tensor layout inside the cluster (`columns=False`):
    on the Poisson mesh, `[2, 2, 1]` on updated grids (`G = 20`, loaded 2-core machine),
    the per-basis columns that `spline_basis` uses compiled in 27 s more than the plain
    graph against 5 s, for a per-call time of 0.31x the plain graph's against 0.37x.

    Args:
        x: `(..., n)`.
        knots: `(n, L)`.
        spline_order: `k`.
        order: how many derivatives (1 or 2 for the jet; any `>= 1`).
        uniform: a Python bool, True only if every row of `knots` is evenly spaced.
    """
    knots = tf.convert_to_tensor(knots)
    if not _marked(x, knots, spline_order, order + 1):
        return splines.bspline_derivative_bases(x, knots, spline_order, order, uniform)
    return _marked_derivative_bases(x, knots, spline_order, order, uniform)


def _marked_derivative_bases(x, knots, spline_order, order, uniform):
    @tf.custom_gradient
    def bases(x):
        with tf.xla.experimental.jit_scope(compile_ops=True):
            values = splines.bspline_derivative_bases(x, knots, spline_order, order, uniform)

        def gradient(*upstream):
            higher = _marked_derivative_bases(x, knots, spline_order, order + 1, uniform)[1:]
            with tf.xla.experimental.jit_scope(compile_ops=True):
                terms = [tf.reduce_sum(u * h, axis=-1)
                         for u, h in zip(upstream, higher) if u is not None]
                return tf.add_n(terms) if terms else tf.zeros_like(x)

        return values, gradient

    return bases(x)


# --- grid state -----------------------------------------------------------------


def is_traced(x):
    """Whether the call builds a graph (`tf.function`) rather than running eagerly."""
    return not tf.executing_eagerly()


def value_token(variable):
    """`None`: TensorFlow variables have no cheap write counter (the layer re-reads)."""
    return None


def check_grid_uniform(knots, ok, message):
    """`knots`, after a check that raises `InvalidArgumentError(message)` if `ok` is false.

    XLA drops assertions, so under `jit_compile=True` a failed check turns the
    knots (and so every output) into NaN instead: loud, never silently wrong.
    """
    with tf.control_dependencies([tf.debugging.Assert(ok, [message])]):
        return knots + tf.where(ok, tf.zeros((), knots.dtype), tf.constant(np.nan, knots.dtype))


def sync_model_state(model):
    """Nothing to do: TensorFlow's trainer writes the variables in place."""


def host_report(fn, value):
    """Call `fn(array)` on the host with `value` (a small 1-D float32 tensor) when the
    graph runs; returns a float32 zero for the caller to add to its result (so the op is kept).

    A stateful `tf.numpy_function` on gradient-stopped values (see
    `keras_kan.coverage`); XLA cannot compile it, so under `jit_compile=True`
    nothing is reported (returns None).
    """
    if _xla_compiling():
        return None

    def callback(v):
        fn(np.asarray(v, np.float64))
        return np.zeros((), np.float32)

    out = tf.numpy_function(callback, [tf.stop_gradient(value)], tf.float32, stateful=True)
    out.set_shape(())
    return out


def _xla_compiling():
    """Whether the graph being traced is compiled by XLA (`jit_compile=True`)."""
    try:
        from tensorflow.python.ops import control_flow_util
    except ImportError:  # pragma: no cover - layout of another TensorFlow version
        return True  # unknown: report nothing rather than break the compile
    return bool(control_flow_util.GraphOrParentsInXlaContext(tf.compat.v1.get_default_graph()))


# --- L-BFGS steps inside one compiled program --------------------------------------


def make_lbfgs_program(model_ref, loss_fn, run):
    """`program(flat, state, n_steps, x, y, sample_weight) -> (flat, state, *outputs)` in
    ONE `tf.function`: `run(evaluate, flat, state, aux, n_steps)` (keras.ops, e.g.
    `keras_kan.lbfgs_compiled.run_steps`) with `evaluate(flat, aux) -> (loss, grad, aux)`:
    the flat vector `(n,)` (the variables' dtype) is assigned to the variables, the loss
    differentiated with a tape. `aux` is empty: non-trainable updates happen in place.
    XLA (`jit_compile=True`) when `model.jit_compile` is true, with a plain-graph fallback.
    """
    model = model_ref()
    trainable = list(model.trainable_variables)
    sizes = [int(np.prod(v.shape)) for v in trainable]
    flat_dtype = tf.as_dtype(common_flat_dtype(trainable))

    def program(flat, state, n_steps, x, y, sample_weight):
        def evaluate(flat, aux):
            _assign_flat(trainable, sizes, flat)
            loss, flat_g = _loss_and_flat_gradient(model_ref, loss_fn, trainable, x, y,
                                                   sample_weight, flat_dtype)
            loss = tf.cast(loss, flat_dtype)
            finite = tf.math.is_finite(loss) & tf.reduce_all(tf.math.is_finite(flat_g))
            return tf.where(finite, loss, tf.constant(np.inf, flat_dtype)), flat_g, aux

        flat, state, _, *outputs = run(evaluate, flat, state, (), n_steps)
        return (flat, state, *outputs)

    compiled = _compile(model, program)

    def call(flat, state, n_steps, x, y, sample_weight=None):
        return compiled(tf.convert_to_tensor(flat, flat_dtype), state,
                        tf.constant(n_steps, tf.int32), x, y, sample_weight)

    call.dtype = flat_dtype.name
    return call
