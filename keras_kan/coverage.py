"""Grid coverage: does a KANDense's grid cover the data it trains on?

Outside a layer's grid only the base branch `w_b * b(x)` acts (every spline
basis is 0 beyond the extended knots), so a layer whose inputs fall mostly
outside `grid_range` trains as little more than a linear model of `b(x)`.
Standardized tabular features (`StandardScaler`) put about a third of their
values outside the default `(-1, 1)`, and hidden activations can land
anywhere. Two things here keep that from going unnoticed:

- **A warning on the first training call** (`check_training_call`): each
  layer measures the fraction of its input values outside its grid interval
  `[t_k, t_{G+k}]` once, on its first training batch, and warns (Python
  `warnings.warn`, once per layer) when more than a tenth lie outside
  (`WARN_ABOVE`, below). On
  concrete inputs (PyTorch's eager `fit`, `run_eagerly=True`, custom loops)
  the fraction is computed on the host. Inside a compiled step (TensorFlow
  `tf.function`, JAX `jit`) the step carries a host callback
  (`keras_kan.backend.host_report`) that hands the fraction to Python; it is
  traced in only while the layer has not reported, so functions traced after
  the report (any retrace: a new `compile`, `GridUpdate`, `refine`) do not
  carry it.
- **`grid_range="data"`** (`data_grid`): the layer starts from pykan's
  `(-1, 1)` grid and, on its first training call, moves it to the range of
  that batch, per feature (`G` even intervals over `[min, max]`; the spline
  coefficients are kept, so the small random initial spline is stretched
  with the grid). The knots stay evenly spaced, so the fast closed-form
  basis stays valid. It is done in `keras.ops` inside the step (an
  assignment to the non-trainable `grid`, as `BatchNormalization` updates
  its statistics), so it works eagerly and compiled on every backend. A
  grid that still equals the initial one is what marks the layer as not yet
  adapted: a trained, saved and reloaded layer (whose grid moved) is never
  re-adapted, and neither is one whose grid was placed by `update_grid`,
  `GridUpdate` or `refine` before training.

Why one tenth (`WARN_ABOVE = 0.1`). The warning exists for standardized data,
so the threshold sits well below what standardizing gives: a Gaussian feature
puts 31.7% of its values outside one standard deviation, and
`StandardScaler`-ed scikit-learn sets put 24-34% of their values outside
`(-1, 1)` (diabetes 32%, digits 26%, breast_cancer 24%, wine 33%, iris 44%;
first batches of 32 rows 27-73%). A half, the earlier threshold, missed every
one of them but iris's small batches. One tenth sits above what data that fits
the grid gives: data scaled into the grid, or a grid moved to the data, leave
0% outside; a Gaussian feature scaled so that the grid spans two standard
deviations leaves 4.6%; a hidden layer's inputs at initialization on those
same sets were 0.4-6% outside (`[Input, KANDense(8), KANDense(1)]`). And at
one value in ten the loss starts to matter: a tenth of the data trains the
base branch alone.
"""

import warnings

import numpy as np
from keras import ops

from keras_kan import backend as kan_backend
from keras_kan import splines

__all__ = ["DATA", "INITIAL_RANGE", "WARN_ABOVE", "outside_fraction", "outside_fraction_numpy",
           "initial_knots", "data_knots", "pending", "skip_check", "training_call",
           "check_training_call", "data_grid"]

#: The `grid_range` value that makes a layer's grid follow its first training batch.
DATA = "data"
#: The grid a `grid_range="data"` layer is built with (pykan's default).
INITIAL_RANGE = (-1.0, 1.0)
#: Warn when more than this fraction of a layer's inputs is outside its grid (a tenth:
#: standardized data put about a third outside `(-1, 1)`; see the module docstring).
WARN_ABOVE = 0.1


def outside_fraction(x, knots, spline_order):
    """Fraction of the entries of `x` `(B, n)` outside their feature's grid interval
    (`keras.ops`; `outside_fraction_numpy` is the host twin).

    The interval of feature `i` is `[knots[i, k], knots[i, L-k-1]]`: the
    `grid_range`, or wherever grid updates moved it.
    """
    low, high = _interval(knots, spline_order)
    low, high = ops.cast(low, x.dtype), ops.cast(high, x.dtype)
    return ops.mean(ops.cast(ops.logical_or(x < low, x > high), "float32"))


def outside_fraction_numpy(x, knots, spline_order):
    """`outside_fraction` on host arrays, in float64: a Python float."""
    low, high = _interval(np.asarray(knots, np.float64), spline_order)
    x = np.asarray(x, np.float64)
    return float(np.mean((x < low) | (x > high)))


def _interval(knots, spline_order):
    length = knots.shape[1]
    return knots[None, :, spline_order], knots[None, :, length - spline_order - 1]


def initial_knots(layer, n):
    """`(n, G+2k+1)` knots a `grid_range="data"` layer is built with (float64)."""
    return splines.uniform_knots(INITIAL_RANGE, layer.grid_size, layer.spline_order,
                                 n_features=n)


def data_knots(x, grid_size, spline_order):
    """Evenly spaced knots over each feature's `[min, max]` in `x` `(B, n)` (`keras.ops`).

    A constant feature (range below `1e-6` of its scale) gets the width-2 grid
    centred on its value. Returns `(n, G+2k+1)` in `x`'s dtype.
    """
    low, high = ops.min(x, axis=0), ops.max(x, axis=0)
    scale = ops.maximum(ops.maximum(ops.abs(low), ops.abs(high)), 1.0)
    flat = (high - low) <= 1e-6 * scale
    centre = 0.5 * (low + high)
    low = ops.where(flat, centre - 1.0, low)
    high = ops.where(flat, centre + 1.0, high)
    steps = np.arange(-spline_order, grid_size + spline_order + 1, dtype=np.float64) / grid_size
    steps = ops.convert_to_tensor(steps, x.dtype)
    return low[:, None] + (high - low)[:, None] * steps[None, :]


def data_grid(layer, x):
    """On a training call of a `grid_range="data"` layer: move a still-initial grid to `x`.

    Eagerly the test runs on the host once (later calls cost nothing); inside
    a compiled step the choice is an `ops.where` on whether the grid still
    equals its initial value (a few `(n, L)` ops per step).
    """
    if layer._data_grid_done:
        return
    initial = initial_knots(layer, layer.input_dim)
    if tuple(layer.grid.shape) != initial.shape:  # refined: placed by the user
        layer._data_grid_done = True
        return
    if not kan_backend.is_traced(x) and not kan_backend.is_traced(layer.grid.value):
        grid = np.asarray(ops.convert_to_numpy(layer.grid), np.float64)
        layer._data_grid_done = True
        if np.allclose(grid, initial, rtol=0, atol=1e-6):
            new = ops.convert_to_numpy(data_knots(ops.cast(x, "float32"), layer.grid_size,
                                                  layer.spline_order))
            layer.grid.assign(np.asarray(new, np.float64).astype(layer.grid.dtype))
            layer.sync_grid()
        return
    grid = layer.grid.value
    initial = ops.convert_to_tensor(initial, grid.dtype)
    pending = ops.all(ops.abs(grid - initial) <= 1e-6)
    new = data_knots(ops.cast(x, grid.dtype), layer.grid_size, layer.spline_order)
    layer.grid.assign(ops.where(pending, new, grid))


def pending(layer):
    """Whether `layer`'s first-training-call work (adapt or check) is still to be done."""
    return not (layer._data_grid_done if layer.grid_range == DATA else layer._coverage_checked)


def skip_check(layer):
    """Mark `layer` as checked without measuring (its grid is about to move to the data)."""
    layer._coverage_checked = True


def training_call(layer, x):
    """What a KANDense does first on a training call: adapt a `"data"` grid, or check coverage.

    Returns the input to use (see `check_training_call`).
    """
    if layer.grid_range == DATA:
        data_grid(layer, x)
        return x
    return check_training_call(layer, x)


def check_training_call(layer, x):
    """Measure, once per layer, how much of its first training batch is outside its grid.

    Returns `x`, or `x` plus a zero that ties the host report into a compiled
    step (so the step cannot drop it).
    """
    if layer._coverage_checked:
        return x
    if not kan_backend.is_traced(x) and not kan_backend.is_traced(layer.grid.value):
        knots = np.asarray(ops.convert_to_numpy(layer.grid), np.float64)
        values = np.asarray(ops.convert_to_numpy(x), np.float64)
        low, high = _interval(knots, layer.spline_order)
        splines = float(np.any(ops.convert_to_numpy(layer.edge_mask) != 0))
        report(layer, outside_fraction_numpy(values, knots, layer.spline_order),
               low.min(), high.max(), splines)
        return x
    # Inside a step the variables may be detached (JAX): send the grid's bounds along.
    knots = layer.grid.value
    low, high = _interval(knots, layer.spline_order)
    splines = ops.cast(ops.any(ops.not_equal(layer.edge_mask.value, 0)), "float32")
    values = ops.stack([outside_fraction(x, knots, layer.spline_order),
                        ops.cast(ops.min(low), "float32"), ops.cast(ops.max(high), "float32"),
                        splines])
    zero = kan_backend.host_report(lambda v: report(layer, *(float(a) for a in v)), values)
    return x if zero is None else x + ops.cast(zero, x.dtype)


def report(layer, fraction, low, high, splines):
    """Record the layer's first measurement; warn if more than `WARN_ABOVE` of the
    inputs are off the grid (whose interval spans `[low, high]` over the features)
    and some edge has a live spline (`splines` non-zero: a layer of symbolic edges
    only has nothing to warn of)."""
    if layer._coverage_checked:
        return
    layer._coverage_checked = True
    layer.outside_grid_fraction = fraction
    if fraction > WARN_ABOVE and splines:
        warnings.warn(
            f"KANDense '{layer.name}': {fraction:.0%} of its inputs on the first training "
            f"batch lie outside its grid (interval [{low:.3g}, {high:.3g}]): there only the "
            "base branch acts, the splines never see those values (standardized data put "
            "about a third of their values outside (-1, 1)). Scale the inputs to the grid, "
            "build the layer with grid_range='data' (the grid follows the first training "
            "batch), or update the grids to the data before training (keras_kan.update_grids "
            "or callbacks.GridUpdate(x)). See "
            "docs/benchmarks.md#a-recipe-for-tabular-data-copy-it.",
            UserWarning,
            stacklevel=2,
        )
