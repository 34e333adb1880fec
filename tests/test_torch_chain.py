"""PyTorch's lean objective (keras_kan/backend/torch_chain.py) against `model(...)`.

The lean path calls each layer's `call` in turn instead of `model(x)`; the loss,
gradient, predictions and metrics must be exactly those of the normal path on every
kind of layer it accepts, and it must refuse the models it cannot call exactly.
Torch only: the other backends compile `model(...)` into one program, where
Keras's per-call Python runs once, when tracing.
"""

import keras
import numpy as np
import pytest

import keras_kan
from keras_kan import backend as kan_backend

pytestmark = pytest.mark.skipif(keras.backend.backend() != "torch",
                                reason="the lean path is PyTorch's (the others trace once)")

if keras.backend.backend() == "torch":
    from keras_kan.backend import torch_chain


def _data(n_in, n=64, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1.2, 1.2, (n, n_in)).astype("float32")
    y = (np.sin(2 * x[:, :1]) + x[:, -1:] ** 2).astype("float32")
    return x, y


def _both(model, x, y, sample_weight=None):
    """`(loss, grad, eval loss, predictions)` through the normal path, then the lean one
    (the normal path builds the compiled loss, which the lean loss needs)."""
    x, y = keras.ops.convert_to_tensor(x), keras.ops.convert_to_tensor(y)
    results = []
    for enabled in (False, True):
        torch_chain.ENABLED = enabled
        try:
            kan_backend.reset_compiled_functions(model)
            loss, grad = kan_backend.value_and_grad_fn(model)(x, y, sample_weight)
            eval_loss, pred = kan_backend.evaluate_fn(model)(x, y, sample_weight)
            results.append((loss, grad, eval_loss, keras.ops.convert_to_numpy(pred)))
        finally:
            torch_chain.ENABLED = True
    return results[::-1]


def _assert_same(model, x, y, sample_weight=None, lean_loss=True):
    layers = torch_chain.layer_chain(model)
    assert layers is not None
    tensor = keras.ops.convert_to_tensor(x)
    assert torch_chain.forward(model, layers, tensor, True) is not None  # it takes the lean path
    lean, normal = _both(model, x, y, sample_weight)
    assert (torch_chain.compiled_mse(model) is not None) == lean_loss
    assert lean[0] == normal[0] and lean[2] == normal[2]
    np.testing.assert_array_equal(lean[1], normal[1])
    np.testing.assert_array_equal(lean[3], normal[3])
    assert np.any(lean[1] != 0)


def _kan(width, **kwargs):
    model = keras_kan.KAN(width, grid_size=5, seed=0, **kwargs)
    model.compile(loss="mse")
    return model


def test_uniform_and_adapted_grids_and_penalty():
    x, y = _data(2)
    model = _kan([2, 3, 1], regularizer=keras_kan.KANRegularizer(l1=0.01, entropy=0.1,
                                                                  coef=0.01, coef_diff=0.01))
    _assert_same(model, x, y)
    keras_kan.update_grids(model, x)
    assert not model.layers[0].uniform_grid
    _assert_same(model, x, y)


def test_symbolic_edges_masks_bias_and_sample_weights():
    x, y = _data(2)
    model = _kan([2, 3, 1], use_bias=True)
    keras_kan.symbolic.fix_symbolic(model, 0, 1, 2, "sin", fit_params=False,
                                    params=(1.5, 0.2, 0.8, 0.1))
    mask = np.ones((3, 1), "float32")
    mask[1, 0] = 0.0
    model.layers[1].edge_mask.assign(mask)
    weights = np.linspace(0.1, 2.0, len(x)).astype("float32")
    _assert_same(model, x, y, keras.ops.convert_to_tensor(weights))
    _assert_same(model, x, y, keras.ops.convert_to_tensor(weights[:, None]))
    _assert_same(model, x, y[:, 0], keras.ops.convert_to_tensor(weights))


def test_other_losses_keep_keras_compute_loss():
    x, y = _data(2)
    for loss in ("mae", keras.losses.MeanSquaredError(reduction="sum")):
        model = keras_kan.KAN([2, 2, 1], grid_size=5, seed=0)
        model.compile(loss=loss)
        _assert_same(model, x, y, lean_loss=False)
    model = _kan([2, 2, 1])
    model.compile(loss="mse", loss_weights=2.0)
    _assert_same(model, x, y, lean_loss=False)


def test_mlp_of_dense_layers_and_metrics_match():
    x, y = _data(3)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(8, activation="tanh"),
                              keras.layers.Dense(1, kernel_regularizer="l2")])
    model.compile(loss="mse", metrics=["mae"])
    _assert_same(model, x, y)
    # The evaluation loss is the float64 NumPy MSE plus the weight penalty.
    w = [np.asarray(v, np.float64) for v in model.get_weights()]
    pred = np.tanh(x @ w[0] + w[1]) @ w[2] + w[3]
    expected = np.mean((pred - y) ** 2) + 0.01 * np.sum(w[2] ** 2)
    loss, _ = kan_backend.evaluate_fn(model)(keras.ops.convert_to_tensor(x),
                                             keras.ops.convert_to_tensor(y))
    np.testing.assert_allclose(loss, expected, rtol=1e-5)


def test_dense_activations_and_no_bias_match():
    """Dense layers run as torch calls (linear, tanh, silu) or through their activation
    (relu); without a bias too. Checked against `model(...)` and float64 NumPy."""
    x, y = _data(2)
    keras.utils.set_random_seed(1)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(4, activation="silu"),
                              keras.layers.Dense(4, activation="relu", use_bias=False),
                              keras.layers.Dense(3, activation="tanh"), keras.layers.Dense(1)])
    model.compile(loss="mse")
    _assert_same(model, x, y)
    w = [np.asarray(v, np.float64) for v in model.get_weights()]
    h = x @ w[0] + w[1]
    h = np.maximum(h / (1.0 + np.exp(-h)) @ w[2], 0.0)
    pred = np.tanh(h @ w[3] + w[4]) @ w[5] + w[6]
    loss, _ = kan_backend.value_and_grad_fn(model)(keras.ops.convert_to_tensor(x),
                                                   keras.ops.convert_to_tensor(y))
    np.testing.assert_allclose(loss, np.mean((pred - y) ** 2), rtol=1e-5)


def test_a_rewritten_uniform_grid_is_read_again():
    """The uniform basis keeps its knot map per grid tensor while the grid is not
    written: after a new (wider, still uniform) grid, the loss follows the new knots
    (float64 NumPy with scipy's B-splines, tests/reference.py)."""
    from reference import forward

    x, y = _data(1)
    model = keras_kan.KAN([1, 1], grid_size=8, seed=0, use_base=False)
    model.compile(loss="mse")
    fn = kan_backend.value_and_grad_fn(model)
    tensors = keras.ops.convert_to_tensor(x), keras.ops.convert_to_tensor(y)
    for widen in (1.0, 1.5):
        layer = model.layers[0]
        layer.grid.assign(keras.ops.convert_to_numpy(layer.grid) * widen)
        keras_kan.sync_grids(model)
        assert layer.uniform_grid
        loss, _ = fn(*tensors)
        np.testing.assert_allclose(loss, np.mean((forward(layer, x) - y) ** 2), rtol=1e-5)


def test_fit_lbfgs_trajectory_is_unchanged():
    x, y = _data(2)
    histories = []
    for enabled in (True, False):
        torch_chain.ENABLED = enabled
        try:
            model = _kan([2, 2, 1], regularizer=keras_kan.KANRegularizer(l1=0.01))
            history = keras_kan.fit_lbfgs(model, x, y, steps=2, verbose=0)
            histories.append(history.history["loss"])
        finally:
            torch_chain.ENABLED = True
    assert histories[0] == histories[1]


def test_models_it_cannot_call_exactly_take_the_normal_path():
    class Custom(keras.Sequential):
        pass

    inputs = keras.Input((2,))
    functional = keras.Model(inputs, keras_kan.KANDense(1)(inputs))
    custom = Custom([keras.Input((2,)), keras_kan.KANDense(1)])
    activity = keras.Sequential([keras.Input((2,)),
                                 keras.layers.Dense(1, activity_regularizer="l2")])
    mixed = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, dtype="mixed_float16")])
    other = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2),
                              keras.layers.Activation("relu")])
    for model in (functional, custom, activity, mixed, other):
        assert torch_chain.layer_chain(model) is None, model
    model = _kan([2, 1])
    layers = torch_chain.layer_chain(model)
    # An input the first layer would convert (float64, NumPy) goes through model(...).
    assert torch_chain.forward(model, layers, np.zeros((3, 2), "float32"), True) is None
    x64 = keras.ops.convert_to_tensor(np.zeros((3, 2)), dtype="float64")
    assert torch_chain.forward(model, layers, x64, True) is None
