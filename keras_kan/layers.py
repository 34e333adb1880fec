"""``KANDense``: a Kolmogorov–Arnold layer with the interface of ``keras.layers.Dense``."""

import math

import keras
import numpy as np
from keras import ops

from keras_kan import backend as kan_backend
from keras_kan import splines
from keras_kan.regularizers import KANRegularizer, edge_scores
from keras_kan.rng import torch_rand

__all__ = ["KANDense"]

_HALF_DTYPES = ("float16", "bfloat16")
_WEIGHT_NAMES = ("grid", "spline_kernel", "base_kernel", "spline_scale", "edge_mask", "bias")


def _check_int(name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(
            f"Received an invalid value for argument `{name}`: expected an integer "
            f">= {minimum}, got {value!r}."
        )
    return int(value)


def _check_real(name, value, minimum=None):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or not (
        math.isfinite(float(value))
    ):
        raise ValueError(
            f"Received an invalid value for argument `{name}`: expected a finite number, "
            f"got {value!r}."
        )
    if minimum is not None and value < minimum:
        raise ValueError(
            f"Received an invalid value for argument `{name}`: expected a number "
            f">= {minimum}, got {value!r}."
        )
    return float(value)


def _check_grid_range(grid_range):
    try:
        low, high = (float(v) for v in grid_range)
    except (TypeError, ValueError):
        raise ValueError(
            "Received an invalid value for argument `grid_range`: expected a pair "
            f"(low, high) of finite numbers, got {grid_range!r}."
        ) from None
    if not (math.isfinite(low) and math.isfinite(high)) or low >= high:
        raise ValueError(
            "Received an invalid value for argument `grid_range`: expected finite "
            f"low < high, got {grid_range!r}."
        )
    return (low, high)


@keras.saving.register_keras_serializable(package="keras_kan")
class KANDense(keras.layers.Layer):
    """Kolmogorov–Arnold layer: a learnable B-spline on every input-output edge.

    ``y_j = sum_i phi_ij(x_i)`` with
    ``phi_ij(x) = mask_ij * (w_b[i,j] * b(x) + w_s[i,j] * sum_p c[i,p,j] B_p(x))``
    (pykan 0.2.x semantics). Acts on the last axis like ``Dense``: input
    ``(..., n)``, output ``(..., units)``. Outside the extended knots every
    spline basis is 0, so only the base branch ``w_b * b(x)`` acts there.

    The forward pass builds per-input features ``F = [B(x), b(x)]`` of shape
    ``(batch, n, K+1)`` (``K = grid_size + spline_order``) and multiplies them
    once by an effective kernel ``(n*(K+1), units)``; no ``(batch, n, units)``
    tensor is formed.

    Args:
        units: output size (positive int).
        grid_size: ``G``, grid intervals inside ``grid_range`` (>= 1).
        spline_order: ``k``, the spline degree (>= 0; 3 = cubic).
        grid_range: ``(low, high)`` of the initial uniform grid.
        base_activation: activation of the residual branch ``b`` (default SiLU).
        use_bias: add a bias vector (pykan has none; default False).
        noise_scale: scale of the random initial spline, ``U(-1/2, 1/2) *
            noise_scale / G`` at the grid points.
        scale_base_mu, scale_base_sigma: ``w_b = (mu + sigma * U(-1, 1)) / sqrt(n)``.
        grid_eps: grid-update mix, 1 = uniform grid, 0 = sample quantiles.
        regularizer: a :class:`KANRegularizer` (or its config) whose penalty is
            added with ``add_loss`` on training calls.
        bias_initializer: initializer of ``bias``.
        seed: int for a reproducible initialization, identical on every
            backend and to pykan's: the layer draws its noise, then its base
            scales, from the MT19937 stream seeded with ``seed`` as 24-bit
            floats, which is what ``torch.manual_seed(seed); torch.rand(...)``
            produces on the CPU. None draws a seed from NumPy's global
            generator, which ``keras.utils.set_random_seed`` seeds.
        seed_offset: draws of the seed's stream to skip first. ``KAN`` gives
            every layer the model's seed and the number of draws made by the
            layers before it, so a model draws from one stream, as pykan does.
        **kwargs: base ``Layer`` arguments (``name``, ``dtype``, ...).

    Weights: ``grid (n, G+2k+1)`` (non-trainable), ``spline_kernel (n, K, units)``,
    ``base_kernel (n, units)``, ``spline_scale (n, units)``, ``edge_mask
    (n, units)`` (non-trainable), ``bias (units,)`` when ``use_bias``.
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
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.units = _check_int("units", units, 1)
        self.grid_size = _check_int("grid_size", grid_size, 1)
        self.spline_order = _check_int("spline_order", spline_order, 0)
        self.grid_range = _check_grid_range(grid_range)
        self.base_activation = keras.activations.get(base_activation)
        self.use_bias = bool(use_bias)
        self.noise_scale = _check_real("noise_scale", noise_scale, 0.0)
        self.scale_base_mu = _check_real("scale_base_mu", scale_base_mu)
        self.scale_base_sigma = _check_real("scale_base_sigma", scale_base_sigma, 0.0)
        self.grid_eps = _check_real("grid_eps", grid_eps, 0.0)
        if self.grid_eps > 1:
            raise ValueError(
                "Received an invalid value for argument `grid_eps`: expected a number "
                f"in [0, 1], got {grid_eps!r}."
            )
        if isinstance(regularizer, dict):
            regularizer = keras.saving.deserialize_keras_object(regularizer)
        if regularizer is not None and not isinstance(regularizer, KANRegularizer):
            raise ValueError(
                "Received an invalid value for argument `regularizer`: expected a "
                f"keras_kan.KANRegularizer or None, got {regularizer!r}."
            )
        self.regularizer = regularizer
        self.bias_initializer = keras.initializers.get(bias_initializer)
        if seed is not None:
            seed = _check_int("seed", seed, 0)
        self.seed = seed
        self.seed_offset = _check_int("seed_offset", seed_offset, 0)
        self.input_spec = keras.layers.InputSpec(min_ndim=2)
        self.supports_masking = True
        self._uniform_grid = None  # known once built; see `uniform_grid`
        self._grid_token = None  # `grid`'s write token when `_uniform_grid` was set

    @property
    def uniform_grid(self):
        """Whether every feature's knots are evenly spaced (``None`` before ``build``).

        The layer then computes its basis in closed form (cardinal B-splines);
        otherwise from local de Boor values (see
        :func:`keras_kan.backend.spline_basis`). The flag is re-read from the
        grid when the layer writes it (:meth:`update_grid`, loading), when a
        call is traced, and in eager calls after any write to ``grid`` (a
        write counter, not a host read, on PyTorch and JAX). keras_kan's
        model-level grid changes (:func:`keras_kan.update_grids`, the
        ``GridUpdate`` callback, :func:`keras_kan.refine`,
        :func:`keras_kan.prune`, loading) also rebuild compiled functions when
        it flips. After writing ``grid`` any other way (``set_weights``,
        ``assign``, or this layer's own :meth:`update_grid` on a model that
        already ran compiled), call :func:`keras_kan.sync_grids` on the
        model (as Keras asks for ``make_train_function(force=True)`` after a
        change of ``trainable``); until then a compiled step that assumed an
        even grid returns NaN, not wrong numbers.
        """
        return self._uniform_grid

    def sync_grid(self):
        """Re-read ``grid`` and update :attr:`uniform_grid`; returns it."""
        value = kan_backend.concrete_value(self.grid)
        if value is not None:
            self._uniform_grid = self.spline_order > 0 and splines.is_uniform_numpy(value)
            self._grid_token = kan_backend.value_token(self.grid)
        return self._uniform_grid

    def _current_grid_kind(self, x):
        """:attr:`uniform_grid` for a call on ``x``, re-read only when it may be stale.

        Eager: re-read when the grid was written since the last read (PyTorch
        version counter, JAX array identity; TensorFlow cannot tell, so every
        eager call re-reads its small grid). Traced: re-read once per trace.
        """
        if kan_backend.is_traced(x):
            return self.sync_grid()
        if not kan_backend.same_value_token(kan_backend.value_token(self.grid),
                                            self._grid_token):
            return self.sync_grid()
        return self._uniform_grid

    # ------------------------------------------------------------------ shapes
    @property
    def num_basis(self):
        """``K = grid_size + spline_order``: spline basis functions per input."""
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
        in_features = input_shape[-1]
        if in_features is None:
            raise ValueError(
                f"Layer '{self.name}' needs the last axis of its input to be defined, "
                f"got shape {tuple(input_shape)}."
            )
        n, m, g, k = int(in_features), self.units, self.grid_size, self.spline_order
        knots = splines.uniform_knots(self.grid_range, g, k, n_features=n)  # (n, L)
        seed = self.seed if self.seed is not None else np.random.randint(0, 2**31 - 1)
        noise, draws = torch_rand(seed, (g + 1, n, m), (n, m), offset=self.seed_offset)
        noise = (noise - 0.5) * self.noise_scale / g
        coef = splines.fit_coefficients(knots[:, k : k + g + 1].T, noise, knots, k)
        base = (self.scale_base_mu + self.scale_base_sigma * (draws * 2 - 1)) / math.sqrt(n)

        def const(value):
            return lambda shape, dtype=None: ops.cast(np.asarray(value).reshape(shape), dtype)

        self.grid = self.add_weight(
            name="grid", shape=knots.shape, initializer=const(knots), trainable=False,
            autocast=False,
        )
        self.spline_kernel = self.add_weight(
            name="spline_kernel", shape=(n, self.num_basis, m), initializer=const(coef)
        )
        self.base_kernel = self.add_weight(name="base_kernel", shape=(n, m),
                                           initializer=const(base))
        self.spline_scale = self.add_weight(
            name="spline_scale", shape=(n, m), initializer=const(np.full((n, m), 1 / math.sqrt(n)))
        )
        self.edge_mask = self.add_weight(
            name="edge_mask", shape=(n, m), initializer="ones", trainable=False, autocast=False
        )
        self._uniform_grid = k > 0  # uniform_knots(...) is evenly spaced
        if self.use_bias:
            self.bias = self.add_weight(name="bias", shape=(m,),
                                        initializer=self.bias_initializer)
        else:
            self.bias = None
        self.input_spec = keras.layers.InputSpec(min_ndim=2, axes={-1: n})

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units,)

    # ----------------------------------------------------------------- forward
    def features(self, x):
        """Per-input features ``[B_0(x), ..., B_{K-1}(x), b(x)]``.

        Args:
            x: ``(B, n)``.

        Returns:
            ``(B, n, K+1)`` in float32 when the compute dtype is a half type,
            else in ``x``'s dtype.
        """
        if self.compute_dtype in _HALF_DTYPES:
            x = ops.cast(x, "float32")
        uniform = self._current_grid_kind(x)  # a bool once built
        if uniform and kan_backend.is_traced(x):
            # The closed form is baked into this compiled function. Should the
            # grid be written behind the layer's back before it runs again (see
            # `uniform_grid`), fail loudly (NaN) rather than return wrong
            # numbers; a few ops on (n, L), no host round trip.
            ok = splines.is_uniform(self.grid)
            x = x + ops.where(ok, 0.0, float("nan"))
        basis = kan_backend.spline_basis(x, self.grid, self.spline_order, uniform)
        base = ops.expand_dims(self.base_activation(x), -1)  # (B, n, 1)
        return ops.concatenate([basis, base], axis=-1)

    def effective_kernel(self):
        """``(n, K+1, units)``: rows ``mask*w_s*c`` then ``mask*w_b``."""
        mask = ops.cast(self.edge_mask, self.spline_kernel.dtype)
        spline = self.spline_kernel * ops.expand_dims(mask * self.spline_scale, 1)
        base = ops.expand_dims(mask * self.base_kernel, 1)
        return ops.concatenate([spline, base], axis=1)

    def call(self, inputs, training=None):
        n, m = self.grid.shape[0], self.units
        x = ops.reshape(inputs, (-1, n)) if len(inputs.shape) != 2 else inputs
        feats = self.features(x)  # (B, n, K+1)
        kernel = self.effective_kernel()  # (n, K+1, m)
        width = n * (self.num_basis + 1)
        flat = ops.reshape(ops.cast(feats, self.compute_dtype), (-1, width))
        outputs = ops.matmul(flat, ops.reshape(ops.cast(kernel, self.compute_dtype), (width, m)))
        if self.bias is not None:
            outputs = outputs + self.bias
        if training and self.regularizer is not None:
            self.add_loss(self._penalty(x, feats, kernel))
        if len(inputs.shape) != 2:
            outputs = ops.reshape(outputs, tuple(ops.shape(inputs)[:-1]) + (m,))
        return outputs

    def _penalty(self, x, feats, kernel):
        dtype = self.variable_dtype
        scores = None
        if self.regularizer.needs_scores:
            scores = edge_scores(ops.cast(feats, dtype), ops.cast(kernel, dtype),
                                 ops.cast(x, dtype))
        return self.regularizer(scores, ops.cast(self.spline_kernel, dtype))

    # ---------------------------------------------------------------- analysis
    def edge_activations(self, inputs):
        """Every edge's output ``phi_ij(x_i)`` (analysis path; materializes it).

        Args:
            inputs: ``(..., n)``; leading axes are flattened into the batch.

        Returns:
            ``(batch, n, units)``, whose sum over axis 1 (plus ``bias``) is the
            layer output.
        """
        x = ops.reshape(ops.convert_to_tensor(inputs, self.compute_dtype),
                        (-1, self.grid.shape[0]))
        feats = self.features(x)
        return ops.einsum("bnp,npm->bnm", feats, ops.cast(self.effective_kernel(), feats.dtype))

    def edge_scores(self, inputs):
        """pykan's edge importance ``std(phi_ij) / (std(x_i) + 0.1)``, shape ``(n, units)``.

        Args:
            inputs: ``(..., n)`` samples of this layer's input (at least 2).
        """
        x = ops.reshape(ops.convert_to_tensor(inputs, self.variable_dtype),
                        (-1, self.grid.shape[0]))
        feats = ops.cast(self.features(x), self.variable_dtype)
        return edge_scores(feats, self.effective_kernel(), x)

    # ------------------------------------------------------------------ grids
    def _host_samples(self, inputs, what="inputs"):
        """``(..., n)`` samples -> validated ``(N, n)`` float64 NumPy array."""
        if not self.built:
            self.build(tuple(np.shape(inputs)))
        n = self.grid.shape[0]
        x = np.asarray(ops.convert_to_numpy(inputs), dtype=np.float64)
        if x.ndim < 2 or x.shape[-1] != n or x.size == 0:
            raise ValueError(
                f"Layer '{self.name}': `{what}` must have shape (batch, ..., {n}) with at "
                f"least one sample, got shape {x.shape}."
            )
        x = x.reshape(-1, n)
        if not np.all(np.isfinite(x)):
            bad = int(np.sum(~np.isfinite(x)))
            raise ValueError(
                f"Layer '{self.name}': `{what}` contains {bad} non-finite value(s) "
                "(NaN or inf); the grid was left unchanged."
            )
        return x

    def _knots_and_coefficients(self):
        return (np.asarray(ops.convert_to_numpy(self.grid), np.float64),
                np.asarray(ops.convert_to_numpy(self.spline_kernel), np.float64))

    def update_grid(self, inputs):
        """Move the knots to the data and refit the splines (pykan's
        ``update_grid_from_samples``).

        Each feature's interior knots mix the samples' quantiles with a uniform
        grid over their range (``grid_eps``); the coefficients are refit by
        least squares so every edge's spline keeps its values on the samples as
        well as the new knots allow. The base branch is unaffected.

        Data-adapted knots are not evenly spaced, so the layer switches to its
        general basis (:attr:`uniform_grid`); a model that already compiled
        this layer must retrace, which :func:`keras_kan.update_grids` (the
        model-level call, also used by the ``GridUpdate`` callback) arranges.

        Args:
            inputs: ``(..., n)`` samples of this layer's input.

        Raises:
            ValueError: non-finite or mis-shaped samples (nothing is changed).
        """
        x = self._host_samples(inputs)
        knots, coef = self._knots_and_coefficients()
        k = self.spline_order
        old_width = knots[:, knots.shape[1] - k - 1] - knots[:, k]
        new_knots = splines.data_knots(x, self.grid_size, k, self.grid_eps,
                                       fallback_width=old_width)
        new_coef = splines.refit_coefficients(x, knots, coef, new_knots, k)
        self.grid.assign(new_knots.astype(self.grid.dtype))
        self.spline_kernel.assign(new_coef.astype(self.spline_kernel.dtype))
        self.sync_grid()

    def refined_spline(self, grid_size, inputs=None):
        """Knots and coefficients of the same splines on a finer (or coarser) grid.

        Interior knots are interpolated to ``grid_size`` intervals over the same
        range; the coefficients are fit by least squares on ``inputs`` (or, when
        None, on dense samples of each feature's grid interval). When
        ``grid_size`` is a multiple of ``self.grid_size`` the old splines lie in
        the new space and the fit is exact up to rounding.

        Returns:
            ``(knots (n, G'+2k+1), coefficients (n, G'+k, units))`` float64 arrays.
        """
        grid_size = _check_int("grid_size", grid_size, 1)
        knots, coef = self._knots_and_coefficients()
        k = self.spline_order
        new_knots = splines.refined_knots(knots, k, grid_size)
        if inputs is None:
            count = max(256, 8 * (grid_size + k))
            lo, hi = knots[:, k], knots[:, knots.shape[1] - k - 1]
            x = lo + (hi - lo) * np.linspace(0.0, 1.0, count)[:, None]
        else:
            x = self._host_samples(inputs)
        return new_knots, splines.refit_coefficients(x, knots, coef, new_knots, k)

    # ----------------------------------------------------------------- saving
    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "units": self.units,
                "grid_size": self.grid_size,
                "spline_order": self.spline_order,
                "grid_range": list(self.grid_range),
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
            }
        )
        return config

    def _named_variables(self):
        return {name: getattr(self, name) for name in _WEIGHT_NAMES
                if getattr(self, name, None) is not None}

    def save_own_variables(self, store):
        """Store weights by name (not creation order), so shapes can change safely."""
        for name, variable in self._named_variables().items():
            store[name] = ops.convert_to_numpy(variable)

    def load_own_variables(self, store):
        """Load weights by name; adopt a stored grid size or width that differs.

        Weights saved after :func:`keras_kan.refine` (another ``grid_size``) or
        :func:`keras_kan.prune` (fewer ``units``, or fewer inputs after a
        pruned layer) load into a layer built from the original config: the
        layer takes the stored shapes and recreates its variables (see
        :meth:`_adopt_stored_shapes`). This is how KerasTuner's weight
        checkpoints of a refined or pruned trial reload into the model built
        from the trial's hyperparameters. Load into a freshly built model, as
        KerasTuner and ``keras.saving.load_model`` do; a model that already
        ran compiled functions needs :func:`keras_kan.sync_grids` after such
        a load, and a fresh ``compile`` before training again.
        """
        keys = set(store.keys())
        missing = [name for name in self._named_variables() if name not in keys]
        if missing:
            raise ValueError(
                f"Layer '{self.name}': the saved weights have no {missing} "
                f"(found {sorted(keys)})."
            )
        self._adopt_stored_shapes(store)
        for name, variable in self._named_variables().items():
            value = np.asarray(store[name])
            if tuple(value.shape) != tuple(variable.shape):
                raise ValueError(
                    f"Layer '{self.name}': saved weight '{name}' has shape "
                    f"{tuple(value.shape)} but the layer expects {tuple(variable.shape)}, "
                    "and the saved weights are not those of this layer on another "
                    f"grid_size or width (spline_order={self.spline_order}, "
                    f"use_bias={self.use_bias}). Build the layer with the saved config "
                    "first."
                )
            variable.assign(value)
        self.sync_grid()

    def _adopt_stored_shapes(self, store):
        """Recreate the variables in the shapes of ``store`` when they differ.

        Only a consistent set is adopted: ``grid (n, G+2k+1)``, ``spline_kernel
        (n, G+k, m)``, ``(n, m)`` kernels and mask, ``bias (m,)``, for this
        layer's ``spline_order`` k and some ``G >= 1``, ``n, m >= 1``. The
        layer then takes ``grid_size=G``, ``units=m`` and ``n`` inputs (so
        ``get_config`` and ``input_spec`` follow). Anything else is left to
        the shape check of :meth:`load_own_variables`.
        """
        if not self.built:
            return
        shapes = {name: tuple(np.shape(store[name])) for name in self._named_variables()}
        grid, kernel = shapes["grid"], shapes["spline_kernel"]
        if len(grid) != 2 or len(kernel) != 3:
            return
        n, g, m = grid[0], grid[1] - 2 * self.spline_order - 1, kernel[2]
        expected = {"grid": (n, g + 2 * self.spline_order + 1),
                    "spline_kernel": (n, g + self.spline_order, m),
                    "base_kernel": (n, m), "spline_scale": (n, m), "edge_mask": (n, m),
                    "bias": (m,)}
        if min(n, g, m) < 1 or any(shapes[name] != expected[name] for name in shapes):
            return
        if (n, g, m) == (self.grid.shape[0], self.grid_size, self.units):
            return
        for name in list(self._named_variables()):
            delattr(self, name)  # untracks the variable (keras Layer.__delattr__)
        self.units, self.grid_size = int(m), int(g)
        # As keras' own layers do to add state after `build` (Dense.quantize):
        # unlock the tracker; `build` locks it again. Its initial values are
        # overwritten by the caller, so keep NumPy's global random state.
        random_state = np.random.get_state()
        self._tracker.unlock()
        try:
            self.build((None, int(n)))
        finally:
            np.random.set_state(random_state)
