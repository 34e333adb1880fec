"""Closed-form formulas of a model with symbolic edges (sympy).

`symbolic_formula(model)` reads the model's own symbolic edges and composes
them through the layers into one sympy expression per output; an edge whose
numeric part is still active enters as an undefined function
`phi_{l}_{i}_{j}(node)` so the formula stays honest (`evaluate_formula`
evaluates it from the model's spline). The formula is then made readable:

* constant factors leave the functions (`c*sqrt(k*u) -> c*sqrt(k)*sqrt(u)`,
  `c*exp(k + u) -> c*e^k*exp(u)`, `log(k*u) -> log(k) + log(u)`) and fold
  with the constants outside; sympy collects the terms;
* with data `x` (and `y`), each constant is snapped to the simplest nearby
  value (0, an integer, a fraction with a denominator up to 12, a multiple of
  pi/6 or pi/4) when the snapped formula's RMSE on the data stays within
  `snap_tolerance * std(target)` of the unsnapped one's (the target is `y`,
  or the model's own output);
* where snapping leaves constants, the formula multiplied out
  (`sympy.expand_mul`) is snapped too, and kept when it has fewer constants
  left: a product's factors trade constants, `(k u)(v / k) = u v`;
* remaining constants are rounded to `precision` significant digits for
  display (`precision=None` keeps them exact).

`symbolic_formula(model, snap=False, precision=None)` is the unsnapped,
unrounded expression.
"""

import math

import keras
import numpy as np
import sympy
from keras import ops

from keras_kan import symbolic_edges
from keras_kan.network import (
    chain_output,
    edge_values,
    is_plain_chain,
    kan_layers,
    model_samples,
    node_steps,
)
from keras_kan.symbolic_library import get_function, sympy_function
from keras_kan.symbolic_objective import snap_candidates, snapped_copy
from keras_kan.validation import check_int, check_real, check_verbose

__all__ = ["symbolic_formula", "readable_formula", "evaluate_formula", "formula_r2"]

_CHOP = 1e-12  # |constant| below this (float32 noise on exact zeros) reads as 0
_EXPAND_OPS = 4  # a formula multiplied out for snapping may have this many times the ops


def _number(value):
    value = float(value)
    if abs(value) < _CHOP or not math.isfinite(value):
        return sympy.Integer(0) if math.isfinite(value) else sympy.Float(value)
    return sympy.Float(value)


def _variables(variables, n):
    if variables is None:
        return [sympy.Symbol(f"x_{k + 1}") for k in range(n)]
    symbols = [v if isinstance(v, sympy.Symbol) else sympy.Symbol(str(v)) for v in variables]
    if len(symbols) != n:
        raise ValueError(f"`variables` must name the {n} model inputs, got {len(symbols)}.")
    return symbols


def _edge_name(layer_index, i, j):
    return f"phi_{layer_index}_{i}_{j}"


def _through_nodes(step, subnodes):
    """Mult nodes: a layer's node expressions from its subnode expressions (every arity;
    see `keras_kan.products`); without a `MultNodes` step the outputs are the nodes."""
    return subnodes if step is None else step.node_expressions(subnodes, _number)


def _raw_formula(layers, nodes, steps=None):
    """`(expressions, numeric edge names)`: the composition with exact float constants.

    `steps[l]`: the `MultNodes` after layer `l`, or None (`network.node_steps`).
    """
    numeric = []
    steps = steps or [None] * len(layers)
    for index, layer in enumerate(layers):
        names = symbolic_edges.function_names(layer)
        weights = layer.get_weights_by_name()
        mask = np.asarray(weights["edge_mask"], np.float64)
        smask = np.asarray(weights["symbolic_mask"], np.float64)
        params = [np.asarray(weights[w], np.float64) for w in symbolic_edges.SYMBOLIC_PARAM_NAMES]
        bias = (np.asarray(weights["bias"], np.float64) if "bias" in weights
                else np.zeros(layer.units))
        outputs = []
        for j in range(layer.units):
            total = _number(bias[j])
            for i in range(layer.input_dim):
                if names[i, j] and smask[i, j] != 0:
                    a, b, c, d = (_number(p[i, j]) for p in params)
                    fn = sympy_function(get_function(names[i, j]))
                    value = (c * fn(a * nodes[i] + b) if c != 0 else 0) + d
                    total += _number(smask[i, j]) * value
                if mask[i, j] != 0:
                    numeric.append(_edge_name(index, i, j))
                    total += sympy.Function(_edge_name(index, i, j))(nodes[i])
            outputs.append(total)
        nodes = _through_nodes(steps[index], outputs)
    return nodes, numeric


# ------------------------------------------------------------- readable form
def _monic(arg):
    """`(k, u)` with `arg = k * u` and `u`'s largest non-constant coefficient 1."""
    if not arg.is_Add:
        k, u = arg.as_coeff_Mul()
        return (k, u) if k.is_Number and k != 0 else (sympy.Integer(1), arg)
    coeffs = [term.as_coeff_Mul()[0] for term in arg.args if not term.is_Number]
    if not coeffs:
        return sympy.Integer(1), arg
    k = max(coeffs, key=lambda v: abs(float(v)))
    if k == 0 or k == 1:
        return sympy.Integer(1), arg
    return k, sympy.expand(arg / k)


def _pull_factors(expr):
    """Constant factors out of homogeneous functions and out of `exp`, `log`."""
    def pow_rule(e):
        return (e.is_Pow and e.exp.is_Number and not e.base.is_Number
                and _monic(e.base)[0] != 1)

    def split_pow(e):
        k, u = _monic(e.base)
        if k < 0 and not e.exp.is_Integer:
            k, u = -k, -u
        return sympy.Pow(k, e.exp) * sympy.Pow(u, e.exp)

    def exp_rule(e):
        return isinstance(e, sympy.exp) and e.args[0].is_Add and \
            e.args[0].as_coeff_Add()[0] != 0

    def split_exp(e):
        const, rest = e.args[0].as_coeff_Add()
        return sympy.exp(const) * sympy.exp(rest)

    def log_rule(e):
        return isinstance(e, sympy.log) and _monic(e.args[0])[0] > 0 and \
            _monic(e.args[0])[0] != 1

    def split_log(e):
        k, u = _monic(e.args[0])
        return sympy.log(k) + sympy.log(u)

    for _ in range(3):  # nested functions: a few passes reach a fixed point
        new = expr.replace(pow_rule, split_pow).replace(exp_rule, split_exp)
        new = new.replace(log_rule, split_log)
        if new == expr:
            break
        expr = new
    return expr


def _small_power(term, max_terms=60):
    """An integer power (2..4) of a sum whose expansion has at most `max_terms` terms."""
    return (term.is_Pow and term.exp.is_Integer and 1 < term.exp <= 4 and term.base.is_Add
            and math.comb(len(term.base.args) + int(term.exp) - 1, int(term.exp)) <= max_terms)


def _whole_numbers(expr):
    """Floats that are whole numbers (`1.0` after dividing `k x / k`) become integers:
    the same value, and sympy drops `1*`."""
    floats = [f for f in expr.atoms(sympy.Float)
              if math.isfinite(float(f)) and float(f) == int(float(f)) and abs(float(f)) < 1e15]
    return expr.xreplace({f: sympy.Integer(int(float(f))) for f in floats}) if floats else expr


def _tidy(expr):
    """Pull factors out, then multiply out small powers of sums when shorter."""
    expr = _whole_numbers(_pull_factors(expr))
    expanded = expr.replace(_small_power, lambda term: sympy.expand(
        term, deep=False, power_base=False, power_exp=False, log=False))
    return expanded if sympy.count_ops(expanded) <= sympy.count_ops(expr) else expr


def _round(expr, precision):
    floats = expr.atoms(sympy.Float)
    return expr.xreplace({f: _rounded(f, precision) for f in floats}) if floats else expr


def _rounded(value, precision):
    value = float(value)
    rounded = float(f"{value:.{precision}g}")
    if rounded == int(rounded) and abs(rounded) < 1e15:
        return sympy.Integer(int(rounded))
    return sympy.Float(rounded, precision)


# ----------------------------------------------------------------- snapping
def _rmse(exprs, columns, symbols, functions, target):
    """RMSE of the formulas `exprs` (one per column of `target`) on the data."""
    values = []
    for e in exprs:
        f = sympy.lambdify(symbols, e, modules=[functions, "numpy"])
        with np.errstate(all="ignore"):
            values.append(np.broadcast_to(np.asarray(f(*columns), np.float64),
                                          (target.shape[0],)))
    value = float(np.sqrt(np.mean((np.stack(values, axis=1) - target) ** 2)))
    return value if math.isfinite(value) else math.inf


def _snap_limit(exprs, columns, symbols, functions, target, tolerance):
    """The RMSE snapping may reach: that of `exprs` plus `tolerance * std(target)`."""
    return (_rmse(exprs, columns, symbols, functions, target)
            + tolerance * max(float(np.std(target)), 1e-300))


def _snap(exprs, columns, symbols, functions, target, tolerance, limit=None):
    """Greedy snapping of every float constant (see the module docstring), each snap
    kept while the RMSE stays within `limit` (default `_snap_limit` of `exprs`)."""
    def rmse(candidate):
        return _rmse(candidate, columns, symbols, functions, target)

    if limit is None:
        limit = _snap_limit(exprs, columns, symbols, functions, target, tolerance)
    floats = sorted((f for f in set().union(*(e.atoms(sympy.Float) for e in exprs))
                     if math.isfinite(float(f))), key=lambda f: -abs(float(f)))
    for value in floats:
        for candidate in snap_candidates(float(value)):
            trial = [e.xreplace({value: candidate}) for e in exprs]
            if rmse(trial) <= limit:
                exprs = trial
                break
    return exprs


def _floats(expr):
    return sum(1 for f in expr.atoms(sympy.Float) if math.isfinite(float(f)))


def _snap_expanded(snapped, raw, columns, symbols, functions, target, tolerance):
    """`raw` multiplied out, then snapped, where that leaves fewer float constants than
    `snapped` (`raw` snapped as it stands); else `snapped`.

    A product's factors trade constants (`(k u)(v / k)` is `u v` for every `k`), so a
    factored law can hold constants that snap only once multiplied together:
    `0.5154 x_1 (0.9702 x_2^2 - 0.3778 / x_1) + 0.1947` is `x_1 x_2^2 / 2`. The
    expansion is tried only while it stays within `_EXPAND_OPS` times the operations.
    Snapped terms can merge into new constants (`-0.2117 x_1 / x_1 + 0.2117`), so the
    snapping repeats (a few passes, all within the tolerance of `raw`'s RMSE)."""
    if not _floats(snapped):
        return snapped
    candidate = _tidy(sympy.expand_mul(raw))
    if sympy.count_ops(candidate) > _EXPAND_OPS * max(sympy.count_ops(raw), 1):
        return snapped
    limit = _snap_limit([candidate], columns, symbols, functions, target, tolerance)
    for _ in range(3):
        new = _tidy(_snap([candidate], columns, symbols, functions, target, tolerance,
                          limit)[0])
        if new == candidate:
            break
        candidate = new
    return candidate if _floats(candidate) < _floats(snapped) else snapped


# ------------------------------------------------------------------- formula
def readable_formula(expr, x=None, y=None, snap_tolerance=1e-4, precision=4, variables=None,
                     functions=None):
    """Make any formula readable: factors pulled out, constants snapped, rounded.

    The same steps as `symbolic_formula` (module docstring), on an expression
    from anywhere (another library's formula, a hand-written one).

    Args:
        expr: a sympy expression or a list of them (one per output).
        x: `(N, n)` inputs (column `k` is `variables[k]`); None: no snapping.
        y: `(N, n_out)` targets (required with `x`).
        snap_tolerance: see `symbolic_formula`.
        precision: significant digits of the constants left as floats; None: exact.
        variables: the input symbols or names; default `x_1 .. x_n`.
        functions: `{name: callable}` for undefined functions in `expr`.

    Returns:
        the same structure as `expr`.
    """
    single = not isinstance(expr, (list, tuple))
    exprs = [_tidy(sympy.sympify(e)) for e in ([expr] if single else expr)]
    if precision is not None:
        precision = check_int("precision", precision, 1)
    snap_tolerance = check_real("snap_tolerance", snap_tolerance, 0.0)
    if x is not None:
        data = np.asarray(ops.convert_to_numpy(x), np.float64)
        if data.ndim != 2:
            raise ValueError(f"`x` must have shape (N, features), got {data.shape}.")
        if y is None:
            raise ValueError("readable_formula: snapping on `x` needs the targets `y`.")
        target = np.asarray(ops.convert_to_numpy(y), np.float64).reshape(data.shape[0], -1)
        if target.shape[1] != len(exprs):
            raise ValueError(f"`y` has {target.shape[1]} outputs, the formula {len(exprs)}.")
        symbols = _variables(variables, data.shape[1])
        columns = [data[:, k] for k in range(data.shape[1])]
        raw = exprs
        exprs = _snap(exprs, columns, symbols, functions or {}, target, snap_tolerance)
        exprs = [_tidy(e) for e in exprs]
        exprs = [_snap_expanded(e, r, columns, symbols, functions or {}, target[:, [k]],
                                snap_tolerance) for k, (e, r) in enumerate(zip(exprs, raw))]
    if precision is not None:
        exprs = [_round(e, precision) for e in exprs]
    return exprs[0] if single else exprs


def symbolic_formula(model, x=None, y=None, snap=True, snap_tolerance=1e-4, precision=4,
                     variables=None, verbose=0, *, objective=None, objective_tolerance=1e-2,
                     objective_atol=0.0):
    """One sympy expression per model output, read from the model's symbolic edges.

    See the module docstring for how the expression is made readable.

    Args:
        model: a plain chain `input -> KANDense -> ... -> KANDense`
            (Sequential or functional; a KANDense may be followed by
            `MultNodes`, whose products enter the formula).
        x: `(N, n_in)` inputs to judge snapping on; None: no snapping.
        y: `(N, n_out)` targets to judge snapping against; None: the model's
            own outputs on `x`.
        snap: snap constants to simple values (needs `x`).
        snap_tolerance: the most a snap may raise the formula's RMSE on the
            data, relative to the target's standard deviation.
        precision: significant digits of the constants left as floats;
            None: exact.
        variables: names (or sympy Symbols) of the inputs; default
            `x_1 .. x_n`.
        verbose: 0 (silent) or 1 (print the numeric edges left in the formula).
        objective: `fn(model) -> scalar` (physics-informed models, no
            targets): constants are snapped on a copy of the model while
            `fn(copy) <= (1 + objective_tolerance) * fn(model) +
            objective_atol` (`keras_kan.symbolic_objective.snapped_copy`), and
            the formula is read from that copy (on `x`, if given, float32
            round-off of the snapped values is snapped away). Not with `y`.
        objective_tolerance, objective_atol: see `objective`.

    Returns:
        a sympy expression (one output) or a list of them.
    """
    verbose = check_verbose(verbose)
    if objective is not None:
        return _objective_formula(model, x, y, snap, objective, objective_tolerance,
                                  objective_atol, precision, variables, verbose)
    layers = kan_layers(model, "symbolic_formula")
    if not is_plain_chain(model, layers):
        raise ValueError(
            "symbolic_formula needs a model that is a plain chain of KANDense layers "
            f"(input -> KANDense -> ... -> KANDense); '{model.name}' has other layers or "
            "branches."
        )
    symbols = _variables(variables, layers[0].input_dim)
    exprs, numeric = _raw_formula(layers, symbols, node_steps(model, layers))
    if numeric and verbose:
        print(f"symbolic_formula: {len(numeric)} numeric edge(s) kept as functions: "
              f"{', '.join(numeric)}")
    target = None
    if snap and x is not None and y is None:  # judge snapping against the model itself
        data = model_samples(model, x, max_samples=np.iinfo(np.int64).max)
        target = chain_output(model, layers, data)
    exprs = readable_formula(exprs, x if snap else None, target if y is None else y,
                             snap_tolerance, precision, symbols,
                             {name: _numeric_edge(name, model) for name in numeric})
    return exprs[0] if len(exprs) == 1 else exprs


def _objective_formula(model, x, y, snap, objective, tolerance, atol, precision, variables,
                       verbose):
    """symbolic_formula with `objective`: snapped on the objective, read from a copy."""
    if y is not None or not callable(objective):
        raise ValueError("symbolic_formula takes either `y` or a callable `objective`, got "
                         f"y={type(y).__name__}, objective={objective!r}.")
    tolerance = check_real("objective_tolerance", tolerance, 0.0)
    atol = check_real("objective_atol", atol, 0.0)
    if not snap:
        return symbolic_formula(model, x, snap=False, precision=precision,
                                variables=variables, verbose=verbose)
    copy, before, after = snapped_copy(model, objective, tolerance, atol)
    if verbose:
        print(f"symbolic_formula: objective {before:.3e} -> {after:.3e} after snapping")
    eps = float(np.finfo(kan_layers(copy)[0].variable_dtype).eps)  # snapped values round-off
    exprs = symbolic_formula(copy, x, snap=x is not None, snap_tolerance=16 * eps,
                             precision=precision, variables=variables, verbose=verbose)
    return [_exact_floats(e) for e in exprs] if isinstance(exprs, list) else _exact_floats(exprs)


def _exact_floats(expr):
    """Floats that equal a simple fraction exactly (0.5 after `-sin(h - pi/2)/2`) become it."""
    exact = {}
    for f in expr.atoms(sympy.Float):
        simple = sympy.nsimplify(f, rational=True)
        if simple.q <= 12 and float(simple) == float(f):
            exact[f] = simple
    return expr.xreplace(exact) if exact else expr


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
    layer = layers[check_int("layer_index", index, 0, len(layers) - 1)]
    check_int("i", i, 0, layer.input_dim - 1)
    check_int("j", j, 0, layer.units - 1)
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
    target = chain_output(model, layers, data)  # as model(x), in float64, no tracing
    if target is None:
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


