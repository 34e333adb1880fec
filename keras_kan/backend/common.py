"""Pieces every backend's objective shares: the loss call and the result type."""

import inspect

import numpy as np

__all__ = ["compute_loss", "forward_loss", "objective_loss", "ValueAndGrad", "to_float64"]


def compute_loss(model, x, y, y_pred, sample_weight, training=True):
    """`model.compute_loss(...)`, also for overrides written before its `training` argument."""
    if "training" in inspect.signature(model.compute_loss).parameters:
        return model.compute_loss(
            x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=training
        )
    return model.compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight)


def forward_loss(model, x, y, sample_weight, training):
    """`(loss, y_pred)`: the model called on `x`, then its compiled loss plus `model.losses`."""
    y_pred = model(x, training=training)
    return compute_loss(model, x, y, y_pred, sample_weight, training=training), y_pred


def objective_loss(objective):
    """A `forward_loss` stand-in that returns `(objective(model), None)`; data are ignored.

    The objective must return one scalar: anything else raises a `ValueError`
    when the function is traced (before any weight changes).
    """

    def loss(model, x, y, sample_weight, training):
        del x, y, sample_weight, training
        value = objective(model)
        shape = getattr(value, "shape", None)
        if value is None or shape is None or tuple(shape) not in ((), (1,)):
            what = "None" if value is None else (
                f"shape {tuple(shape)}" if shape is not None else type(value).__name__)
            raise ValueError(
                "fit_lbfgs: `objective(model)` must return the loss as a scalar tensor "
                f"(e.g. keras.ops.mean(residual ** 2)); it returned {what}."
            )
        return value.reshape(()) if tuple(shape) == (1,) else value, None

    return loss


class ValueAndGrad:
    """`f(x, y, sample_weight=None) -> (loss, grad)` at the variables' current values.

    `f.at(weights, x, y, sample_weight=None)` evaluates at other values of the
    trainable variables (see `keras_kan.backend.value_and_grad_fn`).
    """

    def __init__(self, at, read):
        self.at = at
        self._read = read

    def __call__(self, x, y, sample_weight=None):
        return self.at(self._read(), x, y, sample_weight)


def to_float64(flat):
    """Any array-like -> a 1-D float64 NumPy array."""
    return np.asarray(flat).astype(np.float64, copy=False).reshape(-1)


def flat_dtype(variables):
    """The dtype of one flat vector holding `variables` (their common float dtype).

    (Not `keras.backend.result_type`: in Keras 3.15 it returns float32 for two
    float64 arguments.)
    """
    import keras

    names = sorted({keras.backend.standardize_dtype(v.dtype) for v in variables})
    if not names:
        return keras.config.floatx()
    if len(names) == 1:
        return names[0]
    return np.result_type(*names).name
