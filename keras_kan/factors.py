"""Simplifying a trained KAN while the fit holds: greedy edits judged by the data.

Two procedures share one greedy loop (`_greedy`): try an edit, train `steps` L-BFGS
steps, keep the edit when the loss stays below a bound, else restore every weight; a
failed edit is tried again after each later kept one (the model has moved).

* `separate_factors`: a product's subnodes read fewer inputs (below);
* `linearize_edges`: edges that are nearly straight become the symbolic `x`, so a
  sum network's canonical form (e.g. `x_1 x_2 = ((x_1 + x_2)^2 - (x_1 - x_2)^2) / 4`
  on `[2, 2, 1]`) becomes reachable by `auto_symbolic`.

Separating a product's factors: fewer inputs per subnode.

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

Reading edges linearly (`linearize_edges`). A sum network trained on `x_1 x_2` over
`[-1, 1]^2` with width `[2, 2, 1]` fits it (MSE 7e-7) with curved inner edges, each
subnode a different mixture; fitted edge by edge, the formula is a nested `sin` (RMSE
5e-3). The exact form needs all four inner edges straight at once. `linearize_edges`
fixes the numeric edges to `x` one at a time, straightest first (`1 - R^2` of a line
through the edge's values; `min_r2` leaves out the clearly curved), each judged like a
factor removal. When none passes alone, each layer's candidates are tried together. On
that model (JAX, benchmarks/symbolic_recovery.py's `product`) the two straightest inner
edges cost 3.6x and 23x the reference; the other two cost 290x and 710x alone (refused:
over the bound) and 0.009x together, the outer edges (quadratics) 400x-500x. Then
`auto_symbolic` reads `x_1*x_2` exactly.
"""

import numpy as np
from keras import ops

from keras_kan import symbolic_edges
from keras_kan.lbfgs import fit_lbfgs
from keras_kan.network import edge_values, kan_layers, layer_inputs, node_steps
from keras_kan.symbolic_model import fix_symbolic, unfix_symbolic
from keras_kan.validation import check_bool, check_int, check_real, check_verbose

__all__ = ["linearize_edges", "separate_factors"]


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


def _max_loss(max_loss, x, y):
    """`max_loss` checked; None: a thousandth of the targets' variance (mean over outputs)."""
    if max_loss is None:
        targets = np.asarray(ops.convert_to_numpy(y), np.float64).reshape(len(x), -1)
        max_loss = 1e-3 * float(np.var(targets, axis=0).mean())
    return check_real("max_loss", max_loss, 0.0)


def _reference(model, x, y, steps, update_grid, tolerance, max_loss, verbose, caller, edit):
    """`(reference loss, bound)`: `steps` steps of training give the reference; the
    bound is `min(tolerance * reference, max_loss)`."""
    reference = _train(model, x, y, steps, update_grid)
    bound = min(tolerance * reference, max_loss)
    if verbose:
        print(f"{caller}: reference loss {reference:.3g}; {edit} stays below {bound:.3g} "
              f"(tolerance {tolerance}x, max_loss {max_loss:.3g})")
    return reference, bound


def _greedy(model, x, y, candidates, apply, keep, revert, describe, bound, steps,
            update_grid, verbose, verb):
    """The loop both procedures share. `candidates()` -> `[(score, key)]`, tried in
    order; `apply(key)` edits the model in place, then it trains. Under `bound` (and
    finite) the edit stays (`keep(key)`) and the candidates are listed again; else
    `revert(key)` and every weight is put back. Stops when a whole list fails.

    Returns:
        `[(key, score, loss after its training)]` of the kept edits, in order.
    """
    kept = []
    while True:
        for score, key in candidates():
            saved = model.get_weights()
            apply(key)
            trial = _train(model, x, y, steps, update_grid)
            accepted = bool(np.isfinite(trial) and trial <= bound)
            if verbose:
                print(f"  {describe(key, score)}: loss {trial:.3g}, "
                      f"{verb if accepted else 'kept as it was'}")
            if accepted:
                keep(key)
                kept.append((key, score, trial))
                break
            revert(key)
            model.set_weights(saved)
        else:
            return kept


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
    max_loss = _max_loss(max_loss, x, y)
    layers = kan_layers(model, "separate_factors")
    node_step = node_steps(model, layers)
    if all(step is None for step in node_step):
        raise ValueError(f"separate_factors needs multiplication nodes (keras_kan.MultNodes "
                         f"after a KANDense); '{model.name}' has none.")
    reads = _mult_reads(layers, node_step) if linear_reads else []
    for index, node, out in reads:
        fix_symbolic(model, index, node, out, "x", x=x)
    reference, bound = _reference(model, x, y, steps, update_grid, tolerance, max_loss,
                                  verbose, "separate_factors", "a removal")

    def candidates():
        return [(share, (index, i, j, mean)) for share, index, i, j, mean
                in _candidates(layers, node_step, layer_inputs(model, x))]

    def apply(key):
        index, i, j, mean = key
        _mask_edge(layers[index], node_step[index], i, j, mean)

    def keep(key):
        _forget_masked_functions(model, layers[key[0]])

    def describe(key, share):
        index, i, j, _ = key
        return f"{layers[index].name}: input {i} -> subnode {j} (share {share:.3f})"

    kept = _greedy(model, x, y, candidates, apply, keep, lambda key: None, describe,
                   bound, steps, update_grid, verbose, "removed")
    removed = [{"layer": layers[index].name, "input": i, "subnode": j,
                "share": float(share), "loss": trial}
               for (index, i, j, _), share, trial in kept]
    loss = kept[-1][2] if kept else reference
    chains = _single_chain_reads(layers, node_step) if linear_reads else []
    for index, node, out in chains:
        fix_symbolic(model, index, node, out, "x", x=x)
    if removed or chains:
        loss = _train(model, x, y, steps, update_grid)
    if verbose and chains:
        print(f"  sum nodes read linearly: {[(i, n) for i, n, _ in chains]}; loss {loss:.3g}")
    return {"removed": removed, "linear_reads": reads + chains, "reference": reference,
            "loss": loss}


def _straight_edges(layers, inputs, min_r2):
    """`(1 - R^2, (layer index, i, j))` of every numeric edge (active, not symbolic)
    whose values a line through its input explains to `R^2 >= min_r2`, straightest first."""
    found = []
    for index, (layer, layer_in) in enumerate(zip(layers, inputs)):
        phi = edge_values(layer, layer_in, include_symbolic=False)  # (N, n, m)
        numeric = (_numpy(layer.edge_mask) != 0) & (_numpy(layer.symbolic_mask) == 0)
        for i, j in zip(*np.nonzero(numeric)):
            u, v = layer_in[:, i], phi[:, i, j]
            if not (u.std() > 0 and v.std() > 0):
                continue
            r2 = float(np.corrcoef(u, v)[0, 1] ** 2)
            if r2 >= min_r2:
                found.append((1.0 - r2, (index, int(i), int(j))))
    return sorted(found, key=lambda c: c[0])


def linearize_edges(model, x, y, steps=30, tolerance=100.0, max_loss=None, min_r2=0.5,
                    update_grid=True, verbose=0):
    """Fix nearly straight numeric edges to the symbolic `x` while the fit holds, in place.

    Greedy, straightest edge first (`1 - R^2` of a line through the edge's values on
    `x`, listed again after every kept fix): `fix_symbolic(..., "x")` with fitted
    `(a, b, c, d)`, train `steps` L-BFGS steps, keep the fix when the loss is at most
    `tolerance` times the reference (the loss after `steps` steps before any fix) and
    at most `max_loss`; else the edge is numeric again with every weight restored.
    When no edge passes alone, each layer's candidates are tried together. A refused
    fix is tried again after each later kept one. See the module docstring.

    Args:
        model: a compiled model with KANDense layers (its loss is the judge).
        x: `(N, n_in)` training inputs.
        y: `(N, n_out)` training targets.
        steps: L-BFGS steps per training (the reference and each try), >= 1.
        tolerance: bound on a fix's loss relative to the reference (>= 1) ...
        max_loss: ... and in absolute terms (>= 0); None: `1e-3 * var(y)`.
        min_r2: only edges whose linear fit reaches this `R^2` (in [0, 1]) are tried.
        update_grid: grid updates in each training (`fit_lbfgs`'s).
        verbose: 0 (silent) or 1 (print each try).

    Returns:
        dict: `fixed` (the edges made `x`, in order: dicts with `layer` (name),
        `input`, `output` and the `loss` after the fix's training; edges fixed
        together share it), `reference` and `loss` (at the end).
    """
    steps = check_int("steps", steps, 1)
    tolerance = check_real("tolerance", tolerance, 1.0)
    min_r2 = check_real("min_r2", min_r2, 0.0, 1.0)
    update_grid = check_bool("update_grid", update_grid)
    verbose = check_verbose(verbose)
    max_loss = _max_loss(max_loss, x, y)
    layers = kan_layers(model, "linearize_edges")
    reference, bound = _reference(model, x, y, steps, update_grid, tolerance, max_loss,
                                  verbose, "linearize_edges", "a fix")

    def candidates():
        # each edge alone, then each layer's candidates together: fixing one of two
        # edges that mix the same inputs can cost more than fixing both (module docstring)
        single = _straight_edges(layers, layer_inputs(model, x), min_r2)
        together = {}
        for score, edge in single:
            together.setdefault(edge[0], []).append((score, edge))
        return ([(score, (edge,)) for score, edge in single] +
                [(max(s for s, _ in group), tuple(edge for _, edge in group))
                 for group in together.values() if len(group) > 1])

    def apply(key):
        for edge in key:
            fix_symbolic(model, *edge, "x", x=x)

    def revert(key):
        for edge in key:
            unfix_symbolic(model, *edge)

    def describe(key, score):
        edges = ", ".join(f"{i} -> {j}" for _, i, j in key)
        plural = "s" * (len(key) > 1)
        return f"{layers[key[0][0]].name}: edge{plural} {edges} (R^2 >= {1 - score:.4f})"

    kept = _greedy(model, x, y, candidates, apply, lambda key: None, revert, describe,
                   bound, steps, update_grid, verbose, "fixed to x")
    fixed = [{"layer": layers[index].name, "input": i, "output": j, "loss": trial}
             for key, _, trial in kept for index, i, j in key]
    return {"fixed": fixed, "reference": reference,
            "loss": kept[-1][2] if kept else reference}
