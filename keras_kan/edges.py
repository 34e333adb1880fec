"""The one evaluator of a `KANDense` edge: values, layer output and edge scores.

Edge `i -> j` of a layer computes (pykan 0.2's `mask` and `symbolic_mask`)

    phi_ij(x) = edge_mask_ij * (w_b_ij * b(x) + w_s_ij * sum_p c_ipj * B_p(x))
              + symbolic_mask_ij * (c'_ij * f_ij(a_ij * x + b_ij) + d_ij)

and the layer output is `y_j = sum_i phi_ij(x_i)` (+ `bias_j`). Every path that
needs these numbers goes through this module, in one of two forms that share
the code below:

- `keras.ops` on backend tensors (`OPS`): the layer's forward pass, its
  training penalty and `KANDense.edge_activations`;
- float64 NumPy (`NUMPY`): analysis (plots, edge scores, pruning, symbolic
  fits, formulas, surgery). It runs no backend code, which on JAX would
  compile anew for every new sample count.

Each function takes the namespace `xp` first and a `Edges` snapshot of a
layer's parameters (`params(layer, xp)`). The layer's training forward pass
computes the numeric product its backend's fastest way
(`keras_kan.backend.kan_product`, tested against this module and scipy) and
adds `symbolic_output`.

Edge scores (pykan's `std(phi_ij) / (std(x_i) + 0.1)`, unbiased standard
deviations) come from sample moments (`Moments`): for numeric edges the
centred second moment of the per-input features `F = [B(x), b(x)]`, so that
`var(phi_ij) = W_ij^T C_i W_ij` needs no `(B, n, m)` tensor; for edges with a
symbolic part the variance of their full value. Moments of chunks merge
exactly (Chan et al.), so the scores do not depend on how many samples are
given at once.
"""

from typing import NamedTuple

import keras
import numpy as np
from keras import ops
from scipy.special import expit

from keras_kan import splines, symbolic_edges

__all__ = [
    "OPS",
    "NUMPY",
    "Edges",
    "params",
    "basis",
    "features",
    "kernel",
    "numeric_output",
    "symbolic_output",
    "edge_values",
    "output",
    "Moments",
    "moments",
    "merge_moments",
    "scores_from_moments",
    "edge_scores",
]

_STD_FLOOR = 1e-12  # variances below this count as 0 (keeps sqrt's gradient finite)
_SCORE_CHUNK_ELEMENTS = 2**22  # feature values per chunk when scoring many samples

OPS = ops


class NUMPY:
    """The names of `keras.ops` this module uses, in float64 NumPy."""

    where = staticmethod(np.where)
    expand_dims = staticmethod(np.expand_dims)
    concatenate = staticmethod(np.concatenate)
    reshape = staticmethod(np.reshape)
    transpose = staticmethod(np.transpose)
    take = staticmethod(np.take)
    matmul = staticmethod(np.matmul)
    einsum = staticmethod(np.einsum)
    mean = staticmethod(np.mean)
    sum = staticmethod(np.sum)
    sqrt = staticmethod(np.sqrt)
    square = staticmethod(np.square)
    relu = staticmethod(lambda x: np.maximum(x, 0.0))
    stack = staticmethod(np.stack)
    zeros_like = staticmethod(np.zeros_like)

    @staticmethod
    def cast(x, dtype):
        return np.asarray(x, np.float64)

    @staticmethod
    def convert_to_tensor(x, dtype=None):
        return np.asarray(x, np.float64)


# NumPy twins of the usual base activations, matched by identity.
_NUMPY_ACTIVATIONS = {
    keras.activations.silu: lambda x: x * expit(x),
    keras.activations.relu: lambda x: np.maximum(x, 0.0),
    keras.activations.tanh: np.tanh,
    keras.activations.sigmoid: expit,
    keras.activations.linear: lambda x: x,
    keras.activations.softplus: lambda x: np.logaddexp(0.0, x),
}


class SymbolicGroup(NamedTuple):
    """The symbolic edges of one function: `E` edges, their parameters `(E,)` each."""

    fn: object  # u -> f(u) in the snapshot's namespace
    rows: np.ndarray  # (E,) input index i
    flat: np.ndarray  # (E,) i * m + j
    onehot: np.ndarray  # (E, m) edge -> output unit
    mask: object
    a: object
    b: object
    c: object
    d: object


class Edges(NamedTuple):
    """A layer's edge parameters in one namespace (see `params`).

    Attributes:
        knots: `(n, L)`.
        spline_order: `k`.
        uniform: whether the basis may use its closed form (evenly spaced knots).
        spline_kernel: `(n, K, m)`, `edge_mask * w_s * c`.
        base_kernel: `(n, m)`, `edge_mask * w_b` (zeros without a base branch).
        base_fn: `x -> b(x)` in the namespace.
        symbolic: tuple of `SymbolicGroup` (empty: no symbolic edge).
        bias: `(m,)` or None.
    """

    knots: object
    spline_order: int
    uniform: bool
    spline_kernel: object
    base_kernel: object
    base_fn: object
    symbolic: tuple
    bias: object

    @property
    def shape(self):
        """`(n, m)`."""
        return tuple(int(d) for d in self.base_kernel.shape)


def _numpy(value):
    return np.asarray(ops.convert_to_numpy(value), np.float64)


def _base_fn(layer, xp):
    if not layer.use_base:  # no base branch: its (zero) kernel multiplies zeros, never b(x)
        return xp.zeros_like
    activation = layer.base_activation
    if xp is OPS:
        return activation
    twin = _NUMPY_ACTIVATIONS.get(activation)
    if twin is not None:
        return twin
    dtype = "float64" if layer.compute_dtype == "float64" else "float32"
    return lambda x: _numpy(activation(ops.convert_to_tensor(x, dtype)))


def params(layer, xp=OPS, weights=None, knots=None, uniform=None, dtype=None):
    """The parameters of a built `layer` as an `Edges` snapshot in namespace `xp`.

    Args:
        layer: a built KANDense.
        xp: `OPS` (backend tensors, differentiable; the layer's variables) or
            `NUMPY` (float64 copies).
        weights: optional values by weight name (`WEIGHT_NAMES` and the
            symbolic weights) to use instead of the layer's: e.g. `edge_mask`
            ones, to read the numeric spline of an edge the layer masks off, or
            trial `symbolic_a..d` in a fit. Nothing is written to the layer.
        knots, uniform: `OPS` only: the knots and basis choice of this call
            (the layer's `_basis_knots`); default the layer's grid, general basis.
        dtype: `OPS` only: the dtype of the kernels (default the variables').
    """
    weights = weights or {}
    if xp is NUMPY:
        def read(name):
            return np.asarray(weights[name], np.float64) if name in weights else _numpy(
                getattr(layer, name))
        knots, uniform = read("grid"), False
    else:
        dtype = dtype or layer.variable_dtype

        def read(name):
            return ops.cast(weights.get(name, getattr(layer, name)), dtype)

        knots = layer.grid if knots is None else knots
        uniform = bool(uniform)
    mask = read("edge_mask")
    spline = read("spline_kernel") * xp.expand_dims(mask * read("spline_scale"), 1)
    base = mask * read("base_kernel")
    groups = []
    names = symbolic_edges.SYMBOLIC_WEIGHT_NAMES
    if layer._symbolic_groups:
        flat_params = [xp.reshape(read(w), (-1,)) for w in names]
        for entry, rows, flat, _, onehot in layer._symbolic_groups:
            values = [xp.take(p, flat, axis=0) for p in flat_params]
            fn = entry.numpy if xp is NUMPY else entry.keras
            groups.append(SymbolicGroup(fn, rows, flat, onehot, *values))
    bias = None if layer.bias is None else read("bias")
    return Edges(knots, layer.spline_order, uniform, spline, base, _base_fn(layer, xp),
                 tuple(groups), bias)


# ---------------------------------------------------------------- evaluation
def basis(xp, x, edges):
    """The B-spline basis `(B, n, K)` of the inputs `x (B, n)` on the snapshot's knots.

    `OPS` asks the backend for its fastest exact basis
    (`keras_kan.backend.spline_basis`); `NUMPY` runs the Cox–de Boor recursion
    (`splines.bspline_basis_numpy`) in float64.
    """
    if xp is NUMPY:
        return splines.bspline_basis_numpy(x, edges.knots, edges.spline_order)
    from keras_kan import backend

    return backend.spline_basis(x, edges.knots, edges.spline_order, edges.uniform)


def features(xp, x, edges, spline_basis=None):
    """Per-input features `F = [B_0(x), ..., B_{K-1}(x), b(x)]`, `(B, n, K+1)`.

    Args:
        x: `(B, n)`.
        spline_basis: the basis of `x` if already computed.
    """
    spline_basis = basis(xp, x, edges) if spline_basis is None else spline_basis
    base = xp.cast(edges.base_fn(x), spline_basis.dtype)
    return xp.concatenate([spline_basis, xp.expand_dims(base, -1)], axis=-1)


def _matmul(xp, a, b):
    """`a (..., j) @ b (j, k)`. An einsum: Keras 3.15's `matmul` and `maximum`
    promote through `result_type`, which turns float64 into float32 on torch.

    The batch axes are spelled out, not written `...`: TensorFlow differentiates an
    ellipsis einsum through a broadcast product, which at `(1024, 7056) @ (7056, 64)`
    took 1.34 s and gigabytes per gradient against 8 ms for `bj,jk->bk`.
    """
    batch = "abcdefgh"[:len(a.shape) - 1]
    return xp.einsum(f"{batch}j,jk->{batch}k", a, b)


def kernel(xp, edges):
    """The effective kernel `(n, K+1, m)`: rows `mask*w_s*c`, then `mask*w_b`."""
    return xp.concatenate([edges.spline_kernel, xp.expand_dims(edges.base_kernel, 1)], axis=1)


def numeric_output(xp, feats, edges):
    """`sum_i` of the numeric edge parts, `(B, m)`, from the features `(B, n, K+1)`."""
    n, m = edges.shape
    k = kernel(xp, edges)
    flat = xp.reshape(feats, (-1, n * int(k.shape[1])))
    return _matmul(xp, flat, xp.cast(xp.reshape(k, (-1, m)), feats.dtype))


def _symbolic_parts(xp, x, edges):
    """`[(group, v (B, E))]`: each group's `mask * (c f(a x + b) + d)` on its edges."""
    out = []
    for g in edges.symbolic:
        xe = xp.take(x, g.rows, axis=1)  # (B, E)
        cast = [xp.cast(p, x.dtype) for p in (g.mask, g.a, g.b, g.c, g.d)]
        mask, a, b, c, d = cast
        out.append((g, mask * (c * g.fn(a * xe + b) + d)))
    return out


def symbolic_output(xp, x, edges):
    """The symbolic part of the layer output `(B, m)` in `x`'s dtype, or None
    when no edge is symbolic (nothing is computed then)."""
    total = None
    for g, v in _symbolic_parts(xp, x, edges):
        part = _matmul(xp, v, xp.convert_to_tensor(g.onehot, v.dtype))
        total = part if total is None else total + part
    return total


def _scatter(group, n, m):
    """`(E, n*m)` one-hot rows placing the group's edges in the flattened `(n, m)`."""
    out = np.zeros((group.flat.size, n * m))
    out[np.arange(group.flat.size), group.flat] = 1.0
    return out


def edge_values(xp, x, edges, symbolic=True, spline_basis=None):
    """Every edge's `phi_ij(x_i)`, `(B, n, m)`; the sum over axis 1 (plus the bias)
    is the layer output.

    Args:
        x: `(B, n)`.
        symbolic: add the symbolic parts (False: the numeric parts only).
        spline_basis: the basis of `x` if already computed.
    """
    n, m = edges.shape
    feats = features(xp, x, edges, spline_basis)
    phi = xp.einsum("bnp,npm->bnm", feats, xp.cast(kernel(xp, edges), feats.dtype))
    if not symbolic:
        return phi
    for g, v in _symbolic_parts(xp, xp.cast(x, phi.dtype), edges):
        part = _matmul(xp, v, xp.convert_to_tensor(_scatter(g, n, m), v.dtype))
        phi = phi + xp.reshape(part, (-1, n, m))
    return phi


def output(xp, x, edges):
    """The layer output `(B, m)` (reference form: features times effective kernel)."""
    out = numeric_output(xp, features(xp, x, edges), edges)
    symbolic = symbolic_output(xp, xp.cast(x, out.dtype), edges)
    if symbolic is not None:
        out = out + symbolic
    if edges.bias is not None:
        out = out + xp.cast(edges.bias, out.dtype)
    return out


# -------------------------------------------------------------------- scores
class Moments(NamedTuple):
    """Sample moments behind edge scores; chunks merge with `merge_moments`.

    Attributes:
        count: samples seen.
        mean_f, m2_f: `(n, P)` mean and `(n, P, P)` centred sum of squares of
            the features `F` (`P = K + 1`).
        mean_x, m2_x: `(n,)` the same of the inputs.
        mean_e, m2_e: `(E,)` the same of the full value of each edge with a
            symbolic part (all groups, in order), or None.
    """

    count: object
    mean_f: object
    m2_f: object
    mean_x: object
    m2_x: object
    mean_e: object
    m2_e: object


def _symbolic_edge_values(xp, x, feats, edges):
    """`(B, E)`: the full value (numeric + symbolic) of every edge with a symbolic part."""
    if not edges.symbolic:
        return None
    n, m = edges.shape
    columns = xp.reshape(xp.transpose(kernel(xp, edges), (0, 2, 1)), (n * m, -1))  # (n m, P)
    parts = []
    for g, v in _symbolic_parts(xp, xp.cast(x, feats.dtype), edges):
        numeric = xp.sum(xp.take(feats, g.rows, axis=1)
                         * xp.cast(xp.take(columns, g.flat, axis=0), feats.dtype), axis=-1)
        parts.append(numeric + v)
    return xp.concatenate(parts, axis=1) if len(parts) > 1 else parts[0]


def _centred(xp, values):
    mean = xp.mean(values, axis=0)
    return mean, values - mean


def _gram(xp, c):
    """`(n, P, P)`: `sum_b c[b, i, :]^T c[b, i, :]` of `c (B, n, P)`. NumPy's einsum has
    no BLAS path for a batched contraction; a batched matmul on contiguous `(n, B, P)`
    is about 100x faster."""
    if xp is NUMPY:
        by_input = np.ascontiguousarray(np.transpose(c, (1, 0, 2)))  # (n, B, P)
        return np.matmul(np.transpose(by_input, (0, 2, 1)), by_input)
    # Batch axis first: TensorFlow runs `bnp,bnq->npq` as transposes around a batched
    # matmul, 3x slower forward and backward at (1024, 784, 9) than this form.
    by_input = xp.transpose(c, (1, 0, 2))  # (n, B, P)
    return xp.einsum("nbp,nbq->npq", by_input, by_input)


def moments(xp, x, edges, feats=None):
    """The `Moments` of the samples `x (B, n)` (one chunk).

    Args:
        feats: the features `(B, n, K+1)` of `x` if already computed.
    """
    feats = features(xp, x, edges) if feats is None else feats
    x = xp.cast(x, feats.dtype)
    mean_f, cf = _centred(xp, feats)
    mean_x, cx = _centred(xp, x)
    full = _symbolic_edge_values(xp, x, feats, edges)
    mean_e = m2_e = None
    if full is not None:
        mean_e, ce = _centred(xp, full)
        m2_e = xp.sum(xp.square(ce), axis=0)
    count = x.shape[0] if x.shape[0] is not None else xp.shape(x)[0]  # traced batch
    return Moments(count, mean_f, _gram(xp, cf), mean_x,
                   xp.sum(xp.square(cx), axis=0), mean_e, m2_e)


def merge_moments(a, b):
    """The `Moments` of two chunks together (Chan et al.; NumPy)."""
    if a is None:
        return b
    total = a.count + b.count
    weight = a.count * b.count / total

    def mean(ma, mb):
        return ma + (mb - ma) * (b.count / total)

    df, dx = b.mean_f - a.mean_f, b.mean_x - a.mean_x
    m2_f = a.m2_f + b.m2_f + np.einsum("np,nq->npq", df, df) * weight
    m2_x = a.m2_x + b.m2_x + dx ** 2 * weight
    mean_e = m2_e = None
    if a.mean_e is not None:
        de = b.mean_e - a.mean_e
        mean_e, m2_e = mean(a.mean_e, b.mean_e), a.m2_e + b.m2_e + de ** 2 * weight
    return Moments(total, mean(a.mean_f, b.mean_f), m2_f, mean(a.mean_x, b.mean_x), m2_x,
                   mean_e, m2_e)


def scores_from_moments(xp, stats, edges):
    """pykan's edge scores `std(phi_ij) / (std(x_i) + 0.1)` (unbiased), `(n, m)`."""
    n, m = edges.shape
    dtype = stats.m2_f.dtype
    if isinstance(stats.count, (int, np.integer)):
        denominator = max(float(stats.count) - 1.0, 1.0)
    else:  # a traced batch size (keras.ops in a graph with an unknown batch)
        denominator = xp.relu(xp.cast(stats.count, dtype) - 2.0) + 1.0  # max(B - 1, 1)
    w = xp.cast(kernel(xp, edges), dtype)
    var = xp.sum(w * xp.einsum("npq,nqm->npm", stats.m2_f, w), axis=1) / denominator
    if stats.m2_e is not None:
        scatter = np.concatenate([_scatter(g, n, m) for g in edges.symbolic])  # (E, n m)
        covered = scatter.sum(axis=0)
        flat = (xp.reshape(var, (-1,)) * xp.convert_to_tensor(1.0 - covered, dtype)
                + _matmul(xp, stats.m2_e / denominator, xp.convert_to_tensor(scatter, dtype)))
        var = xp.reshape(flat, (n, m))
    positive = var > _STD_FLOOR
    std_phi = xp.where(positive, xp.sqrt(xp.where(positive, var, 1.0)), 0.0)
    std_x = xp.sqrt(xp.relu(stats.m2_x / denominator))
    return std_phi / (xp.expand_dims(std_x, -1) + 0.1)


def edge_scores(xp, x, edges, feats=None, chunk_rows=None):
    """pykan's edge scores on the samples `x (B, n)`, `(n, m)`.

    `NUMPY` evaluates `chunk_rows` samples at a time (default: about 4M
    feature values per chunk) and merges their moments, so memory stays
    bounded and the scores do not depend on the chunking. `OPS` computes one
    chunk (the training penalty; differentiable), from `feats (B, n, K+1)` when
    given (the layer's forward pass shares them).
    """
    if xp is not NUMPY:
        return scores_from_moments(xp, moments(xp, x, edges, feats), edges)
    n = edges.shape[0]
    x = np.asarray(x, np.float64).reshape(-1, n)
    width = int(edges.spline_kernel.shape[1]) + 1
    rows = chunk_rows or max(1024, _SCORE_CHUNK_ELEMENTS // (n * width))
    stats = None
    for start in range(0, max(x.shape[0], 1), rows):
        stats = merge_moments(stats, moments(NUMPY, x[start:start + rows], edges))
    return scores_from_moments(NUMPY, stats, edges)
