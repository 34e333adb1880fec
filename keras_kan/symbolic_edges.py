"""Symbolic edges of `KANDense`: `c * f(a * x + b) + d` inside the layer.

Every edge `i -> j` of a `KANDense` can carry, besides (or instead of) its
numeric spline, a symbolic function `f` from `keras_kan.symbolic_library`,
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

This module is the layer's plumbing (weights, config, saving, editing one
edge); the functions themselves live in `keras_kan.symbolic_library`.
"""

import numpy as np
from keras import ops

from keras_kan.symbolic_library import get_function

__all__ = [
    "SYMBOLIC_WEIGHT_NAMES",
    "SYMBOLIC_PARAM_NAMES",
    "check_spec",
    "build",
    "regroup",
    "set_edge",
    "normalize_node",
    "keep_edges",
    "restore",
    "reset_model",
]

#: The symbolic weights of a KANDense, by the names they are saved under.
SYMBOLIC_WEIGHT_NAMES = ("symbolic_mask", "symbolic_a", "symbolic_b", "symbolic_c",
                         "symbolic_d")
_DEFAULTS = {"symbolic_mask": 0.0, "symbolic_a": 1.0, "symbolic_b": 0.0, "symbolic_c": 1.0,
             "symbolic_d": 0.0}
#: The trainable parameters `a, b, c, d` of `c * f(a * x + b) + d`, by weight name.
SYMBOLIC_PARAM_NAMES = SYMBOLIC_WEIGHT_NAMES[1:]
_PARAMS = SYMBOLIC_PARAM_NAMES


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


def restore(layer, values, names):
    """Put back a snapshot of the layer's symbolic state: `values` maps the names
    in `SYMBOLIC_WEIGHT_NAMES` and `"edge_mask"` to arrays (as from
    `layer.get_weights_by_name()`), `names` is a `function_names(layer)` array."""
    for weight in SYMBOLIC_WEIGHT_NAMES + ("edge_mask",):
        variable = getattr(layer, weight)
        variable.assign(np.asarray(values[weight]).astype(variable.dtype))
    layer._symbolic_names = np.array(names, dtype=object)
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
