"""Physics-informed symbolic regression (keras_kan.symbolic_objective): edge functions
chosen on collocation points, constants refit and snapped on a PDE objective, checked
with sympy and against the exact solution on a fresh grid in float64."""

import os
import sys

import numpy as np
import pytest
import sympy
from keras import ops

from keras_kan import KAN, autodiff, splines
from keras_kan import symbolic as ks
from keras_kan.symbolic_objective import snap_candidates

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "examples"))
import poisson  # noqa: E402  (the mesh of examples/poisson.py)

PI = np.pi


def _objective(mesh, boundary, k_y, kappa=0.0):
    """Helmholtz `lap u + kappa^2 u = q` (Poisson when kappa = 0), u = 0 on the boundary,
    with the exact solution `sin(pi x) sin(k_y pi y)`."""
    exact = np.sin(PI * mesh[:, :1]) * np.sin(k_y * PI * mesh[:, 1:])
    q = (kappa**2 - PI**2 - (k_y * PI) ** 2) * exact
    m, b, q = (ops.convert_to_tensor(a.astype("float32")) for a in (mesh, boundary, q))

    def objective(model):
        residual = autodiff.laplacian(model, m) + kappa**2 * model(m) - q
        return 0.01 * ops.mean(residual**2) + ops.mean(model(b) ** 2)

    return objective


def _numeric_kan(k_y, noise=0.02):
    """A numeric KAN([2, 2, 1]) whose splines approximate (with an error) the edges of
    `sin(pi x) sin(k pi y) = cos(pi (x - k y))/2 - cos(pi (x + k y))/2`, standing in for
    a trained one: inner edges linear, outer edges cosines."""
    model = KAN([2, 2, 1], grid_size=8, seed=0)
    first, second = model.layers
    second_range = 1.0 + k_y
    k = 3
    rng = np.random.default_rng(0)
    targets = [
        (first, np.array([[1.0, 1.0], [-k_y, k_y]]), lambda u, i, j: u, (-1.0, 1.0)),
        (second, None, lambda u, i, j: (0.5 if i == 0 else -0.5) * np.cos(PI * u),
         (-second_range, second_range)),
    ]
    for layer, scale, fn, (lo, hi) in targets:
        n, m = layer.input_dim, layer.units
        grid = layer.grid_size
        knots = splines.uniform_knots((lo, hi), grid, k, n_features=n)
        u = np.linspace(lo, hi, 200)[:, None].repeat(n, 1)
        y = np.stack([np.stack([fn(u[:, i], i, j) * (1 if scale is None else scale[i, j])
                                for j in range(m)], -1) for i in range(n)], 1)
        coef = splines.fit_coefficients(u, y, knots, k)
        coef = coef * (1 + noise * rng.standard_normal(coef.shape))
        layer.set_spline(knots, coef)
        layer.base_kernel.assign(np.zeros(layer.base_kernel.shape, "float32"))
        layer.spline_scale.assign(np.ones(layer.spline_scale.shape, "float32"))
    return model


@pytest.mark.slow
@pytest.mark.parametrize("k_y, kappa", [(1, 0.0), (2, 3.0)],
                         ids=["poisson", "helmholtz"])
def test_auto_symbolic_on_the_objective_recovers_the_exact_solution(k_y, kappa):
    mesh, boundary = poisson.square_mesh(7)
    objective = _objective(mesh, boundary, k_y, kappa)
    model = _numeric_kan(k_y)
    ks.auto_symbolic(model, mesh, objective=objective, lib=["x", "x^2", "sin", "cos",
                                                            "exp", "tanh"],
                     objective_steps=15)
    names = {key: edge["name"] for key, edge in ks.symbolic_report(model).items()}
    outer = sorted(names[(1, i, 0)] for i in range(2))
    assert [names[(0, i, j)] for i in range(2) for j in range(2)] == ["x"] * 4, names
    assert set(outer) <= {"sin", "cos"}, names
    expr = ks.symbolic_formula(model, mesh, objective=objective, precision=None)
    x, y = sympy.symbols("x_1 x_2")
    exact = sympy.sin(sympy.pi * x) * sympy.sin(k_y * sympy.pi * y)
    assert not expr.atoms(sympy.Float), expr  # every constant snapped
    assert sympy.simplify(sympy.expand_trig(expr - exact)) == 0, (expr, names)
    fresh = np.random.default_rng(1).uniform(-1, 1, (500, 2))
    f = sympy.lambdify((x, y), expr, "numpy")
    err = np.max(np.abs(f(fresh[:, 0], fresh[:, 1])
                        - np.sin(PI * fresh[:, 0]) * np.sin(k_y * PI * fresh[:, 1])))
    assert err < 1e-13


def test_snap_candidates():
    assert sympy.pi in snap_candidates(3.14159)
    assert 1 / (2 * sympy.pi) in snap_candidates(0.15916)  # a Gaussian's normalization
    assert 1 / (4 * sympy.pi) in snap_candidates(0.0796)
    assert not any(c.has(sympy.pi) for c in snap_candidates(5.013))  # not 63/(4 pi)
    assert sympy.Rational(1, 2) in snap_candidates(0.5003)
    assert snap_candidates(0.3)[0] == sympy.Integer(0) or 0 not in snap_candidates(0.3)
    assert sympy.Integer(0) in snap_candidates(1e-4)


def test_objective_and_y_are_exclusive():
    model = KAN([2, 1], grid_size=3, seed=0)
    x = np.zeros((4, 2), "float32")
    with pytest.raises(ValueError, match="objective"):
        ks.auto_symbolic(model, x, np.zeros((4, 1)), objective=lambda m: ops.sum(m(x)))
    with pytest.raises(ValueError, match="objective"):
        ks.symbolic_formula(model, x, np.zeros((4, 1)), objective=lambda m: ops.sum(m(x)))
