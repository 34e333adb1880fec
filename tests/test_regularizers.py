"""KANRegularizer: pykan's L1/entropy/coefficient penalty, exactly and cheaply."""

import keras
import numpy as np
import pytest
import reference
from conftest import to_numpy

from keras_kan import KAN, KANDense, KANRegularizer


def layer_with_weights(regularizer, n=3, m=4, seed=0):
    layer = KANDense(m, grid_size=5, regularizer=regularizer, seed=seed)
    layer.build((None, n))
    rng = np.random.default_rng(seed)
    layer.spline_kernel.assign(rng.normal(size=layer.spline_kernel.shape))
    layer.base_kernel.assign(rng.normal(size=layer.base_kernel.shape))
    mask = np.ones((n, m))
    mask[1, 2] = 0  # a masked edge has zero score
    layer.edge_mask.assign(mask)
    return layer


def penalty_of(layer, x):
    layer(x, training=True)
    (value,) = layer.losses
    return float(to_numpy(value))


@pytest.mark.parametrize(
    "strengths",
    [dict(l1=1.0), dict(entropy=1.0), dict(coef=1.0), dict(coef_diff=1.0),
     dict(l1=0.01, entropy=0.1, coef=0.3, coef_diff=0.2)],
)
@pytest.mark.slow
def test_penalty_equals_pykan_formula(strengths):
    layer = layer_with_weights(KANRegularizer(**strengths))
    x = np.random.default_rng(1).uniform(-1.2, 1.2, size=(257, 3)).astype("float32")
    expected = reference.penalty(layer, x, **strengths)
    assert expected > 0
    np.testing.assert_allclose(penalty_of(layer, x), expected, rtol=1e-5)


@pytest.mark.slow
def test_scores_match_slow_path_from_edge_activations():
    layer = layer_with_weights(None)
    x = np.random.default_rng(2).uniform(-1, 1, size=(100, 3)).astype("float32")
    phi = to_numpy(layer.edge_activations(x))
    slow = phi.std(axis=0, ddof=1) / (x.astype(np.float64).std(axis=0, ddof=1)[:, None] + 0.1)
    np.testing.assert_allclose(to_numpy(layer.edge_scores(x)), slow, rtol=1e-4, atol=1e-7)
    assert to_numpy(layer.edge_scores(x))[1, 2] == 0


def test_zero_strengths_give_zero_and_inference_adds_nothing():
    layer = layer_with_weights(KANRegularizer())
    x = np.random.default_rng(0).uniform(-1, 1, size=(20, 3)).astype("float32")
    assert penalty_of(layer, x) == 0.0
    layer(x)  # inference
    assert layer.losses == []
    layer_none = layer_with_weights(None)
    layer_none(x, training=True)
    assert layer_none.losses == []


@pytest.mark.slow
def test_penalty_gradients_reach_every_trainable_weight():
    # The data loss is identically zero, so any weight change comes from the penalty.
    model = KAN([3, 4, 1], seed=0, regularizer=KANRegularizer(l1=1.0, entropy=1.0, coef=1.0,
                                                              coef_diff=1.0))
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss=lambda y, p: 0.0 * keras.ops.mean(p))
    x = np.random.default_rng(0).uniform(-1, 1, size=(64, 3)).astype("float32")
    before = [to_numpy(v) for v in model.trainable_variables]
    history = model.fit(x, np.zeros((64, 1), "float32"), epochs=1, batch_size=64, verbose=0)
    assert history.history["loss"][0] > 0
    for v, old in zip(model.trainable_variables, before):
        assert np.all(np.isfinite(to_numpy(v))), v.path
        assert not np.allclose(to_numpy(v), old), v.path


def test_penalty_finite_with_constant_input_and_masked_edges():
    layer = layer_with_weights(KANRegularizer(l1=1.0, entropy=1.0))
    layer.edge_mask.assign(np.zeros((3, 4)))
    x = np.full((10, 3), 0.5, "float32")
    assert np.isfinite(penalty_of(layer, x))


def test_config_and_validation():
    reg = KANRegularizer(l1=0.01, entropy=0.1)
    assert KANRegularizer.from_config(reg.get_config()).get_config() == reg.get_config()
    revived = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(reg))
    assert isinstance(revived, KANRegularizer) and revived.entropy == 0.1
    for bad in (dict(l1=-1.0), dict(entropy=float("nan")), dict(coef="x")):
        with pytest.raises(ValueError, match=list(bad)[0]):
            KANRegularizer(**bad)


@pytest.mark.slow
def test_kan_passes_regularizer_to_every_layer():
    reg = KANRegularizer(l1=0.01, entropy=0.1)
    model = KAN([2, 3, 1], seed=0, regularizer=reg)
    assert all(layer.regularizer is reg for layer in model.layers)
    x = np.random.default_rng(0).uniform(-1, 1, size=(30, 2)).astype("float32")
    model(x, training=True)
    assert len(model.losses) == 2
