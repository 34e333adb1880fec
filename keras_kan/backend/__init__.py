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

from keras_kan.backend.common import compute_loss
from keras_kan.backend.objective import (
    evaluate_fn,
    lbfgs_program_fn,
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

#: What every backend module defines, with one meaning on every backend (no defaults):
#: - `spline_basis(x (B, n), knots (n, L), k, uniform) -> (B, n, K)`: the exact B-spline basis;
#: - `spline_derivative_bases(x (B, n), knots, k, order, uniform) -> [B, dB/dx, ...]`, `order + 1`
#:   tensors `(B, n, K)`: `splines.bspline_derivative_bases`, the jet's bases (differentiable);
#: - `spline_matmul(x, knots, k, uniform, kernel (n K, m)) -> (B, m)`: `basis(x) @ kernel`;
#: - `kan_product(x, base (B, n), knots, k, uniform, spline_kernel (n K, m), base_kernel (n, m))
#:   -> (B, m)`: `basis(x) @ spline_kernel + base @ base_kernel`, the layer's numeric output;
#: - `is_traced(x)`, `value_token(variable)`, `check_grid_uniform(knots, ok, message)`,
#:   `sync_model_state(model)`: the grid-state checks (see `KANDense.uniform_grid`);
#: - `make_value_and_grad(model_ref)`, `make_evaluate(model_ref)`: fit_lbfgs's objective;
#: - `input_derivatives(fn, x (B, n), second) -> (fn(x) (B, 1), grad (B, n), hess_diag (B, n)
#:   or None)`: input derivatives behind `keras_kan.autodiff`, differentiable in the weights;
#: - `host_report(fn, value) -> zero or None`: inside a compiled step, call `fn(array)` on
#:   the host with `value` (a small 1-D float32 tensor) when the step runs; returns a float32
#:   zero to add to a result (so the step keeps the call), or None where it cannot (see
#:   `keras_kan.coverage`).
#: - `make_lbfgs_program(model_ref, loss_fn, run) -> program(flat (n,), state, n_steps, x, y,
#:   sample_weight) -> (flat, state, *outputs)`: `run(evaluate, flat, state, aux, n_steps)`
#:   (keras.ops: `keras_kan.lbfgs_compiled.run_steps`) as ONE compiled program (`jax.jit`,
#:   `tf.function`; eager on PyTorch), with `evaluate(flat, aux) -> (loss (), grad (n,),
#:   aux)` the objective at a flat vector in the variables' dtype (`program.dtype`), loss
#:   `inf` where it or the gradient is not finite.
CONTRACT = ("spline_basis", "spline_derivative_bases", "spline_matmul", "kan_product",
            "is_traced", "value_token", "check_grid_uniform", "sync_model_state",
            "make_value_and_grad", "make_evaluate", "input_derivatives", "host_report",
            "make_lbfgs_program")
_missing = [name for name in CONTRACT if not callable(getattr(_impl, name, None))]
if _missing:  # a broken backend module fails at import, not in the middle of a step
    raise ImportError(f"keras_kan.backend.{BACKEND} does not define {_missing}.")

spline_basis = _impl.spline_basis
spline_derivative_bases = _impl.spline_derivative_bases
spline_matmul = _impl.spline_matmul
kan_product = _impl.kan_product
is_traced = _impl.is_traced
value_token = _impl.value_token
check_grid_uniform = _impl.check_grid_uniform
sync_model_state = _impl.sync_model_state
input_derivatives = _impl.input_derivatives
host_report = _impl.host_report
make_lbfgs_program = _impl.make_lbfgs_program

__all__ = [
    "BACKEND",
    "CONTRACT",
    "value_and_grad_fn",
    "objective_value_and_grad_fn",
    "evaluate_fn",
    "compute_loss",
    "reset_compiled_functions",
    "spline_basis",
    "spline_derivative_bases",
    "spline_matmul",
    "kan_product",
    "is_traced",
    "value_token",
    "check_grid_uniform",
    "sync_model_state",
    "input_derivatives",
    "host_report",
    "lbfgs_program_fn",
]
