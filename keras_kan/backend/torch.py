"""PyTorch (eager): the L-BFGS objective with autograd, the spline product, grid checks.

Eager PyTorch pays for every op with a pass over memory (and, for tensors of a
few MB, with fresh pages from the OS), so the spline code here writes as few
large tensors as it can: see `spline_matmul`. Exporters and compilers
(`torch.export`, `torch.compile`) trace the plain `keras.ops` basis instead.
"""

import functools
import inspect
import weakref

import keras
import numpy as np
import torch
from keras import ops
from numpy.polynomial import Polynomial

from keras_kan import splines
from keras_kan.backend import torch_chain
from keras_kan.backend.common import ValueAndGrad, compute_loss, forward_loss
from keras_kan.backend.common import flat_dtype as common_flat_dtype

__all__ = ["make_value_and_grad", "make_evaluate", "spline_basis", "spline_derivative_bases",
           "spline_matmul", "kan_product", "is_traced", "value_token", "check_grid_uniform",
           "sync_model_state", "input_derivatives"]


# --- objective ------------------------------------------------------------------


def _lean_loss(model_ref, loss_fn):
    """`loss_fn`, or for the compiled loss of a model `torch_chain` can call layer by layer,
    the same loss without Keras's per-call machinery (falling back per call)."""
    if loss_fn is not forward_loss or model_ref().run_eagerly:
        return loss_fn
    layers = torch_chain.layer_chain(model_ref())
    if layers is None:
        return loss_fn

    # common.compute_loss inspects the signature on every call (0.1-0.5 ms): once here.
    takes_training = "training" in inspect.signature(model_ref().compute_loss).parameters

    def loss(model, x, y, sample_weight, training):
        y_pred = None
        if keras.distribution.distribution() is None:
            y_pred = torch_chain.forward(model, layers, x, training)
        if y_pred is None:
            return forward_loss(model, x, y, sample_weight, training)
        mse = torch_chain.compiled_mse(model)
        value = None if mse is None else mse(y, y_pred, sample_weight)
        if value is not None:
            return value, y_pred
        if not takes_training:
            return compute_loss(model, x, y, y_pred, sample_weight, training=training), y_pred
        return model.compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight,
                                  training=training), y_pred

    return loss


def make_value_and_grad(model_ref, loss_fn=forward_loss):
    trainable = list(model_ref().trainable_variables)
    loss_fn = _lean_loss(model_ref, loss_fn)

    def at(weights, x, y, sample_weight=None):
        params = [v.value for v in trainable]
        if weights is not None:
            with torch.no_grad():
                for p, w in zip(params, weights):
                    p.copy_(torch.as_tensor(w))
        with torch.enable_grad():
            loss, _ = loss_fn(model_ref(), x, y, sample_weight, training=True)
            grads = torch.autograd.grad(loss, params, allow_unused=True) if params else []
        # One cast and one copy to the host: the float64 values of the same numbers.
        flat = [(torch.zeros_like(p) if g is None else g.detach()).reshape(-1)
                for p, g in zip(params, grads)]
        if not flat:
            flat = torch.zeros((0,), dtype=torch.float64)
        elif all(g.dtype == flat[0].dtype for g in flat):
            flat = torch.cat(flat).to(torch.float64)
        else:
            flat = torch.cat([g.to(torch.float64) for g in flat])
        return loss.item(), flat.cpu().numpy()

    return ValueAndGrad(at, lambda: None)


def make_evaluate(model_ref):
    loss_fn = _lean_loss(model_ref, forward_loss)

    def evaluate(x, y, sample_weight=None):
        with torch.no_grad():
            loss, y_pred = loss_fn(model_ref(), x, y, sample_weight, training=False)
        return float(loss.cpu()), y_pred

    return evaluate


# --- input derivatives -----------------------------------------------------------


def input_derivatives(fn, x, second):
    """`(gradient (B, n), hessian diagonal (B, n) or None)` of `fn: (B, n) -> (B,)` at `x`.

    Rows are independent, so the gradient of `sum(fn(x))` is every row's
    gradient. The graph is kept (`create_graph=True`) whenever the caller
    records gradients, so the results can be differentiated again (by the
    weights, for a physics-informed loss); under `torch.no_grad()` they come
    back detached. A function piecewise constant in `x` (a derivative that is
    0 wherever it exists) gives zeros, as on the other backends.
    """
    keep = torch.is_grad_enabled()
    with torch.enable_grad():
        if not x.requires_grad:
            x = x.detach().requires_grad_(True)
        y = fn(x)
        grad = _grad_or_zeros(y.sum(), x, create_graph=keep or second)
        diagonal = None
        if second:
            columns = []
            for i in range(x.shape[-1]):
                row = _grad_or_zeros(grad[:, i].sum(), x, create_graph=keep)
                columns.append(row[:, i])
            diagonal = torch.stack(columns, -1)
    if not keep:
        grad = grad.detach()
        diagonal = None if diagonal is None else diagonal.detach()
    return grad, diagonal


def _grad_or_zeros(value, x, create_graph):
    """`d value / d x`; zeros where `value` does not depend on `x` through autograd."""
    if not value.requires_grad:
        return torch.zeros_like(x)
    (grad,) = torch.autograd.grad(value, x, create_graph=create_graph, allow_unused=True)
    return torch.zeros_like(x) if grad is None else grad


# --- spline basis ---------------------------------------------------------------


def spline_basis(x, knots, spline_order, uniform):
    """The B-spline basis `(..., n, K)` (analysis paths; the layer calls `spline_matmul`).

    Args:
        x: `(..., n)`.
        knots: `(n, L)`.
        spline_order: `k`; order 0 takes the exact comparison path.
        uniform: a Python bool, True only if every row of `knots` is evenly spaced.
    """
    if _tracing(x):
        return splines.fused_spline_basis(x, knots, spline_order, uniform, columns=False)
    n, n_basis = x.shape[-1], knots.shape[-1] - spline_order - 1
    if _knot_major_path(spline_order, uniform, n_basis):
        return _general_basis(x, _as_knots(knots, x), spline_order).transpose(-1, -2)
    flat = _flat_or_node(x.reshape(-1, n), _as_knots(knots, x), spline_order, bool(uniform))
    return flat[:, : n * n_basis].reshape(x.shape + (n_basis,))


def spline_derivative_bases(x, knots, spline_order, order, uniform):
    """The basis and its first `order` input derivatives, `order + 1` tensors `(..., n, K)`:
    `splines.bspline_derivative_bases` as it is (whole-tensor passes, differentiated by
    autograd)."""
    return splines.bspline_derivative_bases(x, knots, spline_order, order, uniform)


def spline_matmul(x, knots, spline_order, uniform, kernel):
    """`basis(x) @ kernel`: `x (B, n)`, kernel `(n K, m)` -> `(B, m)` in `kernel`'s dtype.

    Eager PyTorch runs every op as its own pass over memory, and autograd keeps
    what each op needs for its backward, so the basis is built from the `k + 1`
    values that can be non-zero at each `x` (closed form on uniform knots, de
    Boor otherwise) and is one autograd node (`_FlatBasis`) that keeps only
    `x`: its backward recomputes the local derivatives in closed form (a
    B-spline's derivative is a difference of order `k - 1` B-splines), and
    only when `x` needs a gradient (never for a model's inputs). Without
    gradients (inference) the basis is not built at all: `_piecewise_product`
    sums per-interval polynomial rows with `embedding_bag`.

    Measured on 2 CPU cores at `[784, 64, 10]`, `B = 1024`, `G = 5` against
    the previous eager path (full local basis scattered into a padded tensor,
    then the features concatenated): inference about 62 -> 15 ms, a training
    step about 80 -> 45 ms (an equal-size MLP: 4.5 and 13 ms).

    On knots that are not uniform, training with at most `KNOT_MAJOR_UP_TO`
    bases per input builds the knot-major basis `(B, K, n)` by Cox–de Boor
    (`_general_basis`): 57 against 146 ms for the local de Boor values in the
    flat basis (forward and kernel gradient, same shape, 2 threads). Its cost
    grows with `K` and the local values' does not: at `[64, 64, 64, 1]`,
    `G = 20` (`K = 23`) the knot-major step took 489 ms against about 290 ms, so
    more bases take the flat basis.
    """
    k = spline_order
    n, n_basis = x.shape[-1], knots.shape[-1] - k - 1
    if k < 1 or _tracing(x):  # plain keras.ops for exporters and compilers
        basis = splines.fused_spline_basis(x, knots, k, uniform, columns=False)
        return basis.reshape(-1, n * n_basis).to(kernel.dtype) @ kernel
    knots = _as_knots(knots, x)
    needs_grad = torch.is_grad_enabled() and (x.requires_grad or kernel.requires_grad)
    if not needs_grad and kernel.dtype in (torch.float32, torch.float64):
        return _piecewise_product(x, knots, k, bool(uniform), kernel)
    if _knot_major_path(k, uniform, n_basis):  # knot-major (B, K, n), kernel to match
        basis = _general_basis(x, knots, k).reshape(x.shape[0], -1)
        m = kernel.shape[-1]
        return basis.to(kernel.dtype) @ kernel.view(n, n_basis, m).transpose(0, 1).reshape(-1, m)
    flat = _flat_or_node(x, knots, k, bool(uniform))  # (B, n K + 1)
    return flat[:, : n * n_basis].to(kernel.dtype) @ kernel


def kan_product(x, base, knots, spline_order, uniform, spline_kernel, base_kernel):
    """`basis(x) @ spline_kernel + base @ base_kernel`, `(B, m)`, as two products.

    Args:
        x: `(B, n)`; base: `(B, n)` base activations; spline_kernel: `(n K, m)`;
        base_kernel: `(n, m)`, both in the compute dtype.
    """
    outputs = spline_matmul(x, knots, spline_order, uniform, spline_kernel)
    return outputs + base.to(base_kernel.dtype) @ base_kernel


def _piecewise_product(x, knots, k, uniform, kernel):
    """`basis(x) @ kernel` without the basis: inference, `x (B, n)` -> `(B, m)`.

    On knot interval `j` every edge's spline is one polynomial of degree `k` in
    the sample's position `s` there. So the output is `sum_i sum_d s_i^d
    P[d, i, j_i + 1]`, where the rows `P (k+1, n, L+1, m)` are the kernel rows
    of the `k + 1` bases alive on each interval combined by their polynomial
    coefficients. Each power `d` is then one `embedding_bag`: it sums the `n`
    rows a sample's intervals select, weighted by `s^d`; no `(B, n, K)` or
    `(B, n, k+1)` tensor is ever written. The rows below and beyond the knots
    are zero.
    """
    n, length = x.shape[-1], knots.shape[-1]
    m = kernel.shape[-1]
    rows = length + 1  # per feature: j = -1 (below t_0), the L - 1 intervals, j = L - 1
    if uniform:  # s = (x - t_j) / h in [0, 1); one coefficient table for every interval
        scale, offset = _uniform_map(knots)
        u = torch.addcmul(offset, x, scale)  # knot-index units
        # Outside [t_0, t_{L-1}) (NaN included) lands on u = -1 or L - 1: rows of zeros.
        u = torch.nan_to_num_(u.clamp_(-1.0, length - 1.0), nan=-1.0)
        j = u.floor()
        s = u - j
        first_row = torch.arange(1, n * rows, rows, device=x.device, dtype=x.dtype)
        key = (j + first_row).long()  # row j + 1 of feature i (exact below 2**24 rows)
        pieces = torch.as_tensor(_cardinal_pieces(k, False), device=x.device)  # (d, w)
        spec = "njcw,dw->dnjc"
    else:  # s = 2 (x - t_j) / (t_{j+1} - t_j) - 1 in [-1, 1); per-interval coefficients
        pieces, offset, scale = _interval_polynomials(knots, k)  # (n, L+1, d, w) float64
        j = torch.searchsorted(knots.contiguous(), x.t().contiguous(), right=True)  # (n, B)
        key = (j + torch.arange(0, n * rows, rows, device=x.device)[:, None]).t().contiguous()
        s = torch.addcmul(torch.take(offset, key), x, torch.take(scale, key))
        s = torch.nan_to_num_(s, nan=0.0, posinf=0.0, neginf=0.0)  # x outside: a zero row
        spec = "njcw,njdw->dnjc"
    # Kernel rows of the bases j-k .. j alive on each interval (zero beyond [0, K)).
    padded = torch.nn.functional.pad(kernel.view(n, -1, m), (0, 0, k + 1, k + 1))
    windows = padded.unfold(1, k + 1, 1)  # (n, L+1, m, k+1): [i, r, c, w] = row r-k-1+w
    table = torch.einsum(spec, windows, pieces.to(kernel.dtype)).reshape(k + 1, n * rows, m)
    s = s.to(kernel.dtype)
    out = torch.nn.functional.embedding_bag(key, table[0], mode="sum")
    power = s
    for d in range(1, k + 1):
        out = out + torch.nn.functional.embedding_bag(key, table[d], per_sample_weights=power,
                                                      mode="sum")
        if d < k:
            power = power * s
    return out


def _per_grid(store, knots, key, compute):
    """`compute()`, kept in `store` while `knots` (a grid variable's tensor) is not written
    (PyTorch bumps a tensor's version on every in-place write) and `key` is the same."""
    cached = store.get(id(knots))
    if (cached is not None and cached[0]() is knots and cached[1] == knots._version
            and cached[2] == key):
        return cached[3]
    result = compute()
    if len(store) > 256:  # drop entries of tensors that are gone
        for entry_id in [i for i, entry in store.items() if entry[0]() is None]:
            del store[entry_id]
    store[id(knots)] = (weakref.ref(knots), knots._version, key, result)
    return result


_POLYNOMIALS = {}  # id(knots) -> (weak reference, version, k, result)


def _interval_polynomials(knots, k):
    """`_interval_table(knots, k)` as `(coefficients, offset, scale)` with
    `s = x * scale + offset`, kept while `knots` (a grid variable) is not written."""

    def compute():
        coefficients, start, half_width = _interval_table(knots, k)
        scale = 1.0 / half_width
        return coefficients, (-start * scale - 1.0).contiguous(), scale.contiguous()

    return _per_grid(_POLYNOMIALS, knots, k, compute)


def _interval_table(knots, k):
    """Per feature `i` and knot interval `j`: the degree-`k` polynomials of the bases alive there.

    Returns:
        `(coefficients (n, L+1, k+1, k+1) float64, start (n, L+1), half_width (n, L+1))`
        with row `r = j + 1` for interval `j` (rows `0` and `L`, below and
        beyond the knots, are zero): `coefficients[i, r, d, w]` is the
        coefficient of `s^d` in basis `j - k + w`, `s = (x - start) / half_width - 1`
        in `[-1, 1)` on the interval.
        Found by interpolation at `k + 1` Chebyshev points of each interval, in
        float64 (exact up to rounding: the bases are polynomials of degree `k`
        there); an empty interval (repeated knots) holds no sample and gets zeros.
    """
    t = knots.to(torch.float64)
    n, length = t.shape
    width = t[:, 1:] - t[:, :-1]  # (n, L-1)
    nodes = np.cos(np.pi * (np.arange(k + 1) + 0.5) / (k + 1))  # in (-1, 1)
    safe = torch.where(width > 0, width, 1.0)
    z = torch.as_tensor((nodes + 1.0) / 2.0, dtype=torch.float64, device=t.device)
    samples = t[:, :-1].unsqueeze(0) + z[:, None, None] * safe  # (k+1, n, L-1)
    values = _alive_values(samples.transpose(1, 2), t, k)  # (k+1, L-1, n, k+1)
    inverse = torch.as_tensor(np.linalg.inv(np.vander(nodes, k + 1, increasing=True)),
                              dtype=torch.float64, device=t.device)  # (d, q)
    coefficients = torch.einsum("dq,qjnw->njdw", inverse, values)
    coefficients = torch.where((width > 0)[:, :, None, None], coefficients, 0.0)
    coefficients = torch.nn.functional.pad(coefficients, (0, 0, 0, 0, 1, 1))  # outside: 0
    zero = torch.zeros((n, 1), dtype=t.dtype, device=t.device)
    one = torch.ones_like(zero)
    start = torch.cat([zero, t[:, :-1], zero], 1).to(knots.dtype)
    half_width = (torch.cat([one, safe, one], 1) / 2.0).to(knots.dtype)
    return coefficients, start, half_width


def _tracing(x):
    """Whether an exporter or compiler traces the call (it gets plain `keras.ops`)."""
    return is_traced(x) or torch.jit.is_tracing() or torch.compiler.is_exporting()


def _as_knots(knots, x):
    return ops.convert_to_tensor(knots).to(dtype=x.dtype, device=x.device)


class _FlatBasis(torch.autograd.Function):
    """`x (B, n)`, `knots (n, L)` -> `(B, n K + 1)`: the basis of feature `i` in columns
    `i K .. i K + K - 1`, and one spare column that receives every local value of a
    basis outside `[0, K)` (so no pass is spent masking them). Gradient for `x` only."""

    @staticmethod
    def forward(ctx, x, knots, spline_order, uniform):
        ctx.spline_order, ctx.uniform = spline_order, uniform
        ctx.save_for_backward(x, knots)
        return _flat_basis(x, knots, spline_order, uniform)

    @staticmethod
    def backward(ctx, upstream):
        if not ctx.needs_input_grad[0]:
            return None, None, None, None
        x, knots = ctx.saved_tensors
        k = ctx.spline_order
        slopes, index = _flat_local(x, knots, k, ctx.uniform, derivative=True)
        upstream = upstream.clone()
        upstream[:, -1] = 0.0  # the spare column feeds nothing
        local = upstream.gather(1, index) * slopes  # (B, n (k+1))
        return local.view(x.shape + (k + 1,)).sum(-1), None, None, None


def _flat_basis(x, knots, k, uniform):
    """`_FlatBasis`'s values, without an autograd node (for an `x` that needs no gradient:
    a model's inputs; the same numbers, without the node's Python)."""
    n, n_basis = x.shape[-1], knots.shape[-1] - k - 1
    values, index = _flat_local(x, knots, k, uniform, derivative=False)
    flat = torch.zeros((x.shape[0], n * n_basis + 1), dtype=x.dtype, device=x.device)
    return flat.scatter_(1, index, values)  # distinct columns, but the spare one


def _flat_or_node(x, knots, k, uniform):
    """`(B, n K + 1)`: the flat basis, as one autograd node only where `x` needs a gradient."""
    if x.requires_grad and torch.is_grad_enabled():
        return _FlatBasis.apply(x, knots, k, uniform)
    return _flat_basis(x, knots, k, uniform)


def _flat_local(x, knots, k, uniform, derivative):
    """The `k + 1` bases (or their derivatives) that can be non-zero at each `x (B, n)`.

    Returns:
        `(values (B, n (k+1)), index (B, n (k+1)) int64)`: a column of the flat
        basis (`_FlatBasis`) per value; the spare column `n K` for bases
        outside `[0, K)` and for `x` outside the knots.
    """
    local = _uniform_local if uniform else _general_local
    values, row = local(x, knots, k, derivative)  # (B, n, k+1), (B, n) in [0, L]
    table, first_rows = _column_tensors(x.shape[-1], knots.shape[-1], k, x.device)
    index = table.index_select(0, (row + first_rows).reshape(-1)).view(x.shape[0], -1)
    return values.reshape(x.shape[0], -1), index


@functools.lru_cache(maxsize=64)
def _column_tensors(n, length, k, device):
    """`(_column_table(n, length, k), first row of each feature (n,))` as int64 tensors on
    `device`, made once (constants, never written)."""
    rows = length + 1
    return (torch.as_tensor(_column_table(n, length, k), device=device),
            torch.arange(0, n * rows, rows, device=device))


@functools.lru_cache(maxsize=64)
def _column_table(n, length, k):
    """`(n (L+1), k+1)` int64: for feature `i` and row `r = j + 1` of knot interval `j`
    (`r = 0` and `r = L`: outside the knots), the flat-basis column of each local
    value `m` (basis `j - k + m`); the spare column `n K` where that basis is not in
    `[0, K)`."""
    n_basis = length - k - 1
    j = np.arange(-1, length)[:, None]  # (L+1, 1)
    basis = j - k + np.arange(k + 1)[None, :]  # (L+1, k+1)
    valid = (basis >= 0) & (basis < n_basis) & (j >= 0) & (j <= length - 2)
    columns = np.arange(n)[:, None, None] * n_basis + basis[None]  # (n, L+1, k+1)
    return np.where(valid[None], columns, n * n_basis).reshape(n * (length + 1), k + 1)


def _uniform_local(x, knots, k, derivative):
    """Closed form on uniform knots: the local values are fixed polynomials of `x`'s
    position `s` in its interval (`_cardinal_pieces`): powers of `s` times a table.

    Returns `(values (B, n, k+1), row (B, n) int64)`: `row = j + 1` for interval
    `j`; `0` below the knots, `L` at or beyond their end (and for NaN).
    """
    length = knots.shape[-1]
    scale, offset = _uniform_map(knots)
    u = torch.addcmul(offset, x, scale)  # knot-index units
    u = torch.nan_to_num_(u.clamp_(-1.0, length - 1.0), nan=-1.0)  # outside: -1 or L - 1
    j = u.floor()
    s = u - j  # in [0, 1); 0 outside
    table = _cardinal_tensor(k, derivative, x.dtype, x.device)
    powers = [torch.ones_like(s), s]
    while len(powers) < table.shape[0]:
        powers.append(powers[-1] * s)
    values = torch.stack(powers[: table.shape[0]], -1) @ table  # (B, n, k+1)
    if derivative:
        values = values * scale.unsqueeze(-1)
    return values, (j + 1.0).long()


_UNIFORM_MAPS = {}  # id(knots) -> (weak reference, version, None, (scale, offset))


def _uniform_map(knots):
    """`(scale (n,), offset (n,))`, `u = x * scale + offset` the position in knot-index
    units on uniform `knots (n, L)`, kept while `knots` is not written (three small ops
    a call, a tenth of a small layer's basis)."""

    def compute():
        scale = 1.0 / (knots[:, 1] - knots[:, 0])
        return scale, -knots[:, 0] * scale

    return _per_grid(_UNIFORM_MAPS, knots, None, compute)


@functools.lru_cache(maxsize=32)
def _cardinal_tensor(k, derivative, dtype, device):
    """`_cardinal_pieces(k, derivative)` as a tensor, made once (a constant, never written)."""
    return torch.as_tensor(_cardinal_pieces(k, derivative), dtype=dtype, device=device)


class _TorchOps:
    """The namespace the shared recursions (`splines.cox_de_boor`,
    `splines.local_bspline_basis`) need, as native torch calls: an eager
    `keras.ops` call costs tens of microseconds of Python, and the recursions
    make dozens to hundreds of them. `arange` places its result on `device`."""

    def __init__(self, device):
        self.device = device

    @staticmethod
    def cast(x, dtype):
        return x.to(getattr(torch, dtype) if isinstance(dtype, str) else dtype)

    @staticmethod
    def sum(x, axis):
        return torch.sum(x, dim=axis)

    @staticmethod
    def expand_dims(x, axis):
        return x.unsqueeze(axis)

    @staticmethod
    def stack(xs, axis):
        return torch.stack(xs, dim=axis)

    @staticmethod
    def take(table, index, axis):
        flat = torch.index_select(table, axis, index.reshape(-1).long())
        return flat.reshape(index.shape + table.shape[axis + 1:])

    def arange(self, *args, dtype):
        return torch.arange(*args, dtype=getattr(torch, dtype), device=self.device)

    transpose = staticmethod(torch.t)
    logical_and = staticmethod(torch.logical_and)
    ones_like = staticmethod(torch.ones_like)
    where = staticmethod(torch.where)
    clip = staticmethod(torch.clamp)
    reshape = staticmethod(torch.reshape)


@functools.lru_cache(maxsize=8)
def _torch_ops(device):
    return _TorchOps(device)


def _interval(x, knots):
    """Knot interval `j` of `x` (`t_j <= x < t_{j+1}`, clipped) and whether `x` is inside."""
    intervals = knots.shape[-1] - 1
    rows = x.movedim(-1, 0).reshape(x.shape[-1], -1).contiguous()  # (n, rows)
    j = torch.searchsorted(knots.contiguous(), rows, right=True) - 1
    j = j.reshape((x.shape[-1],) + x.shape[:-1]).movedim(0, -1)
    inside = (j >= 0) & (j < intervals)
    return j.clamp(0, intervals - 1), inside


def _local_values(x, knots, k):
    """`splines.local_bspline_basis` in native torch calls."""
    return splines.local_bspline_basis(x, knots, k, _torch_ops(x.device))


def _general_local(x, knots, k, derivative):
    """Any knots: de Boor's local values; their derivatives from order `k - 1`."""
    if not derivative:  # values are 0 outside the knots already
        values, first = _local_values(x, knots, k)
        return values, (first + k + 1).long()
    j, inside = _interval(x, knots)
    if k == 1:
        lower = inside.to(x.dtype).unsqueeze(-1)  # the one order-0 basis B_j
    else:
        lower, _ = _local_values(x, knots, k - 1)  # bases j-k+1 .. j
    inverse = _recursion_tables(knots, k, x.dtype)[1][k - 1].t()  # (n, K+1)
    p = (j - k).unsqueeze(-1) + torch.arange(k + 2, device=x.device)  # p = j-k .. j+1
    rows = inverse.expand(x.shape[:-1] + inverse.shape)
    inv = rows.gather(-1, p.clamp(0, inverse.shape[-1] - 1))  # (..., n, k+2)
    zero = torch.zeros_like(lower[..., :1])
    left = torch.cat([zero, lower], -1)  # B_{p,k-1} for p = j-k .. j
    right = torch.cat([lower, zero], -1)  # B_{p+1,k-1}
    values = k * (inv[..., :-1] * left - inv[..., 1:] * right)  # splines.cox_de_boor_slopes
    return values, torch.where(inside, j + 1, knots.shape[-1])


_TABLES = {}  # id(knots) -> (weak reference, version, (k, dtype), tables)


def _recursion_tables(knots, k, dtype):
    """`splines.recursion_tables` in `dtype`, kept while `knots` is not written: about 15
    small ops a call that, on the quickstart's `[2, 1, 1]` model, were 6% of an L-BFGS
    step. The knots get no gradient, so a kept table is safe to reuse."""
    return _per_grid(_TABLES, knots, (k, dtype), lambda: splines.recursion_tables(
        knots.detach().to(dtype), k, _torch_ops(knots.device)))


# From this many basis elements (`B n K`) the recursion runs on per-basis columns.
COLUMNS_FROM = 2**16
# Knots that are not uniform with at most this many bases per input train knot-major.
KNOT_MAJOR_UP_TO = 12


def _knot_major_path(k, uniform, n_basis):
    """Whether the basis is built knot-major (`_general_basis`) rather than flat
    (`_FlatBasis`): order 0, and knots that are not uniform with few bases."""
    return k < 1 or (not uniform and n_basis <= KNOT_MAJOR_UP_TO)


def _knot_major(x, knots, k):
    """`(B, K, n)` by Cox–de Boor. Large inputs: on per-basis `(B, n)` columns, many ops
    but each one pass over little memory (the whole-tensor form measured 2x slower at
    `(1024, 784)`, `G = 5`); small ones: as whole-tensor passes, where the ~200 ops of
    the columns cost more than the arithmetic (0.8 ms a call in the quickstart)."""
    tables = _recursion_tables(knots, k, x.dtype)
    columns = x.numel() * (knots.shape[-1] - k - 1) >= COLUMNS_FROM
    basis = splines.cox_de_boor(x, tables, k, _torch_ops(x.device), columns=columns)
    return torch.stack(basis, -2) if columns else basis


class _GeneralBasis(torch.autograd.Function):
    """`x (B, n)`, knots `(n, L)` -> the basis on any knots, knot-major `(B, K, n)`.

    One autograd node that keeps only `x`: its backward is the closed form
    (`splines.cox_de_boor_slopes`) of the order `k - 1` basis, built with
    differentiable torch ops, so second derivatives work. No gradient for the knots.
    """

    @staticmethod
    def forward(ctx, x, knots, spline_order):
        ctx.spline_order = spline_order
        ctx.save_for_backward(x, knots)
        return _knot_major(x, knots, spline_order)

    @staticmethod
    def backward(ctx, upstream):
        if not ctx.needs_input_grad[0]:
            return None, None, None
        x, knots = ctx.saved_tensors
        k = ctx.spline_order
        if k == 0:
            return torch.zeros_like(x), None, None
        tables = _recursion_tables(knots, k, x.dtype)
        slopes = splines.cox_de_boor_slopes(_general_basis(x, knots, k - 1), tables, k)
        return (slopes * upstream).sum(-2), None, None


def _general_basis(x, knots, k):
    """`_GeneralBasis` for `x (..., n)` -> `(..., K, n)`."""
    n = x.shape[-1]
    flat = _GeneralBasis.apply(x.reshape(-1, n), knots, k)
    return flat.reshape(x.shape[:-1] + flat.shape[-2:])


def _alive_values(x, knots, k):
    """The `k + 1` bases that can be non-zero at `x (..., n)` in its knot interval `j`
    (bases `j - k .. j`, 0 where outside `[0, K)`), from the full basis: `(..., n, k+1)`.
    Only for the per-interval tables, where `x` holds a few points per interval."""
    full = _knot_major(x, knots, k).movedim(-2, -1)  # (..., n, K)
    full = torch.nn.functional.pad(full, (k, k))  # basis p in column p + k
    j, _ = _interval(x, knots)
    return full.gather(-1, j.unsqueeze(-1) + torch.arange(k + 1, device=x.device))


@functools.cache
def _cardinal_pieces(k, derivative):
    """`(k+1, k+1)` float64 table (`(k, k+1)` with `derivative`): row `d`, column `m`
    is the coefficient of `s^d` in
    the uniform basis `j - k + m` at position `s` in `[0, 1)` of interval `j`
    (or, with `derivative`, of its derivative in knot-index units).

    Built exactly from the uniform Cox–de Boor recursion on polynomials:
    `N_{m,r}(s) = ((s + r - m) N_{m-1,r-1}(s) + (m + 1 - s) N_{m,r-1}(s)) / r`.
    """
    level = [Polynomial([1.0])]
    for r in range(1, k + 1):
        nxt = []
        for m in range(r + 1):
            value = Polynomial([0.0])
            if m >= 1:
                value = value + Polynomial([r - m, 1.0]) * level[m - 1]
            if m <= r - 1:
                value = value + Polynomial([m + 1, -1.0]) * level[m]
            nxt.append(value / r)
        level = nxt
    if derivative:
        level = [piece.deriv() for piece in level]
    table = np.zeros((k + 1 - derivative, k + 1))
    for m, piece in enumerate(level):
        table[: len(piece.coef), m] = piece.coef
    return table


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


def host_report(fn, value):
    """Nothing under `torch.compile` (returns None): Keras's PyTorch `fit` runs eagerly,
    where `keras_kan.coverage` measures on the host without a callback."""
    del fn, value
    return None


# --- L-BFGS steps on torch tensors (keras_kan.lbfgs_compiled, eagerly) -------------


def make_lbfgs_program(model_ref, loss_fn, run):
    """`program(flat, state, n_steps, x, y, sample_weight) -> (flat, state, *outputs)`:
    `run(evaluate, flat, state, aux, n_steps)` (keras.ops, e.g.
    `keras_kan.lbfgs_compiled.run_steps`) executed eagerly on torch tensors, with
    `evaluate(flat, aux) -> (loss, grad, aux)`: the flat vector `(n,)` (the variables'
    dtype) copied into the parameters, the loss differentiated by autograd. `aux` is
    empty (non-trainable updates happen in place). Nothing leaves the device.
    """
    trainable = list(model_ref().trainable_variables)
    sizes = [int(np.prod(v.shape)) for v in trainable]
    flat_dtype = getattr(torch, common_flat_dtype(trainable))

    def program(flat, state, n_steps, x, y, sample_weight=None):
        params = [v.value for v in trainable]

        def evaluate(flat, aux):
            with torch.no_grad():
                for p, w in zip(params, torch.split(flat, sizes)):
                    p.copy_(w.reshape(p.shape))
            with torch.enable_grad():
                loss, _ = loss_fn(model_ref(), x, y, sample_weight, training=True)
                grads = torch.autograd.grad(loss, params, allow_unused=True) if params else []
            flat_g = [torch.zeros_like(p).reshape(-1) if g is None else g.detach().reshape(-1)
                      for p, g in zip(params, grads)]
            flat_g = (torch.cat(flat_g) if flat_g else flat.new_zeros((0,))).to(flat.dtype)
            loss = loss.detach().to(flat.dtype)
            finite = torch.isfinite(loss) & torch.all(torch.isfinite(flat_g))
            return torch.where(finite, loss, torch.full_like(loss, float("inf"))), flat_g, aux

        with torch.no_grad():
            flat = ops.convert_to_tensor(flat).to(flat_dtype)
            flat, state, _, *outputs = run(evaluate, flat, state, (),
                                           ops.convert_to_tensor(n_steps, "int32"))
        return (flat, state, *outputs)

    program.dtype = str(flat_dtype).replace("torch.", "")
    return program
