"""Separating a product's factors: fewer inputs per subnode, while the fit holds.

A KAN with multiplication nodes (`keras_kan.MultNodes`) trained on data often
entangles its factors: on `x_1 x_2` over `[1, 2]^2` each subnode reads both inputs,
`(a(x_1) + b(x_2)) (c(x_1) + d(x_2))`, and a curved edge after the product makes up
the difference. The numeric model is exact (MSE 1e-9), but no edge-by-edge symbolic
choice reaches `x_1 x_2` from there: the canonical form needs several edges changed
at once. `separate_factors` makes those changes with the data as the judge:

1. (`linear_reads=True`) every edge out of a mult node is fixed to `x`
   (`symbolic.fix_symbolic`), so the product itself must carry the function;
2. the model trains `steps` L-BFGS steps (grid updates on by default): the reference loss;
3. greedy backward elimination over the edges into the subnodes of every KANDense
   that feeds a `MultNodes` (sum subnodes included), weakest share first (`std` of
   the edge over the `std` sum of the subnode's active edges, on `x`): mask the edge
   (its mean moves into the subnode's `subnode_bias`, as `prune` does), train `steps`
   steps, keep the removal when the loss stays within `tolerance` times the reference
   and below `max_loss`, else restore every weight. After a kept removal the shares
   are scored again; it stops when no remaining edge can go;
4. (`linear_reads=True`) a sum node left with one incoming edge and one outgoing edge
   is a composition `g(f(x_i))`, which the incoming edge alone can carry: its read `g`
   is fixed to `x` too (else the symbolic search splits one curve into two, as in
   `6.559*sqrt(0.02325*x_1**2 + x_1 + 10.75) - 21.51` for `x_1`); then the model trains
   `steps` more steps (the removals' last training stops before convergence).

Two bounds, because the losses after `steps` steps are not converged. In the benchmark
runs (benchmarks/symbolic_recovery.py) removing an edge the function does without cost
0.1x to 31x the reference, removing one it needs 20x (an unsettled reference: 4.9e-5 on
`x_1 x_2 / x_3`) to 10^6x: `tolerance` alone let needed edges through at 100x and kept a
cancelling pair (11.6x) at 10x. Against the targets' variance the two kinds are apart:
the removed edges cost at most 8.4e-4 of it (`coulomb`'s `x_2 -> subnode 2` on
TensorFlow), the needed ones 3.5e-3 and more. So `max_loss` defaults to a thousandth of
the variance (an R^2 of 0.999 for an MSE loss), and a removal that fails is tried again
after every later removal (the shares are scored again), when the model has moved.

`x_1 x_2` on `[1, 2]^2` (`friction`): two removals and the formula reads `x_1*x_2`;
`x_1 + x_2 x_3` (`sum_product`): six. Every try costs one `fit_lbfgs` of `steps` steps.
"""

import numpy as np
from keras import ops

from keras_kan import symbolic_edges
from keras_kan.lbfgs import fit_lbfgs
from keras_kan.network import edge_values, kan_layers, layer_inputs, node_steps
from keras_kan.symbolic_model import fix_symbolic
from keras_kan.validation import check_bool, check_int, check_real, check_verbose

__all__ = ["separate_factors"]


def _numpy(variable):
    return np.asarray(ops.convert_to_numpy(variable))


def _active(layer):
    """`(n, m)` bool: the edges with a numeric or a symbolic part on."""
    return (_numpy(layer.edge_mask) != 0) | (_numpy(layer.symbolic_mask) != 0)


def _candidates(layers, steps, inputs):
    """`(share, layer index, input, subnode, mean)` of every active edge into a subnode
    (of a layer feeding a MultNodes) that has at least two active edges, weakest first."""
    found = []
    for index, (layer, step, layer_in) in enumerate(zip(layers, steps, inputs)):
        if step is None:
            continue
        phi = edge_values(layer, layer_in)  # (N, n, m)
        std, mean = phi.std(axis=0), phi.mean(axis=0)
        active = _active(layer)
        for j in range(layer.units):
            on = np.flatnonzero(active[:, j])
            total = std[on, j].sum()
            if on.size < 2 or not total > 0:
                continue
            found += [(std[i, j] / total, index, int(i), j, mean[i, j]) for i in on]
    return sorted(found, key=lambda c: c[0])


def _mask_edge(layer, step, i, j, mean):
    """Mask edge `i -> j` of `layer` (numeric and symbolic parts); its mean on the data
    moves into subnode `j`'s bias of `step`, so the factor keeps its level."""
    for mask in (layer.edge_mask, layer.symbolic_mask):
        values = _numpy(mask).copy()
        values[i, j] = 0
        mask.assign(values.astype(mask.dtype))
    bias = _numpy(step.subnode_bias).copy()
    bias[j] += _numpy(step.subnode_scale)[j] * mean
    step.subnode_bias.assign(bias.astype(step.subnode_bias.dtype))


def _forget_masked_functions(model, layer):
    """A kept removal: the masked edge's symbolic function leaves the layer (its report
    and config), as `prune` does; the compiled functions are rebuilt."""
    before = list(model.trainable_variables)
    symbolic_edges.keep_edges(layer, _numpy(layer.symbolic_mask))
    symbolic_edges.reset_model(model, before)


def _train(model, x, y, steps, update_grid):
    history = fit_lbfgs(model, x, y, steps=steps, update_grid=update_grid, verbose=0)
    return float(history.history["loss"][-1])


def _mult_reads(layers, node_step):
    """`(layer index, node, out)` of every edge out of a mult node."""
    return [(index + 1, node, out) for index, step in enumerate(node_step[:-1])
            if step is not None for node in range(step.n_sum, step.units)
            for out in range(layers[index + 1].units)]


def _single_chain_reads(layers, node_step):
    """`(layer index, node, out)` of the one edge out of every sum node (of a MultNodes)
    that has exactly one incoming and one outgoing active edge."""
    reads = []
    for index, step in enumerate(node_step[:-1]):
        if step is None:
            continue
        into, out_of = _active(layers[index]), _active(layers[index + 1])
        for node in range(step.n_sum):
            outs = np.flatnonzero(out_of[node])
            if into[:, node].sum() == 1 and outs.size == 1:
                reads.append((index + 1, node, int(outs[0])))
    return reads


def separate_factors(model, x, y, steps=30, tolerance=100.0, max_loss=None,
                     linear_reads=True, update_grid=True, verbose=0):
    """Mask the edges into a product's subnodes that the data can do without, in place.

    See the module docstring for the procedure. `model` must be compiled (its loss
    is the judge) and contain a KANDense followed by a `MultNodes`.

    Args:
        model: a compiled model with KANDense layers and multiplication nodes.
        x: `(N, n_in)` training inputs.
        y: `(N, n_out)` training targets.
        steps: L-BFGS steps per training (the reference and each try), >= 1.
        tolerance: a removal stays only when the loss after it is at most
            `tolerance` times the reference loss (>= 1) ...
        max_loss: ... and at most `max_loss` (>= 0); None: `1e-3 * var(y)` (mean over
            the outputs). A model whose reference loss is above it keeps every edge.
        linear_reads: fix every edge out of a mult node to `x` first, and the read
            of every sum node left with one edge in and one out at the end.
        update_grid: grid updates in each training (`fit_lbfgs`'s).
        verbose: 0 (silent) or 1 (print each try).

    Returns:
        dict: `removed` (the removed edges, in order: dicts with `layer` (name),
        `input`, `subnode`, `share` and the `loss` after the removal's training),
        `linear_reads` (`(layer index, i, j)` of the edges fixed to `x`),
        `reference` (the loss before any removal) and `loss` (at the end).

    Raises:
        ValueError: the model has no multiplication nodes.
    """
    steps = check_int("steps", steps, 1)
    tolerance = check_real("tolerance", tolerance, 1.0)
    update_grid = check_bool("update_grid", update_grid)
    linear_reads = check_bool("linear_reads", linear_reads)
    verbose = check_verbose(verbose)
    layers = kan_layers(model, "separate_factors")
    node_step = node_steps(model, layers)
    if all(step is None for step in node_step):
        raise ValueError(f"separate_factors needs multiplication nodes (keras_kan.MultNodes "
                         f"after a KANDense); '{model.name}' has none.")
    if max_loss is None:
        targets = np.asarray(ops.convert_to_numpy(y), np.float64).reshape(len(x), -1)
        max_loss = 1e-3 * float(np.var(targets, axis=0).mean())
    max_loss = check_real("max_loss", max_loss, 0.0)
    reads = _mult_reads(layers, node_step) if linear_reads else []
    for index, node, out in reads:
        fix_symbolic(model, index, node, out, "x", x=x)
    reference = loss = _train(model, x, y, steps, update_grid)
    bound = min(tolerance * reference, max_loss)
    if verbose:
        print(f"separate_factors: reference loss {reference:.3g}; a removal stays below "
              f"{bound:.3g} (tolerance {tolerance}x, max_loss {max_loss:.3g})")
    removed = []
    while True:
        kept = False
        for share, index, i, j, mean in _candidates(layers, node_step, layer_inputs(model, x)):
            saved = model.get_weights()
            _mask_edge(layers[index], node_step[index], i, j, mean)
            trial = _train(model, x, y, steps, update_grid)
            kept = bool(np.isfinite(trial) and trial <= bound)
            if verbose:
                print(f"  {layers[index].name}: input {i} -> subnode {j} (share {share:.3f}): "
                      f"loss {trial:.3g}, {'removed' if kept else 'kept'}")
            if kept:
                _forget_masked_functions(model, layers[index])
                loss = trial
                removed.append({"layer": layers[index].name, "input": i, "subnode": j,
                                "share": float(share), "loss": trial})
                break
            model.set_weights(saved)
        if not kept:
            break
    chains = _single_chain_reads(layers, node_step) if linear_reads else []
    for index, node, out in chains:
        fix_symbolic(model, index, node, out, "x", x=x)
    if removed or chains:
        loss = _train(model, x, y, steps, update_grid)
    if verbose and chains:
        print(f"  sum nodes read linearly: {[(i, n) for i, n, _ in chains]}; loss {loss:.3g}")
    return {"removed": removed, "linear_reads": reads + chains, "reference": reference,
            "loss": loss}
