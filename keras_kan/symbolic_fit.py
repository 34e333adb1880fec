"""Fitting one edge: `y ~ c * f(a * x + b) + d` for library functions `f`.

Pure NumPy and SciPy on `(N,)` arrays; no model, no sympy. The functions come
from `keras_kan.symbolic_library` (the one registry).

**Fitting.** For one function `f` the inner `(a, b)` are found by a coarse
grid search, then polished by `scipy.optimize.least_squares`, with `(c, d)`
solved by linear least squares inside every residual (so the search maximizes
`R^2`, the squared correlation of `f(a x + b)` with the values). Parameters
are reported in a canonical form: `a = 1` for scale-free functions (powers,
`1/x`, `abs`, `sgn`), `a = +-1` for `sqrt` and `log`, `b = 0` for `exp`,
`a > 0` for odd or even functions, and `c > 0`, `b` in `(-pi, pi]` for
`sin`/`cos`.

**Ranking rule.** Each candidate gets (lower is better)

    score = log10(1 - R^2 + 1e-6) + w / (1 - w) * (complexity + offset)

with `w = weight_simple` (default 1/3, i.e. 0.5 decades per unit): one extra
unit of complexity must buy a `10**0.5 ~ 3.2` times smaller unexplained
variance, and fits better than `R^2 = 1 - 1e-6` all count as exact.
`offset = max(0, log10(kappa / 10))` is the conditioning term: `kappa =
|mean f| / std f` of the fitted `f(a x + b)` on the data is how much of `f`
the constant `d` cancels. A function used only on a sliver of its range is
its own Taylor polynomial in disguise (`cos(0.15 x) ~ 1 - 0.011 x^2`, `exp(0.01
x) ~ 1 + 0.01 x`), and composing it makes constants explode (`c = 1e41`);
each decade of `kappa` above 10 costs one unit of complexity. `x` and `0`
pay none. Candidates whose scores are within 0.05 of the best remaining one
are ordered by complexity, then a zero shift `b` first, then library order.
An edge whose values are constant is fitted exactly by every function; the
rule then picks `"0"` (a constant).
"""

import math
from typing import NamedTuple

import numpy as np
from scipy.optimize import least_squares

from keras_kan.symbolic_library import EdgeFunction, candidate_names, get_function
from keras_kan.validation import check_finite, check_real, even_rows

__all__ = ["SymbolicFit", "fit_function", "rank_functions", "kappa", "resolve_functions",
           "check_weight_simple", "WEIGHT_SIMPLE"]

_EPS_R2 = 1e-6  # 1 - R^2 below this counts as an exact fit in the ranking
#: Default `weight_simple`: w / (1 - w) = 0.5 decades of unexplained variance per unit.
WEIGHT_SIMPLE = 1.0 / 3.0
_TIE = 0.05  # scores this close are ranked by complexity
_ZERO_SHIFT = 1e-2  # |b| up to this counts as no shift when breaking ties
_KAPPA_FREE = 10.0  # |mean f| / std f up to this costs nothing
_SEARCH_POINTS = 160  # order statistics used while searching (a, b)


class SymbolicFit(NamedTuple):
    """A fit of one edge: `phi(x) ~ c * f(a * x + b) + d`.

    `name` is None (and `params` None) when the edge keeps its numeric
    spline: no library function reached the required `R^2` (then `r2` is
    the best one found).

    Attributes:
        name: the function's registered name, or None.
        r2: the fit's `R^2` on the edge's values.
        params: `(a, b, c, d)` or None.
        kappa: `|mean f| / std f` of `f(a x + b)` on the data (the
            conditioning of the fit; see the module docstring).
    """

    name: str | None
    r2: float
    params: tuple | None
    kappa: float = 1.0

    @property
    def fitted(self):
        """True when the edge has a symbolic function."""
        return self.name is not None


def resolve_functions(lib):
    """`{name: EdgeFunction}` for `lib`: None (every candidate of the registry)
    or a list of registered names / `EdgeFunction`s."""
    if lib is None:
        return {name: get_function(name) for name in candidate_names()}
    if isinstance(lib, (str, dict)) or not hasattr(lib, "__iter__"):
        raise ValueError(f"Received an invalid value for argument `lib`: expected None or a "
                         f"list of function names, got {lib!r}.")
    items = {}
    for entry in lib:
        fn = entry if isinstance(entry, EdgeFunction) else get_function(entry)
        items[fn.name] = fn
    if not items:
        raise ValueError("Received an invalid value for argument `lib`: it is empty.")
    return items


def check_weight_simple(value):
    """`weight_simple` in [0, 1)."""
    value = check_real("weight_simple", value, 0.0)
    if value >= 1.0:
        raise ValueError(f"Received an invalid value for argument `weight_simple`: expected "
                         f"a number in [0, 1), got {value!r}.")
    return value


# --------------------------------------------------------------- one function
def _centred_values(fn, alpha, beta, t):
    """`f(alpha t + beta)` minus its mean for candidate arrays `alpha`, `beta` `(C,)`.

    Returns:
        `(centred (C, N), sum of squares (C,), ok (C,))`; `ok` is False
        where `f` is undefined or not finite on the data (those rows are 0).
    """
    u = alpha[:, None] * t[None, :] + beta[:, None]
    with np.errstate(all="ignore"):
        values = fn.numpy(u)
        ok = np.all(np.isfinite(values), axis=1)
        if fn.domain is not None:
            ok &= np.asarray(fn.domain(u.min(axis=1), u.max(axis=1)), bool)
        values = np.where(ok[:, None], values, 0.0)
        centred = values - values.mean(axis=1, keepdims=True)
        sff = np.einsum("cn,cn->c", centred, centred)
    ok &= np.isfinite(sff)
    return np.where(ok[:, None], centred, 0.0), np.where(ok, sff, 0.0), ok


def _r2_batch(fn, alpha, beta, t, yc, sst):
    """`R^2` of the best `c f(alpha t + beta) + d` per candidate (-inf: undefined)."""
    centred, sff, ok = _centred_values(fn, alpha, beta, t)
    sfy = centred @ yc
    with np.errstate(all="ignore"):
        r2 = np.where(sff > 1e-300, sfy * sfy / np.where(sff > 1e-300, sff, 1.0) / sst, 0.0)
    return np.where(ok & np.isfinite(r2), np.minimum(r2, 1.0), -np.inf)


def _beta_bound(fn, alpha):
    """Largest `|beta|` searched: beyond it a function only shows a tail (which
    mimics a simpler function with absurd constants)."""
    if fn.period is not None:
        return fn.period
    if fn.scale == "free":
        return abs(alpha) + 4.0
    return 20.0 * (abs(alpha) + 1.0)


def _grid(fn):
    if fn.scale == "unit":
        alphas = np.array([1.0])
    elif fn.scale == "unit_signed":
        alphas = np.array([1.0, -1.0])
    else:
        alphas = np.geomspace(0.05, 30.0, 24)
        if fn.scale == "signed":
            alphas = np.concatenate([-alphas[::-1], alphas])
    pairs = []
    for alpha in alphas:
        if not fn.shift:
            betas = np.array([0.0])
        elif fn.period is not None:
            betas = np.linspace(-fn.period / 2, fn.period / 2, 16, endpoint=False)
        elif fn.scale == "free":
            betas = np.linspace(-1.0, 1.0, 25) * _beta_bound(fn, alpha)
        else:  # includes points just outside the data, where a domain edge may sit
            edge = abs(alpha) * (1.0 + np.geomspace(1e-3, 10.0, 12))
            betas = np.concatenate([np.linspace(-1.5, 1.5, 25) * (abs(alpha) + 1.0),
                                    edge, -edge])
        pairs.append(np.stack([np.full(betas.shape, alpha), betas], axis=1))
    return np.concatenate(pairs)


def _search(fn, t, yc, sst):
    """Best `(alpha, beta)` in standardized coordinates `t` in `[-1, 1]`."""
    grid = _grid(fn)
    r2 = _r2_batch(fn, grid[:, 0], grid[:, 1], t, yc, sst)
    if not np.any(np.isfinite(r2)):
        return None, -np.inf
    order = np.argsort(-r2)
    starts = [grid[order[0]]]
    for k in order[1:]:  # a second start with a clearly different alpha, if nearly as good
        if not np.isfinite(r2[k]) or (1.0 - r2[k]) > 3.0 * (1.0 - r2[order[0]]):
            break
        if abs(math.log(abs(grid[k, 0]) / abs(starts[0][0]))) > math.log(2.5):
            starts.append(grid[k])
            break
    free_alpha = fn.scale in ("free", "signed")
    best, best_r2 = None, -np.inf
    for start in starts:
        point, value = _refine(fn, start, free_alpha, fn.shift, t, yc, sst)
        if value > best_r2:
            best, best_r2 = point, value
    return best, best_r2


def _residuals(fn, alpha, beta, t, yc):
    """Residuals of the best `c f(alpha t + beta) + d` per candidate, `(C, N)`
    (NaN rows where `f` is undefined on the data)."""
    centred, sff, ok = _centred_values(fn, alpha, beta, t)
    coef = np.where(sff > 1e-300, (centred @ yc) / np.where(sff > 1e-300, sff, 1.0), 0.0)
    res = yc[None, :] - coef[:, None] * centred
    res[~ok] = np.nan
    return res


def _refine(fn, start, free_alpha, free_beta, t, yc, sst):
    """Polish `(alpha, beta)` from `start` with `scipy.optimize.least_squares`.

    Variable projection: `c, d` are eliminated by linear least squares inside
    the residual, so the solver (trust-region reflective, within the search's
    bounds on `log|alpha|` and `beta`) sees only the free inner parameters.
    Where `f` is undefined the residual is large and finite, which steers the
    solver back into the domain.
    """
    sign = 1.0 if start[0] > 0 else -1.0
    v0 = np.array([math.log(abs(start[0])), float(start[1])])
    active = np.flatnonzero([free_alpha, free_beta])
    penalty = math.sqrt(4.0 * sst / max(t.size, 1))  # residual where f is undefined

    def unpack(free):
        v = v0.copy()
        v[active] = free
        return v

    def residuals(free):
        v = unpack(free)
        res = _residuals(fn, np.array([sign * math.exp(v[0])]), np.array([v[1]]), t, yc)[0]
        return np.where(np.isfinite(res), res, penalty)

    def sse(v):
        res = _residuals(fn, np.array([sign * math.exp(v[0])]), np.array([v[1]]), t, yc)[0]
        value = float(res @ res)
        return value if math.isfinite(value) else math.inf

    best, best_err = v0, sse(v0)
    if active.size and math.isfinite(best_err):
        lo_log, hi_log = math.log(0.02), math.log(100.0)  # beyond: degenerate or unresolvable
        bound = _beta_bound(fn, math.exp(min(max(v0[0], lo_log), hi_log)) * 2.0)
        lower = np.array([lo_log, -bound])[active]
        upper = np.array([hi_log, bound])[active]
        x0 = np.clip(v0[active], lower + 1e-12 * (upper - lower), upper - 1e-12 * (upper - lower))
        result = least_squares(residuals, x0, bounds=(lower, upper), method="trf",
                               x_scale="jac", ftol=1e-12, xtol=1e-12, gtol=1e-12,
                               max_nfev=200)
        candidate = unpack(result.x)
        err = sse(candidate)
        if err < best_err:
            best, best_err = candidate, err
    r2 = 1.0 - best_err / sst if math.isfinite(best_err) else -np.inf
    return np.array([sign * math.exp(best[0]), best[1]]), r2


def _linear_fit(values, y):
    """Least-squares `c, d` of `y ~ c * values + d` and its `R^2`."""
    mean_f, mean_y = values.mean(), y.mean()
    centred = values - mean_f
    sff = float(centred @ centred)
    sst = float(((y - mean_y) ** 2).sum())
    if not np.isfinite(sff) or sff <= 1e-300:
        return 0.0, float(mean_y), 0.0
    c = float(centred @ (y - mean_y)) / sff
    d = float(mean_y - c * mean_f)
    residual = y - (c * values + d)
    r2 = 1.0 - float(residual @ residual) / sst if sst > 0 else 1.0
    return c, d, r2


def _canonical(fn, a, b):
    """Equivalent `(a, b)` in the documented canonical form (`c`, `d` refit after)."""
    if fn.scale == "unit":
        if not fn.shift:
            return 1.0, 0.0
        return 1.0, b / a
    if fn.scale == "unit_signed":
        return (1.0 if a > 0 else -1.0), b / abs(a)
    if not fn.shift:
        return a, 0.0
    if fn.period is not None:
        b = (b + fn.period / 2) % fn.period - fn.period / 2
    return a, b


def _is_constant(y):
    return float(np.std(y)) <= 1e-7 * max(1.0, float(np.max(np.abs(y))))


def fit_function(x, y, fn):
    """Fit `y ~ c * f(a * x + b) + d` for one library function.

    Args:
        x: `(N,)` input samples (N >= 2, not all equal).
        y: `(N,)` target values.
        fn: an `EdgeFunction` or a registered name.

    Returns:
        `(r2, (a, b, c, d))`; `r2` is `-inf` (and params None) when `f`
        cannot be evaluated on the data for any `(a, b)` tried.
    """
    if not isinstance(fn, EdgeFunction):
        fn = get_function(fn)
    x = np.asarray(x, np.float64).reshape(-1)
    y = np.asarray(y, np.float64).reshape(-1)
    if x.shape != y.shape or x.size < 2:
        raise ValueError(f"`x` and `y` must be 1-D of the same length >= 2, got {x.shape} "
                         f"and {y.shape}.")
    check_finite("x", x)
    check_finite("y", y)
    if _is_constant(y):
        return 1.0, (1.0, 0.0, 0.0, float(y.mean()))
    low, high = float(x.min()), float(x.max())
    centre, half = 0.5 * (low + high), 0.5 * (high - low)
    if half <= 0:
        half = 1.0
    order = np.argsort(x)
    pick = order[even_rows(x.size, _SEARCH_POINTS)]
    t, ys = (x[pick] - centre) / half, y[pick]
    yc = ys - ys.mean()
    sst = float(yc @ yc)
    if sst <= 0:
        return 1.0, (1.0, 0.0, 0.0, float(y.mean()))
    point, _ = _search(fn, t, yc, sst)
    if point is None:
        return -np.inf, None
    alpha, beta = point
    a, b = _canonical(fn, alpha / half, beta - alpha * centre / half)
    with np.errstate(all="ignore"):
        values = fn.numpy(a * x + b)
    if not np.all(np.isfinite(values)):
        return -np.inf, None
    c, d, r2 = _linear_fit(values, y)
    if fn.flip and c < 0:  # f(u + period/2) = -f(u): keep c > 0
        a, b = _canonical(fn, a, b + fn.period / 2)
        with np.errstate(all="ignore"):
            values = fn.numpy(a * x + b)
        c, d, r2 = _linear_fit(values, y)
    return r2, (float(a), float(b), float(c), float(d))


def kappa(fn, x, params):
    """`|mean f| / std f` of `f(a x + b)` on `x (N,)`: how much of `f` the constant
    `d` cancels (1 for a constant or undefined fit)."""
    a, b = params[0], params[1]
    with np.errstate(all="ignore"):
        values = fn.numpy(a * np.asarray(x, np.float64) + b)
    std = float(np.std(values))
    if not np.isfinite(std) or std <= 1e-300 or params[2] == 0:
        return 1.0
    return float(abs(np.mean(values)) / std)


def _score(fit, complexity, weight_simple):
    """The module's rule: `log10(1 - R^2 + 1e-6) + w / (1 - w) * (complexity + offset)`."""
    per_unit = weight_simple / (1.0 - weight_simple)
    offset = max(0.0, math.log10(max(fit.kappa, 1e-300) / _KAPPA_FREE)) if complexity > 1 else 0.0
    return math.log10(max(1.0 - fit.r2, 0.0) + _EPS_R2) + per_unit * (complexity + offset)


def rank_functions(x, y, lib=None, weight_simple=WEIGHT_SIMPLE):
    """Fit every function of `lib` to `y ~ c f(a x + b) + d` and rank them.

    Args:
        x, y: `(N,)` samples of an edge's input and value.
        lib: None (every candidate in the registry) or a list of names.
        weight_simple: `w` of the ranking rule (module docstring).

    Returns:
        list of `SymbolicFit`, best first (functions undefined on the data
        are left out). Near-ties (scores within 0.05) go to the lower
        complexity, then to a zero shift `b` (`|b| <= 0.01`: `cos(pi x)`
        rather than `sin(pi x + pi/2)`), then library order.
    """
    lib = resolve_functions(lib)
    weight_simple = check_weight_simple(weight_simple)
    x = np.asarray(x, np.float64).reshape(-1)
    pool = []
    for name, fn in lib.items():
        r2, params = fit_function(x, y, fn)
        if np.isfinite(r2):
            pool.append(SymbolicFit(name, float(r2), params, kappa(fn, x, params)))
    names = list(lib)
    ranked = []
    while pool:
        scores = [_score(fit, lib[fit.name].complexity, weight_simple) for fit in pool]
        best = min(scores)
        close = [k for k, s in enumerate(scores) if s <= best + _TIE]
        pick = min(close, key=lambda k: (lib[pool[k].name].complexity,
                                         abs(pool[k].params[1]) > _ZERO_SHIFT,
                                         names.index(pool[k].name)))
        ranked.append(pool.pop(pick))
    return ranked
