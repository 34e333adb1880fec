"""keras_kan.network: what reaches each KANDense, on any model and any number of samples."""

import keras
import numpy as np
import pytest
from conftest import to_numpy

from keras_kan import KAN, KANDense, edges, network


@pytest.mark.parametrize("host_elements", [0, network.HOST_ELEMENTS], ids=["backend", "host"])
def test_layer_inputs_cross_the_chunk_boundary(monkeypatch, host_elements):
    """On the backend the last, shorter chunk is padded to the others' shape and cut
    back; a small plain chain is evaluated in float64 NumPy, to the same values."""
    monkeypatch.setattr(network, "CHUNK_ROWS", 64)
    monkeypatch.setattr(network, "HOST_ELEMENTS", host_elements)
    model = KAN([3, [2, 1], 2], grid_size=5, seed=0)  # a MultNodes step between the layers
    x = np.random.default_rng(0).uniform(-1, 1, (64 * 2 + 5, 3)).astype("float32")
    first, second = network.layer_inputs(model, x)
    np.testing.assert_array_equal(first, x.astype(np.float64))
    expected = to_numpy(keras.Model(model.inputs, model.layers[2].input)(x))
    np.testing.assert_allclose(second, expected, rtol=1e-5, atol=1e-6)
    assert second.shape == (133, 3)


def test_layer_inputs_of_a_functional_model_with_other_layers():
    inputs = keras.Input((3,))
    hidden = keras.layers.Dense(2, name="dense")(inputs)
    kan = KANDense(1, grid_size=4, name="kan")(keras.layers.Activation("tanh")(hidden))
    model = keras.Model(inputs, kan)
    x = np.random.default_rng(1).uniform(-1, 1, (20, 3)).astype("float32")
    (reached,) = network.layer_inputs(model, x)
    expected = np.tanh(to_numpy(model.get_layer("dense")(x)))
    np.testing.assert_allclose(reached, expected, rtol=1e-6, atol=1e-6)


def test_edge_values_sum_to_the_layer_and_scores_use_the_engine():
    layer = KAN([3, 2], grid_size=5, seed=0).layers[0]
    x = np.random.default_rng(2).uniform(-1, 1, (50, 3))
    phi = network.edge_values(layer, x)
    np.testing.assert_allclose(network.layer_output(layer, phi), to_numpy(layer(x)),
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(
        network.edge_scores(layer, x),
        edges.edge_scores(edges.NUMPY, x, edges.params(layer, edges.NUMPY)))


def test_model_samples_validates_and_thins():
    model = KAN([2, 1], seed=0)
    x = np.random.default_rng(3).uniform(-1, 1, (100, 2))
    assert network.model_samples(model, x, max_samples=10).shape == (10, 2)
    with pytest.raises(ValueError, match="it has 3 features but model"):
        network.model_samples(model, np.zeros((5, 3)))
