"""Model -> model transforms: grid extension (`refine`) and pruning (`prune`), plus the
in-place grid and regularizer changes that must invalidate compiled steps.

`refine` and `prune` return a new model built from the old one's config (so the
new grid size or widths are in `get_config` and survive `.keras` saving), with
the weights copied over. A compiled input model yields a model compiled the
same way with a fresh optimizer: the optimizer state (Adam moments, step
count) is tied to the old variable shapes and is deliberately not carried over.
"""

import keras
import numpy as np
from keras import ops

from keras_kan import backend as kan_backend
from keras_kan import coverage, regularizers, symbolic_edges
from keras_kan.attribution import layer_scores
from keras_kan.layers import KANDense
from keras_kan.network import (
    edge_values,
    feeds,
    kan_layers,
    layer_inputs,
    model_samples,
    node_steps,
)
from keras_kan.products import MultNodes, mult_groups
from keras_kan.validation import check_int, check_one_of, check_real, check_verbose

__all__ = [
    "refine",
    "prune",
    "update_grids",
    "sync_grids",
    "set_regularizer",
    "pruning_plan",
    "pruning_report",
    "apply_pruning_masks",
]


def _compile_like(new, old):
    if getattr(old, "compiled", False):
        config = old.get_compile_config()
        if config is not None:
            new.compile_from_config(config)  # a fresh optimizer with the same settings
    return new


def _clone(model, replace):
    """`model` rebuilt with `replace[id(layer)]` in place of its KANDense layers.

    Other layers are cloned from their config and get the old weights.
    """
    def clone(layer):
        if id(layer) in replace:
            return replace[id(layer)]
        return layer.__class__.from_config(layer.get_config())

    new = keras.models.clone_model(model, clone_function=clone)
    for old_layer, new_layer in zip(model.layers, new.layers):
        if id(old_layer) not in replace and old_layer.weights:
            new_layer.set_weights(old_layer.get_weights())
    return new


def _model_inputs(model, x, min_samples=1):
    """`x` checked against the model's input (finite, right width); every row kept."""
    return model_samples(model, x, min_samples=min_samples, max_samples=np.iinfo(np.int64).max)


def update_grids(model, x):
    """Update every KANDense grid to the data, in place, first layer first.

    Layer `l` is updated on the activations that reach it *after* layers
    `< l` were updated (as pykan does), see `KANDense.update_grid`. Compiled
    functions of `model` are rebuilt when a layer's basis choice flips.

    Args:
        model: a model containing KANDense layers.
        x: `(N, n_in)` samples of the model input.
    """
    layers = kan_layers(model, "update_grids")
    x = _model_inputs(model, x)
    before = [layer.uniform_grid for layer in layers]
    for index, layer in enumerate(layers):
        layer.update_grid(layer_inputs(model, x)[index])
    sync_grids(model, before)


def start_grids(model, x, check=True):
    """Before training on `x`: what each KANDense does on its first training call, on the host.

    A `grid_range="data"` layer still on its initial grid moves it to the
    range of the inputs that reach it; any other layer not yet checked
    measures the fraction of those inputs outside its grid and warns when it
    is more than a tenth (see `keras_kan.coverage`). Layers are handled first to
    last, each on the activations of the layers before it. `fit_lbfgs` calls
    this, so its compiled objective never carries the host report.

    Args:
        model: a model containing KANDense layers.
        x: `(N, n_in)` samples of the model input.
        check: measure coverage; False when a grid update runs before the first
            step (it moves the grids to the data): the layers are marked checked.
    """
    layers = [layer for layer in model.layers if isinstance(layer, KANDense)]
    if not check:
        for layer in layers:
            coverage.skip_check(layer)
    pending = [index for index, layer in enumerate(layers) if coverage.pending(layer)]
    if not pending:
        return
    x = _model_inputs(model, x)
    before = [layer.uniform_grid for layer in layers]
    for index in pending:
        layer = layers[index]
        inputs = layer_inputs(model, x)[index]
        coverage.training_call(layer, ops.convert_to_tensor(inputs, layer.compute_dtype))
    sync_grids(model, before)


def sync_grids(model, before=None):
    """Re-read every KANDense grid of `model` after its weights were written.

    Call it after writing grids yourself (`set_weights`, `assign`): the
    model's compiled train/test/predict functions are rebuilt on next use.

    Args:
        model: a Keras model (one without KANDense layers is left alone).
        before: the layers' `uniform_grid` values before a change made by
            keras_kan itself; compiled functions are then rebuilt only if a
            layer's basis choice (`KANDense.uniform_grid`) flipped.
            `None` (a write keras_kan did not see): always rebuilt.
    """
    layers = [layer for layer in model.layers if isinstance(layer, KANDense)]
    after = [layer.sync_grid() for layer in layers]
    if layers and (before is None or list(before) != after):
        kan_backend.reset_compiled_functions(model)


def set_regularizer(model, regularizer):
    """Give every KANDense of `model` the same `regularizer` (None removes it), in place.

    pykan's second `fit` without `lamb`: train on the data loss alone.
    Compiled train/test/predict functions are rebuilt on next use (a penalty
    is part of the traced step).

    Args:
        model: a model containing KANDense layers.
        regularizer: a `KANRegularizer`, its config dict, or None.

    """
    regularizer = regularizers.get(regularizer)
    for layer in kan_layers(model, "set_regularizer"):
        layer.regularizer = regularizer
    kan_backend.reset_compiled_functions(model)


def refine(model, grid_size, x=None):
    """Grid extension: the same model with every KANDense on a `grid_size` grid.

    Each layer's knots are interpolated to the new size over the same range and
    its coefficients fit by least squares on the activations that reach it for
    `x` (or on dense samples of its grid interval when `x` is None), so the
    function is preserved; exactly (up to rounding) inside the grid when the new
    size is a multiple of the old on a uniform grid.

    The returned model is a new object. If `model` was compiled, the new one
    is compiled with the same loss and metrics and a *fresh* optimizer of the
    same configuration (the old optimizer state does not fit the new shapes).

    Args:
        model: a Sequential or functional model containing KANDense layers.
        grid_size: the new `G'` (int >= 1).
        x: optional `(N, n_in)` samples of the model input.

    Returns:
        a new `keras.Model`.
    """
    grid_size = check_int("grid_size", grid_size, 1)
    layers = kan_layers(model, "refine")
    samples = layer_inputs(model, _model_inputs(model, x)) if (
        x is not None) else [None] * len(layers)
    replace = {}
    for layer, sample in zip(layers, samples):
        knots, coef = layer.refined_spline(grid_size, sample)
        weights = layer.get_weights_by_name()
        weights.update(grid=knots, spline_kernel=coef)
        config = dict(layer.get_config(), grid_size=grid_size)
        replace[id(layer)] = KANDense.from_weights(config, weights)
    return _compile_like(_clone(model, replace), model)


def pruning_plan(model, x, node_threshold=1e-2, edge_threshold=3e-2, scores="edge"):
    """Which hidden nodes survive and which edges stay, from edge scores on `x`.

    `scores="edge"` (the default): pykan's edge score `std(phi_ij) / (std(x_i) +
    0.1)` on the activations reaching each layer. A hidden node between two
    directly connected KANDense layers survives when its largest incoming and
    largest outgoing score both exceed `node_threshold`.

    `scores="attribution"` (what pykan 0.2.8's `prune` uses): the shares of the
    outputs' variation of `keras_kan.attribution.layer_scores`; a hidden node
    survives when its node score exceeds `node_threshold`. These are free of a
    node's scale: a small factor of a product (or a small sum node) read by a
    steep edge after it keeps the edges that carry its variation, where the
    edge score would mask them. Needs a plain chain (`attribution.layer_scores`).
    Unlike pykan, which scores again after removing nodes, one scoring decides
    both (removed nodes score below `node_threshold`, so the kept scores barely move).

    Either way an edge is kept when its score is at least `edge_threshold` and
    both its ends survive. Model inputs and outputs, and nodes feeding a non-KAN
    layer, are never removed.

    Returns:
        list (one per KANDense) of dicts with `layer` (the layer), `keep_in` /
        `keep_out` (index arrays of surviving nodes), `mask` (`(n, m)` float
        array, the new edge mask over all nodes) and `scores` (`(n, m)`).
    """
    node_threshold = check_real("node_threshold", node_threshold, 0.0)
    edge_threshold = check_real("edge_threshold", edge_threshold, 0.0)
    scores_kind = check_one_of("scores", scores, ("edge", "attribution"))
    layers = kan_layers(model, "prune")
    inputs = layer_inputs(model, _model_inputs(model, x, min_samples=2))
    steps = node_steps(model, layers)
    node_scores = None
    if scores_kind == "attribution":
        node_scores, scores = layer_scores(model, x)  # plain chains only (it checks)
    else:
        scores = [np.asarray(ops.convert_to_numpy(layer.edge_scores(s)), np.float64)
                  for layer, s in zip(layers, inputs)]
    alive_out = [np.ones(layer.units, bool) for layer in layers]  # per subnode
    alive_nodes = [None] * len(layers)  # per node, where the next layer reads them
    for i in range(len(layers) - 1):
        if not _hidden(model, layers[i], steps[i], layers[i + 1]):
            continue  # not directly connected: the nodes are not hidden KAN nodes
        if node_scores is not None:  # attribution: a node's score is its share, both ways
            alive_nodes[i] = node_scores[i + 1] > node_threshold
        else:
            incoming = _node_incoming(scores[i].max(axis=0), steps[i]) > node_threshold
            outgoing = scores[i + 1].max(axis=1) > node_threshold  # (nodes,)
            alive_nodes[i] = incoming & outgoing
        alive_out[i] = _subnodes_alive(alive_nodes[i], steps[i])
        if not alive_nodes[i].any():
            raise ValueError(
                f"Pruning would remove every node of layer '{layers[i].name}' (largest "
                f"node score {_largest_node_score(scores, node_scores, i):.3g} <= "
                f"node_threshold={node_threshold}); lower `node_threshold` or train longer."
            )
    plan = []
    for i, layer in enumerate(layers):
        alive_in = np.ones(scores[i].shape[0], bool)
        if i > 0 and alive_nodes[i - 1] is not None:
            alive_in = alive_nodes[i - 1]
        keep = (scores[i] >= edge_threshold) * alive_in[:, None] * alive_out[i][None, :]
        mask = np.asarray(ops.convert_to_numpy(layer.edge_mask), np.float64)
        symbolic = np.asarray(ops.convert_to_numpy(layer.symbolic_mask), np.float64)
        had_edges = mask.any() or symbolic.any()
        mask, symbolic = mask * keep, symbolic * keep
        if had_edges and not (mask.any() or symbolic.any()):
            raise ValueError(
                f"Received an invalid value for argument `edge_threshold`: "
                f"{edge_threshold} would mask every edge of layer '{layer.name}' (largest "
                f"edge score {scores[i].max():.3g}); lower it or train longer."
            )
        offsets = None
        if steps[i] is not None:  # a masked edge's mean moves into its subnode's bias
            was_on = (np.asarray(ops.convert_to_numpy(layer.edge_mask)) != 0) | (
                np.asarray(ops.convert_to_numpy(layer.symbolic_mask)) != 0)
            dropped = was_on & ~((mask != 0) | (symbolic != 0))
            offsets = (edge_values(layer, inputs[i]).mean(axis=0) * dropped).sum(axis=0)
        plan.append({"layer": layer, "keep_in": np.flatnonzero(alive_in),
                     "keep_out": np.flatnonzero(alive_out[i]), "mask": mask,
                     "symbolic_mask": symbolic, "scores": scores[i], "nodes": steps[i],
                     "keep_nodes": (None if alive_nodes[i] is None
                                    else np.flatnonzero(alive_nodes[i])),
                     "offsets": offsets})
    return plan


def _largest_node_score(scores, node_scores, i):
    """The best score of hidden layer `i`'s nodes, for the refusal's text."""
    if node_scores is not None:
        return float(node_scores[i + 1].max())
    return float(min(scores[i].max(), scores[i + 1].max()))


# ------------------------------------------------ mult nodes (keras_kan.products)
def _hidden(model, layer, step, after):
    """Whether `layer`'s nodes (through `step`, a MultNodes or None) are `after`'s inputs."""
    return feeds(model, layer, after) if step is None else (
        feeds(model, layer, step) and feeds(model, step, after))


def _node_incoming(subnode_scores, step):
    """A node's incoming score from its subnodes' `(m,)`: a mult node's is the largest of
    its subnodes' (pykan removes a mult node with the edges into all its subnodes)."""
    if step is None:
        return subnode_scores
    return np.array([subnode_scores[j] for j in range(step.n_sum)] +
                    [subnode_scores[list(g)].max() for g in mult_groups(step.n_sum, step.arity)])


def _subnodes_alive(nodes_alive, step):
    """Per-node survival `(nodes,)` -> per-subnode `(m,)`: a mult node's subnodes go with it."""
    if step is None:
        return nodes_alive
    return np.concatenate([nodes_alive[:step.n_sum]] + [
        np.full(a, nodes_alive[step.n_sum + r]) for r, a in enumerate(step.arity)])


def _node_subset(step, keep_nodes, offsets=None):
    """A new MultNodes keeping the nodes `keep_nodes` (and their subnodes), weights copied;
    `offsets (n_sub,)`: the means of the edges masked into each subnode, added (times
    `subnode_scale`) to `subnode_bias`, so the subnode keeps its level."""
    kept_sum = [j for j in keep_nodes if j < step.n_sum]
    kept_mult = [j - step.n_sum for j in keep_nodes if j >= step.n_sum]
    groups = mult_groups(step.n_sum, step.arity)
    subnodes = kept_sum + [q for r in kept_mult for q in groups[r]]
    config = dict(step.get_config(), n_sum=len(kept_sum),
                  arity=[step.arity[r] for r in kept_mult])
    new = MultNodes.from_config(config)
    new.build((None, len(subnodes)))
    affine = step.affine()
    if offsets is not None:
        affine["subnode_bias"] = affine["subnode_bias"] + affine["subnode_scale"] * offsets
    for name, rows in (("subnode_scale", subnodes), ("subnode_bias", subnodes),
                       ("node_scale", list(keep_nodes)), ("node_bias", list(keep_nodes))):
        variable = getattr(new, name)
        variable.assign(affine[name][rows].astype(variable.dtype))
    return new


def apply_pruning_masks(plan):
    """Write the plan's edge masks (numeric and symbolic) into the layers (no shape change)."""
    for entry in plan:
        layer = entry["layer"]
        layer.edge_mask.assign(entry["mask"].astype(layer.edge_mask.dtype))
        layer.symbolic_mask.assign(entry["symbolic_mask"].astype(layer.symbolic_mask.dtype))


def _report(plan):
    """`{layer name: {"removed_nodes", "kept_nodes", "masked_edges"}}` of a plan."""
    report = {}
    for entry in plan:
        layer, cols = entry["layer"], entry["keep_out"]
        report[layer.name] = {
            "removed_nodes": sorted(set(range(layer.units)) - set(cols.tolist())),
            "kept_nodes": cols.tolist(),
            "masked_edges": int(((entry["mask"] == 0) & (entry["symbolic_mask"] == 0)).sum()),
        }
        if entry["nodes"] is not None and entry["keep_nodes"] is not None:  # mult nodes
            kept = entry["keep_nodes"].tolist()  # node indices (the layer's are subnodes)
            report[layer.name]["removed_mult_nodes"] = [
                j for j in range(entry["nodes"].n_sum, entry["nodes"].units) if j not in kept]
    return report


def pruning_report(model, x, node_threshold=1e-2, edge_threshold=3e-2, scores="edge"):
    """What `prune` would do, without doing it (an analysis: `model` is unchanged).

    Args: as `prune`.

    Returns:
        `{layer name: {"removed_nodes": [...], "kept_nodes": [...],
        "masked_edges": int}}`, one entry per KANDense (its units: subnodes when
        a `MultNodes` follows it, which then adds `"removed_mult_nodes"`, node
        indices).
    """
    return _report(pruning_plan(model, x, node_threshold, edge_threshold, scores))


def prune(model, x, node_threshold=1e-2, edge_threshold=3e-2, verbose=0, scores="edge"):
    """A physically smaller model: dead hidden nodes removed, weak edges masked.

    Its outputs equal those of `model` with the plan's edge masks applied (see
    `pruning_plan`): removed nodes have all their edges masked first, so
    dropping them changes nothing. One difference: before a `MultNodes`, the
    mean (on `x`) of each edge masked into a subnode moves into that
    subnode's `subnode_bias`: an edge that is nearly constant scores low, and
    a product's factor cannot lose its offset (`x_1 (x_2 + 1)` is not
    `x_1 x_2` plus a constant). `model` itself is not modified. A compiled
    `model` yields a model compiled the same way with a fresh optimizer.
    `pruning_report` tells what would be removed.

    Args:
        model: Sequential or functional model with KANDense layers.
        x: `(N, n_in)` data sample used to score edges.
        node_threshold, edge_threshold: see `pruning_plan`.
        verbose: 0 (silent) or 1 (print the widths and the removed nodes).
        scores: `"edge"` or `"attribution"` (pykan 0.2.8's; free of a node's
            scale, the one for products), see `pruning_plan`.

    Returns:
        the new model.
    """
    verbose = check_verbose(verbose)
    plan = pruning_plan(model, x, node_threshold, edge_threshold, scores)
    replace = {}
    for entry in plan:
        layer, rows, cols = entry["layer"], entry["keep_in"], entry["keep_out"]
        subset = layer.get_subset(rows, cols)
        subset.edge_mask.assign(entry["mask"][rows][:, cols].astype(subset.edge_mask.dtype))
        symbolic_edges.keep_edges(subset, entry["symbolic_mask"][rows][:, cols])
        replace[id(layer)] = subset
        if entry["nodes"] is not None:
            keep_nodes = (np.arange(entry["nodes"].units) if entry["keep_nodes"] is None
                          else entry["keep_nodes"])
            replace[id(entry["nodes"])] = _node_subset(entry["nodes"], keep_nodes,
                                                       entry["offsets"])
    new = _clone(model, replace)
    if verbose:
        before = [plan[0]["layer"].input_dim] + [e["layer"].units for e in plan]
        after = [plan[0]["layer"].input_dim] + [e["keep_out"].size for e in plan]
        print(f"prune: widths {before} -> {after}")
        for name, info in _report(plan).items():
            if info["removed_nodes"]:
                print(f"  {name}: removed output nodes {info['removed_nodes']}, "
                      f"kept {info['kept_nodes']}")
    return _compile_like(new, model)
