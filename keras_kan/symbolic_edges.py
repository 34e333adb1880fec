"""Symbolic edges of `KANDense`: `c * f(a * x + b) + d` inside the layer.

Every edge `i -> j` of a `KANDense` can carry, besides (or instead of) its
numeric spline, a symbolic function `f` from a library of named functions,
with four trainable parameters. The layer output is

    y_j = sum_i edge_mask[i, j] * phi_ij(x_i)
        + sum_i symbolic_mask[i, j] * (c_ij * f_ij(a_ij * x_i + b_ij) + d_ij)

(pykan 0.2's `mask` / `symbolic_mask`): an edge is numeric (`edge_mask` 1),
symbolic (`symbolic_mask` 1) or both.

Which function an edge uses is Python state stored by **name** in the layer
config (`symbolic_functions`: a list of `[i, j, name]`), so a `.keras` file
holds no code and loads with `safe_mode=True`; the parameters are the weights
`symbolic_mask` (non-trainable), `symbolic_a`, `symbolic_b`, `symbolic_c`,
`symbolic_d` (all `(n, units)`). While no edge is symbolic the layer skips
this part entirely and the four parameters are not trainable (no unused
trainable variables, no "gradients do not exist" warnings); they become
trainable when the first edge gets a function.

The edges are grouped by function (`regroup`); `keras_kan.edges` evaluates
them: per function in use, one gather of the inputs and parameters of its
edges `(batch, E)`, one evaluation, one `(E, units)` matmul back to the
outputs. No per-edge Python loop runs in the traced step.

The library functions are singularity-safe: `1/x^k`, `log`, `sqrt`,
`x^1.5`, `1/sqrt(x)`, `tan`, `arcsin`, `arccos`, `arctanh` give finite
values *and* finite gradients for every finite input (outside their domain
they are continued by a constant or a clipped argument), so a training step
cannot turn the model into NaN. Inside their domain (away from the clipping
thresholds, which are at `1e-10`-ish distances from a pole) they are the
exact functions.

Users add functions with `add_symbolic(name, fn_keras, fn_sympy,
complexity)`; a file that names an unregistered function fails to load with
an error saying to call `add_symbolic` first.
"""

import math
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
from keras import ops

__all__ = [
    "SYMBOLIC_WEIGHT_NAMES",
    "EdgeFunction",
    "add_symbolic",
    "remove_symbolic",
    "get_function",
    "registered_names",
]

#: The symbolic weights of a KANDense, by the names they are saved under.
SYMBOLIC_WEIGHT_NAMES = ("symbolic_mask", "symbolic_a", "symbolic_b", "symbolic_c",
                         "symbolic_d")
_DEFAULTS = {"symbolic_mask": 0.0, "symbolic_a": 1.0, "symbolic_b": 0.0, "symbolic_c": 1.0,
             "symbolic_d": 0.0}
_PARAMS = SYMBOLIC_WEIGHT_NAMES[1:]


class EdgeFunction(NamedTuple):
    """A registered edge function `f`.

    Attributes:
        name: its key (stored in configs).
        keras: `u -> f(u)` on Keras tensors (keras.ops only: every backend).
        numpy: `u -> f(u)` on float64 NumPy arrays (analysis, plots, fits).
        sympy: `sympy expression -> sympy expression`, or a string in `x`
            (parsed lazily, so sympy is needed only for formulas).
        complexity: used when ranking candidate functions.
        fit: optional keyword arguments for `keras_kan.symbolic.SymbolicFunction`
            (how `a`, `b` are searched); None: `a` of either sign and `b` free.
        builtin: True for the library shipped with keras_kan.
    """

    name: str
    keras: Callable
    numpy: Callable
    sympy: object
    complexity: float
    fit: dict | None = None
    builtin: bool = False


# ------------------------------------------------------- safe function bodies
# Written once against a namespace `xp` that is `keras.ops` or `numpy`.
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


# fit options (see keras_kan.symbolic.SymbolicFunction): how a, b are searched.
_UNIT, _UNIT_SIGNED, _FREE, _SIGNED = "unit", "unit_signed", "free", "signed"


def _nonzero(lo, hi):
    return (lo > 1e-9 * (abs(lo) + abs(hi))) | (hi < -1e-9 * (abs(lo) + abs(hi)))


def _nonneg(lo, hi):
    return lo >= 0


def _positive(lo, hi):
    return lo > 1e-9 * (np.abs(lo) + np.abs(hi) + 1e-300)


def _unit_open(lo, hi):
    return (lo > -1) & (hi < 1)


def _unit_closed(lo, hi):
    return (lo >= -1) & (hi <= 1)


def _tan_domain(lo, hi):
    return np.floor(lo / np.pi - 0.5) == np.floor(hi / np.pi - 0.5)


#: name: (body, sympy string in x, complexity, fit options). pykan 0.2.8's
#: library, plus `x^4`-style powers it has, under the same names.
_BUILTINS = {
    "0": (_zero, "0", 0, dict(scale=_UNIT, shift=False)),
    "x": (_identity, "x", 1, dict(scale=_UNIT, shift=False)),
    "x^2": (_power(2), "x**2", 2, dict(scale=_UNIT)),
    "x^3": (_power(3), "x**3", 3, dict(scale=_UNIT)),
    "x^4": (_power(4), "x**4", 3, dict(scale=_UNIT)),
    "x^5": (_power(5), "x**5", 4, dict(scale=_UNIT)),
    "1/x": (_inv_power(1), "1/x", 2, dict(scale=_UNIT, domain=_nonzero)),
    "1/x^2": (_inv_power(2), "x**(-2)", 2, dict(scale=_UNIT, domain=_nonzero)),
    "1/x^3": (_inv_power(3), "x**(-3)", 3, dict(scale=_UNIT, domain=_nonzero)),
    "1/x^4": (_inv_power(4), "x**(-4)", 4, dict(scale=_UNIT, domain=_nonzero)),
    "1/x^5": (_inv_power(5), "x**(-5)", 5, dict(scale=_UNIT, domain=_nonzero)),
    "sqrt": (_sqrt, "sqrt(x)", 2, dict(scale=_UNIT_SIGNED, domain=_nonneg)),
    "x^0.5": (_sqrt, "sqrt(x)", 2, dict(scale=_UNIT_SIGNED, domain=_nonneg)),
    "x^1.5": (_pow15, "x**(3/2)", 4, dict(scale=_UNIT_SIGNED, domain=_nonneg)),
    "1/sqrt(x)": (_inv_sqrt, "1/sqrt(x)", 4, dict(scale=_UNIT_SIGNED, domain=_positive)),
    "1/x^0.5": (_inv_sqrt, "1/sqrt(x)", 4, dict(scale=_UNIT_SIGNED, domain=_positive)),
    "exp": (_exp, "exp(x)", 2, dict(scale=_SIGNED, shift=False)),
    "log": (_log, "log(x)", 2, dict(scale=_UNIT_SIGNED, domain=_positive)),
    "abs": (_elementary("abs"), "Abs(x)", 3, dict(scale=_UNIT)),
    "sin": (_elementary("sin"), "sin(x)", 2,
            dict(scale=_FREE, period=2 * math.pi, flip=True)),
    "cos": (_elementary("cos"), "cos(x)", 2,
            dict(scale=_FREE, period=2 * math.pi, flip=True)),
    "tan": (_tan, "tan(x)", 3, dict(scale=_FREE, domain=_tan_domain, period=math.pi)),
    "tanh": (_elementary("tanh"), "tanh(x)", 3, dict(scale=_FREE)),
    "sgn": (_elementary("sign"), "sign(x)", 3, dict(scale=_UNIT)),
    "sign": (_elementary("sign"), "sign(x)", 3, dict(scale=_UNIT)),
    "arcsin": (_arcsin, "asin(x)", 4, dict(scale=_FREE, domain=_unit_closed)),
    "arccos": (_arccos, "acos(x)", 4, dict(scale=_SIGNED, domain=_unit_closed)),
    "arctan": (_arctan, "atan(x)", 4, dict(scale=_FREE)),
    "arctanh": (_arctanh, "atanh(x)", 4, dict(scale=_FREE, domain=_unit_open)),
    "gaussian": (_gaussian, "exp(-x**2)", 3, dict(scale=_FREE)),
}


def _bind(body, xp):
    return lambda u: body(xp, u)


_REGISTRY = {
    name: EdgeFunction(name, _bind(body, ops), _bind(body, np), sympy_text, complexity, fit,
                       True)
    for name, (body, sympy_text, complexity, fit) in _BUILTINS.items()
}


def add_symbolic(name, fn_keras, fn_sympy, complexity=2, fn_numpy=None):
    """Register a function for symbolic edges (pykan's `add_symbolic`).

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
        fn_numpy: optional float64 NumPy twin; default
            `sympy.lambdify` of `fn_sympy`.

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
    if fn_numpy is None:
        fn_numpy = _lambdify(fn_sympy)
    entry = EdgeFunction(name, fn_keras, fn_numpy, fn_sympy, float(complexity))
    _REGISTRY[name] = entry
    return entry


def remove_symbolic(name):
    """Unregister a function added with `add_symbolic` (built-ins stay)."""
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
            f"Unknown symbolic edge function {name!r}. Built-in names: {sorted(_BUILTINS)}. "
            "A user function must be registered with keras_kan.add_symbolic(name, fn_keras, "
            "fn_sympy, complexity) in this process before a model using it is built or loaded."
        )
    return entry


def registered_names(builtin=None):
    """Names in the registry (all, or only built-in / only user-added)."""
    return [name for name, entry in _REGISTRY.items()
            if builtin is None or entry.builtin == builtin]


def sympy_function(entry):
    """`u -> sympy expression` for a registered function (needs sympy)."""
    import sympy

    if callable(entry.sympy):
        return entry.sympy
    template = sympy.sympify(entry.sympy)
    x = sympy.Symbol("x")
    return lambda u: template.xreplace({x: u}) if not isinstance(u, (int, float)) else (
        template.subs(x, u))


# ------------------------------------------------------------ layer plumbing
def check_spec(value):
    """Validate a `symbolic_functions` config value -> sorted `[(i, j, name)]`."""
    if value is None:
        return []
    if isinstance(value, (str, bytes, dict)) or not hasattr(value, "__iter__"):
        raise ValueError(f"Received an invalid value for argument `symbolic_functions`: "
                         f"expected a list of [i, j, name], got {value!r}.")
    spec = {}
    for entry in value:
        ok = (isinstance(entry, (list, tuple)) and len(entry) == 3
              and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 0
                      for v in entry[:2]) and isinstance(entry[2], str))
        if not ok:
            raise ValueError(f"Received an invalid value for argument `symbolic_functions`: "
                             f"entries must be [i, j, name] with i, j >= 0, got {entry!r}.")
        get_function(entry[2])
        spec[(int(entry[0]), int(entry[1]))] = entry[2]
    return [(i, j, name) for (i, j), name in sorted(spec.items())]


def build(layer, n, m, values):
    """Create the symbolic weights of a KANDense being built (called from `build`).

    `values` may hold initial arrays by `SYMBOLIC_WEIGHT_NAMES` (from
    `from_weights`); missing ones start at their defaults (mask 0, a = c = 1,
    b = d = 0).
    """
    for i, j, name in layer._symbolic_spec:
        if i >= n or j >= m:
            raise ValueError(f"Layer '{layer.name}': symbolic edge {i} -> {j} ({name!r}) is "
                             f"outside its {n} inputs and {m} units.")
    for weight in SYMBOLIC_WEIGHT_NAMES:
        value = values.get(weight) if values else None
        value = (np.full((n, m), _DEFAULTS[weight]) if value is None
                 else np.asarray(value, np.float64))
        if value.shape != (n, m):
            raise ValueError(f"Layer '{layer.name}': weight '{weight}' must have shape "
                             f"{(n, m)}, got {value.shape}.")
        variable = layer.add_weight(
            name=weight, shape=(n, m), trainable=weight != "symbolic_mask",
            initializer=lambda shape, dtype=None, v=value: ops.cast(v, dtype),
            autocast=False)  # read in full precision, cast explicitly (mixed precision)
        setattr(layer, weight, variable)
    names = np.full((n, m), "", dtype=object)
    for i, j, name in layer._symbolic_spec:
        names[i, j] = name
    layer._symbolic_names = names
    regroup(layer)


def regroup(layer):
    """Recompute the per-function edge groups from `layer._symbolic_names`.

    Also makes `symbolic_a..d` trainable exactly when some edge is symbolic.
    """
    names = layer._symbolic_names
    n, m = names.shape
    groups = []
    for name in sorted({v for v in names.ravel() if v}):
        rows, cols = np.nonzero(names == name)
        onehot = np.zeros((rows.size, m))
        onehot[np.arange(rows.size), cols] = 1.0
        groups.append((get_function(name), rows, rows * m + cols, cols, onehot))
    layer._symbolic_groups = groups
    layer._symbolic_spec = [(int(i), int(j), str(names[i, j]))
                            for i, j in zip(*np.nonzero(names != ""))]
    for weight in _PARAMS:
        getattr(layer, weight).trainable = bool(groups)


def config_value(layer):
    """The `symbolic_functions` config entry: `[[i, j, name], ...]`."""
    return [[i, j, name] for i, j, name in layer._symbolic_spec]


def function_names(layer):
    """`(n, units)` object array of each edge's function name ("" for none)."""
    return layer._symbolic_names.copy()


def weights_by_name(layer):
    """The symbolic weights as NumPy copies, by name."""
    return {w: np.asarray(ops.convert_to_numpy(getattr(layer, w)))
            for w in SYMBOLIC_WEIGHT_NAMES}


def subset_spec(layer, rows, cols):
    """`symbolic_functions` of `layer.get_subset(rows, cols)`."""
    rows, cols = list(np.asarray(rows)), list(np.asarray(cols))
    return [[rows.index(i), cols.index(j), name] for i, j, name in layer._symbolic_spec
            if i in rows and j in cols]


def save_variables(layer, store):
    for weight in SYMBOLIC_WEIGHT_NAMES:
        store[weight] = ops.convert_to_numpy(getattr(layer, weight))


def load_variables(layer, store):
    """Load the symbolic weights if the file has them (files from before
    symbolic edges have none: the defaults stay, which is right as long as the
    config names no symbolic function)."""
    keys = set(store.keys())
    present = [w for w in SYMBOLIC_WEIGHT_NAMES if w in keys]
    if not present:
        if layer._symbolic_spec:
            raise ValueError(f"Layer '{layer.name}': its config has symbolic edges but the "
                             f"saved weights have no {list(SYMBOLIC_WEIGHT_NAMES)}.")
        return
    for weight in SYMBOLIC_WEIGHT_NAMES:
        variable = getattr(layer, weight)
        value = np.asarray(store[weight])
        if tuple(value.shape) != tuple(variable.shape):
            raise ValueError(f"Layer '{layer.name}': saved weight '{weight}' has shape "
                             f"{tuple(value.shape)} but the layer expects "
                             f"{tuple(variable.shape)}.")
        variable.assign(value)


# ------------------------------------------------------------- edge editing
def set_edge(layer, i, j, name, params=None, mode="symbolic"):
    """Give edge `i -> j` the function `name` (None: remove it), in place.

    Args:
        layer: a built KANDense.
        i, j: the edge.
        name: a registered function name, or None to make the edge numeric
            again (`edge_mask` 1, `symbolic_mask` 0).
        params: `(a, b, c, d)` or None (keep the current values).
        mode: `"symbolic"` (numeric part masked off, pykan's `fix_symbolic`)
            or `"both"` (numeric and symbolic parts add up).

    The caller must rebuild the model's compiled functions
    (`keras_kan.backend.reset_compiled_functions`): the groups are traced in.
    """
    if mode not in ("symbolic", "both"):
        raise ValueError(f"Received an invalid value for argument `mode`: expected "
                         f"'symbolic' or 'both', got {mode!r}.")
    names = layer._symbolic_names
    if name is None:
        names[i, j] = ""
        _assign_entry(layer.edge_mask, i, j, 1.0)
        _assign_entry(layer.symbolic_mask, i, j, 0.0)
    else:
        get_function(name)
        names[i, j] = name
        _assign_entry(layer.symbolic_mask, i, j, 1.0)
        if mode == "symbolic":
            _assign_entry(layer.edge_mask, i, j, 0.0)
        if params is not None:
            for weight, value in zip(_PARAMS, params):
                _assign_entry(getattr(layer, weight), i, j, float(value))
    regroup(layer)


def normalize_node(layer, next_layer, j):
    """Rescale hidden node `j` (output `j` of `layer`, input `j` of `next_layer`)
    so that its first outgoing symbolic edge reads `f(1 * h + 0)`; exact.

    With `h' = s h + t` (`s, t` that edge's `a, b`), the incoming edges get
    `c *= s`, `d *= s` (+ `t` on one of them, the bias `*= s`) and every
    outgoing edge `a x + b -> (a / s) x + (b - a t / s)`. Better-conditioned
    constants for training (no `a = 10` against `c = 0.1`), and a cleaner
    formula. Only done when every edge at the node is purely symbolic (a
    numeric part would change); returns whether it was done.
    """
    names_in, names_out = layer._symbolic_names[:, j], next_layer._symbolic_names[j, :]
    mask_in = np.asarray(ops.convert_to_numpy(layer.edge_mask))[:, j]
    mask_out = np.asarray(ops.convert_to_numpy(next_layer.edge_mask))[j, :]
    sym_in = np.asarray(ops.convert_to_numpy(layer.symbolic_mask))[:, j]
    sym_out = np.asarray(ops.convert_to_numpy(next_layer.symbolic_mask))[j, :]
    live_in = (names_in != "") & (sym_in != 0)
    live_out = (names_out != "") & (sym_out != 0)
    if mask_in.any() or mask_out.any() or not live_in.any() or not live_out.any():
        return False
    p_in = {w: np.array(ops.convert_to_numpy(getattr(layer, w)), np.float64) for w in _PARAMS}
    p_out = {w: np.array(ops.convert_to_numpy(getattr(next_layer, w)), np.float64)
             for w in _PARAMS}
    first = int(np.flatnonzero(live_out)[0])
    scale, shift = p_out["symbolic_a"][j, first], p_out["symbolic_b"][j, first]
    if scale == 0 or not np.isfinite(scale):
        return False
    rows = np.flatnonzero(live_in)
    p_in["symbolic_c"][rows, j] *= scale
    p_in["symbolic_d"][rows, j] *= scale
    p_in["symbolic_d"][rows[0], j] += shift
    cols = np.flatnonzero(live_out)
    p_out["symbolic_b"][j, cols] -= p_out["symbolic_a"][j, cols] * shift / scale
    p_out["symbolic_a"][j, cols] /= scale
    for params, target in ((p_in, layer), (p_out, next_layer)):
        for w, value in params.items():
            getattr(target, w).assign(value.astype(getattr(target, w).dtype))
    if layer.bias is not None:
        bias = np.array(ops.convert_to_numpy(layer.bias), np.float64)
        bias[j] *= scale
        layer.bias.assign(bias.astype(layer.bias.dtype))
    return True


def keep_edges(layer, symbolic_mask):
    """Set `symbolic_mask` `(n, units)` on a layer no compiled function has traced yet,
    and forget the function of every edge it masks off (pruned symbolic edges leave the
    config too)."""
    symbolic_mask = np.asarray(symbolic_mask, np.float64)
    keep = symbolic_mask != 0
    layer.symbolic_mask.assign(symbolic_mask.astype(layer.symbolic_mask.dtype))
    layer._symbolic_names[~keep] = ""
    regroup(layer)


def _assign_entry(variable, i, j, value):
    array = np.array(ops.convert_to_numpy(variable))
    array[i, j] = value
    variable.assign(array)


def reset_model(model, before):
    """Rebuild a model's compiled functions after symbolic edges changed, and
    give it a fresh optimizer (same compile config) when its trainable
    variables changed under a built one: a built Keras optimizer knows only
    the variables it was built for.

    Args:
        model: the model.
        before: `model.trainable_variables` before the change.
    """
    from keras_kan.backend import reset_compiled_functions

    reset_compiled_functions(model)
    after = list(model.trainable_variables)
    changed = len(after) != len(before) or any(a is not b for a, b in zip(after, before))
    optimizer = getattr(model, "optimizer", None)
    if changed and optimizer is not None and getattr(optimizer, "built", False):
        config = model.get_compile_config()
        if config is not None:
            model.compile_from_config(config)
