"""Small helpers for physics-informed training (not a PDE framework).

* `partial(fn, x, i)`, `mixed_partial(fn, x, i, j)`: the derivatives an
  equation names, `d fn / d x_i` (e.g. `u_t`) and `d^2 fn / d x_i d x_j`,
  built from `keras_kan.autodiff` (every backend, inside compiled objectives,
  differentiable with respect to the weights).
* `weighted_sum(terms, weights)`: the objective `sum_k w_k * term_k` of named
  loss terms (PDE residual, boundary, initial condition).
* `resample(residual, candidates, count)`: residual-based adaptive
  resampling (RAD, Wu et al. 2023, arXiv 2207.10289): new collocation
  points drawn from `candidates` with probability proportional to
  `|r|^k / mean |r|^k + c`.

Shapes: `x (B, n)`; `fn: (B, n) -> (B, 1)` with independent rows; results
`(B, 1)`.
"""

import numpy as np
from keras import ops

from keras_kan import autodiff
from keras_kan.validation import check_int, check_real

__all__ = ["partial", "mixed_partial", "weighted_sum", "resample"]


def _index(name, value, n):
    value = check_int(name, value, 0)
    if value >= n:
        raise ValueError(f"Received an invalid value for argument `{name}`: expected an "
                         f"input index below {n}, got {value}.")
    return value


def partial(fn, x, i):
    """`(B, 1)`: `d fn(x)_b / d x_bi` (e.g. `u_t` with time as input `i`)."""
    x = ops.convert_to_tensor(x)
    i = _index("i", i, x.shape[-1])
    return autodiff.gradient(fn, x)[:, i:i + 1]


def mixed_partial(fn, x, i, j):
    """`(B, 1)`: `d^2 fn(x)_b / d x_bi d x_bj` (`i == j`: the second derivative)."""
    x = ops.convert_to_tensor(x)
    n = x.shape[-1]
    i, j = _index("i", i, n), _index("j", j, n)
    if i == j:
        return autodiff.hessian_diagonal(fn, x)[:, i:i + 1]
    return partial(lambda z: partial(fn, z, i), x, j)


def weighted_sum(terms, weights=None):
    """`sum_k weights[k] * terms[k]` (scalars); `terms`, `weights` dicts by name (a
    missing weight is 1) or sequences of the same length; None: all weights 1."""
    if isinstance(terms, dict):
        weights = weights or {}
        unknown = set(weights) - set(terms)
        if unknown:
            raise ValueError(f"`weights` names terms that do not exist: {sorted(unknown)}.")
        pairs = [(terms[k], weights.get(k, 1.0)) for k in terms]
    else:
        terms = list(terms)
        weights = [1.0] * len(terms) if weights is None else list(weights)
        if len(weights) != len(terms):
            raise ValueError(f"{len(terms)} terms but {len(weights)} weights.")
        pairs = list(zip(terms, weights))
    if not pairs:
        raise ValueError("weighted_sum needs at least one term.")
    total = None
    for term, weight in pairs:
        value = check_real("weight", weight, 0.0) * term
        total = value if total is None else total + value
    return total


def resample(residual, candidates, count, k=1.0, c=1.0, seed=None):
    """Residual-based adaptive resampling: `count` rows of `candidates`, drawn
    without replacement with probability `|r|^k / mean(|r|^k) + c` (RAD).

    Args:
        residual: `(N,)` or `(N, 1)` residuals at the candidates (array or tensor),
            or a callable `candidates -> residuals`.
        candidates: `(N, n)` points.
        count: rows to return, `1 <= count <= N`.
        k, c: RAD's exponent and floor (`c` large: uniform; `k = 0`: uniform).
        seed: for `numpy.random.default_rng`.

    Returns:
        `(count, n)` float NumPy array (the candidates' dtype).
    """
    points = np.asarray(ops.convert_to_numpy(candidates))
    if points.ndim != 2:
        raise ValueError(f"`candidates` must have shape (N, n), got {points.shape}.")
    count = check_int("count", count, 1)
    if count > points.shape[0]:
        raise ValueError(f"`count` ({count}) exceeds the {points.shape[0]} candidates.")
    k, c = check_real("k", k, 0.0), check_real("c", c, 0.0)
    values = residual(candidates) if callable(residual) else residual
    r = np.abs(np.asarray(ops.convert_to_numpy(values), np.float64)).reshape(-1)
    if r.shape[0] != points.shape[0] or not np.all(np.isfinite(r)):
        raise ValueError(f"`residual` must give {points.shape[0]} finite values, got "
                         f"{r.shape[0]}.")
    weight = r**k
    mean = weight.mean()
    density = (weight / mean if mean > 0 else np.zeros_like(weight)) + c
    if density.sum() <= 0:
        density = np.ones_like(density)
    rng = np.random.default_rng(seed)
    rows = rng.choice(points.shape[0], size=count, replace=False, p=density / density.sum())
    return points[np.sort(rows)]
