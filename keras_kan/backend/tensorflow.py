"""TensorFlow: the L-BFGS objective in a `tf.function`, the fused spline basis, grid checks.

The objective is differentiated with `tf.GradientTape` inside a `tf.function`
(XLA when `model.jit_compile` is true, with a fallback to a plain graph).
"""

import numpy as np
import tensorflow as tf

from keras_kan.backend.common import ValueAndGrad, forward_loss, to_float64
from keras_kan.splines import fused_spline_basis as spline_basis

__all__ = ["make_value_and_grad", "make_evaluate", "spline_basis", "is_traced", "value_token",
           "check_grid_uniform", "sync_model_state"]


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


def make_value_and_grad(model_ref):
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
            pieces = tf.split(flat_weights, sizes) if trainable else []
            for v, w in zip(trainable, pieces):
                v.assign(tf.cast(tf.reshape(w, v.shape), v.dtype))
        with tf.GradientTape() as tape:
            loss, _ = forward_loss(model_ref(), x, y, sample_weight, training=True)
        grads = tape.gradient(loss, trainable)
        flat = []
        for v, g in zip(trainable, grads):
            if g is None:
                g = tf.zeros(v.shape, dtype=v.dtype)
            elif isinstance(g, tf.IndexedSlices):
                g = tf.convert_to_tensor(g)
            flat.append(tf.reshape(tf.cast(g, tf.float64), [-1]))
        flat = tf.concat(flat, axis=0) if flat else tf.zeros((0,), tf.float64)
        return loss, flat

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
