"""Committed files of every kind of model keras_kan makes keep loading, on every backend.

saved_models/kinds/ was written once by tests/support/make_golden_kinds.py (TensorFlow,
keras_kan 0.1.0). A change that cannot load one of them, or loads it to other
outputs, fails here: see the compatibility policy in docs/guarantees.md. The symbolic
kind (symbolic edges by function name: cos, x^2, exp) was written on
2026-12-03 by the code before the one symbolic registry (issue 20); "symbolic_alias"
(symbolic, "both" and numeric edges, the alias name x^0.5) was written after it.
"""

import os

import keras
import numpy as np
import pytest
from conftest import to_numpy

from keras_kan import KANDense, KANRegularizer

KINDS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "saved_models",
                         "kinds")
KINDS = ("update_grids", "refine", "prune", "regularizer", "use_bias", "mixed_float16",
         "symbolic", "symbolic_alias")


def load(kind):
    io = np.load(os.path.join(KINDS_DIR, f"{kind}.npz"))
    model = keras.saving.load_model(os.path.join(KINDS_DIR, f"{kind}.keras"))  # safe mode
    return model, io["x"], io["y"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.slow
def test_committed_file_gives_the_committed_outputs(kind):
    model, x, y = load(kind)
    got = to_numpy(model(x))
    if kind == "mixed_float16":  # float16 outputs: rounding of the last matmul differs
        np.testing.assert_allclose(got, y, rtol=2e-3, atol=2e-3)
    else:  # float32 rounding of sums ordered differently by each backend's fast path (the
        # spline and base branches can nearly cancel: their partial sums set the error)
        np.testing.assert_allclose(got, y, rtol=1e-5, atol=1e-5)
    assert all(isinstance(layer, KANDense) for layer in model.layers)


def test_kind_specific_state_survives():
    model, x, _ = load("update_grids")
    knots = to_numpy(model.layers[0].grid)
    assert model.layers[0].uniform_grid is False  # data-adapted knots: general basis
    assert np.ptp(np.diff(knots[:, 3:-3], axis=1)) > 1e-3

    model, _, _ = load("refine")
    assert [layer.grid_size for layer in model.layers] == [7, 7]
    assert model.layers[0].grid.shape == (2, 7 + 2 * 3 + 1)

    model, _, _ = load("prune")
    assert [layer.units for layer in model.layers] == [2, 1]  # hidden node 1 was removed
    assert model.layers[1].input_dim == 2

    model, _, _ = load("regularizer")
    assert isinstance(model.layers[0].regularizer, KANRegularizer)
    assert model.layers[0].regularizer.get_config() == {
        "l1": 0.01, "entropy": 0.1, "coef": 0.001, "coef_diff": 0.002}

    model, _, _ = load("use_bias")
    assert all(layer.use_bias and layer.bias is not None for layer in model.layers)
    assert np.all(to_numpy(model.layers[0].bias) != 0)

    model, x, _ = load("mixed_float16")
    layer = model.layers[0]
    assert (layer.compute_dtype, layer.variable_dtype) == ("float16", "float32")
    assert keras.backend.standardize_dtype(model(x).dtype) == "float16"


@pytest.mark.parametrize("kind", ["refine", "regularizer"])
@pytest.mark.slow
def test_committed_file_trains_after_loading(kind):
    """Loaded weights are live variables: one training step changes them and stays finite."""
    model, x, y = load(kind)
    before = [w.copy() for w in model.get_weights()]
    model.compile(optimizer=keras.optimizers.SGD(1e-2), loss="mse")
    model.fit(x, np.zeros_like(y, dtype="float32"), epochs=1, batch_size=len(x), verbose=0)
    after = model.get_weights()
    assert all(np.all(np.isfinite(w)) for w in after)
    assert any(not np.array_equal(a, b) for a, b in zip(before, after))


def test_symbolic_file_keeps_its_functions_and_modes():
    model, x, y = load("symbolic")
    first, second = model.layers
    assert first.get_config()["symbolic_functions"] == [[0, 0, "cos"], [1, 1, "x^2"]]
    assert second.get_config()["symbolic_functions"] == [[0, 0, "exp"]]
    mask = to_numpy(first.edge_mask)
    assert mask[0, 0] == 0.0 and mask[1, 1] == 1.0  # "symbolic" vs "both"
    # the symbolic edge's own value, by hand from its saved parameters
    a, b, c, d = (to_numpy(getattr(first, f"symbolic_{p}"))[0, 0] for p in "abcd")
    phi = to_numpy(first.edge_activations(x))[:, 0, 0]
    np.testing.assert_allclose(phi, c * np.cos(a * x[:, 0] + b) + d, rtol=1e-5, atol=1e-6)


def test_symbolic_alias_file_keeps_its_functions_and_formula():
    model, x, y = load("symbolic_alias")
    names = [layer.get_config()["symbolic_functions"] for layer in model.layers]
    assert names == [[[0, 0, "sin"], [0, 1, "x^0.5"], [1, 0, "x^2"]],
                     [[0, 0, "exp"], [1, 0, "1/x"]]]
    # the symbolic part by closed form (float64), the numeric parts from the model itself
    first = model.layers[0]
    mask = to_numpy(first.edge_mask)
    assert mask[0, 0] == 0 and mask[1, 0] == 1 and mask[0, 1] == 0
    phi = to_numpy(first.edge_activations(x))
    x64 = x.astype(np.float64)
    np.testing.assert_allclose(phi[:, 0, 0], 0.7 * np.sin(2 * x64[:, 0] + 0.3) + 0.1,
                               atol=1e-5)
    np.testing.assert_allclose(phi[:, 0, 1], 0.8 * np.sqrt(x64[:, 0] + 1.5), atol=1e-5)
