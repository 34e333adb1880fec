"""Which inputs matter: pykan 0.2.8's attribution scores, and input pruning.

`feature_scores(model, x)` propagates importance back from the outputs
(pykan's `attribute()` / `feature_score`): every output starts with score 1;
an edge `i -> j` of a layer gets

    E_ij = S_j * std(phi_ij) / (std(y_j) + 1e-4)

where `phi_ij` is the edge's value (numeric and symbolic parts), `y_j` the
node it feeds (the sum of its edges) and `S_j` that node's score; a node's
score is the sum of the scores of its outgoing edges, `S_i = sum_j E_ij`.
The propagation runs once per output (starting from that output alone) and
the results are averaged over the outputs, as pykan does. Standard
deviations are over the samples `x` (computed in float64 from the layers'
weights). Unlike pykan's edge score used for pruning (`std(phi) / (std(x) +
0.1)`), these scores measure a share of the output's variation, so an input
that every path damps is scored low even when its first edge is steep.

`layer_scores` returns the node and edge scores of every layer behind it.
`prune_input(model, x, threshold)` returns a model without the inputs scored
below `threshold` (pykan's `prune_input`).
"""

import keras
import numpy as np

from keras_kan.layers import KANDense
from keras_kan.network import (
    chain_inputs,
    edge_values,
    is_plain_chain,
    kan_layers,
    model_samples,
    node_steps,
)
from keras_kan.products import MultNodes
from keras_kan.validation import check_real, check_verbose

__all__ = ["feature_scores", "layer_scores", "prune_input"]

_NODE_EPS = 1e-4  # pykan's guard in std(phi) / (std(node) + 1e-4)


def _chain(model, caller):
    layers = kan_layers(model, caller)
    if not is_plain_chain(model, layers):
        raise ValueError(
            f"{caller} needs a model that is a plain chain of KANDense layers (input -> "
            f"KANDense -> ... -> KANDense); '{model.name}' has other layers or branches."
        )
    return layers


def feature_scores(model, x):
    """Importance of each model input for the outputs (pykan's `feature_score`).

    Args:
        model: a plain chain of KANDense layers (e.g. from `KAN`).
        x: `(N, n_in)` samples of the model input (N >= 2).

    Returns:
        `(n_in,)` float64 scores (`layer_scores(model, x)[0][0]`).
    """
    return layer_scores(model, x)[0][0]


def layer_scores(model, x):
    """pykan's attribution scores of every node and edge of a KANDense chain.

    Args:
        model: a plain chain of KANDense layers (e.g. from `KAN`).
        x: `(N, n_in)` samples of the model input (N >= 2).

    Returns:
        `(node_scores, edge_scores)`: `node_scores[l]` `(width_l,)` for the
        nodes entering KAN layer `l` (the last entry is the outputs, all 1),
        `edge_scores[l]` `(n_l, units_l)`; float64.
    """
    layers = _chain(model, "feature_scores")
    data = model_samples(model, x)
    inputs = chain_inputs(model, layers, data)
    phis = [edge_values(layer, layer_in) for layer, layer_in in zip(layers, inputs)]
    steps = node_steps(model, layers)
    outputs = layers[-1].units if steps[-1] is None else steps[-1].units
    node = np.eye(outputs)  # (k, j): one propagation per output k
    node_scores, edge_scores = [node], []
    for phi, step in zip(reversed(phis), reversed(steps)):
        node = _to_subnodes(node, step)
        edge_std = phi.std(axis=0, ddof=1)  # (n, m)
        node_std = phi.sum(axis=1).std(axis=0, ddof=1)  # (m,)
        edge = np.einsum("ij,kj->kij", edge_std / (node_std + _NODE_EPS), node)
        node = edge.sum(axis=2)  # (k, n)
        edge_scores.insert(0, edge)
        node_scores.insert(0, node)
    return [s.mean(axis=0) for s in node_scores], [s.mean(axis=0) for s in edge_scores]


def _to_subnodes(node, step):
    """Node scores `(k, nodes)` -> subnode scores `(k, subnodes)`: each subnode of a mult
    node takes the node's score (as pykan's `attribute`); no `MultNodes`: unchanged."""
    if step is None:
        return node
    return np.concatenate([node[:, :step.n_sum]] + [
        np.repeat(node[:, step.n_sum + r:step.n_sum + r + 1], a, axis=1)
        for r, a in enumerate(step.arity)], axis=1)


def prune_input(model, x, threshold=1e-2, verbose=0):
    """A model without the inputs whose `feature_scores` are below `threshold`.

    The first KANDense keeps only the edges of the kept inputs
    (`KANDense.get_subset`); the other layers are copied. The new model's
    output for `x[:, kept]` equals the old one's for `x` exactly when the
    removed inputs' edges are masked (e.g. after `keras_kan.prune`) and up to
    their (small, `feature_scores`-sized) contribution otherwise. A compiled
    `model` yields a model compiled the same way with a fresh optimizer.

    Args:
        model: a plain chain of KANDense layers.
        x: `(N, n_in)` samples of the model input.
        threshold: inputs scoring below it are removed (> 0).
        verbose: 0 (silent) or 1 (print the scores and the kept inputs).

    Returns:
        the new model. Its input `k` is the old input `kept[k]`, with
        `kept = np.flatnonzero(feature_scores(model, x) >= threshold)`.

    Raises:
        ValueError: no input reaches `threshold`.
    """
    threshold = check_real("threshold", threshold, 0.0)
    verbose = check_verbose(verbose)
    layers = _chain(model, "prune_input")
    scores = feature_scores(model, x)
    kept = np.flatnonzero(scores >= threshold)
    if kept.size == 0:
        raise ValueError(f"prune_input would remove every input (largest score "
                         f"{scores.max():.3g} < threshold={threshold}); lower `threshold`.")
    first = layers[0].get_subset(kept, np.arange(layers[0].units))
    rest = [KANDense.from_weights(layer.get_config(), layer.get_weights_by_name())
            for layer in layers[1:]]
    chain = []
    for layer, step in zip([first, *rest], node_steps(model, layers)):
        chain.append(layer)
        if step is not None:  # mult nodes: copied
            chain.append(MultNodes.from_config(step.get_config()))
            chain[-1].build((None, layer.units))
            chain[-1].set_weights(step.get_weights())
    new = keras.Sequential([keras.Input((int(kept.size),)), *chain],
                           name=f"{model.name}_inputs_pruned")
    if getattr(model, "compiled", False) and model.get_compile_config() is not None:
        new.compile_from_config(model.get_compile_config())
    if verbose:
        shown = ", ".join(f"x_{i + 1}: {s:.3g}" for i, s in enumerate(scores))
        print(f"prune_input: scores {shown}; kept {[f'x_{i + 1}' for i in kept]}")
    return new
