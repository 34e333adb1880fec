"""keras_kan.factors: `separate_factors`, greedy removal of the edges into a product's
subnodes that the data can do without, judged by the retrained loss."""

import numpy as np
import pytest
from conftest import to_numpy

from keras_kan import KAN
from keras_kan.symbolic import fix_symbolic, separate_factors, symbolic_report


def _product_model(extra_edges):
    """`x_1 * x_2` as a [2, [0, 1], 1] KAN of symbolic edges (x_1 -> factor 0, x_2 ->
    factor 1, a linear read), plus `extra_edges`: `{(input, subnode): params}`, more
    symbolic `x` edges into the factors."""
    model = KAN([2, [0, 1], 1], seed=0)
    model.layers[0].edge_mask.assign(np.zeros((2, 2), "float32"))
    fix_symbolic(model, 0, 0, 0, "x", fit_params=False)
    fix_symbolic(model, 0, 1, 1, "x", fit_params=False)
    for (i, j), params in extra_edges.items():
        fix_symbolic(model, 0, i, j, "x", fit_params=False, params=params)
    fix_symbolic(model, 1, 0, 0, "x", fit_params=False)
    model.compile(loss="mse")
    return model


def _data(f, seed=0, n=256):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, (n, 2)).astype("float32")
    noise = 0.003 * rng.standard_normal((n, 1))  # bounds the loss away from float32 noise
    return x, (f(x) + noise).astype("float32")


def _active(model):
    layer = model.layers[0]
    return {tuple(e) for e in np.argwhere((to_numpy(layer.edge_mask) != 0) |
                                          (to_numpy(layer.symbolic_mask) != 0))}


def test_removes_an_edge_the_product_does_without_and_keeps_the_rest():
    model = _product_model({(1, 0): (1, 0, 0.3, 0)})  # factor 0 reads x_1 + 0.3 x_2
    x, y = _data(lambda x: x[:, :1] * x[:, 1:])
    result = separate_factors(model, x, y, steps=8, update_grid=False)
    removed = result["removed"]
    assert [(r["input"], r["subnode"]) for r in removed] == [(1, 0)]
    assert result["linear_reads"] == [(1, 0, 0)] and result["loss"] < 5e-5
    assert removed[0]["layer"] == model.layers[0].name and 0 <= removed[0]["share"] <= 1
    assert _active(model) == {(0, 0), (1, 1)}
    assert set(symbolic_report(model)) == {(0, 0, 0), (0, 1, 1), (1, 0, 0)}  # (0, 1, 0) gone
    np.testing.assert_allclose(to_numpy(model(x)), x[:, :1] * x[:, 1:], atol=0.02)


def test_keeps_every_edge_the_data_needs_and_restores_the_weights():
    """`(x_1 + x_2) x_2`: both edges into factor 0 carry the function; each try's loss
    jumps, so both stay and the model still computes the product."""
    model = _product_model({(1, 0): (1, 0, 1, 0)})
    x, y = _data(lambda x: (x[:, :1] + x[:, 1:]) * x[:, 1:], seed=1)
    assert separate_factors(model, x, y, steps=8, linear_reads=False)["removed"] == []
    assert _active(model) == {(0, 0), (1, 0), (1, 1)}
    np.testing.assert_allclose(to_numpy(model(x)), (x[:, :1] + x[:, 1:]) * x[:, 1:],
                               atol=0.03)


def test_linear_reads_fix_the_edges_after_a_product():
    model = KAN([2, [0, 1], 1], seed=0)
    model.compile(loss="mse")
    x, y = _data(lambda x: x[:, :1] * x[:, 1:], seed=2, n=64)
    separate_factors(model, x, y, steps=1, tolerance=1.0)
    assert symbolic_report(model)[(1, 0, 0)]["name"] == "x"


def test_bad_arguments_are_clear_errors():
    model = KAN([2, 2, 1], seed=0)
    model.compile(loss="mse")
    x, y = _data(lambda x: x[:, :1] * x[:, 1:], n=16)
    with pytest.raises(ValueError, match="multiplication nodes"):
        separate_factors(model, x, y)
    mult = _product_model({})
    with pytest.raises(ValueError, match="tolerance"):
        separate_factors(mult, x, y, tolerance=0.5)
    with pytest.raises(ValueError, match="steps"):
        separate_factors(mult, x, y, steps=0)
    with pytest.raises(ValueError, match="update_grid"):
        separate_factors(mult, x, y, update_grid="yes")
