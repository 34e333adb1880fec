"""Refitting every symbolic constant of a model jointly against data, in float64.

`refit_constants` fits all symbolic edges' `a, b, c, d` together to `(x, y)`
with `scipy.optimize.least_squares`, on a float64 NumPy forward pass of the
model (`keras_kan.edges`, NumPy form), and returns the RMSE after the fit;
`auto_symbolic(model, x, y)` calls it. `polish_symbolic` is the public
in-place edit around it (returns None, prints the RMSE with `verbose=1`).
"""

import numpy as np
from keras import ops
from scipy.optimize import least_squares

from keras_kan import edges, symbolic_edges
from keras_kan.network import apply_nodes, is_plain_chain, kan_layers, model_samples, node_steps
from keras_kan.validation import check_verbose

__all__ = ["polish_symbolic", "refit_constants", "chain_rmse"]


def chain_rmse(layers, data, target, steps=None):
    """Float64 RMSE of a plain chain of KANDense `layers` on `data (N, n_in)` against
    `target (N, n_out)` (numeric and symbolic parts, the layers' current weights);
    `steps[l]`: the `MultNodes` after layer `l` or None (`network.node_steps`)."""
    current = data
    for layer, step in zip(layers, steps or [None] * len(layers)):
        with np.errstate(all="ignore"):
            current = apply_nodes(step, edges.output(edges.NUMPY, current,
                                                     edges.params(layer, edges.NUMPY)))
    value = float(np.sqrt(np.mean((current - target) ** 2)))
    return value if np.isfinite(value) else float("inf")


def polish_symbolic(model, x, y, max_nfev=200, verbose=0):
    """Fit every symbolic edge's `a, b, c, d` jointly to data, in float64, in place.

    A plain chain is evaluated in float64 NumPy (numeric parts from the
    layers' splines, symbolic parts from the library's NumPy functions) and
    all symbolic parameters are fitted together to `y` with
    `scipy.optimize.least_squares` (trust-region reflective). In float32, the
    loss near an exact formula is so flat and noisy (outputs round at
    ~1e-7 relative) that gradient training of `a, b, c, d` can stall at
    RMSE ~1e-5; this solve does not. Parameters are written back in the
    variables' dtype; compiled functions keep working (no structure change).
    `auto_symbolic(model, x, y)` already does this.

    Args:
        model: a plain chain of KANDense layers with symbolic edges.
        x: `(N, n_in)` inputs; y: `(N, n_out)` or `(N,)` targets.
        max_nfev: the most function evaluations.
        verbose: 0 (silent) or 1 (print the RMSE before and after).

    Returns:
        None (an in-place edit).
    """
    verbose = check_verbose(verbose)
    before, after, nfev = _refit(model, x, y, max_nfev)
    if verbose:
        print(f"polish_symbolic: RMSE {before:.3e} -> {after:.3e} (float64, "
              f"{nfev} evaluations)")


def refit_constants(model, x, y, max_nfev=200):
    """`polish_symbolic` without the printing: refits in place and returns the float64
    RMSE after the fit (for `keras_kan.symbolic_model`, which needs it)."""
    return _refit(model, x, y, max_nfev)[1]


def _refit(model, x, y, max_nfev):
    """The joint refit, in place; returns `(RMSE before, RMSE after, evaluations)`."""
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
    steps = node_steps(model, layers)
    first = edges.params(layers[0], edges.NUMPY, weights=fixed[0])
    first_numeric = edges.numeric_output(edges.NUMPY, edges.features(edges.NUMPY, data, first),
                                         first)  # the first layer's numeric part never changes

    def forward(values):
        current = data
        for index, layer in enumerate(layers):
            trial = dict(fixed[index], **{w: values[(index, w)] for w in
                                          symbolic_edges.SYMBOLIC_WEIGHT_NAMES
                                          if (index, w) in values})
            p = edges.params(layer, edges.NUMPY, weights=trial)
            with np.errstate(all="ignore"):
                if index == 0:
                    out = first_numeric
                elif fixed[index]["edge_mask"].any():
                    out = edges.numeric_output(edges.NUMPY,
                                               edges.features(edges.NUMPY, current, p), p)
                else:  # purely symbolic layer: no basis to compute
                    out = 0.0
                symbolic = edges.symbolic_output(edges.NUMPY, current, p)
                out = out + (0.0 if symbolic is None else symbolic)
                current = out + (0.0 if p.bias is None else p.bias)
            current = np.broadcast_to(current, (data.shape[0], layer.units))
            with np.errstate(all="ignore"):
                current = apply_nodes(steps[index], current)
        return current

    start = np.concatenate([params0[(index, w)][rows, cols] for index, rows, cols in slots
                            for w in symbolic_edges.SYMBOLIC_WEIGHT_NAMES[1:]])

    # residuals are bounded (a trial far outside a function's domain gives inf/NaN or
    # 1e300): the least-squares Jacobian must stay finite whatever the trial
    bound = 1e3 * max(1.0, float(np.max(np.abs(target), initial=0.0)))

    def residuals(vector):
        with np.errstate(all="ignore"):
            res = (forward(unpack(vector)) - target).reshape(-1)
        return np.clip(np.where(np.isfinite(res), res, bound), -bound, bound)

    before = float(np.sqrt(np.mean(residuals(start) ** 2)))
    try:
        result = least_squares(residuals, start, method="trf", x_scale="jac", ftol=1e-15,
                               xtol=1e-15, gtol=1e-15, max_nfev=int(max_nfev))
    except (ValueError, np.linalg.LinAlgError):  # a non-finite step: keep the start
        result = None
    best = (result.x if result is not None and np.all(np.isfinite(result.x)) and
            np.mean(result.fun ** 2) <= before ** 2 else start)
    for (index, w), value in unpack(best).items():
        variable = getattr(layers[index], w)
        variable.assign(value.astype(variable.dtype))
    after = float(np.sqrt(np.mean(residuals(best) ** 2)))
    return before, after, 0 if result is None else int(result.nfev)
