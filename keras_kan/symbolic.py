"""Symbolic regression of KAN edges and closed-form formulas (needs sympy).

Every edge `phi_ij` of a `keras_kan.KANDense` is a 1-D function. This
module fits each one with `c * f(a * x + b) + d` for `f` in a library of
named functions (`SYMBOLIC_LIB`), on the values that actually reach the
edge for some data, and composes the fits through the layers into a sympy
expression per model output.

* `suggest_symbolic` ranks the library for one edge.
* `auto_symbolic` picks a function for every unmasked edge.
* `fix_symbolic` pins one edge to a named function.
* `symbolic_formula` composes the fits into sympy expressions.
* `evaluate_formula` / `formula_r2` check a formula against the model.

The fits live in a plain dict `{(layer_index, i, j): SymbolicFit}`; the
model's numeric layers are never changed (`layer_index` counts the model's
KANDense layers from 0, `i`/`j` are 0-based input/output units; the
formula's variables `x_1 .. x_n` are 1-based as in the KAN paper).

**Fitting.** For one function `f` the inner `(a, b)` are found by a coarse
grid search, then polished by `scipy.optimize.least_squares`, with `(c, d)`
solved by linear least squares inside every residual (so the search maximizes
`R^2`, the squared correlation of `f(a x + b)` with the edge's values). Parameters are
reported in a canonical form: `a = 1` for scale-free functions (powers,
`1/x`, `abs`, `sgn`), `a = +-1` for `sqrt` and `log`, `b = 0` for
`exp`, `a > 0` for odd or even functions, and `c > 0`, `b` in
`(-pi, pi]` for `sin`/`cos`.

**Ranking rule.** Each candidate gets `score = log10(1 - R^2 + 1e-6) +
w / (1 - w) * complexity` (lower is better) with `w = weight_simple`
(default 1/3, i.e. 0.5 per unit): one extra unit of complexity must buy a
`10**0.5 ~ 3.2` times smaller unexplained variance, and fits better than
`R^2 = 1 - 1e-6` all count as exact, so the simplest exact one wins.
Candidates whose scores are within 0.05 of the best remaining one are ordered
by complexity, then a zero shift `b` first, then library order. An edge whose values are constant is
fitted exactly by every function; the rule then picks `"0"` (a constant).
"""

import math
from collections.abc import Callable
from typing import NamedTuple

import keras
import numpy as np
from keras import ops
from scipy.optimize import least_squares

try:
    import sympy
except ImportError as error:  # pragma: no cover - exercised only without sympy
    raise ImportError(
        "keras_kan.symbolic needs sympy, which is not installed. Install it with "
        "`pip install keras-kan[symbolic]` (or `pip install sympy`)."
    ) from error

from keras_kan import edges, symbolic_edges
from keras_kan.layers import KANDense
from keras_kan.network import (
    chain_inputs,
    edge_values,
    is_plain_chain,
    kan_layers,
    layer_output,
    model_samples,
    quantile_samples,
)
from keras_kan.symbolic_edges import add_symbolic
from keras_kan.validation import check_finite, check_int, check_real, check_samples, even_rows

__all__ = [
    "SYMBOLIC_LIB",
    "SymbolicFunction",
    "SymbolicFit",
    "fit_function",
    "suggest_symbolic",
    "auto_symbolic",
    "fix_symbolic",
    "unfix_symbolic",
    "polish_symbolic",
    "add_symbolic",
    "symbolic_formula",
    "evaluate_formula",
    "formula_r2",
]

_EPS_R2 = 1e-6  # 1 - R^2 below this counts as an exact fit in the ranking
_WEIGHT_SIMPLE = 1.0 / 3.0  # w / (1 - w) = 0.5 decades of unexplained variance per unit
_TIE = 0.05  # scores this close are ranked by complexity
_ZERO_SHIFT = 1e-2  # |b| up to this counts as no shift when breaking ties
_SEARCH_POINTS = 160  # order statistics used while searching (a, b)
_FIT_POINTS = 1024  # order statistics used for the final (c, d) and R^2


class SymbolicFunction(NamedTuple):
    """One library entry: `f` in `c * f(a * x + b) + d`.

    Attributes:
        name: the key in the library (also shown in tables).
        numpy: vectorized NumPy implementation `u -> f(u)`.
        sympy: `sympy expression -> sympy expression`.
        complexity: used by the ranking rule (`"0"` is 0, `x` is 1, ...).
        scale: how `a` is searched: `"free"` (`a > 0`; for odd or even
            `f`), `"signed"` (either sign), `"unit"` (`a = 1`; for
            `f(s u) = g(s) f(u)`, e.g. powers) or `"unit_signed"`
            (`a = +-1`; `sqrt`, `log`).
        shift: whether `b` is searched (`False`: `b = 0`, e.g. `exp`).
        domain: optional `(u_min, u_max) -> bool` arrays test: where `f` is
            defined and smooth on the whole data interval.
        period: optional period of `f` (`b` is reported modulo it).
        flip: `f(u + period / 2) = -f(u)` (`sin`, `cos`): lets `c > 0`.
    """

    name: str
    numpy: Callable
    sympy: Callable
    complexity: float
    scale: str = "signed"
    shift: bool = True
    domain: Callable | None = None
    period: float | None = None
    flip: bool = False


class SymbolicFit(NamedTuple):
    """A fit of one edge: `phi(x) ~ c * f(a * x + b) + d`.

    `name` is None (and `params` None) when the edge keeps its numeric
    spline: no library function reached the required `R^2` (then `r2` is
    the best one found) or the edge was deliberately left numeric.
    """

    name: str | None
    r2: float
    params: tuple | None

    @property
    def fitted(self):
        """True when the edge has a symbolic function."""
        return self.name is not None


def _tan_domain(lo, hi):
    return np.floor(lo / np.pi - 0.5) == np.floor(hi / np.pi - 0.5)


def _positive(lo, hi, strict=True):
    """`u > 0` on the data, with a relative margin so that rewriting `a, b`
    in the data's own coordinates cannot cross the domain edge by rounding."""
    margin = 1e-9 * (np.abs(lo) + np.abs(hi) + 1e-300)
    return lo > margin if strict else lo >= margin


_TWO_PI = 2.0 * math.pi

#: The default library, `name -> SymbolicFunction`.
SYMBOLIC_LIB = {
    fn.name: fn
    for fn in [
        SymbolicFunction("0", lambda u: np.zeros_like(u), lambda u: sympy.Integer(0), 0,
                         "unit", False),
        SymbolicFunction("x", lambda u: u, lambda u: u, 1, "unit", False),
        SymbolicFunction("x^2", lambda u: u * u, lambda u: u**2, 2, "unit"),
        SymbolicFunction("x^3", lambda u: u * u * u, lambda u: u**3, 3, "unit"),
        SymbolicFunction("x^4", lambda u: (u * u) ** 2, lambda u: u**4, 3, "unit"),
        SymbolicFunction("1/x", lambda u: 1.0 / u, lambda u: 1 / u, 2, "unit",
                         domain=lambda lo, hi: _positive(lo, hi) | _positive(-hi, -lo)),
        SymbolicFunction("sqrt", np.sqrt, sympy.sqrt, 2, "unit_signed",
                         domain=lambda lo, hi: _positive(lo, hi, strict=False)),
        SymbolicFunction("exp", np.exp, sympy.exp, 2, "signed", False),
        SymbolicFunction("log", np.log, sympy.log, 2, "unit_signed",
                         domain=_positive),
        SymbolicFunction("sin", np.sin, sympy.sin, 2, "free", period=_TWO_PI, flip=True),
        SymbolicFunction("cos", np.cos, sympy.cos, 2, "free", period=_TWO_PI, flip=True),
        SymbolicFunction("tan", np.tan, sympy.tan, 3, "free", domain=_tan_domain,
                         period=math.pi),
        SymbolicFunction("tanh", np.tanh, sympy.tanh, 3, "free"),
        SymbolicFunction("arctan", np.arctan, sympy.atan, 3, "free"),
        SymbolicFunction("gaussian", lambda u: np.exp(-u * u), lambda u: sympy.exp(-u**2),
                         3, "free"),
        SymbolicFunction("abs", np.abs, sympy.Abs, 3, "unit"),
        SymbolicFunction("sgn", np.sign, sympy.sign, 3, "unit"),
    ]
}


def _from_registry(name):
    """A `SymbolicFunction` for a name registered in `keras_kan.symbolic_edges`."""
    entry = symbolic_edges.get_function(name)
    return SymbolicFunction(name, entry.numpy, symbolic_edges.sympy_function(entry),
                            entry.complexity, **(entry.fit or {}))


# pykan 0.2.8's names that the table above lacks (same evaluation as the
# layers' singularity-safe functions; `domain` keeps fits inside the domain).
SYMBOLIC_LIB.update({name: _from_registry(name)
                     for name in symbolic_edges.registered_names(builtin=True)
                     if name not in SYMBOLIC_LIB})


def _full_lib():
    """`SYMBOLIC_LIB` plus the functions users registered with `add_symbolic`."""
    lib = dict(SYMBOLIC_LIB)
    for name in symbolic_edges.registered_names(builtin=False):
        lib[name] = _from_registry(name)
    return lib


def _resolve_lib(lib):
    if lib is None:
        return _full_lib()
    if isinstance(lib, dict):
        items = lib
    elif isinstance(lib, str):
        raise ValueError(f"`lib` must be a list of names or a dict, got the string {lib!r}.")
    else:
        items = {}
        for entry in lib:
            if isinstance(entry, SymbolicFunction):
                items[entry.name] = entry
            elif entry in _full_lib():
                items[entry] = _full_lib()[entry]
            else:
                raise ValueError(
                    f"Unknown symbolic function {entry!r}; known: {sorted(_full_lib())}."
                )
    if not items:
        raise ValueError("`lib` is empty.")
    for name, fn in items.items():
        if not isinstance(fn, SymbolicFunction):
            raise ValueError(f"`lib[{name!r}]` must be a SymbolicFunction, got {fn!r}.")
        if fn.scale not in ("free", "signed", "unit", "unit_signed"):
            raise ValueError(f"SymbolicFunction {name!r} has an unknown scale {fn.scale!r}.")
    return items


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
        fn: a `SymbolicFunction` or the name of one in `SYMBOLIC_LIB`.

    Returns:
        `(r2, (a, b, c, d))`; `r2` is `-inf` (and params None) when `f`
        cannot be evaluated on the data for any `(a, b)` tried.
    """
    if not isinstance(fn, SymbolicFunction):
        fn = _resolve_lib([fn])[fn]
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


def _score(r2, complexity, weight_simple=_WEIGHT_SIMPLE):
    """`log10(1 - R^2 + 1e-6) + w / (1 - w) * complexity` (the module's rule)."""
    per_unit = weight_simple / (1.0 - weight_simple)
    return math.log10(max(1.0 - r2, 0.0) + _EPS_R2) + per_unit * complexity


def _rank(results, lib, weight_simple=_WEIGHT_SIMPLE):
    """`[(name, r2, params)]` -> best first under the documented rule (invalid dropped).

    Near-ties go to the lower complexity, then to a zero shift `b` (`|b| <=
    0.01`: `cos(pi x)` rather than `sin(pi x + pi/2)`), then library order.
    """
    names = list(lib)
    pool = [(name, r2, params) for name, r2, params in results if np.isfinite(r2)]
    ranked = []
    while pool:
        scores = [_score(r2, lib[name].complexity, weight_simple) for name, r2, _ in pool]
        best = min(scores)
        close = [k for k, s in enumerate(scores) if s <= best + _TIE]
        pick = min(close, key=lambda k: (lib[pool[k][0]].complexity,
                                         abs(pool[k][2][1]) > _ZERO_SHIFT,
                                         names.index(pool[k][0])))
        ranked.append(pool.pop(pick))
    return [SymbolicFit(name, float(r2), params) for name, r2, params in ranked]


def _fit_all(x, y, lib, weight_simple=_WEIGHT_SIMPLE):
    return _rank([(name, *fit_function(x, y, fn)) for name, fn in lib.items()], lib,
                 weight_simple)


# ---------------------------------------------------------------- model data
def _model_edges(model, x, caller):
    """Layers, their `(P, n)` per-feature order-statistic inputs and `(P, n, m)` phis."""
    if isinstance(model, KANDense):
        if not model.built:
            raise ValueError(f"{caller}: the KANDense layer is not built.")
        data = check_samples("x", x, model.input_dim, min_samples=2,
                             what=f"samples of the input of layer '{model.name}'")
        layers, inputs = [model], [data]
    else:
        layers = kan_layers(model, caller)
        data = model_samples(model, x)
        inputs = chain_inputs(model, layers, data)
    return layers, inputs


def _edge_data(layer, inputs):
    xs = quantile_samples(inputs, _FIT_POINTS)
    return xs, edge_values(layer, xs)


def _check_edge(layers, layer_index, i, j):
    layer = layers[check_int("layer_index", layer_index, 0, len(layers) - 1)]
    check_int("i", i, 0, layer.input_dim - 1)
    check_int("j", j, 0, layer.units - 1)
    return layer


def _mask(layer):
    return np.asarray(ops.convert_to_numpy(layer.edge_mask), np.float64)


def _format_params(params):
    return "" if params is None else "  ".join(
        f"{k}={v: .4g}" for k, v in zip("abcd", params))


def suggest_symbolic(model, layer_index, i, j, x, lib=None, top_k=5, verbose=True):
    """Rank the library's functions for edge `i -> j` of a KANDense layer.

    Each function `f` is fitted as `c * f(a * x + b) + d` to the edge's
    values `phi_ij` on the samples of input `i` that reach the layer for
    `x` (up to 1024 evenly spaced order statistics). See the module
    docstring for the search, the canonical parameters and the ranking rule.

    Args:
        model: a model with KANDense layers, or a single built `KANDense`
            (then `x` is that layer's input and `layer_index` must be 0).
        layer_index: which KANDense of the model (0-based, KANDense layers only).
        i, j: the edge's input and output unit (0-based).
        x: `(N, n_in)` samples of the model input.
        lib: None (all of `SYMBOLIC_LIB`), a list of names /
            `SymbolicFunction`, or a dict `name -> SymbolicFunction`.
        top_k: how many to return (None: all).
        verbose: print a table.

    Returns:
        list of `SymbolicFit` `(name, r2, (a, b, c, d))`, best first.
    """
    lib = _resolve_lib(lib)
    layers, inputs = _model_edges(model, x, "suggest_symbolic")
    layer = _check_edge(layers, layer_index, i, j)
    xs, phis = _edge_data(layer, inputs[layer_index])
    ranked = _fit_all(xs[:, i], phis[:, i, j], lib)
    if top_k is not None:
        ranked = ranked[: int(top_k)]
    if verbose:
        masked = " (masked edge: phi = 0)" if _mask(layer)[i, j] == 0 else ""
        print(f"edge {i} -> {j} of layer {layer_index} ('{layer.name}'){masked}: "
              "phi ~ c*f(a*x+b)+d")
        print(f"  {'#':>2}  {'function':<9} {'R^2':>10}  {'cplx':>4}  params")
        for rank, fit in enumerate(ranked, 1):
            print(f"  {rank:>2}  {fit.name:<9} {fit.r2:>10.6f}  "
                  f"{lib[fit.name].complexity:>4g}  {_format_params(fit.params)}")
    return ranked


def _choose(ranked, r2_threshold):
    for fit in ranked:
        if fit.r2 >= r2_threshold:
            return fit
    best = max((fit.r2 for fit in ranked), default=-np.inf)
    return SymbolicFit(None, float(best), None)


def auto_symbolic(model, x, lib=None, r2_threshold=0.9, weight_simple=_WEIGHT_SIMPLE, verbose=1,
                  inplace=True, mode="symbolic"):
    """Pick a symbolic function for every unmasked edge of every KANDense.

    The edge gets the best-ranked function (see the module docstring) whose
    `R^2` is at least `r2_threshold`; an edge with none keeps its numeric
    spline: its entry is `SymbolicFit(None, best_r2, None)`. Masked
    (pruned) edges are exactly 0 and get no entry.

    With `inplace=True` (the default, pykan's `auto_symbolic`) the chosen
    functions are written into the model: each such edge becomes
    `c * f(a * x + b) + d` with trainable `a, b, c, d` (its numeric part is
    masked off, or kept beside it with `mode="both"`), layer by layer, each
    layer fitted on the values that reach it after the layers before it were
    made symbolic. Edges that are already symbolic are skipped. Compiled
    functions are rebuilt (and a built optimizer replaced by a fresh one of
    the same configuration). With `inplace=False` the model is not changed
    (the fits are only returned, for analysis).

    Args:
        model: a model with KANDense layers (or a single built KANDense).
        x: `(N, n_in)` samples of the model input.
        lib: see `suggest_symbolic`.
        r2_threshold: minimum `R^2` for a symbolic edge.
        weight_simple: `w` in [0, 1) of the ranking rule: `w / (1 - w)`
            decades of unexplained variance per unit of complexity (default
            1/3: 0.5 decades).
        verbose: 0 silent, 1 one line per edge.
        inplace: write the choices into the model. Then each hidden node
            whose edges are all symbolic is rescaled (exactly, the model
            function does not change) so that its first outgoing edge reads
            `f(1 * h + 0)`: well-conditioned constants for the training that
            follows (no `a = 10` against `c = 0.1`).
        mode: `"symbolic"` or `"both"` (see `fix_symbolic`).

    Returns:
        dict `{(layer_index, i, j): SymbolicFit(name, r2, (a, b, c, d))}`.
    """
    weight_simple = _check_weight_simple(weight_simple)
    if inplace:
        return _auto_in_place(model, x, lib, r2_threshold, weight_simple, verbose, mode)
    lib = _resolve_lib(lib)
    layers, inputs = _model_edges(model, x, "auto_symbolic")
    fits = {}
    for index, (layer, layer_in) in enumerate(zip(layers, inputs)):
        xs, phis = _edge_data(layer, layer_in)
        mask = _mask(layer)
        for i in range(phis.shape[1]):
            for j in range(phis.shape[2]):
                if mask[i, j] == 0:
                    continue
                fit = _choose(_fit_all(xs[:, i], phis[:, i, j], lib, weight_simple),
                              r2_threshold)
                fits[(index, i, j)] = fit
                if verbose:
                    what = (f"{fit.name:<8} R^2 = {fit.r2:.6f}  {_format_params(fit.params)}"
                            if fit.fitted else
                            f"kept numeric (best R^2 = {fit.r2:.4f} < {r2_threshold})")
                    print(f"layer {index} edge {i} -> {j}: {what}")
    return fits


def fix_symbolic(fits, layer_index, i, j, name, fit_params=True, x=None, params=None,
                 mode="symbolic", lib=None, verbose=None, model=None):
    """Make edge `i -> j` of a KANDense symbolic: `c * f(a * x + b) + d`.

    **In a model** (`fits` is a `keras.Model` or a built `KANDense`;
    pykan's `fix_symbolic`): the edge of layer `layer_index` (index among the
    model's KANDense layers, the layer itself, or its name) gets the function
    `name` in place. With `fit_params=True`, `(a, b, c, d)` are fitted (see
    `fit_function`) to the edge's numeric function on the values that reach
    it for `x`; else `params` (default `(1, 0, 1, 0)`) are used. `mode` is
    `"symbolic"` (the numeric part is masked off) or `"both"` (the two
    parts add up). `name=None` makes the edge numeric again
    (`unfix_symbolic`). The choice and its `R^2` are printed unless
    `verbose=False`. Compiled functions are rebuilt (a built optimizer is
    replaced by a fresh one of the same configuration when the trainable
    variables change).

    **In a dict** (`fits` is the dict of `auto_symbolic(..., inplace=False)`,
    for analysis): only the dict entry `(layer_index, i, j)` changes.
    With `model` and `x` the parameters `(a, b, c, d)` are fitted on the
    edge's values (and its `R^2` recorded); alternatively pass `params`
    explicitly (`R^2` is then computed when `model` and `x` are given,
    else NaN). `name=None` marks the edge as numeric (it keeps its spline in
    `symbolic_formula`). Only the `fits` dict is updated, in place:
    the model's numeric layers are **not** changed.

    Returns:
        the new `SymbolicFit` (also stored in `fits` for the dict form).
    """
    if isinstance(fits, (keras.Model, KANDense)):
        return _fix_in_model(fits, layer_index, i, j, name, fit_params, x, params, mode, lib,
                             True if verbose is None else verbose)
    if not isinstance(fits, dict):
        raise ValueError(f"`fits` must be a model, a KANDense or the dict returned by "
                         f"auto_symbolic(..., inplace=False), got {fits!r}.")
    lib = dict(SYMBOLIC_LIB, **(_resolve_lib(lib) if lib is not None else {}))
    if name is not None and name not in lib:
        raise ValueError(f"Unknown symbolic function {name!r}; known: {sorted(lib)}.")
    key = (int(layer_index), int(i), int(j))
    xs = ys = None
    if model is not None and x is not None:
        layers, inputs = _model_edges(model, x, "fix_symbolic")
        layer = _check_edge(layers, layer_index, i, j)
        if _mask(layer)[i, j] == 0:
            raise ValueError(f"Edge {i} -> {j} of layer {layer_index} is masked (pruned): it is "
                             "0 and has no function to fix.")
        data, phis = _edge_data(layer, inputs[layer_index])
        xs, ys = data[:, i], phis[:, i, j]
    elif (model is None) != (x is None):
        raise ValueError("fix_symbolic needs both `model` and `x` (or neither, with `params`).")
    if name is None:
        fit = SymbolicFit(None, float("nan"), None)
    elif params is not None:
        params = tuple(float(v) for v in params)
        if len(params) != 4:
            raise ValueError(f"`params` must be (a, b, c, d), got {params!r}.")
        r2 = float("nan")
        if xs is not None:
            a, b, c, d = params
            with np.errstate(all="ignore"):
                pred = c * lib[name].numpy(a * xs + b) + d
            sst = float(((ys - ys.mean()) ** 2).sum())
            r2 = 1.0 - float(((ys - pred) ** 2).sum()) / sst if sst > 0 else float(
                np.allclose(pred, ys))
        fit = SymbolicFit(name, r2, params)
    elif xs is None:
        raise ValueError("fix_symbolic needs `model` and `x` to fit the parameters, or "
                         "explicit `params=(a, b, c, d)`.")
    else:
        r2, fitted = fit_function(xs, ys, lib[name])
        if fitted is None:
            raise ValueError(f"{name!r} cannot be evaluated on the values reaching edge "
                             f"{i} -> {j} of layer {layer_index} (outside its domain).")
        fit = SymbolicFit(name, float(r2), fitted)
    fits[key] = fit
    if verbose:
        print(f"fixed layer {key[0]} edge {key[1]} -> {key[2]}: {fit.name}  R^2 = {fit.r2:.6f}"
              f"  {_format_params(fit.params)}")
    return fit


# ------------------------------------------------------------------- formulas
def _round_number(value, precision, chop=0.0):
    value = float(value)
    if abs(value) < chop:
        return sympy.Integer(0)
    if value == 0 or not math.isfinite(value):
        return sympy.Float(value) if value else sympy.Integer(0)
    rounded = float(f"{value:.{precision}g}")
    if rounded == int(rounded) and abs(rounded) < 1e15:
        return sympy.Integer(int(rounded))
    return sympy.Float(rounded)


def _round_expr(expr, precision, chop=0.0):
    floats = expr.atoms(sympy.Float)
    return expr.xreplace({f: _round_number(f, precision, chop)
                          for f in floats}) if floats else expr


def _fold_exp_constants(expr):
    """`exp(k + u) -> e^k exp(u)` for a number `k`, so the factor merges with
    the constants outside (`c * exp(a * (u + d))` becomes one factor)."""
    def split(term):
        const, rest = term.args[0].as_coeff_Add()
        return sympy.exp(const) * sympy.exp(rest)

    return expr.replace(lambda e: isinstance(e, sympy.exp) and e.args[0].is_Add
                        and e.args[0].as_coeff_Add()[0] != 0, split)


def _variables(variables, n):
    if variables is None:
        return [sympy.Symbol(f"x_{k + 1}") for k in range(n)]
    symbols = [v if isinstance(v, sympy.Symbol) else sympy.Symbol(str(v)) for v in variables]
    if len(symbols) != n:
        raise ValueError(f"`variables` must name the {n} model inputs, got {len(symbols)}.")
    return symbols


def _edge_name(layer_index, i, j):
    return f"phi_{layer_index}_{i}_{j}"


def symbolic_formula(model, x=None, fits=None, simplify=True, precision=4, variables=None,
                     lib=None, r2_threshold=0.9, verbose=True, chop=1e-6):
    """Compose the per-edge fits into one sympy expression per model output.

    With `fits=None` (the usual case after `auto_symbolic` / `fix_symbolic`)
    the formula is read from the model's own symbolic edges: a symbolic edge
    contributes `c*f(a*node_i + b) + d` with its trained parameters, and
    every edge whose numeric part is still active (numeric or "both" edges)
    contributes `phi_{l}_{i}_{j}(node_i)`, an undefined function standing
    for that edge's numeric part; these are listed when `verbose`. With a
    `fits` dict (from `auto_symbolic(..., inplace=False)`) the formula is
    composed from the dict instead.

    Node `j` of layer `l + 1` is `sum_i c*f(a*node_i + b) + d` (+ bias)
    over the unmasked edges; an edge without a symbolic fit (or missing from
    `fits`) becomes an undefined function `phi_{l}_{i}_{j}(node_i)` so the
    formula stays honest (`evaluate_formula` evaluates it numerically
    from the model). Each parameter is rounded to `precision` significant
    digits before composing (whole numbers become integers), and the result
    is rounded again.

    Args:
        model: a model that is a plain chain `input -> KANDense -> ... ->
            KANDense` (Sequential or functional).
        x: unused (kept for the older call form `symbolic_formula(model, x)`).
        fits: None (read the model) or a dict from
            `auto_symbolic(..., inplace=False)` / `fix_symbolic(dict, ...)`.
        simplify: multiply out small integer powers of sums where that makes
            the formula shorter (by `sympy.count_ops`). `sympy.simplify` is
            not run (it is slow); constants merge in any case.
        precision: significant digits of the printed constants.
        variables: names (or sympy Symbols) of the inputs; default
            `x_1 .. x_n`.
        lib: extra `SymbolicFunction`s a `fits` dict refers to.
        r2_threshold: unused (kept for compatibility).
        verbose: print the numeric edges left in the formula.
        chop: constants of a formula read from the model whose magnitude is
            below this become 0 (float32 noise such as `(x - 3e-8)**2`);
            0 keeps everything.

    Returns:
        a sympy expression (one output) or a list of them.
    """
    layers = kan_layers(model, "symbolic_formula")
    if not is_plain_chain(model, layers):
        raise ValueError(
            "symbolic_formula needs a model that is a plain chain of KANDense layers "
            f"(input -> KANDense -> ... -> KANDense); '{model.name}' has other layers or "
            "branches."
        )
    precision = check_int("precision", precision, 1)
    if fits is not None and not isinstance(fits, dict):
        raise ValueError(f"`fits` must be the dict returned by auto_symbolic, got {fits!r}.")
    if x is not None:  # unused, but a bad value is still a caller's mistake worth naming
        model_samples(model, x, min_samples=1)
    all_fns = dict(SYMBOLIC_LIB, **(_resolve_lib(lib) if lib is not None else {}))
    nodes = _variables(variables, layers[0].input_dim)
    for index, layer in enumerate(layers):
        mask = _mask(layer)
        n, m = mask.shape
        bias = (np.asarray(ops.convert_to_numpy(layer.bias), np.float64)
                if getattr(layer, "bias", None) is not None else np.zeros(m))
        outputs = []
        if fits is None:
            numeric_edges = []
            for j in range(m):
                total = _round_number(bias[j], precision)
                for i in range(n):
                    total += _model_edge_term(layer, index, i, j, nodes[i], precision,
                                              numeric_edges)
                outputs.append(total)
            if numeric_edges and verbose:
                print(f"symbolic_formula: layer {index} still has {len(numeric_edges)} numeric "
                      f"edge(s), kept as functions: {', '.join(numeric_edges)}")
            nodes = outputs
            continue
        for j in range(m):
            total = _round_number(bias[j], precision)
            for i in range(n):
                if mask[i, j] == 0:
                    continue
                fit = fits.get((index, i, j))
                if fit is None or fit.name is None or fit.params is None:
                    total += sympy.Function(_edge_name(index, i, j))(nodes[i])
                    continue
                if fit.name not in all_fns:
                    raise ValueError(f"Edge {(index, i, j)} uses the unknown function "
                                     f"{fit.name!r}; pass its SymbolicFunction in `lib`.")
                a, b, c, d = (_round_number(v, precision) for v in fit.params)
                if c == 0:
                    total += d
                else:
                    total += c * all_fns[fit.name].sympy(a * nodes[i] + b) + d
            outputs.append(total)
        nodes = outputs
    result = []
    for expr in nodes:
        if fits is None:  # from the model: fold constants, drop float32 noise
            expr = _fold_exp_constants(_round_expr(expr, 15, chop))
        if simplify:
            expr = _tidy(expr)
        result.append(_round_expr(expr, precision, chop))
    return result[0] if len(result) == 1 else result


def _model_edge_term(layer, index, i, j, node, precision, numeric_edges):
    """Edge `i -> j`'s term read from the layer: symbolic part + numeric part."""
    term = sympy.Integer(0)
    name = symbolic_edges.function_names(layer)[i, j]
    if name:
        params = [float(ops.convert_to_numpy(getattr(layer, w))[i, j])
                  for w in symbolic_edges.SYMBOLIC_WEIGHT_NAMES]
        # exact constants here; the whole formula is rounded once at the end
        smask, a, b, c, d = (sympy.Float(v) if v else sympy.Integer(0) for v in params)
        if smask != 0:
            fn = symbolic_edges.sympy_function(symbolic_edges.get_function(name))
            term += smask * ((c * fn(a * node + b) if c != 0 else 0) + d)
    if _mask(layer)[i, j] != 0:
        numeric_edges.append(_edge_name(index, i, j))
        term += sympy.Function(_edge_name(index, i, j))(node)
    return term


def _small_power(term, max_terms=60):
    """An integer power (2..4) of a sum whose expansion has at most `max_terms` terms."""
    return (term.is_Pow and term.exp.is_Integer and 1 < term.exp <= 4 and term.base.is_Add
            and math.comb(len(term.base.args) + int(term.exp) - 1, int(term.exp)) <= max_terms)


def _tidy(expr):
    """Multiply out small powers of sums when that makes `expr` shorter.

    Constants already merge as sympy builds the sums. `sympy.simplify` is
    not called: it can take seconds even on small formulas.
    """
    expanded = expr.replace(_small_power, lambda term: sympy.expand(
        term, deep=False, power_base=False, power_exp=False, log=False))
    return expanded if sympy.count_ops(expanded) <= sympy.count_ops(expr) else expr


def evaluate_formula(expr, x, model=None, variables=None):
    """Evaluate formula(s) on `x` with NumPy (`sympy.lambdify`).

    Undefined edge functions `phi_{l}_{i}_{j}` (numeric edges) are evaluated
    from `model`'s spline for that edge, which is then required.

    Args:
        expr: a sympy expression or a list of them (e.g. from
            `symbolic_formula`).
        x: `(N, n_in)` inputs; column `k` is `x_{k+1}` (or
            `variables[k]`).
        model: the model the formula came from (for numeric edges).
        variables: the input names used in `symbolic_formula`.

    Returns:
        `(N, n_out)` float64 array.
    """
    data = np.asarray(ops.convert_to_numpy(x), np.float64)
    if data.ndim != 2:
        raise ValueError(f"`x` must have shape (N, features), got {data.shape}.")
    exprs = list(expr) if isinstance(expr, (list, tuple)) else [expr]
    exprs = [sympy.sympify(e) for e in exprs]
    symbols = _variables(variables, data.shape[1])
    unknown = set().union(*(e.free_symbols for e in exprs)) - set(symbols)
    if unknown:
        raise ValueError(f"The formula uses {sorted(map(str, unknown))}, which are not inputs "
                         f"{[str(s) for s in symbols]}.")
    functions = {}
    for e in exprs:
        for call in e.atoms(sympy.core.function.AppliedUndef):
            name = call.func.__name__
            functions[name] = _numeric_edge(name, model)
    columns = [data[:, k] for k in range(data.shape[1])]
    out = []
    for e in exprs:
        f = sympy.lambdify(symbols, e, modules=[functions, "numpy"])
        with np.errstate(all="ignore"):
            value = np.asarray(f(*columns), np.float64)
        out.append(np.broadcast_to(value, (data.shape[0],)))
    return np.stack(out, axis=1)


def _numeric_edge(name, model):
    parts = name.split("_")
    if len(parts) != 4 or parts[0] != "phi" or not all(p.isdigit() for p in parts[1:]):
        raise ValueError(f"The formula uses an unknown function {name!r}.")
    if model is None:
        raise ValueError(f"The formula has the numeric edge {name}; pass `model` to evaluate it.")
    layers = kan_layers(model, "evaluate_formula")
    index, i, j = (int(p) for p in parts[1:])
    layer = _check_edge(layers, index, i, j)
    n = layer.input_dim

    def phi(u):
        u = np.broadcast_to(np.asarray(u, np.float64), np.shape(u)).reshape(-1)
        inputs = np.zeros((u.size, n))
        inputs[:, i] = u
        return edge_values(layer, inputs, include_symbolic=False)[:, i, j]

    return phi


def formula_r2(model, x, expr, variables=None):
    """`R^2` of formula(s) against the model's own outputs on `x`.

    For a plain chain of KANDense layers the outputs are computed in float64
    from the layers' weights (the same numbers as `model(x)` up to float32
    rounding, without tracing the model); any other model is called directly.

    Args:
        model: the model the formula describes.
        x: `(N, n_in)` inputs.
        expr: a sympy expression or list, as returned by `symbolic_formula`.
        variables: the input names used in `symbolic_formula`.

    Returns:
        a float (one output) or a list of floats, one per output.
    """
    data = model_samples(model, x, max_samples=np.iinfo(np.int64).max)
    layers = kan_layers(model, "formula_r2")
    if is_plain_chain(model, layers):  # same numbers as model(x), in float64, no tracing
        target = layer_output(layers[-1], edge_values(layers[-1], chain_inputs(
            model, layers, data)[-1]))
    else:
        target = np.asarray(ops.convert_to_numpy(model(ops.convert_to_tensor(
            data, dtype=keras.config.floatx()))), np.float64).reshape(data.shape[0], -1)
    pred = evaluate_formula(expr, data, model=model, variables=variables)
    if pred.shape != target.shape:
        raise ValueError(f"The formula has {pred.shape[1]} outputs, the model {target.shape[1]}.")
    scores = []
    for k in range(target.shape[1]):
        sst = float(((target[:, k] - target[:, k].mean()) ** 2).sum())
        sse = float(((target[:, k] - pred[:, k]) ** 2).sum())
        scores.append(1.0 - sse / sst if sst > 0 else float(sse <= 1e-12 * target.shape[0]))
    return scores[0] if len(scores) == 1 else scores


# ------------------------------------------------------ symbolic edges in place
def _check_weight_simple(value):
    value = check_real("weight_simple", value, 0.0)
    if value >= 1.0:
        raise ValueError(f"Received an invalid value for argument `weight_simple`: expected "
                         f"a number in [0, 1), got {value!r}.")
    return value


def _find_layer(model, layer):
    """`(layers, index, layer)` for a layer given by index, object or name."""
    layers = [model] if isinstance(model, KANDense) else kan_layers(model, "fix_symbolic")
    if isinstance(layer, KANDense):
        for index, candidate in enumerate(layers):
            if candidate is layer:
                return layers, index, layer
        raise ValueError(f"Received an invalid value for argument `layer`: KANDense "
                         f"'{layer.name}' is not in the model.")
    if isinstance(layer, str):
        for index, candidate in enumerate(layers):
            if candidate.name == layer:
                return layers, index, candidate
        raise ValueError(f"Received an invalid value for argument `layer`: no KANDense named "
                         f"{layer!r} (have {[c.name for c in layers]}).")
    index = check_int("layer", layer, 0, len(layers) - 1)
    return layers, index, layers[index]


def _numeric_values(layer, xs, edges):
    """Unmasked numeric edge values `(P, n, m)` (the spline even where `edge_mask` is 0)."""
    mask = np.array(ops.convert_to_numpy(layer.edge_mask), np.float64)
    for i, j in edges:
        mask[i, j] = 1.0
    return edge_values(layer, xs, include_symbolic=False, weights={"edge_mask": mask})


def _layer_samples(model, x, index):
    """`(P, n)` order statistics of what reaches KAN layer `index` now."""
    _, inputs = _model_edges(model, x, "fix_symbolic")
    return quantile_samples(inputs[index], _FIT_POINTS)


def _trainable(model):
    return list(model.trainable_variables)


def _describe(index, i, j, fit, prefix):
    return (f"{prefix} layer {index} edge {i} -> {j}: {fit.name:<8} R^2 = {fit.r2:.6f}  "
            f"{_format_params(fit.params)}")


def _fix_in_model(model, layer, i, j, name, fit_params, x, params, mode, lib, verbose):
    layers, index, layer = _find_layer(model, layer)
    check_int("i", i, 0, layer.input_dim - 1)
    check_int("j", j, 0, layer.units - 1)
    i, j = int(i), int(j)
    before = _trainable(model)
    if name is None:
        symbolic_edges.set_edge(layer, i, j, None)
        symbolic_edges.reset_model(model, before)
        if verbose:
            print(f"unfixed layer {index} edge {i} -> {j}: numeric")
        return SymbolicFit(None, float("nan"), None)
    fns = _resolve_lib(lib)
    fn = fns[name] if name in fns else _from_registry(name)
    r2 = float("nan")
    if params is not None:
        params = tuple(float(v) for v in params)
        if len(params) != 4:
            raise ValueError(f"Received an invalid value for argument `params`: expected "
                             f"(a, b, c, d), got {params!r}.")
    if fit_params and params is None:
        if x is None:
            raise ValueError("fix_symbolic with fit_params=True needs `x` (samples of the "
                             "model input) to fit (a, b, c, d); or pass fit_params=False.")
        xs = _layer_samples(model, x, index)
        ys = _numeric_values(layer, xs, [(i, j)])[:, i, j]
        r2, params = fit_function(xs[:, i], ys, fn)
        if params is None:
            raise ValueError(f"{name!r} cannot be evaluated on the values reaching edge "
                             f"{i} -> {j} of layer {index} (outside its domain).")
    elif params is None:
        params = (1.0, 0.0, 1.0, 0.0)
    symbolic_edges.set_edge(layer, i, j, name, params, mode)
    symbolic_edges.reset_model(model, before)
    fit = SymbolicFit(name, float(r2), params)
    if verbose:
        print(_describe(index, i, j, fit, "fixed"))
    return fit


def _auto_in_place(model, x, lib, r2_threshold, weight_simple, verbose, mode):
    lib = _resolve_lib(lib)
    layers = [model] if isinstance(model, KANDense) else kan_layers(model, "auto_symbolic")
    before = _trainable(model)
    fits = {}
    for index, layer in enumerate(layers):
        mask = _mask(layer)
        names = symbolic_edges.function_names(layer)
        xs = _layer_samples(model, x, index)  # after the layers before were made symbolic
        phis = edge_values(layer, xs, include_symbolic=False)
        for i in range(mask.shape[0]):
            for j in range(mask.shape[1]):
                if names[i, j]:
                    if verbose:
                        print(f"layer {index} edge {i} -> {j}: already symbolic "
                              f"({names[i, j]}), skipped")
                    continue
                if mask[i, j] == 0:
                    continue
                fit = _choose(_fit_all(xs[:, i], phis[:, i, j], lib, weight_simple),
                              r2_threshold)
                fits[(index, i, j)] = fit
                if fit.fitted:
                    symbolic_edges.set_edge(layer, i, j, fit.name, fit.params, mode)
                if verbose:
                    print(_describe(index, i, j, fit, "fixed") if fit.fitted else
                          f"kept   layer {index} edge {i} -> {j}: numeric (best R^2 = "
                          f"{fit.r2:.4f} < {r2_threshold})")
    if not isinstance(model, KANDense) and is_plain_chain(model, layers):
        for layer, after in zip(layers[:-1], layers[1:]):  # exact rescaling, see below
            for j in range(layer.units):
                symbolic_edges.normalize_node(layer, after, j)
    symbolic_edges.reset_model(model, before)
    return fits


def unfix_symbolic(model, layer=None, i=None, j=None, verbose=True):
    """Make symbolic edges numeric again, in place (pykan's `unfix_symbolic`).

    The edge's numeric spline (kept all along) is switched back on
    (`edge_mask` 1) and its symbolic part off.

    Args:
        model: a model with KANDense layers, or a built KANDense.
        layer: index among the KANDense layers, the layer or its name; None:
            every layer.
        i, j: the edge; None: every symbolic edge of the layer(s).
        verbose: print what changed.

    Returns:
        the number of edges made numeric.
    """
    layers = [model] if isinstance(model, KANDense) else kan_layers(model, "unfix_symbolic")
    targets = range(len(layers)) if layer is None else [_find_layer(model, layer)[1]]
    before = _trainable(model)
    count = 0
    for index in targets:
        current = layers[index]
        names = symbolic_edges.function_names(current)
        if i is not None or j is not None:
            if i is None or j is None:
                raise ValueError("unfix_symbolic needs both `i` and `j`, or neither.")
            check_int("i", i, 0, current.input_dim - 1)
            check_int("j", j, 0, current.units - 1)
            edges = [(int(i), int(j))]
        else:
            edges = list(zip(*np.nonzero(names != "")))
        for a, b in edges:
            symbolic_edges.set_edge(current, int(a), int(b), None)
            count += 1
            if verbose:
                print(f"unfixed layer {index} edge {a} -> {b}: numeric")
    symbolic_edges.reset_model(model, before)
    return count


def polish_symbolic(model, x, y, max_nfev=200, verbose=True):
    """Fit every symbolic edge's `a, b, c, d` jointly to data, in float64, in place.

    A plain chain is evaluated in float64 NumPy (numeric parts from the
    layers' splines, symbolic parts from the library's NumPy functions) and
    all symbolic parameters are fitted together to `y` with
    `scipy.optimize.least_squares` (trust-region reflective). In float32, the
    loss near an exact formula is so flat and noisy (outputs round at
    ~1e-7 relative) that gradient training of `a, b, c, d` can stall at
    RMSE ~1e-5; this solve does not. Parameters are written back in the
    variables' dtype; compiled functions keep working (no structure change).

    Args:
        model: a plain chain of KANDense layers with symbolic edges.
        x: `(N, n_in)` inputs; y: `(N, n_out)` or `(N,)` targets.
        max_nfev: the most function evaluations.
        verbose: print the RMSE before and after.

    Returns:
        the float64 RMSE after the fit.
    """
    layers = kan_layers(model, "polish_symbolic")
    if not is_plain_chain(model, layers):
        raise ValueError("polish_symbolic needs a plain chain of KANDense layers.")
    data = model_samples(model, x, max_samples=np.iinfo(np.int64).max)
    target = np.asarray(ops.convert_to_numpy(y), np.float64).reshape(data.shape[0], -1)
    slots = []  # (layer index, name, rows, cols) per symbolic weight block in use
    for index, layer in enumerate(layers):
        names = symbolic_edges.function_names(layer)
        rows, cols = np.nonzero(names != "")
        if rows.size:
            slots.append((index, rows, cols))
    if not slots:
        raise ValueError("polish_symbolic: the model has no symbolic edge.")
    params0 = {(index, w): np.asarray(ops.convert_to_numpy(getattr(layers[index], w)),
                                      np.float64)
               for index, _, _ in slots for w in symbolic_edges.SYMBOLIC_WEIGHT_NAMES}

    def unpack(vector):
        values = {key: value.copy() for key, value in params0.items()}
        k = 0
        for index, rows, cols in slots:
            for w in symbolic_edges.SYMBOLIC_WEIGHT_NAMES[1:]:
                values[(index, w)][rows, cols] = vector[k:k + rows.size]
                k += rows.size
        return values

    fixed = [layer.get_weights_by_name() for layer in layers]  # read once, not per trial

    def forward(values):
        current = data
        for index, layer in enumerate(layers):
            trial = dict(fixed[index], **{w: values[(index, w)] for w in
                                          symbolic_edges.SYMBOLIC_WEIGHT_NAMES
                                          if (index, w) in values})
            with np.errstate(all="ignore"):
                current = edges.output(edges.NUMPY, current,
                                       edges.params(layer, edges.NUMPY, weights=trial))
        return current

    start = np.concatenate([params0[(index, w)][rows, cols] for index, rows, cols in slots
                            for w in symbolic_edges.SYMBOLIC_WEIGHT_NAMES[1:]])

    def residuals(vector):
        res = (forward(unpack(vector)) - target).reshape(-1)
        return np.where(np.isfinite(res), res, 1e3)

    before = float(np.sqrt(np.mean(residuals(start) ** 2)))
    result = least_squares(residuals, start, method="trf", x_scale="jac", ftol=1e-15,
                           xtol=1e-15, gtol=1e-15, max_nfev=int(max_nfev))
    best = result.x if np.mean(result.fun ** 2) <= before ** 2 else start
    for (index, w), value in unpack(best).items():
        variable = getattr(layers[index], w)
        variable.assign(value.astype(variable.dtype))
    after = float(np.sqrt(np.mean(residuals(best) ** 2)))
    if verbose:
        print(f"polish_symbolic: RMSE {before:.3e} -> {after:.3e} (float64, "
              f"{result.nfev} evaluations)")
    return after
