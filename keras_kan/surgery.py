"""Model -> model transforms: grid extension (``refine``) and pruning (``prune``).

Both return a new model built from the old one's config (so the new grid size
or widths are in ``get_config`` and survive ``.keras`` saving), with the weights
copied over. A compiled input model yields a model compiled the same way with
a fresh optimizer: the optimizer state (Adam moments, step count) is tied to
the old variable shapes and is deliberately not carried over.
"""

import keras
import numpy as np
from keras import ops

from keras_kan import backend as kan_backend
from keras_kan.layers import KANDense

__all__ = [
    "refine",
    "prune",
    "update_grids",
    "sync_grids",
    "pruning_plan",
    "apply_pruning_masks",
    "kan_layer_inputs",
]


def _kan_layers(model, required=True):
    layers = [layer for layer in model.layers if isinstance(layer, KANDense)]
    if required and not layers:
        raise ValueError(f"Model '{model.name}' has no KANDense layer.")
    return layers


def _feeds(model, first, second):
    """Whether ``second`` takes ``first``'s output directly as its only input."""
    if isinstance(model, keras.Sequential):
        layers = list(model.layers)
        return layers.index(second) == layers.index(first) + 1
    return second.input is first.output


def kan_layer_inputs(model, x):
    """The activations that reach every ``KANDense`` of ``model`` for inputs ``x``.

    Returns:
        list of ``(N, n_l)`` NumPy arrays, one per KANDense in ``model.layers`` order.
    """
    layers = _kan_layers(model)
    probe = keras.Model(model.inputs, [layer.input for layer in layers])
    outs = probe(ops.convert_to_tensor(x, dtype=keras.config.floatx()), training=False)
    if not isinstance(outs, (list, tuple)):
        outs = [outs]
    return [np.asarray(ops.convert_to_numpy(o), np.float64).reshape(-1, o.shape[-1])
            for o in outs]


def _compile_like(new, old):
    if getattr(old, "compiled", False):
        config = old.get_compile_config()
        if config is not None:
            new.compile_from_config(config)  # a fresh optimizer with the same settings
    return new


def _copy_plain_weights(src, dst):
    if src.weights:
        dst.set_weights(src.get_weights())


def update_grids(model, x):
    """Update every KANDense grid to the data, in place, first layer first.

    Layer ``l`` is updated on the activations that reach it *after* layers
    ``< l`` were updated (as pykan does), see :meth:`KANDense.update_grid`.

    Args:
        model: a model containing KANDense layers.
        x: ``(N, n_in)`` samples of the model input.
    """
    layers = _kan_layers(model)
    x = np.asarray(ops.convert_to_numpy(x))
    if not np.all(np.isfinite(x)):
        raise ValueError("update_grids: `x` contains non-finite values (NaN or inf); "
                         "no grid was changed.")
    before = [layer.uniform_grid for layer in layers]
    for index, layer in enumerate(layers):
        layer.update_grid(kan_layer_inputs(model, x)[index])
    sync_grids(model, before)


def sync_grids(model, before=None):
    """Re-read every KANDense grid of ``model`` after its weights were written.

    Call it after writing grids yourself (``set_weights``, ``assign``): the
    model's compiled train/test/predict functions are rebuilt on next use.

    Args:
        model: a Keras model (one without KANDense layers is left alone).
        before: the layers' ``uniform_grid`` values before a change made by
            keras_kan itself; compiled functions are then rebuilt only if a
            layer's basis choice (:attr:`KANDense.uniform_grid`) flipped.
            ``None`` (a write keras_kan did not see): always rebuilt.
    """
    layers = _kan_layers(model, required=False)
    after = [layer.sync_grid() for layer in layers]
    if layers and (before is None or list(before) != after):
        kan_backend.reset_compiled_functions(model)


def refine(model, grid_size, x=None):
    """Grid extension: the same model with every KANDense on a ``grid_size`` grid.

    Each layer's knots are interpolated to the new size over the same range and
    its coefficients fit by least squares on the activations that reach it for
    ``x`` (or on dense samples of its grid interval when ``x`` is None), so the
    function is preserved; exactly (up to rounding) inside the grid when the new
    size is a multiple of the old on a uniform grid.

    The returned model is a new object. If ``model`` was compiled, the new one
    is compiled with the same loss and metrics and a *fresh* optimizer of the
    same configuration (the old optimizer state does not fit the new shapes).

    Args:
        model: a Sequential or functional model containing KANDense layers.
        grid_size: the new ``G'`` (int >= 1).
        x: optional ``(N, n_in)`` samples of the model input.

    Returns:
        a new ``keras.Model``.
    """
    if isinstance(grid_size, bool) or not isinstance(grid_size, (int, np.integer)) or (
        grid_size < 1
    ):
        raise ValueError(
            f"Received an invalid value for argument `grid_size`: expected an int >= 1, "
            f"got {grid_size!r}."
        )
    layers = _kan_layers(model)
    samples = kan_layer_inputs(model, x) if x is not None else [None] * len(layers)
    plans = {id(layer): layer.refined_spline(grid_size, s) for layer, s in zip(layers, samples)}

    def clone(layer):
        config = layer.get_config()
        if isinstance(layer, KANDense):
            config["grid_size"] = int(grid_size)
        return layer.__class__.from_config(config)

    new = keras.models.clone_model(model, clone_function=clone)
    for old_layer, new_layer in zip(model.layers, new.layers):
        if id(old_layer) in plans:
            knots, coef = plans[id(old_layer)]
            for name, value in old_layer._named_variables().items():
                if name == "grid":
                    value = knots
                elif name == "spline_kernel":
                    value = coef
                getattr(new_layer, name).assign(
                    np.asarray(ops.convert_to_numpy(value)).astype(new_layer.variable_dtype))
            new_layer.sync_grid()
        else:
            _copy_plain_weights(old_layer, new_layer)
    return _compile_like(new, model)


def pruning_plan(model, x, node_threshold=1e-2, edge_threshold=3e-2):
    """Which hidden nodes survive and which edges stay, from edge scores on ``x``.

    Scores are pykan's ``std(phi_ij) / (std(x_i) + 0.1)`` on the activations
    reaching each layer. A hidden node between two directly connected KANDense
    layers survives when its largest incoming and largest outgoing score both
    exceed ``node_threshold``; an edge is kept when its score is at least
    ``edge_threshold`` and both its ends survive. Model inputs and outputs, and
    nodes feeding a non-KAN layer, are never removed.

    Returns:
        list (one per KANDense) of dicts with ``layer`` (the layer),
        ``keep_in`` / ``keep_out`` (index arrays of surviving nodes), ``mask``
        (``(n, m)`` float array, the new edge mask over all nodes) and
        ``scores`` (``(n, m)``).
    """
    for name, value in (("node_threshold", node_threshold), ("edge_threshold", edge_threshold)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
            np.isfinite(value) and value >= 0
        ):
            raise ValueError(
                f"Received an invalid value for argument `{name}`: expected a finite number "
                f">= 0, got {value!r}."
            )
    layers = _kan_layers(model)
    inputs = kan_layer_inputs(model, x)
    if inputs[0].shape[0] < 2:
        raise ValueError("Pruning needs at least 2 samples in `x` to score edges.")
    scores = [np.asarray(ops.convert_to_numpy(layer.edge_scores(s)), np.float64)
              for layer, s in zip(layers, inputs)]
    alive_out = [np.ones(layer.units, bool) for layer in layers]
    for i in range(len(layers) - 1):
        if not _feeds(model, layers[i], layers[i + 1]):
            continue  # not directly connected: the nodes are not hidden KAN nodes
        incoming = scores[i].max(axis=0) > node_threshold  # (m_i,)
        outgoing = scores[i + 1].max(axis=1) > node_threshold  # (m_i,)
        alive_out[i] = incoming & outgoing
        if not alive_out[i].any():
            raise ValueError(
                f"Pruning would remove every node of layer '{layers[i].name}' (largest "
                f"node score {min(scores[i].max(), scores[i + 1].max()):.3g} <= "
                f"node_threshold={node_threshold}); lower `node_threshold` or train longer."
            )
    plan = []
    for i, layer in enumerate(layers):
        alive_in = np.ones(scores[i].shape[0], bool)
        if i > 0 and _feeds(model, layers[i - 1], layer):
            alive_in = alive_out[i - 1]
        mask = np.asarray(ops.convert_to_numpy(layer.edge_mask), np.float64)
        mask = mask * (scores[i] >= edge_threshold) * alive_in[:, None] * alive_out[i][None, :]
        plan.append({"layer": layer, "keep_in": np.flatnonzero(alive_in),
                     "keep_out": np.flatnonzero(alive_out[i]), "mask": mask,
                     "scores": scores[i]})
    return plan


def apply_pruning_masks(plan):
    """Write the plan's edge masks into the layers (no shape change)."""
    for entry in plan:
        layer = entry["layer"]
        layer.edge_mask.assign(entry["mask"].astype(layer.edge_mask.dtype))


def prune(model, x, node_threshold=1e-2, edge_threshold=3e-2, verbose=True,
          return_report=False):
    """A physically smaller model: dead hidden nodes removed, weak edges masked.

    Its outputs equal those of ``model`` with the plan's edge masks applied (see
    :func:`pruning_plan`): removed nodes have all their edges masked first, so
    dropping them changes nothing. ``model`` itself is not modified. A compiled
    ``model`` yields a model compiled the same way with a fresh optimizer.

    Args:
        model: Sequential or functional model with KANDense layers.
        x: ``(N, n_in)`` data sample used to score edges.
        node_threshold, edge_threshold: see :func:`pruning_plan`.
        verbose: print which nodes of which layer were removed.
        return_report: also return ``{layer name: {"removed_nodes": [...],
            "kept_nodes": [...], "masked_edges": int}}``.

    Returns:
        the new model, or ``(model, report)`` with ``return_report=True``.
    """
    plan = pruning_plan(model, x, node_threshold, edge_threshold)
    by_layer = {id(entry["layer"]): entry for entry in plan}

    def clone(layer):
        config = layer.get_config()
        if id(layer) in by_layer:
            config["units"] = int(by_layer[id(layer)]["keep_out"].size)
        return layer.__class__.from_config(config)

    new = keras.models.clone_model(model, clone_function=clone)
    report = {}
    for old_layer, new_layer in zip(model.layers, new.layers):
        entry = by_layer.get(id(old_layer))
        if entry is None:
            _copy_plain_weights(old_layer, new_layer)
            continue
        rows, cols = entry["keep_in"], entry["keep_out"]
        values = {name: np.asarray(ops.convert_to_numpy(v))
                  for name, v in old_layer._named_variables().items()}
        values["edge_mask"] = entry["mask"]
        sliced = {
            "grid": values["grid"][rows],
            "spline_kernel": values["spline_kernel"][rows][:, :, cols],
            "base_kernel": values["base_kernel"][rows][:, cols],
            "spline_scale": values["spline_scale"][rows][:, cols],
            "edge_mask": values["edge_mask"][rows][:, cols],
        }
        if "bias" in values:
            sliced["bias"] = values["bias"][cols]
        for name, value in sliced.items():
            getattr(new_layer, name).assign(value.astype(new_layer.variable_dtype))
        new_layer.sync_grid()
        removed = sorted(set(range(old_layer.units)) - set(cols.tolist()))
        report[old_layer.name] = {
            "removed_nodes": removed,
            "kept_nodes": cols.tolist(),
            "masked_edges": int((entry["mask"] == 0).sum()),
        }
    if verbose:
        widths = [plan[0]["layer"].grid.shape[0]] + [e["keep_out"].size for e in plan]
        print(f"prune: widths {[plan[0]['layer'].grid.shape[0]] + [e['layer'].units for e in plan]}"
              f" -> {widths}")
        for name, info in report.items():
            if info["removed_nodes"]:
                print(f"  {name}: removed output nodes {info['removed_nodes']}, "
                      f"kept {info['kept_nodes']}")
    new = _compile_like(new, model)
    return (new, report) if return_report else new
