"""PyTorch (eager): the L-BFGS objective with autograd, a local spline basis, grid checks."""

import torch

from keras_kan import splines
from keras_kan.backend.common import ValueAndGrad, forward_loss

__all__ = ["make_value_and_grad", "make_evaluate", "spline_basis", "is_traced", "value_token",
           "check_grid_uniform", "sync_model_state"]


# --- objective ------------------------------------------------------------------


def make_value_and_grad(model_ref):
    trainable = list(model_ref().trainable_variables)

    def at(weights, x, y, sample_weight=None):
        params = [v.value for v in trainable]
        if weights is not None:
            with torch.no_grad():
                for p, w in zip(params, weights):
                    p.copy_(torch.as_tensor(w))
        with torch.enable_grad():
            loss, _ = forward_loss(model_ref(), x, y, sample_weight, training=True)
            grads = torch.autograd.grad(loss, params, allow_unused=True) if params else []
        flat = []
        for p, g in zip(params, grads):
            if g is None:
                g = torch.zeros_like(p)
            flat.append(g.detach().reshape(-1).to(torch.float64))
        flat = torch.cat(flat) if flat else torch.zeros((0,), dtype=torch.float64)
        return float(loss.detach().cpu()), flat.cpu().numpy()

    return ValueAndGrad(at, lambda: None)


def make_evaluate(model_ref):
    def evaluate(x, y, sample_weight=None):
        with torch.no_grad():
            loss, y_pred = forward_loss(model_ref(), x, y, sample_weight, training=False)
        return float(loss.cpu()), y_pred

    return evaluate


# --- spline basis ---------------------------------------------------------------


def spline_basis(x, knots, spline_order, uniform):
    """The B-spline basis `(..., n, K)` from its `k + 1` local values, scattered into place.

    Eager PyTorch runs every op as its own pass over memory, and autograd keeps
    each: computing only the `k + 1` bases that can be non-zero at `x` (closed
    form on uniform knots, de Boor otherwise) and scattering them is faster
    than any full-width formula. Measured on 2 CPU cores against the
    full-width closed form: as fast forward at `K = 8`, 2x at `K = 23`; with
    the input gradient (hidden layers) 1.8x and 3.6x.

    Args:
        x: `(..., n)`.
        knots: `(n, L)`.
        spline_order: `k`; order 0 takes the exact comparison path.
        uniform: a Python bool, True only if every row of `knots` is evenly spaced.
    """
    k = spline_order
    if k < 1:
        return splines.bspline_basis(x, knots, k)
    n_basis = knots.shape[-1] - k - 1
    local = splines.local_uniform_basis if uniform else splines.local_bspline_basis
    values, first = local(x, knots, k)
    slots = (first + k).long().unsqueeze(-1) + torch.arange(k + 1, device=values.device)
    padded = torch.zeros(values.shape[:-1] + (n_basis + 2 * k,), dtype=values.dtype,
                         device=values.device)  # basis p lives in slot p + k
    return padded.scatter(-1, slots, values)[..., k:k + n_basis]


# --- grid state -----------------------------------------------------------------


def is_traced(x):
    """Whether `torch.compile` is tracing, or `x` is a meta tensor (shape inference)."""
    return torch.compiler.is_compiling() or (
        isinstance(x, torch.Tensor) and x.device.type == "meta")


def value_token(variable):
    """`(tensor, version)`: PyTorch bumps a tensor's version on every in-place write."""
    value = variable.value
    if value is None or value.device.type == "meta":
        return None
    return (value, value._version)


def check_grid_uniform(knots, ok, message):
    """`knots`; under `torch.compile` a failed check raises `RuntimeError(message)`."""
    if ok.device.type != "meta":
        torch._assert_async(ok, message)
    return knots


def sync_model_state(model):
    """Nothing to do: PyTorch's trainer writes the variables in place."""
