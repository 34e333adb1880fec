"""keras_kan.attribution: feature_scores / layer_scores against a float64 re-derivation."""

import numpy as np
import pytest
from conftest import to_numpy

from keras_kan import KAN, feature_scores, layer_scores, prune_input


def _model():
    model = KAN([4, 3, 1], grid_size=5, seed=2)
    mask = np.ones((4, 3), "float32")
    mask[1] = 0.0  # input x_2 reaches nothing
    model.layers[0].edge_mask.assign(mask)
    return model


@pytest.mark.slow
def test_scores_equal_pykans_propagation():
    model = _model()
    x = np.random.default_rng(0).uniform(-1, 1, (400, 4)).astype("float32")
    first, second = model.layers
    phi0 = to_numpy(first.edge_activations(x))  # (B, 4, 3)
    phi1 = to_numpy(second.edge_activations(first(x)))  # (B, 3, 1)
    s1 = phi1.std(0, ddof=1)[:, 0] / (phi1.sum(1).std(0, ddof=1)[0] + 1e-4)  # (3,)
    e0 = phi0.std(0, ddof=1) / (phi0.sum(1).std(0, ddof=1) + 1e-4) * s1[None, :]
    nodes, edge_scores = layer_scores(model, x)
    np.testing.assert_allclose(feature_scores(model, x), e0.sum(1), rtol=1e-4, atol=1e-8)
    np.testing.assert_allclose(nodes[1], s1, rtol=1e-4)
    np.testing.assert_allclose(edge_scores[0], e0, rtol=1e-4, atol=1e-8)
    assert feature_scores(model, x)[1] == 0.0 and nodes[-1].tolist() == [1.0]


@pytest.mark.slow
def test_prune_input_drops_the_unreached_input_only():
    model = _model()
    x = np.random.default_rng(1).uniform(-1, 1, (300, 4)).astype("float32")
    small = prune_input(model, x, threshold=1e-6)
    assert small.inputs[0].shape[-1] == 3
    kept = [0, 2, 3]
    np.testing.assert_allclose(to_numpy(small(x[:, kept])), to_numpy(model(x)), atol=1e-6)
    assert [layer.grid_size for layer in small.layers] == [5, 5]


def test_prune_input_is_silent_by_default_and_refuses_removing_everything(capsys):
    model = _model()
    x = np.random.default_rng(2).uniform(-1, 1, (100, 4)).astype("float32")
    prune_input(model, x, threshold=1e-6)
    assert capsys.readouterr().out == ""
    prune_input(model, x, threshold=1e-6, verbose=1)
    assert "kept ['x_1', 'x_3', 'x_4']" in capsys.readouterr().out
    with pytest.raises(ValueError, match="every input"):
        prune_input(model, x, threshold=1e9)
