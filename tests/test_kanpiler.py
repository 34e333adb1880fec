"""keras_kan.kanpiler: `expression_to_kan` (a formula -> a KAN of sums and products).

References: the expression itself, evaluated in float64 NumPy (`sympy.lambdify`),
and sympy's own algebra (`simplify(formula - expression) == 0`).
"""

import keras
import numpy as np
import pytest
import sympy
from conftest import to_numpy

from keras_kan import KANDense, MultNodes, fit_lbfgs
from keras_kan.symbolic import expression_to_kan, symbolic_formula, symbolic_report

X1, X2, X3 = sympy.symbols("x_1:4")

# expression, input box: sums, products of arity 2 and 3, quotients, powers as edges
# (x^2, 1/x^2, sqrt) and as products (x^6), functions with affine arguments, a node
# carried over a layer (x_1 beside x_2 * x_3), two edges from one node (x_1 + sin x_1).
# The first three run in the fast suite, the rest are `slow` (seconds each on eager JAX).
CASES = [
    (X1 * X2 * X3 + sympy.sin(X1), (-1, 1)),
    (X1 * X2 / X3**2, (1, 2)),
    (X1 + sympy.sin(X1), (-1, 1)),
] + [pytest.param(*case, marks=pytest.mark.slow) for case in [
    (X1 * X2, (-1, 1)),
    (X1 * X2**2 / 2, (1, 2)),
    (sympy.exp(X1) * sympy.sin(sympy.pi * X2), (-1, 1)),
    (X1 + X2 * X3, (-1, 1)),
    (sympy.sqrt(1 + X1**2 + X2**2), (-1, 1)),
    (X1 / (2 * (1 + X2)), (0, 1)),
    (X1**6 - 3 * X1, (-1, 1)),
    (sympy.exp(sympy.sin(sympy.pi * X1) + X2**2), (-1, 1)),
]]


def _points(expr, box, n=64, seed=0):
    symbols = sorted(expr.free_symbols, key=str)
    x = np.random.default_rng(seed).uniform(*box, (n, len(symbols)))
    y = np.broadcast_to(sympy.lambdify(symbols, expr, "numpy")(*x.T), (n,))
    return x, np.asarray(y, np.float64)[:, None]


@pytest.mark.parametrize("expr,box", CASES)
def test_model_computes_the_expression_and_reads_back(expr, box):
    model = expression_to_kan(expr)
    x, y = _points(expr, box)
    out = to_numpy(model(x.astype("float32")))
    np.testing.assert_allclose(out, y, rtol=1e-5, atol=1e-5 * max(1.0, np.abs(y).max()))
    # every edge symbolic, no spline left on
    for layer in model.layers:
        if isinstance(layer, KANDense):
            assert not to_numpy(layer.edge_mask).any()
    formula = symbolic_formula(model, x)
    assert sympy.simplify(formula - expr) == 0, formula


def test_structure_products_become_mult_nodes_of_their_arity():
    model = expression_to_kan(X1 * X2 * X3 + X1 * X2)
    mults = [layer for layer in model.layers if isinstance(layer, MultNodes)]
    assert len(mults) == 1 and sorted(mults[0].arity) == [2, 3]
    assert model.output_shape == (None, 1) and model.input_shape == (None, 3)
    # shared subexpressions share a node: sin(x_1 x_2) and x_1 x_2 read one product
    shared = expression_to_kan(sympy.sin(X1 * X2) + X1 * X2)
    assert [layer.arity for layer in shared.layers if isinstance(layer, MultNodes)] == [[2]]


def test_several_outputs_and_explicit_variables():
    model = expression_to_kan(["x_1*x_2", "sin(x_3) + 1"], variables=["x_1", "x_2", "x_3", "z"])
    x = np.random.default_rng(1).uniform(-1, 1, (32, 4))
    out = to_numpy(model(x.astype("float32")))
    np.testing.assert_allclose(out[:, 0], x[:, 0] * x[:, 1], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out[:, 1], np.sin(x[:, 2]) + 1, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("expr,match", [
    ("x_1**x_2", "variable exponent"),
    ("Max(x_1, x_2)", "cannot compile"),
    ("besselj(1, x_1)", "cannot compile"),
    ("x_1 + I*x_2", "finite real"),
    ("x_1**(1/3)", "no library function"),
    ("7", "no variable"),
])
def test_unsupported_expressions_are_clear_errors(expr, match):
    with pytest.raises(ValueError, match=match):
        expression_to_kan(expr)


def test_unknown_symbol_is_a_clear_error():
    with pytest.raises(ValueError, match="not one of the variables"):
        expression_to_kan("x_1*y", variables=["x_1"])


def test_fine_tunes_on_perturbed_data():
    """A known law as the start; data from a slightly different one: the loss falls."""
    model = expression_to_kan(X1 * sympy.sin(sympy.pi * X2))
    rng = np.random.default_rng(2)
    x = rng.uniform(-1, 1, (256, 2))
    y = (1.1 * x[:, 0] * np.sin(3.0 * x[:, 1]) + 0.05)[:, None]
    model.compile(loss="mse")
    before = float(model.evaluate(x, y, verbose=0))
    fit_lbfgs(model, x, y, steps=3, verbose=0)
    after = float(model.evaluate(x, y, verbose=0))
    assert np.isfinite(after) and after < 0.1 * before, (before, after)
    assert {e["name"] for e in symbolic_report(model).values()} == {"x", "sin"}


def test_save_and_load_keep_the_function(tmp_path):
    expr = X1 * X2 / X3**2 + sympy.exp(X1)
    model = expression_to_kan(expr)
    x, y = _points(expr, (1, 2), n=16)
    path = str(tmp_path / "law.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(to_numpy(loaded(x.astype("float32"))), y, rtol=1e-5)
    assert symbolic_report(loaded) == symbolic_report(model)
