"""`KANDense`: a Kolmogorov–Arnold layer with the interface of `keras.layers.Dense`."""

import math

import keras
import numpy as np
from keras import ops

from keras_kan import backend as kan_backend
from keras_kan import coverage, edges, loading, regularizers, splines, symbolic_edges
from keras_kan.rng import torch_rand
from keras_kan.validation import (
    check_bool,
    check_grid_range,
    check_int,
    check_real,
    check_samples,
)

__all__ = ["KANDense", "WEIGHT_NAMES"]

_HALF_DTYPES = ("float16", "bfloat16")

#: The layer's weights, by the names they are saved under.
WEIGHT_NAMES = ("grid", "spline_kernel", "base_kernel", "spline_scale", "edge_mask", "bias")


@keras.saving.register_keras_serializable(package="keras_kan")
class KANDense(keras.layers.Layer):
    """Kolmogorov–Arnold layer: a learnable B-spline on every input-output edge.

    `y_j = sum_i phi_ij(x_i)` (+ `bias_j`) with
    `phi_ij(x) = mask_ij * (w_b[i,j] * b(x) + w_s[i,j] * sum_p c[i,p,j] B_p(x))`
    (pykan 0.2.x semantics): `B_p` are the B-splines of order `spline_order`
    on each input's knots, `b` the base activation. Outside the extended knots
    every spline basis is 0, so only the base branch `w_b * b(x)` acts there.

    The forward pass builds per-input features `F = [B(x), b(x)]` of shape
    `(batch, n, K+1)` (`K = grid_size + spline_order`) and multiplies them
    once by an effective kernel `(n*(K+1), units)`; no `(batch, n, units)`
    tensor is formed.

    Example:

    ```python
    >>> model = keras.Sequential([keras.Input((2,)), KANDense(5), KANDense(1)])
    >>> model(np.zeros((4, 2))).shape
    (4, 1)
    ```

    Args:
        units: output size (positive int).
        grid_size: `G`, grid intervals inside `grid_range` (>= 1).
        spline_order: `k`, the spline degree (>= 0; 3 = cubic).
        grid_range: `(low, high)` of the initial uniform grid, or `"data"`: the
            grid starts as pykan's `(-1, 1)` and moves, on the layer's first
            training call, to that batch's range per feature (evenly spaced;
            see `keras_kan.coverage`). With a fixed range, a layer warns on
            its first training call when most of its inputs lie outside the
            grid, where only the base branch acts.
        base_activation: activation of the residual branch `b` (default SiLU).
        use_bias: add a bias vector (pykan has none; default False).
        noise_scale: scale of the random initial spline,
            `U(-1/2, 1/2) * noise_scale / G` at the grid points.
        scale_base_mu, scale_base_sigma: `w_b = (mu + sigma * U(-1, 1)) / sqrt(n)`.
        grid_eps: grid-update mix, 1 = uniform grid, 0 = sample quantiles.
        regularizer: a `KANRegularizer` (or its config) whose penalty is added
            with `add_loss` on training calls. Unlike `Dense`'s
            `kernel_regularizer` it is not a `keras.regularizers.Regularizer`:
            the paper's penalty depends on the edge scores on the batch, not on
            one weight (docs/design.md, "Conventions of the public API").
        bias_initializer: initializer of `bias`.
        seed: int for a reproducible initialization, identical on every
            backend and to pykan's: the layer draws its noise, then its base
            scales, from the MT19937 stream seeded with `seed` as 24-bit
            floats, which is what `torch.manual_seed(seed); torch.rand(...)`
            produces on the CPU. None draws a seed from NumPy's global
            generator, which `keras.utils.set_random_seed` seeds.
        seed_offset: draws of the seed's stream to skip first. `KAN` gives
            every layer the model's seed and the number of draws made by the
            layers before it, so a model draws from one stream, as pykan does.
        use_base: keep the base branch `w_b * b(x)` (default True). With False
            (pykan's `base_fun='zero'`) the layer is the spline part only:
            `base_kernel` still exists (same weights and file layout), but it is
            zero and never trained, and `b` is not evaluated.
        scales_trainable: train `spline_scale` and `base_kernel` (default
            True). False freezes both at their initial values (pykan's
            `sp_trainable=False, sb_trainable=False`), so only the spline
            coefficients (and `bias`) learn, as for continual learning.
        symbolic_functions: `[[i, j, name], ...]`, the edges that carry a
            symbolic function `c * f(a * x + b) + d` and its registered name
            (see `keras_kan.symbolic_edges`); usually set by
            `keras_kan.symbolic.fix_symbolic` / `auto_symbolic`.
        **kwargs: base `Layer` arguments (`name`, `dtype`, ...).

    Input shape:
        N-D tensor with shape `(batch_size, ..., input_dim)`; the most common
        situation is a 2D input with shape `(batch_size, input_dim)`.

    Output shape:
        N-D tensor with shape `(batch_size, ..., units)`.

    Weights (saved by these names): `grid (n, G+2k+1)` (non-trainable; float32
    under float16/bfloat16 policies),
    `spline_kernel (n, K, units)`, `base_kernel (n, units)`,
    `spline_scale (n, units)`, `edge_mask (n, units)` (non-trainable),
    `bias (units,)` when `use_bias`; `symbolic_mask (n, units)`
    (non-trainable), `symbolic_a`, `symbolic_b`, `symbolic_c`,
    `symbolic_d` `(n, units)` (trainable while some edge is symbolic).
    """

    def __init__(
        self,
        units,
        grid_size=5,
        spline_order=3,
        grid_range=(-1.0, 1.0),
        base_activation="silu",
        use_bias=False,
        noise_scale=0.3,
        scale_base_mu=0.0,
        scale_base_sigma=1.0,
        grid_eps=0.02,
        regularizer=None,
        bias_initializer="zeros",
        seed=None,
        seed_offset=0,
        symbolic_functions=None,
        use_base=True,
        scales_trainable=True,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.units = check_int("units", units, 1)
        self.grid_size = check_int("grid_size", grid_size, 1)
        self.spline_order = check_int("spline_order", spline_order, 0)
        self.grid_range = check_grid_range(grid_range, keywords=(coverage.DATA,))
        try:
            self.base_activation = keras.activations.get(base_activation)
        except (TypeError, ValueError):
            raise ValueError(
                "Received an invalid value for argument `base_activation`: expected the name "
                f"of a Keras activation or a callable, got {base_activation!r}."
            ) from None
        self.use_bias = check_bool("use_bias", use_bias)
        self.noise_scale = check_real("noise_scale", noise_scale, 0.0)
        self.scale_base_mu = check_real("scale_base_mu", scale_base_mu)
        self.scale_base_sigma = check_real("scale_base_sigma", scale_base_sigma, 0.0)
        self.grid_eps = check_real("grid_eps", grid_eps, 0.0, 1.0)
        self.regularizer = regularizers.get(regularizer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.seed = None if seed is None else check_int("seed", seed, 0)
        self.seed_offset = check_int("seed_offset", seed_offset, 0)
        self.use_base = check_bool("use_base", use_base)
        self.scales_trainable = check_bool("scales_trainable", scales_trainable)
        self.input_spec = keras.layers.InputSpec(min_ndim=2)
        self.supports_masking = True
        self._uniform_grid = None  # explicit state, see `uniform_grid`
        self._grid_token = None  # the grid's write token when `_uniform_grid` was set
        self._initial_weights = None  # set by `from_weights`: values to build with
        self._accepted_architectures = []  # see `accept_architecture`
        self._symbolic_spec = symbolic_edges.check_spec(symbolic_functions)
        # Grid coverage (keras_kan.coverage): measured once, on the first training call.
        self._coverage_checked = False
        self._data_grid_done = False
        self.outside_grid_fraction = None

    # ------------------------------------------------------------------ shapes
    @property
    def input_dim(self):
        """`n`, the size of the input's last axis (None before `build`)."""
        return int(self.grid.shape[0]) if self.built else None

    @property
    def num_basis(self):
        """`K = grid_size + spline_order`: spline basis functions per input."""
        return self.grid_size + self.spline_order

    @staticmethod
    def init_draws(in_features, units, grid_size):
        """How many random numbers a layer's initialization draws."""
        return (grid_size + 2) * in_features * units

    def build(self, input_shape):
        if len(input_shape) < 2:
            raise ValueError(
                f"Layer '{self.name}' expects inputs of rank >= 2 (batch, ..., features), "
                f"got an input of shape {tuple(input_shape)}."
            )
        if input_shape[-1] is None:
            raise ValueError(
                f"Layer '{self.name}' needs the last axis of its input to be defined, "
                f"got shape {tuple(input_shape)}."
            )
        n, m = int(input_shape[-1]), self.units
        values = self._initial_weights or self._initial_values(n)
        self._initial_weights = None

        def const(name):
            # C order whatever layout the values came in (`get_subset` slices them): on
            # PyTorch a variable keeps its initial value's strides, and a transposed
            # layout takes another matmul kernel (another rounding) than a fresh build's.
            value = np.ascontiguousarray(values[name])
            return lambda shape, dtype=None: ops.cast(value.reshape(shape), dtype)

        # Knots stay in at least float32: in half precision they would lose their even
        # spacing (the closed-form basis checks it) and the basis is computed in float32.
        grid_dtype = "float32" if self.variable_dtype in _HALF_DTYPES else None
        self.grid = self.add_weight(name="grid", shape=values["grid"].shape, dtype=grid_dtype,
                                    initializer=const("grid"), trainable=False, autocast=False)
        self.spline_kernel = self.add_weight(name="spline_kernel",
                                             shape=(n, self.num_basis, m),
                                             initializer=const("spline_kernel"))
        if not self.use_base:  # zero and frozen: the layer is its spline part
            values = dict(values, base_kernel=np.zeros((n, m)))
        self.base_kernel = self.add_weight(name="base_kernel", shape=(n, m),
                                           initializer=const("base_kernel"),
                                           trainable=self.use_base and self.scales_trainable)
        self.spline_scale = self.add_weight(name="spline_scale", shape=(n, m),
                                            initializer=const("spline_scale"),
                                            trainable=self.scales_trainable)
        self.edge_mask = self.add_weight(name="edge_mask", shape=(n, m),
                                         initializer=const("edge_mask"), trainable=False,
                                         autocast=False)
        self.bias = None
        if self.use_bias:
            initializer = const("bias") if "bias" in values else self.bias_initializer
            self.bias = self.add_weight(name="bias", shape=(m,), initializer=initializer)
        symbolic_edges.build(self, n, m, values)
        self.input_spec = keras.layers.InputSpec(min_ndim=2, axes={-1: n})
        self._adopt_grid(values["grid"])

    def _initial_values(self, n):
        """pykan 0.2.8's initialization for `n` inputs, as float64 NumPy arrays by name."""
        m, g, k = self.units, self.grid_size, self.spline_order
        grid_range = coverage.INITIAL_RANGE if self.grid_range == coverage.DATA else self.grid_range
        knots = splines.uniform_knots(grid_range, g, k, n_features=n)  # (n, L)
        seed = self.seed if self.seed is not None else np.random.randint(0, 2**31 - 1)
        noise, draws = torch_rand(seed, (g + 1, n, m), (n, m), offset=self.seed_offset)
        noise = (noise - 0.5) * self.noise_scale / g
        return {
            "grid": knots,
            "spline_kernel": splines.fit_coefficients(knots[:, k : k + g + 1].T, noise, knots, k),
            "base_kernel": (self.scale_base_mu + self.scale_base_sigma * (draws * 2 - 1))
            / math.sqrt(n),
            "spline_scale": np.full((n, m), 1 / math.sqrt(n)),
            "edge_mask": np.ones((n, m)),
        }

    @classmethod
    def from_weights(cls, config, weights):
        """A built layer made from `config` whose weights are `weights`.

        The weights' shapes decide the layer's input size; `config` must agree
        with them (`units`, `grid_size`, `spline_order`, `use_bias`). No random
        numbers are drawn.

        Args:
            config: a `get_config()` dict.
            weights: dict of arrays by weight name (`WEIGHT_NAMES`; `bias`
                only with `use_bias`).

        Returns:
            a built `KANDense`.
        """
        layer = cls.from_config(config)
        missing = [name for name in WEIGHT_NAMES[:-1] + (("bias",) if layer.use_bias else ())
                   if name not in weights]
        if missing:
            raise ValueError(f"KANDense.from_weights: no value for weight(s) {missing}.")
        values = {name: np.asarray(ops.convert_to_numpy(v), np.float64)
                  for name, v in weights.items()}
        n = values["grid"].shape[0]
        expected = layer._shapes(n)
        for name, shape in expected.items():
            if tuple(values[name].shape) != shape:
                raise ValueError(
                    f"KANDense.from_weights: weight '{name}' has shape "
                    f"{tuple(values[name].shape)}, but the config (units={layer.units}, "
                    f"grid_size={layer.grid_size}, spline_order={layer.spline_order}) and "
                    f"{n} inputs need {shape}."
                )
        layer._initial_weights = values
        layer.build((None, n))
        return layer

    def _shapes(self, n, units=None, grid_size=None):
        """The weight shapes of this layer for `n` inputs (and `units`, `grid_size`
        when given instead of the layer's own), by name (`loading.weight_shapes`)."""
        return loading.weight_shapes(n, grid_size or self.grid_size, units or self.units,
                                     self.spline_order, self.use_bias)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units,)

    # -------------------------------------------------------------- grid state
    @property
    def uniform_grid(self):
        """Whether the layer uses its closed-form (evenly spaced knots) basis.

        Explicit layer state (`None` before `build`): set when the layer writes
        its own grid (`build`, `update_grid`, `set_spline`, loading) and by
        `sync_grid`. keras_kan's model-level grid changes
        (`keras_kan.update_grids`, the `GridUpdate` callback, `refine`,
        `prune`) also rebuild compiled functions when it flips. After writing
        `grid` any other way (`set_weights`, `assign`), call
        `keras_kan.sync_grids(model)`. Until then eager calls notice the write
        and switch basis themselves, and a compiled function that assumed even
        knots does not compute on the wrong basis: on TensorFlow it raises an
        error naming this layer; on JAX (where raising inside a Keras step
        would lose the weights) and under XLA (which drops assertions) it
        returns NaN.
        """
        return self._uniform_grid

    def sync_grid(self):
        """Re-read `grid` and set `uniform_grid` from its values; returns it."""
        self._adopt_grid(ops.convert_to_numpy(self.grid))
        return self._uniform_grid

    def _adopt_grid(self, knots):
        """Set `uniform_grid` for the knots `(n, L)` just written into `grid`."""
        self._uniform_grid = self.spline_order > 0 and splines.is_uniform_numpy(knots)
        self._grid_token = kan_backend.value_token(self.grid)

    def _grid_unchanged(self):
        """Whether `grid` was not written since `uniform_grid` was set (False: unknown)."""
        token, seen = kan_backend.value_token(self.grid), self._grid_token
        return (token is not None and seen is not None and token[0] is seen[0]
                and token[1:] == seen[1:])

    def _basis_knots(self, x):
        """`(knots, uniform)` for a call on `x`.

        Traced code for the closed form gets knots behind a run-time check
        (see `uniform_grid`); eager code re-reads the grid if it was written.
        """
        if not self._uniform_grid:
            return self.grid, False
        # A constant input inside a traced function (JAX: the weights are tracers) is traced too.
        if kan_backend.is_traced(x) or kan_backend.is_traced(self.grid.value):
            message = (f"KANDense '{self.name}': its grid is no longer evenly spaced, but this "
                       "compiled function assumed it is. After writing grids yourself "
                       "(set_weights, assign), call keras_kan.sync_grids(model).")
            ok = splines.is_uniform(self.grid)
            return kan_backend.check_grid_uniform(self.grid, ok, message), True
        if self._grid_unchanged():
            return self.grid, True
        return self.grid, self.sync_grid()

    # ----------------------------------------------------------------- forward
    def edge_params(self, x=None, dtype=None):
        """This layer's edge parameters for `keras_kan.edges` (`keras.ops` form).

        Args:
            x: the input of the call, when the snapshot is for a call (picks the
                closed-form basis on even knots, see `uniform_grid`).
            dtype: the kernels' dtype (default the variables').
        """
        knots, uniform = self._basis_knots(x) if x is not None else (self.grid, False)
        return edges.params(self, edges.OPS, knots=knots, uniform=uniform, dtype=dtype)

    def features(self, x):
        """Per-input features `[B_0(x), ..., B_{K-1}(x), b(x)]`.

        Args:
            x: `(B, n)`.

        Returns:
            `(B, n, K+1)` in float32 when the compute dtype is a half type,
            else in `x`'s dtype.
        """
        x = self._basis_input(x)
        return edges.features(edges.OPS, x, self.edge_params(x))

    def effective_kernel(self):
        """`(n, K+1, units)`: rows `mask*w_s*c` then `mask*w_b`."""
        return edges.kernel(edges.OPS, self.edge_params())

    def _basis_input(self, x):
        """`x` in the dtype the basis is computed in (float32 under half precision)."""
        return ops.cast(x, "float32") if self.compute_dtype in _HALF_DTYPES else x

    def call(self, inputs, training=None):
        n, m = self.input_dim, self.units
        x = ops.reshape(inputs, (-1, n)) if len(inputs.shape) != 2 else inputs
        dtype = self.compute_dtype
        xf = self._basis_input(x)
        if training:  # a "data" grid adapts; a fixed one is checked once
            xf = coverage.training_call(self, xf)
        snapshot = self.edge_params(xf, dtype=self.variable_dtype)
        scored = training and self.regularizer is not None and self.regularizer.needs_scores
        if scored:  # the penalty needs the features themselves: built once, used twice
            feats = edges.features(edges.OPS, xf, snapshot)
            outputs = edges.numeric_output(edges.OPS, ops.cast(feats, dtype), snapshot)
        else:
            # basis(x) @ W_s + b(x) @ W_b: each backend computes it its fastest way under
            # Keras's default compile() (see keras_kan.backend.kan_product).
            outputs = kan_backend.kan_product(
                xf, snapshot.base_fn(xf), snapshot.knots, self.spline_order, snapshot.uniform,
                ops.cast(ops.reshape(snapshot.spline_kernel, (n * self.num_basis, m)), dtype),
                ops.cast(snapshot.base_kernel, dtype))
        symbolic = edges.symbolic_output(edges.OPS, xf, snapshot)
        if symbolic is not None:  # a numeric layer adds no op at all
            outputs = outputs + ops.cast(symbolic, dtype)
        if self.bias is not None:
            outputs = outputs + self.bias
        if training and self.regularizer is not None:
            scores = None
            if scored:
                scores = edges.edge_scores(edges.OPS, ops.cast(xf, self.variable_dtype),
                                           snapshot, feats=ops.cast(feats, self.variable_dtype))
            self.add_loss(self.regularizer(scores, ops.cast(self.spline_kernel,
                                                            self.variable_dtype)))
        if len(inputs.shape) != 2:
            outputs = ops.reshape(outputs, tuple(ops.shape(inputs)[:-1]) + (m,))
        return outputs

    # ---------------------------------------------------------------- analysis
    def edge_activations(self, inputs):
        """Every edge's output `phi_ij(x_i)` (analysis path; materializes it).

        Args:
            inputs: `(..., n)`; leading axes are flattened into the batch.

        Returns:
            `(batch, n, units)`, whose sum over axis 1 (plus `bias`) is the
            layer output.
        """
        x = ops.reshape(ops.convert_to_tensor(inputs, self.compute_dtype), (-1, self.input_dim))
        x = self._basis_input(x)
        return edges.edge_values(edges.OPS, x, self.edge_params(x, dtype=x.dtype))

    def edge_scores(self, inputs):
        """pykan's edge importance `std(phi_ij) / (std(x_i) + 0.1)`, shape `(n, units)`.

        Computed in float64 on the full edge values (numeric and symbolic
        parts), in chunks of samples whose moments merge exactly: the scores do
        not depend on how many samples are given at once (see `keras_kan.edges`).

        Args:
            inputs: `(..., n)` samples of this layer's input (at least 2).

        Returns:
            `(n, units)` tensor in the variable dtype.
        """
        x = np.reshape(np.asarray(ops.convert_to_numpy(inputs), np.float64), (-1, self.input_dim))
        scores = edges.edge_scores(edges.NUMPY, x, edges.params(self, edges.NUMPY))
        return ops.convert_to_tensor(scores, self.variable_dtype)

    # ------------------------------------------------------------------ grids
    def _host_samples(self, inputs, what="inputs"):
        """`(..., n)` samples -> validated `(N, n)` float64 NumPy array."""
        label = f"samples of the input of layer '{self.name}'"
        if not self.built:  # check first: bad samples must not build the layer
            data = check_samples(what, inputs, what=label)
            self.build((None, data.shape[-1]))
        return check_samples(what, inputs, self.input_dim, what=label)

    def spline(self):
        """`(knots (n, L), coefficients (n, K, units))` as float64 NumPy arrays."""
        return (np.asarray(ops.convert_to_numpy(self.grid), np.float64),
                np.asarray(ops.convert_to_numpy(self.spline_kernel), np.float64))

    def set_spline(self, knots, coefficients):
        """Write knots and coefficients together (same shapes), and the basis choice.

        Args:
            knots: `(n, G+2k+1)`, finite and strictly increasing along each row.
            coefficients: `(n, K, units)`, finite.

        Raises:
            ValueError: wrong shapes, non-finite values or knots that do not
                increase (nothing is changed).
        """
        knots = np.asarray(ops.convert_to_numpy(knots), np.float64)
        coefficients = np.asarray(ops.convert_to_numpy(coefficients), np.float64)
        for name, value, variable in (("knots", knots, self.grid),
                                      ("coefficients", coefficients, self.spline_kernel)):
            if tuple(value.shape) != tuple(variable.shape):
                raise ValueError(
                    f"Layer '{self.name}': `{name}` must have shape {tuple(variable.shape)}, "
                    f"got {tuple(value.shape)}."
                )
            if not np.all(np.isfinite(value)):
                raise ValueError(f"Layer '{self.name}': `{name}` contains NaN or inf.")
        if not np.all(np.diff(knots, axis=1) > 0):
            raise ValueError(f"Layer '{self.name}': `knots` must increase strictly along "
                             "each row.")
        self.grid.assign(knots.astype(self.grid.dtype))
        self.spline_kernel.assign(coefficients.astype(self.spline_kernel.dtype))
        self._adopt_grid(knots)

    def update_grid(self, inputs):
        """Move the knots to the data and refit the splines (pykan's
        `update_grid_from_samples`).

        Each feature's interior knots mix the samples' quantiles with a uniform
        grid over their range (`grid_eps`); the coefficients are refit by
        least squares so every edge's spline keeps its values on the samples as
        well as the new knots allow. The base branch is unaffected.

        Data-adapted knots are not evenly spaced, so the layer switches to its
        general basis (`uniform_grid`); a model that already compiled this
        layer must retrace, which `keras_kan.update_grids` (the model-level
        call, also used by the `GridUpdate` callback) arranges.

        Args:
            inputs: `(..., n)` samples of this layer's input.

        Raises:
            ValueError: non-finite or mis-shaped samples (nothing is changed).
        """
        x = self._host_samples(inputs)
        knots, coef = self.spline()
        k = self.spline_order
        old_width = knots[:, knots.shape[1] - k - 1] - knots[:, k]
        new_knots = splines.data_knots(x, self.grid_size, k, self.grid_eps,
                                       fallback_width=old_width)
        self.set_spline(new_knots, splines.refit_coefficients(x, knots, coef, new_knots, k))

    def refined_spline(self, grid_size, inputs=None):
        """Knots and coefficients of the same splines on a finer (or coarser) grid.

        Interior knots are interpolated to `grid_size` intervals over the same
        range; the coefficients are fit by least squares on `inputs` (or, when
        None, on dense samples of each feature's grid interval). When
        `grid_size` is a multiple of `self.grid_size` the old splines lie in
        the new space and the fit is exact up to rounding.

        Returns:
            `(knots (n, G'+2k+1), coefficients (n, G'+k, units))` float64 arrays.
        """
        grid_size = check_int("grid_size", grid_size, 1)
        knots, coef = self.spline()
        k = self.spline_order
        new_knots = splines.refined_knots(knots, k, grid_size)
        if inputs is None:
            count = max(256, 8 * (grid_size + k))
            lo, hi = knots[:, k], knots[:, knots.shape[1] - k - 1]
            x = lo + (hi - lo) * np.linspace(0.0, 1.0, count)[:, None]
        else:
            x = self._host_samples(inputs)
        return new_knots, splines.refit_coefficients(x, knots, coef, new_knots, k)

    def get_weights_by_name(self):
        """The layer's weights as NumPy copies in their own dtypes, by name (`WEIGHT_NAMES`)."""
        values = {name: np.asarray(ops.convert_to_numpy(getattr(self, name)))
                  for name in WEIGHT_NAMES if getattr(self, name, None) is not None}
        values.update(symbolic_edges.weights_by_name(self))
        return values

    def get_subset(self, in_ids, out_ids):
        """A new layer with only the edges `in_ids -> out_ids` (pykan's `get_subset`).

        Its output for inputs `x[..., in_ids]` equals this layer's output
        `[..., out_ids]` when the dropped inputs contribute nothing (their
        edges are masked or their values are 0 through every edge).

        Args:
            in_ids: indices of the inputs to keep, in order.
            out_ids: indices of the units to keep, in order.

        Returns:
            a built `KANDense` with `units=len(out_ids)`.
        """
        rows, cols = (self._check_ids(name, ids, size) for name, ids, size in
                      (("in_ids", in_ids, self.input_dim), ("out_ids", out_ids, self.units)))
        values = self.get_weights_by_name()
        values["grid"] = values["grid"][rows]
        for name in ("spline_kernel", "base_kernel", "spline_scale", "edge_mask",
                     *symbolic_edges.SYMBOLIC_WEIGHT_NAMES):
            values[name] = values[name][rows][..., cols]
        if "bias" in values:
            values["bias"] = values["bias"][cols]
        config = self.get_config()
        config["units"] = int(cols.size)
        config["symbolic_functions"] = symbolic_edges.subset_spec(self, rows, cols)
        return type(self).from_weights(config, values)

    def _check_ids(self, name, ids, size):
        index = np.asarray(ids)
        if index.ndim != 1 or index.size == 0 or not np.issubdtype(index.dtype, np.integer) or (
            index.min() < 0 or index.max() >= size or np.unique(index).size != index.size
        ):
            raise ValueError(
                f"Received an invalid value for argument `{name}`: expected distinct integer "
                f"indices in [0, {size}) for layer '{self.name}', got {ids!r}."
            )
        return index

    # ----------------------------------------------------------------- saving
    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "units": self.units,
                "grid_size": self.grid_size,
                "spline_order": self.spline_order,
                "grid_range": (self.grid_range if isinstance(self.grid_range, str)
                               else list(self.grid_range)),
                "base_activation": keras.activations.serialize(self.base_activation),
                "use_bias": self.use_bias,
                "noise_scale": self.noise_scale,
                "scale_base_mu": self.scale_base_mu,
                "scale_base_sigma": self.scale_base_sigma,
                "grid_eps": self.grid_eps,
                "regularizer": (None if self.regularizer is None
                                else keras.saving.serialize_keras_object(self.regularizer)),
                "bias_initializer": keras.initializers.serialize(self.bias_initializer),
                "seed": self.seed,
                "seed_offset": self.seed_offset,
                "symbolic_functions": symbolic_edges.config_value(self),
                "use_base": self.use_base,
                "scales_trainable": self.scales_trainable,
            }
        )
        return config

    def _named_variables(self):
        return {name: getattr(self, name) for name in WEIGHT_NAMES
                if getattr(self, name, None) is not None}

    def save_own_variables(self, store):
        """Store weights by name (not creation order), so shapes can change safely."""
        for name, variable in self._named_variables().items():
            store[name] = ops.convert_to_numpy(variable)
        symbolic_edges.save_variables(self, store)

    def accept_architecture(self, *, units=None, grid_size=None, input_dim=None):
        """Let the next loads take weights saved from this layer on another architecture.

        Loading is strict, as Keras's is: weights whose shapes differ from the
        layer's config are refused. Some changes of architecture are legitimate
        and known in advance: a KerasTuner trial builds its model from the
        hyperparameters, then `keras_kan.refine` (a grid schedule) or
        `keras_kan.prune` change it, and its checkpoint holds the changed
        model. Whoever records such a change (`keras_kan.tuner.HyperKAN` and
        `keras_kan.tuner.accept_recorded_architectures`) calls this on the
        freshly built layer; a load whose stored shapes are exactly those of an
        accepted architecture rebuilds the layer in it (so `get_config` and
        `input_spec` follow) and loads. Any other shape is still an error.

        Call it on a freshly built layer, before loading, as KerasTuner builds
        and loads. A model that already ran compiled functions needs
        `keras_kan.sync_grids` and a fresh `compile` after such a load.

        Args:
            units, grid_size, input_dim: the accepted architecture; `None`
                keeps the layer's own value.
        """
        architecture = (
            self.input_dim if input_dim is None else check_int("input_dim", input_dim, 1),
            self.grid_size if grid_size is None else check_int("grid_size", grid_size, 1),
            self.units if units is None else check_int("units", units, 1),
        )
        if None in architecture:
            raise ValueError(f"Layer '{self.name}': build the layer before "
                             "`accept_architecture` (its input size is not known yet).")
        if architecture not in self._accepted_architectures:
            self._accepted_architectures.append(architecture)

    def load_own_variables(self, store):
        """Load weights by name, strictly: each stored shape must be the layer's own.

        Weights saved from another `grid_size`, `units` or input size are
        refused with an error naming the layer, the weight and both shapes, and
        nothing is assigned (every weight is checked first): such weights belong
        to another model (build it from its own config, as
        `keras.saving.load_model` does; under KerasTuner, record and accept the
        changed architecture: the error says how, `keras_kan.loading`). The one
        exception is an architecture accepted beforehand with
        `accept_architecture` (a recorded change, such as a KerasTuner trial's
        refined or pruned final model).
        """
        keys = set(store.keys())
        missing = [name for name in self._named_variables() if name not in keys]
        if missing:
            raise ValueError(
                f"Layer '{self.name}': the saved weights have no {missing} "
                f"(found {sorted(keys)})."
            )
        if self._symbolic_spec and not keys & set(symbolic_edges.SYMBOLIC_WEIGHT_NAMES):
            raise ValueError(f"Layer '{self.name}': its config has symbolic edges but the "
                             f"saved weights have no {list(symbolic_edges.SYMBOLIC_WEIGHT_NAMES)}.")
        # Older files have no symbolic weights; where present they are `(n, units)`.
        variables = {**self._named_variables(),
                     **{name: getattr(self, name) for name in
                        symbolic_edges.SYMBOLIC_WEIGHT_NAMES if name in keys}}
        stored = {name: tuple(np.shape(store[name])) for name in variables}
        own = {name: tuple(variable.shape) for name, variable in variables.items()}
        accepted = self._accepted_architecture(stored) if stored != own else None
        if stored != own and accepted is None:
            paths = {name: getattr(v, "path", name) for name, v in variables.items()}
            raise ValueError(loading.refusal_message(self, stored, own, paths))
        self._check_stored_values(store, self._named_variables())
        if accepted is not None:
            self._adopt_stored_shapes(store, *accepted)
        for name, variable in self._named_variables().items():
            variable.assign(np.asarray(store[name]))
        symbolic_edges.load_variables(self, store)  # optional: older files have none
        self._adopt_grid(np.asarray(store["grid"]))

    def _accepted_architecture(self, stored):
        """The accepted `(n, G, m)` whose weight shapes are `stored`, or None."""
        found = loading.stored_architecture(stored, self.spline_order, self.use_bias)
        return found if found in self._accepted_architectures else None

    def _adopt_stored_shapes(self, store, n, grid_size, units):
        """Recreate the variables for `n` inputs, `grid_size` and `units`, holding `store`.

        Only for an architecture accepted with `accept_architecture`; the
        shapes were checked. The layer then takes `grid_size` and `units` (so
        `get_config` and `input_spec` follow).
        """
        self.units, self.grid_size = int(units), int(grid_size)
        for name in list(self._named_variables()) + list(symbolic_edges.SYMBOLIC_WEIGHT_NAMES):
            if getattr(self, name, None) is not None:
                self._drop_variable(name)
        # Rebuild with the stored values as initial values (no random draws).
        # As Keras's own layers do to add state after `build` (Dense.quantize):
        # unlock the tracker; `build` locks it again.
        self._initial_weights = {name: np.asarray(store[name]) for name in self._shapes(n)}
        self._tracker.unlock()
        self.build((None, int(n)))

    def _drop_variable(self, name):
        """Untrack and delete the variable `name`: Keras's `Layer.__delattr__` without its
        `gc.collect()`, which costs ~0.4 s per call in a TensorFlow process (a reload
        deletes about a dozen variables per layer); reference counting frees the buffer."""
        self._untrack_variable(getattr(self, name))
        super(keras.layers.Layer, self).__delattr__(name)

    def _check_stored_values(self, store, variables):
        """Refuse stored weights with NaN/inf, or knots that do not increase (damaged file)."""
        for name in variables:
            value = np.asarray(store[name])
            if not np.all(np.isfinite(value)):
                raise ValueError(
                    f"Layer '{self.name}': saved weight '{name}' contains "
                    f"{int(np.sum(~np.isfinite(value)))} non-finite value(s) (NaN or inf); "
                    "the file is damaged or was saved from a diverged model."
                )
        grid = np.asarray(store["grid"])
        if grid.ndim == 2 and not np.all(np.diff(grid, axis=1) > 0):
            raise ValueError(f"Layer '{self.name}': saved weight 'grid' does not increase "
                             "strictly along each row; the file is damaged.")
