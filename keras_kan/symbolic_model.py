"""A model's symbolic edges: edits in place (fix, unfix, auto) and analyses (suggest, report).

Layers are given by their index among the model's KANDense layers (0-based),
the layer itself or its name; `i`/`j` are 0-based input/output units. A
symbolic edge computes `c * f(a * x + b) + d` inside its `KANDense` (see
`keras_kan.symbolic_edges`); its numeric spline is kept (masked off), so
`unfix_symbolic` restores it. Every change rebuilds the model's compiled
functions (and gives a built optimizer a fresh twin when the trainable
variables change).

The edits (`fix_symbolic`, `unfix_symbolic`, `auto_symbolic`) return None;
what they chose is read with the analysis `symbolic_report`, and how well a
function fits an edge's spline with the analysis `suggest_symbolic`.
"""

import math

import numpy as np
from keras import ops

from keras_kan import symbolic_edges
from keras_kan.layers import KANDense
from keras_kan.network import (
    chain_inputs,
    edge_values,
    is_plain_chain,
    kan_layers,
    model_samples,
    node_steps,
    quantile_samples,
)
from keras_kan.symbolic_fit import (
    WEIGHT_SIMPLE,
    SymbolicFit,
    check_weight_simple,
    fit_function,
    kappa,
    rank_functions,
    resolve_functions,
)
from keras_kan.symbolic_library import get_function
from keras_kan.symbolic_objective import refit_objective
from keras_kan.symbolic_refit import chain_rmse, refit_constants
from keras_kan.validation import check_int, check_samples, check_verbose

__all__ = ["suggest_symbolic", "fix_symbolic", "unfix_symbolic", "auto_symbolic",
           "symbolic_report"]

_FIT_POINTS = 1024  # order statistics of a layer's input used for fits
_KAPPA_BAD = 100.0  # a symbolic edge whose |mean f| / std f exceeds this is ill-conditioned
_PARAM_BAD = 1e3  # ... or whose constants exceed this in magnitude
_NOT_EXACT = 0.1  # symbolic RMSE above this fraction of the numeric one: search runner-ups
_EXACT = 1e-4  # ... or of this fraction of std(y), when the numeric model is worse than that
_SEARCH_EDGES = 6  # edges (lowest per-edge R^2 first) searched per round
_SEARCH_ROUNDS = 3  # at most this many swaps are kept by the search
_GAIN = 0.5  # a searched swap is kept when it at least halves the RMSE
_TIE = 2.0  # searched swaps within this factor of the best RMSE: the simplest is taken
_RUNNER_UPS = 3  # alternatives tried per edge
_TRIAL_NFEV = 60  # joint-refit evaluations per trial swap
_LINEAR = "x"  # tried by the greedy search on every searched edge (see _swap_runner_ups)


# ------------------------------------------------------------------- helpers
def _layers(model, caller):
    if isinstance(model, KANDense):
        if not model.built:
            raise ValueError(f"{caller}: the KANDense layer is not built.")
        return [model]
    return kan_layers(model, caller)


def _layer_inputs(model, x, caller):
    """`(layers, inputs)`: every KAN layer and what reaches it for `x`, `(N, n_l)` float64."""
    layers = _layers(model, caller)
    if isinstance(model, KANDense):
        data = check_samples("x", x, model.input_dim, min_samples=2,
                             what=f"samples of the input of layer '{model.name}'")
        return layers, [np.asarray(data, np.float64)]
    return layers, chain_inputs(model, layers, model_samples(model, x))


def _find_layer(model, layer, caller):
    """`(index, layer)` for a layer given by index, object or name."""
    layers = _layers(model, caller)
    if isinstance(layer, KANDense):
        for index, candidate in enumerate(layers):
            if candidate is layer:
                return index, layer
        raise ValueError(f"Received an invalid value for argument `layer`: KANDense "
                         f"'{layer.name}' is not in the model.")
    if isinstance(layer, str):
        for index, candidate in enumerate(layers):
            if candidate.name == layer:
                return index, candidate
        raise ValueError(f"Received an invalid value for argument `layer`: no KANDense named "
                         f"{layer!r} (have {[c.name for c in layers]}).")
    index = check_int("layer", layer, 0, len(layers) - 1)
    return index, layers[index]


def _check_edge(layer, i, j):
    check_int("i", i, 0, layer.input_dim - 1)
    check_int("j", j, 0, layer.units - 1)
    return int(i), int(j)


def _numpy(variable):
    return np.asarray(ops.convert_to_numpy(variable), np.float64)


def _spline_values(layer, xs, i, j):
    """`(P,)` the numeric spline of edge `i -> j` on `xs (P, n)`, even where
    `edge_mask` switches it off (read through a weight override, nothing written)."""
    mask = _numpy(layer.edge_mask)
    mask[i, j] = 1.0
    return edge_values(layer, xs, include_symbolic=False, weights={"edge_mask": mask})[:, i, j]


def _symbolic_values(layer, xs, i, j):
    """`(P,)` the symbolic part `c f(a x + b) + d` of edge `i -> j` on `xs (P, n)`."""
    a, b, c, d = (_numpy(getattr(layer, w))[i, j] for w in symbolic_edges.SYMBOLIC_PARAM_NAMES)
    fn = get_function(symbolic_edges.function_names(layer)[i, j])
    with np.errstate(all="ignore"):
        return c * fn.numpy(a * xs[:, i] + b) + d


def _format_params(params):
    return "" if params is None else "  ".join(f"{k}={v: .4g}" for k, v in zip("abcd", params))


def _describe(index, i, j, fit):
    return (f"layer {index} edge {i} -> {j}: {fit.name:<8} R^2 = {fit.r2:.6f}  "
            f"{_format_params(fit.params)}")


# ------------------------------------------------------------------- suggest
def suggest_symbolic(model, layer, i, j, x, lib=None, top_k=5,
                     weight_simple=WEIGHT_SIMPLE, verbose=0):
    """Rank the library's functions for edge `i -> j` (the model is not changed).

    Each function `f` is fitted as `c * f(a * x + b) + d` to the edge's numeric
    spline on the values of input `i` that reach the layer for `x` (up to 1024
    evenly spaced order statistics); see `keras_kan.symbolic_fit` for the search
    and the ranking rule. The spline is read even where the edge is symbolic
    (it is kept, masked off), so this also tells how well an edge's chosen
    function fits it.

    Args:
        model: a model with KANDense layers, or a single built `KANDense`
            (then `x` is that layer's input and `layer` must be 0).
        layer: index among the KANDense layers, the layer or its name.
        i, j: the edge's input and output unit.
        x: `(N, n_in)` samples of the model input.
        lib: None (every registered function) or a list of names.
        top_k: how many to return (None: all).
        weight_simple: see `keras_kan.symbolic_fit`.
        verbose: 0 (silent) or 1 (print a table).

    Returns:
        list of `SymbolicFit` `(name, r2, (a, b, c, d), kappa)`, best first.
    """
    verbose = check_verbose(verbose)
    lib = resolve_functions(lib)
    index, target = _find_layer(model, layer, "suggest_symbolic")
    i, j = _check_edge(target, i, j)
    _, inputs = _layer_inputs(model, x, "suggest_symbolic")
    xs = quantile_samples(inputs[index], _FIT_POINTS)
    ranked = rank_functions(xs[:, i], _spline_values(target, xs, i, j), list(lib.values()),
                            weight_simple)
    if top_k is not None:
        ranked = ranked[: int(top_k)]
    if verbose:
        print(f"edge {i} -> {j} of layer {index} ('{target.name}'): phi ~ c*f(a*x+b)+d")
        print(f"  {'#':>2}  {'function':<9} {'R^2':>10}  {'cplx':>4}  {'kappa':>8}  params")
        for rank, fit in enumerate(ranked, 1):
            print(f"  {rank:>2}  {fit.name:<9} {fit.r2:>10.6f}  {lib[fit.name].complexity:>4g}"
                  f"  {fit.kappa:>8.3g}  {_format_params(fit.params)}")
    return ranked


# ----------------------------------------------------------------- fix, unfix
def fix_symbolic(model, layer, i, j, name, fit_params=True, x=None, params=None,
                 mode="symbolic", verbose=0):
    """Give edge `i -> j` the function `name`, in place (pykan's `fix_symbolic`).

    `symbolic_report` reads back what was written.

    Args:
        model: a model with KANDense layers, or a built KANDense.
        layer: index among the KANDense layers, the layer or its name.
        i, j: the edge.
        name: a registered function name (see `keras_kan.add_symbolic`).
        fit_params: fit `(a, b, c, d)` to the edge's numeric spline on the values
            that reach it for `x` (see `keras_kan.symbolic_fit.fit_function`);
            False: use `params` (default `(1, 0, 1, 0)`).
        x: `(N, n_in)` samples of the model input (needed with `fit_params`).
        params: explicit `(a, b, c, d)`; given, nothing is fitted.
        mode: `"symbolic"` (the numeric part is masked off) or `"both"` (the
            two parts add up).
        verbose: 0 (silent) or 1 (print the choice, its parameters and, when
            fitted, its `R^2`).

    Returns:
        None (an in-place edit).
    """
    verbose = check_verbose(verbose)
    index, target = _find_layer(model, layer, "fix_symbolic")
    i, j = _check_edge(target, i, j)
    fn = get_function(name)
    r2 = float("nan")
    if params is not None:
        params = tuple(float(v) for v in params)
        if len(params) != 4:
            raise ValueError(f"Received an invalid value for argument `params`: expected "
                             f"(a, b, c, d), got {params!r}.")
    elif fit_params:
        if x is None:
            raise ValueError("fix_symbolic with fit_params=True needs `x` (samples of the "
                             "model input) to fit (a, b, c, d); or pass `params`.")
        _, inputs = _layer_inputs(model, x, "fix_symbolic")
        xs = quantile_samples(inputs[index], _FIT_POINTS)
        r2, params = fit_function(xs[:, i], _spline_values(target, xs, i, j), fn)
        if params is None:
            raise ValueError(f"{name!r} cannot be evaluated on the values reaching edge "
                             f"{i} -> {j} of layer {index} (outside its domain).")
    else:
        params = (1.0, 0.0, 1.0, 0.0)
    before = list(model.trainable_variables)
    symbolic_edges.set_edge(target, i, j, name, params, mode)
    symbolic_edges.reset_model(model, before)
    if verbose:
        print("fixed " + _describe(index, i, j, SymbolicFit(name, float(r2), params)))


def unfix_symbolic(model, layer=None, i=None, j=None, verbose=0):
    """Make symbolic edges numeric again, in place (pykan's `unfix_symbolic`).

    The edge's numeric spline (kept all along) is switched back on
    (`edge_mask` 1) and its symbolic part off.

    Args:
        model: a model with KANDense layers, or a built KANDense.
        layer: index among the KANDense layers, the layer or its name; None:
            every layer.
        i, j: the edge; None: every symbolic edge of the layer(s).
        verbose: 0 (silent) or 1 (print each edge made numeric).

    Returns:
        None (an in-place edit).
    """
    verbose = check_verbose(verbose)
    layers = _layers(model, "unfix_symbolic")
    targets = (range(len(layers)) if layer is None
               else [_find_layer(model, layer, "unfix_symbolic")[0]])
    if (i is None) != (j is None):
        raise ValueError("unfix_symbolic needs both `i` and `j`, or neither.")
    before = list(model.trainable_variables)
    for index in targets:
        current = layers[index]
        if i is not None:
            chosen = [_check_edge(current, i, j)]
        else:
            chosen = list(zip(*np.nonzero(symbolic_edges.function_names(current) != "")))
        for a, b in chosen:
            symbolic_edges.set_edge(current, int(a), int(b), None)
            if verbose:
                print(f"unfixed layer {index} edge {a} -> {b}: numeric")
    symbolic_edges.reset_model(model, before)


# -------------------------------------------------------------------- report
def symbolic_report(model):
    """The model's symbolic edges as they are (an analysis: nothing is changed).

    What `fix_symbolic` or `auto_symbolic` wrote, read back from the layers:
    each edge's function name (`keras_kan.symbolic_edges.function_names`)
    and its weights `symbolic_a` .. `symbolic_d`. The model keeps no fit
    quality; `suggest_symbolic(model, layer, i, j, x, lib=[name])` gives the
    `R^2` of that function on the edge's spline (kept, masked off) for the
    values that reach it now.

    Args:
        model: a model with KANDense layers, or a built KANDense (layer 0).

    Returns:
        dict `{(layer_index, i, j): {"name": str, "params": (a, b, c, d),
        "mode": "symbolic" | "both"}}`, one entry per symbolic edge in layer,
        then row-major order: `layer_index` counts the KANDense layers from 0,
        `i`/`j` are the edge's input/output unit, `params` are Python floats
        (float64) of `c * f(a * x + b) + d`, and `mode` is `"both"` where the
        numeric part is on too (`edge_mask` not 0), as `fix_symbolic` takes
        it. Empty when no edge is symbolic.
    """
    report = {}
    for index, layer in enumerate(_layers(model, "symbolic_report")):
        names = symbolic_edges.function_names(layer)
        params = [_numpy(getattr(layer, w)) for w in symbolic_edges.SYMBOLIC_PARAM_NAMES]
        numeric = _numpy(layer.edge_mask) != 0
        for i, j in zip(*np.nonzero(names != "")):
            report[(index, int(i), int(j))] = {
                "name": str(names[i, j]),
                "params": tuple(float(p[i, j]) for p in params),
                "mode": "both" if numeric[i, j] else "symbolic",
            }
    return report


# ---------------------------------------------------------------------- auto
def auto_symbolic(model, x, y=None, lib=None, r2_threshold=0.9, weight_simple=WEIGHT_SIMPLE,
                  mode="symbolic", max_nfev=200, verbose=0, *, objective=None,
                  objective_steps=50):
    """Make every unmasked edge symbolic with its best function, in place.

    1. **Per edge, layer by layer** (each layer fitted on the values that
       reach it after the layers before it were made symbolic): the library is
       ranked on the edge's numeric spline (`keras_kan.symbolic_fit`: `R^2`,
       complexity and conditioning) and the best function with `R^2 >=
       r2_threshold` is written into the edge; an edge with none keeps its
       spline. Edges already symbolic are skipped. Each hidden node whose edges
       are all symbolic is then rescaled, exactly, so that its first outgoing
       edge reads `f(1 * h + 0)`.
    2. **With `y`, on the whole model**: every symbolic constant is refit
       jointly against `(x, y)` in float64 (as `polish_symbolic`). Then an edge
       whose fit is ill-conditioned (`|mean f| / std f > 100` on its inputs,
       or a constant beyond `1e3`: a function used as a Taylor polynomial,
       e.g. `cos(a x)` with small `a`) is tried with its runner-up functions,
       and a swap is kept when the jointly refit model's RMSE is no worse than
       3 times the current. While the symbolic model's RMSE stays above a
       tenth of the numeric model's (the true functions, refit jointly, beat
       the splines by orders of magnitude on noise-free data), a greedy
       search (also while it stays above `1e-5 std(y)`: a numeric model
       that pruning or a poor fit left inexact is no yardstick) tries the
       runner-ups of the edges with the lowest per-edge
       `R^2` on the whole model, and `x` on each of them whatever its `R^2`
       (after a product node a linear edge can look curved), and keeps the
       best swap (the simplest of those within 2x of the lowest RMSE: `abs`
       of a one-signed argument is as exact as `x`) if it at least halves the
       RMSE (at most three swaps).
    2'. **With `objective`** (physics-informed, no targets): every trainable
       constant is refit jointly by L-BFGS on `objective(model)` (PDE residual
       and boundary terms) instead of a data misfit
       (`keras_kan.symbolic_objective.refit_objective`); `x` are then the
       collocation points the functions are chosen on.

    Args:
        model: a model with KANDense layers (or a single built KANDense; then
            `y` must be None).
        x: `(N, n_in)` samples of the model input.
        y: `(N, n_out)` targets, or None (per-edge choices only).
        lib: None (every registered function) or a list of names.
        r2_threshold: minimum per-edge `R^2` for a symbolic edge.
        weight_simple: see `keras_kan.symbolic_fit`.
        mode: `"symbolic"` (numeric parts masked off) or `"both"`.
        max_nfev: evaluations of the final joint refit (with `y`).
        verbose: 0 (silent) or 1 (one line per edge, with its `R^2`, and per
            model-level step).
        objective: `fn(model) -> scalar tensor` to refit the constants on
            (not with `y`).
        objective_steps: L-BFGS steps of that refit.

    Returns:
        None (an in-place edit). `symbolic_report(model)` reads the edges as
        chosen (with `y`: the functions and constants after the joint refit
        and swaps); `suggest_symbolic` ranks the functions of one edge.
    """
    verbose = check_verbose(verbose)
    weight_simple = check_weight_simple(weight_simple)
    lib = resolve_functions(lib)
    layers = _layers(model, "auto_symbolic")
    chain = not isinstance(model, KANDense) and is_plain_chain(model, layers)
    if y is not None and not chain:
        raise ValueError("auto_symbolic with `y` needs a plain chain of KANDense layers.")
    if objective is not None and (y is not None or not callable(objective)):
        raise ValueError("auto_symbolic takes either `y` or a callable `objective`, got "
                         f"y={type(y).__name__}, objective={objective!r}.")
    data = target = None
    if y is not None:
        data = model_samples(model, x, max_samples=np.iinfo(np.int64).max)
        target = np.asarray(ops.convert_to_numpy(y), np.float64).reshape(data.shape[0], -1)
        numeric_rmse = chain_rmse(layers, data, target, node_steps(model, layers))
    before = list(model.trainable_variables)
    ranked_by_edge, linear_edges = {}, set()
    for index, layer in enumerate(layers):
        _, inputs = _layer_inputs(model, x, "auto_symbolic")  # after the layers before
        xs = quantile_samples(inputs[index], _FIT_POINTS)
        mask = _numpy(layer.edge_mask)
        names = symbolic_edges.function_names(layer)
        for i, j in zip(*np.nonzero(mask)):
            i, j = int(i), int(j)
            if names[i, j]:
                if verbose:
                    print(f"layer {index} edge {i} -> {j}: already symbolic ({names[i, j]}), "
                          "skipped")
                continue
            ranked = rank_functions(xs[:, i], _spline_values(layer, xs, i, j),
                                    list(lib.values()), weight_simple)
            good = [fit for fit in ranked if fit.r2 >= r2_threshold]
            fit = good[0] if good else SymbolicFit(
                None, max((f.r2 for f in ranked), default=-math.inf), None)
            ranked_by_edge[(index, i, j)] = good
            if any(f.name == _LINEAR for f in ranked):
                linear_edges.add((index, i, j))
            if fit.fitted:
                symbolic_edges.set_edge(layer, i, j, fit.name, fit.params, mode)
            if verbose:
                print("fixed " + _describe(index, i, j, fit) if fit.fitted else
                      f"kept   layer {index} edge {i} -> {j}: numeric (best R^2 = "
                      f"{fit.r2:.4f} < {r2_threshold})")
    if chain:
        for layer, after, step in zip(layers[:-1], layers[1:], node_steps(model, layers)):
            if step is not None:  # subnodes -> nodes: not the next layer's inputs one to one
                continue
            for j in range(layer.units):
                symbolic_edges.normalize_node(layer, after, j)
    symbolic_edges.reset_model(model, before)
    if objective is not None:
        _refit_on_objective(model, objective, objective_steps, verbose)
    if y is None:
        return
    rmse = refit_constants(model, data, target, max_nfev=max_nfev)
    if verbose:
        print(f"joint refit: RMSE {rmse:.3e} (numeric model {numeric_rmse:.3e})")
    _swap_runner_ups(model, layers, data, target, rmse, numeric_rmse, ranked_by_edge,
                     max_nfev, verbose, linear_edges)


def _refit_on_objective(model, objective, steps, verbose):
    """auto_symbolic's physics-informed step: the constants refit on `objective`."""
    value = refit_objective(model, objective, steps=check_int("objective_steps", steps, 1))
    if verbose:
        print(f"joint refit on the objective: {value:.3e}")


def _edge_health(model, layers, data):
    """`{(l, i, j): kappa}` of every symbolic edge on its current inputs, with
    `inf` where a constant exceeds `1e3`."""
    inputs = chain_inputs(model, layers, data)
    out = {}
    for (index, i, j), edge in symbolic_report(model).items():
        params = edge["params"]
        out[(index, i, j)] = (math.inf if max(abs(v) for v in params) > _PARAM_BAD else
                              kappa(get_function(edge["name"]), inputs[index][:, i], params))
    return out


def _try_swap(model, layers, data, target, key, alternatives, nfev):
    """Try each alternative function on edge `key`, fitted to the edge's current
    symbolic values and then refit jointly; returns `[(rmse, state)]` (the model
    is restored to its state before the call)."""
    index, i, j = key
    layer = layers[index]
    saved = [layer.get_weights_by_name() for layer in layers]
    saved_names = [symbolic_edges.function_names(layer) for layer in layers]
    inputs = chain_inputs(model, layers, data)[index]
    xs = quantile_samples(inputs, _FIT_POINTS)
    values = _symbolic_values(layer, xs, i, j)
    results = []
    for name in alternatives:
        r2, params = fit_function(xs[:, i], values, get_function(name))
        if params is None:
            continue
        symbolic_edges.set_edge(layer, i, j, name, params, "symbolic")
        rmse = refit_constants(model, data, target, max_nfev=nfev)
        state = ([lay.get_weights_by_name() for lay in layers],
                 [symbolic_edges.function_names(lay) for lay in layers])
        results.append((rmse, name, state))
        _restore(layers, saved, saved_names)
    return results


def _restore(layers, weights, names):
    for layer, values, fn_names in zip(layers, weights, names):
        symbolic_edges.restore(layer, values, fn_names)


def _swap_runner_ups(model, layers, data, target, rmse, numeric_rmse, ranked_by_edge,
                     max_nfev, verbose, linear_edges=frozenset()):
    """Step 2 of `auto_symbolic` after the first joint refit (in place).

    First each ill-conditioned edge tries its runner-ups (kept when the refit model is no
    worse than 3x). Then, while the symbolic model is not clearly better than the numeric
    one (a formula with the true functions, refit jointly, beats the splines by orders
    of magnitude on noise-free data), or above `1e-5 std(y)` (a numeric model left
    inexact, e.g. by pruning before a steep edge, is no yardstick), a greedy search:
    every runner-up of the
    `_SEARCH_EDGES` edges with the lowest per-edge `R^2` is tried on the whole model, and
    the single best swap is kept if it at least halves the RMSE. The search also tries `x`
    on each of those edges (when the library has it), whatever its per-edge `R^2`: an
    edge's spline is judged on the values its inputs take in the numeric model, and
    after a product node the numeric model may have traded a linear output edge for
    curvature that the nodes before it absorb (the product of two offset, small-scale
    subnodes, `(a x_1 + b)(c x_2 + d)`, read by a curved edge), which the joint refit of
    the true, linear, form undoes.
    """
    before = list(model.trainable_variables)
    health = _edge_health(model, layers, data)
    bad = [key for key, k in health.items() if k > _KAPPA_BAD and key in ranked_by_edge]
    changed = False

    def alternatives(key):
        index, i, j = key
        current = symbolic_edges.function_names(layers[index])[i, j]
        return current, [fit.name for fit in ranked_by_edge[key]
                         if fit.name != current][:_RUNNER_UPS]

    for key in bad:
        current, names = alternatives(key)
        results = _try_swap(model, layers, data, target, key, names, _TRIAL_NFEV)
        if not results:
            continue
        best_rmse, name, state = min(results, key=lambda r: r[0])
        kept = best_rmse <= 3.0 * rmse
        if verbose:
            print(f"layer {key[0]} edge {key[1]} -> {key[2]} ({current}, ill-conditioned): "
                  f"best runner-up {name} RMSE {best_rmse:.3e} vs {rmse:.3e}: "
                  f"{'swapped' if kept else 'kept'}")
        if kept:
            _restore(layers, *state)
            rmse, changed = best_rmse, True
    searched = sorted((key for key in ranked_by_edge if ranked_by_edge[key]),
                      key=lambda key: ranked_by_edge[key][0].r2)[:_SEARCH_EDGES]
    for _ in range(_SEARCH_ROUNDS):
        if not searched or rmse <= _NOT_EXACT * min(numeric_rmse, _EXACT * np.std(target)):
            break
        trials = []
        for key in searched:
            current, names = alternatives(key)
            if key in linear_edges and _LINEAR not in names and current != _LINEAR:
                names = names + [_LINEAR]
            trials += [(r, key, current) for r in
                       _try_swap(model, layers, data, target, key, names, _TRIAL_NFEV)]
        if not trials:
            break
        lowest = min(t[0][0] for t in trials)
        near = [t for t in trials if t[0][0] <= _TIE * lowest]  # then the simplest wins
        (best_rmse, name, state), key, current = min(
            near, key=lambda t: (get_function(t[0][1]).complexity, t[0][0]))
        kept = best_rmse <= _GAIN * rmse
        if verbose:
            print(f"search (symbolic RMSE {rmse:.3e}, numeric {numeric_rmse:.3e}): best swap "
                  f"layer {key[0]} edge {key[1]} -> {key[2]} {current} -> {name}, RMSE "
                  f"{best_rmse:.3e}: {'swapped' if kept else 'none kept'}")
        if not kept:
            break
        _restore(layers, *state)
        rmse, changed = best_rmse, True
    if changed:
        symbolic_edges.reset_model(model, before)
        rmse = refit_constants(model, data, target, max_nfev=max_nfev)
        if verbose:
            print(f"joint refit after swaps: RMSE {rmse:.3e}")
