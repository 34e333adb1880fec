"""The one library of symbolic edge functions `f` (in `c * f(a * x + b) + d`).

Every user of a symbolic function reads it from here: the layer's forward
pass (`keras.ops` form), analysis and fitting (float64 NumPy form), formulas
(sympy form), the ranking of candidates (complexity) and the fitter's search
(safe domain and how `a`, `b` are searched). A `.keras` file stores only the
function's name, so a model that names a user function loads after
`add_symbolic` registered it in the loading process.

The built-in functions are singularity-safe: `1/x^k`, `log`, `sqrt`,
`x^1.5`, `1/sqrt(x)`, `tan`, `arcsin`, `arccos`, `arctanh` give finite
values and finite gradients for every finite input (outside their domain they
are continued by a constant or a clipped argument), so a training step cannot
turn a model into NaN. Inside their domain (away from the clipping thresholds,
at `1e-10`-ish distances from a pole) they are the exact functions. Each body
is written once against a namespace `xp` (`keras.ops` or `numpy`).

No sympy is needed to import this module: sympy forms are strings in `x`,
parsed on first use (`sympy_function`).
"""

import math
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
from keras import ops

from keras_kan.validation import check_one_of

__all__ = [
    "EdgeFunction",
    "add_symbolic",
    "remove_symbolic",
    "get_function",
    "registered_names",
    "candidate_names",
    "sympy_function",
    "SCALES",
]

#: How the fitter searches `a` (see `EdgeFunction.scale`).
SCALES = ("free", "signed", "unit", "unit_signed")


class EdgeFunction(NamedTuple):
    """A registered edge function `f`.

    Attributes:
        name: its key (stored in `.keras` configs).
        keras: `u -> f(u)` on Keras tensors (keras.ops only: every backend).
        numpy: `u -> f(u)` on float64 NumPy arrays (analysis, plots, fits).
        sympy: `sympy expression -> sympy expression`, or a string in `x`
            (parsed lazily; read it through `sympy_function`).
        complexity: used when ranking candidates (`"0"` 0, `x` 1 ... `1/x^5` 5).
        domain: `(u_min (C,), u_max (C,)) -> bool (C,)`: whether `f` is defined
            and smooth on each whole interval; None: everywhere.
        scale: how the fitter searches `a`: `"free"` (`a > 0`; odd or even
            `f`), `"signed"` (either sign), `"unit"` (`a = 1`; `f(s u) =
            g(s) f(u)`, e.g. powers) or `"unit_signed"` (`a = +-1`; `sqrt`, `log`).
        shift: whether the fitter searches `b` (False: `b = 0`, e.g. `exp`).
        period: the period of `f`, or None (`b` is reported modulo it).
        flip: `f(u + period / 2) = -f(u)` (`sin`, `cos`): the fitter keeps `c > 0`.
        homogeneous: `f(k u) = g(k) f(u)` for `k > 0` (powers, `sqrt`, `abs`):
            formulas pull such factors out of the function.
        alias_of: the canonical name when this is another name for the same
            function (kept so that files using it load; not a fitting candidate).
        builtin: True for the library shipped with keras_kan.
    """

    name: str
    keras: Callable
    numpy: Callable
    sympy: object
    complexity: float
    domain: Callable | None = None
    scale: str = "signed"
    shift: bool = True
    period: float | None = None
    flip: bool = False
    homogeneous: bool = False
    alias_of: str | None = None
    builtin: bool = False


# ------------------------------------------------------- safe function bodies
_RECIP_LIMIT = 1e10  # |1/x^k| is capped here (x^k -> 1/limit near 0)
_LOG_FLOOR = 1e-10  # log(u) for u < this is log(this)
_SQRT_FLOOR = 1e-8  # sqrt(u) for u < this continues linearly through 0
_TAN_FLOOR = 1e-7  # |cos u| is kept >= this in tan = sin / cos
_UNIT_MARGIN = 1e-6  # arcsin, arccos, arctanh: argument clipped to +-(1 - this)


def _power(k):
    def f(xp, u):
        out = u
        for _ in range(k - 1):
            out = out * u
        return out
    return f


def _inv_power(k):
    """`1/u^k`; for `|u| < th` (where `|1/u^k| > 1e10`) continued by
    `u * th^(-k-1)` (odd k: through 0) or the constant `th^(-k)` (even k)."""
    th = _RECIP_LIMIT ** (-1.0 / k)

    def f(xp, u):
        small = xp.abs(u) < th
        safe = xp.where(small, th, u)
        inside = 1.0 / _power(k)(xp, safe)
        outside = u * th ** (-k - 1) if k % 2 else xp.zeros_like(u) + th ** (-k)
        return xp.where(small, outside, inside)
    return f


def _sqrt(xp, u):
    small = u < _SQRT_FLOOR
    safe = xp.where(small, _SQRT_FLOOR, u)
    return xp.where(small, u / math.sqrt(_SQRT_FLOOR), xp.sqrt(safe))


def _inv_sqrt(xp, u):
    small = u < _SQRT_FLOOR
    safe = xp.where(small, _SQRT_FLOOR, u)
    return xp.where(small, xp.zeros_like(u) + 1.0 / math.sqrt(_SQRT_FLOOR), 1.0 / xp.sqrt(safe))


def _pow15(xp, u):
    root = _sqrt(xp, u)
    return root * root * root


def _log(xp, u):
    small = u < _LOG_FLOOR
    safe = xp.where(small, _LOG_FLOOR, u)
    return xp.where(small, xp.zeros_like(u) + math.log(_LOG_FLOOR), xp.log(safe))


def _tan(xp, u):
    c = xp.cos(u)
    small = xp.abs(c) < _TAN_FLOOR
    safe = xp.where(small, xp.where(c < 0, -_TAN_FLOOR, _TAN_FLOOR), c)
    return xp.sin(u) / safe


# arcsin, arccos, arctanh, arctan through atan2 / log: LiteRT has no builtin
# ASIN, ACOS, ATANH (or ATAN), and these forms export with builtin ops only.
def _unit(xp, u):
    return xp.clip(u, -1.0 + _UNIT_MARGIN, 1.0 - _UNIT_MARGIN)


def _arcsin(xp, u):
    v = _unit(xp, u)
    return xp.arctan2(v, xp.sqrt(1.0 - v * v))


def _arccos(xp, u):
    v = _unit(xp, u)
    return xp.arctan2(xp.sqrt(1.0 - v * v), v)


def _arctanh(xp, u):
    v = _unit(xp, u)
    return 0.5 * xp.log((1.0 + v) / (1.0 - v))


def _arctan(xp, u):
    return xp.arctan2(u, xp.ones_like(u))


def _exp(xp, u):
    return xp.exp(xp.minimum(u, 80.0))  # e^80 ~ 5.5e34: finite in float32


def _gaussian(xp, u):
    return xp.exp(-u * u)


def _zero(xp, u):
    return u * 0.0  # not zeros_like: TensorFlow gives no gradient through that


def _identity(xp, u):
    return u


def _elementary(fn_name):
    def f(xp, u):
        return getattr(xp, fn_name)(u)
    return f


# ------------------------------------------------------------------ domains
# `(lo, hi)` arrays of the argument's range on the data -> bool array. The
# relative margins keep a fit inside the domain when `a, b` are rewritten in
# the data's own coordinates (rounding must not cross the domain edge).
def _margin(lo, hi):
    return 1e-9 * (np.abs(lo) + np.abs(hi) + 1e-300)


def _nonzero(lo, hi):
    return (lo > _margin(lo, hi)) | (hi < -_margin(lo, hi))


def _nonneg(lo, hi):
    return lo >= 0


def _positive(lo, hi):
    return lo > _margin(lo, hi)


def _unit_open(lo, hi):
    return (lo > -1) & (hi < 1)


def _unit_closed(lo, hi):
    return (lo >= -1) & (hi <= 1)


def _tan_domain(lo, hi):
    return np.floor(lo / np.pi - 0.5) == np.floor(hi / np.pi - 0.5)


_UNIT_SCALE = dict(scale="unit", homogeneous=True)
_ROOT = dict(scale="unit_signed", homogeneous=True)
_PERIODIC = dict(scale="free", period=2 * math.pi, flip=True)

#: name: (body, sympy string in x, complexity, options). pykan 0.2.8's library
#: (same names and complexities) plus `x^4`.
_BUILTINS = {
    "0": (_zero, "0", 0, dict(scale="unit", shift=False)),
    "x": (_identity, "x", 1, dict(scale="unit", shift=False, homogeneous=True)),
    "x^2": (_power(2), "x**2", 2, _UNIT_SCALE),
    "x^3": (_power(3), "x**3", 3, _UNIT_SCALE),
    "x^4": (_power(4), "x**4", 3, _UNIT_SCALE),
    "x^5": (_power(5), "x**5", 4, _UNIT_SCALE),
    "1/x": (_inv_power(1), "1/x", 2, dict(_UNIT_SCALE, domain=_nonzero)),
    "1/x^2": (_inv_power(2), "x**(-2)", 2, dict(_UNIT_SCALE, domain=_nonzero)),
    "1/x^3": (_inv_power(3), "x**(-3)", 3, dict(_UNIT_SCALE, domain=_nonzero)),
    "1/x^4": (_inv_power(4), "x**(-4)", 4, dict(_UNIT_SCALE, domain=_nonzero)),
    "1/x^5": (_inv_power(5), "x**(-5)", 5, dict(_UNIT_SCALE, domain=_nonzero)),
    "sqrt": (_sqrt, "sqrt(x)", 2, dict(_ROOT, domain=_nonneg)),
    "x^0.5": (_sqrt, "sqrt(x)", 2, dict(_ROOT, domain=_nonneg, alias_of="sqrt")),
    "x^1.5": (_pow15, "x**(3/2)", 4, dict(_ROOT, domain=_nonneg)),
    "1/sqrt(x)": (_inv_sqrt, "1/sqrt(x)", 4, dict(_ROOT, domain=_positive)),
    "1/x^0.5": (_inv_sqrt, "1/sqrt(x)", 4, dict(_ROOT, domain=_positive,
                                                  alias_of="1/sqrt(x)")),
    "exp": (_exp, "exp(x)", 2, dict(scale="signed", shift=False)),
    "log": (_log, "log(x)", 2, dict(scale="unit_signed", domain=_positive)),
    "abs": (_elementary("abs"), "Abs(x)", 3, _UNIT_SCALE),
    "sin": (_elementary("sin"), "sin(x)", 2, _PERIODIC),
    "cos": (_elementary("cos"), "cos(x)", 2, _PERIODIC),
    "tan": (_tan, "tan(x)", 3, dict(scale="free", domain=_tan_domain, period=math.pi)),
    "tanh": (_elementary("tanh"), "tanh(x)", 3, dict(scale="free")),
    "sgn": (_elementary("sign"), "sign(x)", 3, dict(scale="unit")),
    "sign": (_elementary("sign"), "sign(x)", 3, dict(scale="unit", alias_of="sgn")),
    "arcsin": (_arcsin, "asin(x)", 4, dict(scale="free", domain=_unit_closed)),
    "arccos": (_arccos, "acos(x)", 4, dict(scale="signed", domain=_unit_closed)),
    "arctan": (_arctan, "atan(x)", 4, dict(scale="free")),
    "arctanh": (_arctanh, "atanh(x)", 4, dict(scale="free", domain=_unit_open)),
    "gaussian": (_gaussian, "exp(-x**2)", 3, dict(scale="free")),
}


def _bind(body, xp):
    return lambda u: body(xp, u)


_REGISTRY = {
    name: EdgeFunction(name, _bind(body, ops), _bind(body, np), sympy_text, float(complexity),
                       builtin=True, **options)
    for name, (body, sympy_text, complexity, options) in _BUILTINS.items()
}


def add_symbolic(name, fn_keras, fn_sympy, complexity=2, fn_numpy=None, domain=None,
                 scale="signed", shift=True):
    """Register a function for symbolic edges, fitting and formulas (pykan's
    `add_symbolic`).

    Register it in every process that loads a model using it: the `.keras`
    file stores only the name.

    Args:
        name: a new name (str); re-registering a user function replaces it,
            built-in names cannot be replaced.
        fn_keras: `u -> f(u)` written with `keras.ops` (so that it runs on
            every backend and can be exported).
        fn_sympy: `sympy expression -> sympy expression`, e.g.
            `lambda u: sympy.cosh(u)`.
        complexity: positive number used when ranking candidates (the
            built-ins use 1 for `x` to 5 for `1/x^5`).
        fn_numpy: optional float64 NumPy twin; default `sympy.lambdify` of
            `fn_sympy`.
        domain: optional `(u_min, u_max) -> bool` array test of where `f` is
            defined and smooth on a whole interval (see `EdgeFunction`).
        scale, shift: how the fitter searches `a` and `b` (see `EdgeFunction`).

    Returns:
        the `EdgeFunction`.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"Received an invalid value for argument `name`: expected a "
                         f"non-empty string, got {name!r}.")
    if name in _REGISTRY and _REGISTRY[name].builtin:
        raise ValueError(f"Received an invalid value for argument `name`: {name!r} is a "
                         "built-in symbolic function and cannot be replaced.")
    for arg, fn in (("fn_keras", fn_keras), ("fn_sympy", fn_sympy)):
        if not callable(fn):
            raise ValueError(f"Received an invalid value for argument `{arg}`: expected a "
                             f"callable, got {fn!r}.")
    if isinstance(complexity, bool) or not isinstance(complexity, (int, float)) or not (
            complexity > 0 and math.isfinite(complexity)):
        raise ValueError(f"Received an invalid value for argument `complexity`: expected a "
                         f"positive number, got {complexity!r}.")
    if domain is not None and not callable(domain):
        raise ValueError(f"Received an invalid value for argument `domain`: expected None or "
                         f"a callable, got {domain!r}.")
    check_one_of("scale", scale, SCALES)
    if fn_numpy is None:
        fn_numpy = _lambdify(fn_sympy)
    entry = EdgeFunction(name, fn_keras, fn_numpy, fn_sympy, float(complexity), domain=domain,
                         scale=scale, shift=bool(shift))
    _REGISTRY[name] = entry
    return entry


def remove_symbolic(name):
    """Unregister a function added with `add_symbolic` (built-ins stay).

    Raises:
        ValueError: `name` is not registered, or is built in.
    """
    entry = get_function(name)
    if entry.builtin:
        raise ValueError(f"Received an invalid value for argument `name`: {name!r} is a "
                         "built-in symbolic function and cannot be removed.")
    del _REGISTRY[name]


def _lambdify(fn_sympy):
    try:
        import sympy
    except ImportError as error:
        raise ImportError("add_symbolic without `fn_numpy` needs sympy (`pip install "
                          "sympy`), or pass `fn_numpy`.") from error
    u = sympy.Symbol("u")
    compiled = sympy.lambdify(u, fn_sympy(u), "numpy")
    return lambda v: np.broadcast_to(np.asarray(compiled(v), np.float64), np.shape(v))


def get_function(name):
    """The registered `EdgeFunction` called `name`.

    Raises:
        ValueError: `name` is not registered (the message says how to fix it).
    """
    entry = _REGISTRY.get(name) if isinstance(name, str) else None
    if entry is None:
        raise ValueError(
            f"Unknown symbolic function {name!r}. Built-in names: {sorted(_BUILTINS)}. "
            "A user function must be registered with keras_kan.add_symbolic(name, fn_keras, "
            "fn_sympy, complexity) in this process before it is fitted, or a model using it "
            "is built or loaded."
        )
    return entry


def registered_names(builtin=None):
    """Names in the registry (all, or only built-in / only user-added), in order."""
    return [name for name, entry in _REGISTRY.items()
            if builtin is None or entry.builtin == builtin]


def candidate_names():
    """The names the fitter tries by default: every registered function but aliases."""
    return [name for name, entry in _REGISTRY.items() if entry.alias_of is None]


def sympy_function(entry):
    """`u -> sympy expression` for an `EdgeFunction` or a registered name (needs sympy)."""
    import sympy

    entry = get_function(entry) if isinstance(entry, str) else entry
    if callable(entry.sympy):
        return entry.sympy
    template = sympy.sympify(entry.sympy)
    x = sympy.Symbol("x")
    return lambda u: template.xreplace({x: sympy.sympify(u)})
