"""Physics-informed symbolic regression: symbolic constants judged by an objective.

A physics-informed model has no targets: what it must satisfy is a scalar
objective `fn(model)` (PDE residual plus boundary terms, from
`keras_kan.autodiff`). Two steps use it in place of a data misfit:

* `refit_objective(model, fn)`: every trainable constant (the symbolic edges'
  `a, b, c, d`, biases, any edge left numeric) is refit jointly by L-BFGS on
  `fn` (`fit_lbfgs(model, objective=fn)`), in the model's dtype;
  `auto_symbolic(model, x, objective=fn)` calls it after choosing the functions.
* `snapped_copy(model, fn, tolerance)`: a copy of the model whose constants are
  snapped to simple values (`snap_candidates`) one at a time, largest first,
  keeping a snap only while `fn(copy)` stays at most `(1 + tolerance)` times
  the unsnapped objective plus `atol`; `symbolic_formula(model, x,
  objective=fn)` reads its formula from that copy. Before snapping, each
  hidden node is rescaled so that its first outgoing edge reads `f(1 h + 0)`
  (the refit moves that scale between the layers), each
  linear edge `c (a u + b) + d` is rewritten exactly as `(c a) u + (c b + d)`,
  and the offsets `d` of a node's edges are summed into its first edge, so
  that no two constants stand for one number.

The objective is evaluated in the model's dtype: in float32 it bottoms out at
float32 round-off (a refit formula's constants to ~1e-6), and a snapped
formula evaluated by sympy/NumPy is then exact to float64 round-off; build the
model under `keras.config.set_floatx("float64")` (on JAX with
`jax_enable_x64`) for float64 objectives.
"""

import math

import keras
import numpy as np
import sympy
from keras import ops

from keras_kan import symbolic_edges
from keras_kan.layers import KANDense
from keras_kan.network import is_plain_chain, kan_layers

__all__ = ["snap_candidates", "refit_objective", "snapped_copy"]

_DENOMINATORS = (2, 3, 4, 5, 6, 8, 10, 12)
_PI_DENOMINATORS = (1, 2, 3, 4, 6)
_NEAR = 2e-2  # snapping candidates within this relative distance are tried
_INVERSE_PI_NUMERATOR = 4  # p / (q pi) candidates: |p| up to this
_LINEAR = ("x",)  # edges `c (a u + b) + d` that are linear in u


def snap_candidates(value):
    """Simple numbers near `value` as sympy numbers, simplest first: 0, an integer,
    a fraction with a denominator up to 12, a multiple of pi/6 or pi/4, a small
    multiple (numerator up to 4) of 1/(6 pi) or 1/(4 pi) (a Gaussian's 1/(2 pi),
    Coulomb's 1/(4 pi))."""
    out = [sympy.Integer(0), sympy.Integer(round(value))]
    for q in _DENOMINATORS:
        out.append(sympy.Rational(round(value * q), q))
    for q in _PI_DENOMINATORS:
        out.append(sympy.Rational(round(value * q / math.pi), q) * sympy.pi)
    for q in _PI_DENOMINATORS:  # small numerators only: 5.013 is not 63/(4 pi)
        if abs(round(value * q * math.pi)) <= _INVERSE_PI_NUMERATOR:
            out.append(sympy.Rational(round(value * q * math.pi), q) / sympy.pi)
    seen, near = set(), []
    for c in out:
        if c in seen or (c == 0 and value != 0 and abs(value) > _NEAR):
            continue
        seen.add(c)
        if c == 0 or abs(float(c) - value) <= _NEAR * max(abs(value), 1e-3):
            near.append(c)
    return near


def _value(objective, model):
    value = float(ops.convert_to_numpy(objective(model)))
    return value if math.isfinite(value) else math.inf


def refit_objective(model, objective, steps=50):
    """Refit every trainable constant of `model` jointly on `objective`, in place.

    Args:
        model: a Keras model (its symbolic edges' constants are trainable).
        objective: `fn(model) -> scalar tensor`.
        steps: L-BFGS steps (`keras_kan.fit_lbfgs`).

    Returns:
        the objective after the refit (float).
    """
    from keras_kan.lbfgs import fit_lbfgs

    fit_lbfgs(model, objective=objective, steps=steps, verbose=0)
    return _value(objective, model)


def _chain_copy(model, layers):
    """A new Sequential of copies of the plain chain's KANDense `layers`."""
    copies = [KANDense.from_weights(layer.get_config(), layer.get_weights_by_name())
              for layer in layers]
    return keras.Sequential([keras.Input((layers[0].input_dim,))] + copies,
                            name=f"{model.name}_snapped")


def _params(layer):
    return {w: np.array(ops.convert_to_numpy(getattr(layer, w)), np.float64)
            for w in symbolic_edges.SYMBOLIC_PARAM_NAMES}


def _write(layer, params):
    for w, value in params.items():
        variable = getattr(layer, w)
        variable.assign(value.astype(variable.dtype))


def _live(layer):
    """`(n, units)` bool: purely symbolic edges (function set, numeric part off)."""
    names = symbolic_edges.function_names(layer)
    numeric = np.asarray(ops.convert_to_numpy(layer.edge_mask)) != 0
    symbolic = np.asarray(ops.convert_to_numpy(layer.symbolic_mask)) != 0
    return (names != "") & symbolic & ~numeric


def _canonical(layer):
    """Rewrite the layer's symbolic constants without redundancy; the same function."""
    p, live, names = _params(layer), _live(layer), symbolic_edges.function_names(layer)
    a, b, c, d = (p[w] for w in symbolic_edges.SYMBOLIC_PARAM_NAMES)
    linear = live & np.isin(names, _LINEAR)
    d[linear] += c[linear] * b[linear]
    c[linear] *= a[linear]
    a[linear], b[linear] = 1.0, 0.0
    for j in range(layer.units):
        rows = np.flatnonzero(live[:, j])
        if rows.size > 1:
            d[rows[0], j] += d[rows[1:], j].sum()
            d[rows[1:], j] = 0.0
    _write(layer, p)


def _constants(layers):
    """`[(layer, weight name, i, j, value)]` of every free constant, largest first."""
    out = []
    for layer in layers:
        live = _live(layer)
        names = symbolic_edges.function_names(layer)
        p = _params(layer)
        for i, j in zip(*np.nonzero(live)):
            for w in symbolic_edges.SYMBOLIC_PARAM_NAMES:
                if names[i, j] in _LINEAR and w in ("symbolic_a", "symbolic_b"):
                    continue
                out.append((layer, w, int(i), int(j), float(p[w][i, j])))
        if layer.bias is not None:
            bias = np.asarray(ops.convert_to_numpy(layer.bias), np.float64)
            out.extend((layer, "bias", int(j), None, float(v)) for j, v in enumerate(bias))
    return sorted(out, key=lambda entry: -abs(entry[4]))


def _assign(layer, weight, i, j, value):
    variable = getattr(layer, weight)
    array = np.array(ops.convert_to_numpy(variable), np.float64)
    if j is None:
        array[i] = value
    else:
        array[i, j] = value
    variable.assign(array.astype(variable.dtype))


def snapped_copy(model, objective, tolerance=1e-2, atol=0.0, passes=2):
    """A copy of a plain chain `model` with its symbolic constants snapped on `objective`.

    Every free constant (largest first; see the module docstring for which
    are free) is set to the first of its `snap_candidates` for which
    `objective(copy) <= (1 + tolerance) * objective(unsnapped) + atol`, or
    kept; `passes` rounds (a constant refused once may fit once its partners
    are snapped). `model` is not changed.

    Returns:
        `(copy, objective before snapping, objective after)`.
    """
    layers = kan_layers(model, "symbolic_formula")
    if not is_plain_chain(model, layers):
        raise ValueError("snapping on an objective needs a plain chain of KANDense layers.")
    copy = _chain_copy(model, layers)
    copies = kan_layers(copy, "symbolic_formula")
    for layer, after in zip(copies[:-1], copies[1:]):
        for j in range(layer.units):  # the outgoing edges read f(1 * h + 0) again
            symbolic_edges.normalize_node(layer, after, j)
    for layer in copies:
        _canonical(layer)
    start = _value(objective, copy)
    limit = (1.0 + tolerance) * start + atol
    current, done = start, set()
    for _ in range(passes):
        for layer, weight, i, j, value in _constants(copies):
            key = (id(layer), weight, i, j)
            if key in done:
                continue
            for candidate in snap_candidates(value):
                if float(candidate) == value:
                    done.add(key)
                    break
                _assign(layer, weight, i, j, float(candidate))
                trial = _value(objective, copy)
                if trial <= limit:
                    current = trial
                    done.add(key)
                    break
                _assign(layer, weight, i, j, value)
    return copy, start, current
