"""keras_kan.products (MultNodes) and `KAN(width=[..., [n_sum, n_mult], ...])`.

References: a float64 NumPy re-derivation of pykan 0.2.8's MultKAN forward pass
(subnode affine, products of consecutive subnodes, node affine), written here
from the formula, with the KANDense part from tests/reference.py.
"""

import keras
import numpy as np
import pytest
from conftest import BACKEND, to_numpy
from reference import forward as kan_dense_forward

from keras_kan import KAN, KANDense, MultNodes, fit_lbfgs, refine
from keras_kan.callbacks import GridUpdate, Pruning
from keras_kan.models import parse_width
from keras_kan.network import layer_inputs
from keras_kan.surgery import update_grids

BACKENDS = ("tensorflow", "jax", "torch")


def reference_mult(u, n_sum, arity, w):
    """pykan's step, node by node: (N, n_sum + sum(arity)) -> (N, n_sum + len(arity))."""
    s = u * w["subnode_scale"] + w["subnode_bias"]
    cols, start = [s[:, j] for j in range(n_sum)], n_sum
    for a in arity:
        product = np.ones(len(u))
        for q in range(start, start + a):
            product = product * s[:, q]
        cols.append(product)
        start += a
    return np.stack(cols, axis=1) * w["node_scale"] + w["node_bias"]


def reference_model(model, x):
    out = np.asarray(x, np.float64)
    for layer in model.layers:
        if isinstance(layer, KANDense):
            out = kan_dense_forward(layer, out)
        else:
            w = {name: to_numpy(getattr(layer, name)) for name in
                 ("subnode_scale", "subnode_bias", "node_scale", "node_bias")}
            out = reference_mult(out, layer.n_sum, layer.arity, w)
    return out


def randomize_affine(model, seed=0):
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, MultNodes):
            for name in ("subnode_scale", "subnode_bias", "node_scale", "node_bias"):
                var = getattr(layer, name)
                var.assign(rng.uniform(-1.5, 1.5, var.shape).astype("float32"))


def test_parse_width_follows_pykan():
    assert parse_width([2, [1, 1], 1]) == (2, [(1, [2]), (1, [])])
    assert parse_width([[2, 0], [0, 2], 3], 3) == (2, [(0, [3, 3]), (3, [])])
    assert parse_width([2, [1, 2], [0, 1]], [[], [2, 3], [4]]) == (
        2, [(1, [2, 3]), (0, [4])])


@pytest.mark.parametrize("width, arity, match", [
    ([2, [1, -1], 1], 2, "width"), ([2, [0, 0], 1], 2, "no node"),
    ([[2, 1], 3, 1], 2, "inputs"), ([2, [1, 1, 0], 1], 2, "width"),
    ([2, [1, 1], 1], 1, "mult_arity"), ([2, [1, 2], 1], [[], [2], []], "mult_arity"),
    ([2, [1, 1], 1], [[2]], "mult_arity"), ([2, [1, 1], 1], True, "mult_arity"),
])
def test_bad_widths_and_arities_are_clear_errors(width, arity, match):
    with pytest.raises(ValueError, match=match):
        KAN(width, mult_arity=arity)


def test_layer_structure_and_first_call():
    model = KAN([2, [1, 1], 1], mult_arity=2, seed=0)
    assert [type(layer) for layer in model.layers] == [KANDense, MultNodes, KANDense]
    assert model.layers[0].units == 3 and model.layers[1].units == 2
    assert model.layers[2].input_dim == 2
    out = MultNodes(1, [2])(np.array([[1.0, 2.0, 3.0]], "float32"))
    np.testing.assert_allclose(to_numpy(out), [[1.0, 6.0]])
    with pytest.raises(ValueError, match="arity"):
        MultNodes(1, [1])
    with pytest.raises(ValueError, match="subnodes"):
        MultNodes(1, [2]).build((None, 4))


@pytest.mark.parametrize("width, arity", [
    ([3, [2, 2], 2], 2),                          # one arity: strided slices
    ([3, [1, 2], [1, 1]], [[], [2, 3], [3]]),     # mixed arities, mult nodes in the output
    ([2, [0, 1], 1], 3),                          # arity 3
])
def test_forward_matches_numpy_reference(width, arity):
    model = KAN(width, mult_arity=arity, seed=1)
    randomize_affine(model)
    x = np.random.default_rng(2).uniform(-1, 1, (32, width[0])).astype("float32")
    want = reference_model(model, x)
    np.testing.assert_allclose(to_numpy(model(x)), want, rtol=2e-5, atol=2e-6)
    layer = [layer for layer in model.layers if isinstance(layer, MultNodes)][0]
    u = np.random.default_rng(3).normal(size=(5, layer.n_subnodes))
    np.testing.assert_allclose(layer.numpy_call(u), reference_mult(u, layer.n_sum, layer.arity,
                                                                   layer.affine()), rtol=1e-12)


def test_affine_frozen_by_default_and_trainable_on_request():
    frozen = KAN([2, [1, 1], 1], seed=0)
    assert all(not v.trainable for v in frozen.layers[1].weights)
    trainable = KAN([2, [1, 1], 2], seed=0, affine_trainable=True)
    # as in pykan every layer gets its affine maps when they train
    assert [type(layer) for layer in trainable.layers] == [KANDense, MultNodes] * 2
    assert all(v.trainable for layer in trainable.layers[1::2] for v in layer.weights)
    x = np.random.default_rng(0).uniform(-1, 1, (64, 2)).astype("float32")
    y = x[:, :1] * x[:, 1:] + 0.5 * x[:, :1]
    y = np.concatenate([y, y], axis=1)
    trainable.compile(loss="mse")
    before = to_numpy(trainable.layers[1].node_bias)
    fit_lbfgs(trainable, x, y, steps=3, verbose=0)
    assert not np.allclose(to_numpy(trainable.layers[1].node_bias), before)


def test_default_init_moves_and_stays_finite():
    """pykan's first stage on x1*x2: from the default init the loss falls at once."""
    x = np.random.default_rng(0).uniform(-1, 1, (256, 2)).astype("float32")
    y = x[:, :1] * x[:, 1:]
    model = KAN([2, [0, 1], 1], grid_size=5, seed=0)
    model.compile(loss="mse")
    loss = fit_lbfgs(model, x, y, steps=8, verbose=0).history["loss"]
    assert np.all(np.isfinite(loss)) and loss[-1] < 0.1 * float(np.mean(y**2))


def test_product_offset_starts_off_the_saddle():
    """Without a base branch the subnodes start as spline noise: the offset start makes the
    node a sum of its subnodes to first order, and the saddle's gradient is not small."""
    model = KAN([2, [0, 1], 1], use_base=False, product_offset=1.0, seed=0)
    layer = model.layers[1]
    np.testing.assert_allclose(to_numpy(layer.subnode_bias), [1, 1])
    np.testing.assert_allclose(to_numpy(layer.node_bias), [-1])
    u = np.array([[0.01, -0.02]])
    np.testing.assert_allclose(layer.numpy_call(u), [[0.01 - 0.02 - 0.0002]], rtol=1e-12)


def test_round_trip_and_cross_backend_load(tmp_path, other_backends):
    model = KAN([3, [1, 2], [1, 1]], mult_arity=[[], [2, 3], [2]], seed=0)
    randomize_affine(model)
    x = np.random.default_rng(4).uniform(-1, 1, (16, 3)).astype("float32")
    model_path, io_path = str(tmp_path / "m.keras"), str(tmp_path / "io.npz")
    model.save(model_path)
    np.savez(io_path, x=x, y=to_numpy(model(x)))
    loaded = keras.saving.load_model(model_path)
    assert loaded.layers[1].get_config()["arity"] == [2, 3]
    np.testing.assert_allclose(to_numpy(loaded(x)), to_numpy(model(x)), rtol=1e-6, atol=1e-7)
    for other in BACKENDS:
        if other != BACKEND:
            status, printed = other_backends.run(other, "crossload", "main", model_path, io_path)
            assert status == 0 and "max_abs_diff" in printed, (other, printed)


def test_loading_is_strict():
    layer = MultNodes(1, [2])
    layer.build((None, 3))
    store = {"subnode_scale": np.ones(3), "subnode_bias": np.zeros(3),
             "node_scale": np.ones(2), "node_bias": np.zeros(3)}
    with pytest.raises(ValueError, match="node_bias"):
        layer.load_own_variables(store)
    store["node_bias"] = np.array([0.0, np.nan])
    with pytest.raises(ValueError, match="non-finite"):
        layer.load_own_variables(store)
    del store["node_bias"]
    with pytest.raises(ValueError, match="no 'node_bias'"):
        layer.load_own_variables(store)


def test_prune_removes_a_weak_mult_node_with_its_subnodes():
    from keras_kan import prune, pruning_report

    model = KAN([2, [1, 2], 1], seed=0)
    randomize_affine(model, seed=5)
    mask = np.ones((2, 5), "float32")
    mask[:, 3:5] = 0  # mult node 2 (subnodes 3, 4) gets no input: a dead node
    model.layers[0].edge_mask.assign(mask)
    x = np.random.default_rng(6).uniform(-1, 1, (200, 2)).astype("float32")
    report = pruning_report(model, x, edge_threshold=0.0)
    assert report["kan_dense_0"]["removed_mult_nodes"] == [2]
    assert report["kan_dense_0"]["removed_nodes"] == [3, 4]
    masked = keras.models.clone_model(model)
    masked.set_weights(model.get_weights())
    masked.layers[2].edge_mask.assign(np.array([[1], [1], [0]], "float32"))
    pruned = prune(model, x, edge_threshold=0.0)
    assert pruned.layers[0].units == 3 and pruned.layers[1].arity == [2]
    assert pruned.layers[2].input_dim == 2
    np.testing.assert_allclose(to_numpy(pruned(x)), to_numpy(masked(x)), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(to_numpy(pruned.layers[1].node_scale),
                               to_numpy(model.layers[1].node_scale)[:2])


def test_symbolic_formula_composes_products_of_every_arity():
    """Symbolic edges set by hand: the formula is the products of the subnode formulas."""
    import sympy

    from keras_kan import symbolic

    model = KAN([3, [1, 1], 1], mult_arity=3, seed=0)
    # subnode 0 = x_1; subnodes 1..3 = x_1, 2*x_2, x_3**2 (arity 3); output = node_0 + node_1
    fixes = {(0, 0): "x", (0, 1): "x", (1, 2): "x", (2, 3): "x^2"}
    for i in range(3):
        for j in range(4):
            name = fixes.get((i, j), "0")
            params = (1.0, 0.0, 2.0 if (i, j) == (1, 2) else 1.0, 0.0)
            symbolic.fix_symbolic(model, 0, i, j, name, fit_params=False, params=params)
    for i in range(2):
        symbolic.fix_symbolic(model, 1, i, 0, "x", fit_params=False)
    model.layers[1].node_scale.assign(np.array([1.0, 0.5], "float32"))
    model.layers[1].subnode_bias.assign(np.array([0.0, 0.0, 1.0, 0.0], "float32"))
    x1, x2, x3 = sympy.symbols("x_1:4")
    formula = symbolic.symbolic_formula(model, snap=False, precision=None)
    truth = x1 + sympy.Rational(1, 2) * x1 * (2 * x2 + 1) * x3**2
    assert sympy.simplify(sympy.nsimplify(formula) - truth) == 0, formula
    data = np.random.default_rng(0).uniform(-1, 1, (64, 3)).astype("float32")
    want = to_numpy(model(data))
    got = sympy.lambdify((x1, x2, x3), truth, "numpy")(*data.T.astype(np.float64))
    np.testing.assert_allclose(want[:, 0], got, rtol=1e-5, atol=1e-6)



def test_feature_scores_reach_inputs_through_products_and_plot_draws_squares(tmp_path):
    """Attribution: each subnode of a mult node takes its node's score (pykan); an input
    whose edges are all masked scores 0. The plot draws the mult node's row."""
    from keras_kan import feature_scores, plot_kan, prune_input

    model = KAN([3, [0, 1], 1], seed=0)
    mask = np.ones((3, 2), "float32")
    mask[2] = 0  # x_3 reaches nothing
    model.layers[0].edge_mask.assign(mask)
    x = np.random.default_rng(0).uniform(-1, 1, (128, 3)).astype("float32")
    scores = feature_scores(model, x)
    assert scores.shape == (3,) and scores[2] == 0 and scores[:2].min() > 0
    smaller = prune_input(model, x, threshold=1e-3)
    assert [type(layer) for layer in smaller.layers] == [KANDense, MultNodes, KANDense]
    np.testing.assert_allclose(to_numpy(smaller(x[:, :2])), to_numpy(model(x)), rtol=1e-5,
                               atol=1e-6)
    fig = plot_kan(model, x, to_file=str(tmp_path / "m.png"))
    network = [ax for ax in fig.axes if ax.get_label() == "kan_network"][0]
    assert any(t.get_text() == "×" for t in network.texts)


def _trained_looking_mult_model(seed=0):
    """`[2, [1, 1], 1]` with random splines and affine maps, grids moved to the data."""
    model = KAN([2, [1, 1], 1], grid_size=5, seed=seed)
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, KANDense):
            layer.spline_kernel.assign(
                (0.3 * rng.normal(size=layer.spline_kernel.shape)).astype("float32"))
    randomize_affine(model, seed)
    x = rng.uniform(-1, 1, (300, 2)).astype("float32")
    update_grids(model, x)  # the products' range now lies inside the next grid
    return model, x


def test_update_grids_and_refine_keep_a_mult_models_function():
    model, x = _trained_looking_mult_model()
    before = to_numpy(model(x))
    update_grids(model, x)  # grids already on the data: a refit on the same knots
    np.testing.assert_allclose(to_numpy(model(x)), before, atol=2e-2 * np.ptp(before))
    before = to_numpy(model(x))
    # each KANDense's knots follow its own inputs: the second layer's are the products
    second = layer_inputs(model, x)[1]
    np.testing.assert_allclose(to_numpy(model.layers[2].grid)[:, 3], second.min(0), atol=1e-5)
    fine = refine(model, 10)  # nested knots: the same splines, exactly
    assert [type(layer) for layer in fine.layers] == [KANDense, MultNodes, KANDense]
    assert fine.layers[1].arity == [2] and fine.layers[0].grid_size == 10
    for name in ("subnode_scale", "node_bias"):
        np.testing.assert_array_equal(to_numpy(getattr(fine.layers[1], name)),
                                      to_numpy(getattr(model.layers[1], name)))
    np.testing.assert_allclose(to_numpy(fine(x)), before, atol=1e-5 * max(1, np.abs(before).max()))


@pytest.mark.slow
def test_grid_update_and_pruning_callbacks_train_a_mult_model():
    x = np.random.default_rng(3).uniform(-1, 1, (256, 3)).astype("float32")
    y = x[:, :1] * x[:, 1:2] + 0.5 * x[:, :1]  # x_3 is noise: its edges get masked
    model = KAN([3, [1, 1], 1], grid_size=5, seed=0)
    model.compile(loss="mse")
    grid, pruning = GridUpdate(every=2, stop_after=4), Pruning(at_step=4, edge_threshold=0.05)
    loss = fit_lbfgs(model, x, y, steps=8, callbacks=[grid, pruning], verbose=0).history["loss"]
    assert grid.updates == 2 and pruning.plan is not None
    assert np.all(np.isfinite(loss)) and loss[-1] < 0.1 * loss[0]
    mask = to_numpy(model.layers[0].edge_mask)
    assert mask.shape == (3, 3) and not mask[2].any()  # x_3 reaches no subnode
    assert to_numpy(model.layers[0].grid)[0, 3] == pytest.approx(float(x[:, 0].min()), abs=1e-5)


def test_prune_keeps_a_products_offset():
    """A constant edge into a factor scores 0 and is masked; its value moves into the
    subnode's bias, so `x_1 * (x_2 + 0.8)` does not become `x_1 * x_2`."""
    from keras_kan import prune
    from keras_kan.symbolic import fix_symbolic

    model = KAN([2, [0, 1], 1], seed=0)
    layer = model.layers[0]
    layer.edge_mask.assign(np.zeros((2, 2), "float32"))
    fix_symbolic(model, 0, 0, 0, "x", fit_params=False)                       # x_1
    fix_symbolic(model, 0, 1, 1, "x", fit_params=False)                       # x_2
    fix_symbolic(model, 0, 0, 1, "x", fit_params=False, params=(1, 0, 0, 0.8))  # 0.8
    fix_symbolic(model, 1, 0, 0, "x", fit_params=False)
    x = np.random.default_rng(7).uniform(-1, 1, (128, 2)).astype("float32")
    expected = x[:, :1] * (x[:, 1:] + 0.8)
    np.testing.assert_allclose(to_numpy(model(x)), expected, atol=1e-6)
    pruned = prune(model, x)
    assert not to_numpy(pruned.layers[0].symbolic_mask)[0, 1]  # the constant edge is gone
    np.testing.assert_allclose(to_numpy(pruned.layers[1].subnode_bias), [0, 0.8], atol=1e-6)
    np.testing.assert_allclose(to_numpy(pruned(x)), expected, atol=1e-5)
