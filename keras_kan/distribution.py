"""Sharding KANs with `keras.distribution` (JAX): a `LayoutMap` for `ModelParallel`.

A KAN layer's weights grow as `in x out x (G + k)`: with `in = out = 1024`
and a grid of `G = 20`, one `KANDense` holds 24.1M spline coefficients (96 MB
in float32) against the 1M kernel entries of a `Dense` of the same width.
Model parallelism splits every per-edge weight along the output-units axis,
so each device holds `1 / model_devices` of them and computes its slice of
the layer's units; the batch axis of the mesh still splits the data.

```python
devices = keras.distribution.list_devices()
mesh = keras.distribution.DeviceMesh((2, 4), ("batch", "model"), devices)
layouts = keras_kan.distribution.layout_map(mesh, layers=["kan_dense_0"])
distribution = keras.distribution.ModelParallel(layout_map=layouts,
                                                batch_dim_name="batch")
with distribution.scope():
    model = keras_kan.KAN([64, 256, 1], seed=0)
    model.compile(optimizer="adam", loss="mse")
    model.fit(x, y, batch_size=256)
```

`keras.distribution` runs on the JAX backend. On TensorFlow use
`tf.distribute` strategies (no keras_kan code is needed, see the README's
"Scale out" section).
"""

import re

import keras

__all__ = ["layout_map", "SHARDED_WEIGHTS"]

#: The per-edge `KANDense` weights that `layout_map` shards along the units
#: axis (the last axis of each), with their ranks.
SHARDED_WEIGHTS = {"spline_kernel": 3, "base_kernel": 2, "spline_scale": 2, "edge_mask": 2,
                   "symbolic_mask": 2, "symbolic_a": 2, "symbolic_b": 2, "symbolic_c": 2,
                   "symbolic_d": 2}


def layout_map(device_mesh, model_axis="model", layers=None):
    """A `keras.distribution.LayoutMap` that shards `KANDense` weights by output unit.

    For every matched `KANDense`, `spline_kernel (n, K, units)`,
    `base_kernel (n, units)`, `spline_scale (n, units)` and
    `edge_mask (n, units)` and the symbolic-edge weights `symbolic_mask`,
    `symbolic_a..d (n, units)` are split along their last (units) axis over the
    mesh axis `model_axis`; `grid (n, G+2k+1)` is replicated (every unit's
    edges read every input's knots). `bias (units,)` is left to the
    distribution's default, which replicates it: it is `units` numbers, a
    replicated bias added to a units-sharded output is sliced locally
    without communication, and a `bias` key would also capture the biases of
    every other layer of a mixed model.

    JAX needs the units of a sharded layer to be divisible by the size of the
    mesh's `model_axis` (it raises `IndivisibleError` when the layer is
    built). A KAN's narrow output layer (`units=1`) usually is not: name the
    wide layers in `layers` and the others stay replicated.

    Pass the result to `keras.distribution.ModelParallel(layout_map=...)` and
    create the model under that distribution (its `scope()` or
    `keras.distribution.set_distribution`): layouts are applied when the
    variables are created. Weights written later (`update_grids`, the
    `GridUpdate` callback, `fit_lbfgs`, `set_weights`, loading a `.keras`
    file) keep them, and `refine`/`prune` called under the distribution build
    their new model with them.

    Args:
        device_mesh: a `keras.distribution.DeviceMesh` that has an axis named
            `model_axis`.
        model_axis: name of the mesh axis that splits the units.
        layers: `None` (default) to shard every `KANDense`, or the names of the
            `KANDense` layers to shard (e.g. `["kan_dense_0"]` for the hidden
            layer of `KAN([n, h, 1])`). Matched against the last parts of the
            variable paths, so a layer nested in a sub-model matches too.

    Returns:
        a `keras.distribution.LayoutMap` on `device_mesh`.

    Example:

    ```python
    >>> mesh = keras.distribution.DeviceMesh((1, 4), ("batch", "model"),
    ...                                      keras.distribution.list_devices())
    >>> layouts = keras_kan.distribution.layout_map(mesh, layers=["kan_dense_0"])
    >>> layouts["kan/kan_dense_0/spline_kernel"].axes
    (None, None, 'model')
    ```
    """
    if not isinstance(device_mesh, keras.distribution.DeviceMesh):
        raise ValueError(
            "Received an invalid value for argument `device_mesh`: expected a "
            f"keras.distribution.DeviceMesh, got {device_mesh!r}."
        )
    if not isinstance(model_axis, str) or model_axis not in device_mesh.axis_names:
        raise ValueError(
            "Received an invalid value for argument `model_axis`: expected the name of an "
            f"axis of the device mesh {list(device_mesh.axis_names)}, got {model_axis!r}."
        )
    if layers is None:
        layer_pattern = r"[^/]+"
    else:
        if isinstance(layers, str) or not all(isinstance(n, str) and n for n in layers):
            raise ValueError(
                "Received an invalid value for argument `layers`: expected None or a list "
                f"of KANDense layer names, got {layers!r}."
            )
        names = list(layers)
        if not names:
            raise ValueError(
                "Received an invalid value for argument `layers`: expected None or a "
                "non-empty list of KANDense layer names, got an empty list."
            )
        layer_pattern = "(?:" + "|".join(re.escape(n) for n in names) + ")"
    layouts = keras.distribution.LayoutMap(device_mesh)
    for name, rank in SHARDED_WEIGHTS.items():
        layouts[rf"(?:.*/)?{layer_pattern}/{name}"] = (None,) * (rank - 1) + (model_axis,)
    # A one-axis spec replicates an array of any rank (unnamed trailing axes are
    # not split), so this key is safe for a `grid` variable of another layer.
    layouts[rf"(?:.*/)?{layer_pattern}/grid"] = (None,)
    return layouts
