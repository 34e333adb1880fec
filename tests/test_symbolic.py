import keras
import numpy as np
import pytest
import reference

import keras_kan
from keras_kan import splines
from keras_kan.layers import KANDense

sympy = pytest.importorskip("sympy")

from keras_kan import symbolic  # noqa: E402


def _set_edges(layer, functions):
    """Make edge (i, j) of `layer` a pure spline fit of `functions[(i, j)]` on [-1, 1]."""
    n, m = layer.grid.shape[0], layer.units
    knots = np.asarray(keras.ops.convert_to_numpy(layer.grid), np.float64)
    grid = np.linspace(-1, 1, 400)
    xs = np.tile(grid[:, None], (1, n))
    targets = np.zeros((grid.size, n, m))
    for (i, j), fn in functions.items():
        targets[:, i, j] = fn(grid)
    coef = splines.fit_coefficients(xs, targets, knots, layer.spline_order)
    layer.spline_kernel.assign(coef.astype("float32"))
    layer.base_kernel.assign(np.zeros((n, m), "float32"))
    layer.spline_scale.assign(np.ones((n, m), "float32"))


def _model(functions, n_in, units=1, grid_size=20):
    model = keras.Sequential([keras.Input((n_in,)), KANDense(units, grid_size=grid_size, seed=0)])
    _set_edges(model.layers[0], functions)
    return model


def _x(n=400, features=1, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, (n, features)).astype("float32")


def sin_edge(v):
    return 0.7 * np.sin(2 * v + 0.3) + 0.1


def square_edge(v):
    return 0.5 * (v - 0.2) ** 2 - 0.1


def test_sin_edge_is_recovered(capsys):
    model = _model({(0, 0): sin_edge}, 1)
    ranked = symbolic.suggest_symbolic(model, 0, 0, 0, _x(), top_k=3)
    best = ranked[0]
    assert best.name == "sin" and best.r2 > 0.999
    a, b, c, d = best.params
    assert abs(a - 2) < 1e-2 and abs(b - 0.3) < 1e-2
    assert abs(c - 0.7) < 1e-2 and abs(d - 0.1) < 1e-2
    assert len(ranked) == 3
    table = capsys.readouterr().out
    assert "sin" in table and "R^2" in table


def test_square_edge_is_recovered_on_a_bare_layer():
    model = _model({(0, 0): square_edge}, 1)
    ranked = symbolic.suggest_symbolic(model.layers[0], 0, 0, 0, _x(), verbose=False)
    best = ranked[0]
    assert best.name == "x^2" and best.r2 > 0.999
    a, b, c, d = best.params
    assert a == 1.0 and abs(b + 0.2) < 1e-2 and abs(c - 0.5) < 1e-2 and abs(d + 0.1) < 1e-2
    # Every library function was tried and the list is best first under the rule.
    assert {fit.name for fit in symbolic.suggest_symbolic(
        model, 0, 0, 0, _x(), top_k=None, verbose=False)} == set(symbolic.SYMBOLIC_LIB)


def test_fit_function_on_plain_arrays():
    x = np.linspace(-1, 1, 300)
    r2, (a, b, c, d) = symbolic.fit_function(x, 2 * np.log(x + 1.5) - 1, "log")
    assert r2 > 1 - 1e-9 and a == 1.0 and abs(b - 1.5) < 1e-4 and abs(c - 2) < 1e-4
    r2, (a, b, c, d) = symbolic.fit_function(x, 3 * np.exp(-0.8 * x), "exp")
    assert r2 > 1 - 1e-9 and abs(a + 0.8) < 1e-4 and b == 0.0 and abs(c - 3) < 1e-4
    r2, params = symbolic.fit_function(x, 1 / (x + 1.3), "1/x")
    assert r2 > 1 - 1e-9 and abs(params[1] - 1.3) < 1e-4
    r2, params = symbolic.fit_function(x, np.full_like(x, 0.25), "sin")
    assert r2 == 1.0 and params[2] == 0.0 and params[3] == 0.25  # constant edge


def test_constant_edge_prefers_zero():
    model = _model({(0, 0): lambda v: np.full_like(v, 0.3)}, 1)
    best = symbolic.suggest_symbolic(model, 0, 0, 0, _x(), verbose=False)[0]
    assert best.name == "0" and abs(best.params[3] - 0.3) < 1e-5


def test_formula_of_a_two_input_model():
    model = _model({(0, 0): sin_edge, (1, 0): square_edge}, 2)
    x = _x(features=2)
    fits = symbolic.auto_symbolic(model, x, lib=["x", "x^2", "sin", "exp", "tanh"], verbose=0,
                                  inplace=False)
    assert [fits[(0, 0, 0)].name, fits[(0, 1, 0)].name] == ["sin", "x^2"]
    expr = symbolic.symbolic_formula(model, x, fits=fits)
    x1, x2 = sympy.symbols("x_1 x_2")
    assert isinstance(expr, sympy.Expr) and expr.free_symbols == {x1, x2}
    assert expr.has(sympy.sin)
    f = sympy.lambdify((x1, x2), expr, "numpy")
    pred = f(x[:, 0].astype(np.float64), x[:, 1].astype(np.float64))
    target = keras.ops.convert_to_numpy(model(x))[:, 0]
    r2 = 1 - np.sum((pred - target) ** 2) / np.sum((target - target.mean()) ** 2)
    assert r2 > 0.999
    assert symbolic.formula_r2(model, x, expr) > 0.999
    raw = symbolic.symbolic_formula(model, x, fits=fits, simplify=False, precision=3)
    assert symbolic.formula_r2(model, x, raw) > 0.99


def test_unfitted_edge_becomes_a_function_symbol():
    rng = np.random.default_rng(3)
    wiggle_coef = rng.normal(size=23)
    knots = splines.uniform_knots((-1, 1), 20, 3)[None]

    def wiggle(v):
        basis = splines.bspline_basis_numpy(v[:, None], knots, 3)[:, 0]
        return basis @ wiggle_coef

    model = _model({(0, 0): sin_edge, (1, 0): wiggle}, 2)
    x = _x(features=2)
    fits = symbolic.auto_symbolic(model, x, lib=["x", "x^2", "sin"], r2_threshold=0.95,
                                  inplace=False, verbose=0)
    assert fits[(0, 0, 0)].fitted
    assert not fits[(0, 1, 0)].fitted and fits[(0, 1, 0)].params is None
    assert fits[(0, 1, 0)].r2 < 0.95
    expr = symbolic.symbolic_formula(model, x, fits=fits)
    calls = expr.atoms(sympy.core.function.AppliedUndef)
    assert {str(c) for c in calls} == {"phi_0_1_0(x_2)"}
    # The numeric edge is evaluated from the model's own spline.
    assert symbolic.formula_r2(model, x, expr) > 0.999
    with pytest.raises(ValueError, match="pass `model`"):
        symbolic.evaluate_formula(expr, x)


def test_fix_symbolic():
    model = _model({(0, 0): sin_edge, (1, 0): square_edge}, 2)
    x = _x(features=2)
    fits = {}
    fit = symbolic.fix_symbolic(fits, 0, 1, 0, "x^2", model=model, x=x)
    assert fits[(0, 1, 0)] is fit and fit.name == "x^2" and fit.r2 > 0.999
    fit = symbolic.fix_symbolic(fits, 0, 0, 0, "sin", params=(2, 0.3, 0.7, 0.1))
    assert fit.params == (2.0, 0.3, 0.7, 0.1) and np.isnan(fit.r2)
    fit = symbolic.fix_symbolic(fits, 0, 0, 0, "sin", model=model, x=x, params=(2, 0.3, 0.7, 0.1))
    assert fit.r2 > 0.999
    assert symbolic.formula_r2(model, x, symbolic.symbolic_formula(model, x, fits=fits)) > 0.999
    symbolic.fix_symbolic(fits, 0, 0, 0, None)
    assert not fits[(0, 0, 0)].fitted
    with pytest.raises(ValueError, match="Unknown symbolic function"):
        symbolic.fix_symbolic(fits, 0, 0, 0, "cosh", model=model, x=x)
    with pytest.raises(ValueError, match="params"):
        symbolic.fix_symbolic(fits, 0, 0, 0, "sin")
    with pytest.raises(ValueError, match="argument `i`: expected an integer in \\[0, 1\\], got 5"):
        symbolic.fix_symbolic(fits, 0, 5, 0, "sin", model=model, x=x)


def test_pruned_deep_model_and_multiple_outputs():
    model = keras_kan.KAN([2, 3, 2], seed=0)
    first, second = model.layers
    first.edge_mask.assign(np.array([[1, 0, 1], [0, 1, 0]], "float32"))
    second.edge_mask.assign(np.array([[1, 0], [0, 0], [1, 1]], "float32"))
    x = _x(200, features=2)
    fits = symbolic.auto_symbolic(model, x, lib=["x", "x^2", "sin"], r2_threshold=0.0,
                                  inplace=False, verbose=0)
    assert sorted(fits) == [(0, 0, 0), (0, 0, 2), (0, 1, 1), (1, 0, 0), (1, 2, 0), (1, 2, 1)]
    assert all(fit.fitted for fit in fits.values())
    # R^2 >= 0 accepts any fit at least as good as a constant, so every edge gets a
    # formula; and none explains its edge worse than the plain linear fit "x" would
    # (computed here from scipy-basis edge values and NumPy's correlation).
    inputs = [x.astype(np.float64), reference.forward(first, x)]
    for (layer_index, i, j), fit in fits.items():
        layer, t = model.layers[layer_index], inputs[layer_index][:, i]
        phi = reference.edge_functions(layer, inputs[layer_index])[:, i, j]
        linear_r2 = np.corrcoef(t, phi)[0, 1] ** 2
        assert fit.r2 >= max(0.0, linear_r2 - 1e-3), ((layer_index, i, j), fit, linear_r2)
    exprs = symbolic.symbolic_formula(model, x, fits=fits)
    assert isinstance(exprs, list) and len(exprs) == 2
    scores = symbolic.formula_r2(model, x, exprs)
    assert len(scores) == 2 and all(np.isfinite(scores))
    values = symbolic.evaluate_formula(exprs, x)
    assert values.shape == (200, 2)
    with pytest.raises(ValueError, match="masked"):
        symbolic.fix_symbolic(fits, 0, 0, 1, "x", model=model, x=x)


def test_errors():
    model = _model({(0, 0): sin_edge}, 1)
    x = _x()
    dense = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    with pytest.raises(ValueError, match="no KANDense"):
        symbolic.suggest_symbolic(dense, 0, 0, 0, x, verbose=False)
    with pytest.raises(ValueError, match="layer_index"):
        symbolic.suggest_symbolic(model, 1, 0, 0, x, verbose=False)
    with pytest.raises(ValueError, match="argument `j`: expected an integer in \\[0, 0\\], got 1"):
        symbolic.suggest_symbolic(model, 0, 0, 1, x, verbose=False)
    with pytest.raises(ValueError, match="features"):
        symbolic.suggest_symbolic(model, 0, 0, 0, _x(features=2), verbose=False)
    with pytest.raises(ValueError, match="Unknown symbolic function"):
        symbolic.suggest_symbolic(model, 0, 0, 0, x, lib=["sin", "cosh"], verbose=False)
    with pytest.raises(ValueError, match="plain chain"):
        inputs = keras.Input((1,))
        outputs = KANDense(1)(keras.layers.Dense(1)(inputs))
        symbolic.symbolic_formula(keras.Model(inputs, outputs), x)
