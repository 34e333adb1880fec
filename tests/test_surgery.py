"""Grid update, grid extension (refine) and pruning."""


import keras
import numpy as np
import pytest
import reference
from conftest import to_numpy

from keras_kan import KAN, KANDense, prune, refine, splines, update_grids
from keras_kan.network import layer_inputs
from keras_kan.surgery import apply_pruning_masks, pruning_plan, pruning_report


def trained_looking_layer(units=3, grid_size=5, seed=0, n=2):
    """A built layer with random (not near-zero) splines."""
    layer = KANDense(units, grid_size=grid_size, seed=seed)
    layer.build((None, n))
    # smooth edge functions sin(2x + phase): what a trained layer looks like
    knots = reference.weights(layer)["grid"]
    t = np.linspace(-1, 1, 400)[:, None].repeat(n, axis=1)
    phases = np.arange(n * units).reshape(1, n, units)
    values = np.sin(2 * t[:, :, None] + phases)
    layer.spline_kernel.assign(splines.fit_coefficients(t, values, knots, layer.spline_order))
    return layer


def spline_part(layer, x):
    """Each edge's spline term sum_p c B_p(x) in float64, (N, n, m)."""
    w = reference.weights(layer)
    return splines.spline_values_numpy(x, w["grid"], w["spline_kernel"], layer.spline_order)


def check_knots(layer):
    knots = to_numpy(layer.grid)
    assert np.all(np.isfinite(knots)), knots
    assert np.all(np.diff(knots, axis=1) > 0), knots
    assert np.all(np.isfinite(to_numpy(layer.spline_kernel)))


# ---------------------------------------------------------------- grid update
def test_update_grid_follows_data_and_preserves_splines():
    layer = trained_looking_layer()
    rng = np.random.default_rng(1)
    x = np.stack([rng.normal(0.2, 0.3, 2000), rng.uniform(-0.5, 0.8, 2000)], 1).clip(-1, 1)
    before = spline_part(layer, x)
    layer.update_grid(x.astype("float32"))
    check_knots(layer)
    knots = to_numpy(layer.grid)
    # interior ends at the sample range (2% uniform mix leaves them there)
    np.testing.assert_allclose(knots[:, 3], x.min(0), atol=1e-5)
    np.testing.assert_allclose(knots[:, -4], x.max(0), atol=1e-5)
    after = spline_part(layer, x)
    span = before.max(0) - before.min(0)
    # sparse tails get few knots, so the worst point moves more than the typical one
    assert np.all(np.abs(after - before).max(0) <= 0.02 * span)
    assert np.all(np.sqrt(((after - before) ** 2).mean(0)) <= 0.002 * span)


def test_update_grid_matches_pykan_knot_rule():
    layer = KANDense(1, grid_size=4, grid_eps=0.25, seed=0)
    x = np.random.default_rng(0).uniform(0, 1, size=(10, 1)) ** 2
    layer.update_grid(x)
    xs = np.sort(x[:, 0])
    adaptive = xs[[int(10 / 4 * p) for p in range(4)] + [-1]]
    uniform = np.linspace(xs[0], xs[-1], 5)
    interior = 0.25 * uniform + 0.75 * adaptive
    h = (interior[-1] - interior[0]) / 4
    expected = np.concatenate([interior[0] - h * np.arange(3, 0, -1), interior,
                               interior[-1] + h * np.arange(1, 4)])
    np.testing.assert_allclose(to_numpy(layer.grid)[0], expected, atol=1e-6)


@pytest.mark.parametrize(
    "case",
    ["constant_feature", "three_samples_grid_10", "duplicated_values", "huge_outlier",
     "one_sample", "grid_eps_zero"],
)
@pytest.mark.slow
def test_update_grid_is_robust(case):
    rng = np.random.default_rng(0)
    grid_size, grid_eps = (10 if case == "three_samples_grid_10" else 5), 0.02
    if case == "grid_eps_zero":
        grid_eps = 0.0
    layer = KANDense(2, grid_size=grid_size, grid_eps=grid_eps, seed=0)
    layer.build((None, 2))
    layer.spline_kernel.assign(rng.normal(size=layer.spline_kernel.shape))
    x = rng.uniform(-1, 1, size=(200, 2))
    if case == "constant_feature":
        x[:, 0] = 0.3
    elif case == "three_samples_grid_10":
        x = x[:3]
    elif case == "duplicated_values":
        x = np.repeat(x[:4], 50, axis=0)
    elif case == "huge_outlier":
        x[0, 1] = 1e6
    elif case == "one_sample":
        x = x[:1]
    elif case == "grid_eps_zero":
        x = np.round(x, 1)
    before = spline_part(layer, x)
    layer.update_grid(x.astype("float32"))
    check_knots(layer)
    out = to_numpy(layer(x.astype("float32")))
    assert np.all(np.isfinite(out))
    if case in ("constant_feature", "three_samples_grid_10", "duplicated_values", "one_sample"):
        # so few distinct points (feature 0 at least) that the new splines pass through them
        features = [0] if case == "constant_feature" else [0, 1]
        np.testing.assert_allclose(spline_part(layer, x)[:, features], before[:, features],
                                   atol=1e-3 * (1 + np.abs(before).max()))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_update_grid_rejects_non_finite_and_changes_nothing(bad):
    layer = trained_looking_layer()
    grid, coef = to_numpy(layer.grid), to_numpy(layer.spline_kernel)
    x = np.random.default_rng(0).uniform(-1, 1, size=(50, 2))
    x[3, 1] = bad
    with pytest.raises(ValueError, match="non-finite"):
        layer.update_grid(x)
    np.testing.assert_array_equal(to_numpy(layer.grid), grid)
    np.testing.assert_array_equal(to_numpy(layer.spline_kernel), coef)
    model = KAN([2, 3, 1], seed=0)
    with pytest.raises(ValueError, match="non-finite"):
        update_grids(model, x)


@pytest.mark.slow
def test_update_grids_goes_layer_by_layer():
    model = KAN([2, 4, 1], seed=0)
    x = np.random.default_rng(0).uniform(0, 1, size=(300, 2)).astype("float32")
    update_grids(model, x)
    for layer, sample in zip(model.layers, layer_inputs(model, x)):
        knots = to_numpy(layer.grid)
        np.testing.assert_allclose(knots[:, 3], sample.min(0), atol=1e-5)
        np.testing.assert_allclose(knots[:, -4], sample.max(0), atol=1e-5)


# ---------------------------------------------------------------------- refine
@pytest.mark.slow
def test_refine_preserves_outputs_and_changes_shapes(tmp_path):
    model = KAN([2, 3, 1], grid_size=5, seed=0)
    rng = np.random.default_rng(0)
    for layer in model.layers:
        layer.spline_kernel.assign(0.3 * rng.normal(size=layer.spline_kernel.shape))
    x = rng.uniform(-1, 1, size=(500, 2)).astype("float32")
    update_grids(model, x)  # hidden activations now lie inside the second layer's grid
    fine = refine(model, 10)
    assert fine is not model
    assert fine.layers[0].spline_kernel.shape == (2, 13, 3)
    assert fine.layers[1].grid.shape == (3, 17)
    assert [layer.get_config()["grid_size"] for layer in fine.layers] == [10, 10]
    np.testing.assert_allclose(to_numpy(fine(x)), to_numpy(model(x)), atol=1e-5)
    with_data = refine(model, 7, x)
    np.testing.assert_allclose(to_numpy(with_data(x)), to_numpy(model(x)), atol=2e-2)
    assert model.layers[0].grid_size == 5  # the input model is untouched


@pytest.mark.slow
def test_refined_model_trains_saves_and_keeps_compile(tmp_path):
    x = np.random.default_rng(0).uniform(-1, 1, size=(200, 2)).astype("float32")
    y = np.sin(np.pi * x[:, :1]) * x[:, 1:]
    model = KAN([2, 3, 1], grid_size=3, seed=0)
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse", metrics=["mae"])
    model.fit(x, y, epochs=2, verbose=0)
    fine = refine(model, 6, x)
    assert fine.compiled and fine.optimizer is not model.optimizer
    assert int(to_numpy(fine.optimizer.iterations)) == 0  # fresh optimizer state
    loss0 = fine.evaluate(x, y, verbose=0)[0]
    fine.fit(x, y, epochs=3, verbose=0)
    assert fine.evaluate(x, y, verbose=0)[0] < loss0
    path = str(tmp_path / "fine.keras")
    fine.save(path)
    loaded = keras.saving.load_model(path)
    assert loaded.layers[0].get_config()["grid_size"] == 6
    np.testing.assert_allclose(to_numpy(loaded(x)), to_numpy(fine(x)), atol=1e-6)


@pytest.mark.slow
def test_refine_functional_model_with_other_layers():
    inp = keras.Input((3,))
    h = keras.layers.Dense(2)(inp)
    out = KANDense(2, grid_size=4, seed=0)(h)
    model = keras.Model(inp, out)
    x = np.random.default_rng(0).uniform(-0.3, 0.3, size=(50, 3)).astype("float32")
    fine = refine(model, 8)
    np.testing.assert_allclose(to_numpy(fine(x)), to_numpy(model(x)), atol=1e-5)


def test_refine_rejects_bad_arguments():
    model = KAN([2, 1], seed=0)
    with pytest.raises(ValueError, match="grid_size"):
        refine(model, 0)
    with pytest.raises(ValueError, match="KANDense"):
        refine(keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)]), 5)


# ---------------------------------------------------------------------- pruning
def sparse_model():
    """[2, 4, 1] where hidden nodes 1 and 3 are dead (tiny in/out edges)."""
    model = KAN([2, 4, 1], seed=0)
    first, second = model.layers
    scale = np.ones((2, 4))
    scale[:, [1, 3]] = 1e-5
    first.spline_scale.assign(to_numpy(first.spline_scale) * scale)
    first.base_kernel.assign(to_numpy(first.base_kernel) * scale)
    rng = np.random.default_rng(0)
    first.spline_kernel.assign(rng.normal(size=first.spline_kernel.shape))
    return model


@pytest.mark.slow
def test_prune_removes_dead_nodes_and_matches_masked_model():
    model = sparse_model()
    x = np.random.default_rng(1).uniform(-1, 1, size=(400, 2)).astype("float32")
    report = pruning_report(model, x)
    pruned = prune(model, x)
    assert [layer.units for layer in pruned.layers] == [2, 1]
    assert report["kan_dense_0"]["removed_nodes"] == [1, 3]
    assert report["kan_dense_0"]["kept_nodes"] == [0, 2]
    plan = pruning_plan(model, x)
    apply_pruning_masks(plan)  # the masked model, same shapes
    np.testing.assert_allclose(to_numpy(pruned(x)), to_numpy(model(x)), atol=1e-6)
    assert pruned.layers[1].grid.shape == (2, 12)


@pytest.mark.slow
def test_prune_prints_report(capsys):
    x = np.random.default_rng(1).uniform(-1, 1, size=(100, 2)).astype("float32")
    prune(sparse_model(), x)
    assert capsys.readouterr().out == ""  # silent by default
    prune(sparse_model(), x, verbose=1)
    out = capsys.readouterr().out
    assert "[2, 4, 1] -> [2, 2, 1]" in out and "removed output nodes [1, 3]" in out


def test_prune_masks_weak_edges():
    model = sparse_model()
    x = np.random.default_rng(1).uniform(-1, 1, size=(400, 2)).astype("float32")
    plan = pruning_plan(model, x, node_threshold=1e-2, edge_threshold=3e-2)
    scores = plan[0]["scores"]
    expected = (scores >= 3e-2) & np.isin(np.arange(4), [0, 2])[None, :]
    np.testing.assert_array_equal(plan[0]["mask"] > 0, expected)
    np.testing.assert_allclose(scores, reference.edge_scores(model.layers[0], x), rtol=1e-4,
                               atol=1e-6)


def test_prune_to_zero_hidden_nodes_raises():
    model = KAN([2, 3, 1], seed=0)
    model.layers[1].spline_scale.assign(np.zeros((3, 1)))
    model.layers[1].base_kernel.assign(np.zeros((3, 1)))
    x = np.random.default_rng(0).uniform(-1, 1, size=(50, 2)).astype("float32")
    with pytest.raises(ValueError, match="every node"):
        prune(model, x)


def test_prune_works_on_a_reloaded_model(tmp_path):
    path = str(tmp_path / "sparse.keras")
    sparse_model().save(path)
    reloaded = keras.saving.load_model(path)
    x = np.random.default_rng(1).uniform(-1, 1, size=(200, 2)).astype("float32")
    assert [layer.units for layer in prune(reloaded, x, verbose=False).layers] == [2, 1]


def test_prune_functional_chain():
    inp = keras.Input((2,))
    out = KANDense(1, seed=1, name="b")(KANDense(4, seed=0, name="a")(inp))
    model = keras.Model(inp, out)
    source = sparse_model()
    for name, src in zip(("a", "b"), source.layers):
        model.get_layer(name).set_weights(src.get_weights())
    x = np.random.default_rng(1).uniform(-1, 1, size=(200, 2)).astype("float32")
    pruned = prune(model, x, verbose=False)
    assert [layer.units for layer in pruned.layers[1:]] == [2, 1]
    apply_pruning_masks(pruning_plan(model, x))
    np.testing.assert_allclose(to_numpy(pruned(x)), to_numpy(model(x)), atol=1e-6)


@pytest.mark.slow
def test_pruned_model_trains_and_saves(tmp_path):
    model = sparse_model()
    model.compile(optimizer="adam", loss="mse")
    x = np.random.default_rng(1).uniform(-1, 1, size=(100, 2)).astype("float32")
    pruned = prune(model, x, verbose=False)
    assert pruned.compiled
    pruned.fit(x, x[:, :1], epochs=1, verbose=0)
    path = str(tmp_path / "pruned.keras")
    pruned.save(path)
    loaded = keras.saving.load_model(path)
    assert [layer.units for layer in loaded.layers] == [2, 1]
    np.testing.assert_allclose(to_numpy(loaded(x)), to_numpy(pruned(x)), atol=1e-6)


@pytest.mark.slow
def test_quickstart_prunes_to_the_one_node_the_function_needs(first_example):
    """The canonical run (the README's first example): pykan's seed-0 start, 20 L-BFGS
    steps with lamb=0.01, lamb_entropy=10, then prune -> [2, 1, 1] (as pykan does)."""
    pruned = first_example["model"]
    assert "[2, 5, 1] -> [2, 1, 1]" in first_example["printed"]
    assert [pruned.layers[0].grid.shape[0]] + [layer.units for layer in pruned.layers] == [2, 1, 1]


def _small_node_steep_read():
    """`y = 100 * (0.01 x_1) + x_2` through a [2, 2, 1] KAN of symbolic edges: hidden
    node 0 is small and read steeply, so its input edge's score is 0.01-sized."""
    from keras_kan.symbolic import fix_symbolic

    model = KAN([2, 2, 1], seed=0)
    for layer in model.layers:
        layer.edge_mask.assign(np.zeros(tuple(layer.edge_mask.shape), "float32"))
    fix_symbolic(model, 0, 0, 0, "x", fit_params=False, params=(1, 0, 0.01, 0))
    fix_symbolic(model, 0, 1, 1, "x", fit_params=False)
    fix_symbolic(model, 1, 0, 0, "x", fit_params=False, params=(1, 0, 100, 0))
    fix_symbolic(model, 1, 1, 0, "x", fit_params=False)
    return model


def test_prune_attribution_scores_keep_a_small_node_read_steeply():
    """pykan 0.2.8's attribution scores are shares of the output's variation: the edge
    into a small node that a steep edge reads keeps its score (about 0.5 here), where
    the edge score (`std(phi) / (std(x) + 0.1)`, about 0.009) masks it and loses x_1."""
    from keras_kan.attribution import layer_scores

    model = _small_node_steep_read()
    x = np.random.default_rng(3).uniform(-1, 1, size=(400, 2)).astype("float32")
    expected = x[:, :1] + x[:, 1:]
    np.testing.assert_allclose(to_numpy(model(x)), expected, atol=1e-5)
    edge = pruning_plan(model, x)
    assert edge[0]["mask"].sum() + edge[0]["symbolic_mask"].sum() == 1  # x_1's edge masked
    plan = pruning_plan(model, x, scores="attribution")
    node_scores, edge_scores = layer_scores(model, x)
    np.testing.assert_allclose(plan[0]["scores"], edge_scores[0])
    assert plan[0]["scores"][0, 0] > 0.3 and plan[0]["keep_out"].tolist() == [0, 1]
    assert pruning_report(model, x, scores="attribution")["kan_dense_0"]["masked_edges"] == 2
    pruned = prune(model, x, scores="attribution")
    np.testing.assert_allclose(to_numpy(pruned(x)), expected, atol=1e-5)


def test_prune_attribution_scores_remove_a_node_that_does_not_reach_the_output():
    model = _small_node_steep_read()
    from keras_kan.symbolic import fix_symbolic

    fix_symbolic(model, 1, 0, 0, "x", fit_params=False, params=(1, 0, 1e-3, 0))  # node 0 muted
    x = np.random.default_rng(4).uniform(-1, 1, size=(400, 2)).astype("float32")
    report = pruning_report(model, x, scores="attribution")
    assert report["kan_dense_0"]["removed_nodes"] == [0]
    with pytest.raises(ValueError, match="scores"):
        prune(model, x, scores="share")
