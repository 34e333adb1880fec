"""Symbolic edges inside KANDense: library, in-place fixing, training, saving, quickstart."""

import os
import sys

import keras
import numpy as np
import pytest
from conftest import BACKEND, gradient_of, to_numpy

import keras_kan
from keras_kan import KAN, KANDense, edges, fit_lbfgs, splines, symbolic_edges, symbolic_library

sympy = pytest.importorskip("sympy")

from keras_kan import symbolic  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
BACKENDS = ("tensorflow", "jax", "torch")

# edge i -> 0 of the hand-made layer: (function, input range, expected name, (a, b, c, d))
EDGES = [
    (lambda v: 2 * np.sin(3 * v + 1) - 0.5, (-1.0, 1.0), "sin", (3, 1, 2, -0.5)),
    (lambda v: v**2, (-1.0, 1.0), "x^2", (1, 0, 1, 0)),
    (np.exp, (-1.0, 1.0), "exp", (1, 0, 1, 0)),
    (lambda v: 1 / v, (0.5, 2.0), "1/x", (1, 0, 1, 0)),
    (np.log, (0.5, 2.0), "log", (1, 0, 1, 0)),
]


def hand_made_layer(grid_size=30):
    """One KANDense whose edge i -> 0 is a spline fit of EDGES[i] on its own range."""
    n = len(EDGES)
    layer = KANDense(1, grid_size=grid_size, seed=0)
    layer.build((None, n))
    knots = np.stack([splines.uniform_knots(r, grid_size, 3) for _, r, _, _ in EDGES])
    grid = np.linspace(0, 1, 600)
    xs = np.stack([lo + (hi - lo) * grid for _, (lo, hi), _, _ in EDGES], axis=1)
    targets = np.zeros((grid.size, n, 1))
    for i, (fn, _, _, _) in enumerate(EDGES):
        targets[:, i, 0] = fn(xs[:, i])
    layer.set_spline(knots, splines.fit_coefficients(xs, targets, knots, 3))
    layer.base_kernel.assign(np.zeros((n, 1), "float32"))
    layer.spline_scale.assign(np.ones((n, 1), "float32"))
    return layer


def edge_inputs(count=500, seed=0):
    u = np.random.default_rng(seed).uniform(0, 1, (count, len(EDGES)))
    return np.stack([lo + (hi - lo) * u[:, i] for i, (_, (lo, hi), _, _) in
                     enumerate(EDGES)], axis=1).astype("float32")


@pytest.mark.slow
def test_auto_symbolic_finds_each_edge_and_the_model_equals_its_formula(capsys):
    model = keras.Sequential([keras.Input((len(EDGES),)), hand_made_layer()])
    x = edge_inputs()
    assert symbolic.auto_symbolic(model, x, verbose=1) is None
    printed = capsys.readouterr().out
    report = symbolic.symbolic_report(model)
    assert list(report) == [(0, i, 0) for i in range(len(EDGES))]
    for i, (_, _, name, params) in enumerate(EDGES):
        edge = report[(0, i, 0)]
        fit = symbolic.suggest_symbolic(model, 0, i, 0, x, lib=[name])[0]  # its R^2
        assert edge["name"] == name and fit.r2 > 0.9999, (i, edge, fit)
        assert f"edge {i} -> 0: {name}" in printed
        np.testing.assert_allclose(edge["params"][:3], params[:3], atol=1e-2)
    layer = model.layers[0]
    assert layer.get_config()["symbolic_functions"] == [[i, 0, e[2]] for i, e in enumerate(EDGES)]
    assert not to_numpy(layer.edge_mask).any() and to_numpy(layer.symbolic_mask).all()
    # the model is now the formula: sympy's lambdify of it, to float32 rounding
    expr = symbolic.symbolic_formula(model, snap=False, precision=None)
    symbols = sympy.symbols(f"x_1:{len(EDGES) + 1}")
    f = sympy.lambdify(symbols, expr, "numpy")
    expected = f(*x.astype(np.float64).T)
    np.testing.assert_allclose(to_numpy(model(x))[:, 0], expected, atol=1e-5)
    # the default print is short and exact for the first edge's constants
    assert "sin(3.0*x_1 + 1.0)" in str(symbolic.symbolic_formula(model, precision=3)).replace(
        "3*x_1", "3.0*x_1").replace("+ 1)", "+ 1.0)")


@pytest.mark.slow
def test_fix_unfix_and_both_modes_in_place():
    model = KAN([2, 2, 1], seed=0)
    x = np.random.default_rng(1).uniform(-1, 1, (64, 2)).astype("float32")
    numeric = to_numpy(model(x))
    layer = model.layers[0]
    assert len(model.trainable_variables) == 6  # symbolic a..d not trainable yet
    symbolic.fix_symbolic(model, 0, 1, 0, "sin", fit_params=False, params=(2, 0.3, 1, 0),
                          verbose=False)
    assert symbolic.symbolic_report(model)[(0, 1, 0)]["name"] == "sin"
    assert len(model.trainable_variables) == 10
    phi = keras.ops.convert_to_numpy(layer.edge_activations(x))
    np.testing.assert_allclose(phi[:, 1, 0], np.sin(2 * x[:, 1] + 0.3), atol=1e-6)
    symbolic.fix_symbolic(model, "kan_dense_1", 1, 0, "x", fit_params=True, x=x, mode="both",
                          verbose=False)
    second = model.layers[1]
    assert to_numpy(second.edge_mask)[1, 0] == 1 and to_numpy(second.symbolic_mask)[1, 0] == 1
    report = symbolic.symbolic_report(model)
    assert {key: edge["mode"] for key, edge in report.items()} == {
        (0, 1, 0): "symbolic", (1, 1, 0): "both"}
    assert symbolic.unfix_symbolic(model, verbose=False) is None
    assert symbolic.symbolic_report(model) == {}
    np.testing.assert_allclose(to_numpy(model(x)), numeric, atol=1e-6)
    assert len(model.trainable_variables) == 6
    with pytest.raises(ValueError, match="Unknown symbolic function 'cosh'"):
        symbolic.fix_symbolic(model, 0, 0, 0, "cosh", fit_params=False)
    with pytest.raises(ValueError, match="needs `x`"):
        symbolic.fix_symbolic(model, 0, 0, 0, "sin")
    with pytest.raises(ValueError, match="argument `j`"):
        symbolic.fix_symbolic(model, 0, 0, 7, "sin", fit_params=False)


@pytest.mark.parametrize("trainer", ["fit", "fit_lbfgs"])
@pytest.mark.slow
def test_training_moves_a_b_c_d_towards_the_target(trainer):
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (256, 1)).astype("float32")
    y = (1.5 * np.sin(2.0 * x + 0.5) + 0.2).astype("float32")
    model = keras.Sequential([keras.Input((1,)), KANDense(1, seed=0)])
    symbolic.fix_symbolic(model, 0, 0, 0, "sin", fit_params=False, params=(1.8, 0.4, 1.2, 0.0),
                          verbose=False)
    model.compile(optimizer=keras.optimizers.Adam(0.02), loss="mse")
    before = model.evaluate(x, y, verbose=0)
    if trainer == "fit":
        model.fit(x, y, epochs=20, batch_size=32, verbose=0)
        assert model.evaluate(x, y, verbose=0) < 0.2 * before
    else:
        fit_lbfgs(model, x, y, steps=20, verbose=0)
        layer = model.layers[0]
        got = [float(to_numpy(getattr(layer, f"symbolic_{p}"))[0, 0]) for p in "abcd"]
        np.testing.assert_allclose(got, [2.0, 0.5, 1.5, 0.2], atol=1e-3)


def test_numeric_layers_get_no_symbolic_work():
    layer = KAN([3, 2], seed=0).layers[0]
    assert edges.symbolic_output(edges.OPS, keras.ops.zeros((4, 3)), layer.edge_params()) is None
    assert not any(getattr(layer, w).trainable for w in symbolic_edges.SYMBOLIC_WEIGHT_NAMES)


@pytest.mark.parametrize("name", sorted(symbolic_library.registered_names(builtin=True)))
@pytest.mark.slow
def test_library_functions_are_finite_with_finite_gradients_everywhere(name):
    fn = symbolic_library.get_function(name)
    u = np.array([-1e6, -3.0, -1.0, -0.5, -1e-12, 0.0, 1e-12, 0.5, 1.0, np.pi / 2, 3.0, 100.0,
                  1e6], "float32")
    values = to_numpy(fn.keras(keras.ops.convert_to_tensor(u)))
    assert np.all(np.isfinite(values)), (name, values)
    grads = gradient_of(lambda t: keras.ops.sum(fn.keras(t)), u)
    assert np.all(np.isfinite(grads)), (name, grads)
    # the float64 NumPy twin (analysis, plots) agrees; loosely where float32
    # rounding of a clipping threshold moves a steep function
    np.testing.assert_allclose(fn.numpy(u.astype(np.float64)), values, rtol=2e-3, atol=1e-5)
    inside = {"log": 0.7, "sqrt": 0.7, "1/x": 0.7, "tan": 0.7, "arctanh": 0.7, "1/x^3": -0.7}
    if name in inside:  # the exact function inside its domain
        exact = {"log": np.log, "sqrt": np.sqrt, "1/x": lambda v: 1 / v, "tan": np.tan,
                 "arctanh": np.arctanh, "1/x^3": lambda v: v**-3.0}[name]
        got = to_numpy(fn.keras(keras.ops.convert_to_tensor([inside[name]], "float32")))
        np.testing.assert_allclose(got, exact(np.float32(inside[name])), rtol=1e-6)


def mixed_model():
    """Numeric, symbolic and both kinds of edges, including a user function."""
    model = KAN([3, 2, 1], seed=3)
    symbolic.fix_symbolic(model, 0, 0, 0, "sin", fit_params=False, params=(2, 0.1, 0.5, 0.2),
                          verbose=False)
    symbolic.fix_symbolic(model, 0, 2, 1, "1/x", fit_params=False, params=(1, 2.5, 0.3, 0),
                          mode="both", verbose=False)
    symbolic.fix_symbolic(model, 1, 1, 0, "exp", fit_params=False, params=(0.5, 0, 1, -1),
                          verbose=False)
    return model


def register_cosh2():
    symbolic_library.add_symbolic("cosh2", lambda u: keras.ops.cosh(2 * u),
                                  lambda u: sympy.cosh(2 * u), complexity=3)


@pytest.mark.slow
def test_save_load_safe_mode_on_every_backend(tmp_path, other_backends):
    plain = mixed_model()
    custom = mixed_model()
    register_cosh2()
    try:
        save_and_load_everywhere(tmp_path, plain, custom, other_backends)
    finally:
        symbolic_library.remove_symbolic("cosh2")


def save_and_load_everywhere(tmp_path, plain, custom, other_backends):
    x = np.random.default_rng(0).uniform(-1, 1, (32, 3)).astype("float32")
    symbolic.fix_symbolic(custom, 1, 0, 0, "cosh2", fit_params=False, params=(1, 0, 0.1, 0),
                          verbose=False)
    paths = {}
    for tag, model in (("plain", plain), ("custom", custom)):
        paths[tag] = (str(tmp_path / f"{tag}.keras"), str(tmp_path / f"{tag}.npz"))
        model.save(paths[tag][0])
        np.savez(paths[tag][1], x=x, y=to_numpy(model(x)))
        loaded = keras.saving.load_model(paths[tag][0], safe_mode=True)
        np.testing.assert_array_equal(to_numpy(loaded(x)), to_numpy(model(x)))
        assert loaded.layers[0].get_config() == model.layers[0].get_config()
    for other in BACKENDS:
        if other == BACKEND:
            continue
        status, printed = other_backends.run(other, "crossload_symbolic", "main",
                                             *paths["plain"], *paths["custom"])
        assert status == 0, (other, printed)
        assert "unregistered: ValueError" in printed and "custom ok" in printed, printed


def test_old_files_without_symbolic_weights_still_load():
    saved = os.path.join(HERE, "..", "saved_models", f"golden_{BACKEND}.keras")
    model = keras.saving.load_model(saved)
    assert model.layers[0].get_config()["symbolic_functions"] == []
    assert not to_numpy(model.layers[0].symbolic_mask).any()


@pytest.mark.slow
def test_prune_and_refine_keep_symbolic_edges():
    model = mixed_model()
    x = np.random.default_rng(0).uniform(-1, 1, (128, 3)).astype("float32")
    finer = keras_kan.refine(model, 10, x)
    assert finer.layers[0].get_config()["symbolic_functions"] == \
        model.layers[0].get_config()["symbolic_functions"]
    # zero thresholds keep every edge: the pruned copy keeps the functions and outputs
    pruned = keras_kan.prune(model, x, node_threshold=0.0, edge_threshold=0.0)
    for before, after in zip(model.layers, pruned.layers):
        assert after.get_config()["symbolic_functions"] == \
            before.get_config()["symbolic_functions"]
    np.testing.assert_allclose(to_numpy(pruned(x)), to_numpy(model(x)), atol=1e-6)
    sub = model.layers[0].get_subset([2, 0], [1, 0])
    assert sub.get_config()["symbolic_functions"] == [[0, 0, "1/x"], [1, 1, "sin"]]
    phi = to_numpy(model.layers[0].edge_activations(x))  # (N, 3, 2)
    expected = phi[:, [2, 0], :][:, :, [1, 0]].sum(axis=1)
    np.testing.assert_allclose(to_numpy(sub(x[:, [2, 0]])), expected, atol=1e-5)


@pytest.mark.slow
def test_quickstart_symbolic_stage_is_exact(first_example):
    """The quickstart's symbolic stage on the canonical run's trained, pruned model."""
    sys.path.insert(0, os.path.join(HERE, "..", "examples"))
    import quickstart

    model = keras.saving.load_model(first_example["path"])  # our own copy: this test edits it
    train = first_example["x"], first_example["y"]
    test = first_example["x_test"], first_example["y_test"]
    expr, test_rmse = quickstart.symbolic_stage(model, train, test)
    assert test_rmse <= 1e-5, test_rmse
    x1, x2 = sympy.symbols("x_1 x_2")
    numbers = sorted(float(f) for f in expr.atoms(sympy.Number) if f not in (1, -1, 2))
    assert [str(fn.func) for fn in sorted(expr.atoms(sympy.Function), key=str)] == ["cos", "exp"]
    pi_coefficient = float(expr.atoms(sympy.cos).pop().args[0].coeff(x1))
    assert abs(pi_coefficient - np.pi) < 1e-3, expr
    assert all(min(abs(v), abs(abs(v) - np.pi), abs(abs(v) - 1)) < 1e-3 for v in numbers), expr
    exact = sympy.exp(sympy.cos(sympy.pi * x1) + x2**2)
    f = sympy.lambdify((x1, x2), expr - exact, "numpy")
    assert np.max(np.abs(f(*test[0].astype(np.float64).T))) < 2e-3


# ---------------------------------------------------------------- attribution
@pytest.mark.slow
def test_feature_scores_match_a_direct_computation_and_prune_input_is_exact():
    model = KAN([4, 3, 2], seed=1)
    first = model.layers[0]
    mask = np.ones((4, 3), "float32")
    mask[2] = 0  # input x_3 reaches nothing
    first.edge_mask.assign(mask)
    symbolic.fix_symbolic(model, 1, 0, 1, "sin", fit_params=False, params=(2, 0, 1, 0),
                          verbose=False)
    x = np.random.default_rng(0).uniform(-1, 1, (300, 4)).astype("float32")
    scores = keras_kan.feature_scores(model, x)
    nodes, edges = keras_kan.layer_scores(model, x)
    np.testing.assert_array_equal(nodes[0], scores)
    # reference: the Keras forward pass's own edge values, pykan's recursion per output
    phi0 = to_numpy(first.edge_activations(x))
    phi1 = to_numpy(model.layers[1].edge_activations(first(x)))
    per_output = []
    for k in range(2):
        s1 = phi1.std(0, ddof=1)[:, k] / (phi1.sum(1).std(0, ddof=1)[k] + 1e-4)  # (3,)
        e0 = phi0.std(0, ddof=1) / (phi0.sum(1).std(0, ddof=1) + 1e-4) * s1[None, :]
        per_output.append(e0.sum(1))
    np.testing.assert_allclose(scores, np.mean(per_output, 0), rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(nodes[-1], [0.5, 0.5])
    assert scores[2] == 0 and edges[0].shape == (4, 3) and edges[1].shape == (3, 2)
    small = keras_kan.prune_input(model, x, threshold=1e-3)
    kept = np.flatnonzero(scores >= 1e-3)
    assert kept.tolist() == [0, 1, 3] and small.inputs[0].shape[-1] == 3
    np.testing.assert_allclose(to_numpy(small(x[:, kept])), to_numpy(model(x)), atol=1e-5)
    assert small.layers[1].get_config()["symbolic_functions"] == [[0, 1, "sin"]]
    with pytest.raises(ValueError, match="every input"):
        keras_kan.prune_input(model, x, threshold=1e6, verbose=False)


@pytest.mark.slow
def test_attribution_example_finds_x1_and_x4():
    sys.path.insert(0, os.path.join(HERE, "..", "examples"))
    import feature_attribution

    scores, kept, diff = feature_attribution.run(verbose=False)
    order = np.argsort(-scores)
    assert sorted(order[:2].tolist()) == [0, 3], scores
    assert scores[order[1]] >= 10 * scores[order[2]], scores
    assert kept.tolist() == [0, 3] and diff <= 1e-5


# ------------------------------------------------------------------- export
@pytest.mark.skipif(BACKEND != "tensorflow", reason="model.export to LiteRT runs on TensorFlow")
@pytest.mark.slow
def test_litert_export_of_every_library_function_uses_builtin_ops(tmp_path):
    from ai_edge_litert.interpreter import Interpreter

    names = sorted(symbolic_library.registered_names(builtin=True))
    model = KAN([len(names), 1], seed=0)
    for i, name in enumerate(names):  # arguments in [0.6, 1.4]: away from every pole
        symbolic.fix_symbolic(model, 0, i, 0, name, fit_params=False,
                              params=(0.4, 1.0, 0.5, 0.1), mode="both" if i % 2 else "symbolic",
                              verbose=False)
    x = np.random.default_rng(0).uniform(-1, 1, (16, len(names))).astype("float32")
    path = str(tmp_path / "symbolic.tflite")
    model.export(path, format="litert", verbose=False)
    interpreter = Interpreter(model_path=path)
    used = {op["op_name"] for op in interpreter._get_ops_details()}
    assert not any(op.startswith("FLEX") or op == "CUSTOM" for op in used), used
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    interpreter.resize_tensor_input(inp["index"], x.shape)
    interpreter.allocate_tensors()
    interpreter.set_tensor(inp["index"], x)
    interpreter.invoke()
    np.testing.assert_allclose(interpreter.get_tensor(out["index"]), to_numpy(model(x)),
                               rtol=1e-5, atol=1e-5)


def test_mixed_precision_evaluates_symbolic_edges_in_float32():
    x = np.random.default_rng(0).uniform(-1, 1, (32, 2)).astype("float32")
    outputs = []
    for policy in ("float32", "mixed_float16"):
        keras.config.set_dtype_policy(policy)
        model = KAN([2, 1], seed=0)
        symbolic.fix_symbolic(model, 0, 0, 0, "exp", fit_params=False,
                              params=(1.0, 0.0, 1.0, 1e-3), verbose=False)
        outputs.append(to_numpy(model(x)))
    np.testing.assert_allclose(outputs[1], outputs[0], atol=1e-2)


def test_plot_marks_symbolic_edges_and_shows_attribution_scores():
    pytest.importorskip("matplotlib")
    model = mixed_model()
    x = np.random.default_rng(0).uniform(-1, 1, (64, 3)).astype("float32")
    fig = keras_kan.plot_kan(model, x, show_scores="attribution")
    insets = {ax.get_label(): ax for ax in fig.axes}
    assert insets["kan_edge_0_0_0"].get_title() == "0.5*sin(2x+0.1)+0.2"
    assert insets["kan_edge_1_1_0"].get_title() == "exp(0.5x)-1"
    assert insets["kan_edge_0_1_0"].get_title() == ""  # numeric edge
    assert insets["kan_edge_0_0_0"].lines[0].get_color() == "#c0392b"
    labels = [t.get_text() for t in insets["kan_network"].texts]
    scores = keras_kan.feature_scores(model, x)
    assert f"$x_{{1}}$ ({scores[0]:.2g})" in labels
