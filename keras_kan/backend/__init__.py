"""The one place with backend-specific code.

Everything else in keras_kan is written once against `keras.ops`. What cannot
be (gradients for L-BFGS, the fastest exact spline basis, telling eager calls
from traced ones) lives here, split by job:

- `objective.py`: the compiled training objective and evaluation that
  `fit_lbfgs` calls, cached per model;
- `common.py`: the loss call shared by every backend's objective;
- `jax.py`, `tensorflow.py`, `torch.py`: one file per backend, each with its
  objective, its spline basis, its grid-write checks and
  `input_derivatives(fn, x, second)`, the input gradient and Hessian diagonal
  behind `keras_kan.autodiff` (same contract on every backend);
- `export_tensorflow.py`, `export_torch.py`: the file writers behind
  `keras_kan.export` (imported by it when needed, never here).

The module for `keras.backend.backend()` is chosen once, at import, as Keras
chooses `keras/src/backend/<name>/`; this package re-exports its functions
under one set of names.
"""

import importlib

import keras
from keras import ops

from keras_kan.backend.common import compute_loss
from keras_kan.backend.objective import (
    evaluate_fn,
    objective_value_and_grad_fn,
    reset_compiled_functions,
    value_and_grad_fn,
)

BACKEND = keras.backend.backend()
if BACKEND not in ("jax", "tensorflow", "torch"):
    raise ImportError(
        f"keras_kan supports the tensorflow, jax and torch Keras backends; "
        f"KERAS_BACKEND is {BACKEND!r}."
    )
_impl = importlib.import_module(f"keras_kan.backend.{BACKEND}")

spline_basis = _impl.spline_basis


def _basis_matmul(x, knots, spline_order, uniform, kernel):
    """`spline_basis(x) @ kernel`: `x (B, n)`, kernel `(n K, m)` -> `(B, m)` in its dtype."""
    basis = spline_basis(x, knots, spline_order, uniform)
    return ops.matmul(ops.reshape(ops.cast(basis, kernel.dtype), (-1, kernel.shape[0])), kernel)


spline_matmul = getattr(_impl, "spline_matmul", _basis_matmul)


def _two_products(x, base, knots, spline_order, uniform, spline_kernel, base_kernel):
    """`spline_matmul(x, ...) + base @ base_kernel`: the layer's output before its bias.

    Args:
        x: `(B, n)`; base: `(B, n)` base activations; spline_kernel: `(n K, m)`;
        base_kernel: `(n, m)`, both in the compute dtype.
    """
    outputs = spline_matmul(x, knots, spline_order, uniform, spline_kernel)
    return outputs + ops.matmul(ops.cast(base, base_kernel.dtype), base_kernel)


kan_product = getattr(_impl, "kan_product", _two_products)
is_traced = _impl.is_traced
value_token = _impl.value_token
check_grid_uniform = _impl.check_grid_uniform
sync_model_state = _impl.sync_model_state
input_derivatives = _impl.input_derivatives

__all__ = [
    "BACKEND",
    "value_and_grad_fn",
    "objective_value_and_grad_fn",
    "evaluate_fn",
    "compute_loss",
    "reset_compiled_functions",
    "spline_basis",
    "spline_matmul",
    "kan_product",
    "is_traced",
    "value_token",
    "check_grid_uniform",
    "sync_model_state",
    "input_derivatives",
]
